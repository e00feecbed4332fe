//! Metrics, alerts, health and status against the mock Hunyuan.
//!
//! The Prometheus recorder is process-wide and shared by every proxy these tests start, so
//! assertions on `/metrics` use deltas; the monitor behind `/status` belongs to one proxy and
//! is asserted exactly.

use crate::common::{serve, simple_chat, TestProxy};
use futures_util::StreamExt;
use hunyuan_proxy::health::{check_fn, CheckResult};
use hunyuan_proxy::mock::{Fault, MockConfig, MockHunyuan};
use hunyuan_proxy::Proxy;
use serde_json::Value;
use std::time::{Duration, Instant};

const ROUTE: &str = "/v1/chat/completions";

/// Polls `probe` every 50 ms until it is true or `within` has passed.
async fn eventually<F, Fut>(within: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(t: &TestProxy) -> Value {
    t.get("/status").await.json().await.unwrap()
}

async fn scrape(t: &TestProxy) -> prometheus_parse::Scrape {
    let response = t.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text")
}

/// The sum of the samples of `name` whose labels include every pair of `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

fn fast(config: &mut hunyuan_proxy::Config) {
    config.upstream_retries = 0;
    config.health_probe_cache = 0;
}

#[tokio::test]
async fn counters_move_for_plain_streamed_and_abandoned_requests() {
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(100)))
            .await;
    let mut config = TestProxy::config_for(&mock);
    fast(&mut config);
    let t = TestProxy::start_on(mock, config).await;
    let ok = [("route", ROUTE), ("status", "2xx"), ("outcome", "success")];
    let aborted = [("route", ROUTE), ("outcome", "aborted")];
    let before = scrape(&t).await;

    let plain = t.post(ROUTE, &simple_chat(false)).await;
    assert_eq!(plain.status(), 200);
    plain.bytes().await.unwrap();
    let streamed = t.post(ROUTE, &simple_chat(true)).await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.text().await.unwrap().contains("[DONE]"));

    // A client that reads one chunk of a slow stream and goes away.
    let abandoned = t.post(ROUTE, &simple_chat(true)).await;
    let mut chunks = abandoned.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    drop(chunks);

    let recorded = eventually(Duration::from_secs(5), || async {
        status(&t).await["requests"]["aborted"] == 1
    })
    .await;
    assert!(
        recorded,
        "the abandoned stream was not recorded: {}",
        status(&t).await
    );
    let s = status(&t).await;
    assert_eq!(s["requests"]["total"], 3, "{s}");
    assert_eq!(s["requests"]["successes"], 2, "{s}");
    assert_eq!(s["requests"]["success_rate"].as_f64().unwrap(), 2.0 / 3.0);
    assert_eq!(s["requests"]["error_rate"], 0.0);
    assert_eq!(s["latency_seconds"]["text"]["count"], 3);
    assert!(s["latency_seconds"]["text"]["p95"].as_f64().unwrap() > 0.0);
    assert_eq!(s["latency_seconds"]["image"]["count"], 0);
    assert_eq!(s["model_calls"]["hunyuan-turbos-latest"], 3, "{s}");
    // Probes and scrapes are not in the window.
    t.get("/health/live").await;
    assert_eq!(status(&t).await["requests"]["total"], 3);

    let after = scrape(&t).await;
    let delta = |labels: &[(&str, &str)], name: &str| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert!(delta(&ok, "hunyuan_proxy_requests_total") >= 2.0);
    assert!(delta(&aborted, "hunyuan_proxy_requests_total") >= 1.0);
    let upstream = [("model", "hunyuan-turbos-latest"), ("status", "200")];
    assert!(delta(&upstream, "hunyuan_proxy_upstream_calls_total") >= 3.0);
    assert!(
        delta(
            &[("route", ROUTE)],
            "hunyuan_proxy_time_to_first_byte_seconds_count"
        ) >= 2.0
    );
    assert!(
        delta(
            &[("route", ROUTE)],
            "hunyuan_proxy_request_duration_seconds_count"
        ) >= 3.0
    );
    assert!(delta(&[("route", ROUTE)], "hunyuan_proxy_overhead_seconds_count") >= 3.0);
    assert!(
        delta(
            &[("model", "hunyuan-turbos-latest"), ("direction", "in")],
            "hunyuan_proxy_tokens_total"
        ) > 0.0,
        "usage of the non-streamed answer was not counted"
    );
    // Every metric carries its HELP text.
    for name in [
        "hunyuan_proxy_requests_total",
        "hunyuan_proxy_request_duration_seconds",
        "hunyuan_proxy_overhead_seconds",
        "hunyuan_proxy_requests_in_flight",
    ] {
        assert!(after.docs.contains_key(name), "no HELP for {name}");
    }
}

