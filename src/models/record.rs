//! [`RecordBody`]: the upstream's answer passed through unchanged while the reasoning behind
//! its tool calls is noted for replay.
//!
//! Only answers to requests that offer tools, on a model whose profile needs replay, are
//! wrapped; the cost there is one copy of a JSON answer (up to [`MAX_JSON_BYTES`]) and a scan
//! of its bytes, or a scan of each stream chunk, and nothing for every other request. Only an
//! answer (or chunk) whose bytes may carry reasoning or tool calls is parsed ([`may_carry`]):
//! most answers in a tool conversation carry neither, and parsing them was wasted work.

use super::memory::{ReasoningMemory, MAX_REASONING_BYTES};
use crate::chat::BodyKind;
use crate::chat::{ChatAnswer, ChatChunk, ChatCompletion, SseParser};
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Frame, SizeHint};
use memchr::memmem;
use serde_json::Value;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The largest JSON answer looked at; a larger one passes unobserved.
pub const MAX_JSON_BYTES: usize = 8 * 1024 * 1024;

/// One choice of a stream, as far as it came.
#[derive(Default)]
struct Trace {
    reasoning: String,
    ids: Vec<String>,
}

enum Mode {
    Json(BytesMut),
    Stream {
        parser: SseParser,
        choices: Vec<Trace>,
    },
}

/// A response body that notes the reasoning behind the tool calls it carries.
pub(crate) struct RecordBody {
    inner: Body,
    mode: Mode,
    memory: ReasoningMemory,
    done: bool,
}

impl RecordBody {
    /// Wraps a JSON or event-stream answer; any other answer is returned as it is.
    pub(crate) fn wrap(response: Response<Body>, memory: ReasoningMemory) -> Response<Body> {
        let mode = match BodyKind::of(response.headers()) {
            Some(BodyKind::Json) => Mode::Json(BytesMut::new()),
            Some(BodyKind::EventStream) => Mode::Stream {
                parser: SseParser::new(),
                choices: Vec::new(),
            },
            None => return response,
        };
        response.map(|inner| {
            Body::new(RecordBody {
                inner,
                mode,
                memory,
                done: false,
            })
        })
    }

