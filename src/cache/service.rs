//! [`Cache<S>`]: the service made by [`CacheLayer`](super::CacheLayer).

use super::key::CacheKey;
use super::key::Digest;
use super::stats::{CacheStats, Counters};
use super::store::{CacheValue, Lookup, Store};
use super::CacheConfig;
use futures_util::future::BoxFuture;
use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

/// Where a cached answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Found in the store.
    Hit,
    /// Loaded by another caller while this one waited (no call of its own).
    Coalesced,
    /// This caller called the inner service.
    Miss,
}

impl CacheOutcome {
    /// Whether the inner service was spared a call.
    pub fn is_hit(self) -> bool {
        !matches!(self, CacheOutcome::Miss)
    }

    /// `hit`, `coalesced` or `miss`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Coalesced => "coalesced",
            CacheOutcome::Miss => "miss",
        }
    }
}

/// A response of [`Cache<S>`]: the inner service's response and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<V> {
    /// The response.
    pub value: V,
    /// Hit, coalesced wait or miss.
    pub outcome: CacheOutcome,
}

/// What the layer and every service it made share: the store, the counters, the settings.
pub(crate) struct Shared<V, St> {
    pub(crate) store: St,
    pub(crate) counters: Counters,
    pub(crate) config: CacheConfig,
    pub(crate) failures: Failures,
    pub(crate) value: PhantomData<fn() -> V>,
}

/// Failed loads, kept only for the callers that were already waiting on them.
///
/// When a load fails, the store hands the next waiter the duty to load. Without this record
/// every waiter would call the failing service in turn, one after another. With it, a waiter
/// that joined before the failure gets the same error at once; a caller arriving after the
/// failure calls again (failures are never cached).
#[derive(Default)]
pub(crate) struct Failures {
    /// Ticks once per failure; a lookup notes the tick it started at, to tell whether a
    /// failure happened while it waited.
    clock: AtomicU64,
    recent: Mutex<HashMap<Digest, Failure>>,
}

struct Failure {
    tick: u64,
    at: Instant,
    error: Box<dyn Any + Send + Sync>,
}

impl Failures {
    /// The tick a lookup starts at.
    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Records that a load of `key` failed with `error`; forgets failures older than `keep`.
    fn record<E: Clone + Send + Sync + 'static>(&self, key: Digest, error: &E, keep: Duration) {
        let tick = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|_, f| now.duration_since(f.at) < keep);
        recent.insert(
            key,
            Failure {
                tick,
                at: now,
                error: Box::new(error.clone()),
            },
        );
    }

    /// The error of a load of `key` that failed after tick `joined`.
    fn since<E: Clone + 'static>(&self, key: &Digest, joined: u64) -> Option<E> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let failure = recent.get(key).filter(|f| f.tick > joined)?;
        failure.error.downcast_ref::<E>().cloned()
    }

    /// Forgets `key`'s failure after a successful load.
    fn forget(&self, key: &Digest) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.remove(key);
    }
}

/// The admin side of a cache, type-erased for [`CacheHandle`](super::CacheHandle).
pub(crate) trait CacheControl: Send + Sync {
    fn stats(&self) -> CacheStats;
    fn clear(&self) -> usize;
}

impl<V: CacheValue, St: Store<V>> CacheControl for Shared<V, St> {
    fn stats(&self) -> CacheStats {
        CacheStats::new(
            self.counters.snapshot(),
            self.store.usage(),
            self.config.ttl,
        )
    }

    fn clear(&self) -> usize {
        self.store.clear()
    }
}

/// Answers a keyed request from the store when it can; otherwise calls the inner service once
/// per key (concurrent callers of the same key wait for that one call) and stores a success.
/// Failures are never stored: callers that were waiting on a failed call get its error (so
/// they do not retry one after another), and the next caller calls again.
///
/// `poll_ready` is always ready: the inner service is called only on a miss, so it is cloned
/// and driven to readiness inside the response future.
pub struct Cache<S, V, St> {
    inner: S,
    shared: Arc<Shared<V, St>>,
}

impl<S: Clone, V, St> Clone for Cache<S, V, St> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: std::fmt::Debug, V, St> std::fmt::Debug for Cache<S, V, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<S, V, St> Cache<S, V, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<V, St>>) -> Self {
        Cache { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, V, St> Cache<S, V, St>
where
    V: CacheValue,
    St: Store<V>,
{
    /// A handle for statistics and clearing.
    pub fn handle(&self) -> super::CacheHandle {
        super::CacheHandle(self.shared.clone())
    }
}

impl<S, R, V, St> Service<R> for Cache<S, V, St>
where
    R: CacheKey + Send + 'static,
    S: Service<R, Response = V> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Clone + Send + Sync + 'static,
    V: CacheValue,
    St: Store<V>,
{
    type Response = Cached<V>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Cached<V>, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        let key = req.cache_key();
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let counters = &shared.counters;
            let log = shared.config.log_outcomes;
            if let Some(value) = shared.store.get(&key) {
                Counters::bump(&counters.hits);
                if log {
                    tracing::debug!(key = %key, outcome = "hit", "cache");
                }
                return Ok(Cached {
                    value,
                    outcome: CacheOutcome::Hit,
                });
            }
            let joined = shared.failures.now();
            match shared.store.lookup(key, shared.config.wait).await {
                Lookup::Found(value) => {
                    Counters::bump(&counters.hits);
                    Counters::bump(&counters.coalesced_waits);
                    if log {
                        tracing::debug!(key = %key, outcome = "coalesced", "cache");
                    }
                    Ok(Cached {
                        value,
                        outcome: CacheOutcome::Coalesced,
                    })
                }
                Lookup::Load(slot) => {
                    if let Some(error) = shared.failures.since::<S::Error>(&key, joined) {
                        // The call this caller waited on failed: share its error.
                        Counters::bump(&counters.shared_failures);
                        if log {
                            tracing::debug!(key = %key, outcome = "shared_failure", "cache");
                        }
                        return Err(error);
                    }
                    Counters::bump(&counters.misses);
                    if log {
                        tracing::debug!(key = %key, outcome = "miss", "cache");
                    }
                    match inner.oneshot(req).await {
                        Ok(value) => {
                            shared.failures.forget(&key);
                            if slot.fill(value.clone()) {
                                Counters::bump(&counters.insertions);
                            }
                            Ok(Cached {
                                value,
                                outcome: CacheOutcome::Miss,
                            })
                        }
                        Err(error) => {
                            // Recorded before the slot is dropped, so the waiter it wakes sees
                            // it. Nothing is stored.
                            Counters::bump(&counters.failures);
                            shared.failures.record(key, &error, shared.config.wait);
                            drop(slot);
                            Err(error)
                        }
                    }
                }
                Lookup::TimedOut => {
                    Counters::bump(&counters.misses);
                    Counters::bump(&counters.wait_timeouts);
                    if log {
                        tracing::debug!(key = %key, outcome = "wait_timeout", "cache");
                    }
                    // The loader is slow or failing; call on our own rather than queue behind
                    // it. The loader still owns the entry, so this value is not stored.
                    let value = inner
                        .oneshot(req)
                        .await
                        .inspect_err(|_| Counters::bump(&counters.failures))?;
                    Ok(Cached {
                        value,
                        outcome: CacheOutcome::Miss,
                    })
                }
            }
        })
    }
}
