//! [`RateLimitLayer`]: request-rate limits for clients, global and per client key.
//!
//! Token buckets: each allows `burst` requests at once and refills at `per_second`. A request
//! over a limit gets 429 with `Retry-After` (whole seconds until a token is back) and OpenAI's
//! envelope, before any work is done for it. Per-key limits apply to requests that carry a
//! [`ClientKey`] (set by [`ClientAuthLayer`](crate::auth::ClientAuthLayer)); a named key given
//! its own rate ([`RateLimitConfig::named`], config `[client_keys.<name>] rate_limit`) is
//! limited by its own bucket instead of the per-key one, found by its [`ClientName`].
//!
//! ```
//! use hunyuan_proxy::rate_limit::{RateLimit, RateLimitConfig, RateLimitLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let service = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(RateLimitConfig::default().global(RateLimit::new(1.0, 1))).unwrap())
//!     .service_fn(|_req: http::Request<axum::body::Body>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
//!     });
//! let first = service.clone().oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
//! let second = service.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
//! assert_eq!(first.status(), 200);
//! assert_eq!(second.status(), 429);
//! # });
//! ```

use crate::auth::{ClientKey, ClientName};
use crate::error::{toml_key, InvalidConfig, ProxyError};
use crate::replica::{FailureMode, Redis, RedisUnavailable};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::future::Either;
use http::Request;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::ready;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_layer::Layer;
use tower_service::Service;

/// A rate: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl RateLimit {
    /// A rate of `per_second` with `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimit { per_second, burst }
    }

    /// Whether the rate can ever admit a request.
    pub fn is_valid(&self) -> bool {
        self.per_second.is_finite() && self.per_second > 0.0 && self.burst >= 1
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    /// Adds the tokens earned since the last look.
    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst));
        self.last = now;
    }

    /// How long until a token is there (zero when one is there now), after a refill.
    fn wait(&mut self, limit: RateLimit, now: Instant) -> Duration {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / limit.per_second)
        }
    }

    /// Takes a token, or says how long until one is back.
    #[cfg(test)]
    fn take(&mut self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        match self.wait(limit, now) {
            Duration::ZERO => {
                self.tokens -= 1.0;
                Ok(())
            }
            wait => Err(wait),
        }
    }
}

/// Per-key buckets kept at most; past it the table is emptied (each key starts full again).
const MAX_KEYS: usize = 10_000;

#[derive(Debug)]
struct Limiter {
    global: Option<(RateLimit, Mutex<Bucket>)>,
    /// Buckets by the key's fingerprint ([`ClientKey`]), not its position in the list.
    per_key: Option<(RateLimit, Mutex<HashMap<u64, Bucket>>)>,
    /// The named keys with a rate of their own, each with its bucket.
    named: HashMap<String, (RateLimit, Mutex<Bucket>)>,
}

impl Limiter {
    fn check(&self, key: Option<ClientKey>, name: Option<&ClientName>) -> Result<(), Duration> {
        self.check_at(key, name, Instant::now())
    }

    /// Admits a request only when both its key's bucket (the key's own when its name has a
    /// rate of its own, else the per-key one) and the global one hold a token, and only then
    /// takes one from each: a request refused by one limit costs nothing from the other.
    /// Locks are taken in one order (the key's own bucket or the key table, then global).
    fn check_at(
        &self,
        key: Option<ClientKey>,
        name: Option<&ClientName>,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut own = name
            .and_then(|ClientName(name)| self.named.get(&**name))
            .map(|(limit, bucket)| (*limit, bucket.lock().unwrap_or_else(|e| e.into_inner())));
        let per_key = if own.is_some() { None } else { key };
        let mut key_buckets = match (&self.per_key, per_key) {
            (Some((limit, buckets)), Some(ClientKey(key))) => {
                let mut buckets = buckets.lock().unwrap_or_else(|e| e.into_inner());
                if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key) {
                    buckets.clear();
                }
                buckets
                    .entry(key)
                    .or_insert_with(|| Bucket::full(*limit, now));
                Some((*limit, key, buckets))
            }
            _ => None,
        };
        let mut global = self
            .global
            .as_ref()
            .map(|(limit, bucket)| (*limit, bucket.lock().unwrap_or_else(|e| e.into_inner())));
        let mut wait = Duration::ZERO;
        if let Some((limit, bucket)) = own.as_mut() {
            wait = wait.max(bucket.wait(*limit, now));
        }
        if let Some((limit, key, buckets)) = key_buckets.as_mut() {
            let bucket = buckets.get_mut(key).expect("inserted above");
            wait = wait.max(bucket.wait(*limit, now));
        }
        if let Some((limit, bucket)) = global.as_mut() {
            wait = wait.max(bucket.wait(*limit, now));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some((_, bucket)) = own.as_mut() {
            bucket.tokens -= 1.0;
        }
        if let Some((_, key, buckets)) = key_buckets.as_mut() {
            buckets.get_mut(key).expect("inserted above").tokens -= 1.0;
        }
        if let Some((_, bucket)) = global.as_mut() {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }
}

/// The limits of a [`RateLimitLayer`] (config keys `rate_limit`, `client_rate_limit` and each
/// `[client_keys.<name>] rate_limit`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimitConfig {
    /// For all clients together; none: no global limit.
    pub global: Option<RateLimit>,
    /// For each client key; none: no per-key limit.
    pub per_key: Option<RateLimit>,
    /// Named client keys (by their [`ClientName`]) with a rate of their own, which applies to
    /// them in place of `per_key`.
    pub named: BTreeMap<String, RateLimit>,
}

