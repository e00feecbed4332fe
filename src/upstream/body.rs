//! The streamed answer's body: upstream bytes relayed as they arrive.

use super::slots::Slot;
use crate::chat::SseEvent;
use crate::telemetry::AnswerTrace;
use crate::usage::{UsageScan, UsageSlot};
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send + Sync>>;

/// A streamed upstream answer. Chunks pass through untouched; if the upstream breaks midway,
/// sends nothing for the idle timeout, or ends (cleanly, as a close-delimited HTTP/1.0 body
/// can) with neither `[DONE]` nor a `finish_reason`, one `data: {"error":…}` event is sent
/// and the body ends without `[DONE]`. A stream that ends after a `finish_reason` but without
/// `[DONE]` is complete: the `[DONE]` is added. Holds the upstream concurrency slot until it
/// ends or is dropped.
pub struct UpstreamBody {
    stream: Option<ByteStream>,
    /// What the bytes so far said about the end of the answer.
    scan: EndScan,
    slot: Option<Slot>,
    /// The longest silence allowed between two chunks.
    idle: Duration,
    /// When the last chunk came (or the body was made).
    last_chunk: Instant,
    /// Fires at or before `last_chunk + idle`; made at the first wait and moved on only when
    /// it fires, so a chunk costs a clock read, not a timer update.
    timer: Option<Pin<Box<Sleep>>>,
    /// The attempt's trace span and what the stream said, when OpenTelemetry records it.
    trace: Option<AnswerTrace>,
    /// Where the stream's `usage` goes, when someone asked for it.
    usage: Option<UsageSlot>,
    /// The search for `usage` in the chunks (for the slot and the trace).
    usage_scan: UsageScan,
}

impl UpstreamBody {
    pub(crate) fn new(stream: ByteStream, slot: Slot, idle: Duration) -> Self {
        UpstreamBody {
            stream: Some(stream),
            scan: EndScan::default(),
            slot: Some(slot),
            idle,
            last_chunk: Instant::now(),
            timer: None,
            usage: None,
            trace: None,
            usage_scan: UsageScan::default(),
        }
    }

    /// Keeps the attempt's span open until the body ends, recording the answer's usage and
    /// finish reasons from the stream.
    pub(crate) fn trace(&mut self, trace: AnswerTrace) {
        self.trace = Some(trace);
    }

    /// Notes on the span why the stream broke.
    fn trace_broken(&mut self, broken: Broken) {
        if let Some(trace) = &mut self.trace {
            trace.broken(broken.code());
        }
    }

    /// Puts the stream's `usage` into `slot` when the chunks carry it (one substring search
    /// per chunk, and one more for a line a chunk boundary cut; only a found `usage` object is
    /// parsed).
    pub(crate) fn usage_into(mut self, slot: Option<UsageSlot>) -> Self {
        self.usage = slot;
        self
    }

    /// The error event that ends a broken stream, on lines of its own.
    fn closing(&self, broken: Broken) -> Bytes {
        joined(self.scan.separator(), broken_stream_event(broken))
    }

    fn finish(&mut self) {
        self.stream = None;
        self.slot = None;
        self.timer = None;
        self.trace = None;
    }

    /// Whether the upstream has been silent for the idle timeout; otherwise the timer is armed
    /// to wake this task at the silence's deadline.
    fn silent_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.last_chunk + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            // The timer was set for an older deadline: chunks came since.
            let deadline = self.last_chunk + self.idle;
            if Instant::now() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
    }
}

/// How an upstream stream failed after it was committed to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// No chunk for the idle timeout.
    Silent,
    /// The connection failed mid-body.
    Error,
    /// The body ended cleanly with neither `[DONE]` nor a `finish_reason`.
    Truncated,
}

impl Broken {
    /// The error code of the event that reports it.
    fn code(self) -> &'static str {
        match self {
            Broken::Silent => "upstream_timeout",
            Broken::Error => "upstream_stream_error",
            Broken::Truncated => "upstream_truncated",
        }
    }
}

