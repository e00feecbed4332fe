//! Where cached values live: the [`Store`] trait and the in-process [`MemoryStore`] built on
//! `quick_cache`.
//!
//! The layer only talks to a store through [`Store`], so a shared store (several proxy
//! replicas behind one Redis, say) can be added later without touching
//! [`Cache`](super::Cache) or the layers that use it.

use super::key::{Digest, DigestHashBuilder};
use futures_util::future::BoxFuture;
use quick_cache::sync::{Cache as QuickCache, PlaceholderGuard};
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A value a cache can hold: cheap to clone (wrap big values in `Arc`) and able to tell its
/// size in bytes, for the byte budget and the statistics.
pub trait CacheValue: Clone + Send + Sync + 'static {
    /// The value's size in bytes (an estimate is fine; it is read once, at insertion).
    fn byte_size(&self) -> usize;
}

impl CacheValue for String {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl CacheValue for Arc<str> {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

/// What a store reports about itself, for [`CacheStats`](super::CacheStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreUsage {
    /// Entries held now.
    pub entries: usize,
    /// Bytes held by the values now.
    pub bytes: u64,
    /// Entries the store can hold.
    pub capacity: usize,
    /// The byte budget, when one is set.
    pub max_bytes: Option<u64>,
    /// Entries pushed out to make room, since start.
    pub evictions: u64,
    /// Entries dropped because their time to live had passed, since start.
    pub expirations: u64,
}

/// The answer of [`Store::lookup`].
pub enum Lookup<'a, V> {
    /// The value, present or loaded by another caller while this one waited.
    Found(V),
    /// The value is absent and this caller must load it; other callers of the same key wait
    /// until the slot is filled or dropped.
    Load(Box<dyn Slot<V> + Send + 'a>),
    /// Another caller's load did not finish within the wait.
    TimedOut,
}

impl<V> std::fmt::Debug for Lookup<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lookup::Found(_) => "Found",
            Lookup::Load(_) => "Load",
            Lookup::TimedOut => "TimedOut",
        })
    }
}

/// The right to fill one absent entry. Dropping it unfilled lets the next waiter load.
pub trait Slot<V> {
    /// Stores `value` (with the store's time to live) and wakes the waiters. Returns whether
    /// the value was stored (it is not when the entry was cleared meanwhile).
    fn fill(self: Box<Self>, value: V) -> bool;
}

/// A place to keep cached values, keyed by [`Digest`], each with a time to live.
pub trait Store<V>: Send + Sync + 'static {
    /// The value of `key`, if present and not expired. Never waits.
    fn get(&self, key: &Digest) -> Option<V>;

    /// The value of `key`, or the duty to load it; when another caller is loading it, waits up
    /// to `wait` for that load.
    fn lookup<'a>(&'a self, key: Digest, wait: Duration) -> BoxFuture<'a, Lookup<'a, V>>;

    /// Removes every entry; returns how many there were.
    fn clear(&self) -> usize;

    /// Size, capacity and turnover.
    fn usage(&self) -> StoreUsage;
}

/// A store behind a pointer, e.g. `Arc<dyn Store<V>>` to choose the store at run time.
impl<V, S: Store<V> + ?Sized> Store<V> for Arc<S> {
    fn get(&self, key: &Digest) -> Option<V> {
        (**self).get(key)
    }

    fn lookup<'a>(&'a self, key: Digest, wait: Duration) -> BoxFuture<'a, Lookup<'a, V>> {
        (**self).lookup(key, wait)
    }

    fn clear(&self) -> usize {
        (**self).clear()
    }

    fn usage(&self) -> StoreUsage {
        (**self).usage()
    }
}

/// A store chosen at run time (the proxy's description cache: memory alone, or memory in
/// front of Redis).
pub type DynStore<V> = Arc<dyn Store<V>>;

/// Sizes and lifetime of a [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most entries held (at least 1).
    pub max_entries: usize,
    /// Most bytes held by the values, when set (at least 1).
    pub max_bytes: Option<u64>,
    /// How long an entry lives after insertion.
    pub ttl: Duration,
}

