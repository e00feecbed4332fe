//! The TokenHub preset (the default) end to end: a client's model honoured, images native or
//! described, and the per-model rules on the request the upstream gets.
//!
//! The upstream here is a small recording stand-in, not the in-repo mock: the mock's legacy
//! mode refuses TokenHub's model ids. Once the mock's TokenHub mode enforces the per-model
//! rules, these scenarios should also run against it and assert that it rejected nothing.

use crate::common::serve;
use axum::extract::State;
use axum::routing::post;
use axum::Json;
use hunyuan_proxy::config::{Config, Secret};
use hunyuan_proxy::Proxy;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<Value>>>;

/// The reasoning every stand-in answers a tool request with, with its label.
const REASONING: &str = "I will look at the files.";

/// A TokenHub stand-in: a describe request (an image for `hy4-flash` without tools) gets a
/// description; any other request a tool call with its reasoning (followed by the stand-in's
/// label, when it has one).
async fn upstream(
    State((seen, label)): State<(Seen, &'static str)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    seen.lock().unwrap().push(body.clone());
    let describe = body["model"] == "hy4-flash" && body.get("tools").is_none();
    let message = if describe {
        json!({"role": "assistant", "content": "A terminal showing `cargo test` passing."})
    } else {
        json!({"role": "assistant", "content": null,
               "reasoning_content": format!("{REASONING}{label}"),
               "tool_calls": [{"id": "call_up_1", "type": "function",
                               "function": {"name": "ls", "arguments": "{}"}}]})
    };
    Json(
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

struct Hub {
    seen: Seen,
    url: String,
    client: reqwest::Client,
}

/// The proxy with the default config (only `api_key` and `api_base` set) in front of the
/// stand-in.
async fn hub() -> Hub {
    hub_with(Arc::default(), "", None).await
}

/// A proxy in front of a stand-in that logs into `seen` and labels its reasoning with
/// `label`, sharing `redis_url` when given.
async fn hub_with(seen: Seen, label: &'static str, redis_url: Option<String>) -> Hub {
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(upstream))
        .with_state((seen.clone(), label));
    let addr = serve(router).await;
    let config = Config {
        api_base: Some(format!("http://{addr}/v1")),
        api_key: Some(Secret::new("sk-tokenhub-test")),
        redis_url: redis_url.map(Secret::new),
        redis_timeout_ms: 500,
        ..Config::default()
    };
    let proxy = Proxy::new(config).unwrap();
    let url = format!("http://{}", serve(proxy.router()).await);
    Hub {
        seen,
        url,
        client: reqwest::Client::new(),
    }
}

impl Hub {
    async fn chat(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    fn sent(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

fn screenshot(model: &str) -> Value {
    json!({"model": model,
        "tools": [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What does this show?"},
            {"type": "image_url", "image_url": {"url": "https://example.test/shot.png"}}]}]})
}

#[tokio::test]
async fn an_image_goes_natively_to_hy4_and_is_described_for_hy3() {
    let hub = hub().await;
    assert_eq!(hub.chat(&screenshot("hy4")).await.status(), 200);
    let sent = hub.sent();
    assert_eq!(
        sent.len(),
        1,
        "no describe call for a model that sees: {sent:?}"
    );
    assert_eq!(sent[0]["model"], "hy4");
    assert_eq!(
        sent[0]["messages"][0]["content"][1]["image_url"]["url"],
        "https://example.test/shot.png"
    );

    assert_eq!(hub.chat(&screenshot("hy3")).await.status(), 200);
    let sent = hub.sent();
    assert_eq!(
        sent.len(),
        3,
        "one describe call, then the request: {sent:?}"
    );
    assert_eq!(sent[1]["model"], "hy4-flash", "the default describer");
    assert_eq!(sent[2]["model"], "hy3", "the client's model is called");
    let text = sent[2]["messages"][0].to_string();
    assert!(text.contains("cargo test"), "{text}");
    assert!(!text.contains("image_url"), "{text}");
}

/// The first turn of a DeepSeek tool loop, then the next as the OpenAI SDK rebuilds it (no
/// `reasoning_content`, a forced tool choice); returns the answer to the second.
async fn tool_loop(first_hub: &Hub, next_hub: &Hub) -> reqwest::Response {
    let first = json!({"model": "deepseek-v4-flash",
        "tools": [{"type": "function", "function": {"name": "ls"}}],
        "messages": [{"role": "user", "content": "What is here?"}]});
    let answer: Value = first_hub.chat(&first).await.json().await.unwrap();
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_up_1");
    let next = json!({"model": "deepseek-v4-flash", "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "ls"}}],
        "messages": [
            {"role": "developer", "content": "Use the tools."},
            {"role": "user", "content": "What is here?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_up_1", "content": "a.txt"}]});
    next_hub.chat(&next).await
}

/// The assistant turn of the last request the upstream got.
fn replayed_turn(hub: &Hub) -> Value {
    let sent = hub.sent().pop().unwrap();
    sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn replicas_sharing_redis_replay_each_others_reasoning() {
    let Some(redis) = crate::redis_support::RedisServer::start() else {
        return;
    };
    let seen: Seen = Arc::default();
    let a = hub_with(seen.clone(), " (replica a)", Some(redis.url())).await;
    let b = hub_with(seen, " (replica b)", Some(redis.url())).await;
    // The first turn through replica A; its reasoning reaches Redis in the background.
    let first = json!({"model": "deepseek-v4-flash",
        "tools": [{"type": "function", "function": {"name": "ls"}}],
        "messages": [{"role": "user", "content": "What is here?"}]});
    a.chat(&first).await.bytes().await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stored: Option<String> = redis::cmd("GET")
            .arg("hunyuan-proxy:reasoning:call_up_1")
            .query_async(&mut conn)
            .await
            .unwrap();
        if stored.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A never wrote to Redis"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The next turn through replica B, which has never seen call_up_1.
    let next = json!({"model": "deepseek-v4-flash",
        "tools": [{"type": "function", "function": {"name": "ls"}}],
        "messages": [
            {"role": "user", "content": "What is here?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_up_1",
                "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_up_1", "content": "a.txt"}]});
    assert_eq!(b.chat(&next).await.status(), 200);
    assert_eq!(
        replayed_turn(&b)["reasoning_content"],
        format!("{REASONING} (replica a)")
    );
}

#[tokio::test]
async fn a_deepseek_tool_loop_from_the_openai_sdk_is_accepted() {
    let hub = hub().await;
    let response = tool_loop(&hub, &hub).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hunyuan-proxy-dropped"], "tool_choice");
    assert_eq!(replayed_turn(&hub)["reasoning_content"], REASONING);
    let sent = hub.sent().pop().unwrap();
    assert!(sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["role"] != "developer"));
    assert_eq!(sent["tool_choice"], "auto");
}

#[tokio::test]
async fn retired_and_third_party_rules_reach_the_upstream() {
    let hub = hub().await;
    let response = hub
        .chat(
            &json!({"model": "kimi-k3", "temperature": 0.2, "reasoning_effort": "low",
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(
        response.headers()["x-hunyuan-proxy-dropped"],
        "reasoning_effort, temperature"
    );
    hub.chat(
        &json!({"model": "minimax-m3", "thinking": {"type": "enabled"},
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    hub.chat(&json!({"model": "hunyuan-turbos-latest",
        "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let sent = hub.sent();
    assert!(sent[0].get("temperature").is_none());
    assert_eq!(sent[0]["reasoning_effort"], "max");
    assert_eq!(sent[1]["thinking"], json!({"type": "adaptive"}));
    assert_eq!(
        sent[2]["model"], "hy4-flash",
        "a retired id goes to its replacement"
    );
}
