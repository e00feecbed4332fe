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
//!   against its key's budgets before it goes upstream, and, when the answer is known (at the
//!   head of a whole answer, which the upstream layer read whole; when a stream's body ends or
//!   is dropped), charges the real usage to the [`Ledger`], counts it in Prometheus counters
//!   (bounded label sets: past [`UsageConfig::label_limit`] distinct models or keys the rest
//!   are `other`) and appends the request to the [`RequestLog`].
//! - Its cost per request is kept small (`docs/performance.md`, "Usage accounting"): no boxed
//!   future unless a budget lives in Redis, no body wrapper except for streams, and a log entry
//!   made of shared or static texts, its id and time formatted only when the log is read.
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

pub use layer::{count_vision, ResponseFuture, UsageLayer, UsageService, ANONYMOUS};
pub use ledger::{
    Budget, BudgetKind, BudgetRefusal, BudgetState, Ledger, PeriodTotals, Refusal, UsageReport,
    UsageTotals,
};
pub use log::{LogFilter, LogTime, RequestId, RequestLog, RequestLogEntry};
pub use names::{describe, USAGE_COST, USAGE_LABEL_OVERFLOW, USAGE_REQUESTS, USAGE_TOKENS};
pub use price::{built_in_prices, Price, PriceTable};

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};

/// A map of names looked up on every request (prices, budgets, counter handles): foldhash,
/// several times cheaper than SipHash on short names. Their keys come from the configuration,
/// or are bounded, so the hash need not resist flooding.
pub(crate) type NameMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

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
/// searched with [`UsageScan`]. Cost: one vectorized substring search; only a found `usage`
/// object is parsed (by hand when it has the plain shape upstreams send, else by serde).
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
        // `"usage": null` in a later event than a real one is not expected; keep looking.
        match plain_usage(value) {
            Plain::Usage(usage) => found = Some((start, usage)),
            Plain::Null => {}
            Plain::Unsure => {
                let mut values =
                    serde_json::Deserializer::from_slice(value).into_iter::<Option<WireUsage>>();
                if let Some(Ok(Some(usage))) = values.next() {
                    found = Some((start, Usage::from(usage)));
                }
            }
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

/// The value of the first `"id":"..."` of the event holding a `usage` (SSE events start at a
/// line; a JSON body is one object).
fn id_before(data: &[u8]) -> Option<String> {
    static ID: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"id\""));
    let event_start = memchr::memrchr(b'\n', data).map_or(0, |at| at + 1);
    let event = &data[event_start..];
    let at = ID.find(event)?;
    let mut value = Cursor::new(&event[at + 4..]);
    if !value.eat(b':') {
        return None;
    }
    value.skip_whitespace();
    // A plain string is copied as it is; one with escapes is decoded by serde.
    let id = match value.plain_string() {
        Some(id) => std::str::from_utf8(id).ok()?.to_owned(),
        None => serde_json::Deserializer::from_slice(value.rest())
            .into_iter::<String>()
            .next()?
            .ok()?,
    };
    (id.len() <= 200).then_some(id)
}

/// What [`plain_usage`] made of a `usage` value.
#[derive(Debug, PartialEq)]
enum Plain {
    Usage(Usage),
    Null,
    /// Not the plain shape: serde decides.
    Unsure,
}

/// Reads a `usage` value of the plain shape upstreams send by hand (about a tenth of what
/// serde spends on it): an object of whole numbers or `null`, with the two details objects
/// of the same kind. Anything else (a string, a fraction, an escape, a repeated field…) is
/// [`Plain::Unsure`], left to serde, so that both read the same.
fn plain_usage(value: &[u8]) -> Plain {
    let mut c = Cursor::new(value);
    c.skip_whitespace();
    if c.rest().starts_with(b"null") {
        return Plain::Null;
    }
    let mut usage = Usage::default();
    let mut seen = [false; 4];
    let read = c.object(|c, key| {
        let (field, slot) = match key {
            b"prompt_tokens" => (0, &mut usage.input_tokens),
            b"completion_tokens" => (1, &mut usage.output_tokens),
            b"prompt_tokens_details" | b"completion_tokens_details" => {
                let (field, inner, slot) = if key == b"prompt_tokens_details" {
                    (2, &b"cached_tokens"[..], &mut usage.cached_input_tokens)
                } else {
                    (3, &b"reasoning_tokens"[..], &mut usage.reasoning_tokens)
                };
                if std::mem::replace(&mut seen[field], true) {
                    return None;
                }
                if c.null() {
                    return Some(());
                }
                let mut found = false;
                return c.object(|c, key| {
                    let n = c.number_or_null()?;
                    if key == inner {
                        if std::mem::replace(&mut found, true) {
                            return None;
                        }
                        *slot = n;
                    }
                    Some(())
                });
            }
            _ => return c.number_or_null().map(drop),
        };
        if std::mem::replace(&mut seen[field], true) {
            return None;
        }
        *slot = c.number_or_null()?;
        Some(())
    });
    match read {
        Some(()) => Plain::Usage(usage),
        None => Plain::Unsure,
    }
}

