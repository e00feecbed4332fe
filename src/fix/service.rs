//! [`Fix`]: the service the [`FixLayer`](super::FixLayer) wraps around its inner service.

use super::body::FixBody;
use super::config::FixConfig;
use super::future::ResponseFuture;
use super::rewrite::ResponsePlan;
use super::rules::fix_request_with_names;
use crate::chat::take_chat;
use axum::body::Body;
use axum::response::IntoResponse;
use http::{header, HeaderMap, Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Fixes the chat request before the inner service sees it, and the answer on its way back.
///
/// The request leaves with the fixed [`ChatRequest`](crate::chat::ChatRequest) and a
/// [`FixReport`](super::FixReport) in its extensions (the body is consumed); the response gets
/// the same report in its extensions. Bad input is answered here with OpenAI's error envelope
/// (`Ok(response)`, never `Err`), so `Error` stays the inner service's.
#[derive(Debug, Clone)]
pub struct Fix<S> {
    inner: S,
    config: Arc<FixConfig>,
}

impl<S> Fix<S> {
    pub(super) fn from_parts(inner: S, config: Arc<FixConfig>) -> Self {
        Fix { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<Request<Body>> for Fix<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        ResponseFuture::new(async move {
            let mut chat = match take_chat(&mut req).await {
                Ok(chat) => chat,
                Err(err) => return Ok(err.into_response()),
            };
            let (report, names) = match fix_request_with_names(&mut chat, &config) {
                Ok(fixed) => fixed,
                Err(err) => return Ok(err.into_response()),
            };
            if !report.rules.is_empty() {
                tracing::debug!(rules = ?report.rules, "fix rules applied");
            }
            let plan = ResponsePlan::new(&chat, &config, names);
            req.headers_mut().remove(header::CONTENT_LENGTH);
            req.extensions_mut().insert(chat);
            req.extensions_mut().insert(report.clone());
            let mut response = inner.call(req).await?;
            response.extensions_mut().insert(report);
            Ok(wrap_body(response, plan))
        })
    }
}

/// Puts a [`FixBody`] around a successful JSON or event-stream answer that needs rewriting.
fn wrap_body(response: Response<Body>, plan: ResponsePlan) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let kind = content_kind(response.headers());
    let stream = match kind {
        Some(Kind::EventStream) if plan.touches_stream() => true,
        Some(Kind::Json) if plan.touches_json() => false,
        _ => return response,
    };
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = if stream {
        Body::new(FixBody::stream(body, plan))
    } else {
        Body::new(FixBody::json(body, plan))
    };
    Response::from_parts(parts, body)
}

enum Kind {
    Json,
    EventStream,
}

fn content_kind(headers: &HeaderMap) -> Option<Kind> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = value.split(';').next()?.trim();
    if mime.eq_ignore_ascii_case("text/event-stream") {
        Some(Kind::EventStream)
    } else if mime.eq_ignore_ascii_case("application/json") {
        Some(Kind::Json)
    } else {
        None
    }
}
