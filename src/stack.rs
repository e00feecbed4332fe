//! The ready-made chat stack: the layers in their documented order, ending in the upstream.
//!
//! ```text
//! request ─▶ ParseLayer ─▶ [FixLayer] ─▶ [CascadeLayer] ─▶ Upstream ─▶ Hunyuan
//!            │              │             │                 │
//!            │ writes       │ reads/      │ reads/writes    │ reads ChatRequest
//!            │ ChatRequest  │ writes      │ ChatRequest     │ writes (response)
//!            │              │ ChatRequest │                 │ UpstreamTiming,
//!            │              │             │                 │ ResolvedModel
//! ```
//!
//! | position | layer | request extensions | response extensions |
//! |---|---|---|---|
//! | 1 | [`ParseLayer`]: body limit, content type, one parse | writes `ChatRequest` and [`RawChatBody`](crate::chat::RawChatBody) | `ErrorKind` on rejection |
//! | 2 | [`FixLayer`]: message fixing ([`Config::fix_config`]) | reads and writes `ChatRequest`, writes `FixReport`; keeps `RawChatBody` only when no rule fired | writes `FixReport`; rewrites the body (tool-call deltas, stop strings, `note`, usage) |
//! | 3 | [`CascadeLayer`]: images → descriptions, model switch | reads and writes `ChatRequest`; writes `VisionReport`; keeps `RawChatBody` only for a request without images | writes `VisionReport` (or `PendingVisionReport` for a stream committed early), `ErrorKind` on rejection |
//! | end | [`Upstream`] | takes `ChatRequest` and `RawChatBody` | writes [`UpstreamTiming`](crate::upstream::UpstreamTiming), [`ResolvedModel`](crate::upstream::ResolvedModel), `ErrorKind` on failure |
//!
//! The body is parsed once and serialized at most once. A request no layer changed is not
//! serialized at all: the upstream forwards the client's bytes ([`RawChatBody`](crate::chat::RawChatBody)) when they are
//! still in the extensions, still belong to the `ChatRequest` it takes, and no override field
//! had to be stripped. [`take_chat`](crate::chat::take_chat) drops them, so a layer of your own
//! that takes the request to change it is always seen upstream; a layer that edits the
//! `ChatRequest` in place (`get_mut`) must remove `RawChatBody` itself.
//!
//! Metrics and health are app-wide layers applied to the whole router (see
//! [`server`](crate::server)), not part of this chat stack. Every layer also works alone: a
//! layer that finds no `ChatRequest` in the extensions parses the body itself.
//!
//! To build a stack of your own (another order, a layer left out, a layer of yours inserted,
//! your own describer), put the same layers into a `ServiceBuilder`: `examples/custom_stack.rs`
//! does all four. `examples/embed_axum.rs` mounts this stack in an existing axum app.

use crate::cache::CacheHandle;
use crate::cascade::CascadeLayer;
use crate::chat::ParseLayer;
use crate::config::Config;
use crate::fix::FixLayer;
use crate::upstream::Upstream;
use axum::body::Body;
use http::{Request, Response};
use std::convert::Infallible;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

/// The type-erased chat stack: drops into `axum::Router::route_service`.
pub type ChatService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Builds the ready-made chat stack for `config`, ending in `upstream`.
///
/// # Panics
/// When `config` does not pass [`Config::validate`].
pub fn chat_stack(config: &Config, upstream: Upstream) -> ChatService {
    ChatStack::new(config, upstream).service
}

/// The ready-made chat stack and the handles the server's admin routes need.
#[derive(Clone, Debug)]
pub struct ChatStack {
    /// The type-erased stack.
    pub service: ChatService,
    /// The image-description cache (for `/cache/stats`, `DELETE /cache` and `/status`).
    pub description_cache: CacheHandle,
}

impl ChatStack {
    /// Builds the stack for `config`, ending in `upstream`.
    ///
    /// # Panics
    /// When `config` does not pass [`Config::validate`].
    pub fn new(config: &Config, upstream: Upstream) -> Self {
        let (cascade, description_cache) = CascadeLayer::with_cache(
            config.cascade_config(),
            upstream.clone(),
            config.cache_max_size,
            config.cache_ttl(),
            config.enable_cache_logging,
        )
        .expect("the config was validated");
        let fix = FixLayer::new(config.fix_config()).expect("the config was validated");
        let service = ServiceBuilder::new()
            // 1
            .layer(ParseLayer::new(config.request_body_limit).log_bodies(config.log_request_bodies))
            // 2
            .layer(fix)
            // 3
            .layer(cascade)
            .service(upstream);
        ChatStack {
            service: BoxCloneSyncService::new(service),
            description_cache,
        }
    }
}
