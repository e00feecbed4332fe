//! [`Messages`]: the service the [`MessagesLayer`](super::MessagesLayer) makes, and
//! [`CountTokens`].

use super::config::MessagesConfig;
use super::error::{render_proxy_error, AnthropicErrors};
use super::request::{estimate_input_tokens, to_chat, Translated};
use super::response::{from_completion_bytes, AnswerPlan};
use super::stream::MessagesStream;
use super::DIALECT;
use crate::chat::parse::read_request_body;
use crate::error::ProxyError;
use crate::ingress::{handoff, rewrite_error, ResponseFuture, TranslateBody};
use axum::body::Body;
use http::{header, HeaderName, HeaderValue, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Translates a Messages request for the inner chat service and its answer back.
///
/// Bad input is answered here in Anthropic's error shape (`Ok(response)`, never `Err`), so
/// `Error` stays the inner service's.
#[derive(Debug, Clone)]
pub struct Messages<S> {
    inner: S,
    config: Arc<MessagesConfig>,
}

impl<S> Messages<S> {
    pub(super) fn from_parts(inner: S, config: Arc<MessagesConfig>) -> Self {
        Messages { inner, config }
    }

    /// The wrapped chat service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The Anthropic client's own headers, not sent upstream (named at compile time).
const CLIENT_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// Reads and translates the body of a Messages request.
async fn read_messages(
    req: &mut Request<Body>,
    config: &MessagesConfig,
) -> Result<Translated, ProxyError> {
    let bytes = read_request_body(req, config.body_limit).await?;
    to_chat(&bytes, config)
}

impl<S> Service<Request<Body>> for Messages<S>
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
            let translated = match read_messages(&mut req, &config).await {
                Ok(t) => t,
                Err(err) => return Ok(render_proxy_error(&err)),
            };
            let plan = AnswerPlan {
                input_estimate: estimate_input_tokens(&translated.chat),
                client_model: translated.client_model,
                thinking: translated.thinking,
                stop_sequences: translated.stop_sequences,
            };
            let dropped = translated.dropped;
            handoff::into_chat_request(&mut req, translated.chat, &CLIENT_HEADERS);
            let response = inner.call(req).await?;
            let mut response = if !response.status().is_success() {
                rewrite_error(response, &AnthropicErrors).await
            } else if handoff::is_event_stream(response.headers()) {
                let (mut parts, body) = response.into_parts();
                handoff::stream_headers(&mut parts.headers);
                let body = TranslateBody::new(body, MessagesStream::new(plan))
                    .keepalive_every(config.ping_interval());
                Response::from_parts(parts, Body::new(body))
            } else {
                json_answer(response, &plan).await
            };
            dropped.report(DIALECT, response.headers_mut());
            Ok(response)
        })
    }
}

/// A non-streamed chat answer as a Messages answer (a broken one is a 502 `api_error`).
async fn json_answer(response: Response<Body>, plan: &AnswerPlan) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let Some(completion) = handoff::take_completion(&mut parts, body).await else {
        return broken_answer();
    };
    let message = from_completion_bytes(completion, plan);
    handoff::json_headers(&mut parts.headers);
    Response::from_parts(parts, Body::from(message))
}

fn broken_answer() -> Response<Body> {
    render_proxy_error(&ProxyError::BadGateway {
        message: "the upstream's answer could not be read".into(),
    })
}

/// Answers `POST /v1/messages/count_tokens`: `{"input_tokens": n}`, the same estimate as a
/// stream's `message_start`, over the translated request. Never calls the upstream.
#[derive(Debug, Clone)]
pub struct CountTokens {
    config: Arc<MessagesConfig>,
}

impl CountTokens {
    pub(super) fn from_config(config: Arc<MessagesConfig>) -> Self {
        CountTokens { config }
    }
}

impl Service<Request<Body>> for CountTokens {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let config = self.config.clone();
        ResponseFuture::new(async move {
            let translated = match read_messages(&mut req, &config).await {
                Ok(t) => t,
                Err(err) => return Ok(render_proxy_error(&err)),
            };
            let tokens = estimate_input_tokens(&translated.chat);
            let mut response = Response::new(Body::from(
                serde_json::json!({ "input_tokens": tokens }).to_string(),
            ));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        })
    }
}
