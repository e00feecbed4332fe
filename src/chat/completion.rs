//! The legacy `POST /v1/completions` request and answer, and their conversion to and from
//! chat. Hunyuan has no completions endpoint, so the proxy turns `prompt` into a one-message
//! chat and the chat answer back into a `text_completion`.

use crate::chat::{ChatChunk, ChatCompletion, ChatRequest, Message, Role, Stop};
use crate::chat::{StreamOptions, Usage};
use crate::error::ProxyError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A legacy completions request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct CompletionRequest {
    /// The model name.
    #[serde(default)]
    pub model: String,
    /// The prompt: one string or a list (only one element is supported).
    pub prompt: Prompt,
    /// Whether the answer is streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Every other field, forwarded to the chat request.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A completions prompt.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    One(String),
    /// A batch of prompts.
    Many(Vec<String>),
}

impl Default for Prompt {
    fn default() -> Self {
        Prompt::One(String::new())
    }
}

/// Completions-only fields a chat model cannot honour; a request that uses them is refused
/// rather than silently answered differently.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "echo",
        "`echo` is not supported: the upstream is a chat model",
    ),
    (
        "suffix",
        "`suffix` is not supported: the upstream is a chat model",
    ),
    ("best_of", "`best_of` is not supported"),
];

impl CompletionRequest {
    /// The chat request that asks the same thing.
    pub fn into_chat(self) -> Result<ChatRequest, ProxyError> {
        let prompt = match self.prompt {
            Prompt::One(p) => p,
            Prompt::Many(mut many) if many.len() == 1 => many.remove(0),
            Prompt::Many(_) => {
                return Err(ProxyError::invalid(
                    "only one prompt per request is supported",
                    "prompt",
                ))
            }
        };
        let mut extra = self.extra;
        for (field, message) in UNSUPPORTED {
            match extra.get(*field) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
                Some(_) => return Err(ProxyError::invalid(*message, *field)),
            }
            extra.remove(*field);
        }
        Ok(ChatRequest {
            model: self.model,
            messages: vec![Message::text(Role::User, prompt)],
            stream: self.stream,
            stream_options: self.stream_options,
            tools: None,
            stop: self.stop,
            extra,
        })
    }
}

/// A legacy `text_completion` answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TextCompletion {
    /// The completion's id.
    pub id: String,
    /// `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model.
    pub model: String,
    /// The choices.
    pub choices: Vec<TextChoice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a `text_completion`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TextChoice {
    /// The text.
    pub text: String,
    /// Position.
    pub index: u32,
    /// Always `null`.
    pub logprobs: Option<Value>,
    /// Why the model stopped.
    pub finish_reason: Option<String>,
}

impl From<ChatCompletion> for TextCompletion {
    fn from(chat: ChatCompletion) -> Self {
        TextCompletion {
            id: chat.id,
            object: "text_completion".to_owned(),
            created: chat.created,
            model: chat.model,
            choices: chat
                .choices
                .into_iter()
                .map(|c| TextChoice {
                    text: c.message.content.unwrap_or_default(),
                    index: c.index,
                    logprobs: None,
                    finish_reason: c.finish_reason,
                })
                .collect(),
            usage: chat.usage,
        }
    }
}

impl From<ChatChunk> for TextCompletion {
    fn from(chunk: ChatChunk) -> Self {
        TextCompletion {
            id: chunk.id,
            object: "text_completion".to_owned(),
            created: chunk.created,
            model: chunk.model,
            choices: chunk
                .choices
                .into_iter()
                .map(|c| TextChoice {
                    text: c.delta.content.unwrap_or_default(),
                    index: c.index,
                    logprobs: None,
                    finish_reason: c.finish_reason,
                })
                .collect(),
            usage: chunk.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_becomes_one_user_message() {
        let req: CompletionRequest = serde_json::from_value(json!({
            "model": "m", "prompt": ["Say hi"], "max_tokens": 5, "echo": false
        }))
        .unwrap();
        let chat = req.into_chat().unwrap();
        assert_eq!(chat.messages, vec![Message::text(Role::User, "Say hi")]);
        assert_eq!(chat.extra["max_tokens"], json!(5));
        assert!(!chat.extra.contains_key("echo"));
    }

    #[test]
    fn unsupported_fields_are_refused() {
        let req: CompletionRequest =
            serde_json::from_value(json!({"model": "m", "prompt": "x", "echo": true})).unwrap();
        assert_eq!(req.into_chat().unwrap_err().param(), Some("echo"));
        let req: CompletionRequest =
            serde_json::from_value(json!({"model": "m", "prompt": ["a", "b"]})).unwrap();
        assert_eq!(req.into_chat().unwrap_err().param(), Some("prompt"));
    }
}
