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
