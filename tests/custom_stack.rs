//! `examples/custom_stack.rs`, run against the mock: the reordered stack (metrics outermost,
//! cascade before fix, the user's describer behind a hand-built cache) answers correctly and
//! calls the user's describer, not the vision model; the stack without the cascade runs the
//! user's layer between the fixer and the upstream, and that layer sees the fixed messages.
//! Public API only.

// The example itself, so that the test runs exactly its setup.
#[path = "../examples/custom_stack.rs"]
mod custom_stack;

mod common;

use common::{serve, sse_data};
use custom_stack::{PLAIN_ROUTE, REORDERED_ROUTE};
use hunyuan_proxy::config::{Config, Secret};
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;

struct Setup {
    mock: MockHunyuan,
    reordered: custom_stack::Reordered,
    plain: custom_stack::WithoutCascade,
    addr: SocketAddr,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let mock = MockHunyuan::start().await;
    let config = Config {
        api_base: Some(mock.base_url()),
        api_key: Some(Secret::new("custom-stack-key")),
        ..Config::default()
    };
    let upstream = Upstream::new(UpstreamConfig::from_config(&config)).unwrap();
    let reordered = custom_stack::reordered(&config, upstream.clone()).unwrap();
    let plain = custom_stack::without_cascade(&config, upstream).unwrap();
    let addr = serve(custom_stack::router(&reordered, &plain)).await;
    Setup {
        mock,
        reordered,
        plain,
        addr,
        client: reqwest::Client::new(),
    }
}

impl Setup {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("http://{}{path}", self.addr))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// A conversation the mock (like Hunyuan) refuses unless it is fixed: a `developer` message
/// after the user's, and a trailing assistant prefill.
fn unfixed_messages(user: Value) -> Value {
    json!([
        {"role": "user", "content": user},
        {"role": "developer", "content": "Be brief."},
        {"role": "assistant", "content": "It shows"}
    ])
}

#[tokio::test]
async fn the_reordered_stack_answers_correctly_with_the_users_describer() {
    let s = setup().await;
    let question = json!([
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/pics/cat.png?size=2"}}
    ]);
    let body = json!({"model": "hunyuan-turbos-latest", "messages": unfixed_messages(question)});

    let first = s.post(REORDERED_ROUTE, &body).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    // The mock echoes the last user text: the fixer's continue turn, after the cascade's
    // description went into the (merged, flattened) conversation.
    assert_eq!(first["object"], "chat.completion", "{first}");
    assert_eq!(first["choices"][0]["finish_reason"], "stop", "{first}");

    // The upstream got the text model, the user's description, and a fixed conversation.
    let sent = s.mock.chat_requests();
    assert_eq!(
        sent.len(),
        1,
        "no vision-model call: the user's describer replaced it"
    );
    let sent = &sent[0];
    assert_eq!(sent["model"], "hunyuan-2.0-thinking-20251109");
    let text = sent["messages"].to_string();
    assert!(text.contains("[Image 1: an image named cat.png]"), "{text}");
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);

    // The same image again, streamed: a cache hit, the describer is not called again.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let second = s.post(REORDERED_ROUTE, &streamed).await;
    assert_eq!(second.status(), 200);
    let events = sse_data(second).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events.len() > 2, "{events:?}");
    assert_eq!(s.reordered.describer.calls(), 1);
    let cache = s.reordered.cache.stats();
    assert_eq!((cache.misses, cache.hits), (1, 1));

    // The outermost metrics layer read what the inner layers wrote.
    let snapshot = s.reordered.monitor.snapshot();
    assert_eq!(snapshot.totals.requests, 2);
    assert_eq!(snapshot.totals.successes, 2);
    assert_eq!(snapshot.image_latency.count, 2);
    assert_eq!(snapshot.cache_hit_rate, Some(0.5));
    assert_eq!(snapshot.model_calls["hunyuan-2.0-thinking-20251109"], 2);
    assert_eq!(snapshot.fix_rules["system"], 2);
    assert!(
        s.plain.audit.seen().is_empty(),
        "the other stack saw nothing"
    );
}

#[tokio::test]
async fn the_inserted_layer_sees_the_fixed_messages() {
    let s = setup().await;
    let body = json!({
        "model": "hunyuan-turbos-latest",
        "messages": unfixed_messages(json!("Tell me a story"))
    });
    let answer = s.post(PLAIN_ROUTE, &body).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()[custom_stack::FIX_RULES_HEADER],
        "system,ending"
    );
    assert_eq!(
        answer.headers()[custom_stack::UPSTREAM_MODEL_HEADER],
        "hunyuan-turbos-latest"
    );
    let answer: Value = answer.json().await.unwrap();
    assert!(answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Echo: "));

    let seen = s.plain.audit.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].model, "hunyuan-turbos-latest");
    assert_eq!(seen[0].roles, ["system", "user", "assistant", "user"]);
    assert_eq!(seen[0].rules, ["system", "ending"]);

    // No cascade in this stack: an image goes to the model untouched.
    let image = json!({
        "model": "hunyuan-vision-1.5-instruct",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/dog.png"}}
        ]}]
    });
    let answer = s.post(PLAIN_ROUTE, &image).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()[custom_stack::FIX_RULES_HEADER], "none");
    let sent = s.mock.chat_requests();
    assert_eq!(
        sent[1]["messages"][0]["content"][1]["image_url"]["url"],
        "https://example.com/dog.png"
    );
    assert_eq!(s.reordered.describer.calls(), 0);
    assert_eq!(s.reordered.monitor.snapshot().totals.requests, 0);
}
