//! The OpenAI chat-completions request.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Fields a client could use to redirect or re-key the upstream. They are removed from every
/// request body before it is forwarded.
pub const OVERRIDE_FIELDS: &[&str] = &[
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "organization",
    "extra_headers",
    "custom_llm_provider",
];

/// An OpenAI `POST /v1/chat/completions` request.
///
/// Fields the proxy acts on are typed; every other field is kept in [`extra`](Self::extra) and
/// forwarded unchanged, so a Hunyuan-specific field such as `enable_enhancement` reaches the
/// upstream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChatRequest {
    /// The model name.
    #[serde(default)]
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Whether the answer is streamed as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Every other field, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// Whether the client asked for a streamed answer.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Removes fields that would let a client redirect or re-key the upstream
    /// ([`OVERRIDE_FIELDS`]). Returns how many were removed.
    pub fn strip_override_fields(&mut self) -> usize {
        let before = self.extra.len();
        for field in OVERRIDE_FIELDS {
            self.extra.remove(*field);
        }
        before - self.extra.len()
    }

    /// Whether any message carries an image part.
    pub fn has_images(&self) -> bool {
        self.messages.iter().any(Message::has_images)
    }
}

/// `stream_options` of a chat request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StreamOptions {
    /// Ask for a final chunk carrying `usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other fields, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings as a slice-like iterator.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&String>, &[String]) = match self {
            Stop::One(s) => (Some(s), &[]),
            Stop::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter()).map(String::as_str)
    }
}

/// A message's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// OpenAI's newer name for system instructions.
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role as it is spelled in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said; `None` when absent or `null`.
    #[serde(
        default,
        deserialize_with = "deserialize_content",
        skip_serializing_if = "Option::is_none"
    )]
    pub content: Option<Content>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Every other field (e.g. `reasoning_content`), forwarded unless a fix rule removes it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with text content.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: Some(Content::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Map::new(),
        }
    }

    /// Whether the content carries an image part.
    pub fn has_images(&self) -> bool {
        match &self.content {
            Some(Content::Parts(parts)) => parts.iter().any(|p| p.image_url().is_some()),
            _ => false,
        }
    }

    /// Whether the assistant message carries at least one tool call.
    pub fn has_tool_calls(&self) -> bool {
        self.tool_calls.as_ref().is_some_and(|c| !c.is_empty())
    }
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// Whether the content is empty by Hunyuan's rule R3: `""` or `[]` (whitespace counts as
    /// content).
    pub fn is_empty(&self) -> bool {
        match self {
            Content::Text(s) => s.is_empty(),
            Content::Parts(p) => p.is_empty(),
        }
    }

    /// The text of the content: the string itself, or the text parts joined by newlines.
    pub fn joined_text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => {
                let mut out = String::new();
                for text in parts.iter().filter_map(ContentPart::text) {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(text);
                }
                out
            }
        }
    }
}

fn deserialize_content<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Content>, D::Error> {
    struct ContentVisitor;
    impl<'de> Visitor<'de> for ContentVisitor {
        type Value = Option<Content>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, a list of content parts, or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Content::Text(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Content::Text(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(2));
            while let Some(part) = seq.next_element()? {
                parts.push(part);
            }
            Ok(Some(Content::Parts(parts)))
        }
    }
    d.deserialize_any(ContentVisitor)
}

/// One part of a content list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// A text part.
    Text {
        /// The text.
        text: String,
    },
    /// An image part.
    ImageUrl {
        /// The image reference.
        image_url: ImageUrl,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text_part(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// The text, for a text part.
    pub fn text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text } => Some(text),
            ContentPart::ImageUrl { .. } => None,
        }
    }

    /// The image, for an image part.
    pub fn image_url(&self) -> Option<&ImageUrl> {
        match self {
            ContentPart::ImageUrl { image_url } => Some(image_url),
            ContentPart::Text { .. } => None,
        }
    }
}

/// An image reference: an `http(s)` URL or a `data:` URL.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ImageUrl {
    /// The URL.
    pub url: String,
    /// OpenAI's `detail` hint (`low`, `high`, `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Tool {
    /// Always `function` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
    /// Other fields, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_type() -> String {
    "function".to_owned()
}

/// A function definition offered as a tool.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FunctionDef {
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Other fields (e.g. `strict`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    /// The call's id, answered by a tool message's `tool_call_id`.
    pub id: String,
    /// Always `function` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The called function.
    pub function: FunctionCall,
    /// Other fields, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The function a tool call invokes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments as a JSON string.
    #[serde(default)]
    pub arguments: String,
}

/// Serializes a request into bytes, the one place the upstream path writes JSON.
pub fn to_json_bytes<T: Serialize>(value: &T) -> bytes::Bytes {
    // Serializing our own types cannot fail: maps have string keys and floats come from JSON.
    bytes::Bytes::from(serde_json::to_vec(value).expect("chat types serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = json!({
            "model": "hunyuan-turbos-latest",
            "messages": [{"role": "user", "content": "hi", "x_custom": 1}],
            "enable_enhancement": false,
            "tools": [{"type": "function", "function": {"name": "f", "strict": true}}]
        });
        let req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.extra["enable_enhancement"], json!(false));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn content_accepts_string_parts_and_null() {
        let m: Message =
            serde_json::from_value(json!({"role": "assistant", "content": null})).unwrap();
        assert_eq!(m.content, None);
        let m: Message = serde_json::from_value(json!({"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
        ]}))
        .unwrap();
        assert!(m.has_images());
        assert_eq!(m.content.unwrap().joined_text(), "look");
    }

    #[test]
    fn override_fields_are_stripped() {
        let mut req: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [], "api_base": "http://evil", "base_url": "x", "api_key": "k"
        }))
        .unwrap();
        assert_eq!(req.strip_override_fields(), 3);
        assert!(req.extra.is_empty());
    }
}
