//! [`CascadeLayer`]: puts a [`Cascade`] in front of a chat service.

use super::config::CascadeConfig;
use super::describer::{Describer, Description};
use super::service::{Cascade, Prepared};
use crate::cache::{CacheConfig, CacheHandle, CacheLayer, DynStore, MemoryStore, StoreLimits};
use crate::error::InvalidConfig;
use crate::upstream::Upstream;
use std::sync::Arc;
use tower_layer::Layer;

/// The describer the proxy uses: the [`Describer`] behind the description cache.
pub type CachedDescriber =
    crate::cache::Cache<Describer, Description, crate::cache::DynStore<Description>>;

/// Replaces images with descriptions made by the describer `D` (any
/// `Service<DescribeRequest>`), then switches the request to the text model.
#[derive(Clone)]
pub struct CascadeLayer<D> {
    describer: D,
    prepared: Arc<Prepared>,
}

impl<D> std::fmt::Debug for CascadeLayer<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CascadeLayer")
            .field("config", &self.prepared.config)
            .finish()
    }
}

impl<D> CascadeLayer<D> {
    /// A layer describing images with `describer`; `config` is validated here, once.
    ///
    /// The cache key of each image includes `config`'s vision model, prompt and `max_tokens`,
    /// so `describer` should use the same ones.
    pub fn new(config: CascadeConfig, describer: D) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(CascadeLayer {
            describer,
            prepared: Arc::new(Prepared::new(config)),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &CascadeConfig {
        &self.prepared.config
    }
}

impl CascadeLayer<CachedDescriber> {
    /// The proxy's own layer: a [`Describer`] over `upstream` behind a description cache
    /// configured by `cache`. Both configs are validated here (a cache field is named
    /// `cache.<field>`); the cache's handle is returned for the admin routes.
    pub fn with_cache(
        config: CascadeConfig,
        upstream: Upstream,
        cache: CacheConfig,
    ) -> Result<(Self, CacheHandle), InvalidConfig> {
        cache.validate().map_err(|e| e.within("cache"))?;
        let store = Arc::new(MemoryStore::new(StoreLimits {
            max_entries: cache.max_entries,
            max_bytes: cache.max_bytes,
            ttl: cache.ttl,
        }));
        Self::with_store(config, upstream, cache, store)
    }

    /// Like [`with_cache`](Self::with_cache), with the descriptions kept in `store` (e.g. a
    /// [`TieredStore`](crate::replica::TieredStore) shared by several replicas); `cache`'s
    /// wait, logging and `ttl` still apply, its sizes are the store's business.
    pub fn with_store(
        config: CascadeConfig,
        upstream: Upstream,
        cache: CacheConfig,
        store: DynStore<Description>,
    ) -> Result<(Self, CacheHandle), InvalidConfig> {
        config.validate()?;
        cache.validate().map_err(|e| e.within("cache"))?;
        let cache = CacheLayer::with_store(store, cache);
        let handle = cache.handle();
        let describer = cache.layer(Describer::new(upstream, &config));
        Ok((CascadeLayer::new(config, describer)?, handle))
    }
}

impl<S, D: Clone> Layer<S> for CascadeLayer<D> {
    type Service = Cascade<S, D>;

    fn layer(&self, inner: S) -> Cascade<S, D> {
        Cascade::new(inner, self.describer.clone(), self.prepared.clone())
    }
}
