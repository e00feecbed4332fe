//! The response body wrapper that records a request when its body ends or is dropped.

use super::handles::ModelHandles;
use super::layer::{Route, Shared};
use super::monitor::{Outcome, RequestRecord};
use super::names;
use crate::cascade::PendingVisionReport;
use crate::extensions::{ErrorKind, FixReport, ResolvedModel, UpstreamTiming, VisionReport};
use crate::usage::UsageSlot;
use bytes::Buf;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

/// What is known about a request once its response headers are out; recorded in full when
/// the body ends.
pub(crate) struct Finish {
    started: Instant,
    route: Route,
    shared: Arc<Shared>,
    status: StatusCode,
    stream: bool,
    /// When the first byte of a stream went out.
    first_byte: Option<Duration>,
    image: bool,
    cache_hits: u32,
    cache_misses: u32,
    model: Option<Arc<ModelHandles>>,
    fix_rules: Vec<&'static str>,
    error_kind: Option<&'static str>,
    /// The `x-hunyuan-proxy-dropped` header, for the monitor.
    dropped: Option<Box<str>>,
    /// Where the upstream's `usage` is put as the answer passes (by the
    /// [`Upstream`](crate::upstream::Upstream)); read when the body ends.
    usage: Option<UsageSlot>,
    /// The cascade's report of a stream committed before its images were described: read
    /// when the body ends.
    pending_vision: Option<PendingVisionReport>,
}