impl RateLimitConfig {
    /// Sets the global limit.
    pub fn global(mut self, limit: RateLimit) -> Self {
        self.global = Some(limit);
        self
    }

    /// Sets the per-key limit.
    pub fn per_key(mut self, limit: RateLimit) -> Self {
        self.per_key = Some(limit);
        self
    }

    /// Gives the named client key `name` a rate of its own, in place of the per-key one.
    pub fn named(mut self, name: impl Into<String>, limit: RateLimit) -> Self {
        self.named.insert(name.into(), limit);
        self
    }

    /// Whether any limit is set.
    fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_key.is_none() && self.named.is_empty()
    }

    /// Checks each limit can ever admit a request; the error names the limit (`global`,
    /// `per_key`, `named.alice`).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let problem = "needs per_second > 0 and burst >= 1";
        if self.global.is_some_and(|l| !l.is_valid()) {
            return Err(InvalidConfig::new("global", problem));
        }
        if self.per_key.is_some_and(|l| !l.is_valid()) {
            return Err(InvalidConfig::new("per_key", problem));
        }
        if let Some((name, _)) = self.named.iter().find(|(_, l)| !l.is_valid()) {
            return Err(InvalidConfig::new(
                format!("named.{}", toml_key(name)),
                problem,
            ));
        }
        Ok(())
    }
}

/// Buckets kept in Redis, shared by every replica (see [`RateLimitLayer::shared`]).
#[derive(Debug)]
struct SharedLimiter {
    redis: Redis,
    global: Option<(RateLimit, String)>,
    per_key: Option<(RateLimit, String)>,
    /// The named keys with a rate of their own, each with its bucket's Redis key.
    named: HashMap<String, (RateLimit, String)>,
}

/// Atomic token buckets on Redis server time: KEYS are the buckets (hashes of `t`okens and
/// `ts` in microseconds), ARGV their rate and burst in pairs. A request is admitted only when
/// every bucket holds a token, and only then takes one from each. Answers `{1, '0'}` or
/// `{0, seconds to wait}`.
static TOKEN_BUCKETS: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = {}
local wait = 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tok = tonumber(b[1])
  local ts = tonumber(b[2])
  if tok == nil or ts == nil then
    tok = burst
    ts = now
  end
  tok = math.min(burst, tok + math.max(0, now - ts) / 1000000 * rate)
  tokens[i] = tok
  if tok < 1 then
    local w = (1 - tok) / rate
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, tostring(wait)} end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 't', tostring(tokens[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {1, '0'}
",
    )
});

impl SharedLimiter {
    /// `Ok(Ok(()))` admitted, `Ok(Err(wait))` refused, `Err` Redis did not answer.
    async fn check(
        &self,
        key: Option<ClientKey>,
        name: Option<&ClientName>,
    ) -> Result<Result<(), Duration>, RedisUnavailable> {
        let mut buckets: Vec<(String, RateLimit)> = Vec::with_capacity(2);
        let own = name.and_then(|ClientName(name)| self.named.get(&**name));
        if let Some((limit, bucket)) = own {
            buckets.push((bucket.clone(), *limit));
        } else if let (Some((limit, prefix)), Some(ClientKey(key))) = (&self.per_key, key) {
            buckets.push((format!("{prefix}{key:016x}"), *limit));
        }
        if let Some((limit, name)) = &self.global {
            buckets.push((name.clone(), *limit));
        }
        if buckets.is_empty() {
            return Ok(Ok(()));
        }
        let (admitted, wait): (i64, String) = self
            .redis
            .run("rate_limit", |mut c| {
                let buckets = &buckets;
                async move {
                    let mut call = TOKEN_BUCKETS.prepare_invoke();
                    for (name, limit) in buckets {
                        call.key(name).arg(limit.per_second).arg(limit.burst);
                    }
                    call.invoke_async(&mut c).await
                }
            })
            .await?;
        if admitted == 1 {
            return Ok(Ok(()));
        }
        let wait = wait.parse::<f64>().unwrap_or(1.0).clamp(0.001, 86_400.0);
        Ok(Err(Duration::from_secs_f64(wait)))
    }
}

