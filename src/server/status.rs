//! The informational routes: `GET /` (name, version, routes), `GET /v1/models` and
//! `GET /status` (uptime, requests, latency, cache, alerts, upstream; `usage`, `budgets` and
//! `config.client_keys` only for an admin: the bearer admin token or the dashboard's session).

use super::routes::ROUTES;
use super::Proxy;
use axum::extract::State;
use axum::Json;
use serde_json::json;

pub(crate) async fn root(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    let routes: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.listed)
        .map(|r| json!({"method": r.method.as_str(), "path": r.path, "aliases": r.aliases}))
        .collect();
    Json(json!({
        "name": "hunyuan-proxy",
        "version": env!("CARGO_PKG_VERSION"),
        "upstream": proxy.config().api_base(),
        "routes": routes,
    }))
}

/// `GET /v1/models`: see [`super::models`] (Anthropic's shape when the request carries
/// `anthropic-version`).
pub(crate) async fn models(
    State(proxy): State<Proxy>,
    headers: http::HeaderMap,
) -> Json<serde_json::Value> {
    let anthropic = headers.contains_key("anthropic-version");
    Json(super::models::models_body(&proxy, anthropic))
}

/// `GET /status`. Anyone may read it, but the usage report (tokens and cost per key name and
/// model), the budgets and the named keys' config are shown only to an admin, checked as the
/// admin reads are ([`check_admin`](super::admin::check_admin)); a failed check is not an
/// error here, the answer just leaves them out (and skips the ledger's reads, Redis ones
/// included).
pub(crate) async fn status(
    State(proxy): State<Proxy>,
    headers: http::HeaderMap,
) -> Json<serde_json::Value> {
    let admin = super::admin::check_admin(&proxy, &headers).is_ok();
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
            "dropped": snapshot.dropped,
            "alerts": observe.alerts.active(),
        })
    });
    let monitoring_on = monitoring.is_some();
    let monitoring = monitoring.unwrap_or_else(|| json!({}));
    let mut body = json!({
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
        "dropped": monitoring.get("dropped"),
        "alerts": monitoring.get("alerts").cloned().unwrap_or_else(|| json!([])),
        "upstream": {
            "api_base": proxy.config().api_base(),
            "in_flight": proxy.upstream().in_flight(),
            "waiting": proxy.upstream().waiting(),
            "concurrency": proxy.config().upstream_concurrency,
            "keys": proxy.upstream().key_states(),
            "last_probe": proxy.state.upstream_check.last_result().map(|(result, at)| json!({
                "status": result.status,
                "message": result.message,
                "checked_at": crate::health::rfc3339(at),
            })),
        },
    });
    if admin {
        let ledger = proxy.usage().ledger();
        body["usage"] = serde_json::to_value(ledger.report().await).unwrap_or_default();
        body["budgets"] = serde_json::to_value(ledger.budgets().await).unwrap_or_default();
    } else if let Some(config) = body["config"].as_object_mut() {
        // The named keys (names, budgets, rates, key hashes) are the admin's to read, too.
        config.remove("client_keys");
    }
    Json(body)
}
