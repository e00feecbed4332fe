//! The spans the crate makes, and the few OpenTelemetry calls on them. Without the `otel`
//! feature every helper here is a no-op and the spans are plain `tracing` spans.

use http::HeaderMap;
use tracing::field::Empty;
use tracing::Span;

/// The GenAI provider name the upstream spans carry (`gen_ai.provider.name`; Tencent's models
/// have no well-known value in the conventions, so this is the custom one).
const PROVIDER: &str = "tencent.hunyuan";

/// The span of one request to the proxy (tower-http's `MakeSpan`): continues the client's
/// trace from `traceparent`/`tracestate` and records `trace_id` for the log lines within.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerSpan;

impl<B> tower_http::trace::MakeSpan<B> for ServerSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let span = tracing::info_span!(
            "request",
            otel.name = Empty,
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = request.uri().path(),
            http.route = Empty,
            hunyuan_proxy.dialect = Empty,
            hunyuan_proxy.client_key.name = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
            trace_id = Empty,
        );
        // Off (no subscriber wants the span): nothing more to do, not even the route lookup.
        if span.is_disabled() {
            return span;
        }
        let route = route_of(request.uri().path());
        // Recorded before the span is started (below): tracing-opentelemetry reads the name
        // only then.
        span.record(
            "otel.name",
            tracing::field::display(SpanName(request.method(), route)),
        );
        if let Some(route) = route {
            span.record("http.route", route);
            span.record("hunyuan_proxy.dialect", dialect(route));
        }
        continue_trace(&span, request.headers());
        if let Some(trace_id) = sampled_trace_id(&span) {
            span.record("trace_id", trace_id);
        }
        span
    }
}

/// A server span's name: the method and the route (the method alone off the route list).
struct SpanName<'a>(&'a http::Method, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Records the status on the request span (tower-http's `OnResponse`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerResponse;

impl<B> tower_http::trace::OnResponse<B> for ServerResponse {
    fn on_response(self, response: &http::Response<B>, latency: std::time::Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("error.type", status.as_str());
        }
        tracing::info!(
            target: super::ACCESS_LOG,
            status = i64::from(status.as_u16()),
            latency_ms = latency.as_millis() as u64,
            "finished processing request"
        );
    }
}

/// Records the client key's name on the request span (never the key): a layer right after
/// [`ClientAuthLayer`](crate::auth::ClientAuthLayer), which puts the
/// [`ClientName`](crate::auth::ClientName) of a named key into the request. Per request: one
/// extension lookup; with a name, the current span (the request span, entered by tower-http's
/// `Trace` while the inner services are called and polled) and a field record, which is a
/// no-op for a span nobody wants.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RecordClientName;

impl<S> tower::Layer<S> for RecordClientName {
    type Service = RecordClientNameService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordClientNameService(inner)
    }
}

/// The service of [`RecordClientName`].
#[derive(Debug, Clone)]
pub(crate) struct RecordClientNameService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for RecordClientNameService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(name) = request.extensions().get::<crate::auth::ClientName>() {
            Span::current().record("hunyuan_proxy.client_key.name", &*name.0);
        }
        self.0.call(request)
    }
}

/// The route template `path` matches in the server's route table (`None`: not a route, so no
/// unbounded path becomes an attribute value).
fn route_of(path: &str) -> Option<&'static str> {
    crate::server::routes::ROUTES
        .iter()
        .flat_map(|route| route.paths())
        .find(|route| match route.strip_suffix("{id}") {
            Some(prefix) => path
                .strip_prefix(prefix)
                .is_some_and(|id| !id.is_empty() && !id.contains('/')),
            None => *route == path,
        })
}

/// The dialect the route table gives `route` (`openai` for the proxy's own routes).
fn dialect(route: &str) -> &'static str {
    use crate::server::routes::{Dialect, ROUTES};
    match ROUTES
        .iter()
        .find(|r| r.paths().any(|p| p == route))
        .map(|r| r.dialect)
    {
        Some(Dialect::Messages) => "anthropic",
        Some(Dialect::Responses) => "responses",
        _ => "openai",
    }
}

/// The span of one attempt at the upstream for `model` (a GenAI client span). `reason` says
/// why this attempt was made when it is not the first (`429`, `key_switch`, `fallback`…).
pub(crate) fn attempt_span(
    model: &str,
    endpoint: &reqwest::Url,
    attempt: u32,
    reason: Option<&'static str>,
) -> Span {
    tracing::info_span!(
        "upstream attempt",
        otel.name = format!("chat {model}"),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = PROVIDER,
        gen_ai.request.model = model,
        gen_ai.response.model = Empty,
        gen_ai.response.id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        server.address = endpoint.host_str(),
        server.port = endpoint.port_or_known_default().map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
        hunyuan_proxy.attempt = i64::from(attempt),
        hunyuan_proxy.attempt.reason = reason,
    )
}

