//! Typed facts that travel with a request and its response, so that layers can tell each other
//! what they did without private access (and metrics can count it).
//!
//! This table is **the** contract between the layers; every other page links here. A test
//! (`tests` below) reads it and fails when a writer or reader it names does not mention the
//! type in its code.
//!
//! | type | written by | into | read by |
//! |---|---|---|---|
//! | [`ParsedChat`](crate::chat::ParsedChat) (the request, and the client's bytes while unchanged) | [`ParseLayer`](crate::chat::ParseLayer); [`FixLayer`](crate::fix::FixLayer) and [`CascadeLayer`](crate::cascade::CascadeLayer) when they parse or put back a request; [`CompletionsService`](crate::ingress::completions::CompletionsService) and the ingress layers ([`MessagesLayer`](crate::ingress::messages::MessagesLayer), [`ResponsesLayer`](crate::ingress::responses::ResponsesLayer)), from the translated request | request | [`FixLayer`](crate::fix::FixLayer), [`CascadeLayer`](crate::cascade::CascadeLayer), [`Upstream`](crate::upstream::Upstream) (forwards the client's bytes when they are still there) |
//! | [`TypedAnswer`](crate::chat::TypedAnswer) (the caller takes a whole answer typed) | [`CompletionsService`](crate::ingress::completions::CompletionsService) and the ingress layers ([`MessagesLayer`](crate::ingress::messages::MessagesLayer), [`ResponsesLayer`](crate::ingress::responses::ResponsesLayer)) | request | [`ModelsLayer`](crate::models::ModelsLayer), [`FixLayer`](crate::fix::FixLayer) (hand a JSON answer on as a `ChatAnswer`) |
//! | [`ChatAnswer`](crate::chat::ChatAnswer) (a whole answer, parsed once, fixed; the body is the same answer, serialized only if read) | [`ModelsLayer`](crate::models::ModelsLayer), [`FixLayer`](crate::fix::FixLayer) | response | [`FixLayer`](crate::fix::FixLayer) (fixes it as it lies), [`CompletionsService`](crate::ingress::completions::CompletionsService), [`MessagesLayer`](crate::ingress::messages::MessagesLayer), [`ResponsesLayer`](crate::ingress::responses::ResponsesLayer) |
//! | [`DialectShaped`](crate::ingress::DialectShaped) | an ingress's error answers ([`MessagesLayer`](crate::ingress::messages::MessagesLayer)) | response | [`DialectErrorsLayer`](crate::ingress::DialectErrorsLayer) (leaves them alone) |
//! | [`BodyLimit`](crate::chat::BodyLimit), [`BodyReadTimeout`](crate::chat::parse::BodyReadTimeout) | [`Proxy::router`](crate::Proxy::router) | request | [`take_chat`](crate::chat::take_chat) (every layer that reads a body) |
//! | [`FixReport`] | [`FixLayer`](crate::fix::FixLayer) | request and response | [`MetricsLayer`](crate::metrics::MetricsLayer) |
//! | [`VisionReport`] | [`CascadeLayer`](crate::cascade::CascadeLayer) | request and response | [`MetricsLayer`](crate::metrics::MetricsLayer) |
//! | [`PendingVisionReport`](crate::cascade::PendingVisionReport) (a stream committed before its images were described; filled when they are) | [`CascadeLayer`](crate::cascade::CascadeLayer) | response | [`MetricsLayer`](crate::metrics::MetricsLayer) (when the body ends) |
//! | [`UpstreamTiming`] | [`Upstream`](crate::upstream::Upstream) | response | [`MetricsLayer`](crate::metrics::MetricsLayer) |
//! | [`ResolvedModel`] | [`Upstream`](crate::upstream::Upstream) | response | [`MetricsLayer`](crate::metrics::MetricsLayer) |
//! | [`ErrorKind`] | [`ProxyError`](crate::ProxyError) (every error answer) | response | [`MetricsLayer`](crate::metrics::MetricsLayer) |
//! | [`ClientKey`](crate::auth::ClientKey) | [`ClientAuthLayer`](crate::auth::ClientAuthLayer) | request | [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) |
//! | [`ClientName`](crate::auth::ClientName) | [`ClientAuthLayer`](crate::auth::ClientAuthLayer) | request | [`UsageLayer`](crate::usage::UsageLayer) (usage, budgets, the log), [`ResponsesLayer`](crate::ingress::responses::ResponsesLayer) (stored responses belong to their key), [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) (a named key's own rate), the request span's `hunyuan_proxy.client_key.name` (a layer of `telemetry`) |
//! | [`UsageSlot`](crate::usage::UsageSlot) (the upstream's `usage`, filled as the answer passes) | [`UsageLayer`](crate::usage::UsageLayer) (inserts it) | request | [`Upstream`](crate::upstream::Upstream) (fills it), [`UsageLayer`](crate::usage::UsageLayer) (reads it when the body ends) |
//!
//! A layer of your own reads them the same way the built-in ones do, e.g.
//! `req.extensions().get::<FixReport>()` between the FixLayer and the upstream, or
//! `response.extensions().get::<ResolvedModel>()` on the way back; `examples/custom_stack.rs`
//! has such a layer. To change the request, use
//! [`ParsedChat::get_mut`](crate::chat::ParsedChat::get_mut) or
//! [`take_chat`](crate::chat::take_chat) and [`put_chat`](crate::chat::put_chat): either way
//! the upstream sends the changed request, never the client's stale bytes.

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

