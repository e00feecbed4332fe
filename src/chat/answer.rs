//! A whole (non-streamed) chat answer handed back typed, so that the answer is parsed once on
//! its way to a dialect ingress: [`TypedAnswer`] on the request asks for it, [`ChatAnswer`] on
//! the response carries it.
//!
//! A dialect ingress reads a chat answer only to translate it, so the layers of the chat stack
//! that parse a JSON answer anyway (the model-profile layer, to note reasoning; the fixer, to
//! rewrite it) leave it parsed for the ingress instead of writing bytes that the ingress parses
//! again. The response's body stays the same answer: serialized only if something reads it, so
//! a layer that reads bodies still sees the answer.

use crate::chat::ChatCompletion;
use axum::body::Body;
use bytes::Bytes;
use http::response::Parts;
use http::{header, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The largest whole answer read into a [`ChatAnswer`]: 64 MiB.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// Request extension: the caller takes a whole answer as a [`ChatAnswer`] (a dialect ingress
/// puts it in; the chat route never does, so its answers stay the upstream's bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypedAnswer;

/// Response extension: the whole chat answer, parsed (and fixed) by a layer of the chat stack.
///
/// The body of a response that carries it is the same answer, serialized when polled; take
/// the answer with [`ChatAnswer::take`] and the body is never written. A layer that changes
/// such a response's body removes this extension.
#[derive(Debug, Clone)]
pub struct ChatAnswer(Arc<ChatCompletion>);

/// Whether a response is a JSON answer.
pub(crate) fn is_json(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

impl ChatAnswer {
    /// The whole answer of a successful JSON `response`, typed: from its [`ChatAnswer`] when an
    /// inner layer left one, otherwise read and parsed here. `Err` hands the response back as it
    /// came (its bytes kept) when it is not a chat completion, or with an empty body when the
    /// body broke off.
    pub(crate) async fn read(
        response: Response<Body>,
    ) -> Result<(Parts, ChatCompletion), Response<Body>> {
        let (mut parts, body) = response.into_parts();
        let body = match Self::take(&mut parts, body) {
            Ok(answer) => return Ok((parts, answer)),
            Err(body) => body,
        };
        let Ok(collected) = http_body_util::Limited::new(body, ANSWER_LIMIT)
            .collect()
            .await
        else {
            return Err(Response::from_parts(parts, Body::empty()));
        };
        let bytes = collected.to_bytes();
        match serde_json::from_slice::<ChatCompletion>(&bytes) {
            Ok(answer) => Ok((parts, answer)),
            Err(_) => Err(Response::from_parts(parts, Body::from(bytes))),
        }
    }

    /// A response carrying `answer` as a [`ChatAnswer`], its body the same answer serialized when
    /// polled (and so without a `Content-Length`).
    pub(crate) fn respond(mut parts: Parts, answer: ChatCompletion) -> Response<Body> {
        let answer = Arc::new(answer);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.extensions.insert(ChatAnswer(answer.clone()));
        Response::from_parts(parts, Body::new(AnswerBody(Some(answer))))
    }

    /// The answer.
    pub fn get(&self) -> &ChatCompletion {
        &self.0
    }

    /// Takes the answer out of a response's `parts`, dropping `body` (the same answer, not
    /// yet serialized); `Err` hands `body` back when there is none.
    pub fn take(parts: &mut Parts, body: Body) -> Result<ChatCompletion, Body> {
        let Some(ChatAnswer(answer)) = parts.extensions.remove::<ChatAnswer>() else {
            return Err(body);
        };
        // The body holds the other reference: once it is gone the answer moves out uncopied.
        drop(body);
        Ok(Arc::try_unwrap(answer).unwrap_or_else(|shared| (*shared).clone()))
    }
}

/// The body of a [`ChatAnswer::respond`] response: the answer, serialized when first polled.
struct AnswerBody(Option<Arc<ChatCompletion>>);

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .0
                .take()
                .map(|answer| Ok(Frame::data(crate::chat::to_json_bytes(&*answer)))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> ChatCompletion {
        serde_json::from_value(serde_json::json!({"id": "c", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "note": "n"}))
        .unwrap()
    }

    #[tokio::test]
    async fn the_typed_answer_is_taken_whole_and_its_body_still_reads_as_the_answer() {
        let json = || {
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let (mut parts, body) = ChatAnswer::respond(json(), answer()).into_parts();
        assert!(parts.extensions.get::<ChatAnswer>().is_some());
        assert_eq!(ChatAnswer::take(&mut parts, body).unwrap(), answer());
        assert!(parts.extensions.get::<ChatAnswer>().is_none());

        // A layer that reads the body instead sees the same answer.
        let response = ChatAnswer::respond(json(), answer());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let read: ChatCompletion = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read, answer());
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_completion_comes_back_as_it_was() {
        let response = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("[1, 2]"))
            .unwrap();
        let back = ChatAnswer::read(response).await.unwrap_err();
        let bytes = back.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"[1, 2]");
    }
}
