//! `examples/embed_axum.rs`, run against the mock: the app keeps serving its own routes behind
//! its own auth, its requests are counted in `/metrics`, the health endpoints answer, and the
//! chat route works. Public API only.
//!
//! It counts requests exactly, and every proxy of this test binary records into the same
//! process-wide Prometheus recorder and the same `route="/v1/chat/completions"` series, so the
//! test runs in a process of its own.

// The example itself, so that the test runs exactly its setup.
#[path = "../../examples/embed_axum.rs"]
mod example;

use crate::common::{run_alone, serve, simple_chat};
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::upstream::UpstreamConfig;
use serde_json::Value;

#[tokio::test]
async fn the_embedded_app_serves_its_routes_counts_them_and_answers_health() {
    if !run_alone(
        module_path!(),
        "the_embedded_app_serves_its_routes_counts_them_and_answers_health",
    )
    .await
    {
        return;
    }
    let mock = MockHunyuan::start().await;
    let upstream = UpstreamConfig::new(mock.base_url()).api_key("app-upstream-key");
    let app = example::add_hunyuan(example::existing_app(), upstream).unwrap();
    let addr = serve(app).await;
    let url = |path: &str| format!("http://{addr}{path}");
    let client = reqwest::Client::new();

    // The app's own route, with and without the app's own token: unchanged.
    let hello = client
        .get(url("/app/hello"))
        .header("x-app-token", example::APP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.unwrap(), "hello from the app\n");
    let denied = client.get(url("/app/hello")).send().await.unwrap();
    assert_eq!(denied.status(), 401);

    // The chat route, which the app's auth does not cover.
    let answer = client
        .post(url("/v1/chat/completions"))
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Echo: Hello there"
    );
    assert_eq!(mock.chat_requests().len(), 1);
    let get_chat = client
        .get(url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_chat.status(), 405);

    // The health endpoints, with the upstream's check and the app's own.
    let live = client.get(url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = client.get(url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    let health: Value = client
        .get(url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["components"]["upstream"]["status"], "healthy");
    assert_eq!(health["components"]["app"]["status"], "healthy");

    // The app's own requests are counted, by route and outcome.
    let metrics = client
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |route: &str, outcome: &str| -> f64 {
        let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text");
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "hunyuan_proxy_requests_total")
            .filter(|s| s.labels.get("route") == Some(route))
            .filter(|s| s.labels.get("outcome") == Some(outcome))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(count("/app/hello", "success"), 1.0, "{metrics}");
    assert_eq!(count("/app/hello", "client_error"), 1.0, "{metrics}");
    assert_eq!(count("/v1/chat/completions", "success"), 1.0, "{metrics}");
}
