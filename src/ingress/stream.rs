//! [`StreamTranslator`] and [`TranslateBody`]: a chat event stream rewritten, chunk by chunk,
//! into another dialect's events.

use crate::chat::{ChatChunk, SseEvent, SseParser};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The keep-alive written between events of OpenAI-shaped streams (Responses, completions): an
/// SSE comment, ignored by every client.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// A dialect's stream grammar, fed with what the inner chat stream says.
///
/// Each method appends the events (encoded bytes) to send to `out`. After
/// [`on_done`](Self::on_done), [`on_error`](Self::on_error) or
/// [`on_truncated`](Self::on_truncated) the stream is over: nothing else is called.
pub trait StreamTranslator: Send + 'static {
    /// Events sent before anything else (e.g. Anthropic's `message_start`).
    fn start(&mut self, out: &mut Vec<Bytes>);
    /// One parsed `chat.completion.chunk`.
    fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<Bytes>);
    /// A keep-alive: an SSE comment from the inner stream (the cascade sends them while it
    /// describes images), or no event for the idle interval.
    fn on_keepalive(&mut self, out: &mut Vec<Bytes>);
    /// The inner stream's `data: [DONE]`.
    fn on_done(&mut self, out: &mut Vec<Bytes>);
    /// An inner `data: {"error": {…}}` event: the stream failed after it was committed.
    /// `error` is the envelope's `error` object (`message`, `type`, `code`).
    fn on_error(&mut self, error: &serde_json::Value, out: &mut Vec<Bytes>);
    /// The inner body ended (or broke) without `[DONE]`: the answer is cut short.
    fn on_truncated(&mut self, out: &mut Vec<Bytes>);
}

pin_project! {
    /// A chat SSE body translated by a [`StreamTranslator`]: events are parsed with
    /// [`SseParser`] as they arrive and each one is translated at once (only one incomplete
    /// event is ever buffered). While the inner stream is silent for `idle`, the translator's
    /// keep-alive is sent.
    pub struct TranslateBody<B, T> {
        #[pin]
        inner: B,
        translator: T,
        parser: SseParser,
        queue: VecDeque<Bytes>,
        idle: Option<(Duration, Pin<Box<Sleep>>)>,
        started: bool,
        ended: bool,
        inner_done: bool,
    }
}

impl<B, T: std::fmt::Debug> std::fmt::Debug for TranslateBody<B, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranslateBody")
            .field("translator", &self.translator)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<B, T: StreamTranslator> TranslateBody<B, T> {
    /// Translates `inner` with `translator`, with no idle keep-alive.
    pub fn new(inner: B, translator: T) -> Self {
        TranslateBody {
            inner,
            translator,
            parser: SseParser::new(),
            queue: VecDeque::new(),
            idle: None,
            started: false,
            ended: false,
            inner_done: false,
        }
    }

    /// Sends the translator's keep-alive whenever nothing was sent for `every` (needs a Tokio
    /// runtime with the time driver).
    pub fn keepalive_every(mut self, every: Duration) -> Self {
        self.idle = Some((every, Box::pin(tokio::time::sleep(every))));
        self
    }
}

/// What one inner event means.
fn translate_event<T: StreamTranslator>(
    translator: &mut T,
    event: &SseEvent,
    ended: &mut bool,
    out: &mut Vec<Bytes>,
) {
    if *ended {
        return;
    }
    if event.is_comment_only() {
        // Only real comments count; the blank padding between events parses as nothing.
        if event.raw.first() == Some(&b':') {
            translator.on_keepalive(out);
        }
        return;
    }
    if event.is_done() {
        *ended = true;
        translator.on_done(out);
        return;
    }
    match serde_json::from_str::<ChatChunk>(&event.data) {
        Ok(chunk) if chunk.choices.is_empty() && chunk.extra.contains_key("error") => {
            *ended = true;
            translator.on_error(&chunk.extra["error"], out);
        }
        Ok(chunk) => translator.on_chunk(chunk, out),
        Err(_) => tracing::debug!("an event of the chat stream is not a chunk; skipped"),
    }
}

