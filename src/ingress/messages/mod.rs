//! The Anthropic Messages API (`POST /v1/messages`) in front of the chat stack, so Claude Code
//! and the Anthropic SDKs can use Hunyuan.
//!
//! [`MessagesLayer`] wraps any chat service (the ready-made [`ChatService`](crate::ChatService):
//! ParseLayer → FixLayer → CascadeLayer → Upstream). For each request it:
//!
//! 1. reads the body (the [`BodyLimit`](crate::chat::BodyLimit) in force, or
//!    [`MessagesConfig::body_limit`]) and translates it ([`to_chat`]) to a
//!    [`ChatRequest`](crate::chat::ChatRequest): `system` and `role: "system"` messages → one
//!    system message; `tool_use` → tool calls; `tool_result` → `tool` messages (images in them
//!    stay image parts, so the cascade describes them); images → `image_url` parts; thinking →
//!    `reasoning_content` or dropped ([`MessagesConfig::reasoning_history`]); tools and
//!    `tool_choice` → functions; `model` through [`ModelAliases`](crate::ingress::ModelAliases).
//!    What cannot be carried (`top_k`, built-in tools such as `web_search_*`, deferred tools,
//!    blocks without text) is named in the `x-hunyuan-proxy-dropped` header and counted
//!    ([`Dropped`](crate::ingress::Dropped)); unknown fields are ignored;
//! 2. calls the chat service with the translated request in its extensions, at
//!    `/v1/chat/completions`, `Content-Length`, `x-api-key` and `anthropic-*` headers removed;
//! 3. answers in Anthropic's shape: a `message` object, or the event stream Claude Code parses
//!    ([`MessagesStream`], with `ping` while the upstream is silent for
//!    [`MessagesConfig::ping_interval_secs`]), or an error
//!    `{"type":"error","error":{"type","message"}}` ([`AnthropicErrors`]).
//!
//! [`MessagesLayer::count_tokens`] serves `POST /v1/messages/count_tokens` from the same
//! translation and estimate ([`estimate_input_tokens`]), without any upstream call.
//! [`AnthropicErrors`] with a [`DialectErrorsLayer`](crate::ingress::DialectErrorsLayer) puts
//! errors made before the ingress (client auth, rate limits) into the same shape.
//!
//! Extensions: it writes the translated request ([`ParsedChat`](crate::chat::ParsedChat),
//! through [`put_chat`](crate::chat::put_chat)) for the chat stack and
//! [`DialectShaped`](crate::ingress::DialectShaped) on its error answers, passes every other
//! request extension on, and keeps the chat stack's response extensions; the rows of the
//! [contract](crate::extensions) that name [`MessagesLayer`] say the same.
//!
//! Known limit: a matched stop sequence is reported as `stop_sequence` only when the answer
//! still ends with it; the FixLayer (legacy) and TokenHub cut it first, and the answer then
//! says `end_turn`.
//!
//! ```
//! use axum::body::Body;
//! use hunyuan_proxy::ingress::messages::{MessagesConfig, MessagesLayer};
//! use hunyuan_proxy::chat::ParsedChat;
//! use http::{Request, Response};
//! use serde_json::{json, Value};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A stand-in chat service: it sees the translated request and answers in OpenAI's shape.
//! let chat = service_fn(|req: Request<Body>| async move {
//!     let chat = req.extensions().get::<ParsedChat>().unwrap();
//!     let answer = json!({"id": "1", "choices": [{"index": 0, "finish_reason": "stop",
//!         "message": {"role": "assistant",
//!                     "content": format!("{} for {}", chat.messages.len(), chat.model)}}],
//!         "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}});
//!     let mut response = Response::new(Body::from(answer.to_string()));
//!     response.headers_mut().insert("content-type", "application/json".parse()?);
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
//! });
//! let config = MessagesConfig::default().with_alias("claude-*", "hunyuan-2.0-thinking-20251109")?;
//! let messages = MessagesLayer::new(config)?.layer(chat);
//!
//! let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.",
//!     "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]});
//! let request = Request::post("/v1/messages").body(Body::from(body.to_string()))?;
//! let response = messages.oneshot(request).await.unwrap();
//! let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await?;
//! let answer: Value = serde_json::from_slice(&bytes)?;
//! assert_eq!(answer["type"], "message");
//! assert_eq!(answer["model"], "claude-sonnet-4-5");
//! assert_eq!(answer["content"][0]["text"], "2 for hunyuan-2.0-thinking-20251109");
//! assert_eq!(answer["stop_reason"], "end_turn");
//! assert_eq!(answer["usage"]["input_tokens"], 9);
//! # Ok(()) }
//! ```

mod config;
mod error;
mod layer;
mod request;
mod response;
mod service;
mod stream;

pub use config::{MessagesConfig, MessagesConfigError};
pub use error::{error_body, error_event, error_type, AnthropicErrors};
pub use layer::MessagesLayer;
pub use request::{estimate_input_tokens, to_chat, Translated};
pub use response::{from_completion, stop_reason, AnswerPlan};
pub use service::{CountTokens, Messages};
pub use stream::MessagesStream;

/// The dialect's name in metric labels (`hunyuan_proxy_dropped_total{dialect="anthropic"}`).
pub const DIALECT: &str = "anthropic";

#[cfg(test)]
mod tests;
