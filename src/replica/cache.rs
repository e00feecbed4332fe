//! [`TieredStore`]: a cache [`Store`] in two levels, the in-process [`MemoryStore`] in front
//! of Redis, with loads of one new key coalesced across replicas.

use super::Redis;
use crate::cache::{CacheValue, Digest, Lookup, MemoryStore, Slot, Store, StoreUsage};
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A cache value that can be kept in Redis.
pub trait SharedValue: CacheValue {
    /// The bytes stored in Redis.
    fn to_bytes(&self) -> Vec<u8>;
    /// The value back from its bytes (`None`: not a value of this type; treated as absent).
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl SharedValue for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl SharedValue for Arc<str> {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes).ok().map(Arc::from)
    }
}

/// The value if present; else takes the load lock (`SET NX PX`) when nobody holds it.
/// Answers `{1, value}`, `{2, ''}` (lock taken: load it) or `{0, ''}` (another replica loads).
static GET_OR_LOCK: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
",
    )
});

/// Stores the value (unless ARGV[1] is empty) and releases the lock if this loader holds it.
static FILL_AND_UNLOCK: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
",
    )
});

/// How often a replica waiting for another replica's load looks again.
const POLL: Duration = Duration::from_millis(20);

/// Entries larger than this many bytes are kept in memory only (default).
const DEFAULT_MAX_ENTRY_BYTES: usize = 64 * 1024;

/// A two-level store: the in-process [`MemoryStore`] first (a hit costs no round trip), then
/// Redis (a hit there fills memory). A key absent from both is loaded by one caller across
/// all replicas: it takes a lock in Redis (`SET NX PX`, expiring after the wait, so a crashed
/// loader cannot block the key), the others poll for the value every 20 ms, and a waiter
/// whose wait runs out loads it itself. A failed load stores nothing and releases the lock.
///
/// When Redis fails or is slow, the store falls back at once to its memory level (counted in
/// `hunyuan_proxy_redis_fallbacks_total{user="cache"}`).
pub struct TieredStore<V> {
    memory: MemoryStore<V>,
    redis: Redis,
    namespace: String,
    ttl: Duration,
    max_entry_bytes: usize,
}

impl<V> std::fmt::Debug for TieredStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish()
    }
}

impl<V> TieredStore<V> {
    /// The value's and the load lock's Redis keys.
    fn keys(&self, key: &Digest) -> (String, String) {
        let hex = key.to_hex();
        (
            self.redis.key(&format!("{}:{hex}", self.namespace)),
            self.redis.key(&format!("{}-lock:{hex}", self.namespace)),
        )
    }
}

