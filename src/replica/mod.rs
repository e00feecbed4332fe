//! State shared by several proxy replicas through Redis: the connection ([`Redis`]), its
//! settings ([`RedisConfig`]), the failure policy ([`FailureMode`]), the `/health` component
//! ([`RedisCheck`]), the closed-mode guard ([`RedisGuardLayer`]) and the two-level
//! description store ([`TieredStore`]) and the two-level store of the Responses ingress
//! ([`TieredResponseStore`]).
//!
//! One multiplexed connection per process (the `redis` crate's connection manager, which
//! reconnects by itself). Every call is bounded by [`RedisConfig::timeout`]; a failed or late
//! call marks Redis down (one warning log line), after which calls are not even tried for a
//! second, so traffic pays no timeout while Redis is away. Once a second a call is let
//! through as a probe; the first that succeeds marks Redis up again (one info log line).
//!
//! In [`FailureMode::Local`] the users of a down Redis fall back at once to their in-process
//! state (cache, limits, the upstream cap); in [`FailureMode::Closed`] requests are refused
//! with 503.

mod cache;
mod responses;

pub use cache::{SharedValue, TieredStore};
pub use responses::TieredResponseStore;

use crate::error::ProxyError;
use crate::health::{CheckFuture, CheckResult, ComponentHealth};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::RedisResult;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics::names::{REDIS_CALLS, REDIS_DURATION, REDIS_ERRORS, REDIS_FALLBACKS, REDIS_UP};

/// The most the first connection may take (later reconnections happen in the background).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often calls are let through to a Redis marked down.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the proxy does while Redis does not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Fall back to in-process state: traffic continues, limits and cache become per-replica.
    #[default]
    Local,
    /// Refuse requests with 503 until Redis answers again.
    Closed,
}

impl FailureMode {
    /// `local` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Local => "local",
            FailureMode::Closed => "closed",
        }
    }
}

/// Where Redis is and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port/db` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// Prefix of every key this proxy writes (default `hunyuan-proxy:`).
    pub prefix: String,
    /// What to do while Redis does not answer.
    pub failure: FailureMode,
    /// The most one call may take before it counts as failed (default 50 ms).
    pub timeout: Duration,
}

impl RedisConfig {
    /// Redis at `url`, with the default prefix, failure mode and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "hunyuan-proxy:".to_owned(),
            failure: FailureMode::Local,
            timeout: Duration::from_millis(50),
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the failure mode.
    pub fn failure(mut self, failure: FailureMode) -> Self {
        self.failure = failure;
        self
    }

