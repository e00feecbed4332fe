//! [`TieredResponseStore`]: the Responses ingress's stored responses in Redis, shared by every
//! replica, with the in-process [`MemoryResponseStore`] in front.

use super::{FailureMode, Redis, RedisUnavailable};
use crate::ingress::responses::store::StoreFuture;
use crate::ingress::responses::{MemoryResponseStore, ResponseStore, StoreError, StoredResponse};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Entries larger than this many bytes (as JSON) are kept in memory only (default).
const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Deletes the value and leaves a tombstone for the replicas holding it in memory; answers
/// whether the value was in Redis.
static DELETE: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local n = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return n
",
    )
});

/// Stored responses in two levels. Redis holds every replica's entries
/// (`{prefix}resp:{id}`, expiring after the store's TTL); memory holds the entries this
/// replica stored, so a follow-up on the same replica does not fetch and parse its history
/// again, and so they are still served while Redis is away.
///
/// Unlike the description cache, a stored response can be deleted, on any replica: a delete
/// removes the value and leaves a tombstone (`{prefix}resp-deleted:{id}`, same TTL); a memory
/// hit is served only after a one-key `EXISTS` on its tombstone. Entries read from Redis are not
/// copied into memory (memory would otherwise outlive the Redis entry's expiry).
///
/// When Redis fails or is slow: in [`FailureMode::Local`] the memory level answers alone (a
/// response stored on another replica is then not found; counted in
/// `hunyuan_proxy_redis_fallbacks_total{user="responses"}`); in [`FailureMode::Closed`] the
/// call fails with [`StoreError::Unavailable`], which the ingress answers with 503 in OpenAI's
/// envelope.
pub struct TieredResponseStore {
    memory: MemoryResponseStore,
    redis: Redis,
    ttl: Duration,
    max_entry_bytes: usize,
}

impl std::fmt::Debug for TieredResponseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredResponseStore")
            .field("memory", &self.memory)
            .field("ttl", &self.ttl)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish()
    }
}

impl TieredResponseStore {
    /// `memory` in front of `redis`; entries live `ttl` in Redis (give `memory` the same TTL).
    pub fn new(memory: MemoryResponseStore, redis: Redis, ttl: Duration) -> Self {
        TieredResponseStore {
            memory,
            redis,
            ttl,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }

    /// Entries larger than `bytes` (as JSON) are kept in memory only (default 1 MiB).
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// The memory level.
    pub fn memory(&self) -> &MemoryResponseStore {
        &self.memory
    }

    fn value_key(&self, id: &str) -> String {
        self.redis.key(&format!("resp:{id}"))
    }

    fn tombstone_key(&self, id: &str) -> String {
        self.redis.key(&format!("resp-deleted:{id}"))
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    /// What a failed Redis call becomes: the memory level's answer in local mode, an error in
    /// closed mode.
    fn fall_back<T>(&self, local: T) -> Result<T, StoreError> {
        match self.redis.failure() {
            FailureMode::Local => {
                self.redis.fallback("responses");
                Ok(local)
            }
            FailureMode::Closed => Err(StoreError::Unavailable(RedisUnavailable.to_string())),
        }
    }
}

impl ResponseStore for TieredResponseStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(async move {
            let local = self.memory.get(id).await?;
            if let Some(entry) = local {
                let tombstone = self.tombstone_key(id);
                let deleted = self
                    .redis
                    .run("responses_check", |mut c| {
                        let tombstone = &tombstone;
                        async move {
                            ::redis::cmd("EXISTS")
                                .arg(tombstone)
                                .query_async::<bool>(&mut c)
                                .await
                        }
                    })
                    .await;
                return match deleted {
                    Ok(true) => {
                        // Deleted through another replica.
                        self.memory.delete(id).await?;
                        Ok(None)
                    }
                    Ok(false) => Ok(Some(entry)),
                    Err(RedisUnavailable) => self.fall_back(Some(entry)),
                };
            }
            let key = self.value_key(id);
            let bytes = self
                .redis
                .run("responses_get", |mut c| {
                    let key = &key;
                    async move {
                        ::redis::cmd("GET")
                            .arg(key)
                            .query_async::<Option<Vec<u8>>>(&mut c)
                            .await
                    }
                })
                .await;
            match bytes {
                Ok(Some(bytes)) => match serde_json::from_slice::<StoredResponse>(&bytes) {
                    Ok(entry) => Ok(Some(Arc::new(entry))),
                    Err(err) => {
                        tracing::warn!(error = %err, "a stored response in Redis does not parse");
                        Ok(None)
                    }
                },
                Ok(None) => Ok(None),
                Err(RedisUnavailable) => self.fall_back(None),
            }
        })
    }

