//! [`ResponsesStream`]: chat completion chunks in, Responses stream events out.
//!
//! The grammar produced, with `sequence_number` counting every event from 0:
//!
//! ```text
//! response.created, response.in_progress
//! per output item, one at a time (an item is closed before the next opens):
//!   response.output_item.added
//!     message:       response.content_part.added, response.output_text.delta…,
//!                    response.output_text.done, response.content_part.done
//!     function_call: response.function_call_arguments.delta…, response.function_call_arguments.done
//!     reasoning:     summary mode: response.reasoning_summary_part.added,
//!                    response.reasoning_summary_text.delta…, response.reasoning_summary_text.done,
//!                    response.reasoning_summary_part.done
//!                    text mode:    response.reasoning_text.delta…, response.reasoning_text.done
//!   response.output_item.done
//! response.completed | response.incomplete | response.failed (the whole response object)
//! ```
//!
//! Choices made here, for Hunyuan's stream shape:
//!
//! - **Reasoning** (`reasoning_content`) is shown as a *summary* when the client asked for
//!   `reasoning.summary` (Codex does: it displays summaries), else as `reasoning_text`. Either
//!   way the finished item carries `encrypted_content` so a stateless client can replay it.
//! - **Tool calls**: Hunyuan repeats the call's id and type in every chunk and sends the name
//!   and the arguments in separate chunks; OpenAI sends id and name once. Both work: a call is
//!   keyed by its chunk `index`, the name is taken once, and `output_item.added` waits for the
//!   name, so the name is always known when the item opens. Arguments go out as deltas *and*
//!   whole in `function_call_arguments.done`.
//! - **Text beside tool calls**: text that arrives while a call is open is held and sent as a
//!   message item once the call is closed, so a call's arguments are never split by another
//!   item. Blank text (Hunyuan's `" "` beside calls) never opens a message item.
//! - **Ends**: [`on_done`](ResponsesStream::on_done) (`[DONE]`) completes the response
//!   (`incomplete` for `finish_reason` `length` or `sensitive`); an upstream error
//!   ([`on_error`](ResponsesStream::on_error)) or a stream cut before any `finish_reason`
//!   ([`on_truncated`](ResponsesStream::on_truncated)) sends `response.failed`, whose output
//!   holds the items so far (the unfinished one `incomplete`, with no `output_item.done`, so
//!   a client that retries does not keep half an item). No `[DONE]` is ever sent; keep-alives
//!   are SSE comments ([`KEEPALIVE`]) and take no sequence number.

use super::response::{status_for, ItemStatus, OutputItem, ResponseContext, ResponseErrorBody};
use super::response::{ResponseObject, ResponseStatus, ResponseUsage};
use crate::chat::{ChatChunk, ToolCallDelta, Usage};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

pub use crate::ingress::KEEPALIVE;

/// One Responses stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesEvent {
    kind: &'static str,
    data: Value,
}

impl ResponsesEvent {
    /// The event type, e.g. `response.output_text.delta`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The event's JSON (with `type` and `sequence_number`).
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The event's `sequence_number`.
    pub fn sequence_number(&self) -> u64 {
        self.data["sequence_number"].as_u64().unwrap_or_default()
    }

    /// The event as SSE bytes: `event: <type>\ndata: <json>\n\n`.
    pub fn encode(&self) -> Bytes {
        let json = serde_json::to_vec(&self.data).expect("JSON values serialize");
        let mut out = BytesMut::with_capacity(json.len() + self.kind.len() + 16);
        out.put_slice(b"event: ");
        out.put_slice(self.kind.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(&json);
        out.put_slice(b"\n\n");
        out.freeze()
    }
}

/// The item being streamed.
#[derive(Debug)]
enum Open {
    Message {
        text: String,
    },
    Reasoning {
        text: String,
    },
    Call {
        /// The chat tool-call index the pieces carry.
        index: u32,
        call_id: String,
        /// The name as sent upstream (empty until known).
        sent: String,
        arguments: String,
        /// Whether `output_item.added` went out (it waits for the name).
        announced: bool,
    },
}

/// The state machine from chat chunks to Responses events; one per streamed response.
///
/// Call [`on_start`](Self::on_start) once the upstream answered, [`on_chunk`](Self::on_chunk)
/// per chunk, then one of [`on_done`](Self::on_done), [`on_error`](Self::on_error) or
/// [`on_truncated`](Self::on_truncated). Each returns the events to write, in order; after the
/// end every call returns nothing. Any call starts the stream if `on_start` was not called.
#[derive(Debug)]
pub struct ResponsesStream {
    ctx: ResponseContext,
    seq: u64,
    started: bool,
    output: Vec<OutputItem>,
    open: Option<Open>,
    /// Chat index and id of the calls already closed.
    closed_calls: Vec<(u32, String)>,
    /// Text received but not sent: blank so far, or held while a call is open.
    pending_text: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    last: Option<ResponseObject>,
}

impl ResponsesStream {
    /// A stream answering for `ctx` (from [`to_chat`](super::to_chat)).
    pub fn new(ctx: ResponseContext) -> Self {
        ResponsesStream {
            ctx,
            seq: 0,
            started: false,
            output: Vec::new(),
            open: None,
            closed_calls: Vec::new(),
            pending_text: String::new(),
            finish_reason: None,
            usage: None,
            last: None,
        }
    }

