//! Legacy `POST /v1/completions` on top of a chat stack.
//!
//! Hunyuan has no completions endpoint. [`CompletionsService`] parses the completions request,
//! turns `prompt` into a one-message chat, sends it through the chat stack it wraps (so every
//! layer applies), and turns the answer back into a `text_completion` — streamed answers event
//! by event.

use crate::chat::{
    self, BodyLimit, ChatChunk, ChatCompletion, SseEvent, SseParser, TextCompletion,
};
use crate::error::ProxyError;
use axum::body::Body;
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower_service::Service;

/// Serves legacy completions through the chat service `S`.
#[derive(Debug, Clone)]
pub struct CompletionsService<S> {
    chat: S,
}

impl<S> CompletionsService<S> {
    /// Wraps a chat service.
    pub fn new(chat: S) -> Self {
        CompletionsService { chat }
    }
}

impl<S> Service<Request<Body>> for CompletionsService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.chat.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.chat.clone();
        let mut chat_service = std::mem::replace(&mut self.chat, clone);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let chat = match read_completion(&parts, body).await {
                Ok(chat) => chat,
                Err(err) => return Ok(err.into_response()),
            };
            parts.extensions.insert(chat::ParsedChat::new(chat));
            let response = chat_service
                .call(Request::from_parts(parts, Body::empty()))
                .await?;
            Ok(to_completion_response(response).await)
        })
    }
}

async fn read_completion(
    parts: &http::request::Parts,
    body: Body,
) -> Result<chat::ChatRequest, ProxyError> {
    chat::parse::check_content_type(&parts.headers)?;
    let limit = parts
        .extensions
        .get::<BodyLimit>()
        .map_or(chat::DEFAULT_BODY_LIMIT, |l| l.0);
    let timeout = parts
        .extensions
        .get::<chat::parse::BodyReadTimeout>()
        .map_or(chat::parse::DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let bytes = chat::parse::read_body(&parts.headers, body, limit, timeout).await?;
    chat::parse_completion(&bytes)?.into_chat()
}

async fn to_completion_response(response: Response<Body>) -> Response<Body> {
    if response.status() != StatusCode::OK {
        return response;
    }
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (parts, body) = response.into_parts();
    if is_sse {
        return Response::from_parts(parts, Body::new(CompletionsBody::new(body)));
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return ProxyError::BadGateway {
                message: "the upstream's answer broke off".into(),
            }
            .into_response()
        }
    };
    match serde_json::from_slice::<ChatCompletion>(&bytes) {
        Ok(chat) => {
            let mut out = Response::from_parts(
                parts,
                Body::from(chat::to_json_bytes(&TextCompletion::from(chat))),
            );
            out.headers_mut().remove(header::CONTENT_LENGTH);
            out
        }
        Err(_) => ProxyError::BadGateway {
            message: "the upstream sent an answer that is not a chat completion".into(),
        }
        .into_response(),
    }
}

pin_project_lite::pin_project! {
    /// A chat SSE stream rewritten as a completions SSE stream.
    struct CompletionsBody {
        #[pin]
        inner: Body,
        parser: SseParser,
        ready: VecDeque<Bytes>,
        done: bool,
    }
}

impl CompletionsBody {
    fn new(inner: Body) -> Self {
        CompletionsBody {
            inner,
            parser: SseParser::new(),
            ready: VecDeque::new(),
            done: false,
        }
    }
}

fn convert_event(event: SseEvent) -> Bytes {
    if event.is_done() || event.data.is_empty() {
        return event.raw;
    }
    match serde_json::from_str::<ChatChunk>(&event.data) {
        Ok(chunk) if !chunk.choices.is_empty() || chunk.usage.is_some() => {
            SseEvent::encode_json(&TextCompletion::from(chunk))
        }
        // Error events and anything else pass unchanged.
        _ => event.raw,
    }
}

impl http_body::Body for CompletionsBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.parser.push(&data);
                        while let Some(event) = this.parser.next_event() {
                            this.ready.push_back(convert_event(event));
                        }
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    *this.done = true;
                    if let Some(event) = this.parser.finish() {
                        this.ready.push_back(convert_event(event));
                    }
                }
            }
        }
    }
}
