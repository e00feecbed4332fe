//! The upstream forwarding service: the end of every stack.
//!
//! [`Upstream`] sends the parsed [`ChatRequest`] to `{api_base}/chat/completions` over one
//! pooled reqwest client with the configured API key (the client's own `Authorization` is never
//! forwarded), and turns the answer into a response:
//!
//! - the upstream status is checked before anything is committed to the client;
//! - a streamed answer flows through chunk by chunk, never buffered; a stream that breaks
//!   midway, or ends with neither `[DONE]` nor a `finish_reason` (a close-delimited body cut
//!   short ends cleanly), ends with one `data: {"error":…}` event and no `[DONE]`, so clients
//!   raise instead of taking a cut answer for a complete one; a stream that ends after its
//!   `finish_reason` without `[DONE]` is whole and gets its `[DONE]`;
//! - a whole (non-streamed) answer that is not one JSON value (cut short) is a broken body:
//!   retried like one, then 502;
//! - Hunyuan's own 4xx envelope is passed on with its status; 5xx and connection failures
//!   become 502, silence past `request_timeout` becomes 504;
//! - fields that could redirect or re-key the upstream (`api_base`, `base_url`, `api_key`…)
//!   are stripped from the body;
//! - a request no layer changed goes out as the client's own bytes
//!   (kept in [`ParsedChat`] while unchanged), any other is
//!   serialized once.
//!
//! At most `upstream_concurrency` requests are in flight at once on each key of the pool
//! (`api_key` plus `api_keys`, see `keys`); a streamed answer holds its slot and its key until
//! its body ends or is dropped. Built with [`Upstream::with_shared_cap`], the cap counts the
//! requests of every replica on one Redis (`shared_cap`: leased permits per key, renewed
//! while held); without it, it is in-process. A request takes the usable key with the fewest in flight; 429
//! or a connection failure moves it to another key before the first byte, and a key refused
//! with 401/402/403 is out for `key_cooldown` (every key out: 503). A model whose attempts
//! failed with 429, 5xx or a timeout hands the request, still before the first byte, to its
//! `fallback_models` in order; the `x-hunyuan-proxy-model` header names the model that
//! answered.
//!
//! The parts, by job: [`UpstreamConfig`] (checked once, when the `Upstream` is built),
//! `slots` (the concurrency slots and their bounded wait queue), `shared_cap` (the cap shared
//! through Redis, with the same queue rules), `keys` (the key pool: a
//! cap per key, least-loaded choice, cooldowns; [`KeyState`]), `retry` (which failures are
//! tried again and after how long: a policy with no I/O), `forward` (sending, key switches,
//! fallback models, reading whole answers, building the response), `error_map` (upstream
//! failures as [`ProxyError`]s) and [`UpstreamBody`] (the streamed answer's body, which also
//! tells a cut stream from a finished one).
//!
//! ```
//! use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
//!
//! let upstream = Upstream::new(UpstreamConfig::new("http://127.0.0.1:9/v1")).unwrap();
//! assert_eq!(upstream.chat_url(), "http://127.0.0.1:9/v1/chat/completions");
//! ```

mod body;
mod config;
mod error_map;
mod forward;
mod keys;
mod retry;
mod shared_cap;
mod slots;

pub use body::UpstreamBody;
pub(crate) use body::{broken_stream_event, Broken};
pub use config::UpstreamConfig;
pub(crate) use error_map::is_error_envelope;
pub use forward::SERVED_MODEL;
pub use keys::KeyState;

use crate::chat::{self, ChatCompletion, ChatRequest, ParsedChat};
use crate::error::ProxyError;
use crate::usage::UsageSlot;
use axum::body::Body;
use axum::response::IntoResponse;
use forward::{read_whole, Answer};
use http::{HeaderValue, Request, Response};
use keys::KeyPool;
use retry::RetryPolicy;
use shared_cap::SharedCap;
use slots::Slots;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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
    keys: Arc<KeyPool>,
    /// Models tried in order when a model fails before its answer starts.
    fallbacks: std::collections::BTreeMap<String, Vec<String>>,
    read_timeout: Duration,
    queue_timeout: Duration,
    retry: RetryPolicy,
    slots: Slots,
    /// The cap shared with other replicas through Redis (`None`: in-process only).
    shared: Option<Arc<SharedCap>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("chat_url", &self.inner.chat_url)
            .field("api_keys", &self.inner.keys.len())
            .finish()
    }
}

