//! [`UsageLayer`]: admits each request against its key's budget, and when its answer is known
//! (the head of a whole answer, the end of a stream) charges its usage, counts it and logs the
//! request.

use super::ledger::{Ledger, Refusal};
use super::log::{LogTime, RequestId, RequestLog, RequestLogEntry};
use super::names;
use super::{UsageConfig, UsageSlot};
use crate::auth::ClientName;
use crate::cascade::PendingVisionReport;
use crate::error::ProxyError;
use crate::extensions::{FixReport, ResolvedModel, VisionReport};
use crate::ingress::DROPPED_HEADER;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Request;
use http_body::Frame;
use metrics::SharedString;
use pin_project_lite::pin_project;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tower_layer::Layer;
use tower_service::Service;

/// The key name of requests without a client key (no client keys configured).
pub const ANONYMOUS: &str = "anonymous";

/// [`ANONYMOUS`], made once.
static ANONYMOUS_NAME: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from(ANONYMOUS));

/// Accounting, budgets and the request log for the routes it wraps. Put it after the
/// [`ClientAuthLayer`](crate::auth::ClientAuthLayer) (it reads [`ClientName`]); see the
/// [module docs](super).
#[derive(Clone)]
pub struct UsageLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for UsageLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageLayer")
            .field("ledger", &self.shared.ledger)
            .field("log", &self.shared.log)
            .finish_non_exhaustive()
    }
}

struct Shared {
    ledger: Arc<Ledger>,
    log: Arc<RequestLog>,
    models: Labels,
    keys: Labels,
    /// Counter handles by (model, key, route) labels, bounded by the label limits.
    counters: Mutex<HashMap<CounterLabels, Arc<Counters>>>,
    /// The same handles by the key's and the model's own names and the route: found with one
    /// lock and one hash per request (at most [`MAX_NAMED_COUNTERS`]).
    by_name: Mutex<super::NameMap<Arc<str>, Vec<NamedCounters>>>,
    /// Requests seen, for request ids.
    sequence: AtomicU64,
    /// Makes ids of different processes differ (the start time, in hex).
    id_prefix: Arc<str>,
}

