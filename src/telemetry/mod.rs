//! OpenTelemetry traces: one trace per request, one GenAI client span per upstream attempt.
//!
//! The crate makes ordinary [`tracing`] spans at a few generic points; with the `otel` feature
//! and an endpoint configured, [`Telemetry`] bridges them to OpenTelemetry
//! (`tracing-opentelemetry`) and exports them over OTLP/HTTP in batches. Attribute names follow
//! the OpenTelemetry semantic conventions 1.41 (HTTP spans and GenAI client spans,
//! `gen_ai.provider.name`):
//!
//! | span (name) | where | attributes |
//! |---|---|---|
//! | `{method} {route}` (server) | the router's request tracing | `http.request.method`, `http.route`, `http.response.status_code`, `hunyuan_proxy.dialect`, `hunyuan_proxy.client_key.name`, `error.type` |
//! | `upstream slot wait` | [`Upstream`](crate::upstream::Upstream), before the attempts, only when no slot is free at once | — |
//! | `describe image` | the cascade, per unique image | `hunyuan_proxy.cache.outcome` (`hit`, `miss`, `coalesced`) |
//! | `chat {gen_ai.request.model}` (client) | each upstream attempt (retries, key switches, fallbacks: one span each) | `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.response.id`, `gen_ai.response.finish_reasons`, `gen_ai.request.stream`, `gen_ai.response.time_to_first_chunk`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.reasoning.output_tokens`, `server.address`, `server.port`, `http.response.status_code`, `error.type`, `hunyuan_proxy.attempt.reason`; `gen_ai.input.messages`, `gen_ai.output.messages` with `otel_capture_content` |
//! | `redis {op}` (client) | [`Redis`](crate::replica::Redis) calls within a request | `db.system.name` (`redis`), `hunyuan_proxy.redis.op`, `error.type` |
//!
//! A streamed attempt's span stays open until its body ends: usage and finish reasons are read
//! from the stream as it passes (no event is parsed for them), and the first chunk sets
//! `gen_ai.response.time_to_first_chunk`. The
//! client's W3C `traceparent`/`tracestate` continue its trace, and each upstream attempt
//! carries its own span's `traceparent` onwards. While a request is traced, its log lines
//! carry `trace_id` (a field of the request span).
//!
//! Cost: without a subscriber that wants these spans (the server at `log_level = "warn"` and
//! no endpoint), a span is one callsite check; the extra work (reading usage from the answer,
//! the propagation headers) runs only for a span that OpenTelemetry samples.
//!
//! ```
//! use hunyuan_proxy::telemetry::TelemetryConfig;
//!
//! // Off unless an endpoint is given (here or in `OTEL_EXPORTER_OTLP_ENDPOINT`).
//! let config = TelemetryConfig::from_lookup(None, |_| None);
//! assert!(!config.is_enabled());
//! let config = TelemetryConfig::from_lookup(Some("http://127.0.0.1:4318"), |_| None);
//! assert_eq!(config.traces_endpoint(), Some("http://127.0.0.1:4318/v1/traces"));
//! ```

mod answer;
#[cfg(feature = "otel")]
mod content;
#[cfg(feature = "otel")]
mod export;
mod spans;

#[cfg(feature = "otel")]
pub use export::{Telemetry, TelemetryError};
pub(crate) use spans::*;

/// The target of the per-request access log line (`info`), which traces leave out.
const ACCESS_LOG: &str = "hunyuan_proxy::access";

/// Where traces go, decided once at start: `otel_endpoint` from the config, else the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables. The
/// exporter itself also reads `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER(_ARG)`,
/// `OTEL_EXPORTER_OTLP_HEADERS` and the `OTEL_BSP_*` batch settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The full OTLP/HTTP traces URL (`…/v1/traces`), when one was configured.
    traces_endpoint: Option<String>,
    /// Whether the endpoint came from the environment (the exporter then reads it there).
    from_env: bool,
    /// Whether message contents go on the attempt spans (`otel_capture_content`).
    capture_content: bool,
    /// Whether no log line can show the request span, so its `trace_id` field is not needed.
    no_log_trace_id: bool,
}

impl TelemetryConfig {
    /// `endpoint` (an OTLP/HTTP base URL such as `http://collector:4318`; `/v1/traces` is
    /// added) when given and not empty, else the endpoint the variables read through `lookup`
    /// name; neither: off.
    pub fn from_lookup(endpoint: Option<&str>, lookup: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(base) = endpoint.filter(|e| !e.is_empty()) {
            return TelemetryConfig {
                traces_endpoint: Some(traces_url(base)),
                from_env: false,
                capture_content: false,
                no_log_trace_id: false,
            };
        }
        let nonempty = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let traces_endpoint = nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| nonempty("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| traces_url(&base)));
        TelemetryConfig {
            from_env: traces_endpoint.is_some(),
            traces_endpoint,
            capture_content: false,
            no_log_trace_id: false,
        }
    }

    /// Records message contents (`gen_ai.input.messages`, `gen_ai.output.messages`) on the
    /// upstream attempt spans when `on` (`otel_capture_content`; default off: prompts and
    /// answers often hold what a tracing backend should not keep). Process-wide: set by
    /// `Telemetry::start` (with the `otel` feature).
    pub fn with_capture_content(mut self, on: bool) -> Self {
        self.capture_content = on;
        self
    }

    /// Whether message contents go on the attempt spans.
    pub fn captures_content(&self) -> bool {
        self.capture_content
    }

    /// Whether the request span gets a `trace_id` field for the log lines within it (default
    /// on). Turn it off when no log line can show the span (the server's `log_level` above
    /// `info`: the request span is an `info` span): its trace id is then neither formatted nor
    /// exported as an attribute of its own. Process-wide, like
    /// [`with_capture_content`](Self::with_capture_content).
    pub fn with_log_trace_id(mut self, on: bool) -> Self {
        self.no_log_trace_id = !on;
        self
    }

    /// Whether the request span gets its `trace_id` field.
    pub fn logs_trace_id(&self) -> bool {
        !self.no_log_trace_id
    }

    /// [`from_lookup`](Self::from_lookup) with the process environment.
    pub fn from_env(endpoint: Option<&str>) -> Self {
        Self::from_lookup(endpoint, |name| std::env::var(name).ok())
    }

    /// Whether traces are exported at all.
    pub fn is_enabled(&self) -> bool {
        self.traces_endpoint.is_some()
    }

    /// The OTLP/HTTP URL spans are posted to.
    pub fn traces_endpoint(&self) -> Option<&str> {
        self.traces_endpoint.as_deref()
    }
}

/// `base` with the traces path, as the OTLP specification builds it from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

pub(crate) use answer::AnswerTrace;
