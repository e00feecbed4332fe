//! The full router: every route of the contract, the app-wide layers, and the fallbacks that
//! answer unknown routes and methods with the envelope.

use super::routes::{
    dialect_paths, label_paths, monitored_paths, Access, Dialect, Endpoint, Route, ROUTES,
};
use super::{admin, dashboard, prometheus, status, Proxy};
use crate::chat::parse::BodyReadTimeout;
use crate::chat::BodyLimit;
use crate::error::ProxyError;
use crate::health::{HealthConfig, HealthLayer};
use crate::ingress::completions::CompletionsService;
use crate::ingress::messages::{AnthropicErrors, CountTokens, Messages};
use crate::ingress::responses::{Responses, StoredResponses, Unsupported};
use crate::ingress::{DialectErrorsLayer, ErrorDialect};
use crate::metrics::{MetricsConfig, MetricsLayer};
use crate::replica::RedisGuardLayer;
use crate::stack::ChatService;
use axum::response::{IntoResponse, Response};
use axum::routing::{IntoMakeService, MethodFilter, MethodRouter};
use axum::{Extension, Router};
use http::{header, HeaderValue, Method};
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tower_layer::Layer;

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
        let config = &self.state.config;
        let endpoints = Endpoints::new(self);
        let (mut api, mut open) = (Router::new(), Router::new());
        for path in label_paths() {
            let rows: Vec<&Route> = ROUTES
                .iter()
                .filter(|r| r.paths().any(|p| p == path))
                .collect();
            // `route`, not `route_service`: a method router mounted as a service is cloned
            // whole on every request, one mounted as a route only clones the matched endpoint.
            let Some(methods) = rows.iter().try_fold(MethodRouter::new(), |methods, row| {
                endpoints.add(methods, row)
            }) else {
                continue;
            };
            let methods = methods.fallback(method_not_allowed);
            match rows[0].access {
                Access::Client => api = api.route(path, methods),
                Access::Open | Access::Admin => open = open.route(path, methods),
            }
        }
        // One `route_layer` call for all: axum boxes (and clones, per request) every route
        // once per call.
        let api = api.route_layer(
            ServiceBuilder::new()
                .layer(dialect_errors())
                .layer(self.state.auth.clone())
                .layer(crate::telemetry::RecordClientName)
                .layer(self.state.usage.clone())
                .layer(RedisGuardLayer::new(self.state.redis.clone()))
                .layer(self.state.rate_limit.clone()),
        );
        let router = open
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .merge(api)
            .merge(dashboard::form_routes())
            .with_state(self.clone());
        let health = config.enable_health_check.then(|| {
            HealthLayer::with_config(self.state.health.clone(), HealthConfig::default())
                .shutdown_flag(self.state.shutting_down.clone())
        });
        // As few `layer` calls as the optional layers allow: axum boxes every route once per
        // call, and clones (and later drops) each box on every request.
        let common = ServiceBuilder::new()
            .layer(
                // The request span: OpenTelemetry's server span too (crate::telemetry).
                TraceLayer::new_for_http()
                    .make_span_with(crate::telemetry::ServerSpan)
                    .on_response(crate::telemetry::ServerResponse),
            )
            .layer(CatchPanicLayer::custom(panic_response))
            .option_layer(health)
            .layer(Extension(BodyReadTimeout(config.request_body_timeout())))
            .layer(Extension(BodyLimit(config.request_body_limit)));
        let metrics = self.state.observe.as_ref().map(|observe| {
            let metrics_config = label_paths().into_iter().fold(
                MetricsConfig::default().monitor_routes(monitored_paths()),
                MetricsConfig::route,
            );
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

/// The services behind the routes, built once per router.
struct Endpoints {
    chat: ChatService,
    completions: CompletionsService<ChatService>,
    messages: Messages<ChatService>,
    count_tokens: CountTokens,
    responses: Responses<ChatService>,
    stored: StoredResponses,
}

impl Endpoints {
    fn new(proxy: &Proxy) -> Self {
        let chat = proxy.chat_service();
        Endpoints {
            completions: CompletionsService::new(chat.clone()),
            messages: Layer::layer(&proxy.state.messages, chat.clone()),
            count_tokens: proxy.state.messages.count_tokens(),
            responses: Layer::layer(&proxy.state.responses, chat.clone()),
            stored: proxy.state.responses.stored(),
            chat,
        }
    }

    /// `methods` with `route`'s method answered by its endpoint; `None` for a route the
    /// router does not answer (the health layer answers `/health*`).
    fn add(&self, methods: MethodRouter<Proxy>, route: &Route) -> Option<MethodRouter<Proxy>> {
        let filter = MethodFilter::try_from(route.method.clone()).expect("a routable method");
        let methods = match route.endpoint {
            Endpoint::Chat => methods.on_service(filter, self.chat.clone()),
            Endpoint::Completions => methods.on_service(filter, self.completions.clone()),
            Endpoint::Models => methods.on(filter, status::models),
            Endpoint::Messages => methods.on_service(filter, self.messages.clone()),
            Endpoint::CountTokens => methods.on_service(filter, self.count_tokens.clone()),
            Endpoint::Responses => methods.on_service(filter, self.responses.clone()),
            Endpoint::StoredResponse => methods.on_service(filter, self.stored.clone()),
            Endpoint::ResponsesCompact => methods.on_service(filter, Unsupported::COMPACT),
            Endpoint::ResponsesCancel => methods.on_service(filter, Unsupported::CANCEL),
            Endpoint::ResponsesInputItems => methods.on_service(filter, Unsupported::INPUT_ITEMS),
            Endpoint::Root => methods.on(filter, status::root),
            Endpoint::Status => methods.on(filter, status::status),
            Endpoint::Metrics => methods.on(filter, prometheus::metrics),
            Endpoint::CacheStats => methods.on(filter, admin::cache_stats),
            Endpoint::CacheClear => methods.on(filter, admin::cache_clear),
            Endpoint::Dashboard => methods.on(filter, dashboard::page),
            Endpoint::Timeseries => methods.on(filter, dashboard::timeseries),
            Endpoint::RequestLog => methods.on(filter, admin::requests),
            Endpoint::Health => return None,
        };
        Some(methods)
    }
}

/// Errors made before a dialect's ingress runs (auth, rate limits, wrong methods) in the
/// route's dialect: Anthropic's shape on every path of a Messages route. (The other
/// dialects answer in OpenAI's envelope, which those layers already write.)
fn dialect_errors() -> DialectErrorsLayer {
    let anthropic: Arc<dyn ErrorDialect> = Arc::new(AnthropicErrors);
    dialect_paths(Dialect::Messages)
        .into_iter()
        .fold(DialectErrorsLayer::new(), |layer, path| {
            layer.path(path, anthropic.clone())
        })
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
