//! Usage and cost accounting, client budgets and the request log.
//!
//! What the operator of a paid account sees: tokens and cost per upstream model, per client key
//! (by its name, never the secret) and per route; budgets per named key; and the last requests'
//! metadata.
//!
//! - The upstream's own `usage` is read where the proxy already looks at the upstream's bytes:
//!   [`Upstream`](crate::upstream::Upstream) fills the request's [`UsageSlot`] (a request
//!   extension any outer layer may insert) from the whole answer or from the stream's usage
//!   chunk, with one substring search per chunk and a small parse of the `usage` object only.
//!   Every dialect's ingress calls the same chat stack, so Messages and Responses requests
//!   are counted from the same chat `usage`.
//! - [`UsageLayer`] (on the API routes, after client auth) inserts the slot, admits a request
//!   against its key's budgets before it goes upstream, and, when the response body ends,
//!   charges the real usage to the [`Ledger`], counts it in Prometheus counters (bounded label
//!   sets: past [`UsageConfig::label_limit`] distinct models or keys the rest are `other`) and
//!   appends the request to the [`RequestLog`].
//! - Prices: [`Price`] per million tokens, built in for TokenHub's `hy4` and `hy4-flash`
//!   ([`built_in_prices`]) and set by configuration.
//! - Budgets ([`Budget`]) are per UTC day and per UTC month. Without Redis they live in the
//!   process (each replica counts its own traffic, and a restart forgets them); with Redis
//!   ([`Ledger::with_redis`]) every replica reads and charges the same counters, which expire
//!   after their period. While Redis is away the budget check follows `redis_failure`: `local`
//!   checks the process's own counts, `closed` refuses (the Redis guard answers 503).
//!
//! The image describer's calls are counted too (route `vision`, key `vision`), in the
//! Prometheus counters; they are not charged to a client key.

mod layer;
mod ledger;
mod log;
mod names;
mod period;
pub(crate) use period::civil_from_days;
mod price;

pub use layer::{count_vision, UsageLayer, UsageService, ANONYMOUS};
pub use ledger::{
    Budget, BudgetKind, BudgetRefusal, BudgetState, Ledger, PeriodTotals, Refusal, UsageReport,
    UsageTotals,
};
pub use log::{LogFilter, RequestLog, RequestLogEntry};
pub use names::{describe, USAGE_COST, USAGE_LABEL_OVERFLOW, USAGE_REQUESTS, USAGE_TOKENS};
pub use price::{built_in_prices, Price, PriceTable};

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};

/// Tokens of one upstream answer, from its `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// `prompt_tokens`.
    pub input_tokens: u64,
    /// `completion_tokens` (reasoning included).
    pub output_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`: input read from the upstream's cache.
    pub cached_input_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input and output tokens together (what a token budget counts).
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// What the upstream said about one request, filled by [`Upstream`](crate::upstream::Upstream)
/// and read when the response ends. Clones share the same slot.
#[derive(Debug, Clone, Default)]
pub struct UsageSlot(Arc<Mutex<SlotContents>>);

/// The contents of a [`UsageSlot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotContents {
    /// The upstream's `usage`, when it sent one.
    pub usage: Option<Usage>,
    /// The upstream's id for the answer (its `id` field), when usage was found.
    pub upstream_request_id: Option<String>,
    /// The model the chat stack asked the upstream for (after aliases and the cascade's
    /// switch, before fallbacks).
    pub model_requested: Option<String>,
}

impl UsageSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotContents> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the upstream's usage (a later answer, e.g. a fallback's, replaces it).
    pub fn set_usage(&self, found: FoundUsage) {
        let mut slot = self.lock();
        slot.usage = Some(found.usage);
        if found.id.is_some() {
            slot.upstream_request_id = found.id;
        }
    }

    /// Records the model the upstream was asked for.
    pub fn set_model_requested(&self, model: &str) {
        let mut slot = self.lock();
        if slot.model_requested.is_none() {
            slot.model_requested = Some(model.to_owned());
        }
    }

    /// The upstream's usage, if it sent one.
    pub fn usage(&self) -> Option<Usage> {
        self.lock().usage
    }

    /// What the slot holds now: the usage stays, the texts are taken out (moved, not copied,
    /// into the request log).
    pub fn take_contents(&self) -> SlotContents {
        let mut slot = self.lock();
        SlotContents {
            usage: slot.usage,
            upstream_request_id: slot.upstream_request_id.take(),
            model_requested: slot.model_requested.take(),
        }
    }
}