    /// The final response object, once the stream ended (to store, or for logs).
    pub fn response(&self) -> Option<&ResponseObject> {
        self.last.as_ref()
    }

    /// Whether the stream has ended.
    pub fn is_finished(&self) -> bool {
        self.last.is_some()
    }

    /// `response.created` and `response.in_progress`.
    pub fn on_start(&mut self) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        self.start(&mut out);
        out
    }

    /// The events for one chat chunk (choice 0; others are ignored).
    pub fn on_chunk(&mut self, chunk: &ChatChunk) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        self.start(&mut out);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let delta = &choice.delta;
        if let Some(reasoning) = delta
            .extra
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            self.reasoning(&mut out, reasoning);
        }
        if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.text(&mut out, text);
        }
        for call in delta.tool_calls.iter().flatten() {
            self.tool_call(&mut out, call);
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        out
    }

    /// Nothing to send: the caller writes [`KEEPALIVE`] itself; keep-alives take no sequence
    /// number, so the state does not change.
    pub fn on_keepalive(&mut self) {}

    /// The upstream finished (`[DONE]`): the open item is closed and the response completes
    /// (`response.incomplete` for `length` or `sensitive`).
    pub fn on_done(&mut self) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        self.start(&mut out);
        let (status, incomplete) = status_for(self.finish_reason.as_deref());
        let item_status = match status {
            ResponseStatus::Incomplete => ItemStatus::Incomplete,
            _ => ItemStatus::Completed,
        };
        self.close(&mut out, item_status);
        self.flush_text(&mut out, item_status);
        let mut response = self.ctx.skeleton(status);
        response.output = self.output.clone();
        response.incomplete_details = incomplete;
        response.usage = self.usage.map(ResponseUsage::from);
        let kind = match status {
            ResponseStatus::Incomplete => "response.incomplete",
            _ => "response.completed",
        };
        self.emit(&mut out, kind, json!({ "response": response }));
        self.last = Some(response);
        out
    }

    /// The upstream failed mid-stream: `response.failed` with `error.code` from the status
    /// (429 → `rate_limit_exceeded`, other 4xx → `invalid_prompt`, else `server_error`) and
    /// `message` (the proxy's own words, never the upstream's).
    pub fn on_error(
        &mut self,
        status: u16,
        error_type: &str,
        message: &str,
    ) -> Vec<ResponsesEvent> {
        let code = match status {
            429 => "rate_limit_exceeded",
            _ if error_type == "rate_limit_error" => "rate_limit_exceeded",
            400..=499 => "invalid_prompt",
            _ => "server_error",
        };
        self.fail(code, message)
    }

    /// The upstream stream ended without `[DONE]`. After a `finish_reason` the answer is whole
    /// and completes as [`on_done`](Self::on_done) would; before one it fails.
    pub fn on_truncated(&mut self) -> Vec<ResponsesEvent> {
        if self.finish_reason.is_some() {
            return self.on_done();
        }
        self.fail(
            "server_error",
            "the upstream stream ended before the answer was complete",
        )
    }

    fn fail(&mut self, code: &str, message: &str) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        self.start(&mut out);
        let mut response = self.ctx.skeleton(ResponseStatus::Failed);
        response.output = self.output.clone();
        if let Some(open) = &self.open {
            response
                .output
                .push(self.snapshot(open, ItemStatus::Incomplete));
        }
        response.error = Some(ResponseErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        response.usage = self.usage.map(ResponseUsage::from);
        self.emit(&mut out, "response.failed", json!({ "response": response }));
        self.open = None;
        self.last = Some(response);
        out
    }

    fn start(&mut self, out: &mut Vec<ResponsesEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.ctx.skeleton(ResponseStatus::InProgress);
        self.emit(out, "response.created", json!({ "response": response }));
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    fn emit(&mut self, out: &mut Vec<ResponsesEvent>, kind: &'static str, mut data: Value) {
        data["type"] = Value::from(kind);
        data["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        out.push(ResponsesEvent { kind, data });
    }

    /// The output index of the open item (closed items are in `output`).
    fn index(&self) -> usize {
        self.output.len()
    }

    fn item_id(&self, prefix: &str) -> String {
        self.ctx.item_id(prefix, self.index())
    }

    /// The open item as it stands, in `status`.
    fn snapshot(&self, open: &Open, status: ItemStatus) -> OutputItem {
        let index = self.index();
        match open {
            Open::Message { text } => self.ctx.message_item(index, text, status),
            Open::Reasoning { text } => self.ctx.reasoning_item(index, text),
            Open::Call {
                call_id,
                sent,
                arguments,
                ..
            } => self
                .ctx
                .function_call_item(index, call_id, sent, arguments, status),
        }
    }

    fn text(&mut self, out: &mut Vec<ResponsesEvent>, text: &str) {
        self.pending_text.push_str(text);
        match self.open {
            Some(Open::Call { .. }) => return,
            Some(Open::Message { .. }) => {}
            _ => {
                if self.pending_text.trim().is_empty() {
                    return;
                }
                self.close(out, ItemStatus::Completed);
                self.open_message(out);
            }
        }
        let delta = std::mem::take(&mut self.pending_text);
        self.message_delta(out, &delta);
    }

    /// Sends held text as a message item of its own (blank text is dropped).
    fn flush_text(&mut self, out: &mut Vec<ResponsesEvent>, status: ItemStatus) {
        if self.pending_text.trim().is_empty() {
            self.pending_text.clear();
            return;
        }
        self.open_message(out);
        let delta = std::mem::take(&mut self.pending_text);
        self.message_delta(out, &delta);
        self.close(out, status);
    }

    fn open_message(&mut self, out: &mut Vec<ResponsesEvent>) {
        let index = self.index();
        let item_id = self.item_id("msg");
        let item = json!({"id": item_id, "type": "message", "status": "in_progress",
                          "role": "assistant", "content": []});
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        self.open = Some(Open::Message {
            text: String::new(),
        });
    }

    fn message_delta(&mut self, out: &mut Vec<ResponsesEvent>, delta: &str) {
        if let Some(Open::Message { text }) = &mut self.open {
            text.push_str(delta);
        }
        let (index, item_id) = (self.index(), self.item_id("msg"));
        self.emit(
            out,
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
                   "delta": delta, "logprobs": []}),
        );
    }

    fn reasoning(&mut self, out: &mut Vec<ResponsesEvent>, delta: &str) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close(out, ItemStatus::Completed);
            self.flush_text(out, ItemStatus::Completed);
            let (index, item_id) = (self.index(), self.item_id("rs"));
            let item = json!({"id": item_id, "type": "reasoning", "summary": [],
                              "encrypted_content": null});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            if self.ctx.reasoning_summary {
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": ""}}),
                );
            }
            self.open = Some(Open::Reasoning {
                text: String::new(),
            });
        }
        if let Some(Open::Reasoning { text }) = &mut self.open {
            text.push_str(delta);
        }
        let (index, item_id) = (self.index(), self.item_id("rs"));
        if self.ctx.reasoning_summary {
            self.emit(
                out,
                "response.reasoning_summary_text.delta",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                       "delta": delta}),
            );
        } else {
            self.emit(
                out,
                "response.reasoning_text.delta",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                       "delta": delta}),
            );
        }
    }

    fn tool_call(&mut self, out: &mut Vec<ResponsesEvent>, piece: &ToolCallDelta) {
        // Hunyuan repeats the id in every piece; OpenAI sends it once. A piece with another id
        // at the same index is another call.
        let piece_id = piece.id.as_deref().filter(|id| !id.is_empty());
        let same = matches!(&self.open, Some(Open::Call { index, call_id, .. })
            if *index == piece.index && piece_id.is_none_or(|id| id == call_id));
        if !same {
            let late = self
                .closed_calls
                .iter()
                .any(|(index, id)| *index == piece.index && piece_id.is_none_or(|p| p == id));
            if late {
                tracing::debug!(
                    index = piece.index,
                    "a piece of a tool call already closed was dropped"
                );
                return;
            }
            self.close(out, ItemStatus::Completed);
            self.flush_text(out, ItemStatus::Completed);
            let call_id = piece_id
                .map(str::to_owned)
                .unwrap_or_else(|| super::new_id("call"));
            self.open = Some(Open::Call {
                index: piece.index,
                call_id,
                sent: String::new(),
                arguments: String::new(),
                announced: false,
            });
        }
        let function = piece.function.as_ref();
        let name = function
            .and_then(|f| f.name.as_deref())
            .filter(|n| !n.is_empty());
        let args = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty());
        let Some(Open::Call {
            sent,
            arguments,
            announced,
            ..
        }) = &mut self.open
        else {
            return;
        };
        let was_announced = *announced;
        if let Some(args) = args {
            arguments.push_str(args);
        }
        if !was_announced {
            if let Some(name) = name {
                sent.push_str(name);
                self.announce(out);
                // Everything received so far, names-first order restored.
                let buffered = match &self.open {
                    Some(Open::Call { arguments, .. }) => arguments.clone(),
                    _ => String::new(),
                };
                if !buffered.is_empty() {
                    self.arguments_delta(out, &buffered);
                }
            }
        } else if let Some(args) = args {
            self.arguments_delta(out, args);
        }
    }

    /// `output_item.added` for the open call.
    fn announce(&mut self, out: &mut Vec<ResponsesEvent>) {
        let Some(Open::Call {
            call_id,
            sent,
            announced,
            ..
        }) = &mut self.open
        else {
            return;
        };
        *announced = true;
        let (call_id, sent) = (call_id.clone(), sent.clone());
        let index = self.index();
        let item = self
            .ctx
            .function_call_item(index, &call_id, &sent, "", ItemStatus::InProgress);
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
    }

    fn arguments_delta(&mut self, out: &mut Vec<ResponsesEvent>, delta: &str) {
        let (index, item_id) = (self.index(), self.item_id("fc"));
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": item_id, "output_index": index, "delta": delta}),
        );
    }

    /// Closes the open item with its `.done` events and `output_item.done`.
    fn close(&mut self, out: &mut Vec<ResponsesEvent>, status: ItemStatus) {
        if let Some(Open::Call {
            announced: false, ..
        }) = &self.open
        {
            self.announce(out);
        }
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.index();
        let item = self.snapshot(&open, status);
        let item_id = item.id().to_owned();
        match &open {
            Open::Message { text } => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                           "text": text, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
            }
            Open::Reasoning { text } => {
                if self.ctx.reasoning_summary {
                    self.emit(
                        out,
                        "response.reasoning_summary_text.done",
                        json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                               "text": text}),
                    );
                    self.emit(
                        out,
                        "response.reasoning_summary_part.done",
                        json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                               "part": {"type": "summary_text", "text": text}}),
                    );
                } else {
                    self.emit(
                        out,
                        "response.reasoning_text.done",
                        json!({"item_id": item_id, "output_index": index, "content_index": 0,
                               "text": text}),
                    );
                }
            }
            Open::Call {
                index: chat_index,
                call_id,
                arguments,
                ..
            } => {
                self.closed_calls.push((*chat_index, call_id.clone()));
                let name = match &item {
                    OutputItem::FunctionCall { name, .. } => name.clone(),
                    _ => String::new(),
                };
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": index, "name": name,
                           "arguments": arguments}),
                );
            }
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }
}

