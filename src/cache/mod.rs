//! A generic response cache as a tower layer: [`CacheLayer`] wraps any service whose request
//! yields a [`CacheKey`], answers repeated keys from a [`Store`], and makes concurrent callers
//! of one new key share a single call of the inner service.
//!
//! The proxy uses it in front of the image describer (see [`cascade`](crate::cascade)), keyed
//! by image digest, vision model and prompt version; it fits any other keyed service too.
//!
//! - **Store**: [`MemoryStore`] over `quick_cache` by default: at most `max_entries` entries
//!   and, optionally, `max_bytes` bytes (a weigher, never 0); CLOCK-Pro eviction (LRU-like,
//!   scan-resistant); each entry carries its own expiry instant (`ttl` from insertion).
//!   Behind the [`Store`] trait, so a shared store can replace it without touching the layer.
//! - **Coalescing**: the first caller of an absent key loads it; others wait (at most
//!   `wait`) for that load. A failed load stores nothing: the callers that were waiting on it
//!   get its error at once (the inner error type is `Clone`), and the next caller tries again.
//!   A waiter whose wait runs out calls the inner service itself. So a slow or failing loader
//!   never stalls the waiters one after another.
//! - **Statistics**: [`CacheStats`] through a [`CacheHandle`] (hits, misses, hit rate,
//!   coalesced waits, wait timeouts, failures, shared failures, insertions, evictions,
//!   expirations, entries, bytes, capacity, ttl).
//! - **Logging**: with `log_outcomes`, each lookup is logged at debug with the key's 12-digit
//!   short digest, never the request or the value.
//!
//! ```
//! use hunyuan_proxy::cache::{CacheConfig, CacheKey, CacheLayer, CacheOutcome, Digest};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! struct Square(u8);
//! impl CacheKey for Square {
//!     fn cache_key(&self) -> Digest {
//!         Digest([self.0; 32])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = CacheLayer::new(CacheConfig::default()).unwrap();
//! let squares = layer.layer(service_fn(|Square(n): Square| async move {
//!     Ok::<_, std::convert::Infallible>((u32::from(n) * u32::from(n)).to_string())
//! }));
//! let first = squares.clone().oneshot(Square(12)).await.unwrap();
//! let again = squares.oneshot(Square(12)).await.unwrap();
//! assert_eq!((first.value.as_str(), first.outcome), ("144", CacheOutcome::Miss));
//! assert_eq!((again.value.as_str(), again.outcome), ("144", CacheOutcome::Hit));
//! assert_eq!(layer.handle().stats().hits, 1);
//! # }
//! ```

mod key;
mod layer;
mod service;
mod stats;
mod store;

pub use key::{CacheKey, Digest, DigestHashBuilder, DigestHasher};
pub use layer::CacheLayer;
pub use service::{Cache, CacheOutcome, Cached};
pub use stats::{hit_rate, CacheStats, CounterSnapshot};
pub use store::{CacheValue, DynStore, Lookup, MemoryStore, Slot, Store, StoreLimits, StoreUsage};

use service::CacheControl;
use std::sync::Arc;
use std::time::Duration;

/// How a [`CacheLayer`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held (config key `cache_max_size`; default 1000).
    pub max_entries: usize,
    /// Most bytes held by the values, when set (default: no byte budget).
    pub max_bytes: Option<u64>,
    /// Each entry's time to live (config key `cache_ttl`; default 1 hour).
    pub ttl: Duration,
    /// How long a caller waits for another caller's load of the same key before calling the
    /// inner service itself (default 60 s).
    pub wait: Duration,
    /// Log each lookup's outcome at debug level (config key `enable_cache_logging`).
    pub log_outcomes: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 1000,
            max_bytes: None,
            ttl: Duration::from_secs(3600),
            wait: Duration::from_secs(60),
            log_outcomes: false,
        }
    }
}

impl CacheConfig {
    /// Sets the most entries held.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets a byte budget.
    pub fn max_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets the time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how long a caller waits for another caller's load.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Logs each lookup's outcome at debug level.
    pub fn log_outcomes(mut self, on: bool) -> Self {
        self.log_outcomes = on;
        self
    }

