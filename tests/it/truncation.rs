//! Upstream answers cut short on a close-delimited (HTTP/1.0-style) response: the body ends
//! cleanly, so only the missing `finish_reason` / `[DONE]` tells it is not whole.

use crate::common::*;
use hunyuan_proxy::mock::Fault;
use serde_json::{json, Value};
use std::time::Duration;

/// The error event the chat client gets for a cut stream, byte for byte.
const TRUNCATED_EVENT: &str = "data: {\"error\":{\"code\":\"upstream_truncated\",\"message\":\"the upstream stream ended before the answer was finished\",\"param\":null,\"status\":502,\"type\":\"upstream_error\"}}\n\n";

fn story(stream: bool) -> Value {
    json!({
        "model": "hunyuan-turbos-latest",
        "messages": [{"role": "user", "content": "tell me a long story"}],
        "stream": stream,
    })
}

#[tokio::test]
async fn a_cut_close_delimited_stream_ends_with_an_error_event_and_no_done() {
    let t = TestProxy::start().await;
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 2 }));
    let response = t.post("/v1/chat/completions", &story(true)).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.ends_with(TRUNCATED_EVENT), "{body:?}");
    assert!(!body.contains("[DONE]"), "{body:?}");
    // Two upstream events relayed, then the error event: three in all.
    assert_eq!(body.matches("data: ").count(), 3, "{body:?}");
    assert_eq!(
        t.mock.request_count(),
        1,
        "a started stream is never retried"
    );
}

#[tokio::test]
async fn a_stream_cut_after_its_finish_reason_is_whole_and_gets_its_done() {
    let t = TestProxy::start().await;
    // "Echo: tell me a long story": 6 word chunks, the finish chunk, then [DONE].
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 7 }));
    let response = t.post("/v1/chat/completions", &story(true)).await;
    let events = sse_data(response).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("\"error\"")),
        "{events:?}"
    );
    let finish: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop", "{finish}");
}

#[tokio::test]
async fn a_cut_whole_answer_is_a_502_envelope() {
    let t = TestProxy::start_with(|c| c.upstream_retries = 0).await;
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 0 }));
    let response = t.post("/v1/chat/completions", &story(false)).await;
    let body = expect_envelope(response, 502).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{body}"
    );
}

#[tokio::test]
async fn a_cut_whole_answer_is_retried_before_the_first_byte() {
    let t = TestProxy::start().await;
    t.mock
        .fail_next(1, Fault::CloseDelimitedCut { after_events: 0 });
    let response = t.post("/v1/chat/completions", &story(false)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Echo: tell me a long story"
    );
    assert_eq!(t.mock.request_count(), 2);
}

#[tokio::test]
async fn the_messages_route_gets_its_error_event_for_a_cut_stream() {
    let t = TestProxy::start().await;
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 2 }));
    let request = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "stream": true,
        "messages": [{"role": "user", "content": "tell me a long story"}],
    });
    let response = t.post("/v1/messages", &request).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("event: error"), "{body}");
    assert!(!body.contains("message_stop"), "{body}");
}

#[tokio::test]
async fn the_responses_route_gets_response_failed_for_a_cut_stream() {
    let t = TestProxy::start().await;
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 2 }));
    let request = json!({
        "model": "hunyuan-turbos-latest",
        "stream": true,
        "store": false,
        "input": "tell me a long story",
    });
    let response = t.post("/v1/responses", &request).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("event: response.failed"), "{body}");
    assert!(!body.contains("response.completed"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
}

#[cfg(feature = "prometheus")]
#[tokio::test]
async fn a_cut_stream_is_counted() {
    let t = TestProxy::start().await;
    let count = |text: String| {
        text.lines()
            .filter(|l| l.starts_with("hunyuan_proxy_upstream_truncated_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = count(t.get("/metrics").await.text().await.unwrap());
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 1 }));
    let body = t
        .post("/v1/chat/completions", &story(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(body.ends_with(TRUNCATED_EVENT), "{body:?}");
    let after = count(t.get("/metrics").await.text().await.unwrap());
    assert!(after >= before + 1.0, "before {before}, after {after}");
}

#[tokio::test]
async fn openai_client_raises_on_a_cut_stream() {
    let t = TestProxy::start().await;
    t.mock
        .set_fault(Some(Fault::CloseDelimitedCut { after_events: 2 }));
    crate::common::run_python_client("import openai", "openai", "openai_truncated.py", &t.url(""))
        .await;
}

#[tokio::test]
async fn the_mock_fault_is_a_close_delimited_http_1_0_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = hunyuan_proxy::mock::MockHunyuan::start().await;
    mock.set_fault(Some(Fault::CloseDelimitedCut { after_events: 2 }));
    let body = story(true).to_string();
    let mut socket = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .expect("the mock closes the connection")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body.matches("data: ").count(), 2, "{body}");
}
