//! The image cascade and the description cache, end to end against the mock Hunyuan.

use crate::common::*;
use base64::Engine as _;
use hunyuan_proxy::cascade::{OnVisionFailure, VISION_HEADER};
use hunyuan_proxy::mock::Fault;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

const TEXT_MODEL: &str = "hunyuan-2.0-thinking-20251109";
const VISION_MODEL: &str = "hunyuan-vision-1.5-instruct";

/// A small fake "image": deterministic bytes, different per seed.
fn image_bytes(seed: u8) -> Vec<u8> {
    (0..3000u32)
        .map(|n| (n as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The first 12 hex digits of SHA-256, as the mock prints them in descriptions.
fn short_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn image_part(url: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": url}})
}

fn tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "click",
        "description": "Click a button",
        "parameters": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    }}])
}

fn with_images(text: &str, urls: &[&str]) -> Value {
    let mut parts = vec![json!({"type": "text", "text": text})];
    parts.extend(urls.iter().map(|u| image_part(u)));
    json!({
        "model": VISION_MODEL,
        "tools": tools(),
        "messages": [{"role": "user", "content": parts}]
    })
}

fn vision_calls(t: &TestProxy) -> Vec<Value> {
    t.mock
        .chat_requests()
        .into_iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .collect()
}

fn text_calls(t: &TestProxy) -> Vec<Value> {
    t.mock
        .chat_requests()
        .into_iter()
        .filter(|r| r["model"] == TEXT_MODEL)
        .collect()
}

