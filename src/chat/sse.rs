//! Server-sent events, read and written chunk by chunk.
//!
//! [`SseParser`] splits an incoming byte stream into events without buffering more than one
//! incomplete event; [`SseEvent`] borrows nothing and can be written back with
//! [`SseEvent::encode`]. An event whose data is passed on unchanged can be forwarded as its
//! original bytes ([`SseEvent::raw`]), so relaying costs no re-encoding, and an event's data
//! ([`SseData`]) shares those bytes instead of copying them, so reading one allocates nothing.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use std::fmt;
use std::ops::{Deref, Range};

/// The data of the event that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

/// The keep-alive the proxy writes into a stream with nothing to send (the cascade while it
/// describes images; the OpenAI-shaped dialect streams when idle): an SSE comment, ignored by
/// every client.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's original bytes, including the blank line that ends it.
    pub raw: Bytes,
    /// The `data:` lines' payload, joined with `\n`.
    pub data: SseData,
    /// The `event:` field, when present.
    pub event: Option<String>,
}

impl SseEvent {
    /// Whether this is the `data: [DONE]` terminator.
    pub fn is_done(&self) -> bool {
        self.data.trim() == DONE
    }

    /// Whether the event carries no data (a comment or keep-alive).
    pub fn is_comment_only(&self) -> bool {
        self.data.is_empty() && self.event.is_none()
    }

    /// Writes an event with `data` (one `data:` line per line of `data`).
    pub fn encode(data: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(data.len() + 8);
        for line in data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"\n");
        out.freeze()
    }

    /// Writes a `data:` event holding `value` as JSON.
    pub fn encode_json<T: serde::Serialize>(value: &T) -> Bytes {
        let json = serde_json::to_vec(value).expect("JSON values serialize");
        let mut out = BytesMut::with_capacity(json.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }
}

/// An event's data as text: a view into the event's own bytes when it is one `data:` line of
/// valid UTF-8 (the norm: no copy, no allocation), otherwise its own string (several lines
/// joined, or invalid UTF-8 replaced). Reads as a `str` (`Deref`), compares with strings.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SseData(ByteString);

impl SseData {
    /// The data as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SseData {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SseData {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SseData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SseData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for SseData {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SseData {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SseData {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<String> for SseData {
    fn from(text: String) -> Self {
        SseData(ByteString::from(text))
    }
}

impl From<&str> for SseData {
    fn from(text: &str) -> Self {
        SseData(ByteString::from(text))
    }
}

impl From<SseData> for String {
    fn from(data: SseData) -> Self {
        data.as_str().to_owned()
    }
}

/// Splits a byte stream into [`SseEvent`]s.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// A chunk given whole ([`push_bytes`](Self::push_bytes)) while nothing else was
    /// buffered: kept as it came, so complete events in it need no copy.
    chunk: Option<Bytes>,
}

impl SseParser {
    /// A parser with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.unstash();
        self.buf.extend_from_slice(chunk);
    }

    /// Adds a chunk received from the stream, without copying it when nothing else is
    /// buffered (the norm: upstreams send whole events).
    pub fn push_bytes(&mut self, chunk: Bytes) {
        if self.buf.is_empty() && self.chunk.is_none() {
            self.chunk = Some(chunk);
        } else {
            self.push(&chunk);
        }
    }

    /// Moves a chunk kept whole into the buffer.
    fn unstash(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Bytes received but not yet part of a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.chunk.as_ref().map_or(0, Bytes::len)
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.unstash();
        loop {
            let end = find_event_end(&self.buf)?;
            let raw = self.buf.split_to(end).freeze();
            if let Some(event) = parse_event(raw) {
                return Some(event);
            }
        }
    }

    /// Every complete event buffered, as one run of bytes that its events share (`None` when
    /// no event is complete). A chunk of whole events given with
    /// [`push_bytes`](Self::push_bytes) becomes the run itself: relaying it unchanged costs no
    /// copy and no allocation. Bytes the run's events leave over go back to the parser when
    /// the run is dropped.
    pub(crate) fn next_run(&mut self) -> Option<SseRun<'_>> {
        let bytes = match self.chunk.take() {
            // A chunk that ends a blank line is taken whole, without looking for its events
            // twice; what follows its last event, if anything, comes back on drop.
            Some(chunk) if chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\r") => chunk,
            Some(chunk) => {
                let end = complete_events_len(&chunk);
                // The unfinished tail waits in the buffer (empty until now) for the rest.
                self.buf.extend_from_slice(&chunk[end..]);
                if end == 0 {
                    return None;
                }
                chunk.slice(..end)
            }
            None => {
                let end = complete_events_len(&self.buf);
                if end == 0 {
                    return None;
                }
                self.buf.split_to(end).freeze()
            }
        };
        Some(SseRun {
            parser: self,
            bytes,
            pos: 0,
        })
    }

    /// Whatever is left at the end of the stream, as an event if it holds data.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.unstash();
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            self.buf.clear();
            return None;
        }
        let mut rest = std::mem::take(&mut self.buf);
        rest.extend_from_slice(b"\n\n");
        parse_event(rest.freeze())
    }
}

