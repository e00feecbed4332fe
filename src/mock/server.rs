//! The server: routes, recording, faults, in-flight accounting and its own accept loop (so
//! that [`MockHunyuan::stop`] can close open connections, which graceful shutdown would wait
//! for).

use super::answer::{answer, Answer};
use super::tokenhub::{self, TokenHubMode};
use super::validate::{validate, Rejection, CODE_INVALID};
use super::{Fault, MockConfig, RecordedRequest, SentUsage};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

/// The largest request body the mock reads (images are sent inline).
const BODY_LIMIT: usize = 256 * 1024 * 1024;

/// A running mock Hunyuan (see the [module docs](super)).
///
/// The handle is cheap to clone; all clones see the same server. Dropping the handles does
/// **not** stop the server: it runs until [`stop`](Self::stop) is called or its tokio runtime
/// shuts down (the end of a `#[tokio::test]`).
#[derive(Clone)]
pub struct MockHunyuan {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MockHunyuan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHunyuan")
            .field("addr", &self.addr)
            .field("policy", &self.shared.config.policy)
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: MockConfig,
    requests: Mutex<Vec<RecordedRequest>>,
    /// The usage sent, by the model named in the request.
    usage_sent: Mutex<Vec<(String, SentUsage)>>,
    faults: Mutex<Faults>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    cancelled: AtomicUsize,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Faults {
    next: VecDeque<Fault>,
    always: Option<Fault>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MockHunyuan {
    /// Starts a mock with the default [`MockConfig`] on `127.0.0.1` and a free port.
    pub async fn start() -> MockHunyuan {
        Self::start_with(MockConfig::default()).await
    }

    /// Starts a stand-in for TokenHub ([`MockConfig::tokenhub`]) on `127.0.0.1` and a free port.
    pub async fn start_tokenhub() -> MockHunyuan {
        Self::start_with(MockConfig::tokenhub()).await
    }

    /// Starts a mock with `config` on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// When no port on `127.0.0.1` can be bound.
    pub async fn start_with(config: MockConfig) -> MockHunyuan {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
            .await
            .expect("bind the mock Hunyuan to 127.0.0.1:0")
    }

    /// Starts a mock with `config` on `addr`, e.g. the address of a mock that was
    /// [stopped](Self::stop), to test reconnecting to an upstream that comes back.
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockHunyuan> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            requests: Mutex::default(),
            usage_sent: Mutex::default(),
            faults: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            shutdown,
            task: Mutex::new(None),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(shared.clone(), record))
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let task = tokio::spawn(serve(listener, router, stopped));
        *lock(&shared.task) = Some(task);
        Ok(MockHunyuan { addr, shared })
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL of the mock: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The configuration the mock runs with.
    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }

