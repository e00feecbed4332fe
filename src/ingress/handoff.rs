//! The hand-off between a dialect ingress and the chat stack, the same for every dialect: the
//! translated request goes in as the chat route's request, and the chat answer comes back as
//! a stream to translate or a whole completion, typed ([`ChatAnswer`]) when a layer of the
//! chat stack parsed it already.

use crate::chat::{ChatAnswer, ChatCompletion, ChatRequest, ParsedChat, TypedAnswer};
use axum::body::Body;
use http::response::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::BodyExt;

/// The largest non-streamed chat answer an ingress reads.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// The path the chat stack is called with.
const CHAT_PATH: &str = "/v1/chat/completions";

/// Turns the client's request into the chat route's: its path, a JSON content type, no
/// `Content-Length` of the client's body and none of `client_headers`, `chat` as the parsed
/// request (so the chat stack's `ParseLayer` does not parse again), and [`TypedAnswer`]: a
/// whole answer comes back parsed, not parsed a second time here.
pub(crate) fn into_chat_request(
    req: &mut Request<Body>,
    chat: ChatRequest,
    client_headers: &[HeaderName],
) {
    *req.uri_mut() = Uri::from_static(CHAT_PATH);
    let headers = req.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    for name in client_headers {
        headers.remove(name);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    req.extensions_mut().insert(ParsedChat::new(chat));
    req.extensions_mut().insert(TypedAnswer);
}

/// Whether the chat stack answered with an SSE stream.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// The headers of a translated SSE stream: its own length unknown, `no-cache`.
pub(crate) fn stream_headers(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// The headers of a translated whole answer: JSON, its length set from the new body.
pub(crate) fn json_headers(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
}

/// The whole chat answer of a non-streamed response: the [`ChatAnswer`] a layer of the chat
/// stack parsed when there is one (the ingress asked for it with [`TypedAnswer`]), otherwise
/// the body read (at most 64 MiB) and parsed; `None` when it breaks off or is not a chat
/// completion.
pub(crate) async fn take_completion(parts: &mut Parts, body: Body) -> Option<ChatCompletion> {
    let body = match ChatAnswer::take(parts, body) {
        Ok(answer) => return Some(answer),
        Err(body) => body,
    };
    let bytes = http_body_util::Limited::new(body, ANSWER_LIMIT)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&bytes).ok()
}
