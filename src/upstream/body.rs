//! The streamed answer's body: upstream bytes relayed as they arrive.

use super::slots::Slot;
use crate::chat::SseEvent;
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send + Sync>>;

/// A streamed upstream answer. Chunks pass through untouched; if the upstream breaks midway,
/// or sends nothing for the idle timeout, one `data: {"error":…}` event is sent and the body
/// ends without `[DONE]`. Holds the upstream concurrency slot until it ends or is dropped.
pub struct UpstreamBody {
    stream: Option<ByteStream>,
    slot: Option<Slot>,
    /// The longest silence allowed between two chunks.
    idle: Duration,
    /// When the last chunk came (or the body was made).
    last_chunk: Instant,
    /// Fires at or before `last_chunk + idle`; made at the first wait and moved on only when
    /// it fires, so a chunk costs a clock read, not a timer update.
    timer: Option<Pin<Box<Sleep>>>,
}

impl UpstreamBody {
    pub(crate) fn new(stream: ByteStream, slot: Slot, idle: Duration) -> Self {
        UpstreamBody {
            stream: Some(stream),
            slot: Some(slot),
            idle,
            last_chunk: Instant::now(),
            timer: None,
        }
    }

    fn finish(&mut self) {
        self.stream = None;
        self.slot = None;
        self.timer = None;
    }

    /// Whether the upstream has been silent for the idle timeout; otherwise the timer is armed
    /// to wake this task at the silence's deadline.
    fn silent_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.last_chunk + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            // The timer was set for an older deadline: chunks came since.
            let deadline = self.last_chunk + self.idle;
            if Instant::now() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
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
            Poll::Pending => {
                if !this.silent_too_long(cx) {
                    return Poll::Pending;
                }
                tracing::warn!(
                    idle_secs = this.idle.as_secs(),
                    "the upstream went silent mid-stream"
                );
                this.finish();
                Poll::Ready(Some(Ok(Frame::data(broken_stream_event(true)))))
            }
            Poll::Ready(Some(Ok(bytes))) => {
                this.last_chunk = Instant::now();
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
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