    /// Checks the sizes and times; the error names the first bad one.
    pub fn validate(&self) -> Result<(), crate::error::InvalidConfig> {
        let invalid =
            |field: &str, problem: &str| Err(crate::error::InvalidConfig::new(field, problem));
        if self.max_entries == 0 {
            return invalid("max_entries", "must be at least 1");
        }
        if self.max_bytes == Some(0) {
            return invalid("max_bytes", "must be at least 1 when set");
        }
        if self.ttl.is_zero() {
            return invalid("ttl", "must be longer than zero");
        }
        if self.wait.is_zero() {
            return invalid("wait", "must be longer than zero");
        }
        Ok(())
    }
}

/// A cloneable handle on a cache's statistics and contents, for admin routes.
#[derive(Clone)]
pub struct CacheHandle(Arc<dyn CacheControl>);

impl CacheHandle {
    /// The statistics now (drops expired entries first).
    pub fn stats(&self) -> CacheStats {
        self.0.stats()
    }

    /// Removes every entry; returns how many there were. Counters are kept.
    pub fn clear(&self) -> usize {
        self.0.clear()
    }
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheHandle").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{service_fn, Layer, ServiceExt};

    #[derive(Clone)]
    struct Req(u8);
    impl CacheKey for Req {
        fn cache_key(&self) -> Digest {
            Digest([self.0; 32])
        }
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let layer = CacheLayer::<String>::new(CacheConfig::default()).unwrap();
        let svc = layer.layer(service_fn(move |Req(n): Req| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::convert::Infallible>(format!("v{n}"))
            }
        }));
        let answers =
            futures_util::future::join_all((0..8).map(|_| svc.clone().oneshot(Req(3)))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|a| a.as_ref().unwrap().value == "v3"));
        let stats = layer.handle().stats();
        assert_eq!((stats.misses, stats.hits, stats.coalesced_waits), (1, 7, 7));
        assert_eq!((stats.insertions, stats.entries), (1, 1));
        assert_eq!(stats.bytes, 2);
    }

    #[tokio::test]
    async fn failures_are_not_stored_and_waiters_retry() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let layer = CacheLayer::<String>::new(CacheConfig::default()).unwrap();
        let svc = layer.layer(service_fn(move |_: Req| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err("down")
                } else {
                    Ok("up".to_owned())
                }
            }
        }));
        assert!(svc.clone().oneshot(Req(1)).await.is_err());
        let again = svc.clone().oneshot(Req(1)).await.unwrap();
        assert_eq!(again.outcome, CacheOutcome::Miss);
        assert_eq!(
            svc.oneshot(Req(1)).await.unwrap().outcome,
            CacheOutcome::Hit
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(layer.handle().clear(), 1);
        assert_eq!(layer.handle().stats().entries, 0);
    }

    #[tokio::test]
    async fn waiters_on_a_failed_call_share_its_error_and_later_callers_retry() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let layer = CacheLayer::<String>::new(CacheConfig::default()).unwrap();
        let svc = layer.layer(service_fn(move |_: Req| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                if n == 0 {
                    Err("down")
                } else {
                    Ok("up".to_owned())
                }
            }
        }));
        let answers =
            futures_util::future::join_all((0..8).map(|_| svc.clone().oneshot(Req(4)))).await;
        assert!(answers.iter().all(|a| a == &Err("down")));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one failing call, not eight in turn"
        );
        let stats = layer.handle().stats();
        assert_eq!((stats.failures, stats.shared_failures), (1, 7));
        assert_eq!(stats.entries, 0);
        assert_eq!(svc.oneshot(Req(4)).await.unwrap().value, "up");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_loader_does_not_hold_waiters_past_the_wait() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let layer =
            CacheLayer::<String>::new(CacheConfig::default().wait(Duration::from_secs(1))).unwrap();
        let svc = layer.layer(service_fn(move |_: Req| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok::<_, std::convert::Infallible>(format!("call {n}"))
            }
        }));
        let slow = tokio::spawn(svc.clone().oneshot(Req(2)));
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let fast = svc.clone().oneshot(Req(2)).await.unwrap();
        assert_eq!(fast.value, "call 1");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(slow.await.unwrap().unwrap().value, "call 0");
        assert_eq!(layer.handle().stats().wait_timeouts, 1);
    }
}
