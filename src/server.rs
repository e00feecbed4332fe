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
//! axum::serve(listener, proxy.make_service()).await?;
//! # Ok(()) }
//! ```

use crate::anthropic::{AnthropicErrors, MessagesConfig, MessagesLayer};
use crate::auth::ClientAuthLayer;
use crate::cache::CacheHandle;
use crate::chat::parse::BodyReadTimeout;
use crate::chat::BodyLimit;
use crate::completions::CompletionsService;
use crate::config::{Config, ConfigError};
use crate::error::ProxyError;
use crate::health::{
    AlertCheck, CacheCheck, HealthConfig, HealthLayer, HealthRegistry, UpstreamCheck,
};
use crate::ingress::{DialectErrorsLayer, ErrorDialect};
use crate::metrics::{AlertTask, Alerts, MetricsConfig, MetricsLayer, Monitor, MonitorConfig};
use crate::rate_limit::RateLimitLayer;
use crate::stack::{ChatService, ChatStack};
use crate::upstream::{Upstream, UpstreamConfig, UpstreamSetupError};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::routing::IntoMakeService;
use axum::{Extension, Json, Router};
use http::{header, HeaderMap, HeaderValue, Method};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

/// Every route the proxy serves, as listed by `GET /`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/status"),
    ("GET", "/metrics"),
    ("GET", "/cache/stats"),
    ("DELETE", "/cache"),
];

/// The routes requests count in the monitor's window (rates, percentiles and alerts): the
/// model routes, not probes or scrapes.
pub const MONITORED_ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/completions",
    "/completions",
    "/v1/messages",
    "/messages",
];

