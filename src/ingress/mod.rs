//! Shared plumbing for the client dialects that sit in front of the chat stack (the Anthropic
//! Messages ingress, [`crate::ingress::messages`]; the Responses API ingress reuses it).
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
//! - (crate-private) `handoff`: the translated request put in as the chat route's request,
//!   and the chat answer's headers and whole body read back, the same for every dialect.

mod aliases;
pub mod completions;
mod dropped;
mod error;
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
pub use stream::{StreamTranslator, TranslateBody};
