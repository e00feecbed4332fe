//! TokenHub as the upstream, through the proxy, against the mock's TokenHub mode: a 402 is about
//! one model (no key cooldown), a 451 is each dialect's refusal, a 429 moves to another key; and
//! the mock's TokenHub mode itself (its key check, model list and envelopes over HTTP).

use crate::common::*;
use hunyuan_proxy::config::{Preset, Secret};
use hunyuan_proxy::mock::{
    Fault, MockConfig, MockHunyuan, MSG_DEEPSEEK_REPLAY, MSG_INVALID_KEY, MSG_NOT_ENABLED,
    SAW_NO_IMAGE,
};
use serde_json::{json, Value};

/// A proxy on the TokenHub preset in front of a TokenHub-mode mock made from `mock`.
async fn tokenhub_proxy(
    mock: MockConfig,
    edit: impl FnOnce(&mut hunyuan_proxy::config::Config),
) -> TestProxy {
    let mock = MockHunyuan::start_with(mock).await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream = Preset::Tokenhub;
    edit(&mut config);
    TestProxy::start_on(mock, config).await
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}], "stream": stream})
}

fn chat_requests_for(mock: &MockHunyuan, model: &str) -> usize {
    mock.chat_requests()
        .iter()
        .filter(|body| body["model"] == model)
        .count()
}

#[tokio::test]
async fn a_402_on_one_model_cools_no_key_and_another_model_keeps_working() {
    let t = tokenhub_proxy(
        MockConfig::tokenhub().with_disabled_model("deepseek-v4-pro"),
        |_| {},
    )
    .await;
    for _ in 0..2 {
        let refused = t
            .post("/v1/chat/completions", &chat("deepseek-v4-pro", false))
            .await;
        let body = expect_envelope(refused, 402).await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`deepseek-v4-pro`"), "{message}");
        assert!(
            message.contains("enable the model or top up in the TokenHub console"),
            "{message}"
        );
        assert!(message.contains("FREE_QUOTA_EXHAUSTED"), "{message}");
        assert_eq!(body["error"]["code"], "model_not_enabled");

        // The only key is not cooling down: another model on it answers at once.
        let served = t.post("/v1/chat/completions", &chat("hy4", false)).await;
        assert_eq!(served.status(), 200, "{}", served.text().await.unwrap());
    }
    // Each refusal was asked once: a 402 is not retried, nor sent to another key.
    assert_eq!(chat_requests_for(&t.mock, "deepseek-v4-pro"), 2);
    assert_eq!(chat_requests_for(&t.mock, "hy4"), 2);

    // Claude Code sees Anthropic's billing error, naming the model.
    let response = t
        .client
        .post(t.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "deepseek-v4-pro", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "billing_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`deepseek-v4-pro`"));
}

#[tokio::test]
async fn a_451_is_the_refusal_of_each_dialect() {
    let t = tokenhub_proxy(
        MockConfig::tokenhub().with_model_fault("hy4", Fault::Status(451)),
        |_| {},
    )
    .await;

    // Chat: a refusal with finish_reason content_filter and no text, whole and streamed.
    let response = t.post("/v1/chat/completions", &chat("hy4", false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(body["choices"][0]["message"]["content"], "");
    let events = sse_data(t.post("/v1/chat/completions", &chat("hy4", true)).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        events
            .iter()
            .any(|e| e.contains(r#""finish_reason":"content_filter""#)),
        "{events:?}"
    );

    // Messages: stop_reason refusal.
    let response = t
        .client
        .post(t.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "hy4", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stop_reason"], "refusal", "{body}");

    // Responses: incomplete, reason content_filter.
    let response = t
        .post("/v1/responses", &json!({"model": "hy4", "input": "hi"}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "incomplete", "{body}");
    assert_eq!(
        body["incomplete_details"]["reason"], "content_filter",
        "{body}"
    );

    // Nothing of the upstream's text reached a client, and the model was asked once each time.
    assert_eq!(chat_requests_for(&t.mock, "hy4"), 4);
}

#[tokio::test]
async fn a_429_moves_the_request_to_the_second_key() {
    const BUSY: &str = "sk-tokenhub-at-its-rpm";
    const GOOD: &str = "sk-tokenhub-second";
    let t = tokenhub_proxy(
        MockConfig::tokenhub().with_key_fault(
            BUSY,
            Fault::RateLimited {
                retry_after_secs: 30,
            },
        ),
        |config| {
            config.api_key = Some(Secret::new(BUSY));
            config.api_keys = vec![Secret::new(GOOD)];
        },
    )
    .await;
    let response = t
        .post("/v1/chat/completions", &chat("hy4-flash", false))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let keys: Vec<String> = t
        .mock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, [format!("Bearer {BUSY}"), format!("Bearer {GOOD}")]);
}

#[tokio::test]
async fn the_tokenhub_mock_checks_keys_lists_statuses_and_enforces_the_rules_over_http() {
    let mock = MockHunyuan::start_with(
        MockConfig::tokenhub()
            .with_api_key("sk-right")
            .with_disabled_model("kimi-k3")
            .with_offline_model("glm-5.3"),
    )
    .await;
    let client = reqwest::Client::new();
    let post = |key: &'static str, body: Value| {
        client
            .post(format!("{}/chat/completions", mock.base_url()))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["error"].clone())
    };

    let (status, err) = error(post("sk-wrong", chat("hy4", false)).await.unwrap()).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (401, Some(MSG_INVALID_KEY))
    );
    assert_eq!(err["type"], "authentication_error");
    assert!(err["request_id"].is_string() && err["source"].is_string());

    let (status, err) = error(post("sk-right", chat("gpt-4o", false)).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("gpt-4o"), "{err}");

    let (status, err) = error(post("sk-right", chat("kimi-k3", false)).await.unwrap()).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (402, Some(MSG_NOT_ENABLED))
    );

    let replay = json!({"model": "deepseek-v4-flash", "messages": [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
    ]});
    let (status, err) = error(post("sk-right", replay).await.unwrap()).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some(MSG_DEEPSEEK_REPLAY))
    );

    // hy3 ignores the image silently: a 200 whose answer says it saw none.
    let image = json!({"model": "hy3", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]}]});
    let response = post("sk-right", image).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.ends_with(SAW_NO_IMAGE), "{content}");
    assert_eq!(
        mock.chat_requests().last().unwrap()["messages"][0]["content"][1]["type"],
        "image_url",
        "the mock records what it received"
    );

    let models: Value = client
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth("sk-right")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_of = |id: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["status"].clone())
    };
    assert_eq!(status_of("hy4"), Some(json!("online")));
    assert_eq!(status_of("glm-5.3"), Some(json!("offline")));
    let unauthorized = client
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    mock.stop().await;
}

