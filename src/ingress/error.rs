//! Chat errors turned into a dialect's errors: [`InnerError`] (what the chat stack, or a layer in
//! front of the ingress, answered) and [`DialectErrorsLayer`] for errors made before the ingress
//! runs (client auth, rate limits).

use crate::error::{ErrorKind, ProxyError};
use axum::body::Body;
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// How much of an error body is read to find its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// An error answer of the chat stack (OpenAI's envelope, a status and an
/// [`ErrorKind`] extension), read into parts a dialect renders in its own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The envelope's `error.message` (or a generic sentence when there is none).
    pub message: String,
    /// The envelope's `error.param`.
    pub param: Option<String>,
    /// The metric label the answer carried (`ErrorKind`).
    pub kind: Option<&'static str>,
    /// The `Retry-After` header, kept for rate limits.
    pub retry_after: Option<HeaderValue>,
}

impl InnerError {
    /// The parts of an error the proxy itself raises.
    pub fn from_proxy_error(err: &ProxyError) -> Self {
        let retry_after = match err {
            ProxyError::RateLimited {
                retry_after: Some(after),
                ..
            } => Some(HeaderValue::from(after.as_secs_f64().ceil().max(1.0) as u64)),
            ProxyError::UpstreamRejected { retry_after, .. } => retry_after.clone(),
            _ => None,
        };
        match err {
            // Hunyuan's own envelope: its message is what the client is told.
            ProxyError::UpstreamRejected { status, body, .. } => {
                let mut inner = Self::from_envelope(*status, body, HeaderMap::new());
                inner.kind = Some(err.kind());
                inner.retry_after = retry_after;
                inner
            }
            _ => InnerError {
                status: err.status(),
                message: err.to_string(),
                param: err.param().map(str::to_owned),
                kind: Some(err.kind()),
                retry_after,
            },
        }
    }

    /// Reads an error response (its body up to 64 KiB). A body that is not OpenAI's envelope
    /// gives a message naming only the status: third-party text is never passed on raw.
    pub async fn read(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = match Limited::new(body, ERROR_BODY_LIMIT).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let mut inner = Self::from_envelope(parts.status, &bytes, parts.headers);
        inner.kind = parts.extensions.get::<ErrorKind>().map(|k| k.0);
        inner
    }

    fn from_envelope(status: StatusCode, body: &[u8], headers: HeaderMap) -> Self {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &value["error"];
        let message = error["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "the request failed with status {}",
                    status.canonical_reason().unwrap_or(status.as_str())
                )
            });
        InnerError {
            status,
            message,
            param: error["param"].as_str().map(str::to_owned),
            kind: None,
            retry_after: headers.get(header::RETRY_AFTER).cloned(),
        }
    }
}

/// An error answer of the chat stack (or of a layer in front of an ingress) rendered by
/// `dialect`: the status, the headers (`Retry-After`, `WWW-Authenticate`, …) and the response
/// extensions (for metrics) stay; only the body and its content type change.
pub async fn rewrite_error(response: Response<Body>, dialect: &dyn ErrorDialect) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let headers = parts.headers.clone();
    let extensions = parts.extensions.clone();
    let error = InnerError::read(Response::from_parts(parts, body)).await;
    let mut rendered = dialect.render(&error);
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    // The rendered answer's own extensions (its `ErrorKind`, `DialectShaped`) win.
    let mut merged = extensions;
    merged.extend(std::mem::take(rendered.extensions_mut()));
    *rendered.extensions_mut() = merged;
    rendered
}

/// A response extension saying the answer is already in the client's dialect, so
/// [`DialectErrorsLayer`] leaves it alone. Every dialect's own error answers carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectShaped;

/// How a client dialect writes an error answer.
pub trait ErrorDialect: Send + Sync + 'static {
    /// The answer for `error`, carrying [`DialectShaped`] (and `error.kind` as an
    /// [`ErrorKind`]) in its extensions.
    fn render(&self, error: &InnerError) -> Response<Body>;
}