/// The event sent when the upstream breaks mid-stream.
pub(crate) fn broken_stream_event(broken: Broken) -> Bytes {
    let (message, code) = match broken {
        Broken::Silent => ("the upstream went silent mid-stream", "upstream_timeout"),
        Broken::Error => ("the upstream stream broke off", "upstream_stream_error"),
        Broken::Truncated => (
            "the upstream stream ended before the answer was finished",
            "upstream_truncated",
        ),
    };
    SseEvent::encode_json(&serde_json::json!({
        "error": {"message": message, "type": "upstream_error", "param": null, "code": code, "status": 502}
    }))
}

/// The longest `"finish_reason"` key, colon, blanks and opening quote looked for across a
/// chunk boundary.
const CARRY: usize = 64;

/// Watches the raw SSE bytes for the two signs that an answer is whole: a non-null, non-empty
/// `finish_reason` and a `data: [DONE]` line. Costs one substring search per chunk; only the
/// last [`CARRY`] bytes are kept, to see a sign split between two chunks.
#[derive(Debug, Default)]
pub(crate) struct EndScan {
    /// The end of the bytes before the current chunk.
    carry: Vec<u8>,
    /// Whether any byte was seen (a `[DONE]` at the very start is at a line start).
    seen: bool,
    /// A `finish_reason` with a value was seen.
    pub(crate) finished: bool,
    /// A `data: [DONE]` line was seen.
    pub(crate) done: bool,
    /// The last two bytes, to place a closing event on its own lines.
    last: [u8; 2],
}

impl EndScan {
    /// Looks at the next chunk.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.done {
            let at_start = !self.seen;
            let carried = self.carry.len();
            let mut joint = std::mem::take(&mut self.carry);
            joint.extend_from_slice(&bytes[..bytes.len().min(CARRY)]);
            // A sign across the boundary, then the signs inside the chunk.
            if carried > 0 {
                self.scan(&joint, false);
            }
            self.scan(bytes, at_start);
            if bytes.len() >= CARRY {
                joint.clear();
                joint.extend_from_slice(&bytes[bytes.len() - CARRY..]);
            } else {
                let extra = joint.len().saturating_sub(CARRY);
                joint.drain(..extra);
            }
            self.carry = joint;
        }
        self.note_last(bytes);
    }

    fn note_last(&mut self, bytes: &[u8]) {
        self.seen = true;
        match bytes {
            [.., a, b] => self.last = [*a, *b],
            [b] => self.last = [self.last[1], *b],
            [] => {}
        }
    }

    fn scan(&mut self, window: &[u8], at_stream_start: bool) {
        if !self.finished {
            self.finished = has_finish_reason(window);
        }
        if !self.done {
            self.done = has_done_line(window, at_stream_start);
        }
    }

    /// What to put before an event so that it starts on a line of its own after a blank line.
    pub(crate) fn separator(&self) -> &'static [u8] {
        match (self.seen, self.last) {
            (false, _) | (true, [b'\n', b'\n']) => b"",
            (true, [_, b'\n']) => b"\n",
            _ => b"\n\n",
        }
    }
}

/// Whether `window` holds `"finish_reason"` with a non-empty string value.
fn has_finish_reason(window: &[u8]) -> bool {
    const KEY: &[u8] = b"\"finish_reason\"";
    memchr::memmem::find_iter(window, KEY).any(|at| {
        let rest = &window[at + KEY.len()..];
        let rest = trim_blanks(rest);
        let Some(rest) = rest.strip_prefix(b":") else {
            return false;
        };
        let rest = trim_blanks(rest);
        rest.len() >= 2 && rest[0] == b'"' && rest[1] != b'"'
    })
}

/// Whether `window` holds a `data: [DONE]` line (`data:` at a line start, optional blanks).
fn has_done_line(window: &[u8], at_stream_start: bool) -> bool {
    const DONE: &[u8] = b"[DONE]";
    memchr::memmem::find_iter(window, DONE).any(|at| {
        let before = &window[..at];
        let before = trim_blanks_end(before);
        let Some(before) = before.strip_suffix(b"data:") else {
            return false;
        };
        match before.last() {
            Some(b'\n' | b'\r') => true,
            Some(_) => false,
            None => at_stream_start,
        }
    })
}

fn trim_blanks(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_blanks_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |at| at + 1);
    &bytes[..end]
}

