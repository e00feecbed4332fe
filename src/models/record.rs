//! [`RecordBody`]: the upstream's answer passed through unchanged while the reasoning behind
//! its tool calls is noted for replay.
//!
//! Only answers to requests that offer tools, on a model whose profile needs replay, are
//! wrapped; the cost there is one copy of a JSON answer (up to [`MAX_JSON_BYTES`]) or one
//! parse of each stream chunk, and nothing for every other request.

use super::memory::{ReasoningMemory, MAX_REASONING_BYTES};
use crate::chat::{ChatAnswer, ChatChunk, ChatCompletion, SseParser};
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{header, Response};
use http_body::{Frame, SizeHint};
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
        let mime = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let mode = match mime.as_deref() {
            Some("application/json") => Mode::Json(BytesMut::new()),
            Some("text/event-stream") => Mode::Stream {
                parser: SseParser::new(),
                choices: Vec::new(),
            },
            _ => return response,
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
                if let Ok(answer) = serde_json::from_slice::<ChatCompletion>(buf) {
                    remember_answer(&self.memory, &answer);
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
