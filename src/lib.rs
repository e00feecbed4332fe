//! # hunyuan-proxy
//!
//! Composable [tower] layers, and a proxy server built from them, that let any OpenAI-style
//! client use Tencent Hunyuan models.
//!
//! - [`chat`]: the typed OpenAI chat model, SSE, body parsing and [`chat::ParseLayer`].
//! - [`fix`]: the [`fix::FixLayer`], which makes conversations acceptable to Hunyuan.
//! - [`upstream`]: the forwarding service every stack ends in.
//! - [`cascade`]: images described by the vision model, for tool-calling text models.
//! - [`cache`]: a generic keyed response cache layer (used for image descriptions).
//! - [`stack`]: the ready-made chat stack and the order of its layers.
//! - [`metrics`]: [`metrics::MetricsLayer`], the in-process monitor and alert rules.
//! - [`health`]: [`health::HealthLayer`] and the component health checks.
//! - [`server`]: the whole proxy as an axum `Router`.
//! - [`config`]: the configuration (TOML, environment, flags).
//! - [`error`]: the one error type and OpenAI's envelope.
//! - [`extensions`]: the typed facts layers leave for each other in request and response
//!   extensions.
//! - [`auth`], [`rate_limit`]: client keys and request-rate limits.
//! - [`responses`]: the OpenAI Responses API translated to and from chat (Codex CLI).
//!
//! ## The default stack
//!
//! What [`Proxy::router`] builds, outermost first. The app-wide layers wrap every route; the
//! chat layers are [`chat_stack`] ([`ChatStack`]), the service mounted at
//! `POST /v1/chat/completions`. Each layer is public and usable alone; which typed extension
//! each one writes and reads is how they talk, so a layer of your own can read them too.
//!
//! ```text
//!  client
//!    │
//!    ▼        app-wide (Proxy::router, or `.layer(...)` on your own axum Router)
//!  MetricsLayer ........ reads (response): ErrorKind, FixReport, VisionReport or
//!    │                     PendingVisionReport, ResolvedModel, UpstreamTiming
//!  CORS, trace, catch-panic (tower-http)
//!  HealthLayer ......... answers GET /health, /health/live, /health/ready; passes the rest on
//!    │
//!    ▼        the /v1 routes only
//!  ClientAuthLayer ..... writes (request): ClientKey
//!  RateLimitLayer ...... reads  (request): ClientKey
//!    │
//!    ▼        chat_stack: the ChatService at /v1/chat/completions
//!  ParseLayer .......... writes (request): ChatRequest;  (response): ErrorKind on bad input
//!  FixLayer ............ reads and writes (request): ChatRequest; writes FixReport (request and
//!    │                     response), ErrorKind on rejection; rewrites the answer event by event
//!  CascadeLayer ........ reads and writes (request): ChatRequest; writes VisionReport (request
//!    │  │                  and response; PendingVisionReport for a stream committed early),
//!    │  │                  ErrorKind on rejection
//!    │  └─ describer: CacheLayer ─▶ Describer ─▶ vision model   (any Service<DescribeRequest>)
//!  Upstream ............ takes (request): ChatRequest; writes (response): ResolvedModel,
//!    │                     UpstreamTiming, ErrorKind on failure
//!    ▼
//!  Hunyuan
//! ```
//!
//! The layers: [`metrics::MetricsLayer`], [`health::HealthLayer`],
//! [`auth::ClientAuthLayer`], [`rate_limit::RateLimitLayer`], [`chat::ParseLayer`],
//! [`fix::FixLayer`], [`cascade::CascadeLayer`] (its describer: [`cache::CacheLayer`] around
//! [`cascade::Describer`]) and [`upstream::Upstream`]. The extensions:
//! [`ChatRequest`](chat::ChatRequest), [`FixReport`](extensions::FixReport),
//! [`VisionReport`](extensions::VisionReport),
//! [`PendingVisionReport`](cascade::PendingVisionReport),
//! [`ResolvedModel`](extensions::ResolvedModel), [`UpstreamTiming`](extensions::UpstreamTiming),
//! [`ErrorKind`](extensions::ErrorKind) and [`ClientKey`](auth::ClientKey); the table in
//! [`extensions`] says the same per type, and [`stack`] gives the chat stack's order.
//!
//! ## Examples
//!
//! In the `examples/` directory of the repository (`examples/README.md` lists them all):
//!
//! - `examples/embed_axum.rs` (`cargo run --example embed_axum`): an existing axum app mounts
//!   the ready-made chat service and wraps itself in the metrics and health layers.
//! - `examples/custom_stack.rs` (`cargo run --example custom_stack`): stacks built by hand with
//!   `ServiceBuilder`, reordered, with the cascade left out, a layer of your own inserted after
//!   the [`fix::FixLayer`], and your own describer in place of the built-in one.
//! - `examples/proxy.rs` (`cargo run --example proxy -- --demo`): the full proxy server.
//! - `examples/observability.rs` (`cargo run --example observability`): metrics, alert rules
//!   and health checks on an app with no proxy in it.
//!
//! The first two run against an embedded mock Hunyuan when `HUNYUAN_API_KEY` is not set (the
//! proxy does with `--demo`), and each of them is run by the integration test of the same name,
//! so they keep working as the crate changes.
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod auth;
pub mod cache;
pub mod cascade;
pub mod chat;
pub mod completions;
pub mod config;
pub mod error;
pub mod extensions;
pub mod fix;
pub mod health;
pub mod metrics;
#[cfg(feature = "mock")]
pub mod mock;
pub mod rate_limit;
pub mod responses;
pub mod server;
pub mod stack;
pub mod upstream;

pub use config::Config;
pub use error::ProxyError;
pub use server::Proxy;
pub use stack::{chat_stack, ChatService, ChatStack};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
