//! OpenTelemetry traces from the `hunyuan-proxy` binary, received by an OTLP/HTTP receiver in
//! the test: a streamed Messages request with a screenshot whose first upstream attempt gets
//! a 429 is one trace (the client's), with the server span, the image description and its
//! vision call, and two attempt spans with their GenAI attributes; with no endpoint, nothing
//! is exported and no exporter thread runs; a collector that is down slows nothing.
//!
//! The binary runs as a child process, so its global subscriber and exporter are its own, not
//! shared with the other tests of this process.

use axum::body::Bytes;
use axum::routing::post;
use base64::Engine as _;
use hunyuan_proxy::mock::{Fault, MockConfig, MockHunyuan, MockPolicy};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_hunyuan-proxy");
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP traces receiver on `127.0.0.1:0`, keeping every span it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
                    }
                }
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let addr = crate::common::serve(router).await;
    (format!("http://{addr}"), spans)
}

/// Starts the binary against `mock` with `env`, and waits until it answers.
async fn start_proxy(mock: &MockHunyuan, env: &[(&str, &str)]) -> (Child, String) {
    start_proxy_with(mock, env, "").await
}

/// [`start_proxy`] with `extra` appended to its config file.
async fn start_proxy_with(
    mock: &MockHunyuan,
    env: &[(&str, &str)],
    extra: &str,
) -> (Child, String) {
    let config = format!(
        "upstream = \"hunyuan\"\napi_base = \"{}\"\napi_key = \"{}\"\nupstream_retry_backoff_ms = 10\n{extra}\n",
        mock.base_url(),
        crate::common::UPSTREAM_KEY
    );
    spawn_proxy(&config, env).await
}

/// Starts the binary with the config file `config` (plus a free `port`) and `env`, and waits
/// until it answers.
async fn spawn_proxy(config: &str, env: &[(&str, &str)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("hunyuan-proxy-otel-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    // The port first: `config` may end in a table.
    std::fs::write(&path, format!("port = {port}\n{config}\n")).unwrap();
    let config = path;
    let mut command = Command::new(BINARY);
    command
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
        "OTEL_SDK_DISABLED",
        "HUNYUAN_API_KEY",
        "HUNYUAN_API_BASE",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "hunyuan-proxy did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

/// A streamed Messages request with a screenshot, sent with the client's `traceparent`.
async fn screenshot_turn(base: &str) {
    let png: Vec<u8> = (0..2000u32).map(|n| (n * 13) as u8).collect();
    let data = base64::engine::general_purpose::STANDARD.encode(&png);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
            {"type": "text", "text": "What does the screenshot show?"}]}]});
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "any")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("message_stop"), "{text}");
}

