//! [`MessagesLayer`]: applies [`Messages`] to a chat service.

use super::config::{MessagesConfig, MessagesConfigError};
use super::service::{CountTokens, Messages};
use std::sync::Arc;
use tower_layer::Layer;

/// Serves Anthropic's Messages API in front of a chat service. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct MessagesLayer {
    config: Arc<MessagesConfig>,
}

impl MessagesLayer {
    /// A layer with `config`, checked once here ([`MessagesConfig::validate`]).
    pub fn new(config: MessagesConfig) -> Result<Self, MessagesConfigError> {
        config.validate()?;
        Ok(MessagesLayer {
            config: Arc::new(config),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &MessagesConfig {
        &self.config
    }

    /// The `count_tokens` service with the same translation (it never calls a chat service).
    pub fn count_tokens(&self) -> CountTokens {
        CountTokens::from_config(self.config.clone())
    }
}

impl Default for MessagesLayer {
    fn default() -> Self {
        MessagesLayer {
            config: Arc::new(MessagesConfig::default()),
        }
    }
}

impl<S> Layer<S> for MessagesLayer {
    type Service = Messages<S>;

    fn layer(&self, inner: S) -> Messages<S> {
        Messages::from_parts(inner, self.config.clone())
    }
}