#[tokio::test]
async fn discovery_names_an_offline_configured_model_in_health_and_models_lists_online_ones() {
    let t = tokenhub_proxy(MockConfig::tokenhub().with_offline_model("hy3"), |config| {
        config.text_model = Some("hy3".into());
        config
            .model_aliases
            .insert("claude-haiku*".into(), "hy4-flash".into());
        config
            .model_aliases
            .insert("my-coder".into(), "deepseek-v4-flash".into());
    })
    .await;
    let components = |health: &Value| health["components"]["models"].clone();

    // Before the first look, nothing is claimed.
    let health: Value = t.get("/health").await.json().await.unwrap();
    assert_eq!(components(&health)["status"], "healthy", "{health}");

    // hy3 is the configured text model, and offline here.
    let missing = t
        .proxy
        .refresh_models()
        .await
        .expect("the mock lists its models");
    let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
    assert_eq!(missing, ["hy3 (offline)"]);
    let health: Value = t.get("/health").await.json().await.unwrap();
    let models = components(&health);
    assert_eq!(models["status"], "degraded", "{health}");
    assert!(
        models["message"]
            .as_str()
            .unwrap()
            .contains("hy3 (offline)"),
        "{models}"
    );
    assert_eq!(models["critical"], false, "{models}");
    let ready = t.get("/health/ready").await;
    assert_eq!(
        ready.status(),
        200,
        "a model offline does not make the proxy unready"
    );

    // OpenAI's shape: the online models, the exact alias, Claude ids for claude-*.
    let list: Value = t.get("/v1/models").await.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"hy4") && ids.contains(&"deepseek-v4-flash"),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"hy3"),
        "an offline model is not offered: {ids:?}"
    );
    assert!(ids.contains(&"my-coder"), "{ids:?}");
    for claude in hunyuan_proxy::server::CLAUDE_MODEL_IDS {
        assert!(ids.contains(claude), "{claude} missing from {ids:?}");
    }
    assert_eq!(list["data"][0]["object"], "model");
    // Each model the profile table knows says what it can do.
    let entry = |id: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry("hy4")["capabilities"]["images"], true, "{list}");
    let deepseek = entry("deepseek-v4-flash");
    assert_eq!(deepseek["capabilities"]["images"], false, "{deepseek}");
    assert_eq!(
        deepseek["capabilities"]["reasoning_replay"], true,
        "{deepseek}"
    );

    // Claude Code's discovery: anthropic-version and x-api-key.
    let list: Value = t
        .client
        .get(t.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-claude-code")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], data[0]["id"]);
    assert_eq!(list["last_id"], data[data.len() - 1]["id"]);
    for model in data {
        assert_eq!(model["type"], "model");
        assert!(model["display_name"].is_string());
        let created = model["created_at"].as_str().unwrap();
        assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    }
    let claude: Vec<&str> = data
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .filter(|id| id.starts_with("claude"))
        .collect();
    assert_eq!(claude, hunyuan_proxy::server::CLAUDE_MODEL_IDS);
}

#[tokio::test]
async fn discovery_against_the_legacy_mock_is_harmless() {
    // The legacy mock lists its models with no status: every listed one counts as online.
    let t = TestProxy::start().await;
    let missing = t
        .proxy
        .refresh_models()
        .await
        .expect("the legacy mock lists its models");
    assert!(missing.is_empty(), "{missing:?}");
    let health: Value = t.get("/health").await.json().await.unwrap();
    assert_eq!(
        health["components"]["models"]["status"], "healthy",
        "{health}"
    );
    assert_eq!(health["status"], "healthy", "{health}");
}
