//! [`Responses`]: the service the [`ResponsesLayer`](super::ResponsesLayer) makes;
//! [`StoredResponses`] (`GET`/`DELETE /v1/responses/{id}`) and [`Unsupported`] (the routes the
//! proxy does not serve).

use super::config::ResponsesConfig;
use super::error::ResponsesError;
use super::request::{to_chat, Translated};
use super::response::{from_completion_owned, ResponseObject, ResponseStatus};
use super::store::{OwnedStore, ResponseStore, StoredResponse};
use super::stream::ResponsesStream;
use super::DIALECT;
use crate::auth::ClientName;
use crate::chat::parse::read_request_body;
use crate::chat::ChatChunk;
use crate::error::ProxyError;
use crate::ingress::{handoff, ResponseFuture, StreamTranslator, TranslateBody};
use axum::body::Body;
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{header, HeaderValue, Method, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// What every service of the ingress shares: its settings and the store.
pub(super) struct Shared {
    pub(super) config: ResponsesConfig,
    pub(super) store: Arc<dyn ResponseStore>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Translates a Responses request for the inner chat service and its answer back.
///
/// Bad input is answered here in OpenAI's error envelope (`Ok(response)`, never `Err`), so
/// `Error` stays the inner service's. The chat stack's own errors are in that envelope
/// already and pass unchanged.
#[derive(Debug, Clone)]
pub struct Responses<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Responses<S> {
    pub(super) fn from_parts(inner: S, shared: Arc<Shared>) -> Self {
        Responses { inner, shared }
    }

    /// The wrapped chat service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Reads and translates the body of a Responses request.
async fn read_responses(
    req: &mut Request<Body>,
    shared: &Shared,
    store: &dyn ResponseStore,
) -> Result<Translated, ResponsesError> {
    let bytes = read_request_body(req, shared.config.body_limit).await?;
    to_chat(&bytes, &shared.config, Some(store)).await
}

/// Stores `entry`. A store that answers at once (the in-memory one) has it before this returns,
/// so a follow-up request sees it; a slower one finishes in a task of its own.
fn store_now(store: &Arc<dyn ResponseStore>, entry: StoredResponse) {
    let store = store.clone();
    let mut put = Box::pin(async move {
        if let Err(err) = store.put(entry).await {
            tracing::warn!(error = %err, "a response could not be stored");
        }
    });
    if (&mut put).now_or_never().is_none() {
        tokio::spawn(put);
    }
}

/// The store as the request's client key sees it: its own stored responses only.
fn owned_store<B>(store: &Arc<dyn ResponseStore>, req: &Request<B>) -> Arc<dyn ResponseStore> {
    let owner = req.extensions().get::<ClientName>().map(|n| n.0.clone());
    Arc::new(OwnedStore::new(store.clone(), owner))
}

/// Whether a response is worth storing for `previous_response_id` (failed ones are not).
fn storable(response: &ResponseObject) -> bool {
    matches!(
        response.status,
        ResponseStatus::Completed | ResponseStatus::Incomplete
    )
}

impl<S> Service<Request<Body>> for Responses<S>
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
        let shared = self.shared.clone();
        let store = owned_store(&shared.store, &req);
        ResponseFuture::new(async move {
            let mut translated = match read_responses(&mut req, &shared, store.as_ref()).await {
                Ok(t) => t,
                Err(err) => return Ok(err.into_response()),
            };
            let dropped = std::mem::take(&mut translated.dropped);
            let chat = std::mem::take(&mut translated.chat);
            handoff::into_chat_request(&mut req, chat, &[]);
            let response = inner.call(req).await?;
            let mut response = if !response.status().is_success() {
                // The chat stack's errors are OpenAI's envelope already.
                response
            } else if handoff::is_event_stream(response.headers()) {
                let (mut parts, body) = response.into_parts();
                handoff::stream_headers(&mut parts.headers);
                let translator = StoringStream {
                    stream: ResponsesStream::new(translated.context.clone()),
                    store: translated.store().then(|| store.clone()),
                    translated: Some(translated),
                };
                let body =
                    TranslateBody::new(body, translator).keepalive_every(shared.config.keepalive());
                Response::from_parts(parts, Body::new(body))
            } else {
                json_answer(response, translated, store.as_ref()).await
            };
            dropped.report(DIALECT, response.headers_mut());
            Ok(response)
        })
    }
}

/// The first allocation of a response object's body: a short answer with its echoed request
/// fields fits.
const RESPONSE_CAPACITY: usize = 4096;

/// A non-streamed chat answer as a response object (a broken one is a 502), stored when the
/// request asked for it.
async fn json_answer(
    response: Response<Body>,
    translated: Translated,
    store_to: &dyn ResponseStore,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let Some(completion) = handoff::take_completion(&mut parts, body).await else {
        return broken_answer();
    };
    let store = translated.store();
    let Translated {
        context,
        input_items,
        ..
    } = translated;
    let answer = from_completion_owned(&completion, context);
    // Sized for a short answer, so the buffer is not grown a byte count at a time.
    let mut body = Vec::with_capacity(RESPONSE_CAPACITY);
    if serde_json::to_writer(&mut body, &answer).is_err() {
        body.clear();
    }
    if store && storable(&answer) {
        if let Err(err) = store_to.put(StoredResponse::new(input_items, answer)).await {
            tracing::warn!(error = %err, "a response could not be stored");
        }
    }
    handoff::json_headers(&mut parts.headers);
    Response::from_parts(parts, Body::from(body))
}

fn broken_answer() -> Response<Body> {
    ProxyError::BadGateway {
        message: "the upstream's answer could not be read".into(),
    }
    .into_response()
}

/// A [`ResponsesStream`] that stores its final response (when `store` is on) the moment the
/// stream ends, before the last event leaves.
struct StoringStream {
    stream: ResponsesStream,
    store: Option<Arc<dyn ResponseStore>>,
    /// The request's side of the entry, taken when it is stored.
    translated: Option<Translated>,
}

impl StoringStream {
    fn after(&mut self) {
        let Some(response) = self.stream.response() else {
            return;
        };
        let (Some(store), Some(translated)) = (&self.store, self.translated.take()) else {
            return;
        };
        if storable(response) {
            store_now(store, translated.to_stored(response.clone()));
        }
    }
}

impl StreamTranslator for StoringStream {
    fn start(&mut self, out: &mut Vec<Bytes>) {
        StreamTranslator::start(&mut self.stream, out);
    }

    fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<Bytes>) {
        StreamTranslator::on_chunk(&mut self.stream, chunk, out);
        self.after();
    }

    fn on_keepalive(&mut self, out: &mut Vec<Bytes>) {
        StreamTranslator::on_keepalive(&mut self.stream, out);
    }

    fn on_done(&mut self, out: &mut Vec<Bytes>) {
        StreamTranslator::on_done(&mut self.stream, out);
        self.after();
    }

    fn on_error(&mut self, error: &serde_json::Value, out: &mut Vec<Bytes>) {
        StreamTranslator::on_error(&mut self.stream, error, out);
        self.after();
    }

    fn on_truncated(&mut self, out: &mut Vec<Bytes>) {
        StreamTranslator::on_truncated(&mut self.stream, out);
        self.after();
    }
}