impl<V: SharedValue> TieredStore<V> {
    /// `memory` in front of `redis`; keys are `{prefix}{namespace}:{digest}`, entries live
    /// `ttl` in Redis.
    pub fn new(memory: MemoryStore<V>, redis: Redis, namespace: &str, ttl: Duration) -> Self {
        TieredStore {
            memory,
            redis,
            namespace: namespace.to_owned(),
            ttl,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }

    /// Entries larger than `bytes` are kept in memory only (default 64 KiB).
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// Looks in Redis until the value is there, this caller holds the lock, Redis fails or
    /// `deadline` passes.
    async fn shared_lookup(&self, key: &Digest, deadline: Instant) -> Shared<V> {
        let (value_key, lock_key) = self.keys(key);
        let token = new_token();
        let lock_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1000) as u64;
        loop {
            let answer = self
                .redis
                .run("cache_get", |mut c| {
                    let (value_key, lock_key, token) = (&value_key, &lock_key, &token);
                    async move {
                        GET_OR_LOCK
                            .key(value_key)
                            .key(lock_key)
                            .arg(token)
                            .arg(lock_ms)
                            .invoke_async::<(i64, Vec<u8>)>(&mut c)
                            .await
                    }
                })
                .await;
            match answer {
                Err(_) => return Shared::Unavailable,
                Ok((1, bytes)) => match V::from_bytes(&bytes) {
                    Some(value) => return Shared::Found(value),
                    None => return Shared::Unavailable,
                },
                Ok((2, _)) => return Shared::Locked(token),
                Ok(_) => {}
            }
            if Instant::now() + POLL >= deadline {
                return Shared::TimedOut;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Deletes the keys matching `pattern`, a `SCAN` batch at a time; stops if Redis fails.
async fn clear_shared(redis: &Redis, pattern: &str) {
    let mut cursor: u64 = 0;
    loop {
        let batch = redis
            .run("cache_clear", |mut c| async move {
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async::<(u64, Vec<String>)>(&mut c)
                    .await
            })
            .await;
        let Ok((next, keys)) = batch else {
            return;
        };
        if !keys.is_empty() {
            let deleted = redis
                .run("cache_clear", |mut c| async move {
                    ::redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            if deleted.is_err() {
                return;
            }
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

enum Shared<V> {
    Found(V),
    Locked(String),
    TimedOut,
    Unavailable,
}

fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The right to fill one entry in both levels.
struct TieredSlot<'a, V> {
    memory: Option<Box<dyn Slot<V> + Send + 'a>>,
    store: &'a TieredStore<V>,
    key: Digest,
    /// The Redis lock's token when this caller holds it.
    token: Option<String>,
    /// Whether the value goes to Redis too.
    share: bool,
}

impl<V: SharedValue> TieredSlot<'_, V> {
    /// Writes `bytes` (empty: nothing) to Redis and releases the lock, in the background.
    fn finish(&mut self, bytes: Vec<u8>) {
        let token = self.token.take();
        if token.is_none() && bytes.is_empty() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let redis = self.store.redis.clone();
        let (value_key, lock_key) = self.store.keys(&self.key);
        let ttl_ms = self.store.ttl.as_millis().max(1) as u64;
        tokio::spawn(async move {
            let token = token.unwrap_or_default();
            let _ = redis
                .run("cache_set", |mut c| async move {
                    FILL_AND_UNLOCK
                        .key(&value_key)
                        .key(&lock_key)
                        .arg(bytes)
                        .arg(ttl_ms)
                        .arg(token)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
        });
    }
}

impl<V: SharedValue> Slot<V> for TieredSlot<'_, V> {
    fn fill(mut self: Box<Self>, value: V) -> bool {
        let bytes = if self.share && value.byte_size() <= self.store.max_entry_bytes {
            value.to_bytes()
        } else {
            Vec::new()
        };
        let stored = self
            .memory
            .take()
            .is_some_and(|slot| slot.fill(value.clone()));
        self.finish(bytes);
        stored
    }
}

impl<V> Drop for TieredSlot<'_, V> {
    fn drop(&mut self) {
        // Dropped unfilled (the load failed): release the lock so another replica may load.
        let Some(token) = self.token.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let redis = self.store.redis.clone();
        let (_, lock_key) = self.store.keys(&self.key);
        tokio::spawn(async move {
            let _ = redis
                .run("cache_unlock", |mut c| async move {
                    FILL_AND_UNLOCK
                        .key(&lock_key)
                        .key(&lock_key)
                        .arg("")
                        .arg(1)
                        .arg(token)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
        });
    }
}

impl<V: SharedValue> Store<V> for TieredStore<V> {
    fn get(&self, key: &Digest) -> Option<V> {
        self.memory.get(key)
    }

    fn lookup<'a>(&'a self, key: Digest, wait: Duration) -> BoxFuture<'a, Lookup<'a, V>> {
        Box::pin(async move {
            let deadline = Instant::now() + wait;
            // Callers in this process coalesce on the memory level first.
            let memory = match self.memory.lookup(key, wait).await {
                Lookup::Load(slot) => slot,
                other => return other,
            };
            let (token, share) = match self.shared_lookup(&key, deadline).await {
                Shared::Found(value) => {
                    memory.fill(value.clone());
                    return Lookup::Found(value);
                }
                Shared::Locked(token) => (Some(token), true),
                // Another replica's load is slow or failing: load here, and share the result.
                Shared::TimedOut => (None, true),
                Shared::Unavailable => {
                    self.redis.fallback("cache");
                    (None, false)
                }
            };
            Lookup::Load(Box::new(TieredSlot {
                memory: Some(memory),
                store: self,
                key,
                token,
                share,
            }))
        })
    }

    /// Empties the memory level and, in the background, this namespace's entries in Redis
    /// (other replicas' memory levels keep theirs until they expire). Returns how many
    /// entries memory held.
    fn clear(&self) -> usize {
        let cleared = self.memory.clear();
        if tokio::runtime::Handle::try_current().is_ok() {
            let redis = self.redis.clone();
            let pattern = self.redis.key(&format!("{}:*", self.namespace));
            tokio::spawn(async move { clear_shared(&redis, &pattern).await });
        }
        cleared
    }

    fn usage(&self) -> StoreUsage {
        self.memory.usage()
    }
}
