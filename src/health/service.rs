//! [`Health`], the service made by [`HealthLayer`](super::HealthLayer).

use super::component::HealthStatus;
use super::future::ResponseFuture;
use super::layer::Shared;
use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Answers the health routes, passes everything else to `S`. Made by
/// [`HealthLayer`](super::HealthLayer).
#[derive(Clone)]
pub struct Health<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Health<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Health<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Health { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

#[derive(Clone, Copy)]
enum Endpoint {
    Live,
    Ready,
    Report,
}

fn endpoint<B>(req: &Request<B>) -> Option<Endpoint> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    match req.uri().path() {
        "/health" => Some(Endpoint::Report),
        "/health/live" => Some(Endpoint::Live),
        "/health/ready" => Some(Endpoint::Ready),
        _ => None,
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(Bytes::from(
        serde_json::to_vec(value).unwrap_or_default(),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn answer(shared: Arc<Shared>, endpoint: Endpoint) -> Response<Body> {
    let shutting_down = shared.shutting_down.load(Ordering::SeqCst);
    match endpoint {
        Endpoint::Live => {
            if shutting_down {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "shutting_down"}),
                )
            } else {
                json_response(
                    StatusCode::OK,
                    &json!({"status": "alive", "uptime_seconds": shared.started.elapsed().as_secs()}),
                )
            }
        }
        Endpoint::Ready => {
            if shutting_down {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not_ready", "failing": ["shutdown"]}),
                );
            }
            let report = shared.registry.check_all(shared.config.check_timeout).await;
            let failing = report.failing();
            if failing.is_empty() {
                json_response(StatusCode::OK, &json!({"status": "ready"}))
            } else {
                let reasons: serde_json::Map<String, serde_json::Value> = failing
                    .iter()
                    .map(|name| (name.clone(), report.components[name].message.clone().into()))
                    .collect();
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not_ready", "failing": failing, "reasons": reasons}),
                )
            }
        }
        Endpoint::Report => {
            let report = shared.registry.check_all(shared.config.check_timeout).await;
            let overall = if shutting_down {
                HealthStatus::Unhealthy
            } else {
                report.overall()
            };
            let status = if overall == HealthStatus::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            json_response(
                status,
                &json!({
                    "status": overall,
                    "version": shared.config.version,
                    "uptime_seconds": shared.started.elapsed().as_secs(),
                    "shutting_down": shutting_down,
                    "components": report.components,
                }),
            )
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Health<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match endpoint(&req) {
            Some(endpoint) => {
                ResponseFuture::answer(Box::pin(answer(self.shared.clone(), endpoint)))
            }
            // Called here, not in the future: no clone of the inner service is needed.
            None => ResponseFuture::inner(self.inner.call(req)),
        }
    }
}
