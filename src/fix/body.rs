//! [`FixBody`]: the response body with Hunyuan's answer rewritten on the fly.

use super::rewrite::{EventAction, ResponsePlan, StreamRewriter};
use crate::chat::SseParser;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// A response body rewritten by the [`FixLayer`](super::FixLayer).
    ///
    /// A server-sent-event stream is rewritten event by event as it arrives: events the fixer
    /// leaves alone are forwarded as their original bytes. A JSON answer is collected (it is
    /// one object) and rewritten once at its end.
    pub struct FixBody<B> {
        #[pin]
        inner: B,
        mode: Mode,
        // Bytes ready to send before polling the inner body again.
        queue: VecDeque<Bytes>,
        inner_done: bool,
    }
}

enum Mode {
    Stream {
        parser: SseParser,
        rewriter: Box<StreamRewriter>,
    },
    Json {
        /// The answer while it is one frame (the norm): kept without a copy.
        first: Option<Bytes>,
        /// The answer once a second frame came.
        buf: BytesMut,
        plan: Box<ResponsePlan>,
    },
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Stream { .. } => "Stream",
            Mode::Json { .. } => "Json",
        })
    }
}

impl<B> std::fmt::Debug for FixBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixBody").field("mode", &self.mode).finish()
    }
}

impl<B> FixBody<B> {
    /// Rewrites a server-sent-event stream of chat chunks.
    pub fn stream(inner: B, plan: ResponsePlan) -> Self {
        Self::with_mode(
            inner,
            Mode::Stream {
                parser: SseParser::new(),
                rewriter: Box::new(StreamRewriter::new(plan)),
            },
        )
    }

    /// Rewrites a JSON `chat.completion` answer.
    pub fn json(inner: B, plan: ResponsePlan) -> Self {
        Self::with_mode(
            inner,
            Mode::Json {
                first: None,
                buf: BytesMut::new(),
                plan: Box::new(plan),
            },
        )
    }

    fn with_mode(inner: B, mode: Mode) -> Self {
        FixBody {
            inner,
            mode,
            queue: VecDeque::new(),
            inner_done: false,
        }
    }
}

impl<B> Body for FixBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(bytes) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if let Mode::Stream { parser, rewriter } = this.mode {
                // Every event already complete leaves in one frame: events that arrived
                // together go on together (one frame for the layers outside to handle, not
                // one per event), and none waits for a later one. Events passed on unchanged
                // stay slices of the upstream's bytes.
                if let Some(mut run) = parser.next_run() {
                    let mut out = Relay::new(run.bytes().clone());
                    for (range, event) in &mut run {
                        if event.is_done() {
                            for bytes in rewriter.finish() {
                                out.put(bytes);
                            }
                            out.keep(range);
                            continue;
                        }
                        match rewriter.on_event(&event) {
                            EventAction::Forward => out.keep(range),
                            EventAction::Replace(bytes) => out.put(bytes),
                            EventAction::Skip => out.leave_out(),
                        }
                    }
                    if let Some(bytes) = out.finish() {
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                }
            }
            if *this.inner_done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match this.mode {
                        Mode::Stream { parser, .. } => parser.push_bytes(data),
                        Mode::Json { first, buf, .. } => {
                            if first.is_none() && buf.is_empty() {
                                *first = Some(data);
                            } else {
                                if let Some(first) = first.take() {
                                    buf.extend_from_slice(&first);
                                }
                                buf.extend_from_slice(&data);
                            }
                        }
                    },
                    // Trailers pass unchanged.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    *this.inner_done = true;
                    end_of_input(this.mode, this.queue);
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

/// One frame built from a run of events: the events kept as they came stay a slice of the
/// run (no copy) as long as nothing was inserted, replaced or left out between them; a single
/// new piece is kept as it is; anything else is joined once.
struct Relay {
    run: Bytes,
    out: RelayOut,
}

enum RelayOut {
    Empty,
    /// `run[range]`, which a later kept event may extend.
    Slice(Range<usize>),
    /// `run[range]`, followed by an event left out: a later kept event cannot extend it.
    Closed(Range<usize>),
    /// One new piece and nothing else.
    One(Bytes),
    Joined(BytesMut),
}

impl Relay {
    fn new(run: Bytes) -> Self {
        Relay {
            run,
            out: RelayOut::Empty,
        }
    }