    /// Sets the per-call timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A Redis that could not be set up (the URL does not parse).
#[derive(Debug, thiserror::Error)]
#[error("invalid redis_url: {0}")]
pub struct RedisSetupError(String);

/// A Redis call that did not succeed: Redis is down, the call failed or took too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("redis is unavailable")]
pub struct RedisUnavailable;

/// A cheap handle on the process's Redis connection (clone it freely).
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    client: ::redis::Client,
    manager: tokio::sync::OnceCell<ConnectionManager>,
    config: RedisConfig,
    up: AtomicBool,
    /// Milliseconds since `epoch` before which a down Redis is not tried again.
    next_probe: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.0.config.prefix)
            .field("failure", &self.0.config.failure)
            .field("timeout", &self.0.config.timeout)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Redis {
    /// A handle for `config`; the URL is checked here, the connection is made on first use
    /// (so this works outside a Tokio runtime and with Redis not running yet).
    pub fn new(config: RedisConfig) -> Result<Self, RedisSetupError> {
        let client = ::redis::Client::open(config.url.as_str())
            .map_err(|e| RedisSetupError(e.to_string()))?;
        metrics::gauge!(REDIS_UP).set(1.0);
        Ok(Redis(Arc::new(Inner {
            client,
            manager: tokio::sync::OnceCell::new(),
            config,
            up: AtomicBool::new(true),
            next_probe: AtomicU64::new(0),
            epoch: Instant::now(),
        })))
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.0.config
    }

    /// The failure mode.
    pub fn failure(&self) -> FailureMode {
        self.0.config.failure
    }

    /// `prefix` followed by `rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.0.config.prefix)
    }

    /// Whether the last call succeeded (true before the first call).
    pub fn is_up(&self) -> bool {
        self.0.up.load(Ordering::SeqCst)
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    /// The connection manager, connecting first (within [`CONNECT_TIMEOUT`]) if no connection
    /// was made yet; once made, the manager reconnects by itself.
    async fn manager(&self) -> RedisResult<ConnectionManager> {
        let inner = &self.0;
        let connect = inner.manager.get_or_try_init(|| async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(inner.config.timeout.max(Duration::from_millis(10))))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_with_config(inner.client.clone(), config).await
        });
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(manager) => manager.cloned(),
            Err(_) => Err(::redis::RedisError::from((
                ::redis::ErrorKind::Io,
                "no connection within the connect timeout",
            ))),
        }
    }

    /// Whether a call may be tried now: always while up; while down, one call per
    /// [`PROBE_EVERY`].
    fn may_try(&self) -> bool {
        if self.is_up() {
            return true;
        }
        let now = self.now_ms();
        let next = self.0.next_probe.load(Ordering::SeqCst);
        now >= next
            && self
                .0
                .next_probe
                .compare_exchange(
                    next,
                    now + PROBE_EVERY.as_millis() as u64,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
    }

    fn mark_down(&self, op: &'static str, why: &str) {
        self.0.next_probe.store(
            self.now_ms() + PROBE_EVERY.as_millis() as u64,
            Ordering::SeqCst,
        );
        if self.0.up.swap(false, Ordering::SeqCst) {
            metrics::gauge!(REDIS_UP).set(0.0);
            tracing::warn!(
                op,
                why,
                failure = self.failure().as_str(),
                "redis down: {}",
                match self.failure() {
                    FailureMode::Local =>
                        "falling back to in-process cache, limits and upstream cap",
                    FailureMode::Closed => "refusing requests with 503",
                }
            );
        }
    }

    fn mark_up(&self) {
        if !self.0.up.swap(true, Ordering::SeqCst) {
            metrics::gauge!(REDIS_UP).set(1.0);
            tracing::info!("redis up again: cache, limits and upstream cap are shared again");
        }
    }

    /// Runs one Redis call `op` (a metric label) within the timeout, recording calls, errors,
    /// latency and up/down transitions. While Redis is down the call is not even tried
    /// (except as the once-a-second probe).
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.may_try() {
            return Err(RedisUnavailable);
        }
        metrics::counter!(REDIS_CALLS, "op" => op).increment(1);
        // The first connection has its own budget; every call after it has `timeout`.
        let result = match self.manager().await {
            Ok(manager) => {
                let started = Instant::now();
                let result = tokio::time::timeout(self.0.config.timeout, f(manager)).await;
                metrics::histogram!(REDIS_DURATION, "op" => op)
                    .record(started.elapsed().as_secs_f64());
                result
            }
            Err(err) => Ok(Err(err)),
        };
        match result {
            Ok(Ok(value)) => {
                self.mark_up();
                Ok(value)
            }
            Ok(Err(err)) => {
                metrics::counter!(REDIS_ERRORS, "op" => op, "kind" => "error").increment(1);
                self.mark_down(op, &format!("{:?}", err.kind()));
                Err(RedisUnavailable)
            }
            Err(_) => {
                metrics::counter!(REDIS_ERRORS, "op" => op, "kind" => "timeout").increment(1);
                self.mark_down(op, "timeout");
                Err(RedisUnavailable)
            }
        }
    }

    /// `PING`: whether Redis answers now.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.run("ping", |mut c| async move {
            ::redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    /// Counts a fallback of `user` (`cache`, `rate_limit`, `responses`, `closed`).
    pub(crate) fn fallback(&self, user: &'static str) {
        metrics::counter!(REDIS_FALLBACKS, "user" => user).increment(1);
    }

    /// Whether a request may go on: always in local mode; in closed mode only while Redis
    /// answers (a down Redis is probed at most once a second).
    pub async fn admits(&self) -> bool {
        if self.failure() == FailureMode::Local || self.is_up() {
            return true;
        }
        self.ping().await.is_ok()
    }

    /// The 503 a request gets in closed mode while Redis is down (OpenAI's envelope).
    pub fn refusal() -> Response {
        ProxyError::Unavailable {
            message: "the shared state store (Redis) is unavailable and redis_failure is \
                      \"closed\"; retry shortly"
                .into(),
        }
        .into_response()
    }
}

/// The `redis` component of `/health`: healthy while Redis answers a `PING`, else degraded
/// in local mode (traffic goes on with in-process state) and unhealthy in closed mode.
#[derive(Debug, Clone)]
pub struct RedisCheck {
    redis: Redis,
}