/// A `usage` object found in upstream bytes, with the answer's id when it is beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUsage {
    /// The tokens.
    pub usage: Usage,
    /// The answer's `id`.
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Self {
        Usage {
            input_tokens: w.prompt_tokens.unwrap_or(0),
            output_tokens: w.completion_tokens.unwrap_or(0),
            cached_input_tokens: w
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: w
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// Finds the last `"usage": {...}` object of chat's shape in a JSON body or SSE chunk (and the
/// `"id"` of the same chunk). A `usage` split across two chunks is missed here: a stream is
/// searched with [`UsageScan`]. Cost: one vectorized substring search; only a found `usage` object
/// is parsed.
pub fn find_usage(data: &[u8]) -> Option<FoundUsage> {
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    let mut found = None;
    for start in KEY.find_iter(data) {
        if start > 0 && data[start - 1] == b'\\' {
            continue; // inside a string
        }
        let rest = &data[start + KEY.needle().len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let value = &rest[colon + 1..];
        let mut values =
            serde_json::Deserializer::from_slice(value).into_iter::<Option<WireUsage>>();
        // `"usage": null` in a later event than a real one is not expected; keep looking.
        if let Some(Ok(Some(usage))) = values.next() {
            found = Some((start, Usage::from(usage)));
        }
    }
    let (at, usage) = found?;
    Some(FoundUsage {
        usage,
        id: id_before(&data[..at]),
    })
}

/// [`find_usage`] over a stream's chunks, with a `usage` that a chunk boundary cut found as
/// well: the line a chunk left unfinished is kept (up to 64 KB) and searched again once the
/// next chunk ends it. A chunk that ends at a line's end (the usual case) costs one byte
/// search more than [`find_usage`].
#[derive(Debug, Default)]
pub struct UsageScan {
    /// The start of a line the last chunk cut.
    partial: Vec<u8>,
}

impl UsageScan {
    /// The longest cut line kept.
    const MAX_LINE: usize = 64 * 1024;

    /// The last `usage` in `chunk`, or in the line it ends.
    pub fn find(&mut self, chunk: &[u8]) -> Option<FoundUsage> {
        let mut found = None;
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                // The whole chunk is more of the cut line.
                self.partial.extend_from_slice(chunk);
                if self.partial.len() > Self::MAX_LINE {
                    self.partial.clear();
                }
                return None;
            };
            self.partial.extend_from_slice(&chunk[..=end]);
            found = find_usage(&self.partial);
            self.partial.clear();
            rest = &chunk[end + 1..];
        }
        found = find_usage(rest).or(found);
        let tail = memchr::memrchr(b'\n', rest).map_or(rest, |at| &rest[at + 1..]);
        if tail.len() <= Self::MAX_LINE {
            self.partial.extend_from_slice(tail);
        }
        found
    }
}

/// The value of the last `"id":"..."` in `data` that starts the event holding a `usage`
/// (SSE events start at a line; a JSON body is one object).
fn id_before(data: &[u8]) -> Option<String> {
    let event_start = memchr::memrchr(b'\n', data).map_or(0, |at| at + 1);
    let event = &data[event_start..];
    let at = memchr::memmem::find(event, b"\"id\"")?;
    let rest = &event[at + 4..];
    let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest[colon] != b':' {
        return None;
    }
    let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<String>();
    match values.next() {
        Some(Ok(id)) if id.len() <= 200 => Some(id),
        _ => None,
    }
}

/// Settings of a [`UsageLayer`] (its [`Ledger`] and [`RequestLog`] are made apart).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageConfig {
    /// Distinct models and distinct keys named in metric labels; past it, `other`.
    pub label_limit: usize,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig { label_limit: 50 }
    }
}

impl UsageConfig {
    /// Checks the settings: `label_limit` at least 1 (the error names the field).
    pub fn validate(&self) -> Result<(), crate::error::InvalidConfig> {
        if self.label_limit == 0 {
            return Err(crate::error::InvalidConfig::new(
                "label_limit",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_cut_by_a_chunk_boundary_is_found() {
        let stream = "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"id\":\"a\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            for second_cut in cut..stream.len() {
                let mut scan = UsageScan::default();
                let found: Vec<FoundUsage> = [
                    &stream.as_bytes()[..cut],
                    &stream.as_bytes()[cut..second_cut],
                    &stream.as_bytes()[second_cut..],
                ]
                .into_iter()
                .filter_map(|chunk| scan.find(chunk))
                .collect();
                // Found once, or twice when a whole object ends a chunk before its line
                // does (the slot is set, not added to).
                assert!(!found.is_empty(), "cuts at {cut} and {second_cut}");
                for found in &found {
                    assert_eq!(
                        (found.usage.input_tokens, found.usage.output_tokens),
                        (7, 3)
                    );
                    assert_eq!(found.id.as_deref(), Some("a"));
                }
            }
        }
    }

    #[test]
    fn finds_usage_with_details_and_id_in_json_and_sse() {
        let json = br#"{"id":"chatcmpl-1","choices":[{"message":{"content":"say \"usage\": 1"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let found = find_usage(json).unwrap();
        assert_eq!(
            found.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 5,
                cached_input_tokens: 4,
                reasoning_tokens: 2
            }
        );
        assert_eq!(found.id.as_deref(), Some("chatcmpl-1"));
        let sse = b"data: {\"id\":\"a\",\"choices\":[],\"usage\": null}\n\ndata: {\"id\":\"b\",\"choices\":[],\"usage\" : {\"prompt_tokens\":3,\"completion_tokens\":4,\"prompt_tokens_details\":null}}\n\ndata: [DONE]\n\n";
        let found = find_usage(sse).unwrap();
        assert_eq!(
            (found.usage.input_tokens, found.usage.output_tokens),
            (3, 4)
        );
        assert_eq!(found.id.as_deref(), Some("b"));
        assert!(find_usage(b"data: {\"usage\":null}\n\n").is_none());
        assert!(find_usage(b"{\"usage\":{\"prompt_tok").is_none());
    }
}
