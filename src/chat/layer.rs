//! [`ParseLayer`]: reads and parses the chat body once, for every later layer.

use crate::chat::{parse, ChatRequest, RawChatBody};
use crate::error::ProxyError;
use axum::body::Body;
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Reads the request body (counting bytes against a limit, chunked bodies included), checks it
/// is JSON, parses it into a [`ChatRequest`] and puts that into request extensions. Bad input is
/// answered here with OpenAI's envelope (400, 413, 415) and never reaches the inner service.
///
/// Writes: `ChatRequest` and [`RawChatBody`] (request extensions). Later layers take the
/// request with [`take_chat`](crate::chat::take_chat) and put it back; the raw body lets the
/// upstream forward a request nobody changed without serializing it again.
#[derive(Debug, Clone, Copy)]
pub struct ParseLayer {
    limit: usize,
}

impl ParseLayer {
    /// A parse layer accepting bodies of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ParseLayer { limit }
    }
}

impl Default for ParseLayer {
    fn default() -> Self {
        ParseLayer::new(parse::DEFAULT_BODY_LIMIT)
    }
}

impl<S> Layer<S> for ParseLayer {
    type Service = Parse<S>;

    fn layer(&self, inner: S) -> Parse<S> {
        Parse {
            inner,
            limit: self.limit,
        }
    }
}

/// The service made by [`ParseLayer`].
#[derive(Debug, Clone)]
pub struct Parse<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<Request<Body>> for Parse<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit;
        Box::pin(async move {
            if req.extensions().get::<ChatRequest>().is_none() {
                match read_chat(&mut req, limit).await {
                    Ok((chat, raw)) => {
                        req.extensions_mut().insert(chat);
                        req.extensions_mut().insert(raw);
                    }
                    Err(err) => return Ok(err.into_response()),
                }
            }
            inner.call(req).await
        })
    }
}

async fn read_chat(
    req: &mut Request<Body>,
    limit: usize,
) -> Result<(ChatRequest, RawChatBody), ProxyError> {
    parse::check_content_type(req.headers())?;
    let timeout = req
        .extensions()
        .get::<parse::BodyReadTimeout>()
        .map_or(parse::DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let body = std::mem::take(req.body_mut());
    let bytes = parse::read_body(req.headers(), body, limit, timeout).await?;
    parse::parse_chat_keeping_raw(bytes)
}
