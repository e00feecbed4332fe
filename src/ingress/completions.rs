//! Legacy `POST /v1/completions` on top of a chat stack.
//!
//! Hunyuan has no completions endpoint. [`CompletionsService`] reads the completions request
//! ([`crate::chat::parse::read_request_body`], like every dialect), turns `prompt` into a
//! one-message chat, sends it through the chat stack it wraps (so every layer applies), and
//! turns the answer back into a `text_completion`: a whole answer (taken typed,
//! [`ChatAnswer`](crate::chat::ChatAnswer)) with [`from_completion`], a stream event by event
//! with [`CompletionsStream`] on the shared [`TranslateBody`], as the other dialects do.

use crate::chat::parse::read_request_body;
use crate::chat::{
    self, ChatChunk, ChatCompletion, ChatRequest, SseEvent, TextCompletion, DEFAULT_BODY_LIMIT,
};
use crate::error::ProxyError;
use crate::ingress::{handoff, ResponseFuture, StreamTranslator, TranslateBody, KEEPALIVE};
use crate::upstream::{broken_stream_event, Broken};
use axum::body::Body;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use std::task::{Context, Poll};
use tower_service::Service;

/// Serves legacy completions through the chat service `S`.
///
/// Bad input is answered here in OpenAI's envelope (`Ok(response)`, never `Err`), so `Error`
/// stays the inner service's.
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
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.chat.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.chat.clone();
        let mut chat_service = std::mem::replace(&mut self.chat, clone);
        ResponseFuture::new(async move {
            let chat = match to_chat(&mut req).await {
                Ok(chat) => chat,
                Err(err) => return Ok(err.into_response()),
            };
            req.extensions_mut().insert(chat::ParsedChat::new(chat));
            // A whole answer comes back parsed by the chat stack, not parsed again here.
            req.extensions_mut().insert(chat::TypedAnswer);
            let response = chat_service.call(req).await?;
            Ok(answer(response).await)
        })
    }
}

/// Reads a completions request and turns it into a one-message chat.
async fn to_chat(req: &mut Request<Body>) -> Result<ChatRequest, ProxyError> {
    let bytes = read_request_body(req, DEFAULT_BODY_LIMIT).await?;
    chat::parse_completion(&bytes)?.into_chat()
}

/// The chat stack's answer as a completions answer: errors (and any other status but 200) as
/// they are, a stream translated event by event, a whole answer with [`from_completion`].
async fn answer(response: Response<Body>) -> Response<Body> {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if handoff::is_event_stream(&parts.headers) {
        handoff::stream_headers(&mut parts.headers);
        let body = TranslateBody::new(body, CompletionsStream);
        return Response::from_parts(parts, Body::new(body));
    }
    match handoff::take_completion(&mut parts, body).await {
        Some(completion) => {
            handoff::json_headers(&mut parts.headers);
            let text = from_completion(completion);
            Response::from_parts(parts, Body::from(chat::to_json_bytes(&text)))
        }
        None => ProxyError::BadGateway {
            message: "the upstream sent an answer that is not a chat completion".into(),
        }
        .into_response(),
    }
}

/// A `chat.completion` as a `text_completion`.
pub fn from_completion(completion: ChatCompletion) -> TextCompletion {
    TextCompletion::from(completion)
}

/// The completions dialect's [`StreamTranslator`]: each chat chunk that carries choices or
/// usage as a `text_completion` chunk; `[DONE]`, the inner stream's error event and its
/// keep-alives as they are (OpenAI's shapes already); a stream cut short ends with the chat
/// route's `upstream_truncated` error event.
#[derive(Debug, Default, Clone, Copy)]
pub struct CompletionsStream;

impl StreamTranslator for CompletionsStream {
    fn start(&mut self, _out: &mut Vec<Bytes>) {}

    fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<Bytes>) {
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            // Nothing a completions client reads: passed on as the chat chunk it is.
            out.push(SseEvent::encode_json(&chunk));
        } else {
            out.push(SseEvent::encode_json(&TextCompletion::from(chunk)));
        }
    }

    fn on_keepalive(&mut self, out: &mut Vec<Bytes>) {
        out.push(Bytes::from_static(KEEPALIVE));
    }

    fn on_done(&mut self, out: &mut Vec<Bytes>) {
        out.push(SseEvent::encode("[DONE]"));
    }

    fn on_error(&mut self, error: &serde_json::Value, out: &mut Vec<Bytes>) {
        out.push(SseEvent::encode_json(
            &serde_json::json!({ "error": error }),
        ));
    }

    fn on_truncated(&mut self, out: &mut Vec<Bytes>) {
        out.push(broken_stream_event(Broken::Truncated));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use serde_json::{json, Value};

    fn sse(
        pieces: &[&'static str],
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> {
        StreamBody::new(futures_util::stream::iter(
            pieces
                .iter()
                .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
                .collect::<Vec<_>>(),
        ))
    }

    async fn translated(pieces: &[&'static str]) -> String {
        let body = TranslateBody::new(sse(pieces), CompletionsStream);
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn chunks_become_text_completions_and_the_rest_passes_in_openai_shape() {
        let out = translated(&[
            ": keep-alive\n\n",
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",",
            "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ])
        .await;
        let events: Vec<&str> = out.split_terminator("\n\n").collect();
        assert_eq!(events[0], ": keep-alive");
        let first: Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(first["object"], "text_completion");
        assert_eq!(first["id"], "c1");
        assert_eq!(first["choices"][0]["text"], "Hel");
        let second: Value =
            serde_json::from_str(events[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(second["choices"][0]["text"], "lo");
        assert_eq!(second["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[3], "data: [DONE]");
        assert_eq!(events.len(), 4);
    }

    #[tokio::test]
    async fn an_error_event_is_passed_on_and_a_cut_stream_says_so() {
        let failed = translated(&[
            "data: {\"error\":{\"code\":\"upstream_timeout\",\"message\":\"silent\",\"type\":\"upstream_error\"}}\n\n",
        ])
        .await;
        let event: Value =
            serde_json::from_str(failed.trim_end().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(
            event,
            json!({"error": {"code": "upstream_timeout", "message": "silent", "type": "upstream_error"}})
        );
        assert!(!failed.contains("[DONE]"));

        let cut = translated(&[
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
        ])
        .await;
        assert!(
            cut.ends_with(std::str::from_utf8(&broken_stream_event(Broken::Truncated)).unwrap()),
            "{cut}"
        );
        assert!(!cut.contains("[DONE]"));
    }
}