/// Whether message contents go on the attempt spans (`otel_capture_content`): process-wide,
/// like the exporter, set by [`Telemetry::start`](super::Telemetry::start).
#[cfg(feature = "otel")]
static CAPTURE_CONTENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns message contents on the attempt spans on or off.
#[cfg(feature = "otel")]
pub(crate) fn set_capture_content(on: bool) {
    CAPTURE_CONTENT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `span` gets message contents: the operator opted in and OpenTelemetry records it.
/// Off, one relaxed load.
pub(crate) fn captures_content(span: &Span) -> bool {
    #[cfg(feature = "otel")]
    {
        CAPTURE_CONTENT.load(std::sync::atomic::Ordering::Relaxed) && is_recording(span)
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        false
    }
}

/// Records `gen_ai.input.messages` of the chat request `body` (JSON) on an attempt span that
/// [`captures_content`].
pub(crate) fn record_input_messages(span: &Span, body: &[u8]) {
    #[cfg(feature = "otel")]
    if let Some(messages) = super::content::input_messages(body) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.set_attribute("gen_ai.input.messages", messages);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, body);
}

/// Records `gen_ai.output.messages` of a whole chat completion `answer` (JSON) on an attempt
/// span that [`captures_content`].
pub(crate) fn record_output_messages(span: &Span, answer: &[u8]) {
    #[cfg(feature = "otel")]
    if let Some(messages) = super::content::output_messages(answer) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.set_attribute("gen_ai.output.messages", messages);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, answer);
}

/// The span of one Redis call `op` (the proxy's name for it: `rate_limit`, `cache_get`,
/// `sem_acquire`…), made only inside a span (a request's): the background work (probes,
/// lease renewals) would otherwise be a trace of its own every few seconds.
pub(crate) fn redis_span(op: &'static str) -> Span {
    if Span::current().is_none() {
        return Span::none();
    }
    tracing::info_span!(
        "redis",
        otel.name = format!("redis {op}"),
        otel.kind = "client",
        db.system.name = "redis",
        hunyuan_proxy.redis.op = op,
        error.type = Empty,
    )
}

/// The span of waiting for a free upstream slot.
pub(crate) fn slot_wait_span() -> Span {
    tracing::info_span!("upstream slot wait")
}

/// The span of describing one image; its cache outcome is recorded with
/// [`record_cache_outcome`].
pub(crate) fn describe_span() -> Span {
    tracing::info_span!(
        "describe image",
        hunyuan_proxy.cache.outcome = Empty,
        error.type = Empty
    )
}

/// Records where a description came from (`hit`, `miss`, `coalesced`, `uncached`).
pub(crate) fn record_cache_outcome(span: &Span, outcome: &'static str) {
    span.record("hunyuan_proxy.cache.outcome", outcome);
}

/// Records a failed attempt: its HTTP status when there was one, and the error's type.
pub(crate) fn record_failure(span: &Span, status: Option<u16>, error_type: &str) {
    if let Some(status) = status {
        span.record("http.response.status_code", i64::from(status));
    }
    span.record("error.type", error_type);
    #[cfg(feature = "otel")]
    if is_recording(span) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.set_status(opentelemetry::trace::Status::error(error_type.to_owned()));
    }
}

/// Whether OpenTelemetry records `span` (the `otel` feature, a layer that wants it, and the
/// sampler said yes). The extra work of a traced request hangs on this.
pub(crate) fn is_recording(span: &Span) -> bool {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        !span.is_disabled() && span.context().span().span_context().is_sampled()
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        false
    }
}

/// `span`'s trace id when OpenTelemetry records it.
fn sampled_trace_id(span: &Span) -> Option<String> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context
            .is_sampled()
            .then(|| span_context.trace_id().to_string())
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        None
    }
}