/// The names of the child's threads (Linux).
fn thread_names(child: &Child) -> Vec<String> {
    let tasks = format!("/proc/{}/task", child.id());
    std::fs::read_dir(tasks)
        .map(|dir| {
            dir.filter_map(|task| {
                std::fs::read_to_string(task.ok()?.path().join("comm"))
                    .ok()
                    .map(|name| name.trim().to_owned())
            })
            .collect()
        })
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        AnyValue::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screenshot_turn_with_a_429_is_one_trace_of_the_clients() {
    // TokenHub's rules: a streamed answer ends with a usage chunk when asked for one.
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_policy(MockPolicy::TokenHub)).await;
    // The vision call first (answered), then the text model's first attempt: 429.
    mock.fail_next(1, Fault::Delay(Duration::ZERO));
    mock.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 0,
        },
    );
    let (endpoint, spans) = receiver().await;
    let (child, base) = start_proxy(
        &mock,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    screenshot_turn(&base).await;
    #[cfg(target_os = "linux")]
    let threads = thread_names(&child);
    // The server span ends last (with the body): wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let got = spans.lock().unwrap().clone();
        if got.iter().any(|s| {
            s.kind == SpanKind::Server as i32 && text(s, "http.route") == Some("/v1/messages")
        }) {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "no server span exported: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop(child);
    #[cfg(target_os = "linux")]
    assert!(
        threads.iter().any(|t| t.starts_with("OpenTelemetry")),
        "{threads:?}"
    );

    // The readiness probe of `start_proxy` is a trace of its own.
    let spans: Vec<Span> = spans
        .into_iter()
        .filter(|s| text(s, "http.route") != Some("/health/live"))
        .collect();
    // Message contents are off by default: the prompt is on no span.
    assert_nowhere(&spans, "What does the screenshot show?");
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for span in &spans {
        assert_eq!(hex(&span.trace_id), CLIENT_TRACE, "{names:?}");
    }
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(server.name, "POST /v1/messages");
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(text(server, "http.request.method"), Some("POST"));
    assert_eq!(text(server, "http.route"), Some("/v1/messages"));
    assert_eq!(
        int(server, "http.response.status_code"),
        Some(200),
        "{server:?}"
    );
    assert_eq!(text(server, "hunyuan_proxy.dialect"), Some("anthropic"));

    let describe = spans
        .iter()
        .find(|s| s.name == "describe image")
        .unwrap_or_else(|| panic!("no description span: {names:?}"));
    assert_eq!(describe.parent_span_id, server.span_id);
    assert_eq!(text(describe, "hunyuan_proxy.cache.outcome"), Some("miss"));

    let requests = mock.requests();
    let chats: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .collect();
    assert_eq!(chats.len(), 3, "vision call, 429, answer");
    let model_of = |i: usize| chats[i].body.as_ref().unwrap()["model"].as_str().unwrap();
    let (vision_model, text_model) = (model_of(0), model_of(2));

    let vision = spans
        .iter()
        .find(|s| s.name == format!("chat {vision_model}"))
        .unwrap_or_else(|| panic!("no vision attempt span: {names:?}"));
    assert_eq!(vision.parent_span_id, describe.span_id);

    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == format!("chat {text_model}"))
        .collect();
    attempts.sort_by_key(|s| int(s, "hunyuan_proxy.attempt"));
    assert_eq!(attempts.len(), 2, "{names:?}");
    for attempt in &attempts {
        assert_eq!(attempt.kind, SpanKind::Client as i32);
        assert_eq!(attempt.parent_span_id, server.span_id);
        assert_eq!(text(attempt, "gen_ai.operation.name"), Some("chat"));
        assert_eq!(text(attempt, "gen_ai.request.model"), Some(text_model));
        assert_eq!(
            text(attempt, "gen_ai.provider.name"),
            Some("tencent.hunyuan")
        );
        assert_eq!(text(attempt, "server.address"), Some("127.0.0.1"));
    }
    let (first, second) = (attempts[0], attempts[1]);
    assert_eq!(int(first, "http.response.status_code"), Some(429));
    assert_eq!(text(first, "error.type"), Some("429"));
    assert_eq!(text(second, "hunyuan_proxy.attempt.reason"), Some("429"));
    assert_eq!(text(second, "error.type"), None);
    assert!(text(second, "gen_ai.response.id").is_some_and(|id| !id.is_empty()));
    assert_eq!(text(second, "gen_ai.response.model"), Some(text_model));
    assert!(
        int(second, "gen_ai.usage.input_tokens").is_some_and(|n| n > 0),
        "{second:?}"
    );
    assert!(int(second, "gen_ai.usage.output_tokens").is_some_and(|n| n > 0));
    let Some(AnyValue::ArrayValue(reasons)) = attribute(second, "gen_ai.response.finish_reasons")
    else {
        panic!("no finish reasons: {second:?}");
    };
    assert!(!reasons.values.is_empty());
    // The streamed attempt: its time to first chunk, within the span, which stays open while
    // its stream is relayed.
    assert_eq!(
        attribute(second, "gen_ai.request.stream"),
        Some(&AnyValue::BoolValue(true))
    );
    assert_eq!(
        attribute(first, "gen_ai.request.stream"),
        Some(&AnyValue::BoolValue(true))
    );
    let Some(AnyValue::DoubleValue(first_chunk)) =
        attribute(second, "gen_ai.response.time_to_first_chunk")
    else {
        panic!("no time to first chunk: {second:?}");
    };
    let lasted = (second.end_time_unix_nano - second.start_time_unix_nano) as f64 / 1e9;
    assert!(
        *first_chunk > 0.0 && *first_chunk <= lasted,
        "{first_chunk} s of {lasted} s: {second:?}"
    );
    assert_eq!(
        attribute(first, "gen_ai.response.time_to_first_chunk"),
        None
    );

    // The upstream call carried the attempt's own context onwards.
    let traceparent = chats[2].headers["traceparent"].to_str().unwrap();
    assert_eq!(
        traceparent,
        format!("00-{CLIENT_TRACE}-{}-01", hex(&second.span_id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported_and_no_exporter_runs() {
    let mock = MockHunyuan::start().await;
    let (_endpoint, spans) = receiver().await;
    // A schedule delay that would export within the wait below, were anything traced.
    let (child, base) = start_proxy(&mock, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]).await;
    screenshot_turn(&base).await;
    #[cfg(target_os = "linux")]
    let threads = thread_names(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop(child);
    #[cfg(target_os = "linux")]
    assert!(
        !threads.is_empty() && !threads.iter().any(|t| t.starts_with("OpenTelemetry")),
        "{threads:?}"
    );
    assert!(spans.lock().unwrap().is_empty());
    let requests = mock.requests();
    assert!(requests
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .all(|r| !r.headers.contains_key("traceparent")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_does_not_slow_requests() {
    let mock = MockHunyuan::start().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let (child, base) = start_proxy(
        &mock,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
        ],
    )
    .await;
    let started = Instant::now();
    for _ in 0..5 {
        screenshot_turn(&base).await;
    }
    let took = started.elapsed();
    stop(child);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Every string in `span`'s attributes and its events' attributes.
fn strings(span: &Span) -> Vec<String> {
    fn collect(value: &AnyValue, out: &mut Vec<String>) {
        match value {
            AnyValue::StringValue(s) => out.push(s.clone()),
            AnyValue::ArrayValue(array) => array
                .values
                .iter()
                .filter_map(|v| v.value.as_ref())
                .for_each(|v| collect(v, out)),
            AnyValue::KvlistValue(list) => list
                .values
                .iter()
                .filter_map(|kv| kv.value.as_ref()?.value.as_ref())
                .for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut out = vec![span.name.clone()];
    let attributes = span
        .attributes
        .iter()
        .chain(span.events.iter().flat_map(|e| e.attributes.iter()));
    for kv in attributes {
        if let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            collect(value, &mut out);
        }
    }
    out
}

/// Asserts that `needle` is in no name or attribute of `spans`.
fn assert_nowhere(spans: &[Span], needle: &str) {
    for span in spans {
        for value in strings(span) {
            assert!(!value.contains(needle), "{needle:?} exported in {span:?}");
        }
    }
}

/// Waits until `spans` holds a server span of `route` and returns every span but the
/// readiness probes'.
async fn spans_of(spans: &Arc<Mutex<Vec<Span>>>, route: &str) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = spans.lock().unwrap().clone();
        if got
            .iter()
            .any(|s| s.kind == SpanKind::Server as i32 && text(s, "http.route") == Some(route))
        {
            return got
                .into_iter()
                .filter(|s| text(s, "http.route") != Some("/health/live"))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "no server span of {route}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A chat completion sent with `key`; its answer's text (whole or streamed).
async fn chat(base: &str, key: &str, prompt: &str, stream: bool) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "hunyuan-turbos-latest", "stream": stream,
            "messages": [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

const ALICE_KEY: &str = "sk-alice-7f3c9e1d5b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_names_the_client_key_never_the_key_and_no_contents_by_default() {
    let mock = MockHunyuan::start().await;
    let (endpoint, spans) = receiver().await;
    let (child, base) = start_proxy_with(
        &mock,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
        &format!("[client_keys.alice]\nkey = \"{ALICE_KEY}\"\n"),
    )
    .await;
    let prompt = "Name three rivers of Yunnan.";
    chat(&base, ALICE_KEY, prompt, true).await;
    let spans = spans_of(&spans, "/v1/chat/completions").await;
    stop(child);
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(
        text(server, "hunyuan_proxy.client_key.name"),
        Some("alice"),
        "{server:?}"
    );
    assert!(
        spans.iter().any(|s| s.name == "chat hunyuan-turbos-latest"),
        "{spans:?}"
    );
    assert_nowhere(&spans, ALICE_KEY);
    assert_nowhere(&spans, prompt);
    assert_nowhere(&spans, "Answer briefly.");
    for span in &spans {
        assert!(attribute(span, "gen_ai.input.messages").is_none());
        assert!(attribute(span, "gen_ai.output.messages").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_capture_content_the_attempt_span_holds_the_messages() {
    let mock = MockHunyuan::start().await;
    let (endpoint, spans) = receiver().await;
    let (child, base) = start_proxy_with(
        &mock,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
        "otel_capture_content = true\n",
    )
    .await;
    let prompt = "Name three rivers of Yunnan.";
    for stream in [false, true] {
        spans.lock().unwrap().clear();
        let answer = chat(&base, "any", prompt, stream).await;
        let spans = spans_of(&spans, "/v1/chat/completions").await;
        let attempt = spans
            .iter()
            .find(|s| s.name == "chat hunyuan-turbos-latest")
            .unwrap_or_else(|| panic!("no attempt span: {spans:?}"));
        let input: serde_json::Value =
            serde_json::from_str(text(attempt, "gen_ai.input.messages").unwrap()).unwrap();
        assert_eq!(
            input,
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "Answer briefly."}]},
                {"role": "user", "parts": [{"type": "text", "content": prompt}]}
            ])
        );
        let output: serde_json::Value =
            serde_json::from_str(text(attempt, "gen_ai.output.messages").unwrap()).unwrap();
        let message = &output[0];
        assert_eq!(message["role"], "assistant", "{output}");
        assert!(
            message["finish_reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{output}"
        );
        let said = message["parts"][0]["content"].as_str().unwrap();
        assert!(!said.is_empty(), "{output}");
        if !stream {
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(
                said, answer["choices"][0]["message"]["content"],
                "stream {stream}"
            );
        } else {
            // The streamed text, put together from its deltas.
            let streamed: String = answer
                .lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
                .filter_map(|chunk| {
                    chunk["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            assert_eq!(said, streamed);
        }
    }
    stop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_calls_within_a_request_are_spans_of_its_trace() {
    let Some(redis) = crate::redis_support::RedisServer::start() else {
        return;
    };
    let mock = MockHunyuan::start().await;
    let (endpoint, spans) = receiver().await;
    let (child, base) = start_proxy_with(
        &mock,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
        &format!("redis_url = \"{}\"\n", redis.url()),
    )
    .await;
    screenshot_turn(&base).await;
    let spans = spans_of(&spans, "/v1/messages").await;
    stop(child);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let calls: Vec<&Span> = spans
        .iter()
        .filter(|s| text(s, "db.system.name") == Some("redis"))
        .collect();
    // The description cache: a lookup before the vision call.
    let lookup = calls
        .iter()
        .find(|s| s.name == "redis cache_get")
        .unwrap_or_else(|| panic!("no Redis cache lookup span: {names:?}"));
    assert_eq!(lookup.kind, SpanKind::Client as i32);
    assert_eq!(text(lookup, "hunyuan_proxy.redis.op"), Some("cache_get"));
    assert_eq!(text(lookup, "error.type"), None);
    for call in &calls {
        assert_eq!(hex(&call.trace_id), CLIENT_TRACE, "{names:?}");
        assert!(
            spans.iter().any(|s| s.span_id == call.parent_span_id),
            "a Redis span outside the request's tree: {call:?}"
        );
    }
}

/// The "done when": a real Claude Code turn with a screenshot (`claude -p` reading a
/// PNG on `hy3`, a text-only model, so the proxy describes the image) through the binary, on
/// the TokenHub mock with a config of only a key and a base, is one tree at the OTLP receiver:
/// the `/v1/messages` request, the image description with its vision call, and the `hy3`
/// attempt with its GenAI attributes and token usage. Runs when `HUNYUAN_PROXY_CLAUDE_BIN`
/// names Claude Code (`.ci/run` installs it); prints a skip line otherwise.
///
/// Claude Code 2.1.337 sends no `traceparent`, not even with its own tracing on
/// (`CLAUDE_CODE_ENHANCED_TELEMETRY_BETA`): the server span of each of its requests is a
/// root: keeping a client's trace id is asserted with a raw request above, and here only
/// when a `traceparent` came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_code_turn_with_a_screenshot_is_one_tree() {
    let Some(claude) = crate::tokenhub_clients::agent(
        "HUNYUAN_PROXY_CLAUDE_BIN",
        "npm i @anthropic-ai/claude-code@2.1.337",
    ) else {
        return;
    };
    let mock = MockHunyuan::start_with(MockConfig::tokenhub()).await;
    let (endpoint, spans) = receiver().await;
    let config = format!(
        "api_base = \"{}\"\napi_key = \"sk-tokenhub-test\"\n",
        mock.base_url()
    );
    let (child, base) = spawn_proxy(
        &config,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let work = crate::agents::TempDir::new("claude-otel");
    let shot = work.0.join("shot.png");
    let png = crate::tokenhub_clients::png();
    std::fs::write(&shot, &png).unwrap();
    let prompt = format!("Use Read with file_path={}", shot.display());
    let answer = crate::tokenhub_clients::claude(&claude, &base, &work.0, "hy3", &prompt).await;
    assert!(answer.contains("Description of image "), "{answer}");

    // The request that carried the screenshot: the server span the description hangs on,
    // exported once its streamed answer ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (spans, server) = loop {
        let got = spans.lock().unwrap().clone();
        let server = got
            .iter()
            .filter(|s| s.name == "describe image")
            .find_map(|d| got.iter().find(|s| s.span_id == d.parent_span_id))
            .cloned();
        if let Some(server) = server {
            break (got, server);
        }
        assert!(
            Instant::now() < deadline,
            "no description under an exported request span: {:?}",
            got.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop(child);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(server.kind, SpanKind::Server as i32, "{server:?}");
    assert_eq!(server.name, "POST /v1/messages");
    assert_eq!(text(&server, "hunyuan_proxy.dialect"), Some("anthropic"));
    assert_eq!(int(&server, "http.response.status_code"), Some(200));
    let tree: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == server.trace_id)
        .collect();
    let children_of = |parent: &Span| -> Vec<&Span> {
        tree.iter()
            .copied()
            .filter(|s| s.parent_span_id == parent.span_id)
            .collect()
    };
    // A client's `traceparent`, when one came, is the server span's parent.
    if server.parent_span_id.is_empty() {
        println!("Claude Code sent no traceparent: its request is the trace's root");
    } else {
        assert!(
            !tree.iter().any(|s| s.span_id == server.parent_span_id),
            "the server span's parent is the client's, not the proxy's: {names:?}"
        );
    }

    let describe = children_of(&server)
        .into_iter()
        .find(|s| s.name == "describe image")
        .unwrap();
    assert_eq!(text(describe, "hunyuan_proxy.cache.outcome"), Some("miss"));
    let vision = children_of(describe);
    let [vision] = vision.as_slice() else {
        panic!("one vision call under the description: {vision:?}");
    };
    let vision_model = text(vision, "gen_ai.request.model").unwrap();
    assert_eq!(vision.name, format!("chat {vision_model}"));
    assert_ne!(vision_model, "hy3");

    let attempts: Vec<&Span> = children_of(&server)
        .into_iter()
        .filter(|s| s.name == "chat hy3")
        .collect();
    assert!(
        !attempts.is_empty(),
        "no hy3 attempt under the request: {names:?}"
    );
    for span in attempts.iter().chain([vision]) {
        assert_eq!(span.kind, SpanKind::Client as i32, "{span:?}");
        assert_eq!(text(span, "gen_ai.operation.name"), Some("chat"));
        assert_eq!(text(span, "gen_ai.provider.name"), Some("tencent.hunyuan"));
        assert_eq!(text(span, "server.address"), Some("127.0.0.1"));
    }
    let answered = attempts.last().unwrap();
    assert_eq!(text(answered, "error.type"), None, "{answered:?}");
    assert_eq!(text(answered, "gen_ai.response.model"), Some("hy3"));
    assert!(text(answered, "gen_ai.response.id").is_some_and(|id| !id.is_empty()));
    for span in [*answered, *vision] {
        for tokens in ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"] {
            assert!(
                int(span, tokens).is_some_and(|n| n > 0),
                "{tokens}: {span:?}"
            );
        }
        assert!(
            matches!(attribute(span, "gen_ai.response.finish_reasons"),
                Some(AnyValue::ArrayValue(reasons)) if !reasons.values.is_empty()),
            "{span:?}"
        );
    }
    // Contents are off by default: neither the prompt nor the description is exported.
    assert_nowhere(&spans, "Use Read with file_path=");
    assert_nowhere(&spans, "Description of image ");
}