/// The length of the complete events at the start of `buf`.
fn complete_events_len(buf: &[u8]) -> usize {
    let mut end = 0;
    while let Some(len) = find_event_end(&buf[end..]) {
        end += len;
    }
    end
}

/// Complete events taken from an [`SseParser`] at once: iterates over them with the range
/// each one's bytes take in [`bytes`](Self::bytes) (`raw` is that slice, not a copy). Bytes
/// not yet iterated over when it is dropped go back to the parser, in front of anything
/// pushed later.
pub(crate) struct SseRun<'a> {
    parser: &'a mut SseParser,
    bytes: Bytes,
    pos: usize,
}

impl Drop for SseRun<'_> {
    fn drop(&mut self) {
        let rest = &self.bytes[self.pos..];
        if !rest.is_empty() {
            // The buffer is empty: the run took all of it, and pushes wait for this drop.
            debug_assert!(self.parser.buf.is_empty() && self.parser.chunk.is_none());
            self.parser.buf.extend_from_slice(rest);
        }
    }
}

impl SseRun<'_> {
    /// The bytes of every event of the run, in order.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl Iterator for SseRun<'_> {
    type Item = (Range<usize>, SseEvent);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let len = find_event_end(&self.bytes[self.pos..])?;
            let range = self.pos..self.pos + len;
            self.pos += len;
            if let Some(event) = parse_event(self.bytes.slice(range.clone())) {
                return Some((range, event));
            }
        }
    }
}

/// The position just after the blank line ending the first event, accepting `\n\n`,
/// `\r\n\r\n` and `\r\r`.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    // Jump from line end to line end (memchr) instead of looking at every byte.
    for i in memchr::memchr2_iter(b'\n', b'\r', buf) {
        match buf[i] {
            b'\n' => {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
            _ => {}
        }
    }
    None
}