/// Route aliases served besides [`ROUTES`], named in metric labels too.
const ALIASES: &[&str] = &[
    "/chat/completions",
    "/completions",
    "/models",
    "/messages",
    "/messages/count_tokens",
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
    /// An alert rule is not valid.
    #[error(transparent)]
    AlertRule(#[from] crate::metrics::alerts::AlertRuleError),
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
    shutting_down: Arc<AtomicBool>,
    observe: Option<Observe>,
    alert_task: Mutex<Option<AlertTask>>,
    /// Drains the Prometheus recorder's histogram buffers every few seconds, so memory stays
    /// flat between scrapes.
    #[cfg(feature = "prometheus")]
    upkeep_task: Mutex<Option<AbortOnDrop>>,
    health: HealthRegistry,
    upstream_check: Arc<UpstreamCheck>,
}

/// The monitoring parts, present when `enable_monitoring` is on.
struct Observe {
    monitor: Arc<Monitor>,
    alerts: Arc<Alerts>,
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
    ///
    /// With `enable_monitoring` on, this installs the process-wide Prometheus recorder (once,
    /// feature `prometheus`), builds the monitor and the alert rules, and, when called inside
    /// a Tokio runtime, starts the alert task (otherwise the first [`router`](Self::router)
    /// call inside a runtime starts it). The task stops when the last clone of the proxy (and
    /// of its router) is dropped.
    pub fn new(config: Config) -> Result<Self, BuildError> {
        config.validate()?;
        let upstream = Upstream::new(UpstreamConfig::from_config(&config))?;
        let stack = ChatStack::new(&config, upstream.clone());
        let observe = if config.enable_monitoring {
            #[cfg(feature = "prometheus")]
            let _ = prometheus_handle();
            let monitor = Arc::new(Monitor::new(
                MonitorConfig::default()
                    .max_points(config.max_metric_points)
                    .window(Duration::from_secs(config.metric_window)),
            ));
            let alerts = Arc::new(Alerts::with_defaults(&config.alert_rules)?);
            Some(Observe { monitor, alerts })
        } else {
            None
        };
        let health = HealthRegistry::new();
        let upstream_check = Arc::new(
            UpstreamCheck::new(upstream.clone())
                .cache_for(Duration::from_secs(config.health_probe_cache)),
        );
        health.register_with("upstream", upstream_check.clone(), true);
        if let Some(observe) = &observe {
            health.register_non_critical("alerts", AlertCheck::new(observe.alerts.clone()));
        }
        health.register_non_critical("cache", CacheCheck::new(stack.description_cache.clone()));
        let proxy = Proxy {
            state: Arc::new(ProxyState {
                config,
                upstream,
                chat: stack.service,
                description_cache: stack.description_cache,
                started: Instant::now(),
                started_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                shutting_down: Arc::new(AtomicBool::new(false)),
                observe,
                alert_task: Mutex::new(None),
                #[cfg(feature = "prometheus")]
                upkeep_task: Mutex::new(None),
                health,
                upstream_check,
            }),
        };
        proxy.start_alert_task();
        Ok(proxy)
    }

    /// Starts the alert task if monitoring is on, a Tokio runtime is running and it is not
    /// running yet.
    fn start_alert_task(&self) {
        let Some(observe) = &self.state.observe else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut task = self
            .state
            .alert_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if task.is_some() {
            return;
        }
        #[cfg(feature = "prometheus")]
        if let Some(handle) = prometheus_handle() {
            *self
                .state
                .upkeep_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some(AbortOnDrop(tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(PROMETHEUS_UPKEEP);
                    loop {
                        ticker.tick().await;
                        handle.run_upkeep();
                    }
                })));
        }
        let cache = self.state.description_cache.clone();
        let before_each = move || {
            crate::metrics::publish_cache_stats(&cache);
        };
        *task = Some(AlertTask::spawn(
            observe.alerts.clone(),
            observe.monitor.clone(),
            Duration::from_secs(self.state.config.alert_check_interval),
            Some(Box::new(before_each)),
        ));
    }

    /// The in-process monitor (`None` when `enable_monitoring` is off). Its
    /// [`increment_counter`](Monitor::increment_counter), [`set_gauge`](Monitor::set_gauge)
    /// and [`record_histogram`](Monitor::record_histogram) take users' own metrics.
    pub fn monitor(&self) -> Option<&Arc<Monitor>> {
        self.state.observe.as_ref().map(|o| &o.monitor)
    }

    /// The alert rules and their state (`None` when `enable_monitoring` is off); add rules
    /// with [`Alerts::add_rule`].
    pub fn alerts(&self) -> Option<&Arc<Alerts>> {
        self.state.observe.as_ref().map(|o| &o.alerts)
    }

    /// The health checks; register your own with
    /// [`HealthRegistry::register`](crate::health::HealthRegistry::register).
    pub fn health(&self) -> &HealthRegistry {
        &self.state.health
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

    /// The router, prepared once, as the service `axum::serve` asks for: each new connection
    /// gets a cheap handle to it. Serving [`router`](Self::router) directly also works, but
    /// `axum::serve` then prepares a copy of the router for every connection (about 10 KiB
    /// each: 10 MiB more with 1,000 open streams, measured by `benches/overhead.rs`).
    pub fn make_service(&self) -> IntoMakeService<Router> {
        self.router().with_state(()).into_make_service()
    }

    /// The full router with every route of the contract.
    ///
    /// Layers, outermost first: [`MetricsLayer`] (when `enable_monitoring`; it sees every
    /// request, health probes included), CORS, request tracing, panic catching,
    /// [`HealthLayer`] (when `enable_health_check`; it answers `/health*`), then the routes.
    pub fn router(&self) -> Router {
        self.start_alert_task();
        let chat = self.chat_service();
        let chat_for_messages = chat.clone();
        let completions = CompletionsService::new(chat.clone());
        let config = &self.state.config;
        let api = Router::new()
            // `route`, not `route_service`: a method router mounted as a service is cloned
            // whole on every request, one mounted as a route only clones the matched endpoint.
            .route("/v1/chat/completions", post_only(chat.clone()))
            .route("/chat/completions", post_only(chat))
            .route("/v1/completions", post_only(completions.clone()))
            .route("/completions", post_only(completions))
            .route("/v1/models", get(models))
            .route("/models", get(models));
        let api = anthropic_routes(api, chat_for_messages, config)
            // One `route_layer` call for both: axum boxes (and clones, per request) every
            // route once per call.
            .route_layer(
                ServiceBuilder::new()
                    .layer(anthropic_errors())
                    .layer(ClientAuthLayer::new(config.client_api_keys.clone()))
                    .layer(RateLimitLayer::new(
                        config.rate_limit,
                        config.client_rate_limit,
                    )),
            );
        let router = Router::new()
            .route("/", get(root))
            .route("/status", get(status))
            .route("/metrics", get(metrics))
            .route("/cache/stats", get(cache_stats))
            .route("/cache", axum::routing::delete(cache_clear))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .merge(api)
            .with_state(self.clone());
        let health = config.enable_health_check.then(|| {
            HealthLayer::with_config(self.state.health.clone(), HealthConfig::default())
                .shutdown_flag(self.state.shutting_down.clone())
        });
        // As few `layer` calls as the optional layers allow: axum boxes every route once per
        // call, and clones (and later drops) each box on every request.
        let common = ServiceBuilder::new()
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(CatchPanicLayer::custom(panic_response))
            .option_layer(health)
            .layer(Extension(BodyReadTimeout(config.request_body_timeout())))
            .layer(Extension(BodyLimit(config.request_body_limit)));
        let metrics = self.state.observe.as_ref().map(|observe| {
            let routes = ROUTES
                .iter()
                .map(|(_, path)| *path)
                .chain(ALIASES.iter().copied());
            let mut metrics_config =
                MetricsConfig::default().monitor_routes(MONITORED_ROUTES.iter().copied());
            for route in routes {
                metrics_config = metrics_config.route(route);
            }
            MetricsLayer::new(metrics_config).with_monitor(observe.monitor.clone())
        });
        // Outermost first: metrics, CORS, then the common layers.
        match (config.enable_cors, metrics) {
            (false, Some(metrics)) => {
                router.layer(ServiceBuilder::new().layer(metrics).layer(common))
            }
            (false, None) => router.layer(common),
            (true, metrics) => {
                let router = router.layer(common).layer(cors_layer(&config.cors_origins));
                match metrics {
                    Some(metrics) => router.layer(metrics),
                    None => router,
                }
            }
        }
    }
}

