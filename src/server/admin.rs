//! The admin routes (`GET /cache/stats`, `DELETE /cache`, `GET /admin/requests`), behind
//! `Authorization: Bearer <admin_token>`; off (404) when no token is configured. Reads also
//! take the dashboard's session (see [`dashboard`](super::dashboard)).

use super::dashboard::{has_bearer, has_session, DASHBOARD_HEADER};
use super::Proxy;
use crate::error::ProxyError;
use crate::secret::Secret;
use crate::usage::LogFilter;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde_json::json;

/// The admin token, or 404 when none is configured (the admin routes are off).
fn admin_token(proxy: &Proxy) -> Result<&Secret, ProxyError> {
    proxy
        .config()
        .admin_token
        .as_ref()
        .ok_or_else(|| ProxyError::NotFound {
            message: "admin routes are off: set admin_token to turn them on".into(),
        })
}

/// Checks `Authorization: Bearer <admin_token>` only: for the routes that change state.
fn check_admin_token(proxy: &Proxy, headers: &HeaderMap) -> Result<(), ProxyError> {
    match has_bearer(admin_token(proxy)?, headers) {
        Some(true) => Ok(()),
        Some(false) => Err(ProxyError::Unauthorized {
            message: "invalid admin token".into(),
        }),
        None => Err(ProxyError::Unauthorized {
            message: "admin routes need `Authorization: Bearer <admin_token>`".into(),
        }),
    }
}

/// Checks access to an admin **read**: the bearer token, or the dashboard's session cookie
/// sent with the `x-hunyuan-proxy-dashboard` header (which another site's page cannot add).
/// 404 when no token is configured, 401 otherwise.
pub(crate) fn check_admin(proxy: &Proxy, headers: &HeaderMap) -> Result<(), ProxyError> {
    let token = admin_token(proxy)?;
    if has_bearer(token, headers).is_none()
        && headers.contains_key(DASHBOARD_HEADER)
        && has_session(token, headers)
    {
        return Ok(());
    }
    check_admin_token(proxy, headers)
}

pub(crate) async fn cache_stats(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    check_admin(&proxy, &headers)?;
    Ok(Json(proxy.description_cache().stats()).into_response())
}

pub(crate) async fn cache_clear(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    check_admin_token(&proxy, &headers)?;
    let cleared = proxy.description_cache().clear();
    tracing::info!(cleared, "description cache emptied");
    Ok(Json(json!({"cleared": cleared})).into_response())
}

/// `GET /admin/requests?limit=&key=&model=&status=`: the request log, newest first.
pub(crate) async fn requests(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ProxyError> {
    check_admin(&proxy, &headers)?;
    let limit = match query.get("limit") {
        Some(limit) => Some(
            limit
                .parse::<usize>()
                .map_err(|_| ProxyError::InvalidRequest {
                    message: "`limit` must be a whole number".into(),
                    param: Some("limit".into()),
                })?,
        ),
        None => None,
    };
    let filter = LogFilter {
        limit,
        key: query.get("key").cloned(),
        model: query.get("model").cloned(),
        status: query.get("status").cloned(),
    };
    let requests = proxy.usage().log().recent(&filter);
    Ok(Json(json!({"requests": requests})).into_response())
}
