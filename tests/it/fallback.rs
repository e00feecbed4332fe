//! `fallback_models`: a model that fails before its answer starts hands the request to its
//! fallbacks in order; the answer names the model that served it.

use crate::common::*;
use hunyuan_proxy::mock::{Fault, MockConfig, MockHunyuan};
use serde_json::{json, Value};
use std::time::Duration;

const PRIMARY: &str = "hunyuan-turbos-latest";
const SECOND: &str = "hunyuan-2.0-instruct-20251111";
const THIRD: &str = "hy3";

fn chat_for(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": stream,
    })
}

/// The models the mock was asked for, in order.
fn asked(mock: &MockHunyuan) -> Vec<String> {
    mock.chat_requests()
        .iter()
        .map(|r| r["model"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn with_faults(faults: &[(&str, Fault)], retries: u32) -> TestProxy {
    let mut mock_config = MockConfig::default();
    for (model, fault) in faults {
        mock_config = mock_config.with_model_fault(*model, fault.clone());
    }
    let mock = MockHunyuan::start_with(mock_config).await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream_retries = retries;
    config.upstream_retry_backoff_ms = 1;
    config.fallback_models = [(
        PRIMARY.to_owned(),
        vec![SECOND.to_owned(), THIRD.to_owned()],
    )]
    .into();
    TestProxy::start_on(mock, config).await
}

#[tokio::test]
async fn a_failing_model_falls_back_in_order_after_its_retries() {
    let t = with_faults(
        &[
            (PRIMARY, Fault::ServerError),
            (
                SECOND,
                Fault::RateLimited {
                    retry_after_secs: 0,
                },
            ),
        ],
        1,
    )
    .await;
    let response = t
        .post("/v1/chat/completions", &chat_for(PRIMARY, false))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hunyuan-proxy-model"], THIRD);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["model"], THIRD,
        "the upstream's own model field names it"
    );
    assert_eq!(answer["choices"][0]["message"]["content"], "Echo: hello");
    assert_eq!(asked(&t.mock), [PRIMARY, PRIMARY, SECOND, SECOND, THIRD]);
}

#[tokio::test]
async fn a_stream_falls_back_before_its_first_byte() {
    let t = with_faults(&[(PRIMARY, Fault::Status(503))], 0).await;
    let response = t
        .post("/v1/chat/completions", &chat_for(PRIMARY, true))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hunyuan-proxy-model"], SECOND);
    let events = sse_data(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["model"], SECOND);
    assert_eq!(asked(&t.mock), [PRIMARY, SECOND]);
}

#[tokio::test]
async fn a_timeout_falls_back_too() {
    let mock = MockHunyuan::start_with(
        MockConfig::default().with_model_fault(PRIMARY, Fault::Delay(Duration::from_secs(5))),
    )
    .await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream_retries = 0;
    config.first_byte_timeout = Some(1);
    config.fallback_models = [(PRIMARY.to_owned(), vec![SECOND.to_owned()])].into();
    let t = TestProxy::start_on(mock, config).await;
    let response = t
        .post("/v1/chat/completions", &chat_for(PRIMARY, false))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hunyuan-proxy-model"], SECOND);
}

#[tokio::test]
async fn a_client_error_does_not_fall_back() {
    let t = with_faults(&[(PRIMARY, Fault::Status(400))], 0).await;
    let response = t
        .post("/v1/chat/completions", &chat_for(PRIMARY, false))
        .await;
    expect_envelope(response, 400).await;
    assert_eq!(asked(&t.mock), [PRIMARY]);
}

#[tokio::test]
async fn when_every_fallback_fails_the_last_error_is_answered() {
    let t = with_faults(
        &[
            (PRIMARY, Fault::ServerError),
            (SECOND, Fault::ServerError),
            (THIRD, Fault::ServerError),
        ],
        0,
    )
    .await;
    let response = t
        .post("/v1/chat/completions", &chat_for(PRIMARY, false))
        .await;
    expect_envelope(response, 502).await;
    assert_eq!(asked(&t.mock), [PRIMARY, SECOND, THIRD]);
}

#[tokio::test]
async fn an_answer_without_fallback_names_the_requested_model() {
    let t = TestProxy::start().await;
    let response = t
        .post("/v1/chat/completions", &chat_for(SECOND, false))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hunyuan-proxy-model"], SECOND);
}
