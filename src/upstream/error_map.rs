//! What the client is told when the upstream fails: reqwest errors, upstream error statuses
//! and a refused slot mapped to [`ProxyError`]. Only Hunyuan's own 4xx envelope is passed on;
//! any other upstream text stays out of the answer.

use super::slots::SlotError;
use crate::error::ProxyError;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use std::time::Duration;

/// The most of an error body read to see whether it is Hunyuan's envelope.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A request that could not be sent or answered: 504 for a timeout (reported as
/// `read_timeout`), 502 otherwise.
pub(super) fn map_send_error(err: &reqwest::Error, read_timeout: Duration) -> ProxyError {
    if err.is_timeout() {
        tracing::warn!("upstream timed out");
        ProxyError::GatewayTimeout(read_timeout)
    } else if err.is_connect() {
        tracing::warn!("cannot connect to the upstream");
        ProxyError::BadGateway {
            message: "the proxy could not connect to the upstream".into(),
        }
    } else {
        tracing::warn!("upstream request failed");
        ProxyError::BadGateway {
            message: "the upstream request failed".into(),
        }
    }
}

/// An upstream error status for a request to `model`. The body (at most 64 KiB) is read for
/// TokenHub's envelope, whose `request_id`, `code`, `type` and `source` go into the log line
/// (never its message, never the key):
/// - 402 → [`ProxyError::ModelNotEnabled`] naming `model` (TokenHub: this model is not enabled
///   or paid for; other models on the key may work);
/// - 451 → [`ProxyError::ContentFiltered`] (TokenHub's safety refusal);
/// - anything else as [`status_error`] says.
pub(super) async fn map_error_status(
    response: reqwest::Response,
    read_timeout: Duration,
    model: &str,
) -> ProxyError {
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let body = read_limited(response, ERROR_BODY_LIMIT, read_timeout)
        .await
        .unwrap_or_default();
    let envelope = UpstreamEnvelope::read(&body);
    tracing::warn!(
        status = status.as_u16(),
        model,
        request_id = envelope.request_id.as_deref(),
        code = envelope.code.as_deref(),
        error_type = envelope.error_type.as_deref(),
        source = envelope.source.as_deref(),
        "upstream answered with an error"
    );
    match status.as_u16() {
        402 => ProxyError::ModelNotEnabled {
            model: model.to_owned(),
            reason: envelope.quota_reason(),
        },
        451 => ProxyError::ContentFiltered {
            model: model.to_owned(),
        },
        _ => status_error(status, retry_after, body),
    }
}

/// The fields of an upstream error envelope the proxy looks at: TokenHub's
/// `{"error":{"type","code","message","source","upstream_code","upstream_status","request_id"}}`
/// (`code` a string or a number), or any other `{"error":{…}}` with some of them.
#[derive(Debug, Default, PartialEq)]
struct UpstreamEnvelope {
    error_type: Option<String>,
    code: Option<String>,
    message: Option<String>,
    source: Option<String>,
    request_id: Option<String>,
}

impl UpstreamEnvelope {
    /// The envelope in `body`; every field `None` when there is none.
    fn read(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let error = &value["error"];
        let text = |name: &str| match &error[name] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        UpstreamEnvelope {
            error_type: text("type"),
            code: text("code"),
            message: text("message"),
            source: text("source"),
            request_id: text("request_id"),
        }
    }

    /// Whether this is TokenHub's envelope (it has `source` or `request_id`).
    fn is_tokenhub(&self) -> bool {
        self.source.is_some() || self.request_id.is_some()
    }

    /// TokenHub's reason for a 402, when its message names a known one (only these words are
    /// passed on to the client, never the upstream's whole text).
    fn quota_reason(&self) -> Option<&'static str> {
        let message = self.message.as_deref()?;
        [
            "FREE_QUOTA_EXHAUSTED",
            "NO_FREE_PACKAGE",
            "INSUFFICIENT_BALANCE",
        ]
        .into_iter()
        .find(|reason| message.contains(reason))
    }
}

