//! The upstream forwarding service: the end of every stack.
//!
//! [`Upstream`] sends the parsed [`ChatRequest`] to `{api_base}/chat/completions` over one
//! pooled reqwest client with the configured API key (the client's own `Authorization` is never
//! forwarded), and turns the answer into a response:
//!
//! - the upstream status is checked before anything is committed to the client;
//! - a streamed answer flows through chunk by chunk, never buffered; a stream that breaks
//!   midway ends with one `data: {"error":…}` event and no `[DONE]`, so clients raise instead of
//!   taking a cut answer for a complete one;
//! - Hunyuan's own 4xx envelope is passed on with its status; 5xx and connection failures
//!   become 502, silence past `request_timeout` becomes 504;
//! - fields that could redirect or re-key the upstream (`api_base`, `base_url`, `api_key`…)
//!   are stripped from the body;
//! - a request no layer changed goes out as the client's own bytes
//!   (kept in [`ParsedChat`](crate::chat::ParsedChat) while unchanged), any other is
//!   serialized once.
//!
//! At most `upstream_concurrency` requests are in flight at once; a streamed answer holds its
//! slot until its body ends or is dropped.
//!
//! ```
//! use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
//!
//! let upstream = Upstream::new(UpstreamConfig::new("http://127.0.0.1:9/v1")).unwrap();
//! assert_eq!(upstream.chat_url(), "http://127.0.0.1:9/v1/chat/completions");
//! ```

mod body;

pub use body::UpstreamBody;

use crate::chat::{self, ChatCompletion, ChatRequest, ParsedChat};
use crate::error::ProxyError;
use crate::secret::Secret;
use axum::body::Body;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How the upstream is reached.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL ending in `/v1`.
    pub api_base: String,
    /// The key sent as `Authorization: Bearer`.
    pub api_key: Option<Secret>,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time the upstream may stay silent: before its answer starts, and between stream chunks.
    pub read_timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Time allowed from sending a request until the upstream's answer starts (retries
    /// included).
    pub first_byte_timeout: Duration,
    /// Retries before the answer starts, on connection failures, 429 and 500/502/503/504.
    pub max_retries: u32,
    /// The first retry's backoff; each further retry doubles it (with jitter).
    pub retry_backoff: Duration,
    /// Requests that may wait for a free slot; past it callers get 429 at once.
    pub queue_size: usize,
    /// How long a request may wait for a free slot before it gets 429.
    pub queue_timeout: Duration,
}

impl UpstreamConfig {
    /// Defaults (10 s connect, 600 s read, 5 in flight) for `api_base`.
    pub fn new(api_base: impl Into<String>) -> Self {
        UpstreamConfig {
            api_base: api_base.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(600),
            concurrency: 5,
            first_byte_timeout: Duration::from_secs(600),
            max_retries: 2,
            retry_backoff: Duration::from_millis(250),
            queue_size: 256,
            queue_timeout: Duration::from_secs(60),
        }
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// Sets the read timeout.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the number of requests in flight at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets the time allowed until the answer starts.
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.first_byte_timeout = timeout;
        self
    }

    /// Sets the number of retries before the answer starts.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first retry's backoff.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets the wait queue's length and the longest wait in it.
    pub fn queue(mut self, size: usize, timeout: Duration) -> Self {
        self.queue_size = size;
        self.queue_timeout = timeout;
        self
    }
}

/// How long the upstream took, put into response extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTiming {
    /// From sending the request to the upstream's response headers.
    pub time_to_headers: Duration,
}

/// The model the upstream was asked for, put into response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel(pub String);