/// Limits request rates globally and per client key.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
    shared: Option<Arc<SharedLimiter>>,
}

impl RateLimitLayer {
    /// A layer with the limits of `config`, which is validated here.
    pub fn new(config: RateLimitConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let now = Instant::now();
        Ok(RateLimitLayer {
            limiter: Arc::new(Limiter {
                global: config.global.map(|l| (l, Mutex::new(Bucket::full(l, now)))),
                per_key: config.per_key.map(|l| (l, Mutex::new(HashMap::new()))),
                named: config
                    .named
                    .into_iter()
                    .map(|(name, l)| (name, (l, Mutex::new(Bucket::full(l, now)))))
                    .collect(),
            }),
            shared: None,
        })
    }

    /// A layer whose buckets live in `redis`, shared by every replica using the same Redis
    /// and prefix (keys `{prefix}rl:global`, `{prefix}rl:key:{fingerprint}` by the client key's
    /// [`ClientKey`] in 16 hex digits, so a key keeps its bucket wherever it sits in
    /// `client_api_keys`, and `{prefix}rl:name:{name}` for a named key with a rate of its own:
    /// never the secret), counted on Redis server time. While Redis
    /// does not answer, the in-process buckets are used in local mode and requests are refused
    /// with 503 in closed mode.
    pub fn shared(config: RateLimitConfig, redis: Redis) -> Result<Self, InvalidConfig> {
        if config.is_empty() {
            return Self::new(config);
        }
        let shared = SharedLimiter {
            global: config.global.map(|l| (l, redis.key("rl:global"))),
            per_key: config.per_key.map(|l| (l, redis.key("rl:key:"))),
            named: config
                .named
                .iter()
                .map(|(name, l)| (name.clone(), (*l, redis.key(&format!("rl:name:{name}")))))
                .collect(),
            redis,
        };
        let mut layer = Self::new(config)?;
        layer.shared = Some(Arc::new(shared));
        Ok(layer)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limiter: self.limiter.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimited<S> {
    inner: S,
    limiter: Arc<Limiter>,
    shared: Option<Arc<SharedLimiter>>,
}

impl<S, B> Service<Request<B>> for RateLimited<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let key = req.extensions().get::<ClientKey>().copied();
        // The name is looked up (and its `Arc` cloned) only when some key has its own rate.
        let name = if self.limiter.named.is_empty() {
            None
        } else {
            req.extensions().get::<ClientName>().cloned()
        };
        let Some(shared) = self.shared.clone() else {
            return match self.limiter.check(key, name.as_ref()) {
                Ok(()) => Either::Left(self.inner.call(req)),
                Err(wait) => Either::Right(Box::pin(ready(Ok(refusal(wait))))),
            };
        };
        // The inner service was made ready by `poll_ready`: keep that one, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Either::Right(Box::pin(async move {
            let verdict = match shared.check(key, name.as_ref()).await {
                Ok(verdict) => verdict,
                Err(RedisUnavailable) => match shared.redis.failure() {
                    FailureMode::Local => {
                        shared.redis.fallback("rate_limit");
                        limiter.check(key, name.as_ref())
                    }
                    FailureMode::Closed => {
                        shared.redis.fallback("closed");
                        return Ok(Redis::refusal());
                    }
                },
            };
            match verdict {
                Ok(()) => inner.call(req).await,
                Err(wait) => Ok(refusal(wait)),
            }
        }))
    }
}

