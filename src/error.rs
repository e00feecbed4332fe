//! The crate's one error type and OpenAI's error envelope, and [`InvalidConfig`], the one
//! shape of a layer config that cannot be used.
//!
//! Every error a client sees is rendered as OpenAI's envelope
//! `{"error":{"message","type","param","code"}}` with a fitting HTTP status. Each
//! [`ProxyError`] variant knows its status, its OpenAI `type`/`code` and a low-cardinality
//! label for metrics ([`ProxyError::kind`]). Third-party error text never reaches the client
//! through this type, except Hunyuan's own 4xx envelope, which is passed on unchanged.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use std::time::Duration;

/// An error the proxy answers a client with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The body is not valid JSON.
    #[error("invalid JSON in request body: {detail}")]
    InvalidJson {
        /// What the parser said (position and reason, never the body itself).
        detail: String,
    },
    /// The body is JSON but not a valid request.
    #[error("{message}")]
    InvalidRequest {
        /// Human-readable explanation.
        message: String,
        /// The offending field, e.g. `messages[3].role`.
        param: Option<String>,
    },
    /// The request's `Content-Type` is not JSON.
    #[error("unsupported content type: expected application/json")]
    UnsupportedMediaType,
    /// The client took too long to send its body.
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(Duration),
    /// The body is larger than the configured limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client did not authenticate (or authenticated wrongly).
    #[error("{message}")]
    Unauthorized {
        /// Explanation; never echoes the presented credential.
        message: String,
    },
    /// No such route or resource.
    #[error("{message}")]
    NotFound {
        /// Explanation.
        message: String,
    },
    /// The method is not allowed on this route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The route exists in the contract but its feature is disabled or not built.
    #[error("{message}")]
    NotImplemented {
        /// Explanation.
        message: String,
    },
    /// The client (or the proxy on its behalf) is over a rate or concurrency limit.
    #[error("{message}")]
    RateLimited {
        /// Explanation.
        message: String,
        /// When the client may retry.
        retry_after: Option<Duration>,
    },
    /// Hunyuan answered with an error of its own (4xx); its body is passed on.
    #[error("upstream answered {status}")]
    UpstreamRejected {
        /// The upstream's status.
        status: StatusCode,
        /// The upstream's body, already in an OpenAI-style envelope.
        body: Bytes,
        /// The upstream's `Retry-After`, if any.
        retry_after: Option<HeaderValue>,
    },
    /// The upstream does not serve this model to the proxy's key: TokenHub's 402 (the model is
    /// not enabled, or its free quota or the balance is used up). About this one model only:
    /// other models on the same key may work, so no key is taken out of the pool.
    #[error(
        "the model `{model}` is not enabled for the proxy's upstream key{}; enable the model or \
         top up in the TokenHub console",
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    ModelNotEnabled {
        /// The model the upstream refused.
        model: String,
        /// TokenHub's reason (`FREE_QUOTA_EXHAUSTED`, `NO_FREE_PACKAGE`,
        /// `INSUFFICIENT_BALANCE`), when it gave a known one.
        reason: Option<&'static str>,
    },
    /// The upstream's safety policy refused the conversation (TokenHub's 451). The chat
    /// upstream answers it as a refusal (`finish_reason: "content_filter"`), which every
    /// dialect renders as its own refusal; where it is rendered as an error it is a 400 with
    /// code `content_filter` (Azure OpenAI's shape for a filtered prompt).
    #[error("the upstream's safety policy filtered the conversation (model `{model}`)")]
    ContentFiltered {
        /// The model that refused.
        model: String,
    },
    /// The upstream failed (5xx, connection refused, broken response).
    #[error("{message}")]
    BadGateway {
        /// Explanation written by the proxy (never the upstream's text).
        message: String,
    },
    /// The upstream did not answer in time.
    #[error("the upstream did not answer within {0:?}")]
    GatewayTimeout(Duration),
    /// The proxy cannot serve right now (shutting down, queue full).
    #[error("{message}")]
    Unavailable {
        /// Explanation.
        message: String,
    },
    /// A bug in the proxy. Rendered without details.
    #[error("internal error")]
    Internal,
}

