//! [`HealthLayer`] and its configuration.

use super::component::HealthRegistry;
use super::service::Health;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the health endpoints behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time each check may take (default 2 s).
    pub check_timeout: Duration,
    /// The version shown in `GET /health` (default: this crate's).
    pub version: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check_timeout: Duration::from_secs(2),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

impl HealthConfig {
    /// Sets the per-check timeout.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Sets the version shown.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

pub(crate) struct Shared {
    pub(crate) registry: HealthRegistry,
    pub(crate) config: HealthConfig,
    pub(crate) started: Instant,
    pub(crate) shutting_down: Arc<AtomicBool>,
}

/// Answers `GET /health`, `/health/live` and `/health/ready` from a [`HealthRegistry`] and
/// passes every other request on. See the [module docs](super).
#[derive(Clone)]
pub struct HealthLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HealthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthLayer")
            .field("registry", &self.shared.registry)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl HealthLayer {
    /// Serves the checks of `registry` with the default config.
    pub fn new(registry: HealthRegistry) -> Self {
        Self::with_config(registry, HealthConfig::default())
    }

    /// Serves the checks of `registry` with `config`.
    pub fn with_config(registry: HealthRegistry, config: HealthConfig) -> Self {
        HealthLayer {
            shared: Arc::new(Shared {
                registry,
                config,
                started: Instant::now(),
                shutting_down: Arc::new(AtomicBool::new(false)),
            }),
        }
    }

    /// Uses `flag` as the shutdown signal: once it is `true`, `/health/live` and
    /// `/health/ready` answer 503.
    pub fn shutdown_flag(self, flag: Arc<AtomicBool>) -> Self {
        let shared = Arc::try_unwrap(self.shared).unwrap_or_else(|shared| Shared {
            registry: shared.registry.clone(),
            config: shared.config.clone(),
            started: shared.started,
            shutting_down: shared.shutting_down.clone(),
        });
        HealthLayer {
            shared: Arc::new(Shared {
                shutting_down: flag,
                ..shared
            }),
        }
    }

    /// Marks the process as shutting down (see [`shutdown_flag`](Self::shutdown_flag)).
    pub fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The registry; register more checks at any time.
    pub fn registry(&self) -> &HealthRegistry {
        &self.shared.registry
    }
}

impl<S> tower_layer::Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health::new(inner, self.shared.clone())
    }
}
