//! The OpenAI chat-completions response and stream chunk.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A non-streamed `chat.completion` answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChatCompletion {
    /// The completion's id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The choices.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields (Hunyuan's `note`, `system_fingerprint`…).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a non-streamed answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Choice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The answer.
    pub message: ResponseMessage,
    /// Why the model stopped (`stop`, `length`, `tool_calls`, Hunyuan's `sensitive`).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The assistant message of a non-streamed answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ResponseMessage {
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<crate::chat::ToolCall>>,
    /// Other fields (`reasoning_content`…).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both.
    #[serde(default)]
    pub total_tokens: u64,
}

/// One `chat.completion.chunk` of a streamed answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChatChunk {
    /// The completion's id (the same in every chunk).
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answers.
    #[serde(default)]
    pub model: String,
    /// The choices' deltas.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token usage (final chunk, when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice's delta in a stream chunk.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChunkChoice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the last chunk of the choice.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a stream chunk adds to the answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Delta {
    /// The role (OpenAI sends it once; Hunyuan in every chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Added text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Added tool-call pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Other fields (`reasoning_content`…).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A piece of a streamed tool call.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ToolCallDelta {
    /// Which call this piece belongs to.
    #[serde(default)]
    pub index: u32,
    /// The call's id (OpenAI: first piece only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (OpenAI: first piece only).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// The function part of a streamed tool-call piece.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct FunctionCallDelta {
    /// The name (OpenAI: first piece only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}