/// The error for an upstream error `status` with its `Retry-After` and `body`:
/// - 5xx → 502; 401/403 → 502 naming `api_key` (the proxy's key, not the client's, was
///   refused); 404/405 → 502 naming `api_base`;
/// - Hunyuan's own envelope → passed on with its status and `Retry-After`; TokenHub's
///   envelope → OpenAI's (`message`, `type`, `param`, `code`) with the same message, type and
///   code, its status and `Retry-After`;
/// - any other 429 → 429 with the upstream's `Retry-After` in seconds;
/// - any other status → that status with the proxy's own envelope.
pub(super) fn status_error(
    status: StatusCode,
    retry_after: Option<HeaderValue>,
    body: Bytes,
) -> ProxyError {
    if status.is_server_error() {
        return ProxyError::BadGateway {
            message: format!("the upstream failed (status {})", status.as_u16()),
        };
    }
    if matches!(status.as_u16(), 401 | 403) {
        return ProxyError::BadGateway {
            message: format!(
                "the upstream refused the proxy's credentials (status {}); check api_key",
                status.as_u16()
            ),
        };
    }
    if matches!(status.as_u16(), 404 | 405) {
        return ProxyError::BadGateway {
            message: format!(
                "the upstream has no chat endpoint at the configured api_base (status {})",
                status.as_u16()
            ),
        };
    }
    let envelope = UpstreamEnvelope::read(&body);
    if envelope.is_tokenhub() {
        let openai = serde_json::json!({"error": {
            "message": envelope.message.unwrap_or_else(|| format!("the upstream rejected the request (status {})", status.as_u16())),
            "type": envelope.error_type.unwrap_or_else(|| "invalid_request_error".into()),
            "param": null,
            "code": envelope.code,
        }});
        return ProxyError::UpstreamRejected {
            status,
            body: Bytes::from(openai.to_string()),
            retry_after,
        };
    }
    if is_error_envelope(&body) {
        return ProxyError::UpstreamRejected {
            status,
            body,
            retry_after,
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ProxyError::RateLimited {
            message: "the upstream is rate limiting requests".into(),
            retry_after: retry_after
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs),
        };
    }
    ProxyError::UpstreamRejected {
        status,
        body: ProxyError::invalid_request(format!(
            "the upstream rejected the request (status {})",
            status.as_u16()
        ))
        .to_body(),
        retry_after,
    }
}

/// Whether `body` is an error envelope: JSON whose `error` is an object (the one test, used by
/// the forwarding loop and the cascade's describer stream).
pub(crate) fn is_error_envelope(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").map(serde_json::Value::is_object))
        .unwrap_or(false)
}

/// The body, if it is at most `limit` bytes and arrives whole within `timeout`.
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Option<Bytes> {
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            buf.extend_from_slice(&chunk);
            if buf.len() > limit {
                return None;
            }
        }
        Some(buf.freeze())
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

impl From<SlotError> for ProxyError {
    fn from(err: SlotError) -> Self {
        match err {
            SlotError::QueueFull => ProxyError::RateLimited {
                message: "too many requests are waiting for the upstream; retry shortly".into(),
                retry_after: Some(Duration::from_secs(1)),
            },
            SlotError::QueueTimeout => ProxyError::RateLimited {
                message: "waited too long for a free upstream slot; retry shortly".into(),
                retry_after: Some(Duration::from_secs(1)),
            },
            SlotError::Closed => ProxyError::Unavailable {
                message: "the proxy is shutting down".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const HUNYUAN_400: &str =
        r#"{"error":{"message":"model 参数错误","type":"invalid_request_error","code":"1001"}}"#;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn message(err: &ProxyError) -> String {
        let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        body["error"]["message"].as_str().unwrap().to_owned()
    }

    #[test]
    fn refused_credentials_are_the_proxys_502_naming_api_key() {
        for code in [401, 403] {
            let err = status_error(status(code), None, Bytes::from(HUNYUAN_400));
            assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
            assert!(message(&err).contains("api_key"), "{}", message(&err));
        }
    }

    #[test]
    fn a_missing_endpoint_is_a_502_naming_api_base() {
        for code in [404, 405] {
            let err = status_error(status(code), None, Bytes::new());
            assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
            assert!(message(&err).contains("api_base"), "{}", message(&err));
        }
    }

    #[test]
    fn upstream_failures_are_502_without_the_upstreams_text() {
        for code in [500, 502, 503, 504, 599] {
            let err = status_error(status(code), None, Bytes::from(HUNYUAN_400));
            assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
            assert!(!message(&err).contains("model"), "{}", message(&err));
        }
    }

    #[test]
    fn hunyuans_own_envelope_is_passed_through_with_its_status() {
        let err = status_error(
            StatusCode::BAD_REQUEST,
            Some(HeaderValue::from_static("3")),
            Bytes::from(HUNYUAN_400),
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.to_body(), HUNYUAN_400.as_bytes());
        let response = err.into_response();
        assert_eq!(response.headers()["retry-after"], "3");
        // An envelope 429 is Hunyuan's rate limit: passed on as it is, too.
        let err = status_error(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Bytes::from(HUNYUAN_400),
        );
        assert!(matches!(err, ProxyError::UpstreamRejected { .. }));
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn a_bare_429_is_the_proxys_429_with_the_upstreams_retry_after() {
        let err = status_error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(HeaderValue::from_static("5")),
            Bytes::from_static(b"<html>slow down</html>"),
        );
        assert_eq!(message(&err), "the upstream is rate limiting requests");
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "5");
    }

    #[test]
    fn another_bare_4xx_keeps_its_status_with_the_proxys_envelope() {
        let err = status_error(status(422), None, Bytes::from_static(b"Unprocessable"));
        assert_eq!(err.status(), status(422));
        assert_eq!(
            message(&err),
            "the upstream rejected the request (status 422)"
        );
    }

    const TOKENHUB_402: &str = r#"{"error":{"type":"permission_error","code":"401007","message":"endpoint is inactive: FREE_QUOTA_EXHAUSTED","source":"gateway","upstream_code":null,"upstream_status":null,"request_id":"req-1"}}"#;

    async fn tokenhub_error(code: u16, reason: &str, body: &str) -> ProxyError {
        let addr = raw_server(format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let response = reqwest::get(format!("http://{addr}/")).await.unwrap();
        map_error_status(response, Duration::from_secs(5), "deepseek-v4-pro").await
    }

    #[tokio::test]
    async fn a_402_names_the_model_and_the_console_and_only_a_known_reason() {
        let err = tokenhub_error(402, "Payment Required", TOKENHUB_402).await;
        assert!(matches!(
            &err,
            ProxyError::ModelNotEnabled { model, reason: Some("FREE_QUOTA_EXHAUSTED") } if model == "deepseek-v4-pro"
        ));
        assert_eq!(err.status(), StatusCode::PAYMENT_REQUIRED);
        let text = message(&err);
        assert!(
            text.contains("`deepseek-v4-pro`") && text.contains("TokenHub console"),
            "{text}"
        );
        assert!(text.contains("enable the model or top up"), "{text}");
        let err = tokenhub_error(
            402,
            "Payment Required",
            r#"{"error":{"message":"secret detail"}}"#,
        )
        .await;
        assert!(!message(&err).contains("secret detail"));
    }

    #[tokio::test]
    async fn a_451_is_a_content_filter_refusal() {
        let body = r#"{"error":{"type":"content_filter_error","code":"451001","message":"content was filtered by safety policy","source":"upstream","request_id":"req-2"}}"#;
        let err = tokenhub_error(451, "Unavailable For Legal Reasons", body).await;
        assert!(matches!(err, ProxyError::ContentFiltered { .. }));
        let value: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(value["error"]["code"], "content_filter");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn tokenhubs_envelope_becomes_openais_with_its_message() {
        let body = r#"{"error":{"type":"invalid_request_error","code":"400001","message":"The `reasoning_content` in the thinking mode must be passed back to the API.","source":"upstream","upstream_code":"invalid_request_error","upstream_status":400,"request_id":"req-3"}}"#;
        let err = status_error(StatusCode::BAD_REQUEST, None, Bytes::from(body));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let value: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"error": {
                "message": "The `reasoning_content` in the thinking mode must be passed back to the API.",
                "type": "invalid_request_error", "param": null, "code": "400001",
            }})
        );
    }

