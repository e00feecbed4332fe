//! [`TieredStore`]: a cache [`Store`] in two levels, the in-process [`MemoryStore`] in front
//! of Redis, with loads of one new key coalesced across replicas.

use super::Redis;
use crate::cache::{CacheValue, Digest, Lookup, MemoryStore, Slot, Store, StoreUsage};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
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

/// The most entries made while Redis was away that are kept to be written when it returns
/// (past it, later ones stay in memory only).
const MAX_PENDING: usize = 1024;

/// The most entries and bytes one reconciliation call writes (each call is bounded by the
/// Redis timeout).
const FLUSH_BATCH: usize = 32;
const FLUSH_BATCH_BYTES: usize = 256 * 1024;

/// Values loaded while Redis was away, by key: their bytes and when they were made.
type Pending = Mutex<HashMap<Digest, (Vec<u8>, Instant)>>;

/// A two-level store: the in-process [`MemoryStore`] first (a hit costs no round trip), then
/// Redis (a hit there fills memory). A key absent from both is loaded by one caller across
/// all replicas: it takes a lock in Redis (`SET NX PX`, expiring after the wait, so a crashed
/// loader cannot block the key), the others poll for the value every 20 ms, and a waiter
/// whose wait runs out loads it itself. A failed load stores nothing and releases the lock.
///
/// When Redis fails or is slow, the store falls back at once to its memory level (counted in
/// `hunyuan_proxy_redis_fallbacks_total{user="cache"}`). What it loads meanwhile (up to 1,024
/// entries) is written to Redis when Redis returns (`SET NX`, with the rest of its TTL), so
/// the other replicas do not pay for it again.
pub struct TieredStore<V> {
    memory: MemoryStore<V>,
    redis: Redis,
    namespace: String,
    ttl: Duration,
    max_entry_bytes: usize,
    pending: Arc<Pending>,
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
            value_key(&self.redis, &self.namespace, key),
            self.redis.key(&format!("{}-lock:{hex}", self.namespace)),
        )
    }

    /// Keeps `bytes` (loaded while Redis was away) to be written when Redis returns; writes
    /// them at once if it is back already.
    fn remember(&self, key: Digest, bytes: Vec<u8>) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
                return;
            }
            pending.insert(key, (bytes, Instant::now()));
        }
        // Back between the failed lookup and now: the return's reconciliation may have run.
        if self.redis.is_up() && tokio::runtime::Handle::try_current().is_ok() {
            let (redis, pending) = (self.redis.clone(), self.pending.clone());
            let (namespace, ttl) = (self.namespace.clone(), self.ttl);
            tokio::spawn(async move { flush(redis, &pending, &namespace, ttl).await });
        }
    }
}

/// The Redis key of the value of `key` in `namespace`.
fn value_key(redis: &Redis, namespace: &str, key: &Digest) -> String {
    redis.key(&format!("{namespace}:{}", key.to_hex()))
}

/// Writes the pending values to Redis (`SET NX PX`: another replica's value for the same
/// key wins), a batch per call, with what is left of their TTL. Stops when Redis fails; what
/// was not written stays pending.
async fn flush(redis: Redis, pending: &Pending, namespace: &str, ttl: Duration) {
    let mut left: Vec<_> = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .filter(|(_, (_, made))| made.elapsed() < ttl)
        .collect();
    let mut written = 0usize;
    while !left.is_empty() {
        let (mut count, mut bytes) = (0, 0);
        while count < left.len() && count < FLUSH_BATCH && bytes < FLUSH_BATCH_BYTES {
            bytes += left[count].1 .0.len();
            count += 1;
        }
        let mut pipe = ::redis::pipe();
        for (key, (value, made)) in &left[..count] {
            let rest = ttl.saturating_sub(made.elapsed()).as_millis().max(1) as u64;
            pipe.cmd("SET")
                .arg(value_key(&redis, namespace, key))
                .arg(value.as_slice())
                .arg("PX")
                .arg(rest)
                .arg("NX")
                .ignore();
        }
        let sent = redis
            .run("cache_reconcile", |mut c| {
                let pipe = &pipe;
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await;
        if sent.is_err() {
            // Redis went away again: what is left waits for its next return.
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            for (key, entry) in left {
                if pending.len() < MAX_PENDING {
                    pending.entry(key).or_insert(entry);
                }
            }
            return;
        }
        left.drain(..count);
        written += count;
    }
    if written > 0 {
        tracing::info!(
            written,
            namespace,
            "descriptions made while redis was away are shared now"
        );
    }
}

impl<V: SharedValue> TieredStore<V> {
    /// `memory` in front of `redis`; keys are `{prefix}{namespace}:{digest}`, entries live
    /// `ttl` in Redis.
    pub fn new(memory: MemoryStore<V>, redis: Redis, namespace: &str, ttl: Duration) -> Self {
        let pending: Arc<Pending> = Arc::default();
        let weak: Weak<Pending> = Arc::downgrade(&pending);
        let space = namespace.to_owned();
        redis.on_return(move |redis| {
            let (weak, space) = (weak.clone(), space.clone());
            Box::pin(async move {
                if let Some(pending) = weak.upgrade() {
                    flush(redis, &pending, &space, ttl).await;
                }
            })
        });
        TieredStore {
            memory,
            redis,
            namespace: namespace.to_owned(),
            ttl,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            pending,
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
                .run("cache_clear", |mut c| {
                    let keys = &keys;
                    async move {
                        ::redis::cmd("UNLINK")
                            .arg(keys)
                            .query_async::<i64>(&mut c)
                            .await
                    }
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
    /// Whether the value goes to Redis when it returns (it was away at the lookup).
    remember: bool,
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
                .run("cache_set", |mut c| {
                    let (value_key, lock_key, bytes, token) =
                        (&value_key, &lock_key, &bytes, &token);
                    async move {
                        FILL_AND_UNLOCK
                            .key(value_key)
                            .key(lock_key)
                            .arg(bytes.as_slice())
                            .arg(ttl_ms)
                            .arg(token)
                            .invoke_async::<i64>(&mut c)
                            .await
                    }
                })
                .await;
        });
    }
}

impl<V: SharedValue> Slot<V> for TieredSlot<'_, V> {
    fn fill(mut self: Box<Self>, value: V) -> bool {
        let fits = value.byte_size() <= self.store.max_entry_bytes;
        let bytes = if self.share && fits {
            value.to_bytes()
        } else {
            Vec::new()
        };
        if self.remember && fits {
            self.store.remember(self.key, value.to_bytes());
        }
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
                .run("cache_unlock", |mut c| {
                    let (lock_key, token) = (&lock_key, &token);
                    async move {
                        FILL_AND_UNLOCK
                            .key(lock_key)
                            .key(lock_key)
                            .arg("")
                            .arg(1)
                            .arg(token)
                            .invoke_async::<i64>(&mut c)
                            .await
                    }
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
            let remember = !share;
            Lookup::Load(Box::new(TieredSlot {
                memory: Some(memory),
                store: self,
                key,
                token,
                share,
                remember,
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