impl Finish {
    /// Reads the response's extensions and records what is known at headers time.
    pub(crate) fn at_headers(
        started: Instant,
        route: Route,
        shared: Arc<Shared>,
        parts: &http::response::Parts,
        usage: Option<UsageSlot>,
    ) -> Self {
        let elapsed = started.elapsed();
        let ext = &parts.extensions;
        let vision = ext.get::<VisionReport>().copied().unwrap_or_default();
        // A stream the cascade committed early: its images are still being described, so its
        // vision time and upstream time are not known yet.
        let pending_vision = ext.get::<PendingVisionReport>().cloned();
        let upstream = ext.get::<UpstreamTiming>().map(|t| t.time_to_headers);
        let model = ext.get::<ResolvedModel>().map(|m| shared.models.get(&m.0));
        let error_kind = ext.get::<ErrorKind>().map(|k| k.0);
        let fix_rules = ext
            .get::<FixReport>()
            .map(|r| r.rules.clone())
            .unwrap_or_default();
        let stream =
            crate::chat::BodyKind::of(&parts.headers) == Some(crate::chat::BodyKind::EventStream);
        let dropped = parts
            .headers
            .get(crate::ingress::DROPPED_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(Box::from);

        // A failed upstream call leaves no timing: its time cannot be told apart, so it is
        // not recorded as overhead.
        if pending_vision.is_none() && (upstream.is_some() || model.is_none()) {
            let overhead = elapsed
                .saturating_sub(upstream.unwrap_or_default())
                .saturating_sub(vision.vision_time);
            route.handles.overhead().record(overhead.as_secs_f64());
        }
        if let Some(model) = &model {
            model.calls(parts.status).increment(1);
            if let Some(upstream) = upstream {
                model.upstream_duration().record(upstream.as_secs_f64());
            }
        }
        if let Some(kind) = error_kind {
            metrics::counter!(names::ERRORS, "kind" => kind).increment(1);
        }
        for rule in &fix_rules {
            metrics::counter!(names::FIX_RULES, "rule" => *rule).increment(1);
        }
        record_vision(&vision);
        Finish {
            started,
            route,
            shared,
            status: parts.status,
            stream,
            first_byte: None,
            image: vision.images > 0 || pending_vision.is_some(),
            cache_hits: u32::try_from(vision.cache_hits).unwrap_or(u32::MAX),
            cache_misses: u32::try_from(vision.cache_misses).unwrap_or(u32::MAX),
            model,
            fix_rules,
            error_kind,
            dropped,
            usage,
            pending_vision,
        }
    }

    /// The inner service failed instead of answering.
    pub(crate) fn service_error(started: Instant, route: Route, shared: Arc<Shared>) {
        metrics::counter!(names::ERRORS, "kind" => "service_error").increment(1);
        let mut finish = Self::bare(started, route, shared, StatusCode::INTERNAL_SERVER_ERROR);
        finish.error_kind = Some("service_error");
        finish.record(Outcome::ServerError);
    }

    /// The request was dropped before the inner service answered.
    pub(crate) fn cancelled(started: Instant, route: Route, shared: Arc<Shared>) {
        Self::bare(started, route, shared, StatusCode::OK).record(Outcome::Aborted);
    }

    fn bare(started: Instant, route: Route, shared: Arc<Shared>, status: StatusCode) -> Self {
        Finish {
            started,
            route,
            shared,
            status,
            stream: false,
            first_byte: None,
            image: false,
            cache_hits: 0,
            cache_misses: 0,
            model: None,
            fix_rules: Vec::new(),
            error_kind: None,
            dropped: None,
            usage: None,
            pending_vision: None,
        }
    }

    /// Notes a data frame: time to first byte of streams.
    fn on_data(&mut self) {
        if self.stream && self.first_byte.is_none() {
            let elapsed = self.started.elapsed();
            self.first_byte = Some(elapsed);
            self.route
                .handles
                .time_to_first_byte()
                .record(elapsed.as_secs_f64());
        }
    }

    /// Records the request's end.
    fn record(mut self, outcome: Outcome) {
        if let Some(vision) = self.pending_vision.take().and_then(|p| p.0.get().copied()) {
            record_vision(&vision);
            self.cache_hits = u32::try_from(vision.cache_hits).unwrap_or(u32::MAX);
            self.cache_misses = u32::try_from(vision.cache_misses).unwrap_or(u32::MAX);
        }
        let duration = self.started.elapsed();
        let route = &self.route.handles;
        route.in_flight().decrement(1.0);
        route.requests(self.status, outcome).increment(1);
        route.duration(self.image).record(duration.as_secs_f64());
        let usage = self.usage.as_ref().and_then(UsageSlot::usage);
        if let (Some(usage), Some(model)) = (usage, &self.model) {
            if self.status.is_success() {
                model.tokens(false).increment(usage.input_tokens);
                model.tokens(true).increment(usage.output_tokens);
            }
        }
        if self.route.monitored {
            if let Some(monitor) = &self.shared.monitor {
                monitor.record(&RequestRecord {
                    duration,
                    outcome: Some(outcome),
                    image: self.image,
                    cache_hits: self.cache_hits,
                    cache_misses: self.cache_misses,
                    model: self.model.as_ref().map(|m| &*m.name),
                    fix_rules: &self.fix_rules,
                    error_kind: self.error_kind,
                    time_to_first_byte: self.first_byte,
                    dropped: self.dropped.as_deref(),
                });
            }
        }
    }
}

/// Counts what the cascade did: vision calls, cache hits and misses, vision time.
fn record_vision(vision: &VisionReport) {
    if vision.images == 0 {
        return;
    }
    metrics::counter!(names::VISION_CALLS).increment(vision.cache_misses as u64);
    metrics::counter!(names::CACHE_HITS).increment(vision.cache_hits as u64);
    metrics::counter!(names::CACHE_MISSES).increment(vision.cache_misses as u64);
    if vision.vision_time > Duration::ZERO {
        metrics::histogram!(names::VISION_DURATION).record(vision.vision_time.as_secs_f64());
    }
}

pin_project! {
    /// The response body, recording the request when it ends (or is dropped early).
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        finish: Option<Finish>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Bodies that end are recorded in `poll_frame` (or at creation, when empty): one
            // still unrecorded here was dropped before its end.
            if let Some(finish) = this.finish.take() {
                finish.record(Outcome::Aborted);
            }
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B, finish: Finish) -> Self {
        if inner.is_end_stream() {
            // An empty body may never be polled: the request ends with its headers.
            let outcome = Outcome::from_status(finish.status);
            finish.record(outcome);
            return ResponseBody {
                inner,
                finish: None,
            };
        }
        ResponseBody {
            inner,
            finish: Some(finish),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("finished", &self.finish.is_none())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll_frame(cx));
        match &result {
            Some(Ok(frame)) => {
                if let (Some(finish), Some(data)) = (this.finish.as_mut(), frame.data_ref()) {
                    if data.has_remaining() {
                        finish.on_data();
                    }
                }
                if this.inner.is_end_stream() {
                    if let Some(finish) = this.finish.take() {
                        let outcome = Outcome::from_status(finish.status);
                        finish.record(outcome);
                    }
                }
            }
            Some(Err(_)) => {
                if let Some(finish) = this.finish.take() {
                    finish.record(Outcome::ServerError);
                }
            }
            None => {
                if let Some(finish) = this.finish.take() {
                    let outcome = Outcome::from_status(finish.status);
                    finish.record(outcome);
                }
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
