//! Cache statistics: counters kept by the layer, sizes reported by the store.

use super::store::StoreUsage;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a cache's statistics, as served by `GET /cache/stats` and in `GET /status`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheStats {
    /// Lookups answered without calling the inner service (coalesced waits included).
    pub hits: u64,
    /// Lookups that called the inner service.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before the first lookup.
    pub hit_rate: f64,
    /// Hits that waited for another caller's call to the inner service for the same key.
    pub coalesced_waits: u64,
    /// Waits that gave up (the other caller's call took too long) and called the inner
    /// service themselves; counted among the misses.
    pub wait_timeouts: u64,
    /// Calls of the inner service that failed (nothing is stored for them).
    pub failures: u64,
    /// Callers that waited on a call that failed and got its error without calling again.
    pub shared_failures: u64,
    /// Values stored.
    pub insertions: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Entries dropped because their time to live had passed.
    pub expirations: u64,
    /// Entries held now.
    pub entries: usize,
    /// Bytes held by the values now.
    pub bytes: u64,
    /// Entries the cache can hold.
    pub capacity: usize,
    /// The byte budget, when one is set.
    pub max_bytes: Option<u64>,
    /// Each entry's time to live, in seconds.
    pub ttl_seconds: u64,
}

impl CacheStats {
    /// Combines the layer's counters with the store's usage.
    pub fn new(counters: CounterSnapshot, usage: StoreUsage, ttl: Duration) -> Self {
        CacheStats {
            hits: counters.hits,
            misses: counters.misses,
            hit_rate: hit_rate(counters.hits, counters.misses),
            coalesced_waits: counters.coalesced_waits,
            wait_timeouts: counters.wait_timeouts,
            failures: counters.failures,
            shared_failures: counters.shared_failures,
            insertions: counters.insertions,
            evictions: usage.evictions,
            expirations: usage.expirations,
            entries: usage.entries,
            bytes: usage.bytes,
            capacity: usage.capacity,
            max_bytes: usage.max_bytes,
            ttl_seconds: ttl.as_secs(),
        }
    }
}

/// `hits / (hits + misses)`, or 0 when there was no lookup.
pub fn hit_rate(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

/// The layer's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// See [`CacheStats::hits`].
    pub hits: u64,
    /// See [`CacheStats::misses`].
    pub misses: u64,
    /// See [`CacheStats::coalesced_waits`].
    pub coalesced_waits: u64,
    /// See [`CacheStats::wait_timeouts`].
    pub wait_timeouts: u64,
    /// See [`CacheStats::failures`].
    pub failures: u64,
    /// See [`CacheStats::shared_failures`].
    pub shared_failures: u64,
    /// See [`CacheStats::insertions`].
    pub insertions: u64,
}

/// The layer's live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) wait_timeouts: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) shared_failures: AtomicU64,
    pub(crate) insertions: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced_waits: self.coalesced_waits.load(Ordering::Relaxed),
            wait_timeouts: self.wait_timeouts.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            shared_failures: self.shared_failures.load(Ordering::Relaxed),
            insertions: self.insertions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_arithmetic() {
        assert_eq!(hit_rate(0, 0), 0.0);
        assert_eq!(hit_rate(3, 1), 0.75);
        assert_eq!(hit_rate(0, 5), 0.0);
        assert_eq!(hit_rate(5, 0), 1.0);
    }

    #[test]
    fn stats_combine_counters_and_usage() {
        let counters = CounterSnapshot {
            hits: 9,
            misses: 3,
            coalesced_waits: 2,
            wait_timeouts: 1,
            failures: 1,
            shared_failures: 0,
            insertions: 2,
        };
        let usage = StoreUsage {
            entries: 2,
            bytes: 120,
            capacity: 1000,
            max_bytes: None,
            evictions: 0,
            expirations: 1,
        };
        let stats = CacheStats::new(counters, usage, Duration::from_secs(3600));
        assert_eq!(stats.hit_rate, 0.75);
        assert_eq!(stats.ttl_seconds, 3600);
        assert_eq!(stats.entries, 2);
        let json = serde_json::to_value(stats).unwrap();
        assert_eq!(json["coalesced_waits"], 2);
        assert_eq!(json["max_bytes"], serde_json::Value::Null);
    }
}
