//! The OpenAI Responses API (`POST /v1/responses`) translated to and from chat completions,
//! for clients such as Codex CLI that speak only Responses. Hunyuan has no such endpoint.
//!
//! The translation core is pure; [`ResponsesLayer`] mounts it in front of the chat stack (the
//! ready-made [`ChatService`](crate::ChatService)), so the fixer, the image cascade and the
//! upstream serve Responses clients unchanged. For each `POST /v1/responses` the layer reads
//! the body (the [`BodyLimit`](crate::chat::BodyLimit) in force), translates it with
//! [`to_chat`] (the model through [`ResponsesConfig::aliases`]), calls the chat service with
//! the translated request in its extensions ([`ParsedChat`](crate::chat::ParsedChat)) at
//! `/v1/chat/completions`, and answers a response object ([`from_completion`]) or the event
//! stream ([`ResponsesStream`] through [`TranslateBody`](crate::ingress::TranslateBody), with
//! keep-alive comments). What was dropped is named in `x-hunyuan-proxy-dropped` and counted
//! (`hunyuan_proxy_dropped_total{dialect="responses"}`). With `store` (the default) the
//! response is kept for `GET /v1/responses/{id}` ([`StoredResponses`]) and
//! `previous_response_id`. Errors are OpenAI's envelope, as on the chat route; routes not
//! served answer [`Unsupported`].
//!
//! - [`request`]: [`to_chat`], the one reader: a request body read into typed structs and
//!   turned into a [`ChatRequest`](crate::chat::ChatRequest); it names what it could not carry
//!   (the dialects' one [`Dropped`](crate::ingress::Dropped): `tool:<type>`, `item:<type>`,
//!   `part:<type>`, `field:<name>`, `role:<name>`) and keeps the tool names it flattened
//!   ([`ToolNames`]).
//! - [`response`]: the response object and [`from_completion`] for a non-streamed answer.
//! - [`stream`]: [`ResponsesStream`], the state machine from chat chunks to Responses events.
//! - [`tool_names`]: [`ToolNames`], flattened and sanitized function names, reversibly.
//! - [`reasoning`]: [`ReasoningCodec`], the authenticated `encrypted_content` of reasoning.
//! - [`store`]: [`ResponseStore`] and the bounded in-memory [`MemoryResponseStore`], for
//!   `previous_response_id`, `item_reference` and `GET /v1/responses/{id}`.
//! - [`error`]: [`ResponsesError`], OpenAI's envelope for this route.
//!
//! ```
//! use hunyuan_proxy::chat::{ChatChunk, ChatCompletion, Role};
//! use hunyuan_proxy::ingress::responses::{
//!     from_completion, to_chat, MemoryResponseStore, ResponseStore, ResponsesConfig,
//!     ResponsesStream,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let body = serde_json::json!({
//!     "model": "hunyuan-2.0-thinking-20251109",
//!     "input": [
//!         {"type": "message", "role": "developer", "content": "Be brief."},
//!         {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
//!     ],
//!     "tools": [{"type": "web_search"}]
//! });
//! let config = ResponsesConfig::default();
//! let translated = to_chat(body.to_string().as_bytes(), &config, None).await.unwrap();
//! assert_eq!(translated.chat.messages[0].role, Role::System);
//! assert_eq!(translated.dropped.as_slice(), ["tool:web_search"]);
//!
//! let completion: ChatCompletion = serde_json::from_value(serde_json::json!({
//!     "choices": [{"message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]
//! })).unwrap();
//! let response = from_completion(&completion, &translated.context);
//! assert_eq!(response.output_text(), "Hello!");
//!
//! // Streamed, the same answer is a sequence of Responses events.
//! let mut stream = ResponsesStream::new(translated.context.clone());
//! let chunk: ChatChunk = serde_json::from_value(serde_json::json!({
//!     "choices": [{"index": 0, "delta": {"content": "Hello!"}}]
//! })).unwrap();
//! let mut events = stream.on_start();
//! events.extend(stream.on_chunk(&chunk));
//! events.extend(stream.on_done());
//! let kinds: Vec<_> = events.iter().map(|e| e.kind()).collect();
//! assert_eq!(kinds.first(), Some(&"response.created"));
//! assert_eq!(kinds.last(), Some(&"response.completed"));
//! assert!(events[0].encode().starts_with(b"event: response.created\ndata: {"));
//!
//! // Stored, the turn can be continued with `previous_response_id`.
//! let store = MemoryResponseStore::default();
//! store.put(translated.to_stored(response)).await.unwrap();
//! # }
//! ```

mod config;
pub mod error;
mod layer;
pub mod reasoning;
pub mod request;
pub mod response;
mod service;
pub mod store;
pub mod stream;
pub mod tool_names;

pub use config::{ResponsesConfig, ResponsesConfigError};
pub use layer::ResponsesLayer;
pub use service::{Responses, StoredResponses, Unsupported};

/// The dialect's name in metric labels (`hunyuan_proxy_dropped_total{dialect="responses"}`).
pub const DIALECT: &str = "responses";

pub use error::ResponsesError;
pub use reasoning::ReasoningCodec;
pub use request::{to_chat, Translated};
pub use response::{from_completion, OutputItem, ResponseContext, ResponseObject, ResponseStatus};
pub use store::{
    MemoryResponseStore, OwnedStore, ResponseStore, StoreError, StoreLimits, StoredResponse,
};
pub use stream::{ResponsesEvent, ResponsesStream, KEEPALIVE};
pub use tool_names::ToolNames;

/// 32 bytes from the thread's CSPRNG (`rand`'s ChaCha12, seeded from the operating system
/// and reseeded as it goes): unguessable, and no other process or call produces them.
pub(crate) fn random_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut bytes = [0; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A fresh id: `prefix`, `_`, 48 hex digits.
pub(crate) fn new_id(prefix: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 49);
    id.push_str(prefix);
    id.push('_');
    for b in &random_bytes()[..24] {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 0xf)] as char);
    }
    id
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_shaped() {
        let a = new_id("resp");
        let b = new_id("resp");
        assert_ne!(a, b);
        assert!(a.starts_with("resp_") && a.len() == 5 + 48, "{a}");
        assert!(a[5..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
