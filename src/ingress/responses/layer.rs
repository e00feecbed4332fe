//! [`ResponsesLayer`]: applies [`Responses`] to a chat service, and makes the sibling services
//! of the Responses routes.

use super::config::{ResponsesConfig, ResponsesConfigError};
use super::service::{Responses, Shared, StoredResponses};
use super::store::{MemoryResponseStore, ResponseStore};
use std::sync::Arc;
use tower_layer::Layer;

/// Serves OpenAI's Responses API in front of a chat service. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ResponsesLayer {
    shared: Arc<Shared>,
}

impl ResponsesLayer {
    /// A layer with `config` (checked here, [`ResponsesConfig::validate`]) and an in-memory
    /// store bounded by its [`store_limits`](ResponsesConfig::store_limits).
    pub fn new(config: ResponsesConfig) -> Result<Self, ResponsesConfigError> {
        config.validate()?;
        let store = Arc::new(MemoryResponseStore::new(config.store_limits));
        Ok(Self::from_config(config, store))
    }

    fn from_config(config: ResponsesConfig, store: Arc<dyn ResponseStore>) -> Self {
        ResponsesLayer {
            shared: Arc::new(Shared { config, store }),
        }
    }

    /// The same layer keeping responses in `store` (a shared one, for replicas).
    pub fn with_store(self, store: Arc<dyn ResponseStore>) -> Self {
        Self::from_config(self.shared.config.clone(), store)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ResponsesConfig {
        &self.shared.config
    }

    /// Where responses are kept.
    pub fn store(&self) -> &Arc<dyn ResponseStore> {
        &self.shared.store
    }

    /// The service of `GET` and `DELETE /v1/responses/{id}`, on the same store.
    pub fn stored(&self) -> StoredResponses {
        StoredResponses::from_shared(self.shared.clone())
    }
}

impl Default for ResponsesLayer {
    fn default() -> Self {
        Self::new(ResponsesConfig::default()).expect("the defaults are valid")
    }
}

impl<S> Layer<S> for ResponsesLayer {
    type Service = Responses<S>;

    fn layer(&self, inner: S) -> Responses<S> {
        Responses::from_parts(inner, self.shared.clone())
    }
}
