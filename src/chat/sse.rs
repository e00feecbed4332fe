//! Server-sent events, read and written chunk by chunk.
//!
//! [`SseParser`] splits an incoming byte stream into events without buffering more than one
//! incomplete event; [`SseEvent`] borrows nothing and can be written back with
//! [`SseEvent::encode`]. An event whose data is passed on unchanged can be forwarded as its
//! original bytes ([`SseEvent::raw`]), so relaying costs no re-encoding.

use bytes::{Bytes, BytesMut};

/// The data of the event that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's original bytes, including the blank line that ends it.
    pub raw: Bytes,
    /// The `data:` lines' payload, joined with `\n`.
    pub data: String,
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

/// Splits a byte stream into [`SseEvent`]s.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
}

impl SseParser {
    /// A parser with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = find_event_end(&self.buf)?;
            let raw = self.buf.split_to(end).freeze();
            if let Some(event) = parse_event(raw) {
                return Some(event);
            }
        }
    }

    /// Whatever is left at the end of the stream, as an event if it holds data.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            self.buf.clear();
            return None;
        }
        let mut rest = std::mem::take(&mut self.buf);
        rest.extend_from_slice(b"\n\n");
        parse_event(rest.freeze())
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
    // Valid UTF-8 (the norm) is checked by the fast validator and borrowed, not copied.
    let text = match std::str::from_utf8(&raw) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&raw),
    };
    let mut data: Option<String> = None;
    let mut event = None;
    let mut seen_field = false;
    // Lines and the field's colon are found with memchr (`split` and `split_once` with a char
    // pattern cost a searcher each).
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    for end in ends {
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            if line.starts_with(':') {
                seen_field = true;
            }
            continue;
        }
        seen_field = true;
        let (field, value) = match memchr::memchr(b':', line.as_bytes()) {
            Some(colon) => {
                let v = &line[colon + 1..];
                (&line[..colon], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            "event" => event = Some(value.to_owned()),
            _ => {}
        }
    }
    if !seen_field {
        return None;
    }
    Some(SseEvent {
        raw,
        data: data.unwrap_or_default(),
        event,
    })
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