    /// The event at `range` of the run goes on as it came.
    fn keep(&mut self, range: Range<usize>) {
        self.out = match std::mem::replace(&mut self.out, RelayOut::Empty) {
            RelayOut::Empty => RelayOut::Slice(range),
            // Between the two only bytes that held no event (blank lines) can lie.
            RelayOut::Slice(kept) => RelayOut::Slice(kept.start..range.end),
            other => {
                let mut joined = self.joined(other);
                joined.extend_from_slice(&self.run[range]);
                RelayOut::Joined(joined)
            }
        };
    }

    /// `bytes` go on in place of an event, or as a new one.
    fn put(&mut self, bytes: Bytes) {
        self.out = match std::mem::replace(&mut self.out, RelayOut::Empty) {
            RelayOut::Empty => RelayOut::One(bytes),
            other => {
                let mut joined = self.joined(other);
                joined.extend_from_slice(&bytes);
                RelayOut::Joined(joined)
            }
        };
    }

    /// An event is left out: what was kept before it cannot grow over it.
    fn leave_out(&mut self) {
        if let RelayOut::Slice(kept) = &self.out {
            self.out = RelayOut::Closed(kept.clone());
        }
    }

    fn joined(&self, so_far: RelayOut) -> BytesMut {
        match so_far {
            RelayOut::Empty => BytesMut::new(),
            RelayOut::Slice(kept) | RelayOut::Closed(kept) => BytesMut::from(&self.run[kept]),
            RelayOut::One(bytes) => BytesMut::from(&bytes[..]),
            RelayOut::Joined(joined) => joined,
        }
    }

