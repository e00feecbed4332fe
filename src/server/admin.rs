//! The admin routes (`GET /cache/stats`, `DELETE /cache`, `GET /admin/requests`), behind
//! `Authorization: Bearer <admin_token>`; off (404) when no token is configured.

use super::Proxy;
use crate::error::ProxyError;
use crate::usage::LogFilter;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderMap};
use serde_json::json;

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
    check_admin(&proxy, &headers)?;
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
    let requests: Vec<&crate::usage::RequestLogEntry> = requests.iter().map(|e| &**e).collect();
    Ok(Json(json!({"requests": requests})).into_response())
}
