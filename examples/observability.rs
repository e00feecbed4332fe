//! MetricsLayer, HealthLayer and alert rules on an axum app of your own (no proxy involved).
//!
//! Run with:
//!
//! ```sh
//! cargo run --example observability
//! curl -s localhost:4001/hello
//! curl -s localhost:4001/health | jq .
//! curl -s localhost:4001/metrics | grep hunyuan_proxy_requests_total
//! curl -s localhost:4001/stats | jq .
//! ```

use axum::routing::get;
use axum::{Json, Router};
use hunyuan_proxy::health::{check_fn, CheckResult, HealthLayer, HealthRegistry};
use hunyuan_proxy::metrics::alerts::{AlertMetric, Quantile};
use hunyuan_proxy::metrics::{
    AlertRule, AlertTask, Alerts, Condition, MetricsConfig, MetricsLayer, Monitor, MonitorConfig,
    Severity,
};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    // Install the recorder first: the layer registers its handles with it.
    let prometheus = hunyuan_proxy::server::prometheus_handle().ok_or("no recorder")?;

    let monitor = Arc::new(Monitor::new(MonitorConfig::default().max_points(1000)));
    let alerts = Arc::new(Alerts::with_defaults(&[])?);
    alerts.add_rule(
        AlertRule::new(
            "slow_hello",
            AlertMetric::TextLatency(Quantile::P99),
            Condition::Gt,
            0.5,
        )
        .severity(Severity::Medium)
        .message("/hello is slow")
        .min_samples(5),
    )?;
    // Evaluated every 10 s until `_task` is dropped.
    let _task = AlertTask::spawn(
        alerts.clone(),
        monitor.clone(),
        Duration::from_secs(10),
        None,
    );

    let registry = HealthRegistry::new();
    registry.register(
        "database",
        check_fn(|| async { CheckResult::healthy("connected") }),
    );

    let stats_monitor = monitor.clone();
    let app = Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        )
        .route(
            "/stats",
            get(move || std::future::ready(Json(stats_monitor.snapshot()))),
        )
        .layer(HealthLayer::new(registry))
        .layer(MetricsLayer::new(MetricsConfig::default().route("/hello")).with_monitor(monitor));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:4001").await?;
    println!("listening on http://127.0.0.1:4001");
    axum::serve(listener, app).await?;
    Ok(())
}
