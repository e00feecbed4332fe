//! A streamed answer's span, kept open until the stream ends.

use super::spans::{record_answer, record_failure, record_first_chunk, AnswerFacts};
use crate::usage::Usage;
use std::time::Instant;
use tracing::Span;

/// The longest `"finish_reason"` key, colon, blanks and value looked for across a chunk
/// boundary.
const CARRY: usize = 64;

/// The span of the upstream attempt whose stream is being relayed, and what the stream said
/// so far. Made only for a span OpenTelemetry records; the span ends when this is dropped
/// (with the body), after the facts are recorded.
///
/// Per chunk: the `usage` usage accounting found in it (no second search), one substring
/// search for `"finish_reason"`; the first event's `id` and `model` are read once. No event is
/// parsed (unless message contents are captured).
pub(crate) struct AnswerTrace {
    span: Span,
    facts: AnswerFacts,
    /// When the attempt was sent; `None` once the first chunk came.
    sent: Option<Instant>,
    /// The first event, until its line is whole.
    head: Option<Vec<u8>>,
    /// The end of the previous chunk, for a `finish_reason` cut by a chunk boundary.
    carry: Vec<u8>,
    /// What the stream says, put together when the operator opted in to message contents.
    #[cfg(feature = "otel")]
    output: Option<super::content::Lines>,
}

impl AnswerTrace {
    /// Follows the stream of the attempt `span` (which OpenTelemetry records), sent at `sent`.
    pub(crate) fn new(span: Span, sent: Instant) -> Self {
        AnswerTrace {
            #[cfg(feature = "otel")]
            output: super::spans::captures_content(&span).then(super::content::Lines::default),
            span,
            facts: AnswerFacts::default(),
            sent: Some(sent),
            head: Some(Vec::new()),
            carry: Vec::new(),
        }
    }

    /// Reads one chunk; `usage` is what usage accounting found in it.
    pub(crate) fn chunk(&mut self, bytes: &[u8], usage: Option<Usage>) {
        if let Some(sent) = self.sent.take() {
            record_first_chunk(&self.span, sent.elapsed());
        }
        if let Some(head) = &mut self.head {
            head.extend_from_slice(bytes);
            if let Some(line) = first_data_line(head) {
                self.facts.read_head(line);
                self.head = None;
            } else if head.len() > 64 * 1024 {
                self.head = None; // no event line in sight: give up on id and model
            }
        }
        if usage.is_some() {
            self.facts.usage = usage;
        }
        // A reason cut by the boundary: found in the previous chunk's end and this one's start
        // (only where the key starts in the previous chunk, not to count one twice).
        if !self.carry.is_empty() {
            let carried = self.carry.len();
            self.carry
                .extend_from_slice(&bytes[..bytes.len().min(CARRY)]);
            self.facts.read_finish_reasons_across(&self.carry, carried);
        }
        self.facts.read_finish_reasons(bytes);
        self.carry.clear();
        // A chunk that ends a line (the usual case) cuts no key from its value: nothing to
        // carry, and no second search at the next chunk.
        if bytes.last() != Some(&b'\n') {
            self.carry
                .extend_from_slice(&bytes[bytes.len().saturating_sub(CARRY)..]);
        }
        #[cfg(feature = "otel")]
        if let Some(output) = &mut self.output {
            output.chunk(bytes);
        }
    }

    /// The stream broke (`error_type`: why) before its end.
    pub(crate) fn broken(&mut self, error_type: &str) {
        record_failure(&self.span, None, error_type);
    }
}

/// The JSON of the first whole `data:` line of `sse`, once its line has ended.
fn first_data_line(sse: &[u8]) -> Option<&[u8]> {
    let mut rest = sse;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let line = &rest[..end];
        if let Some(data) = line.strip_prefix(b"data:") {
            let data = data.trim_ascii();
            if data.first() == Some(&b'{') {
                return Some(data);
            }
        }
        rest = &rest[end + 1..];
    }
    None
}

impl Drop for AnswerTrace {
    fn drop(&mut self) {
        record_answer(&self.span, &self.facts);
        #[cfg(feature = "otel")]
        if let Some(messages) = self.output.as_mut().and_then(|o| o.messages()) {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            self.span.set_attribute("gen_ai.output.messages", messages);
        }
        // Never entered, the span ends when it closes: now, with the body.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[test]
    fn a_stream_cut_anywhere_gives_the_same_facts() {
        let stream = "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\r\n\r\ndata: {\"id\":\"a\",\"choices\":[{\"delta\":{},\"finish_reason\" : \"stop\"}]}\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut trace = AnswerTrace::new(Span::none(), Instant::now());
            trace.chunk(&stream.as_bytes()[..cut], None);
            trace.chunk(&stream.as_bytes()[cut..], Some(usage(2, 5)));
            assert_eq!(trace.facts.id.as_deref(), Some("a"), "cut at {cut}");
            assert_eq!(trace.facts.model.as_deref(), Some("m"), "cut at {cut}");
            assert_eq!(trace.facts.finish_reasons, ["stop"], "cut at {cut}");
            assert_eq!(trace.facts.usage, Some(usage(2, 5)));
        }
    }

    #[test]
    fn only_the_first_event_names_the_answer() {
        let mut trace = AnswerTrace::new(Span::none(), Instant::now());
        trace.chunk(
            b": keep-alive\n\ndata: {\"id\":\"a\",\"model\":\"m\",\"choices\":[]}\n\n",
            None,
        );
        trace.chunk(
            b"data: {\"id\":\"b\",\"model\":\"n\",\"choices\":[{\"finish_reason\":null}]}\n\n",
            None,
        );
        assert_eq!(trace.facts.id.as_deref(), Some("a"));
        assert_eq!(trace.facts.model.as_deref(), Some("m"));
        assert!(trace.facts.finish_reasons.is_empty());
    }
}