/// An upstream that could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamSetupError {
    /// A config field holds a value the upstream cannot use.
    #[error("cannot set up the upstream client: {0}")]
    Config(#[from] crate::error::InvalidConfig),
    /// The HTTP client could not be built.
    #[error("cannot set up the upstream client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Whether an outbound proxy is set in the environment (the variables reqwest reads).
fn proxy_in_environment() -> bool {
    [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

impl UpstreamSetupError {
    /// The [`UpstreamConfig`] field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            UpstreamSetupError::Config(err) => Some(&err.field),
            UpstreamSetupError::Client(_) => None,
        }
    }
}

impl Upstream {
    /// Checks `config` ([`UpstreamConfig::validate`]) and builds the pooled client.
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamSetupError> {
        Self::build(config, None)
    }

    /// Like [`new`](Self::new), with the concurrency cap (`concurrency` per key) shared by
    /// every replica using `redis`: leases living `lease` (renewed while a request or stream
    /// is open), so a crashed replica's permits come back after at most `lease`. While Redis
    /// does not answer, requests use the in-process slots (`redis_failure = "local"`: the cap
    /// is then per replica) or get 503 (`"closed"`).
    pub fn with_shared_cap(
        config: UpstreamConfig,
        redis: crate::replica::Redis,
        lease: Duration,
    ) -> Result<Self, UpstreamSetupError> {
        Self::build(config, Some((redis, lease)))
    }

    fn build(
        config: UpstreamConfig,
        shared: Option<(crate::replica::Redis, Duration)>,
    ) -> Result<Self, UpstreamSetupError> {
        config.validate()?;
        let mut client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // Retries are the forwarding loop's (`retry`); reqwest's own policy would clone
            // every request's headers and extensions in case it replays it. Hunyuan does not
            // redirect the chat endpoint, and a redirect must not carry the key elsewhere.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .redirect(reqwest::redirect::Policy::none());
        // reqwest matches every request against the proxies of the environment; with none
        // set at start (it reads them only then), turning that off saves the per-request match.
        if !proxy_in_environment() {
            client = client.no_proxy();
        }
        let client = client
            .user_agent(concat!("hunyuan-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(UpstreamSetupError::Client)?;
        let auths = config.auth_headers()?;
        let keys = Arc::new(KeyPool::new(auths, config.concurrency, config.key_cooldown));
        let shared = shared.map(|(redis, lease)| {
            let sets = keys
                .auths()
                .map(|auth| shared_cap::set_name(&redis, auth))
                .collect();
            let cap = Arc::new(SharedCap::new(
                redis,
                sets,
                config.concurrency,
                lease,
                config.queue_size,
                config.queue_timeout,
            ));
            SharedCap::adopt_on_return(&cap);
            cap
        });
        let base = config.api_base.trim_end_matches('/');
        let chat_url = format!("{base}/chat/completions");
        let chat_endpoint = reqwest::Url::parse(&chat_url).map_err(|_| {
            crate::error::InvalidConfig::new(
                "api_base",
                "must be an http:// or https:// URL with a host",
            )
        })?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                client,
                chat_url,
                chat_endpoint,
                models_url: format!("{base}/models"),
                fallbacks: config.fallback_models.clone(),
                read_timeout: config.read_timeout,
                queue_timeout: config.queue_timeout,
                retry: RetryPolicy {
                    max_retries: config.max_retries,
                    backoff: config.retry_backoff,
                    first_byte_timeout: config.first_byte_timeout,
                    read_timeout: config.read_timeout,
                },
                slots: Slots::new(
                    config.concurrency * keys.len(),
                    config.queue_size,
                    config.queue_timeout,
                ),
                keys,
                shared,
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

    /// The `Authorization` header value of the first key, when a key is configured (health
    /// probes use it).
    pub fn auth_header(&self) -> Option<&HeaderValue> {
        self.inner.keys.first_auth()
    }

    /// Each key's state by index (never its value): in flight, cooldown, cooldowns so far.
    /// One entry without a key when none is configured.
    pub fn key_states(&self) -> Vec<KeyState> {
        self.inner.keys.states()
    }

    /// Requests of this replica in flight to the upstream right now.
    pub fn in_flight(&self) -> usize {
        self.inner.slots.in_flight() + self.inner.shared.as_ref().map_or(0, |s| s.in_flight())
    }

    /// Requests of this replica waiting for a free upstream slot right now.
    pub fn waiting(&self) -> usize {
        self.inner.slots.waiting() + self.inner.shared.as_ref().map_or(0, |s| s.waiting())
    }

    /// Sends a non-streamed chat request and parses the answer (used by the image describer).
    pub async fn complete(&self, mut chat: ChatRequest) -> Result<ChatCompletion, ProxyError> {
        chat.stream = Some(false);
        chat.stream_options = None;
        let bytes = match self.send(&mut chat, None).await?.0 {
            Answer::Whole { body, .. } | Answer::Refused { body, .. } => body,
            // Asked for a whole answer, the upstream streamed anyway: read it whole.
            Answer::Stream(response, _slot, _span) => {
                read_whole(response, self.inner.read_timeout).await?
            }
        };
        serde_json::from_slice(&bytes).map_err(|_| ProxyError::BadGateway {
            message: "the upstream sent an answer that is not a chat completion".into(),
        })
    }
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
        let usage = req.extensions().get::<UsageSlot>().cloned();
        Box::pin(async move {
            let parsed: Result<ParsedChat, _> = chat::parse::take_parsed(&mut req).await;
            let (chat, raw) = match parsed {
                Ok(parsed) => parsed.into_parts(),
                Err(err) => return Ok(err.into_response()),
            };
            let model = chat.model.clone();
            if let Some(slot) = &usage {
                slot.set_model_requested(&model);
            }
            Ok(match this.forward(chat, raw, usage).await {
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

#[cfg(all(test, feature = "mock"))]
mod tests;
