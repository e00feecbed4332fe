//! The streamed answer's body: upstream bytes relayed as they arrive.

use crate::chat::SseEvent;
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send + Sync>>;

/// A streamed upstream answer. Chunks pass through untouched; if the upstream breaks midway,
/// one `data: {"error":…}` event is sent and the body ends without `[DONE]`. Holds the
/// upstream concurrency slot until it ends or is dropped.
pub struct UpstreamBody {
    stream: Option<ByteStream>,
    permit: Option<OwnedSemaphorePermit>,
}

impl UpstreamBody {
    pub(crate) fn new(stream: ByteStream, permit: OwnedSemaphorePermit) -> Self {
        UpstreamBody {
            stream: Some(stream),
            permit: Some(permit),
        }
    }

    fn finish(&mut self) {
        self.stream = None;
        self.permit = None;
    }
}

/// The event sent when the upstream breaks mid-stream.
pub(crate) fn broken_stream_event(timed_out: bool) -> Bytes {
    let (message, code) = if timed_out {
        ("the upstream went silent mid-stream", "upstream_timeout")
    } else {
        ("the upstream stream broke off", "upstream_stream_error")
    };
    SseEvent::encode_json(&serde_json::json!({
        "error": {"message": message, "type": "upstream_error", "param": null, "code": code}
    }))
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Err(err))) => {
                tracing::warn!(timeout = err.is_timeout(), "upstream stream broke off");
                this.finish();
                Poll::Ready(Some(Ok(Frame::data(broken_stream_event(err.is_timeout())))))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
