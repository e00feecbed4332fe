//! Adding hunyuan-proxy to an axum application you already have.
//!
//! The application has its own route, `GET /app/hello`, behind its own auth middleware (an
//! `x-app-token` header). Without touching its handlers, it gains:
//!
//! - the ready-made chat stack ([`ChatStack::builder`](hunyuan_proxy::ChatStack::builder)) mounted at `POST /v1/chat/completions`;
//! - [`MetricsLayer`] and [`HealthLayer`] applied to the *whole* app with `.layer(...)`: the
//!   app's own routes are counted in `GET /metrics` (Prometheus text), and `GET /health`,
//!   `/health/live` and `/health/ready` appear, with a check of the upstream and one of the
//!   app's own.
//!
//! Without `HUNYUAN_API_KEY` it runs against an embedded mock Hunyuan, so it works with no key.
//!
//! Run with:
//!
//! ```sh
//! cargo run --example embed_axum
//! # or against Hunyuan:
//! HUNYUAN_API_KEY=sk-... cargo run --example embed_axum
//!
//! curl -s localhost:4002/app/hello -H 'x-app-token: app-secret'
//! curl -s localhost:4002/v1/chat/completions -H 'Content-Type: application/json' \
//!   -d '{"model":"hunyuan-turbos-latest","messages":[{"role":"user","content":"Hello"}]}'
//! curl -s localhost:4002/health/ready
//! curl -s localhost:4002/metrics | grep 'route="/app/hello"'
//! ```
//!
//! `tests/it/embed_axum.rs` includes this file and runs [`existing_app`] and [`add_hunyuan`]
//! against the mock, so what you read here is what is tested.

// The test includes this file as a module and does not call `main`.
#![allow(dead_code)]

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post_service};
use axum::Router;
use http::StatusCode;
use hunyuan_proxy::health::{check_fn, CheckResult, HealthLayer, HealthRegistry, UpstreamCheck};
use hunyuan_proxy::metrics::{MetricsConfig, MetricsLayer};
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
use hunyuan_proxy::ChatStack;
use std::error::Error;

/// The token the app's own middleware demands on its own routes.
pub const APP_TOKEN: &str = "app-secret";

// ---------------------------------------------------------------------------------------------
// The application as it was before hunyuan-proxy.
// ---------------------------------------------------------------------------------------------

/// The existing application: its routes and its own auth middleware.
pub fn existing_app() -> Router {
    Router::new()
        .route("/app/hello", get(hello))
        // `route_layer`: the app's auth covers the app's routes only.
        .route_layer(middleware::from_fn(require_app_token))
}

async fn hello() -> &'static str {
    "hello from the app\n"
}

async fn require_app_token(request: Request, next: Next) -> Response {
    let token = request.headers().get("x-app-token");
    if token.is_some_and(|t| t.as_bytes() == APP_TOKEN.as_bytes()) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "the app wants its token\n").into_response()
    }
}

// ---------------------------------------------------------------------------------------------
// What adding hunyuan-proxy takes.
// ---------------------------------------------------------------------------------------------

/// Adds hunyuan-proxy to `app`: the chat stack at `/v1/chat/completions`, `GET /metrics`, and
/// the metrics and health layers around everything.
pub fn add_hunyuan(app: Router, upstream: UpstreamConfig) -> Result<Router, Box<dyn Error>> {
    // Install the Prometheus recorder before building the metrics layer: the layer registers
    // its handles with the recorder installed at that time.
    let prometheus = hunyuan_proxy::server::prometheus_handle()
        .ok_or("another metrics recorder was installed first")?;

    let upstream = Upstream::new(upstream)?;
    // The ready-made stack: parse, fix, cascade (with its description cache), upstream.
    let chat = ChatStack::builder(upstream.clone()).build()?;
    let health = HealthRegistry::new();
    // Critical: `/health/ready` answers 503 while Hunyuan cannot be reached.
    health.register("upstream", UpstreamCheck::new(upstream.clone()));
    // The app's own component, shown in `/health` without deciding readiness.
    health.register_non_critical(
        "app",
        check_fn(|| async { CheckResult::healthy("serving /app/hello") }),
    );

    // Routes named here become `route` labels; any other path is labelled `other`.
    let metrics = MetricsLayer::new(
        MetricsConfig::default()
            .route("/app/hello")
            .route("/v1/chat/completions"),
    );

    Ok(app
        // (a) the ready-made chat service, POST only.
        .route("/v1/chat/completions", post_service(chat.service()))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        )
        // (b) the layers, on the whole app: outermost last.
        .layer(HealthLayer::new(health))
        .layer(metrics))
}

// ---------------------------------------------------------------------------------------------
// Running it.
// ---------------------------------------------------------------------------------------------

/// The upstream from `HUNYUAN_API_KEY` / `HUNYUAN_API_BASE`; without a key, a new embedded mock
/// Hunyuan (returned too: it runs while it is kept).
pub async fn upstream_from_env() -> (UpstreamConfig, Option<MockHunyuan>) {
    if let Ok(key) = std::env::var("HUNYUAN_API_KEY") {
        let base = std::env::var("HUNYUAN_API_BASE")
            .unwrap_or_else(|_| hunyuan_proxy::preset::Preset::Hunyuan.api_base().to_owned());
        return (UpstreamConfig::new(base).api_key(key), None);
    }
    let mock = MockHunyuan::start().await;
    (
        UpstreamConfig::new(mock.base_url()).api_key("demo-key"),
        Some(mock),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let (upstream, mock) = upstream_from_env().await;
    if let Some(mock) = &mock {
        println!(
            "no HUNYUAN_API_KEY: using an embedded mock Hunyuan at {}",
            mock.base_url()
        );
    }
    let app = add_hunyuan(existing_app(), upstream)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:4002").await?;
    println!("listening on http://127.0.0.1:4002; try:");
    println!("  curl -s localhost:4002/app/hello -H 'x-app-token: {APP_TOKEN}'");
    println!(
        "  curl -s localhost:4002/v1/chat/completions -H 'Content-Type: application/json' \\\n    \
         -d '{{\"model\":\"hunyuan-turbos-latest\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
    );
    println!("  curl -s localhost:4002/health");
    println!("  curl -s localhost:4002/metrics | grep 'route=\"/app/hello\"'");
    axum::serve(listener, app).await?;
    Ok(())
}
