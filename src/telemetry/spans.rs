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
        // The route lookup only when some layer may want an `info` span (off, with no layer
        // that does: one load).
        let route = if tracing::level_enabled!(tracing::Level::INFO) {
            route_of(request.uri().path())
        } else {
            None
        };
        let span = tracing::info_span!(
            "request",
            otel.name = tracing::field::display(SpanName(request.method(), route.map(|r| r.0))),
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = request.uri().path(),
            http.route = route.map(|r| r.0),
            hunyuan_proxy.dialect = route.map(|r| r.1),
            hunyuan_proxy.client_key.name = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
            trace_id = Empty,
        );
        // Off (no subscriber wants the span): nothing more to do.
        if span.is_disabled() {
            return span;
        }
        continue_trace(&span, request.headers());
        if log_trace_id() {
            if let Some(trace_id) = sampled_trace_id(&span) {
                span.record("trace_id", trace_id.as_str());
            }
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

/// The route template `path` matches in the server's route table and its dialect (`None`:
/// not a route, so no unbounded path becomes an attribute value).
fn route_of(path: &str) -> Option<(&'static str, &'static str)> {
    use crate::server::routes::{Dialect, ROUTES};
    ROUTES.iter().find_map(|route| {
        let template = route
            .paths()
            .find(|template| match template.strip_suffix("{id}") {
                Some(prefix) => path
                    .strip_prefix(prefix)
                    .is_some_and(|id| !id.is_empty() && !id.contains('/')),
                None => *template == path,
            })?;
        let dialect = match route.dialect {
            Dialect::Messages => "anthropic",
            Dialect::Responses => "responses",
            _ => "openai",
        };
        Some((template, dialect))
    })
}

/// The span of one attempt at the upstream for `model` (a GenAI client span). `reason` says
/// why this attempt was made when it is not the first (`429`, `key_switch`, `fallback`…).
pub(crate) fn attempt_span(
    model: &str,
    endpoint: &reqwest::Url,
    stream: bool,
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
        // Set if and only if the request streams (the conventions' rule).
        gen_ai.request.stream = stream.then_some(true),
        gen_ai.response.model = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.time_to_first_chunk = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.reasoning.output_tokens = Empty,
        server.address = endpoint.host_str(),
        server.port = endpoint.port_or_known_default().map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
        hunyuan_proxy.attempt = i64::from(attempt),
        hunyuan_proxy.attempt.reason = reason,
    )
}

/// An upstream attempt whose answer streams: its span and when it was sent (for the time to
/// first chunk).
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The attempt's span.
    pub(crate) span: Span,
    /// When the request was sent.
    pub(crate) sent_at: std::time::Instant,
    /// Whether OpenTelemetry records the span.
    pub(crate) recording: bool,
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

/// Whether the request span gets its `trace_id` field (for log lines): process-wide, set by
/// [`Telemetry::start`](super::Telemetry::start); on unless no log line can show the span.
#[cfg(feature = "otel")]
static LOG_TRACE_ID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the request span's `trace_id` field on or off.
#[cfg(feature = "otel")]
pub(crate) fn set_log_trace_id(on: bool) {
    LOG_TRACE_ID.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the request span gets its `trace_id` field.
fn log_trace_id() -> bool {
    #[cfg(feature = "otel")]
    {
        LOG_TRACE_ID.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "otel"))]
    {
        false
    }
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

/// The span of waiting for a free upstream slot: made only when none is free at once (a span
/// of nothing would cost every request its building and export).
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
        sampled(span).is_some()
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        false
    }
}

/// `span`'s OpenTelemetry span context when it is sampled (one look-up of its context).
#[cfg(feature = "otel")]
fn sampled(span: &Span) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_sampled().then_some(span_context)
}

/// `span`'s trace id (32 lowercase hex digits) when OpenTelemetry records it.
fn sampled_trace_id(span: &Span) -> Option<Hex<32>> {
    #[cfg(feature = "otel")]
    {
        sampled(span).map(|c| Hex::of(c.trace_id().to_bytes()))
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        None
    }
}

