//! Streamed requests whose images take long to describe: the SSE response is committed early
//! and kept alive with comments, so clients with a short first-byte timeout do not give up.

use super::service::{Applied, Outcome, Pending, PendingVisionReport, VISION_HEADER};
use crate::chat::sse::KEEPALIVE;
use crate::chat::SseEvent;
use crate::error::{ErrorKind, ProxyError};
use crate::upstream::is_error_envelope;
use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::convert::Infallible;
use tokio::sync::mpsc;
use tower_service::Service;

/// The comment that tells a committed stream's client that placeholders stand in for images.
pub(crate) const DEGRADED_COMMENT: &[u8] = b": x-hunyuan-proxy-vision: degraded\n\n";

/// Largest error body read from the inner service to pass on as an SSE error event.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Answers 200 `text/event-stream` now; a task sends keep-alive comments until the
/// descriptions are done, then calls `inner` and relays its stream. A failure after the commit
/// (vision or upstream) arrives as one `data: {"error":…}` event, and the stream ends without
/// `[DONE]`.
pub(crate) fn commit_early<S>(
    pending: Pending,
    describe: BoxFuture<'static, Vec<Outcome>>,
    inner: S,
) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let interval = pending.prepared.config.keepalive_interval();
    let report = PendingVisionReport::default();
    let slot = report.0.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        if tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
            return;
        }
        let mut describe = describe;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let outcomes = loop {
            tokio::select! {
                outcomes = &mut describe => break outcomes,
                _ = ticks.tick() => {
                    if tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        };
        let applied = match pending.apply(outcomes) {
            Ok(applied) => applied,
            Err(err) => {
                let _ = tx.send(error_event(&err)).await;
                return;
            }
        };
        let _ = slot.set(applied.report);
        if applied.degraded {
            tracing::info!("streamed answer goes on with image placeholders (degraded)");
            if tx.send(Bytes::from_static(DEGRADED_COMMENT)).await.is_err() {
                return;
            }
        }
        relay(inner, applied, tx).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    });
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(VISION_HEADER, HeaderValue::from_static("committed-early"))
        .body(Body::from_stream(body))
        .expect("static response parts are valid");
    response.extensions_mut().insert(report);
    response
}

/// Calls `inner` and relays its answer into the committed stream.
async fn relay<S>(mut inner: S, applied: Applied, tx: mpsc::Sender<Bytes>)
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    let response = match inner.call(applied.req).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("the inner service failed after the stream was committed");
            let _ = tx.send(error_event(&ProxyError::Internal)).await;
            return;
        }
    };
    if !response.status().is_success() {
        let kind = response.extensions().get::<ErrorKind>().map(|k| k.0);
        let body = http_body_util::Limited::new(response.into_body(), ERROR_BODY_LIMIT)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .ok()
            .filter(|b| is_error_envelope(b));
        let event = match body {
            Some(envelope) => SseEvent::encode(&String::from_utf8_lossy(&envelope)),
            None => error_event(&ProxyError::BadGateway {
                message: "the upstream failed".into(),
            }),
        };
        tracing::warn!(
            kind = kind.unwrap_or("unknown"),
            "answer failed after an early commit"
        );
        let _ = tx.send(event).await;
        return;
    }
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if tx.send(data).await.is_err() {
                        return;
                    }
                }
            }
            Err(_) => {
                let _ = tx
                    .send(error_event(&ProxyError::BadGateway {
                        message: "the upstream stream broke off".into(),
                    }))
                    .await;
                return;
            }
        }
    }
}

/// An error as one SSE `data:` event holding OpenAI's envelope.
pub(crate) fn error_event(err: &ProxyError) -> Bytes {
    SseEvent::encode(&String::from_utf8_lossy(&err.to_body()))
}