fn parse_event(raw: Bytes) -> Option<SseEvent> {
    // Fields are found in the bytes; only the data is checked as UTF-8, once, and one `data:`
    // line (the norm) stays a view into `raw`; more are joined. Invalid UTF-8 is replaced.
    let mut first: Option<&[u8]> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut event = None;
    let mut seen_field = false;
    // Lines and the field's colon are found with memchr.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', &raw).chain(std::iter::once(raw.len()));
    for end in ends {
        let line = &raw[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None => continue,
            Some(b':') => {
                seen_field = true;
                continue;
            }
            Some(_) => seen_field = true,
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let v = &line[colon + 1..];
                (&line[..colon], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => match (&mut joined, first) {
                (Some(text), _) => {
                    text.push(b'\n');
                    text.extend_from_slice(value);
                }
                (None, Some(earlier)) => {
                    let mut text = Vec::with_capacity(earlier.len() + 1 + value.len());
                    text.extend_from_slice(earlier);
                    text.push(b'\n');
                    text.extend_from_slice(value);
                    joined = Some(text);
                }
                (None, None) => first = Some(value),
            },
            b"event" => event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
    if !seen_field {
        return None;
    }
    let data = match (joined, first) {
        (Some(text), _) => SseData::from(match String::from_utf8(text) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }),
        (None, Some(line)) => match ByteString::try_from(raw.slice_ref(line)) {
            Ok(text) => SseData(text),
            Err(_) => SseData::from(String::from_utf8_lossy(line).into_owned()),
        },
        (None, None) => SseData::default(),
    };
    Some(SseEvent { raw, data, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::new();
        p.push(b"data: {\"a\":");
        assert!(p.next_event().is_none());
        p.push(b"1}\n\ndata: [DONE]\n\n");
        let e = p.next_event().unwrap();
        assert_eq!(e.data, "{\"a\":1}");
        assert_eq!(&e.raw[..], b"data: {\"a\":1}\n\n");
        assert!(p.next_event().unwrap().is_done());
        assert!(p.next_event().is_none());
        assert!(p.finish().is_none());
    }

    #[test]
    fn crlf_comments_and_multiline_data() {
        let mut p = SseParser::new();
        p.push(b": keep-alive\r\n\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n");
        let c = p.next_event().unwrap();
        assert!(c.is_comment_only());
        let e = p.next_event().unwrap();
        assert_eq!(e.data, "a\nb");
        assert_eq!(e.event.as_deref(), Some("x"));
    }

    #[test]
    fn one_line_data_is_a_view_into_the_event_not_a_copy() {
        let mut p = SseParser::new();
        p.push("data: {\"note\":\"以上\"}\n\ndata: a\ndata: b\n\n".as_bytes());
        let e = p.next_event().unwrap();
        assert_eq!(e.data, "{\"note\":\"以上\"}");
        let raw = e.raw.as_ptr_range();
        let data = e.data.as_bytes().as_ptr_range();
        assert!(
            raw.start <= data.start && data.end <= raw.end,
            "data was copied"
        );
        // Two lines cannot be a view: they are joined.
        assert_eq!(p.next_event().unwrap().data, "a\nb");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut p = SseParser::new();
        p.push(b"data: ok \xff end\n\n");
        let e = p.next_event().unwrap();
        assert_eq!(e.data, "ok \u{fffd} end");
        assert_eq!(&e.raw[..], b"data: ok \xff end\n\n");
    }

    #[test]
    fn runs_agree_with_events_however_the_stream_is_cut() {
        let stream: &[u8] =
            b": hi\r\n\r\ndata: {\"a\":1}\n\nevent: x\ndata: b\ndata: c\n\n\n\ndata: [DONE]\n\n";
        let mut want = Vec::new();
        let mut p = SseParser::new();
        p.push(stream);
        while let Some(e) = p.next_event() {
            want.push(e);
        }
        for cut in 0..=stream.len() {
            for cut2 in cut..=stream.len() {
                let mut p = SseParser::new();
                let mut got = Vec::new();
                for piece in [&stream[..cut], &stream[cut..cut2], &stream[cut2..]] {
                    p.push_bytes(Bytes::copy_from_slice(piece));
                    while let Some(run) = p.next_run() {
                        for (range, e) in run {
                            assert_eq!(e.raw.len(), range.len());
                            got.push(e);
                        }
                    }
                }
                assert_eq!(p.pending(), 0);
                assert_eq!(got, want, "cut at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn a_chunk_of_whole_events_becomes_the_run_itself() {
        let mut p = SseParser::new();
        let chunk = Bytes::from_static(b"data: a\n\ndata: b\n\ndata: par");
        p.push_bytes(chunk.clone());
        let run = p.next_run().unwrap();
        assert_eq!(run.bytes().as_ptr(), chunk.as_ptr(), "the run was copied");
        assert_eq!(
            run.map(|(_, e)| e.data.to_string()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(p.pending(), "data: par".len());
        p.push_bytes(Bytes::from_static(b"t\n\n"));
        assert_eq!(p.next_event().unwrap().data, "part");
    }

    #[test]
    fn unterminated_tail_is_returned_by_finish() {
        let mut p = SseParser::new();
        p.push(b"data: tail");
        assert!(p.next_event().is_none());
        assert_eq!(p.finish().unwrap().data, "tail");
    }

    #[test]
    fn encode_round_trips() {
        let mut p = SseParser::new();
        p.push(&SseEvent::encode("x\ny"));
        assert_eq!(p.next_event().unwrap().data, "x\ny");
    }
}