#[derive(Clone)]
struct Stored<V> {
    value: V,
    expires: Instant,
    bytes: u64,
    weight: u64,
}

/// Weighs an entry so that both limits hold with one weight budget: with a byte budget each
/// entry weighs its bytes but at least `max_bytes / max_entries` (so no more than
/// `max_entries` fit); without one each entry weighs 1. Never 0.
#[derive(Clone, Copy)]
struct EntryWeighter;

impl<V> Weighter<Digest, Stored<V>> for EntryWeighter {
    fn weight(&self, _key: &Digest, stored: &Stored<V>) -> u64 {
        stored.weight
    }
}

/// Counts evictions.
#[derive(Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl<V> Lifecycle<Digest, Stored<V>> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Digest, _stored: Stored<V>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Quick<V> = QuickCache<Digest, Stored<V>, EntryWeighter, DigestHashBuilder, CountEvictions>;

/// The in-process store: a sharded `quick_cache` (CLOCK-Pro eviction, close to LRU with scan
/// resistance) with the expiry instant stored in each entry and concurrent loads of one key
/// coalesced.
pub struct MemoryStore<V> {
    cache: Quick<V>,
    limits: StoreLimits,
    min_weight: u64,
    evictions: Arc<AtomicU64>,
    expirations: AtomicU64,
}

impl<V> std::fmt::Debug for MemoryStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("limits", &self.limits)
            .finish()
    }
}

impl<V: CacheValue> MemoryStore<V> {
    /// A store with these limits (0 limits are raised to 1).
    pub fn new(limits: StoreLimits) -> Self {
        let max_entries = limits.max_entries.max(1);
        let max_bytes = limits.max_bytes.map(|b| b.max(1));
        let (capacity, min_weight) = match max_bytes {
            Some(bytes) => (bytes, (bytes / max_entries as u64).max(1)),
            None => (max_entries as u64, 1),
        };
        let evictions = Arc::new(AtomicU64::new(0));
        let options = OptionsBuilder::new()
            .estimated_items_capacity(max_entries)
            .weight_capacity(capacity)
            .build()
            .expect("capacity and item estimate are set");
        let cache = QuickCache::with_options(
            options,
            EntryWeighter,
            DigestHashBuilder,
            CountEvictions(evictions.clone()),
        );
        MemoryStore {
            cache,
            limits: StoreLimits {
                max_entries,
                max_bytes,
                ttl: limits.ttl,
            },
            min_weight,
            evictions,
            expirations: AtomicU64::new(0),
        }
    }

    fn stored(&self, value: V) -> Stored<V> {
        let bytes = value.byte_size() as u64;
        let weight = match self.limits.max_bytes {
            Some(_) => bytes.max(self.min_weight),
            None => 1,
        };
        Stored {
            value,
            expires: Instant::now() + self.limits.ttl,
            bytes,
            weight,
        }
    }

    /// Inserts `value` under `key` directly (no coalescing), e.g. to warm the store.
    pub fn insert(&self, key: Digest, value: V) {
        self.cache.insert(key, self.stored(value));
    }

    /// Removes `key` if its entry has expired; counts the expiration.
    fn expire(&self, key: &Digest) {
        let now = Instant::now();
        if self.cache.remove_if(key, |s| s.expires <= now).is_some() {
            self.expirations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct MemorySlot<'a, V> {
    guard:
        PlaceholderGuard<'a, Digest, Stored<V>, EntryWeighter, DigestHashBuilder, CountEvictions>,
    store: &'a MemoryStore<V>,
}

impl<V: CacheValue> Slot<V> for MemorySlot<'_, V> {
    fn fill(self: Box<Self>, value: V) -> bool {
        let stored = self.store.stored(value);
        self.guard.insert(stored).is_ok()
    }
}

impl<V: CacheValue> Store<V> for MemoryStore<V> {
    fn get(&self, key: &Digest) -> Option<V> {
        let stored = self.cache.get(key)?;
        if stored.expires <= Instant::now() {
            self.expire(key);
            return None;
        }
        Some(stored.value)
    }

