//! Building chat stacks by hand with `ServiceBuilder`: reordering the layers, leaving one out,
//! inserting a layer of your own, and replacing a built-in part with your own implementation.
//!
//! The ready-made stack ([`hunyuan_proxy::ChatStack`]) is Parse → Fix → Cascade → Upstream,
//! with the description cache around the built-in vision describer. Two wishes for a custom
//! stack cannot be met by one stack (putting the cache ahead of the cascade, and leaving the
//! cascade out), so this example builds **two**, both from the public API only:
//!
//! 1. [`reordered`]: **Metrics → Parse → Cascade → Fix → Upstream**.
//!    - [`MetricsLayer`] is outermost, inside the stack rather than around a whole app, so it
//!      reads what every layer below wrote into the response extensions (`VisionReport`,
//!      `FixReport`, `ResolvedModel`, `UpstreamTiming`).
//!    - The cascade runs *before* the fixer. (The default order fixes first, so that turns the
//!      fixer drops are never described; either order gives correct answers.)
//!    - The built-in vision describer is **replaced** by the user's own [`UrlDescriber`], and a
//!      [`CacheLayer`] built by hand sits in front of it, ahead of the cascade.
//! 2. [`without_cascade`]: **Parse → Fix → FixAudit → Upstream**.
//!    - The cascade is left out: images go to the model as they are (use a vision model).
//!    - [`FixAuditLayer`], a layer of the user's own, sits between the fixer and the upstream.
//!      It reads the fixed conversation (`ParsedChat`) and the `FixReport` from the request
//!      extensions, logs them, keeps them for inspection, and names the fired rules in an
//!      `x-fix-rules` response header; on the way back it reads the upstream's
//!      `ResolvedModel` and `UpstreamTiming` from the response extensions.
//!
//! Without `HUNYUAN_API_KEY` it runs against an embedded mock Hunyuan, so it works with no key.
//!
//! Run with:
//!
//! ```sh
//! cargo run --example custom_stack
//! # or against Hunyuan:
//! HUNYUAN_API_KEY=sk-... cargo run --example custom_stack
//!
//! curl -s localhost:4003/reordered/v1/chat/completions -H 'Content-Type: application/json' \
//!   -d '{"model":"hunyuan-turbos-latest","messages":[{"role":"user","content":[
//!        {"type":"text","text":"What is this?"},
//!        {"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}'
//! curl -si localhost:4003/plain/v1/chat/completions -H 'Content-Type: application/json' \
//!   -d '{"model":"hunyuan-turbos-latest","messages":[{"role":"user","content":"Hi"},
//!        {"role":"assistant","content":"Once upon"}]}'
//! curl -s localhost:4003/stats
//! ```
//!
//! `tests/it/custom_stack.rs` includes this file and runs [`reordered`], [`without_cascade`] and
//! [`router`] against the mock, so what you read here is what is tested.

// The test includes this file as a module and does not call `main`.
#![allow(dead_code)]

use axum::body::Body;
use axum::routing::{get, post_service};
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use hunyuan_proxy::cache::{CacheConfig, CacheHandle, CacheLayer};
use hunyuan_proxy::cascade::{CascadeConfig, CascadeLayer, DescribeRequest, Description};
use hunyuan_proxy::chat::{ParseLayer, ParsedChat};
use hunyuan_proxy::extensions::{FixReport, ResolvedModel, UpstreamTiming};
use hunyuan_proxy::fix::{FixConfig, FixLayer};
use hunyuan_proxy::metrics::{MetricsConfig, MetricsLayer, Monitor, MonitorConfig};
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
use hunyuan_proxy::ChatService;
use std::convert::Infallible;
use std::error::Error;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};

/// Where the reordered stack is mounted.
pub const REORDERED_ROUTE: &str = "/reordered/v1/chat/completions";
/// Where the stack without the cascade is mounted.
pub const PLAIN_ROUTE: &str = "/plain/v1/chat/completions";
/// The response header [`FixAuditLayer`] sets: the fix rules that fired, comma-separated
/// (`none` when the conversation needed no fixing).
pub const FIX_RULES_HEADER: &str = "x-fix-rules";
/// The response header [`FixAuditLayer`] sets from the `ResolvedModel` the upstream service
/// left in the response extensions: the model that answered.
pub const UPSTREAM_MODEL_HEADER: &str = "x-upstream-model";

// ---------------------------------------------------------------------------------------------
// A replaced part: the user's own describer.
// ---------------------------------------------------------------------------------------------

