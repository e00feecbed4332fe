//! Usage accounting, budgets, the request log and per-key stored responses, through the
//! whole proxy against the mock (TokenHub mode, so streams carry usage when asked).

use crate::common::{TestProxy, ADMIN_TOKEN};
use crate::redis_support::RedisServer;
use base64::Engine;
use hunyuan_proxy::config::{ClientKeyConfig, Config, Preset, Secret};
use hunyuan_proxy::mock::{MockConfig, MockHunyuan};
use hunyuan_proxy::rate_limit::RateLimit;
use hunyuan_proxy::usage::Budget;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The `hunyuan_proxy_usage_tokens_total` count in `metrics` for client key `key` and token
/// `kind`, summed over the other labels.
pub(crate) fn usage_counted(metrics: &str, key: &str, kind: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("hunyuan_proxy_usage_tokens_total{"))
        .filter(|l| {
            l.contains(&format!("key=\"{key}\"")) && l.contains(&format!("kind=\"{kind}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// A config with named keys `<prefix>-a`, `<prefix>-b` and `<prefix>-tiny` (budget: one
/// token a day).
pub(crate) fn keyed(config: &mut Config, prefix: &str) {
    config.upstream = Preset::Tokenhub;
    for name in ["a", "b", "tiny"] {
        let budget = (name == "tiny").then_some(Budget {
            tokens_per_day: Some(1),
            ..Budget::default()
        });
        config.client_keys.insert(
            format!("{prefix}-{name}"),
            ClientKeyConfig {
                key: Some(Secret::new(format!("sk-{prefix}-{name}-secret"))),
                budget,
                ..ClientKeyConfig::default()
            },
        );
    }
}

pub(crate) async fn tokenhub_mock() -> MockHunyuan {
    MockHunyuan::start_with(MockConfig::tokenhub()).await
}

async fn start(prefix: &str) -> TestProxy {
    let mock = tokenhub_mock().await;
    let mut config = TestProxy::config_for(&mock);
    keyed(&mut config, prefix);
    TestProxy::start_on(mock, config).await
}

pub(crate) async fn send(
    proxy: &TestProxy,
    key: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    proxy
        .client
        .post(proxy.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn admin_get(proxy: &TestProxy, path: &str) -> Value {
    proxy
        .client
        .get(proxy.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) fn chat(stream: bool) -> Value {
    let mut body = json!({
        "model": "hy4",
        "messages": [{"role": "user", "content": "Count the tokens of this sentence please"}],
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

pub(crate) fn image_chat() -> Value {
    let bytes: Vec<u8> = (0..2000u32).map(|n| (n as u8).wrapping_mul(31)).collect();
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    json!({
        "model": "hy3",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is on this screen?"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}],
        "tools": [{"type": "function", "function": {
            "name": "click", "description": "Click a button",
            "parameters": {"type": "object", "properties": {"label": {"type": "string"}}}
        }}]
    })
}

/// The usage a streamed chat answer reported in its last usage chunk.
async fn streamed_usage(response: reqwest::Response) -> (u64, u64) {
    let text = response.text().await.unwrap();
    let usage = text
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("the stream carried usage");
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn status_log_and_metrics_agree_with_the_upstreams_usage_to_the_token() {
    let proxy = start("acct").await;
    let (a, b) = ("sk-acct-a-secret", "sk-acct-b-secret");
    let mut expected = std::collections::HashMap::<&str, (u64, u64)>::new();
    let mut add = |key: &'static str, (i, o): (u64, u64)| {
        let e = expected.entry(key).or_default();
        e.0 += i;
        e.1 += o;
    };

    let r: Value = send(&proxy, a, "/v1/chat/completions", &chat(false))
        .await
        .json()
        .await
        .unwrap();
    add(
        "acct-a",
        (
            r["usage"]["prompt_tokens"].as_u64().unwrap(),
            r["usage"]["completion_tokens"].as_u64().unwrap(),
        ),
    );
    add(
        "acct-a",
        streamed_usage(send(&proxy, a, "/v1/chat/completions", &chat(true)).await).await,
    );
    let messages = json!({"model": "hy4", "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello from the Messages route"}]});
    let r: Value = send(&proxy, b, "/v1/messages", &messages)
        .await
        .json()
        .await
        .unwrap();
    add(
        "acct-b",
        (
            r["usage"]["input_tokens"].as_u64().unwrap(),
            r["usage"]["output_tokens"].as_u64().unwrap(),
        ),
    );
    let responses = json!({"model": "hy4", "input": "Hello from the Responses route"});
    let r: Value = send(&proxy, a, "/v1/responses", &responses)
        .await
        .json()
        .await
        .unwrap();
    add(
        "acct-a",
        (
            r["usage"]["input_tokens"].as_u64().unwrap(),
            r["usage"]["output_tokens"].as_u64().unwrap(),
        ),
    );
    let response = send(&proxy, b, "/v1/chat/completions", &image_chat()).await;
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();
    add(
        "acct-b",
        (
            r["usage"]["prompt_tokens"].as_u64().unwrap(),
            r["usage"]["completion_tokens"].as_u64().unwrap(),
        ),
    );

    let status = admin_get(&proxy, "/status").await;
    let today = &status["usage"]["today"];
    for (key, (input, output)) in &expected {
        let got = &today["by_key"][key];
        assert_eq!(got["input_tokens"], *input, "{key}: {got}");
        assert_eq!(got["output_tokens"], *output, "{key}: {got}");
        assert_eq!(&status["usage"]["this_month"]["by_key"][key], got);
    }
    assert_eq!(today["by_key"]["acct-a"]["requests"], 3);
    let hy4 = &today["by_model"]["hy4"];
    assert_eq!(hy4["requests"], 4);
    assert_eq!(hy4["currency"], "CNY");
    assert!(hy4["cost"].as_f64().unwrap() > 0.0, "{hy4}");
    assert_eq!(
        today["by_model"]["hy3"]["currency"],
        Value::Null,
        "no price for hy3"
    );
    assert_eq!(
        status["budgets"]["acct-tiny"][0]["budget"],
        "tokens_per_day"
    );
    assert_eq!(status["budgets"]["acct-tiny"][0]["used"], 0.0);

    let log = admin_get(&proxy, "/admin/requests").await;
    let rows = log["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{log}");
    assert_eq!(rows[0]["route"], "/v1/chat/completions");
    assert_eq!(rows[0]["images_described"], 1, "{}", rows[0]);
    assert_eq!(rows[0]["key"], "acct-b");
    assert!(rows[0]["upstream_request_id"].is_string(), "{}", rows[0]);
    assert!(
        rows[3]["ttft_ms"].is_u64(),
        "the stream has a time to first token"
    );
    assert!(rows[4]["ttft_ms"].is_null());
    let logged: u64 = rows
        .iter()
        .map(|r| r["input_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, expected.values().map(|e| e.0).sum::<u64>());
    let only_b = admin_get(&proxy, "/admin/requests?key=acct-b&limit=1").await;
    assert_eq!(only_b["requests"].as_array().unwrap().len(), 1);
    let denied = proxy.get("/admin/requests").await;
    assert_eq!(denied.status(), 401);
    let bad = proxy
        .client
        .get(proxy.url("/admin/requests?limit=lots"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let metrics = proxy.get("/metrics").await.text().await.unwrap();
    let counter = |key: &str, kind: &str| usage_counted(&metrics, key, kind);
    for (key, (input, output)) in &expected {
        assert_eq!(counter(key, "input"), *input, "{key}");
        assert_eq!(counter(key, "output"), *output, "{key}");
    }
    assert!(
        metrics.contains("key=\"vision\""),
        "the describer's tokens are counted as such"
    );
}

#[tokio::test]
async fn status_shows_usage_and_budgets_to_an_admin_only() {
    let proxy = start("peek").await;
    let response = send(
        &proxy,
        "sk-peek-a-secret",
        "/v1/chat/completions",
        &chat(false),
    )
    .await;
    assert_eq!(response.status(), 200);

    let admin = admin_get(&proxy, "/status").await;
    assert_eq!(admin["usage"]["today"]["by_key"]["peek-a"]["requests"], 1);
    assert_eq!(admin["budgets"]["peek-tiny"][0]["budget"], "tokens_per_day");
    assert!(
        admin["config"]["client_keys"]["peek-a"].is_object(),
        "{admin}"
    );

    let anonymous = proxy.client.get(proxy.url("/status"));
    let client_key = anonymous
        .try_clone()
        .unwrap()
        .bearer_auth("sk-peek-a-secret");
    let wrong_admin = anonymous
        .try_clone()
        .unwrap()
        .bearer_auth("not-the-admin-token");
    for (who, request) in [
        ("anonymous", anonymous),
        ("a client key", client_key),
        ("a wrong admin token", wrong_admin),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{who}");
        let status: Value = response.json().await.unwrap();
        assert!(status["version"].is_string(), "{who}: {status}");
        assert!(status["upstream"].is_object(), "{who}: {status}");
        assert!(status.get("usage").is_none(), "{who}: {status}");
        assert!(status.get("budgets").is_none(), "{who}: {status}");
        assert!(
            status["config"].is_object() && status["config"].get("client_keys").is_none(),
            "{who}: {status}"
        );
        assert!(!status.to_string().contains("peek-"), "{who}: {status}");
    }
}

#[tokio::test]
async fn a_spent_budget_answers_429_in_the_clients_dialect_and_other_keys_go_on() {
    let proxy = start("spend").await;
    let tiny = "sk-spend-tiny-secret";
    assert_eq!(
        send(&proxy, tiny, "/v1/chat/completions", &chat(false))
            .await
            .status(),
        200
    );
    let refused = send(&proxy, tiny, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tokens_per_day") && message.contains("resets at"),
        "{message}"
    );
    let messages = json!({"model": "hy4", "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}]});
    let refused = send(&proxy, tiny, "/v1/messages", &messages).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic's envelope: {body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let other = send(
        &proxy,
        "sk-spend-a-secret",
        "/v1/chat/completions",
        &chat(false),
    )
    .await;
    assert_eq!(other.status(), 200);
    let status = admin_get(&proxy, "/status").await;
    assert_eq!(status["budgets"]["spend-tiny"][0]["remaining"], 0.0);
}

#[tokio::test]
async fn two_replicas_on_one_redis_share_usage_and_budgets() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = tokenhub_mock().await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut config = TestProxy::config_for(&mock);
        keyed(&mut config, "shared");
        config.redis_url = Some(Secret::new(redis.url()));
        config.redis_timeout_ms = 500;
        replicas.push(TestProxy::start_on(mock.clone(), config).await);
    }
    let tiny = "sk-shared-tiny-secret";
    let first = send(&replicas[0], tiny, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(first.status(), 200);
    let r: Value = first.json().await.unwrap();
    let input = r["usage"]["prompt_tokens"].as_u64().unwrap();
    // The charge lands in Redis in a task of its own: wait for the other replica to see it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = admin_get(&replicas[1], "/status").await;
        if status["usage"]["today"]["by_key"]["shared-tiny"]["input_tokens"] == input {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica 2 never saw the usage: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = send(&replicas[1], tiny, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(
        refused.status(),
        429,
        "the budget spent on replica 1 holds on replica 2"
    );
    let other = send(
        &replicas[1],
        "sk-shared-b-secret",
        "/v1/chat/completions",
        &chat(false),
    )
    .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn a_stored_response_answers_404_to_every_other_key() {
    let proxy = start("owner").await;
    let (a, b) = ("sk-owner-a-secret", "sk-owner-b-secret");
    let r: Value = send(
        &proxy,
        a,
        "/v1/responses",
        &json!({"model": "hy4", "input": "Remember 7"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = r["id"].as_str().unwrap().to_owned();
    let get = |key: &'static str| {
        let request = proxy
            .client
            .get(proxy.url(&format!("/v1/responses/{id}")))
            .bearer_auth(key);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(get(b).await, 404);
    assert_eq!(get(a).await, 200);
    let follow = json!({"model": "hy4", "input": "And?", "previous_response_id": id});
    assert_eq!(
        send(&proxy, b, "/v1/responses", &follow).await.status(),
        404
    );
    assert_eq!(
        send(&proxy, a, "/v1/responses", &follow).await.status(),
        200
    );
    let delete = |key: &'static str| {
        let request = proxy
            .client
            .delete(proxy.url(&format!("/v1/responses/{id}")))
            .bearer_auth(key);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(delete(b).await, 404);
    assert_eq!(delete(a).await, 200);
}

/// A config with named keys `<prefix>-a` (a rate of its own: burst 2, next token in 100 s) and
/// `<prefix>-b` (on `client_rate_limit`: burst 5), from [`keyed`].
fn rated(config: &mut Config, prefix: &str) {
    keyed(config, prefix);
    config.client_rate_limit = Some(RateLimit::new(0.01, 5));
    config
        .client_keys
        .get_mut(&format!("{prefix}-a"))
        .unwrap()
        .rate_limit = Some(RateLimit::new(0.01, 2));
}

#[tokio::test]
async fn a_key_with_its_own_rate_limit_gets_429_while_another_key_goes_on() {
    let mock = tokenhub_mock().await;
    let mut config = TestProxy::config_for(&mock);
    rated(&mut config, "rl");
    let proxy = TestProxy::start_on(mock, config).await;
    let (a, b) = ("sk-rl-a-secret", "sk-rl-b-secret");
    for _ in 0..2 {
        let admitted = send(&proxy, a, "/v1/chat/completions", &chat(false)).await;
        assert_eq!(admitted.status(), 200);
    }
    let refused = send(&proxy, a, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry), "{retry}");
    let envelope: Value = refused.json().await.unwrap();
    assert_eq!(envelope["error"]["type"], "rate_limit_error", "{envelope}");
    assert!(!envelope.to_string().contains(a), "{envelope}");
    // In Anthropic's dialect on the Messages route, too.
    let messages = json!({"model": "hy4", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]});
    let refused = proxy
        .client
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", a)
        .header("anthropic-version", "2023-06-01")
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
    // Key B is on `client_rate_limit` (burst 5), untouched by A's bucket.
    for i in 0..5 {
        let response = send(&proxy, b, "/v1/chat/completions", &chat(false)).await;
        assert_eq!(response.status(), 200, "B's request {i}");
    }
    assert_eq!(
        send(&proxy, b, "/v1/chat/completions", &chat(false))
            .await
            .status(),
        429,
        "B's own burst of 5 is spent"
    );
}

#[tokio::test]
async fn a_keys_own_rate_limit_is_shared_by_replicas_under_its_name() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mock = tokenhub_mock().await;
        let mut config = TestProxy::config_for(&mock);
        rated(&mut config, "rr");
        config.redis_url = Some(Secret::new(redis.url()));
        config.redis_timeout_ms = 500;
        replicas.push(TestProxy::start_on(mock, config).await);
    }
    let (a, b) = ("sk-rr-a-secret", "sk-rr-b-secret");
    // One of A's two tokens through each replica; the third request, on either, is refused.
    for proxy in &replicas {
        let admitted = send(proxy, a, "/v1/chat/completions", &chat(false)).await;
        assert_eq!(admitted.status(), 200);
    }
    for proxy in &replicas {
        let refused = send(proxy, a, "/v1/chat/completions", &chat(false)).await;
        assert_eq!(refused.status(), 429, "burst 2 shared, not 2 per replica");
        assert!(refused.headers().contains_key("retry-after"));
    }
    for proxy in &replicas {
        let response = send(proxy, b, "/v1/chat/completions", &chat(false)).await;
        assert_eq!(response.status(), 200, "B goes on");
    }
    // The bucket is keyed by the key's name; no Redis key holds a secret.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.iter().any(|k| k.ends_with("rl:name:rr-a")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("secret")), "{keys:?}");
}