/// `N` lowercase hex digits, written without the formatting machinery.
#[derive(Clone, Copy)]
struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    /// The hex digits of `bytes` (`N` is twice their number).
    fn of<const B: usize>(bytes: [u8; B]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0; N];
        for (i, b) in bytes.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        Hex(out)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
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

/// Writes `span`'s W3C trace context (`traceparent`, and `tracestate` when it has one) into an
/// outgoing request's `headers` when OpenTelemetry records it; whether it does (what
/// [`is_recording`] says, without a second look-up of the span's context).
pub(crate) fn inject_context(span: &Span, headers: &mut HeaderMap) -> bool {
    #[cfg(feature = "otel")]
    if let Some(context) = sampled(span) {
        // `00-{trace id}-{span id}-01`: sampled, the only flag the propagator sends.
        let mut value = [0u8; 55];
        value[..3].copy_from_slice(b"00-");
        value[3..35].copy_from_slice(&Hex::<32>::of(context.trace_id().to_bytes()).0);
        value[35] = b'-';
        value[36..52].copy_from_slice(&Hex::<16>::of(context.span_id().to_bytes()).0);
        value[52..].copy_from_slice(b"-01");
        headers.insert(
            "traceparent",
            http::HeaderValue::from_bytes(&value).expect("hex digits and dashes"),
        );
        let state = context.trace_state().header();
        if !state.is_empty() {
            if let Ok(state) = http::HeaderValue::from_str(&state) {
                headers.insert("tracestate", state);
            }
        }
        return true;
    }
    let _ = (span, headers);
    false
}

