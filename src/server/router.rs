//! The full router: every route of the contract, the app-wide layers, and the fallbacks that
//! answer unknown routes and methods with the envelope.

use super::routes::{ALIASES, MESSAGES_ROUTES, MONITORED_ROUTES, ROUTES};
use super::{admin, prometheus, status, Proxy};
use crate::anthropic::AnthropicErrors;
use crate::chat::parse::BodyReadTimeout;
use crate::chat::BodyLimit;
use crate::completions::CompletionsService;
use crate::error::ProxyError;
use crate::health::{HealthConfig, HealthLayer};
use crate::ingress::{DialectErrorsLayer, ErrorDialect};
use crate::metrics::{MetricsConfig, MetricsLayer};
use crate::responses::Unsupported;
use crate::shared::RedisGuardLayer;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, get_service, IntoMakeService};
use axum::{Extension, Router};
use http::{header, HeaderValue, Method};
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

impl Proxy {
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
        let completions = CompletionsService::new(chat.clone());
        let config = &self.state.config;
        let api = Router::new()
            // `route`, not `route_service`: a method router mounted as a service is cloned
            // whole on every request, one mounted as a route only clones the matched endpoint.
            .route("/v1/chat/completions", post_only(chat.clone()))
            .route("/chat/completions", post_only(chat))
            .route("/v1/completions", post_only(completions.clone()))
            .route("/completions", post_only(completions))
            .route("/v1/models", get(status::models))
            .route("/models", get(status::models));
        let api = self
            .responses_routes(self.messages_routes(api))
            // One `route_layer` call for all: axum boxes (and clones, per request) every
            // route once per call.
            .route_layer(
                ServiceBuilder::new()
                    .layer(messages_errors())
                    .layer(self.state.auth.clone())
                    .layer(self.state.usage.clone())
                    .layer(RedisGuardLayer::new(self.state.redis.clone()))
                    .layer(self.state.rate_limit.clone()),
            );
        let router = Router::new()
            .route("/", get(status::root))
            .route("/status", get(status::status))
            .route("/metrics", get(prometheus::metrics))
            .route("/cache/stats", get(admin::cache_stats))
            .route("/cache", axum::routing::delete(admin::cache_clear))
            .route("/admin/requests", get(admin::requests))
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

impl Proxy {
    /// The Anthropic Messages routes (`/v1/messages`, `/messages` and their `count_tokens`)
    /// in front of the chat stack.
    fn messages_routes(&self, router: Router<Proxy>) -> Router<Proxy> {
        let messages = &self.state.messages;
        let count = messages.count_tokens();
        let service = tower_layer::Layer::layer(messages, self.chat_service());
        router
            .route("/v1/messages", post_only(service.clone()))
            .route("/messages", post_only(service))
            .route("/v1/messages/count_tokens", post_only(count.clone()))
            .route("/messages/count_tokens", post_only(count))
    }
}

impl Proxy {
    /// The Responses routes (`/v1/responses`, `/responses`, a stored response by id) in front
    /// of the chat stack, and the routes not served, which answer what is unsupported.
    fn responses_routes(&self, mut router: Router<Proxy>) -> Router<Proxy> {
        let responses = &self.state.responses;
        let service = tower_layer::Layer::layer(responses, self.chat_service());
        let stored = responses.stored();
        for prefix in ["/v1", ""] {
            router = router
                .route(&format!("{prefix}/responses"), post_only(service.clone()))
                .route(
                    &format!("{prefix}/responses/{{id}}"),
                    get_service(stored.clone())
                        .delete_service(stored.clone())
                        .fallback(method_not_allowed),
                )
                .route(
                    &format!("{prefix}/responses/compact"),
                    post_only(Unsupported::COMPACT),
                )
                .route(
                    &format!("{prefix}/responses/{{id}}/cancel"),
                    post_only(Unsupported::CANCEL),
                )
                .route(
                    &format!("{prefix}/responses/{{id}}/input_items"),
                    get_service(Unsupported::INPUT_ITEMS).fallback(method_not_allowed),
                );
        }
        router
    }
}

/// Errors made before the Messages ingress runs (auth, rate limits, wrong methods) in
/// Anthropic's shape.
fn messages_errors() -> DialectErrorsLayer {
    let dialect: Arc<dyn ErrorDialect> = Arc::new(AnthropicErrors);
    MESSAGES_ROUTES
        .iter()
        .fold(DialectErrorsLayer::new(), |layer, path| {
            layer.path(*path, dialect.clone())
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

pub(crate) async fn not_found() -> ProxyError {
    ProxyError::NotFound {
        message: "no such route; see GET / for the routes".into(),
    }
}

pub(crate) async fn method_not_allowed() -> ProxyError {
    ProxyError::MethodNotAllowed
}
