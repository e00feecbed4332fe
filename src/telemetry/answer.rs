//! A streamed answer's span, kept open until the stream ends.

use super::spans::{record_answer, record_failure, record_first_token, AnswerFacts};
use tracing::Span;

/// The span of the upstream attempt whose stream is being relayed, and what the stream said
/// so far. Made only for a span OpenTelemetry records; the span ends when this is dropped
/// (with the body), after the facts are recorded.
pub(crate) struct AnswerTrace {
    span: Span,
    facts: AnswerFacts,
    /// The start of an SSE line that the last chunk cut.
    partial: Vec<u8>,
    first: bool,
    /// What the stream says, put together when the operator opted in to message contents.
    #[cfg(feature = "otel")]
    output: Option<super::content::StreamedOutput>,
}

impl AnswerTrace {
    /// Follows the stream of the attempt `span` (which OpenTelemetry records).
    pub(crate) fn new(span: Span) -> Self {
        AnswerTrace {
            #[cfg(feature = "otel")]
            output: super::spans::captures_content(&span)
                .then(super::content::StreamedOutput::default),
            span,
            facts: AnswerFacts::default(),
            partial: Vec::new(),
            first: true,
        }
    }

    /// Reads the `data:` lines of one chunk.
    pub(crate) fn chunk(&mut self, bytes: &[u8]) {
        if self.first {
            self.first = false;
            record_first_token(&self.span);
        }
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = &rest[..end];
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                self.line(&joined);
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(data) = line.strip_prefix(b"data:") {
            #[cfg(feature = "otel")]
            if let Some(output) = &mut self.output {
                output.read(data.trim_ascii_start());
            }
            // Only the events that say something new are parsed: the first (id, model), the
            // ones with `usage` or a finish reason.
            if self.facts.id.is_none() || mentions_usage(data) || has_finish_reason(data) {
                self.facts.read(data.trim_ascii_start());
            }
        }
    }

    /// The stream broke (`error_type`: why) before its end.
    pub(crate) fn broken(&mut self, error_type: &str) {
        record_failure(&self.span, None, error_type);
    }
}

/// Whether an event has a `usage` key.
fn mentions_usage(data: &[u8]) -> bool {
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    USAGE.find(data).is_some()
}

/// Whether an event has a `finish_reason` with a string value (not `null`).
fn has_finish_reason(data: &[u8]) -> bool {
    static FINISH: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"finish_reason\""));
    FINISH.find_iter(data).any(|at| {
        let rest = &data[at + b"\"finish_reason\"".len()..];
        let rest = rest.trim_ascii_start();
        rest.strip_prefix(b":")
            .is_some_and(|value| value.trim_ascii_start().first() == Some(&b'"'))
    })
}

impl Drop for AnswerTrace {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            self.line(&partial);
        }
        record_answer(&self.span, &self.facts);
        #[cfg(feature = "otel")]
        if let Some(messages) = self.output.as_ref().and_then(|o| o.messages()) {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            self.span.set_attribute("gen_ai.output.messages", messages);
        }
        // tracing-opentelemetry ends a span at its last exit, and this one was last entered
        // when its headers came: an enter and exit now make the stream's end its end.
        drop(self.span.enter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cut_between_chunks_are_read_whole() {
        let mut trace = AnswerTrace::new(Span::none());
        trace.chunk(b"data: {\"id\":\"a\",\"choices\":[{\"finish_re");
        trace.chunk(b"ason\":\"stop\"}]}\r\n\r\ndata: {\"usage\":{\"prompt_tokens\":2,");
        trace.chunk(b"\"completion_tokens\":5}}\n\ndata: [DONE]\n\n");
        assert_eq!(trace.facts.id.as_deref(), Some("a"));
        assert_eq!(trace.facts.finish_reasons, ["stop"]);
        assert_eq!(trace.facts.usage, Some((2, 5)));
    }

    #[test]
    fn only_events_with_news_are_parsed() {
        assert!(has_finish_reason(
            br#"{"choices":[{"finish_reason" : "stop"}]}"#
        ));
        assert!(!has_finish_reason(
            br#"{"choices":[{"finish_reason":null}]}"#
        ));
        assert!(mentions_usage(br#"{"usage":{"prompt_tokens":1}}"#));
        let mut trace = AnswerTrace::new(Span::none());
        trace.chunk(b"data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[]}\n\n");
        trace.chunk(
            b"data: {\"id\":\"b\",\"model\":\"m\",\"choices\":[{\"finish_reason\":null}]}\n\n",
        );
        assert_eq!(trace.facts.id.as_deref(), Some("a"));
    }
}