    /// Every request received so far (any route, any outcome), in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The JSON bodies of the `POST /v1/chat/completions` requests received so far, in order
    /// (bodies that were not JSON are left out).
    pub fn chat_requests(&self) -> Vec<Value> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.method == http::Method::POST && r.path == "/v1/chat/completions")
            .filter_map(|r| r.body.clone())
            .collect()
    }

    /// The `usage` of every answer sent whole so far (JSON bodies, and streams that carried a
    /// usage chunk; not answers a fault cut), each with the model the request named, in order.
    pub fn usage_sent(&self) -> Vec<(String, SentUsage)> {
        lock(&self.shared.usage_sent).clone()
    }

    /// How many requests were received so far (any route).
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Forgets the recorded requests and usage (the counters of [`in_flight`](Self::in_flight) and
    /// friends are kept).
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
        lock(&self.shared.usage_sent).clear();
    }

    /// Applies `fault` to every following chat request (`None`: no standing fault). Faults
    /// queued by [`fail_next`](Self::fail_next) go first.
    pub fn set_fault(&self, fault: Option<Fault>) {
        lock(&self.shared.faults).always = fault;
    }

    /// Applies `fault` to the next `n` chat requests, then behaves as before. Calls add up:
    /// `fail_next(1, a); fail_next(1, b)` fails one request with `a`, the next with `b`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        faults.next.extend(std::iter::repeat_n(fault, n));
    }

    /// Chat requests being served now. A request counts from its arrival until its response
    /// body was fully sent or dropped.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most chat requests served at the same time so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Starts counting [`max_in_flight`](Self::max_in_flight) afresh from the requests being
    /// served now (to measure one phase of a test on its own).
    pub fn reset_max_in_flight(&self) {
        self.shared
            .max_in_flight
            .store(self.in_flight(), Ordering::SeqCst);
    }

    /// Chat requests whose response was dropped before completion because the client went
    /// away (a [`Fault::Hang`] the client gave up on counts; a [`Fault::DropMidStream`] does
    /// not, the mock ended that one itself).
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Stops listening, closes every open connection (responses in progress end abruptly) and
    /// waits until the port is free. Other clones of the handle see a stopped server.
    pub async fn stop(self) {
        self.shared.shutdown.send_replace(true);
        let task = lock(&self.shared.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Accepts connections until shutdown, then aborts them all.
async fn serve(listener: TcpListener, router: Router, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let stop = async move {
        // An error means every sender is gone: stop as well.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: give the system a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                // Answers go out as soon as they are written, like a real server's.
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        router.clone().oneshot(request)
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Records every request (buffering its body) before routing it.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&bytes).ok(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A Hunyuan-style envelope for the statuses whose real body is unknown (assumption A).
fn envelope(status: StatusCode, message: &str, seed: &[u8]) -> Rejection {
    Rejection::new(
        status,
        "runtime_error",
        status.as_str(),
        message.to_owned(),
        seed,
    )
}

/// A fault's answer: TokenHub's envelope and text in TokenHub mode, else Hunyuan's envelope
/// with `message`.
fn fault_envelope(shared: &Shared, status: StatusCode, message: &str, seed: &[u8]) -> Rejection {
    if shared.config.tokenhub.is_some() {
        tokenhub::tokenhub_rejection(status, tokenhub::fault_message(status), seed)
    } else {
        envelope(status, message, seed)
    }
}

impl Shared {
    fn next_fault(&self) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        faults.next.pop_front().or_else(|| faults.always.clone())
    }

    fn authorize(&self, headers: &HeaderMap, seed: &[u8]) -> Result<(), Rejection> {
        let key = bearer_key(headers);
        match (key, &self.config.api_key) {
            (Some(key), Some(expected)) if key == expected => Ok(()),
            (Some(_), None) => Ok(()),
            _ if self.config.tokenhub.is_some() => Err(tokenhub::tokenhub_rejection(
                StatusCode::UNAUTHORIZED,
                tokenhub::MSG_INVALID_KEY,
                seed,
            )),
            _ => Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "401",
                "鉴权失败，请检查 API Key 是否正确",
                seed,
            )),
        }
    }
}

/// The bearer key of a request, when it has a non-empty one.
fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Any other route (`/v1/responses`, `/v1/embeddings`…): 404 with an envelope (text assumed).
async fn not_found(request: Request) -> Response {
    let message = format!("不支持的接口: {}", request.uri().path());
    envelope(StatusCode::NOT_FOUND, &message, message.as_bytes()).into_response()
}

/// `GET /v1/models`.
async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(rejection) = shared.authorize(&headers, b"models") {
        return rejection.into_response();
    }
    let data: Vec<Value> = shared
        .config
        .models
        .iter()
        .map(|id| {
            let mut model = json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "tencent"});
            if let Some(mode) = &shared.config.tokenhub {
                let offline = mode.offline_models.iter().any(|m| m == id);
                model["status"] = json!(if offline { "offline" } else { "online" });
            }
            model
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `POST /v1/chat/completions`.
async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let guard = FlightGuard::new(shared.clone());
    let response = chat_response(&shared, &headers, &body).await;
    response.map(|inner| {
        Body::new(Tracked {
            inner,
            guard: Some(guard),
        })
    })
}

