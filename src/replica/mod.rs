//! State shared by several proxy replicas through Redis: the connection ([`Redis`]), its
//! settings ([`RedisConfig`]), the failure policy ([`FailureMode`]), the `/health` component
//! ([`RedisCheck`]), the closed-mode guard ([`RedisGuardLayer`]) and the two-level
//! description store ([`TieredStore`]) and the two-level store of the Responses ingress
//! ([`TieredResponseStore`]).
//!
//! One multiplexed connection per process (the `redis` crate's connection manager, which
//! reconnects by itself). Every call is bounded by [`RedisConfig::timeout`]; a failed or late
//! call marks Redis down (one warning log line), after which calls are not even tried, so
//! traffic pays no timeout while Redis is away. Meanwhile a background task probes Redis
//! with a `PING`, first after [`RedisConfig::probe_first`], then backing off to
//! [`RedisConfig::probe_max`]; the first that succeeds marks Redis up again (one info log
//! line, the `hunyuan_proxy_redis_up` gauge and `/health` at once) and runs the
//! reconciliations registered with [`Redis::on_return`] (descriptions made while Redis was
//! away are written to it, in-flight requests take leases of the shared cap). From then on
//! every user (cache, single flight, rate limits, the upstream cap, stored responses) takes
//! the shared path again, idle replicas included. The task ends when Redis answers or the
//! last handle on the connection is dropped.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics::names::{REDIS_CALLS, REDIS_DURATION, REDIS_ERRORS, REDIS_FALLBACKS, REDIS_UP};

/// The most the first connection may take (later reconnections happen in the background).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The pause before the first probe of a Redis marked down (default).
const PROBE_FIRST: Duration = Duration::from_millis(250);

/// The longest pause between two probes of a Redis marked down (default).
const PROBE_MAX: Duration = Duration::from_millis(500);

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
    /// The pause before the first background probe of a Redis marked down (default 250 ms);
    /// each next pause is twice the last, up to [`probe_max`](Self::probe_max).
    pub probe_first: Duration,
    /// The longest pause between two probes (default 500 ms): the most a return of Redis
    /// goes unnoticed, plus one probe's round trip.
    pub probe_max: Duration,
}

impl RedisConfig {
    /// Redis at `url`, with the default prefix, failure mode and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "hunyuan-proxy:".to_owned(),
            failure: FailureMode::Local,
            timeout: Duration::from_millis(50),
            probe_first: PROBE_FIRST,
            probe_max: PROBE_MAX,
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

    /// Sets the pauses between background probes of a Redis marked down: `first`, doubling
    /// up to `max` (at least 10 ms each; `max` at least `first`).
    pub fn probe_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.probe_first = first.max(Duration::from_millis(10));
        self.probe_max = max.max(self.probe_first);
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

/// A reconciliation run when Redis returns (see [`Redis::on_return`]).
type Reconcile = Arc<dyn Fn(Redis) -> BoxFuture<'static, ()> + Send + Sync>;

struct Inner {
    client: ::redis::Client,
    manager: tokio::sync::OnceCell<ConnectionManager>,
    config: RedisConfig,
    up: AtomicBool,
    /// Run, in order, each time Redis is marked up again.
    on_return: Mutex<Vec<Reconcile>>,
    /// Wakes the probe task when the last handle goes, so it ends at once.
    stop: Arc<tokio::sync::Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // `notify_one` keeps the wake-up for a task not waiting yet.
        self.stop.notify_one();
    }
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
            on_return: Mutex::new(Vec::new()),
            stop: Arc::new(tokio::sync::Notify::new()),
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

    /// Registers `reconcile`, run (in the background, after those registered before it) each
    /// time Redis is marked up again after being down: it puts back into Redis what was done
    /// locally meanwhile. It gets the handle as its argument and must not keep one of its
    /// own (that would keep the connection, and the probe task, alive for ever): hold your
    /// state through a `Weak` or an `Arc` that does not lead back to the handle.
    pub fn on_return(
        &self,
        reconcile: impl Fn(Redis) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        self.0
            .on_return
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(reconcile));
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