async fn stats(t: &TestProxy) -> Value {
    t.client
        .get(t.url("/cache/stats"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_image_with_tools_reaches_the_text_model_as_a_description() {
    let t = TestProxy::start().await;
    let bytes = image_bytes(1);
    let url = data_url(&bytes);
    let response = t
        .post(
            "/v1/chat/completions",
            &with_images("Which button?", &[&url]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");

    let vision = vision_calls(&t);
    assert_eq!(vision.len(), 1);
    assert_eq!(vision[0]["model"], VISION_MODEL);
    assert!(vision[0].get("tools").is_none());
    let asked = vision[0]["messages"][0]["content"].to_string();
    assert!(
        !asked.contains("Which button?"),
        "the prompt is context-free"
    );
    assert!(asked.contains(&url));

    let text = text_calls(&t);
    assert_eq!(text.len(), 1);
    let sent = &text[0];
    assert!(!sent.to_string().contains("image_url"));
    assert!(sent.get("tools").is_some());
    let parts = &sent["messages"][0]["content"];
    assert_eq!(parts[0]["text"], "Which button?");
    let described = parts[1]["text"].as_str().unwrap();
    let expected = format!("[Image 1: Description of image {}:", short_digest(&bytes));
    assert!(described.starts_with(&expected), "{described}");
}

#[tokio::test]
async fn the_same_image_in_history_makes_no_new_vision_call() {
    let t = TestProxy::start().await;
    let url = data_url(&image_bytes(2));
    let first = with_images("What is this?", &[&url]);
    assert_eq!(t.post("/v1/chat/completions", &first).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 1);

    let second = json!({
        "model": VISION_MODEL,
        "tools": tools(),
        "messages": [
            first["messages"][0].clone(),
            {"role": "assistant", "content": "A dialog."},
            {"role": "user", "content": "Click OK then."}
        ]
    });
    assert_eq!(t.post("/v1/chat/completions", &second).await.status(), 200);
    assert_eq!(
        vision_calls(&t).len(),
        1,
        "the description came from the cache"
    );
    let last = text_calls(&t).pop().unwrap();
    assert!(last["messages"][0]["content"][1]["text"]
        .as_str()
        .unwrap()
        .starts_with("[Image 1: Description of image"));
    let stats = stats(&t).await;
    assert_eq!(
        (stats["hits"].as_u64(), stats["misses"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["hit_rate"], 0.5);
}

#[tokio::test]
async fn eight_concurrent_requests_with_one_new_image_make_one_vision_call() {
    let t = TestProxy::start().await;
    // A slow vision answer, so that all eight requests are in flight together.
    t.mock
        .fail_next(1, Fault::Delay(Duration::from_millis(300)));
    let url = data_url(&image_bytes(3));
    let body = with_images("What is this?", &[&url]);
    let answers =
        futures_util::future::join_all((0..8).map(|_| t.post("/v1/chat/completions", &body))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(vision_calls(&t).len(), 1);
    assert_eq!(text_calls(&t).len(), 8);
    let stats = stats(&t).await;
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["hits"], 7);
}

#[tokio::test]
async fn three_images_give_three_descriptions_in_order() {
    let t = TestProxy::start().await;
    let images: Vec<Vec<u8>> = (10..13).map(image_bytes).collect();
    let urls: Vec<String> = images.iter().map(|b| data_url(b)).collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let response = t
        .post("/v1/chat/completions", &with_images("Compare", &refs))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(vision_calls(&t).len(), 3);
    let sent = text_calls(&t).pop().unwrap();
    let parts = sent["messages"][0]["content"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 4);
    for (n, bytes) in images.iter().enumerate() {
        let text = parts[n + 1]["text"].as_str().unwrap();
        let expected = format!(
            "[Image {}: Description of image {}:",
            n + 1,
            short_digest(bytes)
        );
        assert!(text.starts_with(&expected), "{text}");
    }
}

#[tokio::test]
async fn a_url_image_goes_to_the_vision_model_unfetched() {
    // A server that would notice any fetch of the image.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/secret.png", listener.local_addr().unwrap());
    let t = TestProxy::start().await;
    let response = t
        .post("/v1/chat/completions", &with_images("Look", &[&url]))
        .await;
    assert_eq!(response.status(), 200);
    let vision = vision_calls(&t);
    assert_eq!(
        vision[0]["messages"][0]["content"][1]["image_url"]["url"],
        url
    );
    let fetched = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(fetched.is_err(), "the proxy fetched the image URL");
    let sent = text_calls(&t).pop().unwrap();
    assert!(sent["messages"][0]["content"][1]["text"]
        .as_str()
        .unwrap()
        .contains("not fetched"));
}

#[tokio::test]
async fn a_vision_failure_is_a_502_and_the_next_request_retries() {
    let t = TestProxy::start_with(|c| c.upstream_retries = 0).await;
    t.mock.set_fault(Some(Fault::ServerError));
    let body = with_images("What?", &[&data_url(&image_bytes(4))]);
    let envelope = expect_envelope(t.post("/v1/chat/completions", &body).await, 502).await;
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not be described"), "{envelope}");
    assert_eq!(text_calls(&t).len(), 0);
    assert_eq!(stats(&t).await["entries"], 0, "a failure is never cached");

    t.mock.set_fault(None);
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 2, "the vision call was made again");
}

#[tokio::test]
async fn degrade_mode_answers_with_a_placeholder_and_a_header() {
    let t = TestProxy::start_with(|c| {
        c.upstream_retries = 0;
        c.cascade.on_failure = OnVisionFailure::Degrade;
    })
    .await;
    t.mock.fail_next(1, Fault::ServerError);
    let body = with_images("What?", &[&data_url(&image_bytes(5))]);
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[VISION_HEADER], "degraded");
    let sent = text_calls(&t).pop().unwrap();
    let text = sent["messages"][0]["content"][1]["text"].as_str().unwrap();
    assert_eq!(text, "[Image 1: (this image could not be described)]");
    assert!(!sent.to_string().to_lowercase().contains("500"));

    // Nothing was cached: the next request asks the vision model again, and succeeds.
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 2);
}

#[tokio::test]
async fn bad_data_urls_are_400s() {
    let t = TestProxy::start().await;
    let too_big = data_url(&vec![7u8; 3000]);
    let t_small = TestProxy::start_with(|c| c.cascade.max_image_bytes = 1000).await;
    for (proxy, url) in [
        (&t, "data:image/png;base64,not*base64".to_owned()),
        (&t, "data:text/plain;base64,aGVsbG8=".to_owned()),
        (&t, "javascript:alert(1)".to_owned()),
        (&t_small, too_big),
    ] {
        let response = proxy
            .post("/v1/chat/completions", &with_images("x", &[&url]))
            .await;
        let envelope = expect_envelope(response, 400).await;
        assert_eq!(
            envelope["error"]["param"], "messages[0].content[1]",
            "{url:.40}"
        );
    }
    let many: Vec<String> = (0..21).map(|n| format!("https://x/{n}.png")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let response = t
        .post("/v1/chat/completions", &with_images("x", &refs))
        .await;
    expect_envelope(response, 400).await;
    assert_eq!(t.mock.chat_requests().len(), 0);
}

#[tokio::test]
async fn delete_cache_needs_the_token_and_empties_it() {
    let t = TestProxy::start().await;
    let body = with_images("What?", &[&data_url(&image_bytes(6))]);
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(stats(&t).await["entries"], 1);

    let anonymous = t.client.delete(t.url("/cache")).send().await.unwrap();
    expect_envelope(anonymous, 401).await;
    assert_eq!(stats(&t).await["entries"], 1);

    let cleared: Value = t
        .client
        .delete(t.url("/cache"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["cleared"], 1);
    assert_eq!(stats(&t).await["entries"], 0);
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 2);

    let status: Value = t.get("/status").await.json().await.unwrap();
    assert_eq!(status["cache"]["misses"], 2);
    assert_eq!(status["cache"]["capacity"], 1000);
}

#[tokio::test]
async fn descriptions_expire_after_the_ttl() {
    let t = TestProxy::start_with(|c| c.cache_ttl = 1).await;
    let body = with_images("What?", &[&data_url(&image_bytes(8))]);
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 2);
    assert!(stats(&t).await["expirations"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn a_slow_vision_call_keeps_the_stream_alive() {
    let t = TestProxy::start_with(|c| {
        c.cascade.keepalive_after_ms = 50;
        c.cascade.keepalive_interval_secs = 1;
    })
    .await;
    t.mock
        .fail_next(1, Fault::Delay(Duration::from_millis(1300)));
    let mut body = with_images("What?", &[&data_url(&image_bytes(9))]);
    body["stream"] = json!(true);
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.starts_with(": keep-alive\n\n"), "{text}");
    assert!(text.matches(": keep-alive").count() >= 2, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn a_vision_failure_in_a_committed_stream_is_an_error_event() {
    let t = TestProxy::start_with(|c| {
        c.upstream_retries = 0;
        c.request_timeout = 1;
        c.cascade.keepalive_after_ms = 50;
    })
    .await;
    // The vision call hangs until the proxy's upstream timeout gives up on it.
    t.mock.fail_next(1, Fault::Hang);
    let mut body = with_images("What?", &[&data_url(&image_bytes(10))]);
    body["stream"] = json!(true);
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(response).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let error: Value = serde_json::from_str(&events[0]).unwrap();
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not be described"));
}

#[tokio::test]
async fn an_image_in_a_tool_result_is_described_too() {
    let t = TestProxy::start().await;
    let bytes = image_bytes(20);
    let body = json!({
        "model": TEXT_MODEL,
        "tools": tools(),
        "messages": [
            {"role": "user", "content": "Take a screenshot."},
            {"role": "assistant", "content": "Taking it.", "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "click", "arguments": "{\"label\":\"shot\"}"}
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": [
                {"type": "text", "text": "Screenshot taken."},
                image_part(&data_url(&bytes))
            ]}
        ]
    });
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(vision_calls(&t).len(), 1);
    let sent = text_calls(&t).pop().unwrap();
    let parts = &sent["messages"][2]["content"];
    assert_eq!(parts[0]["text"], "Screenshot taken.");
    let expected = format!("[Image 1: Description of image {}:", short_digest(&bytes));
    assert!(parts[1]["text"].as_str().unwrap().starts_with(&expected));
}

#[tokio::test]
async fn a_vision_request_without_tools_goes_through_untouched() {
    let t = TestProxy::start().await;
    let url = data_url(&image_bytes(21));
    let mut body = with_images("What is this?", &[&url]);
    body.as_object_mut().unwrap().remove("tools");
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let requests = t.mock.chat_requests();
    assert_eq!(requests.len(), 1, "no separate description call");
    assert_eq!(requests[0]["model"], VISION_MODEL);
    assert_eq!(
        requests[0]["messages"][0]["content"][1]["image_url"]["url"],
        url
    );
    assert_eq!(stats(&t).await["misses"], 0);
}

#[tokio::test]
async fn concurrent_requests_share_one_failing_vision_call() {
    let t = TestProxy::start_with(|c| {
        c.upstream_retries = 0;
        c.request_timeout = 1;
    })
    .await;
    t.mock.fail_next(1, Fault::Hang);
    let body = with_images("What?", &[&data_url(&image_bytes(22))]);
    let started = std::time::Instant::now();
    let answers =
        futures_util::future::join_all((0..4).map(|_| t.post("/v1/chat/completions", &body))).await;
    assert!(answers.iter().all(|r| r.status() == 502));
    assert_eq!(
        vision_calls(&t).len(),
        1,
        "the waiters did not retry in turn"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let stats = stats(&t).await;
    assert_eq!(
        (
            stats["failures"].as_u64(),
            stats["shared_failures"].as_u64()
        ),
        (Some(1), Some(3))
    );
    // A later request asks again.
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(vision_calls(&t).len(), 2);
}
