//! [`ParseLayer`]: reads and parses the chat body once, for every later layer.

use crate::chat::{parse, ParsedChat};
use crate::error::ProxyError;
use axum::body::Body;
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Reads the request body ([`read_request_body`](crate::chat::parse::read_request_body):
/// counting bytes against a limit, chunked bodies included, within the body read timeout),
/// checks it is JSON, parses it into a [`ChatRequest`](crate::chat::ChatRequest) and puts that
/// into request extensions. Bad input is answered here with OpenAI's envelope (400, 408, 413,
/// 415) and never reaches the inner service.
///
/// Writes: [`ParsedChat`] (request extensions): the request and the client's bytes. Later
/// layers read it, change it with [`ParsedChat::get_mut`], or take it with
/// [`take_chat`](crate::chat::take_chat) and put it back; the bytes let the upstream forward a
/// request nobody changed without serializing it again.
///
/// With [`log_bodies`](Self::log_bodies) on, each parsed request is logged at `debug` with image
/// data elided and override fields removed ([`loggable_json`](crate::chat::redact::loggable_json));
/// off by default, since conversations are the users' data.
#[derive(Debug, Clone, Copy)]
pub struct ParseLayer {
    limit: usize,
    log_bodies: bool,
}

impl ParseLayer {
    /// A parse layer accepting bodies of at most `limit` bytes (a
    /// [`BodyLimit`](crate::chat::BodyLimit) in the request's extensions wins, as for every
    /// reader of a body).
    pub fn new(limit: usize) -> Self {
        ParseLayer {
            limit,
            log_bodies: false,
        }
    }

    /// Logs each parsed request at `debug` level, images elided (off by default).
    pub fn log_bodies(mut self, on: bool) -> Self {
        self.log_bodies = on;
        self
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
            log_bodies: self.log_bodies,
        }
    }
}

/// The service made by [`ParseLayer`].
#[derive(Debug, Clone)]
pub struct Parse<S> {
    inner: S,
    limit: usize,
    log_bodies: bool,
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
        let log_bodies = self.log_bodies;
        Box::pin(async move {
            if req.extensions().get::<ParsedChat>().is_none() {
                match read_chat(&mut req, limit).await {
                    Ok(parsed) => {
                        if log_bodies {
                            tracing::debug!(
                                body = %crate::chat::redact::loggable_json(parsed.get()),
                                "chat request"
                            );
                        }
                        req.extensions_mut().insert(parsed);
                    }
                    Err(err) => return Ok(err.into_response()),
                }
            }
            inner.call(req).await
        })
    }
}

async fn read_chat(req: &mut Request<Body>, limit: usize) -> Result<ParsedChat, ProxyError> {
    let bytes = parse::read_request_body(req, limit).await?;
    parse::parse_chat_keeping_raw(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn logged(layer: ParseLayer) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let service = layer.layer(tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let body = r#"{"model":"m","api_key":"sk-secret-in-body","messages":[{"role":"user","content":[
            {"type":"text","text":"what is on screen?"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUg"}}]}]}"#;
        let response = service
            .oneshot(Request::new(Body::from(body)))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[tokio::test]
    async fn bodies_are_logged_only_when_asked_and_never_with_images_or_keys() {
        let quiet = logged(ParseLayer::default()).await;
        assert!(!quiet.contains("what is on screen"), "{quiet}");
        let loud = logged(ParseLayer::default().log_bodies(true)).await;
        assert!(loud.contains("what is on screen"), "{loud}");
        assert!(!loud.contains("iVBORw0KGgo"), "{loud}");
        assert!(!loud.contains("sk-secret-in-body"), "{loud}");
    }
}
