//! Upstream faults, limits, retries, disconnects and client auth, against the mock's fault
//! modes: callers get a clear, retryable error or a complete answer, never a hang or a cut
//! answer dressed as complete.

use crate::common::*;
use hunyuan_proxy::config::Secret;
use hunyuan_proxy::mock::{Fault, MockConfig, MockHunyuan};
use hunyuan_proxy::rate_limit::RateLimit;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let t = TestProxy::start_with(|c| c.upstream_retry_backoff_ms = 10).await;
    t.mock.fail_next(2, Fault::ServerError);
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(t.mock.request_count(), 3, "one try and two retries");
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let t = TestProxy::start().await;
    t.mock.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let started = Instant::now();
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After not honoured"
    );
    assert_eq!(t.mock.request_count(), 2);
}

#[tokio::test]
async fn rate_limit_forever_reaches_the_client_as_429() {
    let t = TestProxy::start().await;
    t.mock.set_fault(Some(Fault::RateLimited {
        retry_after_secs: 1,
    }));
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(response.headers()["retry-after"], "1");
    expect_envelope(response, 429).await;
    assert_eq!(t.mock.request_count(), 3);
}

#[tokio::test]
async fn server_error_forever_is_502_after_the_retries() {
    let t = TestProxy::start_with(|c| c.upstream_retry_backoff_ms = 10).await;
    t.mock.set_fault(Some(Fault::ServerError));
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    expect_envelope(response, 502).await;
    assert_eq!(t.mock.request_count(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let t = TestProxy::start().await;
    t.mock.set_fault(Some(Fault::Status(400)));
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    expect_envelope(response, 400).await;
    assert_eq!(t.mock.request_count(), 1);
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_event_and_no_done() {
    let t = TestProxy::start().await;
    t.mock
        .set_fault(Some(Fault::DropMidStream { after_events: 2 }));
    let response = t.post("/v1/chat/completions", &simple_chat(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(response).await;
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{last}");
    assert_eq!(
        t.mock.request_count(),
        1,
        "a started stream is never retried"
    );
}

#[tokio::test]
async fn concurrency_is_capped_at_upstream_concurrency() {
    let t = TestProxy::start_with(|c| c.upstream_concurrency = 5).await;
    t.mock
        .set_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let requests = (0..12).map(|_| t.post("/v1/chat/completions", simple_chat_ref()));
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(t.mock.max_in_flight(), 5);
    assert_eq!(t.proxy.upstream().in_flight(), 0);
}

fn simple_chat_ref() -> &'static serde_json::Value {
    static BODY: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    BODY.get_or_init(|| simple_chat(false))
}

#[tokio::test]
async fn a_full_queue_answers_429_at_once() {
    let t = TestProxy::start_with(|c| {
        c.upstream_concurrency = 1;
        c.upstream_queue_size = 1;
    })
    .await;
    t.mock
        .set_fault(Some(Fault::Delay(Duration::from_millis(800))));
    let started = Instant::now();
    let requests = (0..3).map(|_| t.post("/v1/chat/completions", simple_chat_ref()));
    let responses = futures_util::future::join_all(requests).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    let rejected = responses.into_iter().find(|r| r.status() == 429).unwrap();
    assert!(rejected.headers().contains_key("retry-after"));
    expect_envelope(rejected, 429).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the two admitted ran one by one"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_slot_and_the_upstream_sees_it() {
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(200)))
            .await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream_concurrency = 1;
    let t = TestProxy::start_on(mock, config).await;
    let mut body = simple_chat(true);
    body["messages"][1]["content"] = json!("a long answer with many words to stream slowly");
    let mut response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap();
    assert!(first.is_some());
    assert_eq!(t.proxy.upstream().in_flight(), 1);
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (t.mock.cancelled() == 0 || t.proxy.upstream().in_flight() != 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.mock.cancelled(),
        1,
        "the upstream request was not cancelled"
    );
    assert_eq!(t.proxy.upstream().in_flight(), 0, "the slot was not freed");
    // The freed slot serves the next request.
    let next = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn a_client_that_goes_away_while_queued_leaves_the_queue() {
    let t = TestProxy::start_with(|c| {
        c.upstream_concurrency = 1;
        c.upstream_queue_size = 1;
    })
    .await;
    t.mock
        .set_fault(Some(Fault::Delay(Duration::from_millis(600))));
    let busy = t.post("/v1/chat/completions", simple_chat_ref());
    let impatient = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(150))
            .build()
            .unwrap();
        let result = client
            .post(t.url("/v1/chat/completions"))
            .json(simple_chat_ref())
            .send()
            .await;
        assert!(result.is_err(), "the impatient client should have given up");
        tokio::time::sleep(Duration::from_millis(50)).await;
        t.proxy.upstream().waiting()
    };
    let (busy, waiting_after) = tokio::join!(busy, impatient);
    assert_eq!(busy.status(), 200);
    assert_eq!(
        waiting_after, 0,
        "the gone client still holds its queue place"
    );
}

#[tokio::test]
async fn client_keys_are_required_when_configured() {
    let t = TestProxy::start_with(|c| {
        c.client_api_keys = vec![
            Secret::new("sk-proxy-client-1"),
            Secret::new("sk-proxy-client-2"),
        ];
    })
    .await;
    let missing = t.post("/v1/chat/completions", &simple_chat(false)).await;
    expect_envelope(missing, 401).await;
    let wrong = t
        .client
        .post(t.url("/v1/chat/completions"))
        .bearer_auth("sk-proxy-client-3")
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    let envelope = expect_envelope(wrong, 401).await;
    assert!(!envelope.to_string().contains("sk-proxy-client"));
    let right = t
        .client
        .post(t.url("/v1/chat/completions"))
        .bearer_auth("sk-proxy-client-2")
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(
        t.mock.request_count(),
        1,
        "only the authenticated request went upstream"
    );
    // Health stays open for probes.
    assert_eq!(t.get("/health/live").await.status(), 200);
    // The proxy's client key is not the upstream's key.
    let sent = t.mock.requests();
    assert_eq!(
        sent[0].headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
}

#[tokio::test]
async fn global_rate_limit_answers_429_with_retry_after() {
    let t = TestProxy::start_with(|c| c.rate_limit = Some(RateLimit::new(0.5, 2))).await;
    for _ in 0..2 {
        let ok = t.post("/v1/chat/completions", &simple_chat(false)).await;
        assert_eq!(ok.status(), 200);
    }
    let limited = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(limited.headers()["retry-after"], "2");
    expect_envelope(limited, 429).await;
    assert_eq!(t.mock.request_count(), 2);
}

#[tokio::test]
async fn a_slow_body_is_cut_off_with_408() {
    let t = TestProxy::start_with(|c| c.request_body_timeout = 1).await;
    let stalled = futures_util::stream::unfold(0u8, |state| async move {
        match state {
            0 => Some((Ok::<_, std::io::Error>(b"{\"model\":\"m\",".to_vec()), 1)),
            _ => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                None
            }
        }
    });
    let started = Instant::now();
    let response = t
        .client
        .post(t.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await
        .unwrap();
    expect_envelope(response, 408).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(t.mock.request_count(), 0);
}

#[tokio::test]
async fn a_whole_answer_that_breaks_off_is_retried_before_the_client_sees_anything() {
    let t = TestProxy::start_with(|c| c.upstream_retry_backoff_ms = 10).await;
    t.mock
        .fail_next(1, Fault::DropMidStream { after_events: 1 });
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(t.mock.request_count(), 2);
}

#[tokio::test]
async fn an_answer_that_does_not_start_is_cut_by_the_silence_limit_before_the_first_byte_one() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Hang));
    let mut config = TestProxy::config_for(&mock);
    config.request_timeout = 1;
    config.first_byte_timeout = Some(10);
    let t = TestProxy::start_on(mock, config).await;
    let started = Instant::now();
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for first_byte_timeout instead of request_timeout"
    );
}

#[tokio::test]
async fn a_slow_stream_longer_than_the_silence_limit_completes() {
    // Each gap is under request_timeout; the whole stream is longer than it.
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(400)))
            .await;
    let mut config = TestProxy::config_for(&mock);
    config.request_timeout = 1;
    let t = TestProxy::start_on(mock, config).await;
    let started = Instant::now();
    let response = t.post("/v1/chat/completions", &simple_chat(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(response).await;
    assert!(
        started.elapsed() > Duration::from_millis(1200),
        "the stream was not slow"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_a_timeout_event() {
    let mock = MockHunyuan::start_with(
        MockConfig::default().with_chunk_delay(Duration::from_millis(1500)),
    )
    .await;
    let mut config = TestProxy::config_for(&mock);
    config.request_timeout = 1;
    config.first_byte_timeout = Some(10);
    let t = TestProxy::start_on(mock, config).await;
    let started = Instant::now();
    let response = t.post("/v1/chat/completions", &simple_chat(true)).await;
    // The mock sends its headers at once, then goes silent before each event.
    assert_eq!(response.status(), 200);
    let events = sse_data(response).await;
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the idle timeout did not cut in"
    );
}