    fn mark_down(&self, op: &'static str, why: &str) {
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
            self.spawn_probe();
        }
    }

    /// Starts the background probe of a Redis just marked down (outside a Tokio runtime
    /// there is nothing to probe with; Redis is then never called, so never marked down).
    fn spawn_probe(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.0);
        let stop = self.0.stop.clone();
        let (first, max) = (self.0.config.probe_first, self.0.config.probe_max);
        runtime.spawn(async move {
            let mut pause = first;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.notified() => return,
                }
                let Some(redis) = Weak::upgrade(&weak).map(Redis) else {
                    return;
                };
                // Marked up meanwhile (a call begun before the fall ended well): done.
                if redis.is_up() || redis.probe().await {
                    return;
                }
                pause = (pause * 2).min(max);
            }
        });
    }

    /// One `PING` of a Redis marked down; marks it up when it answers.
    async fn probe(&self) -> bool {
        metrics::counter!(REDIS_CALLS, "op" => "probe").increment(1);
        let answer = match self.manager().await {
            Ok(mut manager) => tokio::time::timeout(
                self.0.config.timeout,
                ::redis::cmd("PING").query_async::<()>(&mut manager),
            )
            .await
            .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        if answer {
            self.mark_up();
        }
        answer
    }

    fn mark_up(&self) {
        if !self.0.up.swap(true, Ordering::SeqCst) {
            metrics::gauge!(REDIS_UP).set(1.0);
            tracing::info!("redis up again: cache, limits and upstream cap are shared again");
            let reconcile = self
                .0
                .on_return
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if reconcile.is_empty() {
                return;
            }
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let redis = self.clone();
                runtime.spawn(async move {
                    for reconcile in reconcile {
                        reconcile(redis.clone()).await;
                    }
                });
            }
        }
    }

    /// Runs one Redis call `op` (a metric label) within the timeout, recording calls, errors,
    /// latency and up/down transitions. While Redis is down the call is not even tried (the
    /// background probe finds out when it returns).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        mut f: F,
    ) -> Result<T, RedisUnavailable>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(RedisUnavailable);
        }
        metrics::counter!(REDIS_CALLS, "op" => op).increment(1);
        let span = crate::telemetry::redis_span(op);
        // The first connection has its own budget; every call after it has `timeout`.
        let call = async {
            match self.manager().await {
                Ok(manager) => {
                    let started = Instant::now();
                    let deadline = tokio::time::Instant::now() + self.0.config.timeout;
                    let mut result = tokio::time::timeout_at(deadline, f(manager.clone())).await;
                    // A connection that broke while nobody used it (Redis restarted while this
                    // replica was idle) fails the first call after it; the manager reconnects at
                    // once, so the call is tried once more within the same timeout.
                    if let Ok(Err(err)) = &result {
                        if err.is_connection_dropped() || err.is_io_error() {
                            result = tokio::time::timeout_at(deadline, f(manager)).await;
                        }
                    }
                    metrics::histogram!(REDIS_DURATION, "op" => op)
                        .record(started.elapsed().as_secs_f64());
                    result
                }
                Err(err) => Ok(Err(err)),
            }
        };
        let result = tracing::Instrument::instrument(call, span.clone()).await;
        match result {
            Ok(Ok(value)) => {
                self.mark_up();
                Ok(value)
            }
            Ok(Err(err)) => {
                metrics::counter!(REDIS_ERRORS, "op" => op, "kind" => "error").increment(1);
                let kind = format!("{:?}", err.kind());
                crate::telemetry::record_failure(&span, None, &kind);
                self.mark_down(op, &kind);
                Err(RedisUnavailable)
            }
            Err(_) => {
                metrics::counter!(REDIS_ERRORS, "op" => op, "kind" => "timeout").increment(1);
                crate::telemetry::record_failure(&span, None, "timeout");
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

    /// Whether a request may go on: always in local mode; in closed mode only while Redis is
    /// not marked down.
    pub fn admits(&self) -> bool {
        self.failure() == FailureMode::Local || self.is_up()
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
            // While down, `ping` answers at once (the background probe marks Redis up).
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
        if redis.admits() {
            return Box::pin(self.inner.call(req));
        }
        redis.fallback("closed");
        Box::pin(async { Ok(Redis::refusal()) })
    }
}

/// A `redis-server` of a test's own, killed on drop.
#[cfg(test)]
pub(crate) mod test_server {
    use super::{Redis, RedisConfig};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// A running `redis-server` and its port.
    pub(crate) struct Server(Child, pub(crate) u16);

    /// A port nothing listens on (yet).
    pub(crate) fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port()
    }

    impl Server {
        /// On a free port; `None` (with a printed reason) when `redis-server` is not on PATH.
        pub(crate) fn start() -> Option<Self> {
            Self::start_on(free_port())
        }

        /// On `port`; `None` (with a printed reason) when `redis-server` is not on PATH.
        pub(crate) fn start_on(port: u16) -> Option<Self> {
            let Ok(child) = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            else {
                eprintln!("skipped: redis-server is not on PATH");
                return None;
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "redis-server starts");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(Server(child, port))
        }

        /// A handle on it (500 ms per call).
        pub(crate) fn redis(&self) -> Redis {
            Redis::new(config(self.1)).unwrap()
        }
    }

    /// Settings for a Redis on `port` (500 ms per call).
    pub(crate) fn config(port: u16) -> RedisConfig {
        RedisConfig::new(format!("redis://127.0.0.1:{port}/0")).timeout(Duration::from_millis(500))
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{free_port, Server};
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
    async fn a_down_redis_is_not_called_until_the_probe_finds_it_back() {
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
        assert!(redis.admits(), "local mode admits requests");
        let closed = Redis::new(nowhere().failure(FailureMode::Closed)).unwrap();
        assert!(closed.admits(), "up until a call fails");
        assert!(closed.ping().await.is_err());
        assert!(
            !closed.admits(),
            "closed mode refuses once Redis is seen down"
        );
    }

    #[tokio::test]
    async fn an_idle_replica_finds_redis_back_by_itself_and_reconciles() {
        let port = free_port();
        let redis = Redis::new(
            test_server::config(port)
                .probe_backoff(Duration::from_millis(50), Duration::from_millis(100)),
        )
        .unwrap();
        let returns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        redis.on_return({
            let returns = returns.clone();
            move |redis| {
                let returns = returns.clone();
                Box::pin(async move {
                    assert!(redis.is_up(), "reconciliation runs once Redis is up");
                    returns.fetch_add(1, Ordering::SeqCst);
                })
            }
        });
        assert!(redis.ping().await.is_err(), "nothing listens yet");
        assert!(!redis.is_up());
        let Some(_server) = Server::start_on(port) else {
            return;
        };
        let back = Instant::now();
        // No call is made: the background probe alone notices.
        while !redis.is_up() {
            assert!(
                back.elapsed() < Duration::from_secs(2),
                "up again by itself"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            back.elapsed() < Duration::from_millis(600),
            "{:?}",
            back.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while returns.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the reconciliation ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(redis.ping().await, Ok(()), "calls go through again");
        assert_eq!(returns.load(Ordering::SeqCst), 1, "once per return");
    }

    #[tokio::test]
    async fn descriptions_made_while_redis_was_away_are_shared_when_it_returns() {
        let port = free_port();
        let config = test_server::config(port)
            .probe_backoff(Duration::from_millis(50), Duration::from_millis(100));
        let memory = || {
            MemoryStore::new(StoreLimits {
                max_entries: 10,
                max_bytes: None,
                ttl: Duration::from_secs(60),
            })
        };
        let away = Redis::new(config.clone()).unwrap();
        let store = TieredStore::new(memory(), away.clone(), "desc", Duration::from_secs(60));
        let key = Digest([7; 32]);
        let Lookup::Load(slot) = store.lookup(key, Duration::from_secs(1)).await else {
            panic!("absent everywhere: this caller loads");
        };
        assert!(!away.is_up(), "Redis is away");
        assert!(slot.fill("seven".to_owned()));
        let Some(_server) = Server::start_on(port) else {
            return;
        };
        // Another replica, with nothing in memory, finds it in Redis without loading it.
        let other = TieredStore::new(
            memory(),
            Redis::new(config).unwrap(),
            "desc",
            Duration::from_secs(60),
        );
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match other.lookup(key, Duration::from_millis(100)).await {
                Lookup::Found(value) => {
                    assert_eq!(value, "seven");
                    break;
                }
                Lookup::Load(slot) => drop(slot),
                _ => {}
            }
            assert!(Instant::now() < deadline, "written when Redis returned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_probe_task_ends_with_the_last_handle() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let redis =
            Redis::new(nowhere().probe_backoff(Duration::from_secs(30), Duration::from_secs(30)))
                .unwrap();
        let before = metrics.num_alive_tasks();
        assert!(redis.ping().await.is_err());
        assert_eq!(metrics.num_alive_tasks(), before + 1, "one probe task");
        drop(redis);
        let deadline = Instant::now() + Duration::from_secs(2);
        while metrics.num_alive_tasks() > before {
            assert!(
                Instant::now() < deadline,
                "the probe task ended with its Redis"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