    fn finish(self) -> Option<Bytes> {
        match self.out {
            RelayOut::Empty => None,
            RelayOut::Slice(kept) | RelayOut::Closed(kept) => Some(self.run.slice(kept)),
            RelayOut::One(bytes) => Some(bytes),
            RelayOut::Joined(joined) => Some(joined.freeze()),
        }
    }
}

/// The upstream body ended: flush what is left.
fn end_of_input(mode: &mut Mode, queue: &mut VecDeque<Bytes>) {
    match mode {
        Mode::Stream { parser, rewriter } => {
            if let Some(event) = parser.finish() {
                if event.is_done() {
                    queue.extend(rewriter.finish());
                    queue.push_back(event.raw);
                    return;
                }
                match rewriter.on_event(&event) {
                    EventAction::Forward => queue.push_back(event.raw),
                    EventAction::Replace(bytes) => queue.push_back(bytes),
                    EventAction::Skip => {}
                }
            }
            queue.extend(rewriter.finish());
        }
        Mode::Json { first, buf, plan } => {
            let body = first.take().unwrap_or_else(|| std::mem::take(buf).freeze());
            if body.is_empty() {
                return;
            }
            queue.push_back(plan.rewrite_completion(&body).unwrap_or(body));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use serde_json::Value;

    async fn collect<B: Body<Data = Bytes>>(body: B) -> Vec<u8>
    where
        B::Error: std::fmt::Debug,
    {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    fn chunked(
        pieces: Vec<&'static [u8]>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        StreamBody::new(futures_util::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok(Frame::data(Bytes::from_static(p)))),
        ))
    }

    #[tokio::test]
    async fn stream_rewrites_split_events_and_keeps_others_byte_for_byte() {
        let plan = ResponsePlan {
            drop_note: true,
            tool_call_deltas: true,
            ..Default::default()
        };
        let body = chunked(vec![
            b": keep-alive\n\n",
            b"data: {\"id\":\"a\",\"note\":\"n\",\"choi",
            b"ces\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"id\":\"a\",\"choices\":[]}\n\n",
            b"data: [DONE]\n\n",
        ]);
        let out = collect(FixBody::stream(body, plan)).await;
        let text = String::from_utf8(out).unwrap();
        let events: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(events[0], ": keep-alive");
        let first: Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
        assert!(first.get("note").is_none());
        assert_eq!(first["choices"][0]["delta"]["content"], "hi");
        assert_eq!(events[2], "data: {\"id\":\"a\",\"choices\":[]}");
        assert_eq!(events[3], "data: [DONE]");
    }

    #[tokio::test]
    async fn events_that_arrive_together_leave_in_one_frame_and_none_waits() {
        let plan = ResponsePlan {
            drop_note: true,
            ..Default::default()
        };
        let body = chunked(vec![
            b"data: {\"id\":\"a\",\"note\":\"n\"}\n\ndata: {\"id\":\"b\"}\n\ndata: {\"id\":",
            b"\"c\"}\n\n",
            b"data: [DONE]\n\n",
        ]);
        assert_eq!(
            frames(FixBody::stream(body, plan)).await,
            [
                &b"data: {\"id\":\"a\"}\n\ndata: {\"id\":\"b\"}\n\n"[..],
                b"data: {\"id\":\"c\"}\n\n",
                b"data: [DONE]\n\n",
            ]
        );
    }

    async fn frames<B: Body<Data = Bytes>>(body: B) -> Vec<Bytes>
    where
        B::Error: std::fmt::Debug,
    {
        let mut body = std::pin::pin!(body);
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        frames
    }

    #[tokio::test]
    async fn unchanged_events_that_arrive_together_go_on_as_the_upstreams_bytes() {
        let plan = ResponsePlan {
            drop_note: true,
            tool_call_deltas: true,
            ..Default::default()
        };
        let chunk = Bytes::from(
            b"data: {\"id\":\"a\",\"choices\":[]}\n\n: ping\n\n\n\ndata: {\"id\":\"b\"}\n\ndata: [DONE]\n\n"
                .to_vec(),
        );
        let body = StreamBody::new(futures_util::stream::iter([Ok::<
            _,
            std::convert::Infallible,
        >(Frame::data(
            chunk.clone(),
        ))]));
        let out = frames(FixBody::stream(body, plan)).await;
        assert_eq!(out, std::slice::from_ref(&chunk));
        // The very bytes the upstream sent, not a copy of them.
        assert_eq!(out[0].as_ptr(), chunk.as_ptr());
    }

    #[tokio::test]
    async fn kept_replaced_and_left_out_events_in_one_chunk_keep_their_order() {
        let plan = ResponsePlan {
            drop_note: true,
            drop_usage: true,
            ..Default::default()
        };
        let body = chunked(vec![
            b"data: {\"id\":\"a\"}\n\ndata: {\"id\":\"b\",\"note\":\"n\"}\n\ndata: {\"id\":\"c\"}\n\ndata: {\"id\":\"u\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: {\"id\":\"d\"}\n\ndata: [DONE]\n\n",
        ]);
        let out = frames(FixBody::stream(body, plan)).await;
        assert_eq!(
            out,
            [Bytes::from_static(
                b"data: {\"id\":\"a\"}\n\ndata: {\"id\":\"b\"}\n\ndata: {\"id\":\"c\"}\n\ndata: {\"id\":\"d\"}\n\ndata: [DONE]\n\n"
            )]
        );
        // Left out after kept events, then kept again: the slice cannot grow over the gap.
        let plan = ResponsePlan {
            drop_usage: true,
            ..Default::default()
        };
        let body = chunked(vec![
            b"data: {\"id\":\"a\"}\n\ndata: {\"id\":\"u\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: {\"id\":\"d\"}\n\n",
        ]);
        let out = frames(FixBody::stream(body, plan)).await;
        assert_eq!(
            out,
            [Bytes::from_static(
                b"data: {\"id\":\"a\"}\n\ndata: {\"id\":\"d\"}\n\n"
            )]
        );
    }

    #[tokio::test]
    async fn json_answer_is_rewritten_once_at_the_end() {
        let plan = ResponsePlan {
            drop_note: true,
            stop: vec!["<end>".into()],
            ..Default::default()
        };
        let body = chunked(vec![
            b"{\"id\":\"x\",\"note\":\"n\",\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",",
            b"\"message\":{\"role\":\"assistant\",\"content\":\"ok<end>\"}}]}",
        ]);
        let out: Value = serde_json::from_slice(&collect(FixBody::json(body, plan)).await).unwrap();
        assert!(out.get("note").is_none());
        assert_eq!(out["choices"][0]["message"]["content"], "ok");
    }

    #[tokio::test]
    async fn json_answer_in_one_frame_or_with_empty_frames() {
        let plan = ResponsePlan {
            drop_note: true,
            ..Default::default()
        };
        for pieces in [
            vec![&b"{\"id\":\"x\",\"note\":\"n\"}"[..]],
            vec![b"", b"{\"id\":\"x\",\"note\":\"n\"}", b""],
            vec![b"{\"id\":\"x\",", b"", b"\"note\":\"n\"}"],
        ] {
            let out = collect(FixBody::json(chunked(pieces.clone()), plan.clone())).await;
            assert_eq!(out, b"{\"id\":\"x\"}", "{pieces:?}");
        }
    }

    #[tokio::test]
    async fn unparseable_json_passes_unchanged() {
        let plan = ResponsePlan {
            drop_note: true,
            ..Default::default()
        };
        let out = collect(FixBody::json(chunked(vec![b"{\"note\": oops"]), plan)).await;
        assert_eq!(out, b"{\"note\": oops");
    }
}