/// A reader of the few JSON forms [`plain_usage`] and [`id_before`] take by hand.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at.min(self.bytes.len())..]
    }

    fn skip_whitespace(&mut self) {
        // JSON's whitespace (not `is_ascii_whitespace`, which takes a form feed too).
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// Takes `byte` after any whitespace.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A `null` after any whitespace.
    fn null(&mut self) -> bool {
        self.skip_whitespace();
        if self.rest().starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// A string without escapes, here (its contents).
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest().strip_prefix(b"\"")?;
        // Keys and ids are short: one plain pass beats two vectorized searches.
        let end = rest.iter().position(|b| matches!(b, b'"' | b'\\'))?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 2;
        Some(&rest[..end])
    }

    /// A whole number (as serde reads a `u64`: no sign, fraction, exponent or leading zero)
    /// or `null` (0).
    fn number_or_null(&mut self) -> Option<u64> {
        if self.null() {
            return Some(0);
        }
        let digits = self.rest();
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let follows = digits.get(len).copied().unwrap_or(b' ');
        if len == 0 || (len > 1 && digits[0] == b'0') || matches!(follows, b'.' | b'e' | b'E') {
            return None;
        }
        let mut n: u64 = 0;
        for d in &digits[..len] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += len;
        Some(n)
    }

    /// An object whose members `member` reads (given the cursor after the key's colon).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.skip_whitespace();
            let key = self.plain_string()?;
            if !self.eat(b':') {
                return None;
            }
            member(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
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
        let escaped = br#"{"id":"a\"b","usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        assert_eq!(find_usage(escaped).unwrap().id.as_deref(), Some("a\"b"));
    }

    /// What serde makes of a `usage` value, as [`find_usage`] read it before the hand reader.
    fn by_serde(value: &[u8]) -> Option<Option<Usage>> {
        let mut values =
            serde_json::Deserializer::from_slice(value).into_iter::<Option<WireUsage>>();
        match values.next() {
            Some(Ok(usage)) => Some(usage.map(Usage::from)),
            _ => None,
        }
    }

    #[test]
    fn the_hand_reader_reads_what_serde_reads_or_leaves_it_to_serde() {
        let cases: &[&[u8]] = &[
            br#"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}"#,
            br#" { "prompt_tokens" : 12 , "completion_tokens":5 } ,"x":1"#,
            br#"{}"#,
            br#"null"#,
            br#"{"prompt_tokens":null,"completion_tokens":3}"#,
            br#"{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":2,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":7}}"#,
            br#"{"prompt_tokens":3,"prompt_tokens_details":null,"completion_tokens_details":{}}"#,
            br#"{"prompt_tokens":1.5}"#,
            br#"{"prompt_tokens":-1}"#,
            br#"{"prompt_tokens":1e3}"#,
            br#"{"prompt_tokens":012}"#,
            br#"{"prompt_tokens":"12"}"#,
            br#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            br#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}"#,
            br#"{"prompt\u005ftokens":4}"#,
            br#"{"prompt_tokens":18446744073709551615}"#,
            br#"{"prompt_tokens":18446744073709551616}"#,
            br#"{"prompt_tokens":1,"extra":{"nested":true}}"#,
            br#"{"prompt_tokens":1"#,
            br#"{"prompt_tokens":1,}"#,
            br#"[1]"#,
            b"{\x0c\"prompt_tokens\":1}",
        ];
        for case in cases {
            let text = String::from_utf8_lossy(case);
            match plain_usage(case) {
                Plain::Usage(usage) => assert_eq!(by_serde(case), Some(Some(usage)), "{text}"),
                Plain::Null => assert_eq!(by_serde(case), Some(None), "{text}"),
                Plain::Unsure => {}
            }
        }
        // The shapes upstreams send are read by hand.
        assert!(matches!(plain_usage(cases[0]), Plain::Usage(_)));
        assert!(
            matches!(plain_usage(cases[5]), Plain::Usage(u) if u.cached_input_tokens == 2 && u.reasoning_tokens == 7)
        );
        assert_eq!(plain_usage(cases[12]), Plain::Unsure, "a repeated field");
    }

    proptest::proptest! {
        #[test]
        fn the_hand_reader_agrees_with_serde_on_any_usage_like_text(
            text in r#"\{( ?"(prompt_tokens|completion_tokens|total_tokens|prompt_tokens_details|cached_tokens|x)" ?: ?(null|[0-9]{1,21}|-1|1\.5|"7"|\{( ?"(cached_tokens|reasoning_tokens)":[0-9]{1,3},?)*\}) ?,?)*\}"#
        ) {
            match plain_usage(text.as_bytes()) {
                Plain::Usage(usage) => proptest::prop_assert_eq!(by_serde(text.as_bytes()), Some(Some(usage))),
                Plain::Null => proptest::prop_assert_eq!(by_serde(text.as_bytes()), Some(None)),
                Plain::Unsure => {}
            }
        }
    }
}
