//! The hook through which a description cache reports its statistics to metrics, health and
//! `/status`, without this module knowing the cache's type.

use serde::Serialize;

/// A cache's statistics at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Entries held now.
    pub entries: u64,
    /// The most entries it may hold.
    pub capacity: u64,
    /// Lookups that found an entry (lifetime).
    pub hits: u64,
    /// Lookups that found none (lifetime).
    pub misses: u64,
    /// Entries evicted to make room or because they expired (lifetime).
    pub evictions: u64,
}

impl CacheStats {
    /// Hits over lookups, `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// Anything that can report [`CacheStats`]: implement it for the description cache and hand it
/// to [`Proxy::set_cache_stats`](crate::server::Proxy::set_cache_stats).
pub trait CacheStatsSource: Send + Sync + 'static {
    /// The statistics now. Called at most once per scrape, status request, health check and
    /// alert check: keep it cheap.
    fn cache_stats(&self) -> CacheStats;
}

/// Publishes the cache's entries gauge and evictions counter through the `metrics` facade.
pub fn publish_cache_stats(source: &dyn CacheStatsSource) {
    let stats = source.cache_stats();
    metrics::gauge!(super::names::CACHE_ENTRIES).set(stats.entries as f64);
    metrics::counter!(super::names::CACHE_EVICTIONS).absolute(stats.evictions);
}