    /// Stores in memory at once (so this replica sees the entry before the future is polled),
    /// then in Redis unless the entry is over the size cap.
    fn put(&self, entry: StoredResponse) -> StoreFuture<'_, ()> {
        let key = self.value_key(entry.id());
        let bytes = serde_json::to_vec(&entry).ok();
        let memory = self.memory.put(entry);
        Box::pin(async move {
            memory.await?;
            let Some(bytes) = bytes.filter(|b| b.len() <= self.max_entry_bytes) else {
                tracing::debug!("response too large to share: kept in this replica's memory");
                return Ok(());
            };
            let ttl_ms = self.ttl_ms();
            let stored = self
                .redis
                .run("responses_put", |mut c| {
                    let (key, bytes) = (&key, &bytes);
                    async move {
                        ::redis::cmd("SET")
                            .arg(key)
                            .arg(bytes)
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async::<()>(&mut c)
                            .await
                    }
                })
                .await;
            match stored {
                Ok(()) => Ok(()),
                Err(RedisUnavailable) => self.fall_back(()),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let local = self.memory.delete(id).await?;
            let (value, tombstone) = (self.value_key(id), self.tombstone_key(id));
            let ttl_ms = self.ttl_ms();
            let shared = self
                .redis
                .run("responses_delete", |mut c| {
                    let (value, tombstone) = (&value, &tombstone);
                    async move {
                        DELETE
                            .key(value)
                            .key(tombstone)
                            .arg(ttl_ms)
                            .invoke_async::<i64>(&mut c)
                            .await
                    }
                })
                .await;
            match shared {
                Ok(n) => Ok(local || n > 0),
                Err(RedisUnavailable) => self.fall_back(local),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::responses::response::ResponseContext;
    use crate::ingress::responses::{ResponseStatus, StoreLimits};
    use crate::replica::RedisConfig;

    fn nowhere(failure: FailureMode) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        Redis::new(
            RedisConfig::new(format!("redis://127.0.0.1:{port}/0"))
                .timeout(Duration::from_millis(200))
                .failure(failure),
        )
        .unwrap()
    }

    fn entry() -> StoredResponse {
        let response = ResponseContext::new("m").skeleton(ResponseStatus::Completed);
        StoredResponse::new(vec![], response)
    }

    fn store(failure: FailureMode) -> TieredResponseStore {
        TieredResponseStore::new(
            MemoryResponseStore::new(StoreLimits::default()),
            nowhere(failure),
            Duration::from_secs(60),
        )
    }

    #[tokio::test]
    async fn local_mode_serves_from_memory_while_redis_is_down() {
        let store = store(FailureMode::Local);
        let entry = entry();
        let id = entry.id().to_owned();
        store.put(entry.clone()).await.unwrap();
        assert_eq!(*store.get(&id).await.unwrap().unwrap(), entry);
        assert!(store.get("resp_elsewhere").await.unwrap().is_none());
        assert!(store.delete(&id).await.unwrap());
        assert!(store.get(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn closed_mode_fails_while_redis_is_down() {
        let store = store(FailureMode::Closed);
        let entry = entry();
        let id = entry.id().to_owned();
        assert!(store.put(entry).await.is_err());
        assert!(matches!(
            store.get(&id).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(store.delete(&id).await.is_err());
    }
}