#[cfg(test)]
mod tests {
    /// Where each component named in the contract lives.
    const SOURCES: &[(&str, &[&str])] = &[
        ("ParseLayer", &["src/chat/layer.rs"]),
        ("FixLayer", &["src/fix/service.rs"]),
        (
            "CascadeLayer",
            &["src/cascade/service.rs", "src/cascade/stream.rs"],
        ),
        (
            "CompletionsService",
            &["src/ingress/completions.rs", "src/ingress/handoff.rs"],
        ),
        ("ModelsLayer", &["src/models"]),
        ("Upstream", &["src/upstream"]),
        ("Proxy::router", &["src/server/router.rs"]),
        ("take_chat", &["src/chat/parse.rs"]),
        ("MetricsLayer", &["src/metrics"]),
        ("ProxyError", &["src/error.rs"]),
        ("ClientAuthLayer", &["src/auth.rs"]),
        ("RateLimitLayer", &["src/rate_limit.rs"]),
        (
            "MessagesLayer",
            &["src/ingress/messages", "src/ingress/handoff.rs"],
        ),
        (
            "ResponsesLayer",
            &["src/ingress/responses", "src/ingress/handoff.rs"],
        ),
        ("DialectErrorsLayer", &["src/ingress"]),
        ("UsageLayer", &["src/usage"]),
    ];

    /// The code of `path` (a file, or every `.rs` file under a directory), comments left out.
    fn code_of(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let mut text = String::new();
        if full.is_dir() {
            for entry in std::fs::read_dir(&full).unwrap() {
                let entry = entry.unwrap().path();
                if entry.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(entry).unwrap());
                }
            }
        } else {
            text = std::fs::read_to_string(&full).unwrap();
        }
        text.lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The names in backticks of a table cell's links: "[`A`](x), [`B`](y)" → A, B.
    fn names(cell: &str) -> Vec<&str> {
        cell.split("[`")
            .skip(1)
            .filter_map(|rest| rest.split('`').next())
            .collect()
    }

    #[test]
    fn every_documented_writer_and_reader_mentions_its_type_in_code() {
        let doc = include_str!("extensions.rs");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! | "))
            .filter(|l| l.starts_with("[`"))
            .map(|l| l.split(" | ").collect())
            .collect();
        assert!(rows.len() >= 9, "the contract table was not found");
        for row in rows {
            let types = names(row[0]);
            for component in names(row[1]).into_iter().chain(names(row[3])) {
                let (_, paths) = SOURCES
                    .iter()
                    .find(|(name, _)| *name == component)
                    .unwrap_or_else(|| panic!("the contract names `{component}`: add its source"));
                let code: String = paths.iter().map(|p| code_of(p)).collect();
                // One of the row's types (the first names the row) must appear in the code.
                assert!(
                    types.iter().any(|t| code.contains(t)),
                    "the contract says `{component}` writes or reads {types:?}, but its code \
                     ({paths:?}) never mentions them"
                );
            }
        }
    }
}
