//! The upstream key pool against the mock: a refused key cools down, a rate-limited one hands
//! its requests to another, each key has its own concurrency cap, all keys out is a 503.

use crate::common::*;
use hunyuan_proxy::config::Secret;
use hunyuan_proxy::mock::{Fault, MockConfig, MockHunyuan};
use serde_json::Value;
use std::time::Duration;

const BAD: &str = "key-revoked-401";
const BUSY: &str = "key-at-limit-429";
const GOOD: &str = "key-healthy-ok";

/// How many chat requests the mock got with each bearer key, in `keys` order.
fn per_key(mock: &MockHunyuan, keys: &[&str]) -> Vec<usize> {
    let requests = mock.requests();
    keys.iter()
        .map(|key| {
            let auth = format!("Bearer {key}");
            requests
                .iter()
                .filter(|r| r.path == "/v1/chat/completions")
                .filter(|r| {
                    r.headers
                        .get("authorization")
                        .is_some_and(|v| v == auth.as_str())
                })
                .count()
        })
        .collect()
}

async fn pool_of(mock_config: MockConfig, first: &str, more: &[&str]) -> TestProxy {
    let mock = MockHunyuan::start_with(mock_config).await;
    let mut config = TestProxy::config_for(&mock);
    config.api_key = Some(Secret::new(first));
    config.api_keys = more.iter().map(|k| Secret::new(*k)).collect();
    TestProxy::start_on(mock, config).await
}

#[tokio::test]
async fn a_refused_and_a_rate_limited_key_leave_every_request_to_the_healthy_one() {
    let mock_config = MockConfig::default()
        .with_key_fault(BAD, Fault::Status(401))
        .with_key_fault(
            BUSY,
            Fault::RateLimited {
                retry_after_secs: 0,
            },
        );
    let t = pool_of(mock_config, BAD, &[BUSY, GOOD]).await;
    // Sequential, then concurrent.
    for _ in 0..4 {
        let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
        assert_eq!(response.status(), 200);
    }
    let bodies = [simple_chat(false), simple_chat(true)];
    let requests = (0..8).map(|i| t.post("/v1/chat/completions", &bodies[i % 2]));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
        assert!(!response.text().await.unwrap().contains("\"error\""));
    }
    let counts = per_key(&t.mock, &[BAD, BUSY, GOOD]);
    assert_eq!(
        counts[0], 1,
        "the refused key is asked once, then cooled down: {counts:?}"
    );
    assert_eq!(
        counts[2], 12,
        "the healthy key served every request: {counts:?}"
    );

    let status: Value = t.get("/status").await.json().await.unwrap();
    let keys = status["upstream"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{status}");
    assert_eq!(keys[0]["cooldowns"], 1, "{keys:?}");
    assert!(
        keys[0]["cooling_down_secs"].as_u64().unwrap() > 50,
        "{keys:?}"
    );
    assert_eq!(
        keys[1]["cooldowns"], 0,
        "a 429 does not cool a key down: {keys:?}"
    );
    assert_eq!(keys[2]["cooling_down_secs"], 0, "{keys:?}");
    let text = status.to_string();
    for key in [BAD, BUSY, GOOD] {
        assert!(!text.contains(key), "a key value leaked into /status");
    }

    let health: Value = t.get("/health").await.json().await.unwrap();
    let text = health.to_string();
    assert!(text.contains("upstream_keys"), "{health}");
    assert!(text.contains("1 of 3 key(s) cooling down"), "{health}");
    assert!(!text.contains(BAD), "a key value leaked into /health");
}

#[cfg(feature = "prometheus")]
#[tokio::test]
async fn a_cooldown_is_counted_by_key_index() {
    let mock_config = MockConfig::default().with_key_fault(BAD, Fault::Status(403));
    let t = pool_of(mock_config, BAD, &[GOOD]).await;
    let count = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("hunyuan_proxy_upstream_key_cooldowns_total{"))
            .filter(|l| l.contains("key=\"0\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = count(&t.get("/metrics").await.text().await.unwrap());
    for _ in 0..3 {
        let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(per_key(&t.mock, &[BAD, GOOD]), [1, 3]);
    let metrics = t.get("/metrics").await.text().await.unwrap();
    // Other tests of this process cool their key 0 down too: at least this one counted.
    assert!(
        count(&metrics) >= before + 1.0,
        "{before} → {}",
        count(&metrics)
    );
    assert!(!metrics.contains(BAD), "a key value leaked into /metrics");
}

#[tokio::test]
async fn every_key_refused_is_a_503_that_says_so() {
    let mock_config = MockConfig::default()
        .with_key_fault(BAD, Fault::Status(401))
        .with_key_fault(BUSY, Fault::Status(403));
    let t = pool_of(mock_config, BAD, &[BUSY]).await;
    let first = t.post("/v1/chat/completions", &simple_chat(false)).await;
    assert!(first.status().is_client_error() || first.status().is_server_error());
    assert_eq!(per_key(&t.mock, &[BAD, BUSY]), [1, 1]);
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    let body = expect_envelope(response, 503).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("every upstream API key"), "{message}");
    assert_eq!(
        per_key(&t.mock, &[BAD, BUSY]),
        [1, 1],
        "no key is asked while out"
    );
    let health: Value = t.get("/health").await.json().await.unwrap();
    assert!(
        health.to_string().contains("every key is cooling down"),
        "{health}"
    );
}

#[tokio::test]
async fn each_key_has_its_own_concurrency_cap() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let mut config = TestProxy::config_for(&mock);
    config.upstream_concurrency = 2;
    config.api_keys = vec![
        Secret::new("second-key-1234"),
        Secret::new("third-key-12345"),
    ];
    let t = TestProxy::start_on(mock, config).await;
    let body = simple_chat(false);
    let requests = (0..12).map(|_| t.post("/v1/chat/completions", &body));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(t.mock.max_in_flight(), 6, "2 per key, 3 keys");
    let counts = per_key(
        &t.mock,
        &[UPSTREAM_KEY, "second-key-1234", "third-key-12345"],
    );
    assert_eq!(counts, [4, 4, 4], "spread to the least loaded key");
}
