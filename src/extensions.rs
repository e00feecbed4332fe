//! Typed facts that travel with a request and its response, so that layers can tell each other
//! what they did without private access (and metrics can count it).
//!
//! | type | written by | into | read by |
//! |---|---|---|---|
//! | [`ChatRequest`](crate::chat::ChatRequest) | [`ParseLayer`](crate::chat::ParseLayer), or an ingress in front of it ([`MessagesLayer`](crate::anthropic::MessagesLayer)) | request | every chat layer, the upstream |
//! | [`DialectShaped`](crate::ingress::DialectShaped) | an ingress's error answers | response | [`DialectErrorsLayer`](crate::ingress::DialectErrorsLayer) (leaves them alone) |
//! | [`RawChatBody`](crate::chat::RawChatBody) | [`ParseLayer`](crate::chat::ParseLayer); dropped by [`take_chat`](crate::chat::take_chat) and by the FixLayer when a rule fired (the built-in layers leave it in place when they change nothing) | request | the upstream (forwards these bytes instead of serializing an unchanged request) |
//! | [`BodyLimit`](crate::chat::BodyLimit) | the server router | request | whoever reads a body |
//! | [`FixReport`] | the FixLayer | request and response | metrics |
//! | [`VisionReport`] | [`CascadeLayer`](crate::cascade::CascadeLayer) | request and response | metrics |
//! | [`PendingVisionReport`](crate::cascade::PendingVisionReport) | the CascadeLayer, for a stream committed before its images were described | response | metrics (read it when the body ends) |
//! | [`UpstreamTiming`] | [`Upstream`](crate::upstream::Upstream) | response | metrics |
//! | [`ResolvedModel`] | [`Upstream`](crate::upstream::Upstream) | response | metrics |
//! | [`ErrorKind`] | every error answer ([`ProxyError`](crate::ProxyError)) | response | metrics |
//! | [`ClientKey`](crate::auth::ClientKey) | [`ClientAuthLayer`](crate::auth::ClientAuthLayer) | request | [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) |
//!
//! A layer of your own reads them the same way the built-in ones do, e.g.
//! `req.extensions().get::<FixReport>()` between the FixLayer and the upstream, or
//! `response.extensions().get::<ResolvedModel>()` on the way back; `examples/custom_stack.rs`
//! has such a layer.

use std::time::Duration;

pub use crate::error::ErrorKind;
pub use crate::upstream::{ResolvedModel, UpstreamTiming};

/// Which fix rules changed a request, by rule name (e.g. `alternation`; see
/// [`fix::Rule::name`](crate::fix::Rule::name)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixReport {
    /// Names of the rules that fired, in the order they fired.
    pub rules: Vec<&'static str>,
}

/// What the image cascade did for a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisionReport {
    /// Image parts found in the request.
    pub images: usize,
    /// Unique images whose description came from the cache.
    pub cache_hits: usize,
    /// Unique images described by a vision call.
    pub cache_misses: usize,
    /// Time spent in the vision stage (wall clock).
    pub vision_time: Duration,
}
