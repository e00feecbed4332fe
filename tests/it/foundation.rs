//! The foundation through the full router against the mock Hunyuan: pass-through, legacy
//! completions, bad input, credentials and upstream failures.

use crate::common::*;
use hunyuan_proxy::mock::Fault;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn plain_chat_passes_through_unchanged_except_override_fields() {
    let t = TestProxy::start().await;
    let mut body = simple_chat(false);
    body["api_base"] = json!("http://evil.example/v1");
    body["base_url"] = json!("http://evil.example/v1");
    body["api_key"] = json!("sk-client-chosen");
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert!(answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Hello there"));

    let received = t.mock.chat_requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0],
        simple_chat(false),
        "the upstream saw a changed body"
    );
}

#[tokio::test]
async fn plain_chat_streams_event_by_event() {
    let t = TestProxy::start().await;
    let response = t.post("/v1/chat/completions", &simple_chat(true)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(text.contains("Hello there"), "{text}");
    assert!(events.len() > 3, "the answer came in one piece: {events:?}");
    assert_eq!(t.mock.chat_requests()[0]["stream"], json!(true));
}

#[tokio::test]
async fn legacy_completions_non_stream() {
    let t = TestProxy::start().await;
    let response = t
        .post(
            "/v1/completions",
            &json!({"model": "hunyuan-turbos-latest", "prompt": "Say hi", "max_tokens": 20}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert!(answer["choices"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Say hi"));
    let sent = &t.mock.chat_requests()[0];
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hi"}])
    );
    assert_eq!(sent["max_tokens"], json!(20));
}

#[tokio::test]
async fn legacy_completions_stream() {
    let t = TestProxy::start().await;
    let response = t
        .post(
            "/v1/completions",
            &json!({"model": "hunyuan-turbos-latest", "prompt": "Stream me", "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let events = sse_data(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let mut text = String::new();
    for e in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(e).unwrap();
        assert_eq!(chunk["object"], "text_completion", "{chunk}");
        text.push_str(chunk["choices"][0]["text"].as_str().unwrap_or(""));
    }
    assert!(text.contains("Stream me"), "{text}");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_envelope_naming_the_field() {
    let t = TestProxy::start_with(|c| c.request_body_limit = 64 * 1024).await;
    let chat = "/v1/chat/completions";
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("invalid JSON", b"{\"model\": ".to_vec(), 400, None),
        ("top level not an object", b"[1, 2, 3]".to_vec(), 400, None),
        (
            "missing messages",
            br#"{"model":"hunyuan-turbos-latest"}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "empty messages",
            br#"{"model":"hunyuan-turbos-latest","messages":[]}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "messages not a list",
            br#"{"model":"hunyuan-turbos-latest","messages":{"role":"user"}}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "unknown role",
            br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"wizard","content":"b"},{"role":"user","content":"c"},{"role":"bot","content":"d"}]}"#.to_vec(),
            400,
            Some("messages[1].role"),
        ),
        (
            "content of the wrong type",
            br#"{"model":"m","messages":[{"role":"user","content":{"text":"a"}}]}"#.to_vec(),
            400,
            Some("messages[0].content"),
        ),
        (
            "stream not a boolean",
            br#"{"model":"m","stream":"true","messages":[{"role":"user","content":"a"}]}"#.to_vec(),
            400,
            Some("stream"),
        ),
        (
            "unknown content part",
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}"#.to_vec(),
            400,
            Some("messages[0].content[0].type"),
        ),
        (
            "deep nesting",
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"a"}}],"x":{}{}}}"#,
                "[".repeat(20_000),
                "]".repeat(20_000)
            )
            .into_bytes(),
            400,
            None,
        ),
        (
            "body over the limit",
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
                "a".repeat(100 * 1024)
            )
            .into_bytes(),
            413,
            None,
        ),
    ];
    for (name, body, status, param) in cases {
        let response = t.post_raw(chat, "application/json", body).await;
        let got = response.status().as_u16();
        assert_eq!(got, status, "case `{name}`");
        let envelope = expect_envelope(response, status).await;
        if let Some(param) = param {
            assert_eq!(envelope["error"]["param"], json!(param), "case `{name}`");
        }
    }
    let response = t
        .post_raw(
            chat,
            "text/plain",
            serde_json::to_vec(&simple_chat(false)).unwrap(),
        )
        .await;
    expect_envelope(response, 415).await;
    assert_eq!(t.mock.request_count(), 0, "bad input reached the upstream");
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let t = TestProxy::start_with(|c| c.request_body_limit = 16 * 1024).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = std::iter::once(Ok(
        br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec(),
    ))
    .chain((0..64).map(|_| Ok(vec![b'a'; 1024])))
    .chain(std::iter::once(Ok(br#""}]}"#.to_vec())))
    .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = t
        .client
        .post(t.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    expect_envelope(response, 413).await;
    assert_eq!(t.mock.request_count(), 0);
}

#[tokio::test]
async fn client_key_never_reaches_the_upstream() {
    let t = TestProxy::start().await;
    let response = t
        .client
        .post(t.url("/v1/chat/completions"))
        .bearer_auth("sk-client-secret-123")
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let recorded = t.mock.requests();
    let chat = recorded
        .iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .unwrap();
    assert_eq!(
        chat.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    for (name, value) in chat.headers.iter() {
        assert!(
            !value
                .to_str()
                .unwrap_or("")
                .contains("sk-client-secret-123"),
            "client key forwarded in {name}"
        );
    }
}

#[tokio::test]
async fn upstream_4xx_envelope_is_passed_on() {
    // With the fixer's `ending` rule off, a conversation ending in an assistant message reaches
    // Hunyuan as is, and Hunyuan refuses it (rule R1).
    let t = TestProxy::start_with(|c| {
        c.fix = c
            .fix
            .clone()
            .with_rule(hunyuan_proxy::fix::Rule::Ending, false);
    })
    .await;
    let body = json!({
        "model": "hunyuan-turbos-latest",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How"}
        ]
    });
    let response = t.post("/v1/chat/completions", &body).await;
    let envelope = expect_envelope(response, 400).await;
    assert_eq!(envelope["error"]["code"], json!("1001"));
    assert!(envelope["error"]["message"]
        .as_str()
        .unwrap()
        .contains("assistant"));
}

#[tokio::test]
async fn upstream_unreachable_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let t = TestProxy::start_with(|c| {
        c.api_base = Some(format!("http://127.0.0.1:{port}/v1"));
        c.connect_timeout = 2;
    })
    .await;
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    let envelope = expect_envelope(response, 502).await;
    assert_eq!(envelope["error"]["code"], "bad_gateway");
}

#[tokio::test]
async fn upstream_500_is_502_without_its_text() {
    let t = TestProxy::start().await;
    t.mock.set_fault(Some(Fault::ServerError));
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    let envelope = expect_envelope(response, 502).await;
    assert!(envelope["error"]["message"]
        .as_str()
        .unwrap()
        .contains("500"));
}

#[tokio::test]
async fn upstream_silence_is_504() {
    let t = TestProxy::start_with(|c| c.request_timeout = 1).await;
    t.mock.set_fault(Some(Fault::Hang));
    let started = std::time::Instant::now();
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    expect_envelope(response, 504).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn upstream_rate_limit_keeps_retry_after() {
    let t = TestProxy::start_with(|c| c.upstream_retries = 0).await;
    t.mock.set_fault(Some(Fault::RateLimited {
        retry_after_secs: 7,
    }));
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(response.headers()["retry-after"], "7");
    expect_envelope(response, 429).await;
}

#[tokio::test]
async fn routes_and_admin_auth() {
    let t = TestProxy::start().await;
    let root: Value = t.get("/").await.json().await.unwrap();
    assert_eq!(root["name"], "hunyuan-proxy");
    assert!(root["routes"].as_array().unwrap().len() >= 11);

    let models: Value = t.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"hunyuan-2.0-thinking-20251109"));
    assert!(ids.contains(&"hunyuan-vision-1.5-instruct"));

    expect_envelope(t.get("/no/such/route").await, 404).await;
    expect_envelope(t.get("/v1/chat/completions").await, 405).await;
    expect_envelope(t.get("/cache/stats").await, 401).await;
    let wrong = t
        .client
        .get(t.url("/cache/stats"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    let envelope = expect_envelope(wrong, 401).await;
    assert!(!envelope.to_string().contains("not-the-token"));

    let live = t.get("/health/live").await;
    assert_eq!(live.status(), 200);
    t.proxy.begin_shutdown();
    assert_eq!(t.get("/health/live").await.status(), 503);
}

#[tokio::test]
async fn admin_routes_are_off_without_a_token() {
    let t = TestProxy::start_with(|c| c.admin_token = None).await;
    expect_envelope(t.get("/cache/stats").await, 404).await;
}

#[tokio::test]
async fn status_never_shows_secrets() {
    let t = TestProxy::start().await;
    let text = t.get("/status").await.text().await.unwrap();
    assert!(!text.contains(UPSTREAM_KEY), "{text}");
    assert!(!text.contains(ADMIN_TOKEN), "{text}");
    assert!(text.contains("[redacted]"));
}