/// The Anthropic Messages routes (`/v1/messages`, `/messages` and their `count_tokens`) in
/// front of `chat`: the model names `claude-*` go to the text model, and TokenHub keeps
/// reasoning in history and takes the thinking switch.
fn anthropic_routes(router: Router<Proxy>, chat: ChatService, config: &Config) -> Router<Proxy> {
    let messages = match config.upstream {
        crate::config::Preset::Tokenhub => MessagesConfig::tokenhub(),
        crate::config::Preset::Hunyuan => MessagesConfig::default(),
    }
    .with_body_limit(config.request_body_limit)
    .with_alias("claude-*", config.text_model())
    .and_then(MessagesLayer::new)
    .expect("a validated config gives a valid messages config");
    let count = messages.count_tokens();
    let messages = tower_layer::Layer::layer(&messages, chat);
    router
        .route("/v1/messages", post_only(messages.clone()))
        .route("/messages", post_only(messages))
        .route("/v1/messages/count_tokens", post_only(count.clone()))
        .route("/messages/count_tokens", post_only(count))
}

/// Errors made before the Messages ingress runs (auth, rate limits) in Anthropic's shape.
fn anthropic_errors() -> DialectErrorsLayer {
    let dialect: Arc<dyn ErrorDialect> = Arc::new(AnthropicErrors);
    [
        "/v1/messages",
        "/messages",
        "/v1/messages/count_tokens",
        "/messages/count_tokens",
    ]
    .into_iter()
    .fold(DialectErrorsLayer::new(), |layer, path| {
        layer.path(path, dialect.clone())
    })
}

/// A method router that sends POST to `service` and answers other methods with the envelope.
fn post_only<St, S>(service: S) -> axum::routing::MethodRouter<St>
where
    St: Clone + Send + Sync + 'static,
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

