//! The typed OpenAI chat model: requests, messages, answers, stream chunks, the legacy
//! completions shape, server-sent events, and body parsing with field-naming errors.
//!
//! Fields the proxy acts on are typed; every other field is preserved in an `extra` map
//! (serde `flatten`) and forwarded unchanged.

mod completion;
mod layer;
pub mod parse;
mod request;
mod response;
pub mod sse;

pub use completion::{is_text_only, CompletionRequest, Prompt, TextChoice, TextCompletion};
pub use layer::{Parse, ParseLayer};
pub use parse::{
    parse_chat, parse_completion, take_chat, BodyLimit, RawChatBody, DEFAULT_BODY_LIMIT,
};
pub use request::{
    to_json_bytes, ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message,
    Role, Stop, StreamOptions, Tool, ToolCall, OVERRIDE_FIELDS,
};
pub use response::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, FunctionCallDelta, ResponseMessage,
    ToolCallDelta, Usage,
};
pub use sse::{SseEvent, SseParser};
