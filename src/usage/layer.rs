//! [`UsageLayer`]: admits each request against its key's budget, and when the response ends
//! charges its usage, counts it and logs the request.

use super::ledger::{Ledger, Refusal};
use super::log::{RequestLog, RequestLogEntry};
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
    /// Requests seen, for request ids.
    sequence: AtomicU64,
    /// Makes ids of different processes differ (the start time, in hex).
    id_prefix: String,
}

/// The labels of one [`Counters`]: model, key, route.
type CounterLabels = (SharedString, SharedString, &'static str);

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
                sequence: AtomicU64::new(0),
                id_prefix: format!("{started:x}"),
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
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let time = SystemTime::now();
        let slot = match req.extensions().get::<UsageSlot>() {
            Some(slot) => slot.clone(),
            None => {
                let slot = UsageSlot::new();
                req.extensions_mut().insert(slot.clone());
                slot
            }
        };
        let key: Arc<str> = req
            .extensions()
            .get::<ClientName>()
            .map_or_else(|| ANONYMOUS_NAME.clone(), |n| n.0.clone());
        let route = req.uri().path().to_owned();
        let shared = self.shared.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let budgeted = shared.ledger.has_budget(&key);
        Box::pin(async move {
            let mut record = Record {
                shared,
                started,
                time,
                key,
                route,
                slot,
                status: 0,
                model_called: None,
                fix_rules: Vec::new(),
                vision: VisionReport::default(),
                pending_vision: None,
                dropped: Vec::new(),
                stream: false,
                ttft_ms: None,
            };
            if budgeted {
                if let Err(refusal) = record.shared.ledger.admit(&record.key).await {
                    let response = refusal_response(refusal);
                    record.status = response.status().as_u16();
                    record.finish();
                    return Ok(response);
                }
            }
            let response = inner.call(req).await?;
            let (parts, body) = response.into_parts();
            record.at_headers(&parts);
            let body = if http_body::Body::is_end_stream(&body) {
                record.finish();
                body
            } else {
                Body::new(UsageBody {
                    inner: body,
                    record: Some(record),
                })
            };
            Ok(Response::from_parts(parts, body))
        })
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
    route: String,
    slot: UsageSlot,
    status: u16,
    model_called: Option<String>,
    fix_rules: Vec<&'static str>,
    vision: VisionReport,
    pending_vision: Option<PendingVisionReport>,
    dropped: Vec<String>,
    stream: bool,
    ttft_ms: Option<u64>,
}

impl Record {
    fn at_headers(&mut self, parts: &http::response::Parts) {
        let ext = &parts.extensions;
        self.status = parts.status.as_u16();
        self.model_called = ext.get::<ResolvedModel>().map(|m| m.0.clone());
        if let Some(fix) = ext.get::<FixReport>() {
            self.fix_rules.clone_from(&fix.rules);
        }
        self.vision = ext.get::<VisionReport>().copied().unwrap_or_default();
        self.pending_vision = ext.get::<PendingVisionReport>().cloned();
        if let Some(dropped) = parts.headers.get(DROPPED_HEADER) {
            if let Ok(text) = dropped.to_str() {
                self.dropped = text
                    .split(',')
                    .map(|d| d.trim().to_owned())
                    .filter(|d| !d.is_empty())
                    .collect();
            }
        }
        self.stream =
            crate::chat::BodyKind::of(&parts.headers) == Some(crate::chat::BodyKind::EventStream);
    }

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
            let (charged, currency) = shared.ledger.charge(&self.key, model, usage.as_ref());
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
        let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
        shared.log.push(RequestLogEntry {
            id: format!("{}-{sequence}", shared.id_prefix),
            time: crate::health::rfc3339(self.time),
            key: self.key.to_string(),
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
    key: &str,
    model: &str,
    usage: Option<&super::Usage>,
    cost: f64,
    currency: Option<&str>,
) {
    let model = shared.models.label(model);
    let key = shared.keys.label(key);
    let counters = {
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
    };
    counters.add(usage, cost, currency);
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
