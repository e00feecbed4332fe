//! The upstream against the in-repo mock Hunyuan on 127.0.0.1:0, on a paused clock: retries,
//! backoff, `Retry-After`, the first-byte deadline, and the wait queue as a client sees them.

use super::*;
use crate::mock::{Fault, MockHunyuan};
use http::{header, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tower::ServiceExt;

const SEC: Duration = Duration::from_secs(1);

fn chat() -> ChatRequest {
    serde_json::from_value(json!({
        "model": "hunyuan-turbos-latest",
        "messages": [{"role": "user", "content": "hello"}],
    }))
    .unwrap()
}

fn config(mock: &MockHunyuan) -> UpstreamConfig {
    UpstreamConfig::new(mock.base_url())
        .api_key("sk-test")
        .retry_backoff(SEC)
}

/// A chat request as a client sends it, for the `Service` path.
fn http_request(stream: bool) -> Request<Body> {
    let body = json!({
        "model": "hunyuan-turbos-latest",
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    });
    Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_with_doubling_backoff_and_every_attempt_is_sent() {
    let mock = MockHunyuan::start().await;
    mock.fail_next(2, Fault::Status(503));
    let upstream = Upstream::new(config(&mock).max_retries(2)).unwrap();
    let started = Instant::now();
    let answer = upstream.complete(chat()).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("Echo: hello")
    );
    assert_eq!(mock.chat_requests().len(), 3);
    // 1 s then 2 s, each scaled by a jitter factor in [0.5, 1).
    assert!(
        waited >= SEC.mul_f64(1.5) && waited < 3 * SEC,
        "waited {waited:?}"
    );
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_max_retries_the_client_gets_502_and_the_upstream_saw_each_attempt() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::ServerError));
    let upstream = Upstream::new(config(&mock).max_retries(3)).unwrap();
    let err = upstream.complete(chat()).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(mock.chat_requests().len(), 4);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_400_is_passed_on_without_a_retry() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Status(400)));
    let upstream = Upstream::new(config(&mock).max_retries(3)).unwrap();
    let err = upstream.complete(chat()).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
    assert_eq!(body["error"]["message"], "mock fault: status 400");
    assert_eq!(mock.chat_requests().len(), 1);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_wait_and_is_capped_at_a_minute() {
    let mock = MockHunyuan::start().await;
    let upstream = Upstream::new(config(&mock)).unwrap();
    for (asked, waited) in [(4, 4 * SEC), (3600, 60 * SEC)] {
        mock.fail_next(
            1,
            Fault::RateLimited {
                retry_after_secs: asked,
            },
        );
        let started = Instant::now();
        upstream.complete(chat()).await.unwrap();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= waited && elapsed < waited + SEC,
            "Retry-After {asked}: waited {elapsed:?}"
        );
    }
    assert_eq!(mock.chat_requests().len(), 4);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn no_retry_whose_wait_would_end_past_the_first_byte_deadline() {
    let mock = MockHunyuan::start().await;
    mock.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 5,
        },
    );
    let upstream = Upstream::new(config(&mock).first_byte_timeout(3 * SEC)).unwrap();
    let started = Instant::now();
    let response = upstream.clone().oneshot(http_request(false)).await.unwrap();
    // Hunyuan's own 429 reaches the client at once, with its Retry-After.
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    assert!(started.elapsed() < SEC, "waited {:?}", started.elapsed());
    assert_eq!(mock.chat_requests().len(), 1);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_does_not_start_before_the_first_byte_deadline_is_504() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Hang));
    let upstream = Upstream::new(config(&mock).first_byte_timeout(5 * SEC)).unwrap();
    let started = Instant::now();
    let err = upstream.complete(chat()).await.unwrap_err();
    assert!(
        matches!(err, ProxyError::GatewayTimeout(d) if d == 5 * SEC),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), 5 * SEC);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn connection_failures_are_retried_then_502() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let config = UpstreamConfig::new(format!("http://{addr}/v1"))
        .retry_backoff(SEC)
        .max_retries(2);
    let upstream = Upstream::new(config).unwrap();
    let started = Instant::now();
    let err = upstream.complete(chat()).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        err.to_string(),
        "the proxy could not connect to the upstream"
    );
    assert!(
        waited >= SEC.mul_f64(1.5) && waited < 3 * SEC,
        "waited {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_for_the_slot_a_stream_holds_until_its_body_is_dropped() {
    let mock = MockHunyuan::start().await;
    let upstream = Upstream::new(config(&mock).concurrency(1)).unwrap();
    let streamed = upstream.clone().oneshot(http_request(true)).await.unwrap();
    assert_eq!(
        streamed.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(upstream.in_flight(), 1);
    let waiter = tokio::spawn(upstream.clone().oneshot(http_request(false)));
    tokio::time::sleep(SEC).await;
    assert_eq!(upstream.waiting(), 1);
    assert!(!waiter.is_finished());
    drop(streamed);
    let response = waiter.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.waiting(), 0);
    assert_eq!(upstream.in_flight(), 0);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn past_the_queue_a_client_gets_429_with_retry_after_at_once() {
    let mock = MockHunyuan::start().await;
    mock.fail_next(1, Fault::Hang);
    let upstream = Upstream::new(config(&mock).concurrency(1).queue(0, 10 * SEC)).unwrap();
    let hanging = tokio::spawn(upstream.clone().oneshot(http_request(false)));
    while upstream.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let response = upstream.clone().oneshot(http_request(false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert_eq!(started.elapsed(), Duration::ZERO);
    hanging.abort();
    mock.stop().await;
}

#[test]
fn setup_errors_name_the_field() {
    let err = Upstream::new(UpstreamConfig::new("127.0.0.1:9/v1")).unwrap_err();
    assert_eq!(err.field(), Some("api_base"));
    assert!(err.to_string().contains("`api_base`"), "{err}");
    let err = Upstream::new(UpstreamConfig::new("http://h/v1").concurrency(0)).unwrap_err();
    assert_eq!(err.field(), Some("concurrency"));
}
