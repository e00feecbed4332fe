//! The route list: what `GET /` shows, what metrics label, and which routes the monitor's
//! window counts.

/// Every route the proxy serves, as listed by `GET /`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{id}"),
    ("DELETE", "/v1/responses/{id}"),
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/status"),
    ("GET", "/metrics"),
    ("GET", "/cache/stats"),
    ("DELETE", "/cache"),
    ("GET", "/admin/requests"),
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
    "/v1/responses",
    "/responses",
];

/// The Anthropic Messages routes, whose errors are in Anthropic's shape.
pub(crate) const MESSAGES_ROUTES: &[&str] = &[
    "/v1/messages",
    "/messages",
    "/v1/messages/count_tokens",
    "/messages/count_tokens",
    "/responses",
];

/// Route aliases served besides [`ROUTES`], named in metric labels too.
pub(crate) const ALIASES: &[&str] = &[
    "/chat/completions",
    "/completions",
    "/models",
    "/messages",
    "/messages/count_tokens",
    "/responses",
];