/// The user's own describer, in place of the built-in vision call
/// ([`hunyuan_proxy::cascade::Describer`]): it describes an image from what its URL tells (the
/// file name, or the media type and size of a `data:` URL) and never calls a model. It stands
/// for any describer of your own (another vision API, a local OCR model…): anything that is a
/// `Service<DescribeRequest>` answering a [`Description`] plugs into [`CascadeLayer`]. It
/// counts its calls.
#[derive(Debug, Clone, Default)]
pub struct UrlDescriber {
    calls: Arc<AtomicUsize>,
}

impl UrlDescriber {
    /// How many images it was asked to describe.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// What a URL tells about its image.
fn describe_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("data:") {
        let media = rest.split([';', ',']).next().unwrap_or("image");
        let encoded = rest.split_once(',').map_or(0, |(_, data)| data.len());
        format!("an inline {media} of about {} bytes", encoded / 4 * 3)
    } else {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let name = path.rsplit('/').next().filter(|n| !n.is_empty());
        format!("an image named {}", name.unwrap_or(path))
    }
}

impl Service<DescribeRequest> for UrlDescriber {
    type Response = Description;
    type Error = Infallible;
    type Future = Ready<Result<Description, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: DescribeRequest) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ready(Ok(Description(describe_url(&request.url).into())))
    }
}

// ---------------------------------------------------------------------------------------------
// An inserted layer: the user's own, between the fixer and the upstream.
// ---------------------------------------------------------------------------------------------

/// What [`FixAudit`] saw of one request on its way to the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The model the request goes to.
    pub model: String,
    /// The roles of the fixed conversation, in order.
    pub roles: Vec<&'static str>,
    /// The fix rules that fired (from the `FixReport`).
    pub rules: Vec<&'static str>,
}

/// Puts [`FixAudit`] in front of a service. Clones share one record of what was seen.
#[derive(Debug, Clone, Default)]
pub struct FixAuditLayer {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FixAuditLayer {
    /// The most recent requests seen (at most 100), oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S> Layer<S> for FixAuditLayer {
    type Service = FixAudit<S>;

