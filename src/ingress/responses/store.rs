//! Stored responses: what `previous_response_id`, `item_reference` and
//! `GET /v1/responses/{id}` read.
//!
//! A [`StoredResponse`] holds one turn: its input items, already resolved (the earlier turns of a
//! `previous_response_id` chain prepended, item references replaced, so replaying never
//! recurses), and the response object with its output items. Replaying it for the next turn is
//! `input ++ output` ([`StoredResponse::replay_items`]).
//!
//! [`ResponseStore`] is the seam for a shared store (Redis, later); [`MemoryResponseStore`] is
//! the in-process one: a `quick_cache` bounded by entries *and* bytes (each entry weighs its
//! serialized size, but at least `max_bytes / max_entries`, so both limits hold with one weight
//! budget) with the expiry instant kept in each entry.

use super::response::ResponseObject;
use futures_util::future::BoxFuture;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{OptionsBuilder, Weighter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One stored turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The turn's input items, in Responses form, with earlier turns and references resolved.
    pub input: Vec<Value>,
    /// The response (its `output` are the turn's output items).
    pub response: ResponseObject,
    /// The name of the client key that stored it (none without client keys): only that key
    /// may read, continue or delete it ([`OwnedStore`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl StoredResponse {
    /// A stored turn of `input` items (from [`Translated::input_items`](super::Translated)) and
    /// the `response` given for them.
    pub fn new(input: Vec<Value>, response: ResponseObject) -> Self {
        StoredResponse {
            input,
            response,
            owner: None,
        }
    }

    /// The response id.
    pub fn id(&self) -> &str {
        &self.response.id
    }

    /// The items a follow-up turn starts from: the input, then the output.
    pub fn replay_items(&self) -> Vec<Value> {
        let mut items = self.input.clone();
        items.extend(
            self.response
                .output
                .iter()
                .filter_map(|item| serde_json::to_value(item).ok()),
        );
        items
    }

    /// The item with `id`, among the output items and then the input items.
    pub fn item(&self, id: &str) -> Option<Value> {
        if let Some(item) = self.response.output.iter().find(|i| i.id() == id) {
            return serde_json::to_value(item).ok();
        }
        self.input
            .iter()
            .find(|i| i.get("id").and_then(Value::as_str) == Some(id))
            .cloned()
    }

    /// An estimate of the entry's size in bytes (its JSON length).
    pub fn byte_size(&self) -> usize {
        serde_json::to_vec(self).map(|v| v.len()).unwrap_or(1)
    }
}

/// A store failed to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or answered wrongly; the text is for logs, never for clients.
    #[error("response store unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for super::ResponsesError {
    fn from(err: StoreError) -> Self {
        tracing::warn!(error = %err, "response store failed");
        super::ResponsesError::StoreUnavailable
    }
}

/// The future a store method returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Where stored responses live.
pub trait ResponseStore: Send + Sync {
    /// The stored turn with response id `id`, if present and not expired.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<StoredResponse>>>;

    /// Stores `entry` under its response id (replacing an older one).
    fn put(&self, entry: StoredResponse) -> StoreFuture<'_, ()>;

    /// Removes `id`; whether it was there.
    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
}

/// A store seen by one client key: what it stores is marked as the key's, and what another
/// key stored is not there for it (404), as OpenAI scopes stored responses to their project.
/// The mark travels with the entry, so this holds across replicas sharing a store.
pub struct OwnedStore {
    inner: Arc<dyn ResponseStore>,
    owner: Option<Arc<str>>,
}

impl OwnedStore {
    /// `inner` as seen by the key named `owner` (none: requests without a client key).
    pub fn new(inner: Arc<dyn ResponseStore>, owner: Option<Arc<str>>) -> Self {
        OwnedStore { inner, owner }
    }

    fn owns(&self, entry: &StoredResponse) -> bool {
        entry.owner.as_deref() == self.owner.as_deref()
    }
}

impl ResponseStore for OwnedStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(async move { Ok(self.inner.get(id).await?.filter(|e| self.owns(e))) })
    }

    fn put(&self, mut entry: StoredResponse) -> StoreFuture<'_, ()> {
        entry.owner = self.owner.as_deref().map(str::to_owned);
        self.inner.put(entry)
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            match self.inner.get(id).await? {
                Some(entry) if self.owns(&entry) => self.inner.delete(id).await,
                _ => Ok(false),
            }
        })
    }
}

/// Sizes and lifetime of a [`MemoryResponseStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most entries held (at least 1).
    pub max_entries: usize,
    /// Most bytes held (at least 1,024: the configuration refuses less), as serialized JSON.
    pub max_bytes: u64,
    /// How long an entry lives after it is stored.
    pub ttl: Duration,
}

