//! [`Fix`]: the service the [`FixLayer`](super::FixLayer) wraps around its inner service.

use super::body::FixBody;
use super::config::FixConfig;
use super::rewrite::{asks_for_usage, ResponsePlan};
use super::rules::fix_request_with_names;
use super::ResponseFuture;
use crate::chat::{BodyKind, ChatAnswer, ParsedChat, TypedAnswer};
use axum::body::Body;
use axum::response::IntoResponse;
use http::{header, Request, Response};
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
            // Fixed where it lies when an earlier layer parsed it (no moving out and back
            // in; the client's bytes are kept when no rule fired); otherwise read and parsed
            // here.
            if let Err(err) = crate::chat::ensure_chat(&mut req).await {
                return Ok(err.into_response());
            }
            let parsed = req
                .extensions_mut()
                .get_mut::<ParsedChat>()
                .expect("inserted above");
            let fixed = parsed.edit_reporting(|chat| {
                let client_asked_usage = asks_for_usage(chat);
                let fixed = fix_request_with_names(chat, &config).map(|(report, names)| {
                    let plan = ResponsePlan::new(chat, &config, names, client_asked_usage);
                    (report, plan)
                });
                let changed = fixed
                    .as_ref()
                    .map_or(true, |(report, _)| !report.rules.is_empty());
                (fixed, changed)
            });
            let (report, plan) = match fixed {
                Ok(fixed) => fixed,
                Err(err) => return Ok(err.into_response()),
            };
            if !report.rules.is_empty() {
                tracing::debug!(rules = ?report.rules, "fix rules applied");
            }
            req.headers_mut().remove(header::CONTENT_LENGTH);
            req.extensions_mut().insert(report.clone());
            let typed = req.extensions().get::<TypedAnswer>().is_some();
            let mut response = inner.call(req).await?;
            response.extensions_mut().insert(report);
            let json = BodyKind::of(response.headers()) == Some(BodyKind::Json);
            if typed && json && response.status().is_success() {
                return Ok(fix_typed(response, &plan).await);
            }
            Ok(wrap_body(response, plan))
        })
    }
}

/// A whole JSON answer for a caller that takes it typed ([`TypedAnswer`](crate::chat::TypedAnswer)):
/// parsed once (or taken parsed from an inner layer) and fixed as it lies, instead of fixed
/// in its bytes and parsed again by the caller. One that is not a chat completion passes as
/// it came.
async fn fix_typed(response: Response<Body>, plan: &ResponsePlan) -> Response<Body> {
    match ChatAnswer::read(response).await {
        Ok((parts, mut completion)) => {
            plan.fix_completion(&mut completion);
            ChatAnswer::respond(parts, completion)
        }
        Err(response) => response,
    }
}

/// Puts a [`FixBody`] around a successful JSON or event-stream answer that needs rewriting.
fn wrap_body(response: Response<Body>, plan: ResponsePlan) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let stream = match BodyKind::of(response.headers()) {
        Some(BodyKind::EventStream) if plan.touches_stream() => true,
        Some(BodyKind::Json) if plan.touches_json() => false,
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

#[cfg(test)]
mod tests {
    use crate::chat::ParsedChat;
    use crate::fix::{FixConfig, FixLayer, FixReport};
    use axum::body::Body;
    use http::{header, Request, Response, StatusCode};
    use serde_json::{json, Value};
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tower::{service_fn, Layer, ServiceExt};

    fn request(body: Value) -> Request<Body> {
        let bytes = serde_json::to_vec(&body).unwrap();
        Request::post("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(Body::from(bytes))
            .unwrap()
    }

    async fn json_of(response: Response<Body>) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn inner_sees_the_fixed_request_and_both_sides_get_the_report() {
        let inner = service_fn(|req: Request<Body>| async move {
            assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
            let chat = req.extensions().get::<ParsedChat>().unwrap();
            let report = req.extensions().get::<FixReport>().unwrap();
            assert_eq!(report.rules, ["fields", "alternation"]);
            assert_eq!(chat.messages.len(), 1);
            assert!(!chat.extra.contains_key("presence_penalty"));
            let answer = json!({"id": "x", "note": "n", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "hi"}}]});
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CONTENT_LENGTH, answer.to_string().len())
                    .body(Body::from(answer.to_string()))
                    .unwrap(),
            )
        });
        let service = FixLayer::default().layer(inner);
        let response = service
            .oneshot(request(
                json!({"model": "m", "presence_penalty": 0, "messages": [
                {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
            ))
            .await
            .unwrap();
        assert_eq!(
            response.extensions().get::<FixReport>().unwrap().rules,
            ["fields", "alternation"]
        );
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        let answer = json_of(response).await;
        assert!(answer.get("note").is_none());
        assert_eq!(answer["choices"][0]["message"]["content"], "hi");
    }

    #[tokio::test]
    async fn a_caller_that_takes_the_answer_typed_gets_it_fixed_and_parsed_once() {
        use crate::chat::{ChatAnswer, TypedAnswer};
        let inner = service_fn(|_req: Request<Body>| async move {
            let answer = json!({"id": "x", "note": "n", "choices": [{"index": 0,
                "finish_reason": "stop", "message": {"role": "assistant", "content": "ok<end>"}}]});
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(answer.to_string()))
                    .unwrap(),
            )
        });
        let service = FixLayer::default().layer(inner);
        let body = json!({"model": "m", "stop": ["<end>"],
            "messages": [{"role": "user", "content": "a"}]});
        let mut typed = request(body.clone());
        typed.extensions_mut().insert(TypedAnswer);
        let (mut parts, body_of_typed) = service.clone().oneshot(typed).await.unwrap().into_parts();
        let answer = ChatAnswer::take(&mut parts, body_of_typed).expect("handed on typed");
        assert!(!answer.extra.contains_key("note"));
        assert_eq!(answer.choices[0].message.content.as_deref(), Some("ok"));
        assert!(parts.extensions.get::<FixReport>().is_some());

        // Without the request's ask, the same answer comes as fixed bytes only, and both
        // ways say the same.
        let response = service.oneshot(request(body)).await.unwrap();
        assert!(response.extensions().get::<ChatAnswer>().is_none());
        let read: crate::chat::ChatCompletion =
            serde_json::from_value(json_of(response).await).unwrap();
        assert_eq!(read, answer);
    }

    #[tokio::test]
    async fn bad_input_is_answered_without_calling_the_inner_service() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let inner = service_fn(move |_req: Request<Body>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Body::empty())) }
        });
        let layer = FixLayer::new(FixConfig::default()).unwrap();
        for (body, param) in [
            (
                json!({"model": "m", "n": 3, "messages": [{"role": "user", "content": "a"}]}),
                "n",
            ),
            (
                json!({"model": "m", "messages": [{"role": "robot", "content": "a"}]}),
                "messages[0].role",
            ),
        ] {
            let response = layer
                .layer(inner.clone())
                .oneshot(request(body))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(json_of(response).await["error"]["param"], param);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn error_answers_pass_unchanged() {
        let inner = service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"error":{"code":"1001"},"note":"kept"}"#))
                    .unwrap(),
            )
        });
        let response = FixLayer::default()
            .layer(inner)
            .oneshot(request(
                json!({"model": "m", "messages": [{"role": "user", "content": "a"}]}),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_of(response).await["note"], "kept");
    }

    #[test]
    fn an_invalid_config_is_refused_when_the_layer_is_built() {
        assert!(FixLayer::new(FixConfig::default().with_max_messages(0)).is_err());
    }
}
