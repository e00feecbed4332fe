//! The names of every metric the crate records, and their HELP texts.
//!
//! All are prefixed `hunyuan_proxy_`; labels are low-cardinality (route, model, status,
//! outcome, kind, rule). Durations are in seconds.

/// Counter `{route, status, outcome}`: requests finished (status class `2xx`…, outcome
/// `success`/`client_error`/`server_error`/`aborted`).
pub const REQUESTS: &str = "hunyuan_proxy_requests_total";
/// Histogram `{route, path}`: request duration until the response body ended or was dropped
/// (`path` is `text` or `image`).
pub const REQUEST_DURATION: &str = "hunyuan_proxy_request_duration_seconds";
/// Histogram `{route}`: time to the first body byte of streamed (SSE) answers.
pub const TIME_TO_FIRST_BYTE: &str = "hunyuan_proxy_time_to_first_byte_seconds";
/// Histogram `{model}`: upstream time until its response headers.
pub const UPSTREAM_DURATION: &str = "hunyuan_proxy_upstream_duration_seconds";
/// Histogram `{route}`: the proxy's own time: until response headers, minus upstream and
/// vision time (waiting for a free upstream slot counts; failed upstream calls are left out).
pub const OVERHEAD: &str = "hunyuan_proxy_overhead_seconds";
/// Gauge `{route}`: requests in flight (until their body ends or is dropped).
pub const IN_FLIGHT: &str = "hunyuan_proxy_requests_in_flight";
/// Counter `{kind}`: error answers by kind (the OpenAI error `code`).
pub const ERRORS: &str = "hunyuan_proxy_errors_total";
/// Counter `{model, status}`: upstream calls by model and the proxy's answer status.
pub const UPSTREAM_CALLS: &str = "hunyuan_proxy_upstream_calls_total";
/// Counter `{model, direction}`: tokens from the upstream's `usage` (`direction` is `in` or
/// `out`).
pub const TOKENS: &str = "hunyuan_proxy_tokens_total";
/// Counter: vision calls (image descriptions not found in the cache).
pub const VISION_CALLS: &str = "hunyuan_proxy_vision_calls_total";
/// Histogram: time spent in the vision stage of a request with images.
pub const VISION_DURATION: &str = "hunyuan_proxy_vision_duration_seconds";
/// Counter: image descriptions served from the cache.
pub const CACHE_HITS: &str = "hunyuan_proxy_cache_hits_total";
/// Counter: image descriptions not in the cache.
pub const CACHE_MISSES: &str = "hunyuan_proxy_cache_misses_total";
/// Counter: cache entries evicted (from the cache's own statistics).
pub const CACHE_EVICTIONS: &str = "hunyuan_proxy_cache_evictions_total";
/// Gauge: entries in the description cache.
pub const CACHE_ENTRIES: &str = "hunyuan_proxy_cache_entries";
/// Counter `{rule}`: fix rules fired, by rule name.
pub const FIX_RULES: &str = "hunyuan_proxy_fix_rules_total";
/// Counter `{rule, state}`: alert rules that started (`firing`) or stopped (`resolved`).
pub const ALERT_TRANSITIONS: &str = "hunyuan_proxy_alert_transitions_total";
/// Gauge `{rule, severity}`: 1 while the alert rule fires, else 0.
pub const ALERTS_FIRING: &str = "hunyuan_proxy_alerts_firing";
/// Counter `{reason}`: requests refused by the upstream wait queue (`full`, `timeout`);
/// written by the [`Upstream`](crate::upstream::Upstream) service.
pub const UPSTREAM_QUEUE_REJECTIONS: &str = "hunyuan_proxy_upstream_queue_rejections_total";
/// Counter `{reason}`: upstream retries before the first byte; written by the
/// [`Upstream`](crate::upstream::Upstream) service.
pub const UPSTREAM_RETRIES: &str = "hunyuan_proxy_upstream_retries_total";
/// Counter: upstream streams that ended with neither `[DONE]` nor a `finish_reason` (a cut
/// answer the client got an error event for); written by the
/// [`Upstream`](crate::upstream::Upstream) service.
pub const UPSTREAM_TRUNCATED: &str = "hunyuan_proxy_upstream_truncated_total";
/// Counter `{key}`: upstream API keys taken out for a cooldown after a 401/402/403, by the
/// key's index in the pool (never its value).
pub const UPSTREAM_KEY_COOLDOWNS: &str = "hunyuan_proxy_upstream_key_cooldowns_total";
/// Counter: requests moved to a fallback model (`fallback_models`) before the first byte.
pub const UPSTREAM_FALLBACKS: &str = "hunyuan_proxy_upstream_fallbacks_total";
/// Gauge: client connections open now; written by [`Proxy::serve`](crate::Proxy::serve).
pub const CONNECTIONS_OPEN: &str = "hunyuan_proxy_connections_open";
/// Counter: client connections closed at accept because `max_connections` were open.
pub const CONNECTIONS_REJECTED: &str = "hunyuan_proxy_connections_rejected_total";
/// Counter `{reason}`: client connections closed by a timeout (`header`: the request head
/// came too slowly; `idle`: kept alive with no request for `client_idle_timeout`).
pub const CONNECTIONS_TIMED_OUT: &str = "hunyuan_proxy_connections_timed_out_total";
/// Counter `{dialect, item}`: request parts a client dialect could not carry; written by the
/// ingresses ([`Dropped`](crate::ingress::Dropped)).
pub const DROPPED: &str = crate::ingress::DROPPED_METRIC;

