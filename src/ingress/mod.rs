//! The client dialects that sit in front of the chat stack, and what they share: Anthropic's
//! Messages ([`messages`]), OpenAI's Responses ([`responses`]) and the legacy completions
//! ([`completions`]).
//!
//! Each dialect has the same shape: `request::to_chat` reads its request, `from_completion`
//! translates a whole chat answer and a [`StreamTranslator`] a streamed one.
//!
//! An ingress parses its dialect's request, translates it to a
//! [`ChatRequest`](crate::chat::ChatRequest) that it puts into the request extensions (so the
//! chat stack's `ParseLayer` does not parse again), calls the chat stack and translates the
//! answer back. The pieces every dialect needs:
//!
//! - [`Dropped`]: what the dialect could not carry (a field, a block, a tool), answered in
//!   the [`DROPPED_HEADER`] response header and counted by [`DROPPED_METRIC`]
//!   (`hunyuan_proxy_dropped_total{dialect, item}`).
//! - [`StreamTranslator`] and [`TranslateBody`]: the chat SSE stream rewritten event by event
//!   into the dialect's events, with keep-alives while the inner stream is silent, and an
//!   error event when it fails or is cut short.
//! - [`InnerError`], [`ErrorDialect`], [`rewrite_error`] and [`DialectErrorsLayer`]: the chat stack's OpenAI
//!   error envelopes (and those of layers in front of the ingress: auth, rate limits) rendered
//!   in the dialect's shape.
//! - [`ModelAliases`]: client model names (`claude-*`) mapped to upstream models.
//! - [`ResponseFuture`]: the one (boxed) response future of every dialect's services; their
//!   bodies are read with [`read_request_body`](crate::chat::parse::read_request_body), as the
//!   chat parser reads its own (the body limit, 413; the read timeout, 408).
//! - (crate-private) `handoff`: the translated request put in as the chat route's request,
//!   and the chat answer's headers and whole body read back, the same for every dialect.

mod aliases;
pub mod completions;
mod dropped;
mod error;
mod future;
pub(crate) mod handoff;
pub(crate) mod json;
pub mod messages;
pub mod responses;
mod stream;

pub use aliases::{AliasError, ModelAliases};
pub use dropped::{Dropped, DROPPED_HEADER, DROPPED_METRIC};
pub use error::{
    rewrite_error, DialectErrors, DialectErrorsLayer, DialectShaped, ErrorDialect, InnerError,
};
pub use future::ResponseFuture;
pub use stream::{StreamTranslator, TranslateBody, KEEPALIVE};