    #[test]
    fn an_envelope_is_json_whose_error_is_an_object() {
        assert!(is_error_envelope(HUNYUAN_400.as_bytes()));
        assert!(!is_error_envelope(br#"{"error":"text"}"#));
        assert!(!is_error_envelope(br#"{"message":"x"}"#));
        assert!(!is_error_envelope(b"<html>"));
        assert!(!is_error_envelope(b""));
    }

    /// A server on 127.0.0.1:0 that answers every connection with `answer` and closes it.
    async fn raw_server(answer: String) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_body_over_the_limit_is_not_read_as_an_envelope() {
        let body = r#"{"error":{"message":"an envelope longer than 16 bytes"}}"#;
        let addr = raw_server(format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let get = || reqwest::get(format!("http://{addr}/"));
        let small = read_limited(get().await.unwrap(), 1024, Duration::from_secs(5)).await;
        assert!(is_error_envelope(&small.unwrap()));
        assert_eq!(
            read_limited(get().await.unwrap(), 16, Duration::from_secs(5)).await,
            None
        );
        let err = map_error_status(get().await.unwrap(), Duration::from_secs(5), "hy4").await;
        assert!(matches!(err, ProxyError::UpstreamRejected { .. }));
        assert!(is_error_envelope(&err.to_body()));
    }

    #[tokio::test(start_paused = true)]
    async fn send_errors_are_502_or_504() {
        // Nothing listens on a port just freed.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let err = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
        let mapped = map_send_error(&err, Duration::from_secs(7));
        assert_eq!(mapped.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            message(&mapped),
            "the proxy could not connect to the upstream"
        );

        // A server that accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let err = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .unwrap_err();
        let mapped = map_send_error(&err, Duration::from_secs(7));
        assert_eq!(mapped.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(matches!(mapped, ProxyError::GatewayTimeout(d) if d == Duration::from_secs(7)));

        // A server that hangs up without an answer.
        let addr = raw_server(String::new()).await;
        let err = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
        let mapped = map_send_error(&err, Duration::from_secs(7));
        assert_eq!(mapped.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(message(&mapped), "the upstream request failed");
    }
}