/// Records what a chat completion (whole, or read from a stream) said about itself.
pub(crate) fn record_answer(span: &Span, answer: &AnswerFacts) {
    if let Some(id) = &answer.id {
        span.record("gen_ai.response.id", id.as_str());
    }
    if let Some(model) = &answer.model {
        span.record("gen_ai.response.model", model.as_str());
    }
    if let Some(usage) = answer.usage {
        span.record(
            "gen_ai.usage.input_tokens",
            saturating_i64(usage.input_tokens),
        );
        span.record(
            "gen_ai.usage.output_tokens",
            saturating_i64(usage.output_tokens),
        );
        if usage.cached_input_tokens > 0 {
            span.record(
                "gen_ai.usage.cache_read.input_tokens",
                saturating_i64(usage.cached_input_tokens),
            );
        }
        if usage.reasoning_tokens > 0 {
            span.record(
                "gen_ai.usage.reasoning.output_tokens",
                saturating_i64(usage.reasoning_tokens),
            );
        }
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

/// Records a streamed answer's time to first chunk, from its attempt's start
/// (`gen_ai.response.time_to_first_chunk`, seconds).
pub(crate) fn record_first_chunk(span: &Span, after: std::time::Duration) {
    span.record("gen_ai.response.time_to_first_chunk", after.as_secs_f64());
}

/// The facts of an answer a GenAI span carries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AnswerFacts {
    /// `id`.
    pub(crate) id: Option<String>,
    /// `model`.
    pub(crate) model: Option<String>,
    /// The tokens, as usage accounting reads them ([`find_usage`](crate::usage::find_usage)).
    pub(crate) usage: Option<crate::usage::Usage>,
    /// Each choice's `finish_reason`.
    pub(crate) finish_reasons: Vec<String>,
}

impl AnswerFacts {
    /// The facts of a whole chat completion (JSON), found by substring searches rather than a
    /// parse: `id` and `model` where the top level puts them, before `choices`; `usage` as
    /// usage accounting finds it (`usage`, the caller's search); every `finish_reason` with a
    /// value.
    pub(crate) fn of_answer(json: &[u8], usage: Option<crate::usage::Usage>) -> Self {
        let mut facts = AnswerFacts::default();
        facts.read_head(json);
        facts.usage = usage;
        facts.read_finish_reasons(json);
        facts
    }

    /// Takes `id` and `model` from one completion or chunk (JSON): the first of each before
    /// its `choices` (where OpenAI-style answers put them); failing that, a parse of the top
    /// level.
    pub(crate) fn read_head(&mut self, json: &[u8]) {
        let head = &json[..Key::Choices.find(json).unwrap_or(json.len())];
        let (id, model) = (string_value(head, Key::Id), string_value(head, Key::Model));
        if id.is_some() || model.is_some() {
            self.id = id.or(self.id.take());
            self.model = model.or(self.model.take());
            return;
        }
        #[derive(serde::Deserialize)]
        struct Head {
            id: Option<String>,
            model: Option<String>,
        }
        if let Ok(head) = serde_json::from_slice::<Head>(json) {
            self.id = head.id.or(self.id.take());
            self.model = head.model.or(self.model.take());
        }
    }

    /// Adds every `"finish_reason"` with a non-empty string value in `data`.
    pub(crate) fn read_finish_reasons(&mut self, data: &[u8]) {
        self.read_finish_reasons_where(data, |_, _| true);
    }

    /// [`read_finish_reasons`](Self::read_finish_reasons), only those whose key starts before
    /// `boundary` and whose value ends after it (the ones a chunk boundary cut).
    pub(crate) fn read_finish_reasons_across(&mut self, data: &[u8], boundary: usize) {
        self.read_finish_reasons_where(data, |at, end| at < boundary && end > boundary);
    }

    fn read_finish_reasons_where(&mut self, data: &[u8], keep: impl Fn(usize, usize) -> bool) {
        let mut from = 0;
        while let Some((reason, at, end)) = string_value_after(data, from, Key::FinishReason) {
            if keep(at, end) {
                if let Some(reason) = reason.filter(|r| !r.is_empty()) {
                    self.finish_reasons.push(reason);
                }
            }
            from = end;
        }
    }
}

/// The JSON keys looked for in answers, each with its substring searcher made once (making one
/// costs more than a search through a chunk).
#[derive(Debug, Clone, Copy)]
enum Key {
    Id,
    Model,
    Choices,
    FinishReason,
}

impl Key {
    /// Where the key (with its quotes) first is in `data`.
    fn find(self, data: &[u8]) -> Option<usize> {
        use memchr::memmem::Finder;
        use std::sync::LazyLock;
        static FINDERS: LazyLock<[Finder<'static>; 4]> = LazyLock::new(|| {
            [
                Finder::new(b"\"id\""),
                Finder::new(b"\"model\""),
                Finder::new(b"\"choices\""),
                Finder::new(b"\"finish_reason\""),
            ]
        });
        FINDERS[self as usize].find(data)
    }

    /// The key's length with its quotes.
    fn len(self) -> usize {
        match self {
            Key::Id => 4,
            Key::Model => 7,
            Key::Choices => 9,
            Key::FinishReason => 15,
        }
    }
}

/// The string value of the first `key` in `data` that has one.
fn string_value(data: &[u8], key: Key) -> Option<String> {
    let mut from = 0;
    while let Some((value, _, end)) = string_value_after(data, from, key) {
        if value.is_some() {
            return value;
        }
        from = end;
    }
    None
}