/// The response id at the end of a path (`/v1/responses/resp_…`).
fn id_of(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// Serves `GET /v1/responses/{id}` (the stored response object) and `DELETE
/// /v1/responses/{id}` (`{"id", "object": "response", "deleted": true}`) from the store; an
/// unknown id is a 404 in OpenAI's envelope.
#[derive(Debug, Clone)]
pub struct StoredResponses {
    shared: Arc<Shared>,
}

impl StoredResponses {
    pub(super) fn from_shared(shared: Arc<Shared>) -> Self {
        StoredResponses { shared }
    }
}

fn json_response(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl Service<Request<Body>> for StoredResponses {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let store = owned_store(&self.shared.store, &req);
        ResponseFuture::new(async move {
            let id = id_of(req.uri().path()).to_owned();
            let not_found = || ResponsesError::ResponseNotFound { id: id.clone() };
            let answer = match *req.method() {
                Method::DELETE => match store.delete(&id).await {
                    Ok(true) => Ok(json_response(
                        &serde_json::json!({"id": id, "object": "response", "deleted": true}),
                    )),
                    Ok(false) => Err(not_found()),
                    Err(err) => Err(err.into()),
                },
                _ => match store.get(&id).await {
                    Ok(Some(stored)) => Ok(json_response(
                        &serde_json::to_value(&stored.response).unwrap_or_default(),
                    )),
                    Ok(None) => Err(not_found()),
                    Err(err) => Err(err.into()),
                },
            };
            Ok(answer.unwrap_or_else(IntoResponse::into_response))
        })
    }
}

/// Answers a Responses route the proxy does not serve with a 400 in OpenAI's envelope (code
/// `unsupported_endpoint`) that says what is unsupported, instead of "no such route".
#[derive(Debug, Clone, Copy)]
pub struct Unsupported {
    message: &'static str,
}

impl Unsupported {
    /// `POST /v1/responses/{id}/cancel`: only background responses can be cancelled, and the
    /// proxy runs none.
    pub const CANCEL: Unsupported = Unsupported {
        message: "Cancelling a response is not supported: this proxy runs no background \
                  responses (`background: true`), so there is nothing to cancel.",
    };
    /// `POST /v1/responses/compact`: server-side compaction.
    pub const COMPACT: Unsupported = Unsupported {
        message: "Compacting a conversation (`/responses/compact`) is not supported by this \
                  proxy; compact on the client side (send a summary as input) instead.",
    };
    /// `GET /v1/responses/{id}/input_items`.
    pub const INPUT_ITEMS: Unsupported = Unsupported {
        message: "Listing a response's input items is not supported by this proxy; \
                  `GET /v1/responses/{id}` returns the stored response.",
    };

    /// The message the route answers with.
    pub fn message(&self) -> &'static str {
        self.message
    }
}

impl Service<Request<Body>> for Unsupported {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        std::future::ready(Ok(ResponsesError::Unsupported {
            message: self.message,
        }
        .into_response()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_last_path_segment() {
        assert_eq!(id_of("/v1/responses/resp_ab12"), "resp_ab12");
        assert_eq!(id_of("/responses/resp_ab12/"), "resp_ab12");
    }
}
