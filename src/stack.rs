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
//! | 1 | [`ParseLayer`]: body limit, content type, one parse | writes `ChatRequest` | `ErrorKind` on rejection |
//! | 2 | [`FixLayer`]: message fixing ([`Config::fix_config`]) | reads and writes `ChatRequest`, writes `FixReport` | writes `FixReport`; rewrites the body (tool-call deltas, stop strings, `note`, usage) |
//! | 3 | CascadeLayer (images → descriptions, planned) | reads and writes `ChatRequest` | |
//! | end | [`Upstream`] | takes `ChatRequest` | writes [`UpstreamTiming`](crate::upstream::UpstreamTiming), [`ResolvedModel`](crate::upstream::ResolvedModel), `ErrorKind` on failure |
//!
//! Metrics and health are app-wide layers applied to the whole router (see
//! [`server`](crate::server)), not part of this chat stack. Every layer also works alone: a
//! layer that finds no `ChatRequest` in the extensions parses the body itself.

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
///
/// If `config.fix` is not valid; [`Config::validate`] (called by
/// [`Proxy::new`](crate::server::Proxy::new)) checks it.
pub fn chat_stack(config: &Config, upstream: Upstream) -> ChatService {
    let fix = FixLayer::new(config.fix_config()).expect("`fix` config validated");
    let service = ServiceBuilder::new()
        .layer(ParseLayer::new(config.request_body_limit))
        .layer(fix)
        .service(upstream);
    BoxCloneSyncService::new(service)
}