/// Counter `{op}`: Redis calls tried.
pub const REDIS_CALLS: &str = "hunyuan_proxy_redis_calls_total";
/// Counter `{op, kind}`: Redis calls that failed (`kind` is `timeout` or `error`).
pub const REDIS_ERRORS: &str = "hunyuan_proxy_redis_errors_total";
/// Histogram `{op}`: Redis call latency.
pub const REDIS_DURATION: &str = "hunyuan_proxy_redis_call_duration_seconds";
/// Counter `{user}`: times a user of Redis fell back to in-process state (`cache`,
/// `rate_limit`, `upstream_cap`) or refused a request (`closed`).
pub const REDIS_FALLBACKS: &str = "hunyuan_proxy_redis_fallbacks_total";
/// Gauge: 1 while Redis answers, else 0.
pub const REDIS_UP: &str = "hunyuan_proxy_redis_up";

/// Registers the unit and HELP text of every metric with the installed recorder. Call it after
/// installing a recorder; [`MetricsLayer::new`](super::MetricsLayer::new) calls it too.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Requests finished, by route, status class and outcome."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Request duration until the response body ended or was dropped, by route and path (text or image)."
    );
    describe_histogram!(
        TIME_TO_FIRST_BYTE,
        Unit::Seconds,
        "Time to the first body byte of streamed answers."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Upstream time until its response headers, by model."
    );
    describe_histogram!(
        OVERHEAD,
        Unit::Seconds,
        "The proxy's own time per request: until response headers, minus upstream and vision time."
    );
    describe_gauge!(IN_FLIGHT, "Requests in flight, by route.");
    describe_counter!(ERRORS, "Error answers by kind.");
    describe_counter!(UPSTREAM_CALLS, "Upstream calls by model and answer status.");
    describe_counter!(
        TOKENS,
        "Tokens reported in the upstream's usage, by model and direction."
    );
    describe_counter!(VISION_CALLS, "Vision-model calls describing images.");
    describe_histogram!(
        VISION_DURATION,
        Unit::Seconds,
        "Time spent in the vision stage of requests with images."
    );
    describe_counter!(CACHE_HITS, "Image descriptions served from the cache.");
    describe_counter!(CACHE_MISSES, "Image descriptions not found in the cache.");
    describe_counter!(CACHE_EVICTIONS, "Description-cache entries evicted.");
    describe_gauge!(CACHE_ENTRIES, "Entries in the description cache.");
    describe_counter!(FIX_RULES, "Message-fix rules fired, by rule name.");
    describe_counter!(
        ALERT_TRANSITIONS,
        "Alert rules that started or stopped firing."
    );
    describe_gauge!(ALERTS_FIRING, "1 while an alert rule fires, else 0.");
    describe_counter!(
        UPSTREAM_QUEUE_REJECTIONS,
        "Requests refused by the upstream wait queue, by reason."
    );
    describe_counter!(
        UPSTREAM_RETRIES,
        "Upstream retries before the first byte, by reason."
    );
    describe_counter!(
        UPSTREAM_TRUNCATED,
        "Upstream streams that ended before the answer was finished (no finish_reason, no [DONE])."
    );
    describe_counter!(
        UPSTREAM_KEY_COOLDOWNS,
        "Upstream API keys taken out for a cooldown after 401/402/403, by key index."
    );
    describe_counter!(
        UPSTREAM_FALLBACKS,
        "Requests moved to a fallback model before the first byte."
    );
    describe_gauge!(CONNECTIONS_OPEN, "Client connections open now.");
    describe_counter!(
        CONNECTIONS_REJECTED,
        "Client connections closed at once because max_connections were open."
    );
    describe_counter!(
        CONNECTIONS_TIMED_OUT,
        "Client connections closed by client_header_timeout (header) or client_idle_timeout (idle)."
    );
    describe_counter!(
        DROPPED,
        "Request parts a client dialect could not carry, by dialect and item."
    );
    describe_counter!(REDIS_CALLS, "Redis calls tried, by operation.");
    describe_counter!(
        REDIS_ERRORS,
        "Redis calls that failed or timed out, by operation and kind."
    );
    describe_histogram!(
        REDIS_DURATION,
        Unit::Seconds,
        "Redis call latency, by operation."
    );
    describe_counter!(
        REDIS_FALLBACKS,
        "Times Redis being unavailable made a user fall back to in-process state or refuse a request."
    );
    describe_gauge!(REDIS_UP, "1 while Redis answers, else 0.");
}