/// Rewrites OpenAI-envelope error answers into a dialect's shape on the paths that speak it.
///
/// Put it outside the layers that may refuse a request before the dialect's ingress runs
/// (client auth, rate limits); answers already in the dialect ([`DialectShaped`]) and
/// successful answers pass untouched, and requests to other paths cost one path comparison.
#[derive(Clone, Default)]
pub struct DialectErrorsLayer {
    routes: Arc<Vec<(String, Arc<dyn ErrorDialect>)>>,
}

impl std::fmt::Debug for DialectErrorsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.routes.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("DialectErrorsLayer")
            .field("paths", &paths)
            .finish()
    }
}

impl DialectErrorsLayer {
    /// A layer that rewrites nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors on `path` (exactly; the query string is not part of it) are rendered by
    /// `dialect`.
    pub fn path(mut self, path: impl Into<String>, dialect: Arc<dyn ErrorDialect>) -> Self {
        Arc::make_mut(&mut self.routes).push((path.into(), dialect));
        self
    }
}

impl<S> Layer<S> for DialectErrorsLayer {
    type Service = DialectErrors<S>;

    fn layer(&self, inner: S) -> DialectErrors<S> {
        DialectErrors {
            inner,
            routes: self.routes.clone(),
        }
    }
}

/// The service made by [`DialectErrorsLayer`].
#[derive(Clone)]
pub struct DialectErrors<S> {
    inner: S,
    routes: Arc<Vec<(String, Arc<dyn ErrorDialect>)>>,
}

impl<S> std::fmt::Debug for DialectErrors<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialectErrors").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for DialectErrors<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let dialect = self
            .routes
            .iter()
            .find(|(path, _)| path == req.uri().path())
            .map(|(_, dialect)| dialect.clone());
        let future = self.inner.call(req);
        match dialect {
            None => Either::Left(future),
            Some(dialect) => Either::Right(Box::pin(async move {
                let response = future.await?;
                if response.status().is_success()
                    || response.extensions().get::<DialectShaped>().is_some()
                {
                    return Ok(response);
                }
                Ok(rewrite_error(response, dialect.as_ref()).await)
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use std::convert::Infallible;
    use std::time::Duration;
    use tower::{service_fn, ServiceExt};

    struct Plain;
    impl ErrorDialect for Plain {
        fn render(&self, error: &InnerError) -> Response<Body> {
            let mut response = Response::new(Body::from(format!(
                "{} {:?} {}",
                error.status.as_u16(),
                error.kind,
                error.message
            )));
            *response.status_mut() = error.status;
            response.extensions_mut().insert(DialectShaped);
            response
        }
    }

    #[tokio::test]
    async fn errors_on_dialect_paths_are_rendered_and_keep_retry_after() {
        let inner = service_fn(|req: Request<Body>| async move {
            let err = ProxyError::RateLimited {
                message: "slow down".into(),
                retry_after: Some(Duration::from_secs(3)),
            };
            let mut response = err.into_response();
            if req.uri().path() == "/ok" {
                *response.status_mut() = StatusCode::OK;
            }
            Ok::<_, Infallible>(response)
        });
        let layer = DialectErrorsLayer::new().path("/plain", Arc::new(Plain));
        let service = layer.layer(inner);
        let response = service
            .clone()
            .oneshot(
                Request::post("/plain?beta=true")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"429 Some(\"rate_limit_exceeded\") slow down");
        // Other paths keep OpenAI's envelope.
        let response = service
            .oneshot(
                Request::post("/v1/chat/completions")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert!(body.starts_with(b"{\"error\""));
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_envelope_gives_a_neutral_message() {
        let response = Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from("<html>secret upstream page</html>"))
            .unwrap();
        let error = InnerError::read(response).await;
        assert_eq!(error.message, "the request failed with status Bad Gateway");
    }
}