async fn chat_response(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut drop_after = None;
    let mut close_delimited = false;
    let key_fault = bearer_key(headers).and_then(|key| {
        shared
            .config
            .key_faults
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, fault)| fault.clone())
    });
    let model_fault = || {
        if shared.config.model_faults.is_empty() {
            return None;
        }
        let model = serde_json::from_slice::<Value>(body).ok()?["model"]
            .as_str()?
            .to_owned();
        shared
            .config
            .model_faults
            .iter()
            .find(|(m, _)| *m == model)
            .map(|(_, fault)| fault.clone())
    };
    match key_fault
        .or_else(model_fault)
        .or_else(|| shared.next_fault())
    {
        None => {}
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = fault_envelope(
                shared,
                StatusCode::TOO_MANY_REQUESTS,
                "请求过于频繁，请稍后再试",
                body,
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        Some(Fault::ServerError) => {
            return fault_envelope(
                shared,
                StatusCode::INTERNAL_SERVER_ERROR,
                "服务内部错误，请稍后重试",
                body,
            )
            .into_response();
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return fault_envelope(shared, status, &format!("mock fault: status {code}"), body)
                .into_response();
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::DropMidStream { after_events }) => drop_after = Some(after_events),
        Some(Fault::CloseDelimitedCut { after_events }) => {
            drop_after = Some(after_events);
            close_delimited = true;
        }
    }

    if let Err(rejection) = shared.authorize(headers, body) {
        return rejection.into_response();
    }
    if let Some(mode) = &shared.config.tokenhub {
        return tokenhub_chat(shared, mode, body, drop_after, close_delimited);
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            return Rejection::new(
                StatusCode::BAD_REQUEST,
                "runtime_error",
                super::CODE_BAD_FORMAT,
                super::MSG_BAD_FORMAT,
                body,
            )
            .into_response()
        }
    };
    let policy = shared.config.policy;
    if let Err(rejection) = validate(&request, policy) {
        return rejection.into_response();
    }
    let model = request["model"].as_str().unwrap_or_default();
    if !shared.config.models.iter().any(|m| m == model) {
        return Rejection::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            CODE_INVALID,
            format!("model 参数错误，模型 {model} 不存在"),
            body,
        )
        .into_response();
    }

    let answer = answer(&request, policy);
    answer_response(shared, &request, &answer, drop_after, close_delimited)
}

/// A chat request in TokenHub mode, after the faults and the key: TokenHub's rules, then the
/// model's answer.
fn tokenhub_chat(
    shared: &Shared,
    mode: &TokenHubMode,
    body: &[u8],
    drop_after: Option<usize>,
    close_delimited: bool,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return tokenhub::tokenhub_rejection(
            StatusCode::BAD_REQUEST,
            "invalid request body: not JSON",
            body,
        )
        .into_response();
    };
    let model = request["model"].as_str().unwrap_or_default();
    let refusal = if model.is_empty() {
        None
    } else if !shared.config.models.iter().any(|m| m == model) {
        Some((
            StatusCode::BAD_REQUEST,
            format!("invalid parameter 'model': model `{model}` does not exist"),
        ))
    } else if mode.offline_models.iter().any(|m| m == model) {
        Some((
            StatusCode::BAD_REQUEST,
            format!("invalid parameter 'model': model `{model}` is not online"),
        ))
    } else if mode.disabled_models.iter().any(|m| m == model) {
        Some((
            StatusCode::PAYMENT_REQUIRED,
            tokenhub::MSG_NOT_ENABLED.to_owned(),
        ))
    } else {
        None
    };
    if let Some((status, message)) = refusal {
        return tokenhub::tokenhub_rejection(status, message, body).into_response();
    }
    if let Err(rejection) = tokenhub::validate_tokenhub(&request) {
        return rejection.into_response();
    }
    let answer = tokenhub::answer(&request);
    answer_response(shared, &request, &answer, drop_after, close_delimited)
}