impl RedisCheck {
    /// A check of `redis`.
    pub fn new(redis: Redis) -> Self {
        RedisCheck { redis }
    }
}

impl ComponentHealth for RedisCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            // While down, `ping` is the once-a-second probe or answers at once.
            match self.redis.ping().await {
                Ok(()) => CheckResult::healthy("shared state in Redis"),
                Err(_) => match self.redis.failure() {
                    FailureMode::Local => CheckResult::degraded(
                        "redis unavailable: cache, rate limits and the upstream cap are per replica until it returns",
                    ),
                    FailureMode::Closed => CheckResult::unhealthy(
                        "redis unavailable: requests are refused until it returns",
                    ),
                },
            }
        })
    }
}

/// Refuses requests with 503 while Redis is down in [`FailureMode::Closed`]; passes everything
/// in local mode.
#[derive(Debug, Clone)]
pub struct RedisGuardLayer {
    redis: Option<Redis>,
}

impl RedisGuardLayer {
    /// A guard over `redis` (`None`: a guard that passes everything).
    pub fn new(redis: Option<Redis>) -> Self {
        let redis = redis.filter(|r| r.failure() == FailureMode::Closed);
        RedisGuardLayer { redis }
    }
}

impl<S> Layer<S> for RedisGuardLayer {
    type Service = RedisGuard<S>;

    fn layer(&self, inner: S) -> RedisGuard<S> {
        RedisGuard {
            inner,
            redis: self.redis.clone(),
        }
    }
}

/// The service made by [`RedisGuardLayer`].
#[derive(Debug, Clone)]
pub struct RedisGuard<S> {
    inner: S,
    redis: Option<Redis>,
}

impl<S, R> Service<R> for RedisGuard<S>
where
    S: Service<R, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let Some(redis) = self.redis.clone() else {
            return Box::pin(self.inner.call(req));
        };
        if redis.is_up() {
            return Box::pin(self.inner.call(req));
        }
        // The inner service was made ready by `poll_ready`: keep that one, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if redis.admits().await {
                inner.call(req).await
            } else {
                redis.fallback("closed");
                Ok(Redis::refusal())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Digest, Lookup, MemoryStore, Store, StoreLimits};

    /// A Redis URL where nothing listens.
    fn nowhere() -> RedisConfig {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        RedisConfig::new(format!("redis://127.0.0.1:{port}/0")).timeout(Duration::from_millis(200))
    }

    #[tokio::test]
    async fn a_down_redis_is_not_tried_again_for_a_second() {
        let redis = Redis::new(nowhere()).unwrap();
        assert!(redis.is_up(), "optimistic before the first call");
        assert_eq!(redis.ping().await, Err(RedisUnavailable));
        assert!(!redis.is_up());
        let started = Instant::now();
        for _ in 0..100 {
            assert_eq!(redis.ping().await, Err(RedisUnavailable));
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "calls to a down Redis fail at once: {:?}",
            started.elapsed()
        );
        assert!(redis.admits().await, "local mode admits requests");
        let closed = Redis::new(nowhere().failure(FailureMode::Closed)).unwrap();
        assert!(closed.admits().await, "up until a call fails");
        assert!(closed.ping().await.is_err());
        assert!(
            !closed.admits().await,
            "closed mode refuses once Redis is seen down"
        );
    }

    #[tokio::test]
    async fn the_tiered_store_falls_back_to_memory_when_redis_is_down() {
        let memory = MemoryStore::new(StoreLimits {
            max_entries: 10,
            max_bytes: None,
            ttl: Duration::from_secs(60),
        });
        let redis = Redis::new(nowhere()).unwrap();
        let store = TieredStore::new(memory, redis, "desc", Duration::from_secs(60));
        let key = Digest([5; 32]);
        let Lookup::Load(slot) = store.lookup(key, Duration::from_secs(1)).await else {
            panic!("absent everywhere: this caller loads");
        };
        assert!(slot.fill("five".to_owned()));
        assert_eq!(store.get(&key).as_deref(), Some("five"), "kept in memory");
        assert_eq!(store.usage().entries, 1);
        assert_eq!(store.clear(), 1);
    }

    #[test]
    fn a_bad_url_is_refused_and_failure_modes_parse() {
        assert!(Redis::new(RedisConfig::new("http://nope")).is_err());
        let mode: FailureMode = serde_json::from_str("\"closed\"").unwrap();
        assert_eq!(mode, FailureMode::Closed);
        assert!(serde_json::from_str::<FailureMode>("\"open\"").is_err());
    }
}