/// Makes `span` a child of the W3C trace context in `headers`, when there is a valid one.
fn continue_trace(span: &Span, headers: &HeaderMap) {
    #[cfg(feature = "otel")]
    if headers.contains_key("traceparent") {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&opentelemetry_http::HeaderExtractor(headers));
        if parent.span().span_context().is_valid() {
            // Fails only for a span already started, which this one is not.
            let _ = span.set_parent(parent);
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Writes `span`'s W3C trace context into an outgoing request's `headers` when OpenTelemetry
/// records it.
pub(crate) fn inject_context(span: &Span, headers: &mut HeaderMap) {
    #[cfg(feature = "otel")]
    if is_recording(span) {
        use opentelemetry::propagation::TextMapPropagator;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(
            &span.context(),
            &mut opentelemetry_http::HeaderInjector(headers),
        );
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Records what a chat completion (whole, or read from a stream) said about itself.
pub(crate) fn record_answer(span: &Span, answer: &AnswerFacts) {
    if let Some(id) = &answer.id {
        span.record("gen_ai.response.id", id.as_str());
    }
    if let Some(model) = &answer.model {
        span.record("gen_ai.response.model", model.as_str());
    }
    if let Some((input, output)) = answer.usage {
        span.record("gen_ai.usage.input_tokens", saturating_i64(input));
        span.record("gen_ai.usage.output_tokens", saturating_i64(output));
    }
    #[cfg(feature = "otel")]
    if !answer.finish_reasons.is_empty() {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let reasons: Vec<opentelemetry::StringValue> = answer
            .finish_reasons
            .iter()
            .map(|r| r.clone().into())
            .collect();
        span.set_attribute(
            "gen_ai.response.finish_reasons",
            opentelemetry::Value::Array(reasons.into()),
        );
    }
}

/// `n` as the signed integer OpenTelemetry attributes hold (tracing-opentelemetry turns a
/// `u64` into text).
fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Marks the first chunk of a streamed answer (time to first token).
pub(crate) fn record_first_token(span: &Span) {
    #[cfg(feature = "otel")]
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.add_event("gen_ai.first_token", Vec::new());
    }
    #[cfg(not(feature = "otel"))]
    let _ = span;
}

/// The facts of an answer a GenAI span carries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AnswerFacts {
    /// `id`.
    pub(crate) id: Option<String>,
    /// `model`.
    pub(crate) model: Option<String>,
    /// Input and output tokens.
    pub(crate) usage: Option<(u64, u64)>,
    /// Each choice's `finish_reason`.
    pub(crate) finish_reasons: Vec<String>,
}

impl AnswerFacts {
    /// Takes in one chat completion or completion chunk (JSON); anything else is ignored.
    pub(crate) fn read(&mut self, json: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Usage {
            prompt_tokens: Option<u64>,
            completion_tokens: Option<u64>,
        }
        #[derive(serde::Deserialize)]
        struct Choice {
            finish_reason: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            id: Option<String>,
            model: Option<String>,
            usage: Option<Usage>,
            #[serde(default)]
            choices: Vec<Choice>,
        }
        let Ok(answer) = serde_json::from_slice::<Answer>(json) else {
            return;
        };
        if answer.id.is_some() {
            self.id = answer.id;
        }
        if answer.model.is_some() {
            self.model = answer.model;
        }
        if let Some(usage) = answer.usage {
            self.usage = Some((
                usage.prompt_tokens.unwrap_or(0),
                usage.completion_tokens.unwrap_or(0),
            ));
        }
        self.finish_reasons.extend(
            answer
                .choices
                .into_iter()
                .filter_map(|c| c.finish_reason.filter(|r| !r.is_empty())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_facts_come_from_completions_and_chunks() {
        let mut facts = AnswerFacts::default();
        facts.read(br#"{"id":"c1","model":"m","choices":[{"delta":{"content":"hi"},"finish_reason":null}]}"#);
        facts.read(br#"{"id":"c1","model":"m","choices":[{"delta":{},"finish_reason":"stop"}]}"#);
        facts
            .read(br#"{"id":"c1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#);
        facts.read(b"[DONE]");
        assert_eq!(facts.id.as_deref(), Some("c1"));
        assert_eq!(facts.model.as_deref(), Some("m"));
        assert_eq!(facts.usage, Some((7, 3)));
        assert_eq!(facts.finish_reasons, ["stop"]);
    }

    #[test]
    fn dialects_by_route() {
        assert_eq!(dialect("/v1/messages"), "anthropic");
        assert_eq!(dialect("/v1/responses/{id}"), "responses");
        assert_eq!(dialect("/v1/chat/completions"), "openai");
        assert_eq!(route_of("/v1/responses/resp_1"), Some("/v1/responses/{id}"));
        assert_eq!(route_of("/v1/messages"), Some("/v1/messages"));
        assert_eq!(route_of("/v1/unknown/path"), None);
    }
}