/// The answer as JSON or SSE, as the request asked, with the fault's cut applied.
fn answer_response(
    shared: &Shared,
    request: &Value,
    answer: &Answer,
    drop_after: Option<usize>,
    close_delimited: bool,
) -> Response {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    if drop_after.is_none() && (!stream || answer.usage_chunk) {
        lock(&shared.usage_sent).push((answer.model.clone(), answer.sent_usage()));
    }
    let mut response = if stream {
        stream_response(
            answer.events(created),
            drop_after.filter(|_| !close_delimited),
            shared.config.chunk_delay,
        )
    } else {
        json_response(
            Bytes::from(answer.completion(created).to_string()),
            drop_after.filter(|_| !close_delimited),
        )
    };
    if close_delimited {
        close_delimited_cut(&mut response, drop_after.unwrap_or_default());
    }
    response
}

/// Turns a whole answer into a [`Fault::CloseDelimitedCut`] one: HTTP/1.0 (so hyper ends the
/// body by closing the connection), `Connection: close`, no length, and the body cut to
/// `after_events` SSE events or, for JSON, half its bytes.
fn close_delimited_cut(response: &mut Response, after_events: usize) {
    let stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = std::mem::take(response.body_mut());
    *response.body_mut() = Body::from_stream(futures_util::stream::once(async move {
        let whole = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = if stream {
            let mut end = 0;
            for _ in 0..after_events {
                match memchr::memmem::find(&whole[end..], b"\n\n") {
                    Some(at) => end += at + 2,
                    None => break,
                }
            }
            whole.slice(..end)
        } else {
            whole.slice(..whole.len() / 2)
        };
        Ok::<_, std::io::Error>(cut)
    }));
    *response.version_mut() = http::Version::HTTP_10;
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// An SSE answer; with `drop_after`, the connection is aborted after that many events.
fn stream_response(
    mut events: Vec<Bytes>,
    drop_after: Option<usize>,
    delay: std::time::Duration,
) -> Response {
    let aborted = drop_after.is_some_and(|after| after < events.len());
    if let Some(after) = drop_after {
        events.truncate(after);
    }
    let events = futures_util::stream::iter(events).then(move |event| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, std::io::Error>(event)
    });
    let body = if aborted {
        Body::from_stream(events.chain(futures_util::stream::once(abort_connection())))
    } else {
        Body::from_stream(events)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON answer; with `drop_after`, the headers announce the full length but only half the
/// body is sent before the connection is aborted.
fn json_response(json: Bytes, drop_after: Option<usize>) -> Response {
    let length = json.len();
    let body = match drop_after {
        None => Body::from(json),
        Some(_) => {
            let half = json.slice(..length / 2);
            let half = futures_util::stream::once(async move { Ok(half) });
            Body::from_stream(half.chain(futures_util::stream::once(abort_connection())))
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// The body error that makes hyper abort the connection ([`Fault::DropMidStream`]).
///
/// It comes after a short pause: hyper flushes what it has buffered (the headers, the events
/// before) only when the body is pending, and would otherwise close the connection with them
/// still unsent.
async fn abort_connection() -> Result<Bytes, std::io::Error> {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "mock fault: connection dropped",
    ))
}

/// Counts a chat request as in flight while alive; dropped unfinished, it counts as cancelled.
struct FlightGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl FlightGuard {
    fn new(shared: Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        FlightGuard {
            shared,
            finished: false,
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.shared.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds the request's [`FlightGuard`] until it ends or is dropped.
    struct Tracked {
        #[pin]
        inner: Body,
        guard: Option<FlightGuard>,
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let done = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if done {
            if let Some(mut guard) = this.guard.take() {
                guard.finished = true;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