/// `separator` then `event`, as one chunk.
fn joined(separator: &[u8], event: Bytes) -> Bytes {
    if separator.is_empty() {
        return event;
    }
    let mut out = Vec::with_capacity(separator.len() + event.len());
    out.extend_from_slice(separator);
    out.extend_from_slice(&event);
    out.into()
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match stream.as_mut().poll_next(cx) {
            Poll::Pending => {
                if !this.silent_too_long(cx) {
                    return Poll::Pending;
                }
                tracing::warn!(
                    idle_secs = this.idle.as_secs(),
                    "the upstream went silent mid-stream"
                );
                this.trace_broken(Broken::Silent);
                this.finish();
                Poll::Ready(Some(Ok(Frame::data(this.closing(Broken::Silent)))))
            }
            Poll::Ready(Some(Ok(bytes))) => {
                this.last_chunk = Instant::now();
                this.scan.push(&bytes);
                // One search for `usage`, for accounting and the trace alike.
                let found = if this.usage.is_some() || this.trace.is_some() {
                    this.usage_scan.find(&bytes)
                } else {
                    None
                };
                if let Some(trace) = &mut this.trace {
                    trace.chunk(&bytes, found.as_ref().map(|f| f.usage));
                }
                if let (Some(slot), Some(found)) = (&this.usage, found) {
                    slot.set_usage(found);
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::warn!(timeout = err.is_timeout(), "upstream stream broke off");
                let broken = if err.is_timeout() {
                    Broken::Silent
                } else {
                    Broken::Error
                };
                this.trace_broken(broken);
                this.finish();
                Poll::Ready(Some(Ok(Frame::data(this.closing(broken)))))
            }
            Poll::Ready(None) => {
                this.finish();
                if this.scan.done {
                    return Poll::Ready(None);
                }
                if this.scan.finished {
                    tracing::debug!(
                        "the upstream stream ended without [DONE] after its finish_reason"
                    );
                    let done = joined(
                        this.scan.separator(),
                        Bytes::from_static(b"data: [DONE]\n\n"),
                    );
                    return Poll::Ready(Some(Ok(Frame::data(done))));
                }
                tracing::warn!("the upstream stream ended before its answer was finished (no finish_reason, no [DONE])");
                metrics::counter!(crate::metrics::names::UPSTREAM_TRUNCATED).increment(1);
                this.trace_broken(Broken::Truncated);
                Poll::Ready(Some(Ok(Frame::data(this.closing(Broken::Truncated)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `pieces` as consecutive chunks.
    fn scan(pieces: &[&str]) -> EndScan {
        let mut scan = EndScan::default();
        for piece in pieces {
            scan.push(piece.as_bytes());
        }
        scan
    }

    const FINISH: &str = "data: {\"choices\":[{\"delta\":{},\"finish_reason\": \"stop\"}]}\n\n";

    #[test]
    fn a_finish_reason_and_done_are_seen_even_split_across_chunks() {
        let whole = format!("{FINISH}data: [DONE]\n\n");
        for cut in 0..whole.len() {
            let s = scan(&[&whole[..cut], &whole[cut..]]);
            assert!(s.finished && s.done, "cut at {cut}");
        }
        let bytes: Vec<String> = whole.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        let s = scan(&refs);
        assert!(s.finished && s.done, "one byte at a time");
    }

    #[test]
    fn null_or_empty_finish_reasons_and_done_inside_text_do_not_count() {
        let s = scan(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"data: [DONE]\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"finish_reason\":\"\"}]}\n\n",
        ]);
        assert!(!s.finished && !s.done);
        assert!(scan(&["data:[DONE]"]).done, "at the very start, no blank");
    }

    #[test]
    fn a_closing_event_starts_after_a_blank_line() {
        assert_eq!(scan(&[]).separator(), b"");
        assert_eq!(scan(&["data: {}\n\n"]).separator(), b"");
        assert_eq!(scan(&["data: {}\n"]).separator(), b"\n");
        assert_eq!(scan(&["data: {\"cho"]).separator(), b"\n\n");
        assert_eq!(scan(&["data: {}\n", "\n"]).separator(), b"");
    }
}
