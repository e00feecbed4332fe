//! `examples/custom_stack.rs`, run against the mock: the reordered stack (metrics outermost,
//! cascade before fix, the user's describer behind a hand-built cache) answers correctly and
//! calls the user's describer, not the vision model; the stack without the cascade runs the
//! user's layer between the fixer and the upstream, and that layer sees the fixed messages; a
//! cache store of the user's own plugs in behind the `Store` trait. Public API only.

// The example itself, so that the test runs exactly its setup.
#[path = "../../examples/custom_stack.rs"]
mod example;

use crate::common::{serve, sse_data};
use axum::body::Body;
use example::{PLAIN_ROUTE, REORDERED_ROUTE};
use futures_util::future::BoxFuture;
use http::{Request, Response};
use hunyuan_proxy::cache::{CacheConfig, CacheLayer, Digest, Lookup, Slot, Store, StoreUsage};
use hunyuan_proxy::cascade::{CascadeConfig, CascadeLayer, Description};
use hunyuan_proxy::chat::ParsedChat;
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{service_fn, Layer, ServiceExt};

struct Setup {
    mock: MockHunyuan,
    reordered: example::Reordered,
    plain: example::WithoutCascade,
    addr: SocketAddr,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let mock = MockHunyuan::start().await;
    let upstream =
        Upstream::new(UpstreamConfig::new(mock.base_url()).api_key("custom-stack-key")).unwrap();
    let reordered = example::reordered(upstream.clone()).unwrap();
    let plain = example::without_cascade(upstream).unwrap();
    let addr = serve(example::router(&reordered, &plain)).await;
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
    assert_eq!(answer.headers()[example::FIX_RULES_HEADER], "system,ending");
    assert_eq!(
        answer.headers()[example::UPSTREAM_MODEL_HEADER],
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
    assert_eq!(answer.headers()[example::FIX_RULES_HEADER], "none");
    let sent = s.mock.chat_requests();
    assert_eq!(
        sent[1]["messages"][0]["content"][1]["image_url"]["url"],
        "https://example.com/dog.png"
    );
    assert_eq!(s.reordered.describer.calls(), 0);
    assert_eq!(s.reordered.monitor.snapshot().totals.requests, 0);
}

/// A cache store of the user's own behind the `Store` trait: a plain map, no expiry, no
/// coalescing (each caller of an absent key loads it).
#[derive(Default)]
struct MapStore {
    map: Mutex<HashMap<Digest, Description>>,
    lookups: Arc<AtomicUsize>,
}

struct MapSlot<'a> {
    store: &'a MapStore,
    key: Digest,
}

impl Slot<Description> for MapSlot<'_> {
    fn fill(self: Box<Self>, value: Description) -> bool {
        self.store.map.lock().unwrap().insert(self.key, value);
        true
    }
}

impl Store<Description> for MapStore {
    fn get(&self, key: &Digest) -> Option<Description> {
        self.map.lock().unwrap().get(key).cloned()
    }

    fn lookup<'a>(
        &'a self,
        key: Digest,
        _wait: Duration,
    ) -> BoxFuture<'a, Lookup<'a, Description>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match self.get(&key) {
                Some(value) => Lookup::Found(value),
                None => Lookup::Load(Box::new(MapSlot { store: self, key })),
            }
        })
    }

    fn clear(&self) -> usize {
        let mut map = self.map.lock().unwrap();
        let n = map.len();
        map.clear();
        n
    }

    fn usage(&self) -> StoreUsage {
        let entries = self.map.lock().unwrap().len();
        StoreUsage {
            entries,
            capacity: usize::MAX,
            ..StoreUsage::default()
        }
    }
}

#[tokio::test]
async fn a_cache_store_of_your_own_plugs_in_behind_the_store_trait() {
    let store = MapStore::default();
    let lookups = store.lookups.clone();
    let cache = CacheLayer::with_store(store, CacheConfig::default());
    let describer = example::UrlDescriber::default();
    let config = CascadeConfig::default().models("my-vision", "my-text");
    let cascade = CascadeLayer::new(config, cache.layer(describer.clone())).unwrap();
    let app = cascade.layer(service_fn(|req: Request<Body>| async move {
        let chat = req.extensions().get::<ParsedChat>().unwrap().get();
        let sent = serde_json::to_string(chat).unwrap();
        Ok::<_, Infallible>(Response::new(Body::from(sent)))
    }));
    let body = json!({
        "model": "my-text",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Same picture as before"},
            {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}}
        ]}]
    });
    for _ in 0..2 {
        let request = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let sent = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(
            sent["messages"][0]["content"][1]["text"],
            "[Image 1: an image named chart.png]"
        );
    }
    assert_eq!(
        describer.calls(),
        1,
        "the second request came from the store"
    );
    assert_eq!(lookups.load(Ordering::SeqCst), 1, "a hit never waits");
    let stats = cache.handle().stats();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 1, 1));
    assert_eq!(cache.handle().clear(), 1);
}