/// The upstream forwarding service. Cheap to clone (one shared pooled client).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    chat_url: String,
    /// `chat_url` parsed once: reqwest would parse a string on every request.
    chat_endpoint: reqwest::Url,
    models_url: String,
    auth: Option<HeaderValue>,
    read_timeout: Duration,
    first_byte_timeout: Duration,
    max_retries: u32,
    retry_backoff: Duration,
    queue_size: usize,
    queue_timeout: Duration,
    waiting: AtomicUsize,
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("chat_url", &self.inner.chat_url)
            .field("api_key", &self.inner.auth.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// An upstream that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the upstream client: {0}")]
pub struct UpstreamSetupError(String);

impl Upstream {
    /// Builds the pooled client.
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamSetupError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("hunyuan-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpstreamSetupError(e.to_string()))?;
        let auth = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| UpstreamSetupError("api_key holds invalid characters".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let base = config.api_base.trim_end_matches('/');
        let chat_url = format!("{base}/chat/completions");
        let chat_endpoint = reqwest::Url::parse(&chat_url)
            .map_err(|_| UpstreamSetupError("api_base is not a valid URL".into()))?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                client,
                chat_url,
                chat_endpoint,
                models_url: format!("{base}/models"),
                auth,
                read_timeout: config.read_timeout,
                first_byte_timeout: config.first_byte_timeout,
                max_retries: config.max_retries,
                retry_backoff: config.retry_backoff,
                queue_size: config.queue_size,
                queue_timeout: config.queue_timeout,
                waiting: AtomicUsize::new(0),
                slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
                capacity: config.concurrency.max(1),
            }),
        })
    }

    /// The chat-completions URL requests go to.
    pub fn chat_url(&self) -> &str {
        &self.inner.chat_url
    }

    /// The models URL (used by health probes).
    pub fn models_url(&self) -> &str {
        &self.inner.models_url
    }

    /// The shared pooled client, for other calls to the same upstream (health probes). It has
    /// a connect timeout but no read timeout of its own (the `Upstream` bounds its calls
    /// itself): give such calls a `timeout`.
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// The `Authorization` header value sent upstream, when a key is configured.
    pub fn auth_header(&self) -> Option<&HeaderValue> {
        self.inner.auth.as_ref()
    }

    /// Requests in flight to the upstream right now.
    pub fn in_flight(&self) -> usize {
        self.inner.capacity - self.inner.slots.available_permits()
    }

    /// Sends a non-streamed chat request and parses the answer (used by the image describer).
    pub async fn complete(&self, mut chat: ChatRequest) -> Result<ChatCompletion, ProxyError> {
        chat.stream = Some(false);
        chat.stream_options = None;
        let bytes = match self.send(&mut chat, None).await?.0 {
            Answer::Whole { body, .. } => body,
            // Asked for a whole answer, the upstream streamed anyway: read it whole.
            Answer::Stream(response, _permit) => {
                read_whole(response, self.inner.read_timeout).await?
            }
        };
        serde_json::from_slice(&bytes).map_err(|_| ProxyError::BadGateway {
            message: "the upstream sent an answer that is not a chat completion".into(),
        })
    }

    /// Requests waiting for a free upstream slot right now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a free upstream slot in the bounded queue. A caller that goes away while
    /// waiting leaves the queue (the future is dropped with its place).
    async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit, ProxyError> {
        if let Ok(permit) = self.inner.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _place = QueuePlace::take(&self.inner.waiting, self.inner.queue_size).ok_or_else(
            || {
                metrics::counter!("hunyuan_proxy_upstream_queue_rejections_total", "reason" => "full")
                    .increment(1);
                ProxyError::RateLimited {
                    message: "too many requests are waiting for the upstream; retry shortly".into(),
                    retry_after: Some(Duration::from_secs(1)),
                }
            },
        )?;
        match tokio::time::timeout(
            self.inner.queue_timeout,
            self.inner.slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ProxyError::Unavailable {
                message: "the proxy is shutting down".into(),
            }),
            Err(_) => {
                metrics::counter!("hunyuan_proxy_upstream_queue_rejections_total", "reason" => "timeout")
                    .increment(1);
                Err(ProxyError::RateLimited {
                    message: "waited too long for a free upstream slot; retry shortly".into(),
                    retry_after: Some(Duration::from_secs(1)),
                })
            }
        }
    }

    /// Sends `chat` and returns the upstream's successful answer: a stream holding its
    /// concurrency slot, or a whole body already read. Retries, before any byte of the answer
    /// can have reached the client, on connection failures, 429, 500/502/503/504 and a whole
    /// answer that broke off while being read, within `first_byte_timeout`.
    async fn send(
        &self,
        chat: &mut ChatRequest,
        raw: Option<Bytes>,
    ) -> Result<(Answer, UpstreamTiming), ProxyError> {
        let stripped = chat.strip_override_fields();
        // The client's own bytes when nobody changed the request and nothing had to be
        // stripped; otherwise the request serialized once.
        let body = match raw {
            Some(bytes) if stripped == 0 => bytes,
            _ => chat::to_json_bytes(chat),
        };
        let stream = chat.is_stream();
        let permit = self.acquire_slot().await?;
        let started = Instant::now();
        let deadline = started + self.inner.first_byte_timeout;
        let mut attempt: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // One timer bounds both the attempt's silence (`read_timeout`) and the time left
            // before the answer must start.
            let (limit, reported) = if self.inner.read_timeout < remaining {
                (self.inner.read_timeout, self.inner.read_timeout)
            } else {
                (remaining, self.inner.first_byte_timeout)
            };
            let request = self.build_request(body.clone(), stream);
            let outcome = match tokio::time::timeout(limit, request.send()).await {
                Err(_) => {
                    tracing::warn!("the upstream's answer did not start in time");
                    return Err(ProxyError::GatewayTimeout(reported));
                }
                Ok(outcome) => outcome,
            };
            let (reason, retry_after, failure) = match outcome {
                Ok(response) if response.status().is_success() => {
                    let timing = UpstreamTiming {
                        time_to_headers: started.elapsed(),
                    };
                    if stream && is_event_stream(&response) {
                        return Ok((Answer::Stream(response, permit), timing));
                    }
                    let content_type = response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .cloned()
                        .unwrap_or(HeaderValue::from_static("application/json"));
                    match read_whole(response, self.inner.read_timeout).await {
                        Ok(body) => return Ok((Answer::Whole { content_type, body }, timing)),
                        Err(err @ ProxyError::GatewayTimeout(_)) => return Err(err),
                        Err(err) => ("broken_body", None, Failure::Error(err)),
                    }
                }
                Ok(response) => {
                    let (reason, retry_after) = match response.status().as_u16() {
                        429 => ("429", retry_after_of(&response)),
                        500 => ("500", None),
                        502 => ("502", None),
                        503 => ("503", retry_after_of(&response)),
                        504 => ("504", None),
                        _ => ("", None),
                    };
                    (reason, retry_after, Failure::Status(response))
                }
                Err(err) if err.is_connect() => ("connect", None, Failure::Send(err)),
                Err(err) => ("", None, Failure::Send(err)),
            };
            let wait = retry_after.unwrap_or_else(|| backoff(self.inner.retry_backoff, attempt));
            let retry = !reason.is_empty()
                && attempt < self.inner.max_retries
                && Instant::now() + wait < deadline;
            if !retry {
                return Err(match failure {
                    Failure::Status(response) => self.map_error_status(response).await,
                    Failure::Send(err) => self.map_send_error(&err),
                    Failure::Error(err) => err,
                });
            }
            attempt += 1;
            tracing::warn!(
                attempt,
                reason,
                wait_ms = wait.as_millis() as u64,
                "retrying the upstream request"
            );
            metrics::counter!("hunyuan_proxy_upstream_retries_total", "reason" => reason)
                .increment(1);
            drop(failure);
            tokio::time::sleep(wait).await;
        }
    }

    fn build_request(&self, body: Bytes, stream: bool) -> reqwest::RequestBuilder {
        let mut request = self
            .inner
            .client
            .post(self.inner.chat_endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &self.inner.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        if stream {
            request = request.header(header::ACCEPT, "text/event-stream");
        }
        request
    }

    fn map_send_error(&self, err: &reqwest::Error) -> ProxyError {
        if err.is_timeout() {
            tracing::warn!("upstream timed out");
            ProxyError::GatewayTimeout(self.inner.read_timeout)
        } else if err.is_connect() {
            tracing::warn!("cannot connect to the upstream");
            ProxyError::BadGateway {
                message: "the proxy could not connect to the upstream".into(),
            }
        } else {
            tracing::warn!("upstream request failed");
            ProxyError::BadGateway {
                message: "the upstream request failed".into(),
            }
        }
    }

    async fn map_error_status(&self, response: reqwest::Response) -> ProxyError {
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        tracing::warn!(status = status.as_u16(), "upstream answered with an error");
        if status.is_server_error() {
            return ProxyError::BadGateway {
                message: format!("the upstream failed (status {})", status.as_u16()),
            };
        }
        if matches!(status.as_u16(), 401 | 403) {
            return ProxyError::BadGateway {
                message: format!(
                    "the upstream refused the proxy's credentials (status {}); check api_key",
                    status.as_u16()
                ),
            };
        }
        if matches!(status.as_u16(), 404 | 405) {
            return ProxyError::BadGateway {
                message: format!(
                    "the upstream has no chat endpoint at the configured api_base (status {})",
                    status.as_u16()
                ),
            };
        }
        let body = read_limited(response, 64 * 1024, self.inner.read_timeout)
            .await
            .unwrap_or_default();
        if is_error_envelope(&body) {
            return ProxyError::UpstreamRejected {
                status,
                body,
                retry_after,
            };
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return ProxyError::RateLimited {
                message: "the upstream is rate limiting requests".into(),
                retry_after: retry_after
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .map(Duration::from_secs),
            };
        }
        ProxyError::UpstreamRejected {
            status,
            body: ProxyError::invalid_request(format!(
                "the upstream rejected the request (status {})",
                status.as_u16()
            ))
            .to_body(),
            retry_after,
        }
    }

    async fn forward(
        &self,
        mut chat: ChatRequest,
        raw: Option<Bytes>,
    ) -> Result<Response<Body>, ProxyError> {
        let model = chat.model.clone();
        let (answer, timing) = self.send(&mut chat, raw).await?;
        let mut out = match answer {
            Answer::Stream(response, permit) => {
                let body = UpstreamBody::new(
                    Box::pin(response.bytes_stream()),
                    permit,
                    self.inner.read_timeout,
                );
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(Body::new(body))
                    .expect("static response parts are valid")
            }
            Answer::Whole { content_type, body } => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .expect("static response parts are valid"),
        };
        out.extensions_mut().insert(timing);
        out.extensions_mut().insert(ResolvedModel(model));
        Ok(out)
    }
}