impl Default for StoreLimits {
    /// 1 000 entries, 64 MiB, one hour.
    fn default() -> Self {
        StoreLimits {
            max_entries: 1000,
            max_bytes: 64 * 1024 * 1024,
            ttl: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone)]
struct Entry {
    value: Arc<StoredResponse>,
    expires: Instant,
    weight: u64,
}

#[derive(Clone, Copy)]
struct EntryWeighter;

impl Weighter<String, Entry> for EntryWeighter {
    fn weight(&self, _key: &String, entry: &Entry) -> u64 {
        entry.weight
    }
}

/// The in-process store: bounded by entries, bytes and age; close to LRU eviction
/// (`quick_cache`'s CLOCK-Pro).
pub struct MemoryResponseStore {
    cache: QuickCache<String, Entry, EntryWeighter>,
    limits: StoreLimits,
    min_weight: u64,
}

impl std::fmt::Debug for MemoryResponseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryResponseStore")
            .field("limits", &self.limits)
            .field("entries", &self.cache.len())
            .finish()
    }
}

impl Default for MemoryResponseStore {
    fn default() -> Self {
        Self::new(StoreLimits::default())
    }
}

impl MemoryResponseStore {
    /// A store with these limits (0 limits are raised to 1).
    pub fn new(limits: StoreLimits) -> Self {
        let max_entries = limits.max_entries.max(1);
        let max_bytes = limits.max_bytes.max(1);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(max_entries)
            .weight_capacity(max_bytes)
            .build()
            .expect("capacity and item estimate are set");
        MemoryResponseStore {
            cache: QuickCache::with_options(
                options,
                EntryWeighter,
                Default::default(),
                Default::default(),
            ),
            limits: StoreLimits {
                max_entries,
                max_bytes,
                ttl: limits.ttl,
            },
            min_weight: (max_bytes / max_entries as u64).max(1),
        }
    }

    /// Entries held now (expired ones until they are next looked at).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes held now (the weights, so small entries count as `max_bytes / max_entries`).
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    fn lookup(&self, id: &str) -> Option<Arc<StoredResponse>> {
        let entry = self.cache.get(id)?;
        if entry.expires <= Instant::now() {
            self.cache.remove(id);
            return None;
        }
        Some(entry.value)
    }

    fn insert(&self, entry: StoredResponse) {
        let bytes = entry.byte_size() as u64;
        let id = entry.id().to_owned();
        if bytes > self.limits.max_bytes {
            tracing::debug!(bytes, "response too large to store");
            self.cache.remove(&id);
            return;
        }
        self.cache.insert(
            id,
            Entry {
                value: Arc::new(entry),
                expires: Instant::now() + self.limits.ttl,
                weight: bytes.max(self.min_weight),
            },
        );
    }
}

impl ResponseStore for MemoryResponseStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(async move { Ok(self.lookup(id)) })
    }

    fn put(&self, entry: StoredResponse) -> StoreFuture<'_, ()> {
        self.insert(entry);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let found = self.lookup(id).is_some();
        self.cache.remove(id);
        Box::pin(async move { Ok(found) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::responses::response::{ItemStatus, ResponseContext};
    use serde_json::json;

    fn turn(text: &str) -> StoredResponse {
        let ctx = ResponseContext::new("m");
        let mut response = ctx.skeleton(crate::ingress::responses::ResponseStatus::Completed);
        response
            .output
            .push(ctx.message_item(0, text, ItemStatus::Completed));
        StoredResponse::new(
            vec![json!({"type": "message", "role": "user", "content": "q", "id": "msg_client"})],
            response,
        )
    }

    #[tokio::test]
    async fn put_get_delete() {
        let store = MemoryResponseStore::default();
        let entry = turn("answer");
        let id = entry.id().to_owned();
        store.put(entry.clone()).await.unwrap();
        let got = store.get(&id).await.unwrap().unwrap();
        assert_eq!(*got, entry);
        let items = got.replay_items();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["content"][0]["text"], "answer");
        assert_eq!(got.item("msg_client").unwrap()["content"], "q");
        assert_eq!(
            got.item(got.response.output[0].id()).unwrap()["type"],
            "message"
        );
        assert!(store.delete(&id).await.unwrap());
        assert!(!store.delete(&id).await.unwrap());
        assert!(store.get(&id).await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let store = MemoryResponseStore::new(StoreLimits {
            ttl: Duration::from_secs(60),
            ..StoreLimits::default()
        });
        let entry = turn("a");
        let id = entry.id().to_owned();
        store.put(entry).await.unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(store.get(&id).await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(store.get(&id).await.unwrap().is_none());
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn entry_and_byte_limits_hold() {
        let store = MemoryResponseStore::new(StoreLimits {
            max_entries: 4,
            max_bytes: 1 << 20,
            ttl: Duration::from_secs(60),
        });
        for i in 0..50 {
            store.put(turn(&format!("answer {i}"))).await.unwrap();
        }
        assert!(store.len() <= 4, "{} entries", store.len());

        let small = MemoryResponseStore::new(StoreLimits {
            max_entries: 1000,
            max_bytes: 8 * 1024,
            ttl: Duration::from_secs(60),
        });
        let big = "x".repeat(2000);
        for _ in 0..20 {
            small.put(turn(&big)).await.unwrap();
        }
        assert!(small.weight() <= 8 * 1024, "{} bytes", small.weight());
        assert!(small.len() < 20);
        // One entry larger than the whole budget is not stored at all.
        let huge = turn(&"y".repeat(10_000));
        let id = huge.id().to_owned();
        small.put(huge).await.unwrap();
        assert!(small.get(&id).await.unwrap().is_none());
    }
}