impl<B, T> Body for TranslateBody<B, T>
where
    B: Body<Data = Bytes>,
    T: StreamTranslator,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let mut out = Vec::new();
        if !*this.started {
            *this.started = true;
            this.translator.start(&mut out);
        }
        loop {
            if !out.is_empty() {
                this.queue.extend(out.drain(..));
            }
            if !this.queue.is_empty() {
                // Everything ready leaves in one frame.
                let frame = if this.queue.len() == 1 {
                    this.queue.pop_front().expect("not empty")
                } else {
                    let len = this.queue.iter().map(Bytes::len).sum();
                    let mut joined = BytesMut::with_capacity(len);
                    for bytes in this.queue.drain(..) {
                        joined.extend_from_slice(&bytes);
                    }
                    joined.freeze()
                };
                if let Some((every, sleep)) = this.idle.as_mut() {
                    sleep.as_mut().reset(Instant::now() + *every);
                }
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            if *this.inner_done {
                return Poll::Ready(None);
            }
            if let Some(event) = this.parser.next_event() {
                translate_event(this.translator, &event, this.ended, &mut out);
                continue;
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.parser.push_bytes(data);
                    }
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    *this.inner_done = true;
                    if let Some(event) = this.parser.finish() {
                        translate_event(this.translator, &event, this.ended, &mut out);
                    }
                    if !*this.ended {
                        *this.ended = true;
                        this.translator.on_truncated(&mut out);
                    }
                }
                Poll::Pending => {
                    let Some((every, sleep)) = this.idle.as_mut() else {
                        return Poll::Pending;
                    };
                    if *this.ended {
                        return Poll::Pending;
                    }
                    ready!(sleep.as_mut().poll(cx));
                    sleep.as_mut().reset(Instant::now() + *every);
                    this.translator.on_keepalive(&mut out);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.queue.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    /// Writes one line per call, to see the order of calls.
    #[derive(Debug, Default)]
    struct Log;

    impl StreamTranslator for Log {
        fn start(&mut self, out: &mut Vec<Bytes>) {
            out.push("start\n".into());
        }
        fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<Bytes>) {
            let text = chunk.choices[0].delta.content.clone().unwrap_or_default();
            out.push(format!("chunk {text}\n").into());
        }
        fn on_keepalive(&mut self, out: &mut Vec<Bytes>) {
            out.push("ping\n".into());
        }
        fn on_done(&mut self, out: &mut Vec<Bytes>) {
            out.push("done\n".into());
        }
        fn on_error(&mut self, error: &serde_json::Value, out: &mut Vec<Bytes>) {
            out.push(format!("error {}\n", error["message"].as_str().unwrap()).into());
        }
        fn on_truncated(&mut self, out: &mut Vec<Bytes>) {
            out.push("truncated\n".into());
        }
    }

    fn body(pieces: Vec<&'static str>) -> impl Body<Data = Bytes, Error = Infallible> {
        StreamBody::new(futures_util::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes())))),
        ))
    }

    async fn text<B: Body<Data = Bytes>>(body: B) -> String
    where
        B::Error: std::fmt::Debug,
    {
        String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    const HI: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";

    #[tokio::test]
    async fn split_events_comments_and_done_in_order() {
        let out = text(TranslateBody::new(
            body(vec![
                ": keep-alive\n\n",
                &HI[..20],
                &HI[20..],
                "data: [DONE]\n\n",
                HI,
            ]),
            Log,
        ))
        .await;
        assert_eq!(out, "start\nping\nchunk hi\ndone\n");
    }

    #[tokio::test]
    async fn an_error_event_and_a_cut_stream_end_the_translation() {
        let out = text(TranslateBody::new(
            body(vec![HI, "data: {\"error\":{\"message\":\"boom\"}}\n\n"]),
            Log,
        ))
        .await;
        assert_eq!(out, "start\nchunk hi\nerror boom\n");
        let out = text(TranslateBody::new(body(vec![HI]), Log)).await;
        assert_eq!(out, "start\nchunk hi\ntruncated\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_gets_keepalives_at_the_interval() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let inner = StreamBody::new(tokio_stream_of(rx));
        let translated = TranslateBody::new(inner, Log).keepalive_every(Duration::from_secs(15));
        let reader = tokio::spawn(async move {
            let mut translated = std::pin::pin!(translated);
            let mut seen = Vec::new();
            while let Some(frame) = translated.frame().await {
                let bytes = frame.unwrap().into_data().unwrap();
                seen.push((Instant::now(), String::from_utf8(bytes.to_vec()).unwrap()));
            }
            seen
        });
        let begin = Instant::now();
        tokio::time::sleep(Duration::from_secs(40)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(HI.as_bytes()))))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
            .await
            .unwrap();
        drop(tx);
        let seen = reader.await.unwrap();
        let at: Vec<(u64, &str)> = seen
            .iter()
            .map(|(t, s)| ((*t - begin).as_secs(), s.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (0, "start\n"),
                (15, "ping\n"),
                (30, "ping\n"),
                (40, "chunk hi\n"),
                (50, "done\n")
            ]
        );
    }

    fn tokio_stream_of<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
