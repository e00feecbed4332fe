//! [`MessagesStream`]: the chat stream in the event grammar Anthropic clients parse.
//!
//! `message_start` once (usage present, input tokens estimated until the upstream says),
//! then per content block `content_block_start` → deltas → `content_block_stop` (blocks
//! never interleave; no empty delta is sent), then `message_delta` (stop reason, output
//! tokens) and `message_stop`. Keep-alives become `ping`; a failure after the start is an
//! `event: error`. OpenAI's `[DONE]` is never passed on.

use super::error::{error_event, sse_event};
use super::response::{message_id, signature, stop_reason, AnswerPlan};
use crate::chat::ChatChunk;
use crate::ingress::StreamTranslator;
use bytes::Bytes;
use serde_json::{json, Value};

/// The block being written.
#[derive(Debug, Clone, PartialEq)]
enum Open {
    None,
    Thinking {
        text: String,
    },
    Text,
    /// The chat tool call (`index`) this block carries, and whether any argument was sent.
    Tool {
        call: u32,
        sent: bool,
    },
}

/// Translates chat chunks into Anthropic's stream events (a [`StreamTranslator`]).
#[derive(Debug)]
pub struct MessagesStream {
    plan: AnswerPlan,
    id: String,
    open: Open,
    /// The next block's index.
    next_block: u32,
    /// Tool calls already given a block (their chat `index`).
    tools_seen: Vec<u32>,
    finish_reason: Option<String>,
    output_tokens: Option<u64>,
    input_tokens: Option<u64>,
    /// Characters of the answer, for an output estimate when no usage comes.
    chars: usize,
    /// The text of the current text block (for a stop sequence the upstream kept).
    text_tail: String,
}

impl MessagesStream {
    /// A translator for an answer to a request described by `plan`.
    pub fn new(plan: AnswerPlan) -> Self {
        MessagesStream {
            plan,
            id: message_id(),
            open: Open::None,
            next_block: 0,
            tools_seen: Vec::new(),
            finish_reason: None,
            output_tokens: None,
            input_tokens: None,
            chars: 0,
            text_tail: String::new(),
        }
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        let index = self.next_block.saturating_sub(1);
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Thinking { text } => out.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "signature_delta", "signature": signature(&text)}}),
            )),
            Open::Tool { sent: false, .. } => out.push(delta(
                index,
                json!({"type": "input_json_delta", "partial_json": "{}"}),
            )),
            Open::Text | Open::Tool { .. } => {}
        }
        out.push(sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }

    fn open(&mut self, open: Open, block: Value, out: &mut Vec<Bytes>) {
        self.close(out);
        out.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next_block, "content_block": block}),
        ));
        self.next_block += 1;
        self.open = open;
    }

    fn current(&self) -> u32 {
        self.next_block - 1
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if !matches!(self.open, Open::Thinking { .. }) {
            self.open(
                Open::Thinking {
                    text: String::new(),
                },
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
        }
        if let Open::Thinking { text: all } = &mut self.open {
            all.push_str(text);
        }
        out.push(delta(
            self.current(),
            json!({"type": "thinking_delta", "thinking": text}),
        ));
    }

    fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if self.open != Open::Text {
            self.open(Open::Text, json!({"type": "text", "text": ""}), out);
            self.text_tail.clear();
        }
        // Only the end matters for a stop sequence; keep a bounded tail.
        self.text_tail.push_str(text);
        let keep = self
            .plan
            .stop_sequences
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        if self.text_tail.len() > keep * 2 + 64 {
            let mut cut = self.text_tail.len() - keep - 32;
            while !self.text_tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.text_tail.drain(..cut);
        }
        out.push(delta(
            self.current(),
            json!({"type": "text_delta", "text": text}),
        ));
    }

    fn tool(
        &mut self,
        call: u32,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
        out: &mut Vec<Bytes>,
    ) {
        let is_open = matches!(self.open, Open::Tool { call: c, .. } if c == call);
        if !is_open {
            if self.tools_seen.contains(&call) {
                // A late piece of a call whose block is closed: blocks cannot reopen.
                tracing::debug!("a late tool-call piece after its block closed; skipped");
                return;
            }
            self.tools_seen.push(call);
            let id = id
                .filter(|i| !i.is_empty())
                .map_or_else(|| format!("toolu_{}_{call}", &self.id[4..]), str::to_owned);
            self.open(
                Open::Tool { call, sent: false },
                json!({"type": "tool_use", "id": id, "name": name.unwrap_or_default(), "input": {}}),
                out,
            );
        }
        if args.is_empty() {
            return;
        }
        if let Open::Tool { sent, .. } = &mut self.open {
            *sent = true;
        }
        out.push(delta(
            self.current(),
            json!({"type": "input_json_delta", "partial_json": args}),
        ));
    }
}

