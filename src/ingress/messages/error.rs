//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.

use crate::chat::SseEvent;
use crate::error::{ErrorKind, ProxyError};
use crate::ingress::{DialectShaped, ErrorDialect, InnerError};
use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The error body for `error`.
pub fn error_body(kind: &str, message: &str) -> serde_json::Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// An `event: error` for a stream that fails after it started.
pub fn error_event(kind: &str, message: &str) -> Bytes {
    sse_event("error", &error_body(kind, message))
}

/// One named Anthropic event: `event: <name>` and its JSON data.
pub(crate) fn sse_event(name: &str, data: &serde_json::Value) -> Bytes {
    let json = serde_json::to_string(data).expect("JSON values serialize");
    let mut out = String::with_capacity(json.len() + name.len() + 16);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    out.push_str(std::str::from_utf8(&SseEvent::encode(&json)).expect("UTF-8 in, UTF-8 out"));
    Bytes::from(out)
}

/// Anthropic's error dialect, for [`DialectErrorsLayer`](crate::ingress::DialectErrorsLayer)
/// and the ingress itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicErrors;

impl ErrorDialect for AnthropicErrors {
    fn render(&self, error: &InnerError) -> Response<Body> {
        render(error)
    }
}

/// The Anthropic error answer for `error`.
pub fn render(error: &InnerError) -> Response<Body> {
    // Statuses stay as they are: a gateway timeout is already a 504 (`api_error`).
    let status = error.status;
    let body = error_body(error_type(status), &error.message);
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(after) = &error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, after.clone());
    }
    response.extensions_mut().insert(DialectShaped);
    if let Some(kind) = error.kind {
        response.extensions_mut().insert(ErrorKind(kind));
    }
    response
}

/// The Anthropic error answer for an error the proxy raises.
pub fn render_proxy_error(err: &ProxyError) -> Response<Body> {
    render(&InnerError::from_proxy_error(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_map_to_anthropic_types() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (415, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "api_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(
                error_type(StatusCode::from_u16(status).unwrap()),
                kind,
                "{status}"
            );
        }
    }

    #[tokio::test]
    async fn a_rate_limit_keeps_retry_after_and_its_kind() {
        let response = render_proxy_error(&ProxyError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        });
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.extensions().get::<ErrorKind>(),
            Some(&ErrorKind("rate_limit_exceeded"))
        );
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }

    #[test]
    fn a_timeout_is_a_504_api_error() {
        let response = render_proxy_error(&ProxyError::GatewayTimeout(Duration::from_secs(5)));
        assert_eq!(response.status(), 504);
        assert_eq!(error_type(response.status()), "api_error");
    }

    #[test]
    fn error_events_are_named() {
        let event = error_event("overloaded_error", "busy");
        assert_eq!(
            &event[..],
            &b"event: error\ndata: {\"error\":{\"message\":\"busy\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n"[..]
        );
    }
}
