//! The typed OpenAI chat model: requests, messages, answers, stream chunks, the legacy
//! completions shape, server-sent events, and body parsing with field-naming errors.
//!
//! Fields the proxy acts on are typed; every other field is preserved in an `extra` map
//! (serde `flatten`) and forwarded unchanged.
//!
//! [`ParseLayer`] is the first layer of the chat stack: it reads the body once (counting bytes
//! against a limit), checks it is JSON, parses it into a [`ChatRequest`], kept as a [`ParsedChat`] in the request
//! extensions for every later layer, and answers bad input itself with OpenAI's envelope.
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use hunyuan_proxy::chat::{ParseLayer, ParsedChat};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ParseLayer::new(64 * 1024).layer(service_fn(|req: Request<Body>| async move {
//!     // Parsed once, before this service.
//!     let chat = req.extensions().get::<ParsedChat>().unwrap();
//!     let reply = format!("{} message(s) for {}", chat.messages.len(), chat.model);
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from(reply)))
//! }));
//! let post = |body: &'static str| {
//!     Request::post("/v1/chat/completions")
//!         .header("content-type", "application/json")
//!         .body(Body::from(body))
//!         .unwrap()
//! };
//!
//! let good = post(r#"{"model": "hunyuan-turbos-latest",
//!                    "messages": [{"role": "user", "content": "Hi"}]}"#);
//! let response = service.clone().oneshot(good).await.unwrap();
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(&body[..], b"1 message(s) for hunyuan-turbos-latest");
//!
//! // Bad input never reaches the inner service: a 400 that names the field.
//! let bad = post(r#"{"model": "m", "messages": [{"role": "robot", "content": "Hi"}]}"#);
//! let response = service.oneshot(bad).await.unwrap();
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
//! let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(envelope["error"]["param"], "messages[0].role");
//! # }
//! ```

pub(crate) mod answer;
mod completion;
mod layer;
pub mod parse;
pub mod redact;
mod request;
mod response;
pub mod sse;

pub use answer::{ChatAnswer, TypedAnswer};
pub use completion::{CompletionRequest, Prompt, TextChoice, TextCompletion};
pub use layer::{Parse, ParseLayer};
pub use parse::{
    ensure_chat, parse_chat, parse_completion, put_chat, take_chat, BodyLimit, ParsedChat,
    DEFAULT_BODY_LIMIT,
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
