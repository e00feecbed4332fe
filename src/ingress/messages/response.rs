//! The chat answer translated to a Messages answer: [`from_completion`] and the
//! shared pieces of the stream translation (ids, stop reasons, signatures).

use crate::chat::ChatCompletion;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Anthropic's `stop_reason` for a chat `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("sensitive") | Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// A message id: `msg_` and 24 hex digits, unique per process and time.
pub fn message_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(nanos.to_le_bytes())
        .chain_update(n.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The `signature` of a thinking block. Hunyuan signs nothing; clients only need a non-empty
/// opaque string to send back, and it is never checked (the history's thinking is dropped or
/// passed on as text).
pub fn signature(thinking: &str) -> String {
    let digest = Sha256::digest(thinking.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("hunyuan-proxy:{hex}")
}

/// A tool call's `input`: its arguments parsed to an object, `{}` when they do not parse (or
/// are not an object).
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

/// What the answer needs from the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerPlan {
    /// The model the client asked for, named in the answer.
    pub client_model: String,
    /// Whether reasoning is shown as `thinking` blocks.
    pub thinking: bool,
    /// The client's stop sequences.
    pub stop_sequences: Vec<String>,
    /// The estimated input tokens, used when the upstream reports none.
    pub input_estimate: u64,
}

impl AnswerPlan {
    /// `stop_sequence` for an answer that ended with `text`: the stop sequence it ends with,
    /// cut from `text`. Hunyuan keeps the matched string; when a layer before already cut it,
    /// the match cannot be seen and the answer says `end_turn`.
    pub fn matched_stop(&self, finish_reason: Option<&str>, text: &mut String) -> Option<String> {
        if finish_reason != Some("stop") {
            return None;
        }
        let found = self
            .stop_sequences
            .iter()
            .filter(|s| !s.is_empty())
            .find(|s| text.ends_with(s.as_str()))?
            .clone();
        text.truncate(text.len() - found.len());
        Some(found)
    }
}

/// A `chat.completion` as a Messages answer.
pub fn from_completion(completion: ChatCompletion, plan: &AnswerPlan) -> Value {
    serde_json::to_value(answer(completion, plan)).expect("a Messages answer serializes")
}

/// A `chat.completion` as a Messages answer's bytes, serialized straight from the answer.
pub(crate) fn from_completion_bytes(completion: ChatCompletion, plan: &AnswerPlan) -> Vec<u8> {
    serde_json::to_vec(&answer(completion, plan)).expect("a Messages answer serializes")
}

/// A Messages answer. The fields are in the order a `serde_json::Value` object keeps them
/// (sorted), so the bytes are those of [`from_completion`]'s value.
#[derive(Serialize)]
struct Answer<'a> {
    content: Vec<Block>,
    id: String,
    model: &'a str,
    role: &'static str,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    usage: AnswerUsage,
}

/// A content block of an answer (fields sorted, as in [`Answer`]).
#[derive(Serialize)]
#[serde(untagged)]
enum Block {
    Thinking {
        signature: String,
        thinking: String,
        #[serde(rename = "type")]
        kind: &'static str,
    },
    Text {
        text: String,
        #[serde(rename = "type")]
        kind: &'static str,
    },
    ToolUse {
        id: String,
        input: Value,
        name: String,
        #[serde(rename = "type")]
        kind: &'static str,
    },
}

/// An answer's `usage` (fields sorted, as in [`Answer`]).
#[derive(Serialize)]
struct AnswerUsage {
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    input_tokens: u64,
    output_tokens: u64,
}