async fn status(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    let uptime = proxy.state.started.elapsed();
    let monitoring = proxy.state.observe.as_ref().map(|observe| {
        let snapshot = observe.monitor.snapshot();
        let lifetime_rate = snapshot.totals.requests as f64 / uptime.as_secs_f64().max(1.0);
        json!({
            "requests": {
                "total": snapshot.totals.requests,
                "successes": snapshot.totals.successes,
                "client_errors": snapshot.totals.client_errors,
                "server_errors": snapshot.totals.server_errors,
                "aborted": snapshot.totals.aborted,
                "per_second_lifetime": lifetime_rate,
                "per_second_window": snapshot.requests_per_second,
                "window_samples": snapshot.window_samples,
                "window_seconds": snapshot.window_seconds,
                "success_rate": snapshot.success_rate,
                "error_rate": snapshot.error_rate,
                "errors_by_kind": snapshot.errors_by_kind,
            },
            "latency_seconds": {
                "text": snapshot.text_latency,
                "image": snapshot.image_latency,
            },
            "window_cache": {
                "lookups": snapshot.cache_lookups,
                "hit_rate": snapshot.cache_hit_rate,
                "hits_total": snapshot.totals.cache_hits,
                "misses_total": snapshot.totals.cache_misses,
            },
            "model_calls": snapshot.model_calls,
            "fix_rules": snapshot.fix_rules,
            "alerts": observe.alerts.active(),
        })
    });
    let monitoring_on = monitoring.is_some();
    let monitoring = monitoring.unwrap_or_else(|| json!({}));
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": uptime.as_secs(),
        "shutting_down": proxy.is_shutting_down(),
        "config": proxy.config(),
        "monitoring": monitoring_on,
        "requests": monitoring.get("requests"),
        "latency_seconds": monitoring.get("latency_seconds"),
        "cache": proxy.description_cache().stats(),
        "window_cache": monitoring.get("window_cache"),
        "model_calls": monitoring.get("model_calls"),
        "fix_rules": monitoring.get("fix_rules"),
        "alerts": monitoring.get("alerts").cloned().unwrap_or_else(|| json!([])),
        "upstream": {
            "api_base": proxy.config().api_base(),
            "in_flight": proxy.upstream().in_flight(),
            "waiting": proxy.upstream().waiting(),
            "concurrency": proxy.config().upstream_concurrency,
            "last_probe": proxy.state.upstream_check.last_result().map(|(result, at)| json!({
                "status": result.status,
                "message": result.message,
                "checked_at": crate::health::rfc3339(at),
            })),
        },
    }))
}

/// How often the Prometheus recorder's buffers are drained between scrapes.
#[cfg(feature = "prometheus")]
const PROMETHEUS_UPKEEP: Duration = Duration::from_secs(5);

/// A background task that stops when this handle is dropped.
#[cfg(feature = "prometheus")]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

#[cfg(feature = "prometheus")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The process-wide Prometheus recorder's handle, installed on first use. `None` when another
/// recorder was installed first (the layers then record into that one).
#[cfg(feature = "prometheus")]
pub fn prometheus_handle() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const SECONDS: &[f64] = &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                300.0,
            ];
            const OVERHEAD: &[f64] = &[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metrics::names::OVERHEAD.to_owned()),
                        OVERHEAD,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match handle {
                Ok(handle) => {
                    crate::metrics::names::describe();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot install the Prometheus recorder; GET /metrics is off");
                    None
                }
            }
        })
        .as_ref()
}

async fn metrics(State(proxy): State<Proxy>) -> Result<Response, ProxyError> {
    if proxy.state.observe.is_none() {
        return Err(ProxyError::NotFound {
            message: "metrics are off: set enable_monitoring = true".into(),
        });
    }
    #[cfg(feature = "prometheus")]
    {
        crate::metrics::publish_cache_stats(proxy.description_cache());
        if let Some(handle) = prometheus_handle() {
            return Ok((
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )],
                handle.render(),
            )
                .into_response());
        }
    }
    Err(ProxyError::NotImplemented {
        message: "this build has no Prometheus exporter (feature `prometheus`)".into(),
    })
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