/// The chat stream's events rewritten by [`TranslateBody`](crate::ingress::TranslateBody):
/// every method writes the events [`ResponsesStream`]'s own methods return, encoded; a
/// keep-alive writes [`KEEPALIVE`]. An inner error event's `type`/`code` choose the failure
/// code (`rate_limit_*` → `rate_limit_exceeded`, `invalid_request_error` → `invalid_prompt`,
/// else `server_error`).
impl crate::ingress::StreamTranslator for ResponsesStream {
    fn start(&mut self, out: &mut Vec<Bytes>) {
        out.extend(self.on_start().iter().map(ResponsesEvent::encode));
    }

    fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<Bytes>) {
        out.extend(
            ResponsesStream::on_chunk(self, &chunk)
                .iter()
                .map(ResponsesEvent::encode),
        );
    }

    fn on_keepalive(&mut self, out: &mut Vec<Bytes>) {
        if !self.is_finished() {
            out.push(Bytes::from_static(KEEPALIVE));
        }
    }

    fn on_done(&mut self, out: &mut Vec<Bytes>) {
        out.extend(
            ResponsesStream::on_done(self)
                .iter()
                .map(ResponsesEvent::encode),
        );
    }

    fn on_error(&mut self, error: &Value, out: &mut Vec<Bytes>) {
        let kind = error["type"].as_str().unwrap_or("server_error");
        let code = error["code"].as_str().unwrap_or("");
        let status = if kind == "rate_limit_error" || code.starts_with("rate_limit") {
            429
        } else if kind == "invalid_request_error" {
            400
        } else {
            502
        };
        let message = error["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or("the upstream failed while answering");
        let events = ResponsesStream::on_error(self, status, kind, message);
        out.extend(events.iter().map(ResponsesEvent::encode));
    }

    fn on_truncated(&mut self, out: &mut Vec<Bytes>) {
        out.extend(
            ResponsesStream::on_truncated(self)
                .iter()
                .map(ResponsesEvent::encode),
        );
    }
}

#[cfg(test)]
mod tests;
