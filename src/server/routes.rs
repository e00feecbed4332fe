//! The route table: every route the proxy serves, declared once. The router, `GET /`, the
//! metric route labels, the monitor's window and the per-dialect error shaping are all derived
//! from [`ROUTES`]; `tests/it/routes.rs` walks it.

use http::Method;

/// The client API a route speaks, which decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// OpenAI Chat Completions.
    Chat,
    /// OpenAI's legacy Completions.
    Completions,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Responses.
    Responses,
    /// The proxy's own routes (models, status, health, metrics, admin).
    Proxy,
}

/// The shape of a route's error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorShape {
    /// OpenAI's `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Anthropic's `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

impl Dialect {
    /// How this dialect's errors are written.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Dialect::Messages => ErrorShape::Anthropic,
            Dialect::Chat | Dialect::Completions | Dialect::Responses | Dialect::Proxy => {
                ErrorShape::OpenAi
            }
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Anyone (probes, status, the route list).
    Open,
    /// Clients: the client key check (when `client_api_keys` is set), the Redis guard and the
    /// rate limit run first.
    Client,
    /// `Authorization: Bearer <admin_token>`; off (404) without an admin token.
    Admin,
}

/// What answers a route (crate-private: the router maps each to its service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completions,
    Models,
    Messages,
    CountTokens,
    Responses,
    StoredResponse,
    /// A Responses route the proxy does not serve (answered 400 `unsupported_endpoint`).
    ResponsesCompact,
    ResponsesCancel,
    ResponsesInputItems,
    Root,
    /// Answered by the health layer, not the router.
    Health,
    Status,
    Metrics,
    CacheStats,
    CacheClear,
    /// The dashboard page (its sign-in form without a session; its form posts are the
    /// page's own, in `dashboard::form_routes`).
    Dashboard,
    Timeseries,
    RequestLog,
}

/// One route: a method on a path (and its aliases), the dialect it speaks, who may call it,
/// and whether its requests count in the monitor's window.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The documented path; `{id}` marks a path parameter.
    pub path: &'static str,
    /// Other paths served the same way (the OpenAI SDKs' `base_url` without `/v1`).
    pub aliases: &'static [&'static str],
    /// The client API the route speaks.
    pub dialect: Dialect,
    /// Who may call it.
    pub access: Access,
    /// Whether its requests go into the monitor's window (rates, percentiles, alerts): the
    /// model routes, not probes or scrapes.
    pub monitored: bool,
    /// Whether `GET /` lists it (the routes that only answer "unsupported" are not listed).
    pub listed: bool,
    pub(crate) endpoint: Endpoint,
}

impl Route {
    /// The documented path followed by its aliases.
    pub fn paths(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.path).chain(self.aliases.iter().copied())
    }
}

const fn route(
    method: Method,
    path: &'static str,
    aliases: &'static [&'static str],
    dialect: Dialect,
    access: Access,
    endpoint: Endpoint,
) -> Route {
    let monitored = matches!(
        endpoint,
        Endpoint::Chat | Endpoint::Completions | Endpoint::Messages | Endpoint::Responses
    );
    let listed = !matches!(
        endpoint,
        Endpoint::ResponsesCompact | Endpoint::ResponsesCancel | Endpoint::ResponsesInputItems
    );
    Route {
        method,
        path,
        aliases,
        dialect,
        access,
        monitored,
        listed,
        endpoint,
    }
}

use Access::{Admin, Client, Open};
use Dialect::{Chat, Completions, Messages, Proxy, Responses};