    fn observe(&mut self, data: &Bytes) {
        match &mut self.mode {
            Mode::Json(buf) => {
                if buf.len() + data.len() <= MAX_JSON_BYTES {
                    buf.extend_from_slice(data);
                } else {
                    self.done = true;
                }
            }
            Mode::Stream { parser, choices } => {
                parser.push_bytes(data.clone());
                while let Some(event) = parser.next_event() {
                    if event.is_done() {
                        break;
                    }
                    // A chunk with neither reasoning nor a tool call adds nothing to a trace.
                    if !may_carry(event.data.as_bytes(), Need::Either) {
                        continue;
                    }
                    let Ok(chunk) = serde_json::from_str::<ChatChunk>(&event.data) else {
                        continue;
                    };
                    for choice in chunk.choices {
                        let index = choice.index as usize;
                        if index >= 16 {
                            continue;
                        }
                        if choices.len() <= index {
                            choices.resize_with(index + 1, Trace::default);
                        }
                        let trace = &mut choices[index];
                        if let Some(Value::String(piece)) =
                            choice.delta.extra.get("reasoning_content")
                        {
                            if trace.reasoning.len() + piece.len() <= MAX_REASONING_BYTES {
                                trace.reasoning.push_str(piece);
                            }
                        }
                        for call in choice.delta.tool_calls.into_iter().flatten() {
                            if let Some(id) = call.id.filter(|id| !id.is_empty()) {
                                if !trace.ids.contains(&id) {
                                    trace.ids.push(id);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Notes what the whole answer said.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        match &mut self.mode {
            Mode::Json(buf) => {
                // Only reasoning behind tool calls is noted: an answer without both is not read.
                if may_carry(buf, Need::Both) {
                    if let Ok(answer) = serde_json::from_slice::<ChatCompletion>(buf) {
                        remember_answer(&self.memory, &answer);
                    }
                }
            }
            Mode::Stream { choices, .. } => {
                for trace in choices.iter() {
                    self.memory.remember(&trace.ids, &trace.reasoning);
                }
            }
        }
    }
}

/// Which of the two fields a piece of JSON must name to be worth parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// `reasoning_content` and `tool_calls` (a whole answer: reasoning is noted only for calls).
    Both,
    /// Either (a stream chunk: the two may come in different chunks).
    Either,
}

/// Whether `json` may carry reasoning (`reasoning_content`) and tool calls (`tool_calls`), as
/// `need` says, from a scan of its bytes: a few hundred instructions against ~10k for a parse.
/// It never says no to JSON that carries them: a key can hide its name only behind a `\u`
/// escape of a letter or `_` (`\u0041`…`\u007A`, always `\u00` and a digit 4 to 7; JSON has
/// no other escape that yields one), so JSON with such an escape counts as naming both, while
/// escaped non-ASCII text (`\u4ee5`…) does not; a name met in a string value only costs the
/// parse it had before.
fn may_carry(json: &[u8], need: Need) -> bool {
    let ascii_escape =
        memmem::find_iter(json, b"\\u00").any(|at| matches!(json.get(at + 4), Some(b'4'..=b'7')));
    if ascii_escape {
        return true;
    }
    let reasoning = || memmem::find(json, b"reasoning_content").is_some();
    let calls = || memmem::find(json, b"tool_calls").is_some();
    match need {
        Need::Both => reasoning() && calls(),
        Need::Either => reasoning() || calls(),
    }
}

/// Notes the reasoning behind the tool calls of a whole answer.
fn remember_answer(memory: &ReasoningMemory, answer: &ChatCompletion) {
    for choice in &answer.choices {
        if let Some(Value::String(reasoning)) = choice.message.extra.get("reasoning_content") {
            let ids: Vec<String> = choice
                .message
                .tool_calls
                .iter()
                .flatten()
                .map(|c| c.id.clone())
                .collect();
            memory.remember(&ids, reasoning);
        }
    }
}

/// A whole JSON answer for a caller that takes it typed
/// ([`TypedAnswer`](crate::chat::TypedAnswer)): parsed here once, its reasoning noted, and
/// handed on parsed ([`ChatAnswer`](crate::chat::ChatAnswer)) instead of wrapped in a
/// [`RecordBody`] and parsed again outside.
pub(crate) async fn record_typed(
    response: Response<Body>,
    memory: &ReasoningMemory,
) -> Response<Body> {
    match ChatAnswer::read(response).await {
        Ok((parts, answer)) => {
            remember_answer(memory, &answer);
            ChatAnswer::respond(parts, answer)
        }
        Err(response) => response,
    }
}

impl http_body::Body for RecordBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) if !this.done => {
                if let Some(data) = frame.data_ref() {
                    this.observe(data);
                }
            }
            None => this.finish(),
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{may_carry, Need};

    #[test]
    fn only_json_naming_reasoning_and_tool_calls_is_worth_parsing() {
        let plain = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#;
        assert!(!may_carry(plain, Need::Both));
        assert!(!may_carry(plain, Need::Either));
        let calls = br#"{"choices":[{"message":{"tool_calls":[{"id":"t"}]}}]}"#;
        assert!(
            !may_carry(calls, Need::Both),
            "no reasoning: nothing to note"
        );
        assert!(may_carry(calls, Need::Either));
        let both = br#"{"message":{"reasoning_content":"r","tool_calls":[]}}"#;
        assert!(may_carry(both, Need::Both));
        // A key spelled with an escape is not missed.
        let escaped = br#"{"message":{"reasoning\u005fcontent":"r","tool_calls":[]}}"#;
        assert!(may_carry(escaped, Need::Both));
        assert!(may_carry(br#"{"tool\u005fcalls":[]}"#, Need::Either));
        assert!(may_carry(
            br#"{"tool_c\u0061lls":[],"reasoning_conten\u0074":""}"#,
            Need::Both
        ));
        // Escaped non-ASCII text (a JSON writer that escapes all of it) is no reason to parse.
        let cjk = br#"{"choices":[{"message":{"content":"\u4ee5\u4e0a","tool_calls":[]}}]}"#;
        assert!(!may_carry(cjk, Need::Both));
        assert!(may_carry(cjk, Need::Either));
    }
}