/// A successful upstream answer.
enum Answer {
    /// A streamed answer whose body is still to come; holds the concurrency slot.
    Stream(reqwest::Response, OwnedSemaphorePermit),
    /// A whole answer, read before anything reached the client (its slot is free again).
    Whole {
        /// The upstream's content type.
        content_type: HeaderValue,
        /// The body.
        body: Bytes,
    },
}

/// Why an upstream attempt failed, kept until it is known whether to retry.
enum Failure {
    /// An error status.
    Status(reqwest::Response),
    /// The request could not be sent or answered.
    Send(reqwest::Error),
    /// The answer broke off while being read.
    Error(ProxyError),
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A place in the upstream wait queue, given back when dropped.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        let mut current = waiting.load(Ordering::Relaxed);
        loop {
            if current >= limit {
                return None;
            }
            match waiting.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(QueuePlace(waiting)),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The upstream's `Retry-After` in seconds, capped at a minute.
fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs.min(60)))
}

/// Exponential backoff with jitter: `base * 2^attempt`, scaled by a factor in [0.5, 1.0).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(10));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.5 + f64::from(nanos % 1000) / 2000.0;
    exp.mul_f64(factor)
}

fn is_error_envelope(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").map(serde_json::Value::is_object))
        .unwrap_or(false)
}

async fn read_whole(response: reqwest::Response, timeout: Duration) -> Result<Bytes, ProxyError> {
    match tokio::time::timeout(timeout, response.bytes()).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) if err.is_timeout() => Err(ProxyError::GatewayTimeout(timeout)),
        Ok(Err(_)) => Err(ProxyError::BadGateway {
            message: "the upstream's answer broke off".into(),
        }),
        Err(_) => Err(ProxyError::GatewayTimeout(timeout)),
    }
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Option<Bytes> {
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            buf.extend_from_slice(&chunk);
            if buf.len() > limit {
                return None;
            }
        }
        Some(buf.freeze())
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

impl tower_service::Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let parsed: Result<ParsedChat, _> = chat::parse::take_parsed(&mut req).await;
            let (chat, raw) = match parsed {
                Ok(parsed) => parsed.into_parts(),
                Err(err) => return Ok(err.into_response()),
            };
            let model = chat.model.clone();
            Ok(match this.forward(chat, raw).await {
                Ok(response) => response,
                Err(err) => {
                    // Metrics count upstream calls by model, failed ones too.
                    let mut response = err.into_response();
                    response.extensions_mut().insert(ResolvedModel(model));
                    response
                }
            })
        })
    }
}