/// The 429 of a request over a limit.
fn refusal(wait: Duration) -> Response {
    metrics::counter!("hunyuan_proxy_rate_limited_total").increment(1);
    ProxyError::RateLimited {
        message: "rate limit exceeded; retry after the time in Retry-After".into(),
        retry_after: Some(wait),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_the_rate() {
        let limit = RateLimit::new(2.0, 2);
        let start = Instant::now();
        let mut bucket = Bucket::full(limit, start);
        assert!(bucket.take(limit, start).is_ok());
        assert!(bucket.take(limit, start).is_ok());
        let wait = bucket.take(limit, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(bucket
            .take(limit, start + Duration::from_millis(600))
            .is_ok());
    }

    #[test]
    fn a_request_refused_by_one_limit_costs_nothing_from_the_other() {
        let layer = RateLimitLayer::new(
            RateLimitConfig::default()
                .global(RateLimit::new(1.0, 1))
                .per_key(RateLimit::new(0.001, 2)),
        )
        .unwrap();
        let start = Instant::now();
        let key = Some(ClientKey(7));
        assert!(layer.limiter.check_at(key, None, start).is_ok());
        // The global bucket is empty: refused, and the key's second token is kept.
        let wait = layer.limiter.check_at(key, None, start).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // Once the global bucket refilled, the key still has its second token.
        assert!(layer
            .limiter
            .check_at(key, None, start + Duration::from_millis(1100))
            .is_ok());
        assert!(
            layer
                .limiter
                .check_at(key, None, start + Duration::from_millis(2200))
                .is_err(),
            "the key's burst of 2 is spent"
        );
    }

    #[test]
    fn a_limit_that_admits_nothing_is_refused_when_the_layer_is_built() {
        let err = RateLimitLayer::new(RateLimitConfig::default().per_key(RateLimit::new(0.0, 1)))
            .unwrap_err();
        assert_eq!(err.field, "per_key");
        assert!(
            RateLimitLayer::new(RateLimitConfig::default().global(RateLimit::new(1.0, 0))).is_err()
        );
    }

    #[test]
    fn per_key_limits_are_separate() {
        let layer =
            RateLimitLayer::new(RateLimitConfig::default().per_key(RateLimit::new(0.001, 1)))
                .unwrap();
        assert!(layer.limiter.check(Some(ClientKey(0)), None).is_ok());
        assert!(layer.limiter.check(Some(ClientKey(0)), None).is_err());
        assert!(layer.limiter.check(Some(ClientKey(1)), None).is_ok());
        assert!(
            layer.limiter.check(None, None).is_ok(),
            "no key, no per-key limit"
        );
    }

    #[test]
    fn a_named_key_with_its_own_rate_uses_its_own_bucket() {
        let layer = RateLimitLayer::new(
            RateLimitConfig::default()
                .per_key(RateLimit::new(0.001, 1))
                .named("alice", RateLimit::new(0.001, 2)),
        )
        .unwrap();
        let alice = ClientName(Arc::from("alice"));
        let bob = ClientName(Arc::from("bob"));
        let start = Instant::now();
        // Alice (key 3) has a burst of 2 of her own, not the per-key 1.
        assert!(layer
            .limiter
            .check_at(Some(ClientKey(3)), Some(&alice), start)
            .is_ok());
        assert!(layer
            .limiter
            .check_at(Some(ClientKey(3)), Some(&alice), start)
            .is_ok());
        let wait = layer
            .limiter
            .check_at(Some(ClientKey(3)), Some(&alice), start)
            .unwrap_err();
        assert!((wait.as_secs_f64() - 1000.0).abs() < 1e-3, "{wait:?}");
        // Her requests took nothing from the per-key bucket of her index, and Bob (a named
        // key without a rate of his own) is on the per-key limit.
        assert!(layer
            .limiter
            .check_at(Some(ClientKey(3)), None, start)
            .is_ok());
        assert!(layer
            .limiter
            .check_at(Some(ClientKey(4)), Some(&bob), start)
            .is_ok());
        assert!(layer
            .limiter
            .check_at(Some(ClientKey(4)), Some(&bob), start)
            .is_err());
    }

    #[test]
    fn a_named_key_is_held_to_the_global_limit_too() {
        let layer = RateLimitLayer::new(
            RateLimitConfig::default()
                .global(RateLimit::new(0.001, 1))
                .named("alice", RateLimit::new(0.001, 5)),
        )
        .unwrap();
        let alice = ClientName(Arc::from("alice"));
        assert!(layer
            .limiter
            .check(Some(ClientKey(0)), Some(&alice))
            .is_ok());
        assert!(layer
            .limiter
            .check(Some(ClientKey(0)), Some(&alice))
            .is_err());
        let err =
            RateLimitLayer::new(RateLimitConfig::default().named("alice", RateLimit::new(1.0, 0)))
                .unwrap_err();
        assert_eq!(err.field, "named.alice");
    }
}