/// Every route the proxy serves.
pub const ROUTES: &[Route] = &[
    route(
        Method::POST,
        "/v1/chat/completions",
        &["/chat/completions"],
        Chat,
        Client,
        Endpoint::Chat,
    ),
    route(
        Method::POST,
        "/v1/completions",
        &["/completions"],
        Completions,
        Client,
        Endpoint::Completions,
    ),
    route(
        Method::GET,
        "/v1/models",
        &["/models"],
        Proxy,
        Client,
        Endpoint::Models,
    ),
    route(
        Method::POST,
        "/v1/messages",
        &["/messages"],
        Messages,
        Client,
        Endpoint::Messages,
    ),
    route(
        Method::POST,
        "/v1/messages/count_tokens",
        &["/messages/count_tokens"],
        Messages,
        Client,
        Endpoint::CountTokens,
    ),
    route(
        Method::POST,
        "/v1/responses",
        &["/responses"],
        Responses,
        Client,
        Endpoint::Responses,
    ),
    route(
        Method::GET,
        "/v1/responses/{id}",
        &["/responses/{id}"],
        Responses,
        Client,
        Endpoint::StoredResponse,
    ),
    route(
        Method::DELETE,
        "/v1/responses/{id}",
        &["/responses/{id}"],
        Responses,
        Client,
        Endpoint::StoredResponse,
    ),
    route(
        Method::POST,
        "/v1/responses/compact",
        &["/responses/compact"],
        Responses,
        Client,
        Endpoint::ResponsesCompact,
    ),
    route(
        Method::POST,
        "/v1/responses/{id}/cancel",
        &["/responses/{id}/cancel"],
        Responses,
        Client,
        Endpoint::ResponsesCancel,
    ),
    route(
        Method::GET,
        "/v1/responses/{id}/input_items",
        &["/responses/{id}/input_items"],
        Responses,
        Client,
        Endpoint::ResponsesInputItems,
    ),
    route(Method::GET, "/", &[], Proxy, Open, Endpoint::Root),
    route(Method::GET, "/health", &[], Proxy, Open, Endpoint::Health),
    route(
        Method::GET,
        "/health/live",
        &[],
        Proxy,
        Open,
        Endpoint::Health,
    ),
    route(
        Method::GET,
        "/health/ready",
        &[],
        Proxy,
        Open,
        Endpoint::Health,
    ),
    route(Method::GET, "/status", &[], Proxy, Open, Endpoint::Status),
    route(Method::GET, "/metrics", &[], Proxy, Open, Endpoint::Metrics),
    route(
        Method::GET,
        "/cache/stats",
        &[],
        Proxy,
        Admin,
        Endpoint::CacheStats,
    ),
    route(
        Method::DELETE,
        "/cache",
        &[],
        Proxy,
        Admin,
        Endpoint::CacheClear,
    ),
    // The page checks the admin token (or its session cookie) itself and shows its sign-in
    // form without one, so the route is open; its data routes are admin routes.
    route(
        Method::GET,
        "/dashboard",
        &[],
        Proxy,
        Open,
        Endpoint::Dashboard,
    ),
    route(
        Method::GET,
        "/admin/timeseries",
        &[],
        Proxy,
        Admin,
        Endpoint::Timeseries,
    ),
    route(
        Method::GET,
        "/admin/requests",
        &[],
        Proxy,
        Admin,
        Endpoint::RequestLog,
    ),
];

/// Every path of [`ROUTES`] (aliases included) whose requests count in the monitor's window.
pub fn monitored_paths() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().filter(|r| r.monitored).flat_map(Route::paths)
}

/// Every path of [`ROUTES`] (aliases included) of `dialect`, each once.
pub(crate) fn dialect_paths(dialect: Dialect) -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = ROUTES
        .iter()
        .filter(|r| r.dialect == dialect)
        .flat_map(Route::paths)
        .collect();
    dedup_keep_order(&mut paths);
    paths
}

/// Every distinct path of [`ROUTES`] (aliases included), the metric `route` labels.
pub(crate) fn label_paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = ROUTES.iter().flat_map(Route::paths).collect();
    dedup_keep_order(&mut paths);
    paths
}

fn dedup_keep_order(paths: &mut Vec<&'static str>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(*p));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_per_method() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            for path in route.paths() {
                assert!(seen.insert((route.method.clone(), path)), "{path} twice");
            }
        }
    }

    #[test]
    fn the_model_routes_are_monitored_and_the_responses_alias_is_openai() {
        let monitored: Vec<_> = monitored_paths().collect();
        for path in [
            "/v1/chat/completions",
            "/completions",
            "/messages",
            "/responses",
        ] {
            assert!(monitored.contains(&path), "{path}");
        }
        assert!(!monitored.contains(&"/health"));
        assert!(!dialect_paths(Dialect::Messages).contains(&"/responses"));
        assert!(dialect_paths(Dialect::Responses).contains(&"/responses"));
    }
}
