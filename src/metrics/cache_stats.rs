//! Publishing the description cache's statistics through the `metrics` facade.

use crate::cache::CacheHandle;

/// Publishes the cache's entries gauge and evictions counter (evictions to make room plus
/// expirations) through the `metrics` facade.
pub fn publish_cache_stats(cache: &CacheHandle) {
    let stats = cache.stats();
    metrics::gauge!(super::names::CACHE_ENTRIES).set(stats.entries as f64);
    metrics::counter!(super::names::CACHE_EVICTIONS).absolute(stats.evictions + stats.expirations);
}
