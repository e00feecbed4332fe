//! The full proxy as an axum [`Router`]: the chat stack, legacy completions, models, root,
//! health, status and admin routes, with CORS, request logging and the error envelope on every
//! path (unknown routes and methods included).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hunyuan_proxy::{config::Config, server::Proxy};
//!
//! let proxy = Proxy::new(Config::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! axum::serve(listener, proxy.router()).await?;
//! # Ok(()) }
//! ```

use crate::auth::ClientAuthLayer;
use crate::cache::CacheHandle;
use crate::chat::parse::BodyReadTimeout;
use crate::chat::BodyLimit;
use crate::completions::CompletionsService;
use crate::config::{Config, ConfigError};
use crate::error::ProxyError;
use crate::rate_limit::RateLimitLayer;
use crate::stack::{ChatService, ChatStack};
use crate::upstream::{Upstream, UpstreamConfig, UpstreamSetupError};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

/// Every route the proxy serves, as listed by `GET /`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/status"),
    ("GET", "/metrics"),
    ("GET", "/cache/stats"),
    ("DELETE", "/cache"),
];

/// A proxy that could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The upstream client could not be set up.
    #[error(transparent)]
    Upstream(#[from] UpstreamSetupError),
}

/// The proxy: its validated config, the upstream and the chat stack.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<ProxyState>,
}

struct ProxyState {
    config: Config,
    upstream: Upstream,
    chat: ChatService,
    description_cache: CacheHandle,
    started: Instant,
    started_unix: u64,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.state.config)
            .finish()
    }
}

impl Proxy {
    /// Validates `config` and builds the upstream client and the chat stack.
    pub fn new(config: Config) -> Result<Self, BuildError> {
        config.validate()?;
        let upstream = Upstream::new(UpstreamConfig::from_config(&config))?;
        let stack = ChatStack::new(&config, upstream.clone());
        Ok(Proxy {
            state: Arc::new(ProxyState {
                config,
                upstream,
                chat: stack.service,
                description_cache: stack.description_cache,
                started: Instant::now(),
                started_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                shutting_down: AtomicBool::new(false),
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The upstream forwarding service.
    pub fn upstream(&self) -> &Upstream {
        &self.state.upstream
    }

    /// The chat stack, for mounting on a route of your own.
    pub fn chat_service(&self) -> ChatService {
        self.state.chat.clone()
    }

    /// The image-description cache: statistics and clearing.
    pub fn description_cache(&self) -> &CacheHandle {
        &self.state.description_cache
    }

    /// Marks the proxy as shutting down: `/health/live` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether [`begin_shutdown`](Self::begin_shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.state.shutting_down.load(Ordering::SeqCst)
    }

    /// The full router with every route of the contract.
    pub fn router(&self) -> Router {
        let chat = self.chat_service();
        let completions = CompletionsService::new(chat.clone());
        let config = &self.state.config;
        let api = Router::new()
            .route_service("/v1/chat/completions", post_only(chat.clone()))
            .route_service("/chat/completions", post_only(chat))
            .route_service("/v1/completions", post_only(completions.clone()))
            .route_service("/completions", post_only(completions))
            .route("/v1/models", get(models))
            .route("/models", get(models))
            .route_layer(RateLimitLayer::new(
                config.rate_limit,
                config.client_rate_limit,
            ))
            .route_layer(ClientAuthLayer::new(config.client_api_keys.clone()));
        let mut router = Router::new()
            .route("/", get(root))
            .route("/health", get(health))
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .route("/status", get(status))
            .route("/metrics", get(metrics))
            .route("/cache/stats", get(cache_stats))
            .route("/cache", axum::routing::delete(cache_clear))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .merge(api)
            .with_state(self.clone())
            .layer(Extension(BodyLimit(config.request_body_limit)))
            .layer(Extension(BodyReadTimeout(config.request_body_timeout())))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            );
        if config.enable_cors {
            router = router.layer(cors_layer(&config.cors_origins));
        }
        router
    }
}

/// A method router that sends POST to `service` and answers other methods with the envelope.
fn post_only<S>(service: S) -> axum::routing::MethodRouter<()>
where
    S: tower_service::Service<
            http::Request<axum::body::Body>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    axum::routing::post_service(service).fallback(method_not_allowed)
}

/// CORS for `origins`; empty or `*` allows any origin, never together with credentials.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    if origins.is_empty() || origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(list)
    }
}

/// A panic is a bug: log it (without its payload, which may hold request data) and answer 500
/// with the envelope instead of dropping the connection.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ProxyError::Internal.into_response()
}

async fn not_found() -> ProxyError {
    ProxyError::NotFound {
        message: "no such route; see GET / for the routes".into(),
    }
}

async fn method_not_allowed() -> ProxyError {
    ProxyError::MethodNotAllowed
}

async fn root(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    let routes: Vec<_> = ROUTES
        .iter()
        .map(|(method, path)| json!({"method": method, "path": path}))
        .collect();
    Json(json!({
        "name": "hunyuan-proxy",
        "version": env!("CARGO_PKG_VERSION"),
        "upstream": proxy.config().api_base(),
        "routes": routes,
    }))
}

async fn models(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    let config = proxy.config();
    let created = proxy.state.started_unix;
    let mut names = vec![config.text_model(), config.vision_model()];
    names.dedup();
    let data: Vec<_> = names
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "tencent"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn live(State(proxy): State<Proxy>) -> Response {
    if proxy.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down"})),
        )
            .into_response()
    } else {
        Json(json!({"status": "alive"})).into_response()
    }
}

async fn ready(State(proxy): State<Proxy>) -> Response {
    if proxy.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "failing": ["shutdown"]})),
        )
            .into_response();
    }
    Json(json!({"status": "ready"})).into_response()
}

async fn health(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    Json(json!({
        "status": if proxy.is_shutting_down() { "unhealthy" } else { "healthy" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": proxy.state.started.elapsed().as_secs(),
        "components": {},
    }))
}

async fn status(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": proxy.state.started.elapsed().as_secs(),
        "config": proxy.config(),
        "upstream": {
            "api_base": proxy.config().api_base(),
            "in_flight": proxy.upstream().in_flight(),
            "concurrency": proxy.config().upstream_concurrency,
        },
        "cache": proxy.description_cache().stats(),
    }))
}

async fn metrics() -> ProxyError {
    ProxyError::NotImplemented {
        message: "metrics are not available in this build yet".into(),
    }
}

/// Checks `Authorization: Bearer <admin_token>`: 404 when no token is configured (the admin
/// routes are off), 401 when it is missing or wrong.
fn check_admin(proxy: &Proxy, headers: &HeaderMap) -> Result<(), ProxyError> {
    let Some(token) = &proxy.config().admin_token else {
        return Err(ProxyError::NotFound {
            message: "admin routes are off: set admin_token to turn them on".into(),
        });
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if token.matches(p) => Ok(()),
        Some(_) => Err(ProxyError::Unauthorized {
            message: "invalid admin token".into(),
        }),
        None => Err(ProxyError::Unauthorized {
            message: "admin routes need `Authorization: Bearer <admin_token>`".into(),
        }),
    }
}

async fn cache_stats(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    check_admin(&proxy, &headers)?;
    Ok(Json(proxy.description_cache().stats()).into_response())
}

async fn cache_clear(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    check_admin(&proxy, &headers)?;
    let cleared = proxy.description_cache().clear();
    tracing::info!(cleared, "description cache emptied");
    Ok(Json(json!({"cleared": cleared})).into_response())
}