    fn layer(&self, inner: S) -> FixAudit<S> {
        FixAudit {
            inner,
            seen: self.seen.clone(),
        }
    }
}

/// Reads what the [`FixLayer`] wrote into the request extensions (the fixed `ParsedChat` and
/// the `FixReport`), logs it, records it, and names the fired rules in the
/// [`FIX_RULES_HEADER`] of the response. On the way back it reads what the upstream wrote
/// into the response extensions (`ResolvedModel`, `UpstreamTiming`), logs it, and names the
/// model in the [`UPSTREAM_MODEL_HEADER`].
#[derive(Debug, Clone)]
pub struct FixAudit<S> {
    inner: S,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl<S> Service<Request<Body>> for FixAudit<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let chat = request.extensions().get::<ParsedChat>();
        let seen = Seen {
            model: chat.map(|c| c.model.clone()).unwrap_or_default(),
            roles: chat.map_or_else(Vec::new, |c| {
                c.messages.iter().map(|m| m.role.as_str()).collect()
            }),
            rules: request
                .extensions()
                .get::<FixReport>()
                .map_or_else(Vec::new, |r| r.rules.clone()),
        };
        tracing::info!(model = %seen.model, roles = ?seen.roles, rules = ?seen.rules, "fixed conversation");
        let rules = if seen.rules.is_empty() {
            HeaderValue::from_static("none")
        } else {
            // Rule names are ASCII identifiers.
            HeaderValue::from_str(&seen.rules.join(",")).expect("rule names are header-safe")
        };
        {
            let mut log = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() == 100 {
                log.remove(0);
            }
            log.push(seen);
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            // What the upstream service wrote into the response extensions.
            let model = response.extensions().get::<ResolvedModel>().cloned();
            let timing = response.extensions().get::<UpstreamTiming>().copied();
            tracing::info!(
                model = model.as_ref().map(|m| m.0.as_str()),
                upstream_ms = timing.map(|t| t.time_to_headers.as_millis()),
                "upstream answered"
            );
            if let Some(model) = model.and_then(|m| HeaderValue::try_from(m.0).ok()) {
                response.headers_mut().insert(UPSTREAM_MODEL_HEADER, model);
            }
            response.headers_mut().insert(FIX_RULES_HEADER, rules);
            Ok(response)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The two stacks.
// ---------------------------------------------------------------------------------------------

/// Stack 1 and the handles to look into it.
pub struct Reordered {
    /// Metrics → Parse → Cascade (cache → [`UrlDescriber`]) → Fix → Upstream, type-erased.
    pub service: ChatService,
    /// The monitor the outermost metrics layer records into.
    pub monitor: Arc<Monitor>,
    /// The describer that replaced the built-in one.
    pub describer: UrlDescriber,
    /// The description cache in front of it.
    pub cache: CacheHandle,
}

/// Builds stack 1: metrics outermost, the cascade (with the user's describer behind a cache)
/// before the fixer.
pub fn reordered(upstream: Upstream) -> Result<Reordered, Box<dyn Error>> {
    let describer = UrlDescriber::default();
    let cache = CacheLayer::<Description>::new(
        CacheConfig::default()
            .max_entries(1000)
            .ttl(Duration::from_secs(3600)),
    )?;
    let cascade = CascadeLayer::new(CascadeConfig::default(), cache.layer(describer.clone()))?;
    let monitor = Arc::new(Monitor::new(MonitorConfig::default()));
    let metrics = MetricsLayer::new(MetricsConfig::default().route(REORDERED_ROUTE))
        .with_monitor(monitor.clone());
    let service = ServiceBuilder::new()
        // The metrics layer wraps the body to see it end; give axum back a plain `Body`.
        .map_response(|response: Response<_>| response.map(Body::new))
        .layer(metrics)
        .layer(ParseLayer::default())
        .layer(cascade)
        .layer(FixLayer::new(FixConfig::default())?)
        .service(upstream);
    Ok(Reordered {
        service: BoxCloneSyncService::new(service),
        monitor,
        describer,
        cache: cache.handle(),
    })
}

/// Stack 2 and the handle to look into it.
pub struct WithoutCascade {
    /// Parse → Fix → [`FixAudit`] → Upstream, type-erased.
    pub service: ChatService,
    /// The inserted layer (its record of what it saw).
    pub audit: FixAuditLayer,
}

/// Builds stack 2: no cascade, the user's [`FixAuditLayer`] between the fixer and the upstream.
pub fn without_cascade(upstream: Upstream) -> Result<WithoutCascade, Box<dyn Error>> {
    let audit = FixAuditLayer::default();
    let service = ServiceBuilder::new()
        .layer(ParseLayer::default())
        .layer(FixLayer::new(FixConfig::default())?)
        .layer(audit.clone())
        .service(upstream);
    Ok(WithoutCascade {
        service: BoxCloneSyncService::new(service),
        audit,
    })
}

/// Both stacks on one router (POST only), with the monitor's snapshot at `GET /stats`.
pub fn router(reordered: &Reordered, plain: &WithoutCascade) -> Router {
    let monitor = reordered.monitor.clone();
    Router::new()
        .route(REORDERED_ROUTE, post_service(reordered.service.clone()))
        .route(PLAIN_ROUTE, post_service(plain.service.clone()))
        .route("/stats", get(move || ready(Json(monitor.snapshot()))))
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
    tracing_subscriber::fmt().init();
    let (upstream, mock) = upstream_from_env().await;
    if let Some(mock) = &mock {
        println!(
            "no HUNYUAN_API_KEY: using an embedded mock Hunyuan at {}",
            mock.base_url()
        );
    }
    // One pooled upstream client, shared by both stacks.
    let upstream = Upstream::new(upstream)?;
    let first = reordered(upstream.clone())?;
    let second = without_cascade(upstream)?;
    let app = router(&first, &second);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:4003").await?;
    println!("listening on http://127.0.0.1:4003; try:");
    println!(
        "  curl -s localhost:4003{REORDERED_ROUTE} -H 'Content-Type: application/json' \\\n    \
         -d '{{\"model\":\"hunyuan-turbos-latest\",\"messages\":[{{\"role\":\"user\",\"content\":[\
         {{\"type\":\"text\",\"text\":\"What is this?\"}},\
         {{\"type\":\"image_url\",\"image_url\":{{\"url\":\"https://example.com/cat.png\"}}}}]}}]}}'"
    );
    println!(
        "  curl -si localhost:4003{PLAIN_ROUTE} -H 'Content-Type: application/json' \\\n    \
         -d '{{\"model\":\"hunyuan-turbos-latest\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hi\"}},\
         {{\"role\":\"assistant\",\"content\":\"Once upon\"}}]}}'"
    );
    println!("  curl -s localhost:4003/stats");
    axum::serve(listener, app).await?;
    Ok(())
}