fn delta(index: u32, delta: Value) -> Bytes {
    sse_event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

impl StreamTranslator for MessagesStream {
    fn start(&mut self, out: &mut Vec<Bytes>) {
        out.push(sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant",
                "model": self.plan.client_model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.plan.input_estimate, "output_tokens": 1,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ));
    }

    fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<Bytes>) {
        if let Some(usage) = chunk.usage {
            self.output_tokens = Some(usage.completion_tokens);
            if usage.prompt_tokens > 0 {
                self.input_tokens = Some(usage.prompt_tokens);
            }
        }
        // One answer: only the first choice is shown.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let d = choice.delta;
            if let Some(Value::String(reasoning)) = d.extra.get("reasoning_content") {
                if !reasoning.is_empty() {
                    self.chars += reasoning.len();
                    if self.plan.thinking {
                        self.thinking(reasoning, out);
                    }
                }
            }
            if let Some(text) = d.content.as_deref().filter(|t| !t.is_empty()) {
                self.chars += text.len();
                self.text(text, out);
            }
            for call in d.tool_calls.unwrap_or_default() {
                let (name, args) = match &call.function {
                    Some(f) => (f.name.as_deref(), f.arguments.as_deref().unwrap_or("")),
                    None => (None, ""),
                };
                self.chars += args.len();
                self.tool(call.index, call.id.as_deref(), name, args, out);
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
    }

    fn on_keepalive(&mut self, out: &mut Vec<Bytes>) {
        out.push(sse_event("ping", &json!({"type": "ping"})));
    }

    fn on_done(&mut self, out: &mut Vec<Bytes>) {
        let mut tail = std::mem::take(&mut self.text_tail);
        let stop_sequence = if self.open == Open::Text {
            self.plan
                .matched_stop(self.finish_reason.as_deref(), &mut tail)
        } else {
            None
        };
        self.close(out);
        let reason = if stop_sequence.is_some() {
            "stop_sequence"
        } else {
            stop_reason(self.finish_reason.as_deref())
        };
        let output = self
            .output_tokens
            .unwrap_or_else(|| self.chars.div_ceil(4) as u64);
        let mut usage = json!({"output_tokens": output});
        if let Some(input) = self.input_tokens {
            usage["input_tokens"] = input.into();
        }
        out.push(sse_event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": stop_sequence},
                "usage": usage}),
        ));
        out.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    }

    fn on_error(&mut self, error: &Value, out: &mut Vec<Bytes>) {
        let message = error["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or("the upstream failed");
        // Capacity trouble (a full queue, a rate limit, no upstream) is worth a retry.
        let busy = matches!(
            error["code"].as_str(),
            Some("rate_limit_exceeded" | "service_unavailable" | "upstream_timeout")
        ) || matches!(
            error["type"].as_str(),
            Some("rate_limit_error" | "overloaded_error")
        );
        let kind = if busy {
            "overloaded_error"
        } else {
            "api_error"
        };
        out.push(error_event(kind, message));
    }

    fn on_truncated(&mut self, out: &mut Vec<Bytes>) {
        out.push(error_event(
            "overloaded_error",
            "the upstream stream ended before the answer was complete",
        ));
    }
}
