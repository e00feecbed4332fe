//! The image cascade: lets tool-calling text models "see" images.
//!
//! Hunyuan's text models call tools but refuse images; its vision models take images but no
//! tools (R8). [`CascadeLayer`] bridges the two, in the request path:
//!
//! 1. **Find** every image part (`image_url` with an `http(s)` or `data:image/…;base64,` URL)
//!    in every message: earlier turns and tool results too.
//! 2. **Check** `data:` URLs without fetching anything: valid base64, an `image/*` type, at
//!    most `max_image_bytes` decoded; at most `max_images` per request. A bad one is a 400
//!    naming `messages[i].content[j]`. `http(s)` URLs are never fetched by the proxy: they go
//!    to the vision model as they are (no SSRF surface).
//! 3. **Describe** each *unique* image once, `concurrency` at a time, through a describer
//!    service (the proxy's: [`Describer`] behind a [`cache`](crate::cache) keyed by
//!    SHA-256 of the image bytes or URL, the vision model and the prompt version). The prompt
//!    is context-free (it never carries the user's question), so a description is valid for
//!    any request with that image.
//! 4. **Replace** each image part in place with a text part `[Image N: <description>]`,
//!    keeping the message's own text and the order of its parts, and **switch** `model` to
//!    `text_model` (see [`SwitchModel`]). A request that names a vision model and offers no
//!    tools passes through untouched (`pass_through_vision`).
//! 5. **Fail honestly**: when a description cannot be made the request fails with 502 (by
//!    default), or, with `on_failure = "degrade"`, a neutral placeholder stands in and the
//!    response carries `x-hunyuan-proxy-vision: degraded`. The upstream's error text never
//!    enters a prompt or a response, and failures are never cached.
//! 6. **Keep streams alive**: for `stream: true`, when the vision stage takes longer than
//!    `keepalive_after_ms`, the SSE response is committed and `: keep-alive` comments are sent
//!    every `keepalive_interval_secs` until the answer starts; a failure then arrives as one
//!    `data: {"error":…}` event.
//! 7. **Report** a [`VisionReport`](crate::extensions::VisionReport) (images, cache hits and
//!    misses, time in the vision stage) in the request and response extensions
//!    ([`PendingVisionReport`] for a stream committed early).
//!
//! Cost model: one vision call per unique image per cache `ttl`; an agent that resends the same
//! screenshot every turn pays for it once, and concurrent requests with the same new image
//! share one call.
//!
//! The layer alone, with a stub describer:
//!
//! ```
//! use axum::body::Body;
//! use hunyuan_proxy::cascade::{CascadeConfig, CascadeLayer, DescribeRequest, Description};
//! use hunyuan_proxy::chat::ParsedChat;
//! use http::{Request, Response};
//! use std::convert::Infallible;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let describer = service_fn(|_: DescribeRequest| async {
//!     Ok::<_, Infallible>(Description("a red square".into()))
//! });
//! let config = CascadeConfig::default().models("my-vision", "my-text");
//! let cascade = CascadeLayer::new(config, describer).unwrap();
//! let app = cascade.layer(service_fn(|req: Request<Body>| async move {
//!     // The rewritten request travels in the extensions.
//!     let chat = req.extensions().get::<ParsedChat>().unwrap();
//!     let text = serde_json::to_string(chat).unwrap();
//!     Ok::<_, Infallible>(Response::new(Body::from(text)))
//! }));
//!
//! let body = serde_json::json!({
//!     "model": "my-vision",
//!     "messages": [{"role": "user", "content": [
//!         {"type": "text", "text": "What is this?"},
//!         {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
//!     ]}],
//!     "tools": [{"type": "function", "function": {"name": "paint"}}]
//! });
//! let request = Request::post("/v1/chat/completions")
//!     .header("content-type", "application/json")
//!     .body(Body::from(body.to_string()))
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! let sent: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
//! assert_eq!(sent["model"], "my-text");
//! assert_eq!(sent["messages"][0]["content"][0]["text"], "What is this?");
//! assert_eq!(sent["messages"][0]["content"][1]["text"], "[Image 1: a red square]");
//! # }
//! ```

mod config;
mod describer;
mod image;
mod layer;
mod service;
mod stream;

pub use config::{
    CascadeConfig, OnVisionFailure, SwitchModel, VisionModels, DEFAULT_PROMPT, TOKENHUB_IMAGE_TYPES,
};
pub use describer::{DescribeError, DescribeRequest, Describer, Description, DescriptionAnswer};
pub use layer::{CachedDescriber, CascadeLayer};
pub use service::{Cascade, PendingVisionReport, VISION_HEADER};

#[cfg(test)]
mod tests;
