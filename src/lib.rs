//! # hunyuan-proxy
//!
//! Composable [tower] layers, and a proxy server built from them, that let any OpenAI-style
//! client use Tencent Hunyuan models.
//!
//! - [`chat`]: the typed OpenAI chat model, SSE, body parsing and [`chat::ParseLayer`].
//! - [`fix`]: the [`fix::FixLayer`], which makes conversations acceptable to Hunyuan.
//! - [`upstream`]: the forwarding service every stack ends in.
//! - [`cascade`]: images described by the vision model, for models that cannot see them.
//! - [`models`]: model profiles (what each upstream model can do and refuses) and
//!   [`models::ModelsLayer`], which applies them to each chat request.
//! - [`cache`]: a generic keyed response cache layer (used for image descriptions).
//! - [`stack`]: the ready-made chat stack ([`ChatStack::builder`]) and the order of its layers.
//! - [`metrics`]: [`metrics::MetricsLayer`], the in-process monitor and alert rules.
//! - [`health`]: [`health::HealthLayer`] and the component health checks.
//! - [`ingress`]: the client dialects in front of the chat stack: the Anthropic Messages API
//!   ([`ingress::messages`], Claude Code), the OpenAI Responses API ([`ingress::responses`],
//!   Codex CLI), legacy completions ([`ingress::completions`]), and what they share.
//! - [`server`]: the whole proxy as an axum `Router`, and its server loop ([`Proxy::serve`]).
//! - [`config`]: the server's configuration (TOML, environment, flags).
//! - [`secret`], [`preset`]: secrets that never show, and the upstreams known by name.
//! - [`error`]: the one error type and OpenAI's envelope; [`error::InvalidConfig`], the one
//!   shape of a config value that cannot be used.
//! - [`extensions`]: the typed facts layers leave for each other in request and response
//!   extensions.
//! - [`auth`], [`rate_limit`]: client keys and request-rate limits.
//! - [`replica`]: state shared by several replicas through Redis (description cache, rate
//!   limits, the upstream cap, stored responses) and the failure policy when Redis goes away.
//! - [`usage`]: tokens and cost per model and client key, budgets, the request log.
//!
//! ## The default stack
//!
//! [`Proxy::router`] wraps the routes in the app-wide layers (metrics, CORS, tracing, panic
//! catching, health), the client routes in theirs (dialect errors, client keys, usage, the
//! Redis guard, rate limits), mounts each dialect's ingress in front of the chat stack
//! ([`ChatStack`], built with [`ChatStack::builder`]: parse, fix, model profiles, cascade),
//! which ends in [`upstream::Upstream`]. The order, what each layer does and where it lives
//! are pictured once, in the repository's `docs/architecture.md` ("The stack, outermost
//! first"); which layer writes and which reads each request and response extension is the
//! contract in [`extensions`], its only copy.
//!
//! The public layers, each usable alone: [`metrics::MetricsLayer`],
//! [`health::HealthLayer`], [`ingress::DialectErrorsLayer`], [`auth::ClientAuthLayer`],
//! [`usage::UsageLayer`], [`replica::RedisGuardLayer`], [`rate_limit::RateLimitLayer`],
//! [`ingress::messages::MessagesLayer`], [`ingress::responses::ResponsesLayer`],
//! [`chat::ParseLayer`], [`fix::FixLayer`], [`models::ModelsLayer`] (TokenHub presets),
//! [`cascade::CascadeLayer`] (its describer: [`cache::CacheLayer`] around
//! [`cascade::Describer`]) and the service [`upstream::Upstream`]. Each takes its own config
//! ([`fix::FixConfig`], [`cascade::CascadeConfig`], [`cache::CacheConfig`],
//! [`upstream::UpstreamConfig`], [`metrics::MetricsConfig`], [`health::HealthConfig`], …),
//! validated when the layer is built, every one refusing a bad value with the one
//! [`error::InvalidConfig`] shape; the server's [`Config`] composes them (its
//! [`validate`](Config::validate) runs each layer's check), and only the [`config`] and
//! [`server`] modules know it.
//!
//! Request tracing: the router's request span, the upstream attempts, the slot wait and the
//! image descriptions are `tracing` spans named by the OpenTelemetry conventions;
//! [`telemetry`] (feature `otel`) exports them over OTLP.
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
//! - `examples/proxy.rs` (`cargo run --example proxy -- --demo`): the full proxy server, built
//!   from the library (the `hunyuan-proxy` binary is the same server).
//! - `examples/observability.rs` (`cargo run --example observability`): metrics, alert rules
//!   and health checks on an app with no proxy in it.
//!
//! The first two run against an embedded mock Hunyuan when `HUNYUAN_API_KEY` is not set (the
//! proxy does with `--demo`), and each of them is run by the integration test module of the
//! same name (`tests/it/`), so they keep working as the crate changes.
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod auth;
pub mod cache;
pub mod cascade;
pub mod chat;
pub mod config;
pub mod error;
pub mod extensions;
pub mod fix;
pub mod health;
pub mod ingress;
pub mod metrics;
#[cfg(feature = "mock")]
pub mod mock;
pub mod models;
pub mod preset;
pub mod rate_limit;
pub mod replica;
pub mod secret;
pub mod server;
pub mod stack;
pub mod telemetry;
pub mod upstream;
pub mod usage;

/// The former name of [`replica`] (renamed: it means Redis, and matches `docs/replicas.md`).
#[doc(hidden)]
pub use replica as shared;

/// The former path of [`ingress::completions`].
#[doc(hidden)]
pub use ingress::completions;
/// The former path of [`ingress::messages`] (the dialects now live together under [`ingress`]).
#[doc(hidden)]
pub use ingress::messages as anthropic;
/// The former path of [`ingress::responses`].
#[doc(hidden)]
pub use ingress::responses;

pub use config::Config;
pub use error::ProxyError;
pub use server::Proxy;
pub use stack::{ChatService, ChatStack, ChatStackBuilder};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