/// The next `key` outside a string in `data[from..]`: `(Some(value), at,
/// end)` when a whole string value follows it, `(None, at, end)` otherwise; `at` is where the
/// key starts, `end` where the search goes on (after the value, or after the key). `None`: no
/// further `key`.
fn string_value_after(
    data: &[u8],
    from: usize,
    key: Key,
) -> Option<(Option<String>, usize, usize)> {
    let at = from + key.find(&data[from..])?;
    let after_key = at + key.len();
    // `\"key\"` is text inside a string, not a key.
    if at > 0 && data[at - 1] == b'\\' {
        return Some((None, at, after_key));
    }
    let rest = &data[after_key..];
    let Some(value) = rest
        .trim_ascii_start()
        .strip_prefix(b":")
        .map(<[u8]>::trim_ascii_start)
    else {
        return Some((None, at, after_key));
    };
    let Some(inner) = value.strip_prefix(b"\"") else {
        return Some((None, at, after_key));
    };
    let inner_at = data.len() - inner.len();
    let mut end = 0;
    while let Some(stop) = memchr::memchr2(b'"', b'\\', &inner[end..]) {
        end += stop;
        if inner[end] == b'"' {
            let text = &inner[..end];
            let value = if memchr::memchr(b'\\', text).is_none() {
                std::str::from_utf8(text).ok().map(str::to_owned)
            } else {
                // Escapes: the JSON reader decodes the string.
                serde_json::from_slice::<String>(&value[..end + 2]).ok()
            };
            return Some((value, at, inner_at + end + 1));
        }
        end += 2; // an escaped character
        if end > inner.len() {
            break;
        }
    }
    // The string does not end in `data`.
    Some((None, at, data.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_facts_come_from_a_whole_completion_without_a_parse() {
        let answer = br#"{"id":"c1","object":"chat.completion","model":"m","choices":[
                {"index":0,"message":{"role":"assistant","content":"say \"finish_reason\": \"x\"",
                "tool_calls":[{"id":"call_1","type":"function"}]},"finish_reason":"tool_calls"},
                {"index":1,"message":{"content":"b"},"finish_reason" : "stop"}],
                "usage":{"prompt_tokens":7,"completion_tokens":3,
                "prompt_tokens_details":{"cached_tokens":4}}}"#;
        let found = crate::usage::find_usage(answer).map(|found| found.usage);
        let facts = AnswerFacts::of_answer(answer, found);
        assert_eq!(facts.id.as_deref(), Some("c1"));
        assert_eq!(facts.model.as_deref(), Some("m"));
        let usage = facts.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (7, 3));
        assert_eq!(usage.cached_input_tokens, 4);
        // The text that looks like a key is inside a string: not a reason.
        assert_eq!(facts.finish_reasons, ["tool_calls", "stop"]);
    }

    #[test]
    fn ids_after_the_choices_and_escaped_values_are_still_read() {
        // Keys in another order: the top level is parsed, a tool call's id is not the answer's.
        let facts = AnswerFacts::of_answer(
            br#"{"choices":[{"message":{"tool_calls":[{"id":"call_1"}]},"finish_reason":null}],"id":"c2","model":"m2"}"#,
            None,
        );
        assert_eq!(facts.id.as_deref(), Some("c2"));
        assert_eq!(facts.model.as_deref(), Some("m2"));
        assert!(facts.finish_reasons.is_empty());
        let facts = AnswerFacts::of_answer(br#"{"id":"a\"b","model":"m","choices":[]}"#, None);
        assert_eq!(facts.id.as_deref(), Some("a\"b"));
        assert_eq!(facts.usage, None);
    }

    #[test]
    fn keys_know_their_length() {
        for (key, text) in [
            (Key::Id, "\"id\""),
            (Key::Model, "\"model\""),
            (Key::Choices, "\"choices\""),
            (Key::FinishReason, "\"finish_reason\""),
        ] {
            assert_eq!(key.len(), text.len());
            assert_eq!(key.find(format!("{{{text}:1}}").as_bytes()), Some(1));
        }
    }

    #[test]
    fn hex_digits_are_lowercase_and_in_order() {
        assert_eq!(Hex::<8>::of([0x00, 0x9f, 0xa0, 0xff]).as_str(), "009fa0ff");
    }

    #[test]
    fn dialects_by_route() {
        assert_eq!(
            route_of("/v1/messages"),
            Some(("/v1/messages", "anthropic"))
        );
        assert_eq!(
            route_of("/v1/responses/resp_1"),
            Some(("/v1/responses/{id}", "responses"))
        );
        assert_eq!(
            route_of("/v1/chat/completions"),
            Some(("/v1/chat/completions", "openai"))
        );
        assert_eq!(route_of("/v1/unknown/path"), None);
    }
}
