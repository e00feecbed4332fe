//! [`ReasoningMemory`]: the reasoning of answers that made tool calls, by tool-call id, so a
//! client that drops `reasoning_content` from its history gets it replayed.

use crate::replica::Redis;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::sync::Arc;
use std::time::Duration;

/// How long a reasoning is kept in Redis (a tool loop's next turn comes within minutes).
pub const SHARED_REASONING_TTL: Duration = Duration::from_secs(3600);

/// The most bytes one remembered reasoning may take; longer ones are kept cut to this length
/// (a cut reasoning still satisfies the upstream's replay rule).
pub const MAX_REASONING_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy)]
struct ByLength;

impl Weighter<String, Arc<str>> for ByLength {
    fn weight(&self, key: &String, value: &Arc<str>) -> u64 {
        // Shared `Arc`s are counted for each id: an over-estimate, never 0.
        (key.len() + value.len() + 64) as u64
    }
}

/// An in-process, bounded map from tool-call id to the reasoning of the answer that made the
/// call (least recently used entries go first), and with [`shared`](Self::shared) the same in
/// Redis, so replicas behind one balancer replay each other's reasoning. Cheap to clone;
/// clones share the entries.
#[derive(Clone)]
pub struct ReasoningMemory {
    cache: Arc<Cache<String, Arc<str>, ByLength>>,
    redis: Option<Redis>,
}

impl std::fmt::Debug for ReasoningMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReasoningMemory")
            .field("entries", &self.cache.len())
            .finish()
    }
}

impl ReasoningMemory {
    /// A memory holding at most `max_bytes` of ids and reasoning (each entry counts its id,
    /// its text and 64 bytes).
    pub fn new(max_bytes: u64) -> Self {
        let max_bytes = max_bytes.max(1024);
        let estimated_items = usize::try_from(max_bytes / 2048)
            .unwrap_or(usize::MAX)
            .max(8);
        ReasoningMemory {
            cache: Arc::new(Cache::with_weighter(estimated_items, max_bytes, ByLength)),
            redis: None,
        }
    }

    /// Also keeps every reasoning in `redis` (for [`SHARED_REASONING_TTL`], under
    /// `<prefix>reasoning:<id>`) and looks there for ids this process has not seen
    /// ([`fetch`](Self::fetch)). While Redis is down, the memory is in-process only.
    pub fn shared(mut self, redis: Redis) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Brings the reasoning of those `ids` this process does not hold from Redis into the
    /// in-process memory (one `MGET`; nothing without Redis or when every id is held).
    pub async fn fetch(&self, ids: &[String]) {
        let Some(redis) = &self.redis else {
            return;
        };
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| !id.is_empty() && self.cache.get(id.as_str()).is_none())
            .collect();
        if missing.is_empty() {
            return;
        }
        let keys: Vec<String> = missing
            .iter()
            .map(|id| redis.key(&format!("reasoning:{id}")))
            .collect();
        let found = redis
            .run("reasoning_get", |mut c| {
                let keys = &keys;
                async move {
                    ::redis::cmd("MGET")
                        .arg(keys)
                        .query_async::<Vec<Option<String>>>(&mut c)
                        .await
                }
            })
            .await;
        if let Ok(values) = found {
            for (id, value) in missing.into_iter().zip(values) {
                if let Some(text) = value {
                    self.cache.insert(id.clone(), Arc::from(text.as_str()));
                }
            }
        }
    }

    /// The bytes the entries take, as counted against the bound.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// Remembers `reasoning` as the reasoning behind each of the tool calls `ids`.
    pub fn remember(&self, ids: &[String], reasoning: &str) {
        if ids.is_empty() || reasoning.trim().is_empty() {
            return;
        }
        let mut end = reasoning.len().min(MAX_REASONING_BYTES);
        while !reasoning.is_char_boundary(end) {
            end -= 1;
        }
        let text: Arc<str> = Arc::from(&reasoning[..end]);
        for id in ids.iter().filter(|id| !id.is_empty()) {
            self.cache.insert(id.clone(), text.clone());
        }
        if let (Some(redis), Ok(runtime)) = (&self.redis, tokio::runtime::Handle::try_current()) {
            let redis = redis.clone();
            let ids: Vec<String> = ids.iter().filter(|id| !id.is_empty()).cloned().collect();
            runtime.spawn(async move {
                let ttl = SHARED_REASONING_TTL.as_secs();
                let _ = redis
                    .run("reasoning_set", |mut c| {
                        let (ids, text, redis) = (&ids, &text, &redis);
                        async move {
                            let mut pipe = ::redis::pipe();
                            for id in ids {
                                pipe.cmd("SET")
                                    .arg(redis.key(&format!("reasoning:{id}")))
                                    .arg(text.as_ref())
                                    .arg("EX")
                                    .arg(ttl)
                                    .ignore();
                            }
                            pipe.query_async::<()>(&mut c).await
                        }
                    })
                    .await;
            });
        }
    }

    /// The reasoning behind the tool call `id`, if remembered.
    pub fn get(&self, id: &str) -> Option<Arc<str>> {
        self.cache.get(id)
    }

    /// Tool-call ids remembered.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_every_id_and_stays_bounded() {
        let memory = ReasoningMemory::new(1024);
        memory.remember(&["a".into(), "b".into()], "think");
        assert_eq!(memory.get("b").as_deref(), Some("think"));
        memory.remember(&["c".into()], "   ");
        assert!(memory.get("c").is_none(), "blank reasoning is not kept");
        for n in 0..100 {
            memory.remember(&[format!("id{n}")], "more");
        }
        assert!(memory.weight() <= 1024, "{}", memory.weight());
        assert!(memory.len() < 100);
        let long = "é".repeat(MAX_REASONING_BYTES);
        memory.remember(&["long".into()], &long);
        if let Some(kept) = memory.get("long") {
            assert!(kept.len() <= MAX_REASONING_BYTES);
        }
    }
}