fn answer(completion: ChatCompletion, plan: &AnswerPlan) -> Answer<'_> {
    let choice = completion.choices.into_iter().next().unwrap_or_default();
    let finish = choice.finish_reason.as_deref();
    let mut message = choice.message;
    let mut content = Vec::new();
    if plan.thinking {
        if let Some(Value::String(reasoning)) = message.extra.remove("reasoning_content") {
            if !reasoning.is_empty() {
                content.push(Block::Thinking {
                    signature: signature(&reasoning),
                    thinking: reasoning,
                    kind: "thinking",
                });
            }
        }
    }
    let mut text = message.content.unwrap_or_default();
    let stop_sequence = plan.matched_stop(finish, &mut text);
    if !text.is_empty() {
        content.push(Block::Text { text, kind: "text" });
    }
    for call in message.tool_calls.unwrap_or_default() {
        content.push(Block::ToolUse {
            input: tool_input(&call.function.arguments),
            id: call.id,
            name: call.function.name,
            kind: "tool_use",
        });
    }
    let reason = if stop_sequence.is_some() {
        "stop_sequence"
    } else {
        stop_reason(finish)
    };
    let usage = completion.usage.unwrap_or_default();
    let input = if usage.prompt_tokens > 0 {
        usage.prompt_tokens
    } else {
        plan.input_estimate
    };
    Answer {
        content,
        id: if completion.id.is_empty() {
            message_id()
        } else {
            format!("msg_{}", completion.id)
        },
        model: &plan.client_model,
        role: "assistant",
        stop_reason: reason,
        stop_sequence,
        kind: "message",
        usage: AnswerUsage {
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            input_tokens: input,
            output_tokens: usage.completion_tokens,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completion(message: Value, finish: &str) -> ChatCompletion {
        serde_json::from_value(json!({"id": "abc", "choices": [{"index": 0,
            "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}))
        .unwrap()
    }

    fn plan(thinking: bool) -> AnswerPlan {
        AnswerPlan {
            client_model: "claude-sonnet-4-5".into(),
            thinking,
            stop_sequences: vec!["END".into()],
            input_estimate: 3,
        }
    }

    #[test]
    fn text_reasoning_and_tool_calls_become_blocks_in_order() {
        let answer = from_completion(
            completion(
                json!({"role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}}]}),
                "tool_calls",
            ),
            &plan(true),
        );
        assert_eq!(answer["id"], "msg_abc");
        assert_eq!(answer["model"], "claude-sonnet-4-5");
        assert_eq!(answer["stop_reason"], "tool_use");
        let content = answer["content"].as_array().unwrap();
        assert_eq!(content[0]["type"], "thinking");
        assert_eq!(content[0]["thinking"], "hmm");
        assert!(content[0]["signature"].as_str().unwrap().len() > 10);
        assert_eq!(content[1], json!({"type": "text", "text": "Let me look."}));
        assert_eq!(
            content[2],
            json!({"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a"}})
        );
        assert_eq!(answer["usage"]["input_tokens"], 12);
        assert_eq!(answer["usage"]["output_tokens"], 5);
        assert_eq!(answer["usage"]["cache_read_input_tokens"], 0);
    }

    #[test]
    fn the_bytes_are_those_of_the_value() {
        let answers = [
            json!({"role": "assistant", "content": "Let me look. END", "reasoning_content": "h\"m",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "Read", "arguments": "{\"z\":1,\"path\":\"a\"}"}}]}),
            json!({"role": "assistant", "content": null}),
        ];
        for message in answers {
            for thinking in [true, false] {
                let c = completion(message.clone(), "stop");
                let value = from_completion(c.clone(), &plan(thinking));
                let bytes = from_completion_bytes(c, &plan(thinking));
                assert_eq!(String::from_utf8(bytes).unwrap(), value.to_string());
            }
        }
    }

    #[test]
    fn reasoning_is_hidden_unless_thinking_was_asked_for() {
        let answer = from_completion(
            completion(
                json!({"role": "assistant", "content": "hi", "reasoning_content": "hmm"}),
                "stop",
            ),
            &plan(false),
        );
        assert_eq!(answer["content"], json!([{"type": "text", "text": "hi"}]));
        assert_eq!(answer["stop_reason"], "end_turn");
        assert_eq!(answer["stop_sequence"], Value::Null);
    }

    #[test]
    fn unparsable_arguments_give_an_empty_input() {
        let answer = from_completion(
            completion(
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c",
                "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}),
                "tool_calls",
            ),
            &plan(false),
        );
        assert_eq!(answer["content"][0]["input"], json!({}));
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        assert_eq!(stop_reason(Some("stop")), "end_turn");
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
        assert_eq!(stop_reason(Some("sensitive")), "refusal");
        assert_eq!(stop_reason(None), "end_turn");
    }

    #[test]
    fn a_kept_stop_sequence_is_cut_and_named() {
        let answer = from_completion(
            completion(
                json!({"role": "assistant", "content": "one two END"}),
                "stop",
            ),
            &plan(false),
        );
        assert_eq!(answer["content"][0]["text"], "one two ");
        assert_eq!(answer["stop_reason"], "stop_sequence");
        assert_eq!(answer["stop_sequence"], "END");
    }

    #[test]
    fn missing_usage_uses_the_estimate() {
        let mut c = completion(json!({"role": "assistant", "content": "x"}), "stop");
        c.usage = None;
        let answer = from_completion(c, &plan(false));
        assert_eq!(answer["usage"]["input_tokens"], 3);
    }
}
