//! [`CacheLayer`]: puts a [`Cache`] in front of a keyed service.

use super::service::{Cache, Shared};
use super::stats::Counters;
use super::store::{CacheValue, MemoryStore, Store, StoreLimits};
use super::{CacheConfig, CacheHandle};
use crate::error::InvalidConfig;
use std::marker::PhantomData;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps a service whose requests implement [`CacheKey`](super::CacheKey) in a [`Cache`].
///
/// Every service made by one layer shares one store and one set of statistics; reach them
/// through [`handle`](Self::handle).
pub struct CacheLayer<V, St = MemoryStore<V>> {
    shared: Arc<Shared<V, St>>,
}

impl<V, St> Clone for CacheLayer<V, St> {
    fn clone(&self) -> Self {
        CacheLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<V, St> std::fmt::Debug for CacheLayer<V, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<V: CacheValue> CacheLayer<V, MemoryStore<V>> {
    /// A layer over a new in-process [`MemoryStore`] sized by `config`, which is validated
    /// here.
    pub fn new(config: CacheConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let store = MemoryStore::new(StoreLimits {
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            ttl: config.ttl,
        });
        Ok(CacheLayer::with_store(store, config))
    }
}

impl<V: CacheValue, St: Store<V>> CacheLayer<V, St> {
    /// A layer over a store of your own (`config`'s sizes are then the store's business; its
    /// `ttl` is still reported in the statistics).
    pub fn with_store(store: St, config: CacheConfig) -> Self {
        CacheLayer {
            shared: Arc::new(Shared {
                store,
                counters: Counters::default(),
                config,
                failures: Default::default(),
                value: PhantomData,
            }),
        }
    }

    /// A handle for statistics and clearing.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle(self.shared.clone())
    }
}

impl<S, V, St> Layer<S> for CacheLayer<V, St> {
    type Service = Cache<S, V, St>;

    fn layer(&self, inner: S) -> Cache<S, V, St> {
        Cache::new(inner, self.shared.clone())
    }
}