impl ProxyError {
    /// A 400 naming the offending field.
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        ProxyError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// A 400 with no particular field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ProxyError::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::InvalidJson { .. }
            | ProxyError::InvalidRequest { .. }
            | ProxyError::ContentFiltered { .. } => StatusCode::BAD_REQUEST,
            ProxyError::ModelNotEnabled { .. } => StatusCode::PAYMENT_REQUIRED,
            ProxyError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::UpstreamRejected { status, .. } => *status,
            ProxyError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's error `type` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            ProxyError::InvalidJson { .. }
            | ProxyError::InvalidRequest { .. }
            | ProxyError::UnsupportedMediaType
            | ProxyError::RequestTimeout(_)
            | ProxyError::PayloadTooLarge { .. }
            | ProxyError::NotFound { .. }
            | ProxyError::MethodNotAllowed
            | ProxyError::ContentFiltered { .. }
            | ProxyError::UpstreamRejected { .. } => "invalid_request_error",
            ProxyError::ModelNotEnabled { .. } => "permission_error",
            ProxyError::Unauthorized { .. } => "authentication_error",
            ProxyError::RateLimited { .. } => "rate_limit_error",
            ProxyError::NotImplemented { .. } => "not_implemented_error",
            ProxyError::BadGateway { .. }
            | ProxyError::GatewayTimeout(_)
            | ProxyError::Unavailable { .. } => "upstream_error",
            ProxyError::Internal => "server_error",
        }
    }

    /// OpenAI's error `code` (a short machine-readable string).
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::InvalidJson { .. } => "invalid_json",
            ProxyError::InvalidRequest { .. } => "invalid_request",
            ProxyError::UnsupportedMediaType => "unsupported_media_type",
            ProxyError::RequestTimeout(_) => "request_timeout",
            ProxyError::PayloadTooLarge { .. } => "payload_too_large",
            ProxyError::Unauthorized { .. } => "invalid_api_key",
            ProxyError::NotFound { .. } => "not_found",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::NotImplemented { .. } => "not_implemented",
            ProxyError::RateLimited { .. } => "rate_limit_exceeded",
            ProxyError::UpstreamRejected { .. } => "upstream_rejected",
            ProxyError::ModelNotEnabled { .. } => "model_not_enabled",
            ProxyError::ContentFiltered { .. } => "content_filter",
            ProxyError::BadGateway { .. } => "bad_gateway",
            ProxyError::GatewayTimeout(_) => "upstream_timeout",
            ProxyError::Unavailable { .. } => "service_unavailable",
            ProxyError::Internal => "internal_error",
        }
    }

    /// A low-cardinality label for metrics (the same as [`code`](Self::code)).
    pub fn kind(&self) -> &'static str {
        self.code()
    }

    /// The offending field, when there is one.
    pub fn param(&self) -> Option<&str> {
        match self {
            ProxyError::InvalidRequest { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    /// The envelope's JSON bytes.
    pub fn to_body(&self) -> Bytes {
        if let ProxyError::UpstreamRejected { body, .. } = self {
            return body.clone();
        }
        let message = self.to_string();
        let envelope = Envelope {
            error: ErrorBody {
                message: &message,
                r#type: self.error_type(),
                param: self.param(),
                code: Some(self.code()),
            },
        };
        Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
    }
}

/// Which error a response carries; put into response extensions so metrics layers can count
/// errors by kind without parsing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind(pub &'static str);

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    r#type: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_body(),
        )
            .into_response();
        match &self {
            ProxyError::RateLimited {
                retry_after: Some(after),
                ..
            } => {
                let secs = after.as_secs_f64().ceil().max(1.0) as u64;
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ProxyError::UpstreamRejected {
                retry_after: Some(value),
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, value.clone());
            }
            ProxyError::Unauthorized { .. } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response.extensions_mut().insert(ErrorKind(self.kind()));
        response
    }
}

/// A config value a layer (or the server) cannot use: which key, and what is wrong with it.
///
/// Every layer config's `validate` answers with this one shape. `field` is the key as the user
/// wrote it: a layer config's own field name (`concurrency`) when the layer is built by hand,
/// the server's TOML key (`upstream_concurrency`, `fix.max_messages`,
/// `models."glm-5.2".price`, `client_keys.alice.budget`) when the server built it. Values are
/// never quoted in `problem`, so secrets stay out of it.
///
/// ```
/// use hunyuan_proxy::error::InvalidConfig;
///
/// let err = InvalidConfig::new("max_messages", "must be at least 2").within("fix");
/// assert_eq!(err.field, "fix.max_messages");
/// assert_eq!(err.to_string(), "invalid config: `fix.max_messages` must be at least 2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: `{field}` {problem}")]
pub struct InvalidConfig {
    /// The key, as a TOML key path (`cascade.concurrency`, `models."hy4".price`).
    pub field: String,
    /// What is wrong with its value, as the end of a sentence (`must be at least 1`).
    pub problem: String,
}

impl InvalidConfig {
    /// `field` cannot be used because of `problem`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        InvalidConfig {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same problem with the field inside `table`: `max_messages` → `fix.max_messages`.
    #[must_use]
    pub fn within(mut self, table: &str) -> Self {
        self.field = format!("{table}.{}", self.field);
        self
    }

    /// The same problem with the field renamed by `name` (the key the user wrote for it).
    #[must_use]
    pub fn renamed(mut self, name: impl FnOnce(&str) -> String) -> Self {
        self.field = name(&self.field);
        self
    }
}

impl From<crate::ingress::AliasError> for InvalidConfig {
    /// A malformed alias, named by its pattern (`aliases."claude-*"`).
    fn from(err: crate::ingress::AliasError) -> Self {
        use crate::ingress::AliasError;
        let (pattern, problem) = match err {
            AliasError::Empty(pattern) => (pattern, "must name a model, and not be empty itself"),
            AliasError::Wildcard(pattern) => (pattern, "may hold `*` only at its end"),
        };
        InvalidConfig::new(format!("aliases.{pattern:?}"), problem)
    }
}

/// `name` as one segment of a TOML key path: bare when TOML allows it (`alice`), quoted
/// otherwise (`"glm-5.2"`).
pub fn toml_key(name: &str) -> std::borrow::Cow<'_, str> {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("{name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_are_written_as_toml_key_paths() {
        assert_eq!(toml_key("alice"), "alice");
        assert_eq!(toml_key("glm-5.2"), "\"glm-5.2\"");
        assert_eq!(toml_key("claude-*"), "\"claude-*\"");
        assert_eq!(toml_key(""), "\"\"");
        let err = InvalidConfig::new("concurrency", "must be at least 1")
            .renamed(|f| format!("upstream_{f}"));
        assert_eq!(
            err.to_string(),
            "invalid config: `upstream_concurrency` must be at least 1"
        );
    }

    #[test]
    fn envelope_has_openai_shape() {
        let err = ProxyError::invalid("unknown role `robot`", "messages[3].role");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let value: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(value["error"]["message"], "unknown role `robot`");
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert_eq!(value["error"]["param"], "messages[3].role");
        assert_eq!(value["error"]["code"], "invalid_request");
    }

    #[test]
    fn rate_limited_sets_retry_after() {
        let response = ProxyError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_millis(1500)),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.extensions().get::<ErrorKind>(),
            Some(&ErrorKind("rate_limit_exceeded"))
        );
    }
}