#[tokio::test]
async fn errors_are_counted_by_kind() {
    let t = TestProxy::start_with(fast).await;
    let before = scrape(&t).await;
    t.mock.set_fault(Some(Fault::ServerError));
    assert_eq!(t.post(ROUTE, &simple_chat(false)).await.status(), 502);
    let bad = t
        .post_raw(ROUTE, "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(bad.status(), 400);
    let s = status(&t).await;
    assert_eq!(s["requests"]["server_errors"], 1, "{s}");
    assert_eq!(s["requests"]["client_errors"], 1, "{s}");
    assert_eq!(s["requests"]["errors_by_kind"]["bad_gateway"], 1, "{s}");
    let after = scrape(&t).await;
    let kind = [("kind", "bad_gateway")];
    assert!(
        value(&after, "hunyuan_proxy_errors_total", &kind)
            > value(&before, "hunyuan_proxy_errors_total", &kind)
    );
}

#[tokio::test]
async fn high_error_rate_fires_and_resolves_within_two_check_intervals() {
    let t = TestProxy::start_with(|c| {
        fast(c);
        c.alert_check_interval = 1;
        c.max_metric_points = 20;
    })
    .await;
    let firing = |s: &Value| {
        s["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "high_error_rate")
    };
    t.mock.set_fault(Some(Fault::ServerError));
    for _ in 0..12 {
        assert_eq!(t.post(ROUTE, &simple_chat(false)).await.status(), 502);
    }
    let fired = eventually(Duration::from_secs(2), || async {
        firing(&status(&t).await)
    })
    .await;
    let s = status(&t).await;
    assert!(fired, "high_error_rate not active: {s}");
    let alert = s["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "high_error_rate")
        .unwrap()
        .clone();
    assert_eq!(alert["severity"], "high");
    assert!(alert["since"].as_str().unwrap().ends_with('Z'));
    // A firing high-severity alert degrades the health report.
    let health: Value = t.get("/health").await.json().await.unwrap();
    assert_eq!(
        health["components"]["alerts"]["status"], "degraded",
        "{health}"
    );

    t.mock.set_fault(None);
    for _ in 0..20 {
        assert_eq!(t.post(ROUTE, &simple_chat(false)).await.status(), 200);
    }
    let resolved = eventually(Duration::from_secs(2), || async {
        !firing(&status(&t).await)
    })
    .await;
    assert!(
        resolved,
        "high_error_rate still active: {}",
        status(&t).await
    );
}

#[tokio::test]
async fn readiness_follows_the_upstream() {
    let mock = MockHunyuan::start().await;
    let addr = mock.addr();
    let mut config = TestProxy::config_for(&mock);
    fast(&mut config);
    let proxy = Proxy::new(config).unwrap();
    let url = format!("http://{}", serve(proxy.router()).await);
    let client = reqwest::Client::new();
    let ready = || async {
        let response = client
            .get(format!("{url}/health/ready"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };

    assert_eq!(ready().await.0, 200);
    mock.stop().await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"][0], "upstream", "{body}");
    let health: Value = client
        .get(format!("{url}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["components"]["upstream"]["status"], "unhealthy");

    let _back = MockHunyuan::start_on(addr, MockConfig::default())
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || async { ready().await.0 == 200 }).await);
    // Liveness does not depend on the upstream.
    let live = client
        .get(format!("{url}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn rate_limited_upstream_probe_is_degraded_not_unhealthy() {
    // The mock's faults apply to chat requests only, so stand in a tiny upstream answering 429.
    let upstream = axum::Router::new().route(
        "/v1/models",
        axum::routing::get(|| async { (http::StatusCode::TOO_MANY_REQUESTS, "slow down") }),
    );
    let addr = serve(upstream).await;
    let config = hunyuan_proxy::Config {
        api_base: Some(format!("http://{addr}/v1")),
        health_probe_cache: 0,
        ..hunyuan_proxy::Config::default()
    };
    let proxy = Proxy::new(config).unwrap();
    let url = format!("http://{}", serve(proxy.router()).await);
    let health: Value = reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["components"]["upstream"]["status"], "degraded",
        "{health}"
    );
    assert_eq!(health["status"], "degraded");
    let ready = reqwest::get(format!("{url}/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn custom_checks_show_in_health() {
    let t = TestProxy::start_with(fast).await;
    t.proxy.health().register_non_critical(
        "disk",
        check_fn(|| async { CheckResult::degraded("92% full") }),
    );
    let response = t.get("/health").await;
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    let disk = &health["components"]["disk"];
    assert_eq!(disk["status"], "degraded", "{health}");
    assert_eq!(disk["message"], "92% full");
    assert!(disk["checked_at"].as_str().unwrap().ends_with('Z'));
    assert!(disk["duration_ms"].as_f64().is_some());
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].is_u64());
    assert_eq!(health["components"]["upstream"]["status"], "healthy");
}

#[tokio::test]
async fn status_document_has_every_section() {
    let t = TestProxy::start_with(fast).await;
    t.post(ROUTE, &simple_chat(false))
        .await
        .bytes()
        .await
        .unwrap();
    let s = status(&t).await;
    for key in [
        "version",
        "uptime_seconds",
        "config",
        "requests",
        "latency_seconds",
        "cache",
        "model_calls",
        "fix_rules",
        "alerts",
        "upstream",
    ] {
        assert!(s.get(key).is_some(), "no `{key}` in {s}");
    }
    assert_eq!(s["requests"]["total"], 1);
    assert!(s["latency_seconds"]["image"].is_object());
    assert!(s["alerts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn monitoring_and_health_can_be_turned_off() {
    let t = TestProxy::start_with(|c| {
        c.enable_monitoring = false;
        c.enable_health_check = false;
    })
    .await;
    assert!(t.proxy.monitor().is_none());
    assert!(t.proxy.alerts().is_none());
    assert_eq!(t.get("/metrics").await.status(), 404);
    assert_eq!(t.get("/health").await.status(), 404);
    assert_eq!(t.get("/health/ready").await.status(), 404);
    assert_eq!(t.post(ROUTE, &simple_chat(false)).await.status(), 200);
    let s = status(&t).await;
    assert_eq!(s["monitoring"], false);
    assert!(s["alerts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_alert_task_ends_with_the_proxy() {
    let mock = MockHunyuan::start().await;
    let proxy = Proxy::new(TestProxy::config_for(&mock)).unwrap();
    let router = proxy.router();
    let alerts = std::sync::Arc::downgrade(proxy.alerts().unwrap());
    drop(proxy);
    // The router holds the proxy too.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(alerts.upgrade().is_some());
    drop(router);
    let gone = eventually(Duration::from_secs(2), || {
        let alive = alerts.upgrade().is_some();
        async move { !alive }
    })
    .await;
    assert!(gone, "the alert task outlived its proxy");
}