    fn lookup<'a>(&'a self, key: Digest, wait: Duration) -> BoxFuture<'a, Lookup<'a, V>> {
        Box::pin(async move {
            let deadline = Instant::now() + wait;
            loop {
                let found =
                    tokio::time::timeout_at(deadline, self.cache.get_value_or_guard_async(&key))
                        .await;
                match found {
                    Err(_) => return Lookup::TimedOut,
                    Ok(Ok(stored)) if stored.expires <= Instant::now() => self.expire(&key),
                    Ok(Ok(stored)) => return Lookup::Found(stored.value),
                    Ok(Err(guard)) => {
                        return Lookup::Load(Box::new(MemorySlot { guard, store: self }))
                    }
                }
            }
        })
    }

    fn clear(&self) -> usize {
        self.cache.drain().count()
    }

    fn usage(&self) -> StoreUsage {
        // Drop what has expired first, so `entries` and `bytes` tell what is really usable.
        let now = Instant::now();
        let expired = AtomicU64::new(0);
        self.cache.retain(|_, s| {
            let keep = s.expires > now;
            if !keep {
                expired.fetch_add(1, Ordering::Relaxed);
            }
            keep
        });
        self.expirations
            .fetch_add(expired.into_inner(), Ordering::Relaxed);
        let (entries, bytes) = self
            .cache
            .iter()
            .fold((0usize, 0u64), |(n, b), (_, s)| (n + 1, b + s.bytes));
        StoreUsage {
            entries,
            bytes,
            capacity: self.limits.max_entries,
            max_bytes: self.limits.max_bytes,
            evictions: self.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Digest {
        Digest([n; 32])
    }

    fn store(max_entries: usize, max_bytes: Option<u64>, ttl: Duration) -> MemoryStore<String> {
        MemoryStore::new(StoreLimits {
            max_entries,
            max_bytes,
            ttl,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let s = store(10, None, Duration::from_secs(5));
        s.insert(key(1), "one".into());
        assert_eq!(s.get(&key(1)).as_deref(), Some("one"));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(s.get(&key(1)), None);
        assert_eq!(s.usage().expirations, 1);
        assert_eq!(s.usage().entries, 0);
    }

    #[tokio::test]
    async fn capacity_in_entries_is_kept() {
        let s = store(40, None, Duration::from_secs(60));
        for n in 0..200u8 {
            s.insert(key(n), format!("v{n}"));
        }
        let usage = s.usage();
        assert!(usage.entries <= 40, "{usage:?}");
        assert!(usage.evictions >= 160, "{usage:?}");
    }

    #[tokio::test]
    async fn byte_budget_is_kept() {
        let s = store(1000, Some(1000), Duration::from_secs(60));
        for n in 0..50u8 {
            s.insert(key(n), "x".repeat(100));
        }
        let usage = s.usage();
        assert!(usage.bytes <= 1000, "{usage:?}");
        assert!(usage.entries >= 1, "{usage:?}");
    }

    #[tokio::test]
    async fn lookup_gives_one_loader_and_the_others_wait() {
        let s = store(10, None, Duration::from_secs(60));
        let Lookup::Load(slot) = s.lookup(key(7), Duration::from_secs(1)).await else {
            panic!("first caller loads");
        };
        let waiter = s.lookup(key(7), Duration::from_secs(5));
        let filler = async {
            tokio::task::yield_now().await;
            assert!(slot.fill("seven".into()));
        };
        let (found, ()) = tokio::join!(waiter, filler);
        assert!(matches!(found, Lookup::Found(v) if v == "seven"));
        assert_eq!(s.clear(), 1);
        assert_eq!(s.usage().entries, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_after_the_wait() {
        let s = store(10, None, Duration::from_secs(60));
        let Lookup::Load(_slot) = s.lookup(key(9), Duration::from_secs(1)).await else {
            panic!("first caller loads");
        };
        let found = s.lookup(key(9), Duration::from_millis(50)).await;
        assert!(matches!(found, Lookup::TimedOut));
    }
}