/// The labels of one [`Counters`]: model, key, route.
type CounterLabels = (SharedString, SharedString, &'static str);

/// A key's counters of one model and route, by the model's own name.
type NamedCounters = (Box<str>, &'static str, Arc<Counters>);

/// Handles kept by name; past it, further names take the labels' way (three locks).
const MAX_NAMED_COUNTERS: usize = 4096;

/// A bounded set of label values: the first `limit` distinct ones are named, the rest are
/// `other`.
struct Labels {
    kind: &'static str,
    limit: usize,
    seen: Mutex<HashSet<SharedString>>,
}

impl Labels {
    fn new(kind: &'static str, limit: usize) -> Self {
        Labels {
            kind,
            limit,
            seen: Mutex::new(HashSet::new()),
        }
    }

    fn label(&self, value: &str) -> SharedString {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = seen.get(value) {
            return known.clone();
        }
        if seen.len() >= self.limit {
            metrics::counter!(names::USAGE_LABEL_OVERFLOW, "label" => self.kind).increment(1);
            return SharedString::const_str("other");
        }
        let label = SharedString::from_shared(Arc::from(value));
        seen.insert(label.clone());
        label
    }
}

impl UsageLayer {
    /// A layer charging `ledger` and logging into `log`.
    pub fn new(ledger: Arc<Ledger>, log: Arc<RequestLog>, config: &UsageConfig) -> Self {
        names::describe();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        UsageLayer {
            shared: Arc::new(Shared {
                ledger,
                log,
                models: Labels::new("model", config.label_limit),
                keys: Labels::new("key", config.label_limit),
                counters: Mutex::new(HashMap::new()),
                by_name: Mutex::new(super::NameMap::default()),
                sequence: AtomicU64::new(0),
                id_prefix: Arc::from(format!("{started:x}")),
            }),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.shared.ledger
    }

    /// The request log.
    pub fn log(&self) -> &Arc<RequestLog> {
        &self.shared.log
    }
}

impl<S> Layer<S> for UsageLayer {
    type Service = UsageService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`UsageLayer`].
#[derive(Clone)]
pub struct UsageService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for UsageService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for UsageService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let record = Record::start(&self.shared, &mut req);
        let state = match self.shared.ledger.admit_in_process(&record.key) {
            // No budget, or one in the process: decided here, and the inner service called
            // at once (no clone of it, no boxed future).
            Some(Ok(())) => State::Called {
                inner: self.inner.call(req),
                record: Some(record),
            },
            Some(Err(refusal)) => State::Ready {
                response: Some(record.refuse(refusal)),
            },
            // A budget kept in Redis: one round trip before the inner service is called.
            None => {
                // The inner service was made ready by `poll_ready`: keep that one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                State::Admitting {
                    future: Box::pin(async move {
                        let admitted = record.shared.ledger.admit(&record.key).await;
                        if let Err(refusal) = admitted {
                            return Ok(record.refuse(refusal));
                        }
                        let response = inner.call(req).await?;
                        Ok(record.respond(response))
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The future of [`UsageService`]: the inner service's, recording the response's head.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Called { #[pin] inner: F, record: Option<Record> },
        Ready { response: Option<Response> },
        Admitting { future: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E> std::future::Future for ResponseFuture<F, E>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { inner, record } => {
                let response = ready!(inner.poll(cx))?;
                Poll::Ready(Ok(match record.take() {
                    Some(record) => record.respond(response),
                    None => response,
                }))
            }
            StateProj::Ready { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            StateProj::Admitting { future } => future.as_mut().poll(cx),
        }
    }
}

/// A spent budget as a 429 naming it and when it resets (with `Retry-After`), or the closed
/// mode's 503.
fn refusal_response(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Budget(refusal) => {
            let state = &refusal.state;
            metrics::counter!(names::BUDGET_REFUSALS, "budget" => state.budget.as_str())
                .increment(1);
            ProxyError::RateLimited {
                message: format!(
                    "the {} budget of key `{}` is spent ({} of {}); it resets at {}",
                    state.budget.as_str(),
                    refusal.key,
                    state.used,
                    state.limit,
                    state.resets_at
                ),
                retry_after: Some(state.resets_in),
            }
            .into_response()
        }
        Refusal::RedisClosed => crate::replica::Redis::refusal(),
    }
}

/// What is known of a request until its body ends.
struct Record {
    shared: Arc<Shared>,
    started: Instant,
    time: SystemTime,
    key: Arc<str>,
    route: Cow<'static, str>,
    slot: UsageSlot,
    status: u16,
    model_called: Option<String>,
    fix_rules: Vec<&'static str>,
    vision: VisionReport,
    pending_vision: Option<PendingVisionReport>,
    dropped: Vec<String>,
    /// Whether the body is a stream of events (whose first one is timed).
    stream: bool,
    ttft_ms: Option<u64>,
}

impl Record {
    /// Starts the record of `req`, giving it a [`UsageSlot`] if it has none.
    fn start<B>(shared: &Arc<Shared>, req: &mut Request<B>) -> Self {
        let started = Instant::now();
        let slot = match req.extensions().get::<UsageSlot>() {
            Some(slot) => slot.clone(),
            None => {
                let slot = UsageSlot::new();
                req.extensions_mut().insert(slot.clone());
                slot
            }
        };
        let key = req
            .extensions()
            .get::<ClientName>()
            .map_or_else(|| ANONYMOUS_NAME.clone(), |n| n.0.clone());
        Record {
            shared: shared.clone(),
            started,
            time: SystemTime::now(),
            key,
            route: route_path(req.uri().path()),
            slot,
            status: 0,
            model_called: None,
            fix_rules: Vec::new(),
            vision: VisionReport::default(),
            pending_vision: None,
            dropped: Vec::new(),
            stream: false,
            ttft_ms: None,
        }
    }

    /// The refusal's response, the request recorded with its status.
    fn refuse(mut self, refusal: Refusal) -> Response {
        let response = refusal_response(refusal);
        self.status = response.status().as_u16();
        self.finish();
        response
    }

    /// Reads the response's head; a whole answer (a body of known size: the upstream's answer
    /// was read whole, so its usage is known) is recorded now, a stream when its body ends or
    /// is dropped.
    fn respond(mut self, response: Response) -> Response {
        self.at_headers(&response);
        let body = response.body();
        let whole = http_body::Body::size_hint(body).exact().is_some();
        if !whole && !http_body::Body::is_end_stream(body) {
            // Time to first token: of a stream of events only.
            self.stream = crate::chat::BodyKind::of(response.headers())
                == Some(crate::chat::BodyKind::EventStream);
            response.map(|inner| {
                Body::new(UsageBody {
                    inner,
                    record: Some(self),
                })
            })
        } else {
            self.finish();
            response
        }
    }

    /// Takes what the response's head says.
    fn at_headers(&mut self, response: &Response) {
        let ext = response.extensions();
        self.status = response.status().as_u16();
        self.model_called = ext.get::<ResolvedModel>().map(|m| m.0.clone());
        if let Some(fix) = ext.get::<FixReport>() {
            self.fix_rules.clone_from(&fix.rules);
        }
        self.vision = ext.get::<VisionReport>().copied().unwrap_or_default();
        self.pending_vision = ext.get::<PendingVisionReport>().cloned();
        let headers = response.headers();
        // What was dropped is shown only in the log.
        let dropped = match self.shared.log.is_on() {
            true => headers.get(DROPPED_HEADER),
            false => None,
        };
        if let Some(dropped) = dropped {
            if let Ok(text) = dropped.to_str() {
                self.dropped = text
                    .split(',')
                    .map(|d| d.trim().to_owned())
                    .filter(|d| !d.is_empty())
                    .collect();
            }
        }
    }

    /// A data frame of the stream passed.
    fn on_data(&mut self) {
        if self.stream && self.ttft_ms.is_none() {
            self.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    /// Charges, counts and logs the request.
    fn finish(mut self) {
        if let Some(vision) = self.pending_vision.take().and_then(|p| p.0.get().copied()) {
            self.vision = vision;
        }
        let contents = self.slot.take_contents();
        let usage = contents.usage;
        let shared = &self.shared;
        // An upstream answer: usage reported, or a success without it (counted as missing).
        let answered = usage.is_some() || (self.model_called.is_some() && self.status < 400);
        let mut cost = 0.0;
        if let (true, Some(model)) = (answered, &self.model_called) {
            let (charged, currency) =
                shared
                    .ledger
                    .charge_at(&self.key, model, usage.as_ref(), self.time);
            cost = charged;
            count(
                shared,
                route_label(&self.route),
                &self.key,
                model,
                usage.as_ref(),
                cost,
                currency,
            );
        }
        if !shared.log.is_on() {
            return;
        }
        let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
        shared.log.push(RequestLogEntry {
            id: RequestId {
                prefix: shared.id_prefix.clone(),
                sequence,
            },
            time: LogTime(self.time),
            key: self.key,
            route: self.route,
            model_requested: contents.model_requested,
            model_called: self.model_called,
            status: self.status,
            latency_ms: self.started.elapsed().as_millis() as u64,
            ttft_ms: self.ttft_ms,
            input_tokens: usage.map(|u| u.input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
            cached_input_tokens: usage.map(|u| u.cached_input_tokens),
            reasoning_tokens: usage.map(|u| u.reasoning_tokens),
            cost,
            images_described: self.vision.cache_misses as u64,
            images_cached: self.vision.cache_hits as u64,
            fix_rules: self.fix_rules,
            dropped: self.dropped,
            upstream_request_id: contents.upstream_request_id,
        });
    }
}

/// The path as the log shows it: the API's own paths without a copy.
fn route_path(path: &str) -> Cow<'static, str> {
    const PATHS: [&str; 12] = [
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/messages",
        "/messages",
        "/v1/responses",
        "/responses",
        "/v1/completions",
        "/completions",
        "/v1/messages/count_tokens",
        "/messages/count_tokens",
        "/v1/models",
        "/models",
    ];
    match PATHS.iter().find(|known| **known == path) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(path.to_owned()),
    }
}

/// The route label: the API family of a path (bounded, whatever the path holds).
fn route_label(path: &str) -> &'static str {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    if path.starts_with("/chat/completions") {
        "chat"
    } else if path.starts_with("/completions") {
        "completions"
    } else if path.starts_with("/messages") {
        "messages"
    } else if path.starts_with("/responses") {
        "responses"
    } else {
        "other"
    }
}

/// Adds one answered call to the Prometheus counters (their handles looked up once per
/// model, key and route, then kept).
fn count(
    shared: &Shared,
    route: &'static str,
    key: &Arc<str>,
    model: &str,
    usage: Option<&super::Usage>,
    cost: f64,
    currency: Option<&str>,
) {
    {
        let by_name = shared
            .by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let found = by_name.get(&**key).and_then(|counters| {
            counters
                .iter()
                .find(|(m, r, _)| **m == *model && *r == route)
        });
        if let Some((_, _, counters)) = found {
            counters.add(usage, cost, currency);
            return;
        }
    }
    let counters = counters_of(shared, route, key, model);
    counters.add(usage, cost, currency);
    let mut by_name = shared
        .by_name
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if by_name.values().map(Vec::len).sum::<usize>() < MAX_NAMED_COUNTERS {
        by_name
            .entry(key.clone())
            .or_default()
            .push((Box::from(model), route, counters));
    }
}

/// The counters of a key, model and route, by their (bounded) labels.
fn counters_of(shared: &Shared, route: &'static str, key: &str, model: &str) -> Arc<Counters> {
    let model = shared.models.label(model);
    let key = shared.keys.label(key);
    {
        let mut table = shared
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let id = (model, key, route);
        match table.get(&id) {
            Some(counters) => counters.clone(),
            None => {
                let counters = Arc::new(Counters::new(&id.0, &id.1, route));
                table.insert(id, counters.clone());
                counters
            }
        }
    }
}

/// Counts the image describer's call to `model` (route and key `vision`; the model is the
/// configured vision model, so the label set stays bounded): its tokens are the account's
/// spending, not a client key's.
pub fn count_vision(model: &str, usage: Option<&super::Usage>) {
    let model = SharedString::from_shared(Arc::from(model));
    Counters::new(&model, &SharedString::const_str("vision"), "vision").add(usage, 0.0, None);
}

/// The usage counters of one model, key and route.
struct Counters {
    model: SharedString,
    key: SharedString,
    reported: metrics::Counter,
    missing: metrics::Counter,
    /// Input, output, cached input, reasoning.
    tokens: [metrics::Counter; 4],
    /// Made at the first priced call (the currency comes with the price).
    cost: std::sync::OnceLock<metrics::Counter>,
}

impl Counters {
    fn new(model: &SharedString, key: &SharedString, route: &'static str) -> Self {
        let requests = |usage: &'static str| {
            metrics::counter!(names::USAGE_REQUESTS, "model" => model.clone(),
                "key" => key.clone(), "route" => route, "usage" => usage)
        };
        let tokens = |kind: &'static str| {
            metrics::counter!(names::USAGE_TOKENS, "model" => model.clone(),
                "key" => key.clone(), "route" => route, "kind" => kind)
        };
        Counters {
            model: model.clone(),
            key: key.clone(),
            reported: requests("reported"),
            missing: requests("missing"),
            tokens: [
                tokens("input"),
                tokens("output"),
                tokens("cached_input"),
                tokens("reasoning"),
            ],
            cost: std::sync::OnceLock::new(),
        }
    }

    fn add(&self, usage: Option<&super::Usage>, cost: f64, currency: Option<&str>) {
        let Some(usage) = usage else {
            self.missing.increment(1);
            return;
        };
        self.reported.increment(1);
        let [input, output, cached, reasoning] = &self.tokens;
        input.increment(usage.input_tokens);
        output.increment(usage.output_tokens);
        cached.increment(usage.cached_input_tokens);
        reasoning.increment(usage.reasoning_tokens);
        if let Some(currency) = currency {
            let counter = self.cost.get_or_init(|| {
                metrics::counter!(names::USAGE_COST, "model" => self.model.clone(),
                    "key" => self.key.clone(), "currency" => currency.to_owned())
            });
            // Counters take whole numbers: cost in millionths of the currency unit.
            counter.increment((cost * 1_000_000.0).round() as u64);
        }
    }
}

pin_project! {
    /// The response body, recording the request when it ends or is dropped.
    struct UsageBody {
        #[pin]
        inner: Body,
        record: Option<Record>,
    }

    impl PinnedDrop for UsageBody {
        fn drop(this: Pin<&mut Self>) {
            if let Some(record) = this.project().record.take() {
                record.finish();
            }
        }
    }
}

impl http_body::Body for UsageBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll_frame(cx));
        match &result {
            Some(Ok(frame)) if frame.is_data() => {
                if let Some(record) = this.record.as_mut() {
                    record.on_data();
                }
                if this.inner.is_end_stream() {
                    if let Some(record) = this.record.take() {
                        record.finish();
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                if let Some(record) = this.record.take() {
                    record.finish();
                }
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
