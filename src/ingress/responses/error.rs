//! The errors of the Responses route, in OpenAI's envelope.
//!
//! Most errors are the crate's [`ProxyError`] (a bad part is a 400 naming it, say). What only
//! this route has: an unknown `previous_response_id` (404, code `previous_response_not_found`,
//! as OpenAI answers), an unknown id on `GET`/`DELETE /v1/responses/{id}` (404), and a store that
//! cannot be reached (503).

use crate::error::{ErrorKind, ProxyError};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

/// An error the Responses route answers with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponsesError {
    /// One of the crate's errors (bad input, upstream failure…), rendered as it renders.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// `previous_response_id` names no stored response (never stored, expired, or `store`
    /// was off for it).
    #[error("Previous response with id '{id}' not found.")]
    PreviousResponseNotFound {
        /// The id the client sent.
        id: String,
    },
    /// No stored response has this id.
    #[error("No response found with id '{id}'.")]
    ResponseNotFound {
        /// The id the client asked for.
        id: String,
    },
    /// The response store failed (a remote store down, say).
    #[error("the response store is unavailable")]
    StoreUnavailable,
    /// A Responses API route the proxy does not serve (`/cancel`, `/compact`,
    /// `/input_items`): 400, code `unsupported_endpoint`, the message says what and why.
    #[error("{message}")]
    Unsupported {
        /// What is not supported, and why.
        message: &'static str,
    },
}

impl ResponsesError {
    /// A 400 naming the offending field (e.g. `input[2].content[0]`).
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        ResponsesError::Proxy(ProxyError::invalid(message, param))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ResponsesError::Proxy(err) => err.status(),
            ResponsesError::PreviousResponseNotFound { .. }
            | ResponsesError::ResponseNotFound { .. } => StatusCode::NOT_FOUND,
            ResponsesError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ResponsesError::Unsupported { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// OpenAI's error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ResponsesError::Proxy(err) => err.error_type(),
            ResponsesError::PreviousResponseNotFound { .. }
            | ResponsesError::ResponseNotFound { .. }
            | ResponsesError::Unsupported { .. } => "invalid_request_error",
            ResponsesError::StoreUnavailable => "server_error",
        }
    }

    /// OpenAI's error `code`; also the low-cardinality metric label.
    pub fn code(&self) -> &'static str {
        match self {
            ResponsesError::Proxy(err) => err.code(),
            ResponsesError::PreviousResponseNotFound { .. } => "previous_response_not_found",
            ResponsesError::ResponseNotFound { .. } => "not_found",
            ResponsesError::StoreUnavailable => "store_unavailable",
            ResponsesError::Unsupported { .. } => "unsupported_endpoint",
        }
    }

    /// The offending field, when there is one.
    pub fn param(&self) -> Option<&str> {
        match self {
            ResponsesError::Proxy(err) => err.param(),
            ResponsesError::PreviousResponseNotFound { .. } => Some("previous_response_id"),
            ResponsesError::ResponseNotFound { .. }
            | ResponsesError::StoreUnavailable
            | ResponsesError::Unsupported { .. } => None,
        }
    }

    /// The envelope's JSON bytes: `{"error":{"message","type","param","code"}}`.
    pub fn to_body(&self) -> Bytes {
        if let ResponsesError::Proxy(err) = self {
            return err.to_body();
        }
        let envelope = json!({"error": {
            "message": self.to_string(),
            "type": self.error_type(),
            "param": self.param(),
            "code": self.code(),
        }});
        Bytes::from(envelope.to_string())
    }
}

impl IntoResponse for ResponsesError {
    fn into_response(self) -> Response {
        if let ResponsesError::Proxy(err) = self {
            return err.into_response();
        }
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_body(),
        )
            .into_response();
        response.extensions_mut().insert(ErrorKind(self.code()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_response_not_found_is_openais_404() {
        let err = ResponsesError::PreviousResponseNotFound {
            id: "resp_gone".into(),
        };
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.extensions().get::<ErrorKind>(),
            Some(&ErrorKind("previous_response_not_found"))
        );
        let err = ResponsesError::PreviousResponseNotFound {
            id: "resp_gone".into(),
        };
        let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(body["error"]["code"], "previous_response_not_found");
        assert_eq!(body["error"]["param"], "previous_response_id");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(
            body["error"]["message"],
            "Previous response with id 'resp_gone' not found."
        );
    }

    #[test]
    fn proxy_errors_render_as_they_do_elsewhere() {
        let err = ResponsesError::invalid("input_file parts are not supported", "input[0]");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(body["error"]["param"], "input[0]");
        assert_eq!(body["error"]["code"], "invalid_request");
        let unavailable = ResponsesError::StoreUnavailable;
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.param(), None);
    }
}
