//! [`FixLayer`]: applies [`Fix`] to a service.

use super::config::FixConfig;
use super::service::Fix;
use crate::error::InvalidConfig;
use std::sync::Arc;
use tower_layer::Layer;

/// Makes every OpenAI-valid conversation one Hunyuan accepts, and Hunyuan's answers
/// OpenAI-shaped. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct FixLayer {
    config: Arc<FixConfig>,
}

impl FixLayer {
    /// A layer with `config`, checked once here ([`FixConfig::validate`]).
    pub fn new(config: FixConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(FixLayer {
            config: Arc::new(config),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &FixConfig {
        &self.config
    }
}

impl Default for FixLayer {
    /// The legacy endpoint's rules.
    fn default() -> Self {
        FixLayer {
            config: Arc::new(FixConfig::default()),
        }
    }
}

impl<S> Layer<S> for FixLayer {
    type Service = Fix<S>;

    fn layer(&self, inner: S) -> Fix<S> {
        Fix::from_parts(inner, self.config.clone())
    }
}
