//! The full proxy as an axum [`Router`](axum::Router): the chat stack, legacy completions, models, root,
//! health, status and admin routes, with CORS, request logging and the error envelope on every
//! path (unknown routes and methods included).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hunyuan_proxy::{server::shutdown_signal, Config, Proxy};
//!
//! let proxy = Proxy::new(Config::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! proxy.serve(listener, shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! The parts: [`Proxy`] (this file: the validated config, the upstream, the chat stack, the
//! monitor and health registry), `router` (the routes and app-wide layers), `routes` (the
//! route table every route is declared in once), `status` (`/`, `/v1/models`, `/status`),
//! `admin` (`/cache*`), `dashboard` (`/dashboard`, `/admin/timeseries`), `prometheus`
//! (`/metrics` and the recorder) and `serve` ([`Proxy::serve`], the server loop). This module
//! and [`config`](crate::config) are the only ones that know the server's [`Config`]; the
//! layers take their own configs.

mod admin;
mod dashboard;
mod models;
mod prometheus;
mod router;
pub(crate) mod routes;
mod serve;
mod status;

pub use models::{
    ModelCapabilities, ModelCatalog, NotOnline, UpstreamModel, CLAUDE_MODEL_IDS,
    MODEL_REFRESH_INTERVAL,
};
#[cfg(feature = "prometheus")]
pub use prometheus::prometheus_handle;
pub use routes::{monitored_paths, Access, Dialect, ErrorShape, Route, ROUTES};
pub use serve::shutdown_signal;

use crate::auth::ClientAuthLayer;
use crate::cache::{CacheHandle, MemoryStore, StoreLimits};
use crate::config::{Config, ConfigError};
use crate::error::InvalidConfig;
use crate::health::{AlertCheck, CacheCheck, HealthRegistry, UpstreamCheck};
use crate::ingress::messages::MessagesLayer;
use crate::ingress::responses::{MemoryResponseStore, ResponsesLayer};
use crate::metrics::{AlertTask, Alerts, Monitor};
use crate::rate_limit::RateLimitLayer;
use crate::replica::{
    FailureMode, Redis, RedisCheck, RedisSetupError, TieredResponseStore, TieredStore,
};
use crate::stack::{ChatService, ChatStack};
use crate::upstream::{Upstream, UpstreamSetupError};
use crate::usage::{Ledger, PriceTable, RequestLog, UsageLayer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A proxy that could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is not valid (every layer's config included: [`Config::validate`]
    /// checks them all before a layer is built).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The upstream client could not be set up.
    #[error(transparent)]
    Upstream(#[from] UpstreamSetupError),
    /// The Redis URL does not parse.
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
    /// The request log's file (`request_log_path`) cannot be opened.
    #[error("cannot open request_log_path: {0}")]
    RequestLog(std::io::Error),
}

impl From<InvalidConfig> for BuildError {
    fn from(err: InvalidConfig) -> Self {
        BuildError::Config(ConfigError::Invalid(err))
    }
}

/// The proxy: its validated config, the upstream and the chat stack.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<ProxyState>,
}

struct ProxyState {
    config: Config,
    upstream: Upstream,
    chat: ChatService,
    description_cache: CacheHandle,
    started: Instant,
    started_unix: u64,
    shutting_down: Arc<AtomicBool>,
    observe: Option<Observe>,
    alert_task: Mutex<Option<AlertTask>>,
    /// Drains the Prometheus recorder's histogram buffers every few seconds, so memory stays
    /// flat between scrapes.
    #[cfg(feature = "prometheus")]
    upkeep_task: Mutex<Option<prometheus::AbortOnDrop>>,
    health: HealthRegistry,
    upstream_check: Arc<UpstreamCheck>,
    auth: ClientAuthLayer,
    rate_limit: RateLimitLayer,
    messages: MessagesLayer,
    responses: ResponsesLayer,
    redis: Option<Redis>,
    /// The upstream's model list and the capability source (model discovery).
    models: Arc<models::ModelCatalog>,
    usage: UsageLayer,
}

/// The monitoring parts, present when `enable_monitoring` is on.
struct Observe {
    monitor: Arc<Monitor>,
    alerts: Arc<Alerts>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.state.config)
            .finish()
    }
}

impl Proxy {
    /// Validates `config` and builds the upstream client and the chat stack.
    ///
    /// With `enable_monitoring` on, this installs the process-wide Prometheus recorder (once,
    /// feature `prometheus`), builds the monitor and the alert rules, and, when called inside
    /// a Tokio runtime, starts the alert task (otherwise the first [`router`](Self::router)
    /// call inside a runtime starts it). The task stops when the last clone of the proxy (and
    /// of its router) is dropped.
    pub fn new(config: Config) -> Result<Self, BuildError> {
        config.validate()?;
        let redis = config.redis_config().map(Redis::new).transpose()?;
        let upstream = match &redis {
            Some(redis) => Upstream::with_shared_cap(
                config.upstream_config(),
                redis.clone(),
                config.redis_lease(),
            )?,
            None => Upstream::new(config.upstream_config())?,
        };
        if let (Some(redis), Ok(runtime)) = (&redis, tokio::runtime::Handle::try_current()) {
            // Connect now rather than on the first request (and log at once if Redis is down).
            let redis = redis.clone();
            runtime.spawn(async move {
                let _ = redis.ping().await;
            });
        }
        let mut stack = ChatStack::builder(upstream.clone());
        if let Some(redis) = &redis {
            let cache = config.description_cache_config();
            let memory = MemoryStore::new(StoreLimits {
                max_entries: cache.max_entries,
                max_bytes: cache.max_bytes,
                ttl: cache.ttl,
            });
            let store = TieredStore::new(memory, redis.clone(), "desc", cache.ttl);
            stack = stack.description_store(Arc::new(store));
        }
        if config.upstream.is_legacy() {
            tracing::warn!(
                "upstream = \"hunyuan\": the legacy Hunyuan platform was shut down on \
                 2026-09-30; this preset keeps its rules for legacy-compatible endpoints only \
                 (TokenHub is the default: see docs/models.md)"
            );
        }
        if let Some(models) = config.models_config() {
            stack = stack.models(models);
            if let Some(redis) = &redis {
                stack = stack.models_redis(redis.clone());
            }
        }
        let stack = stack
            .fix(config.fix_config())
            .cascade(config.cascade_config())
            .description_cache(config.description_cache_config())
            .body_limit(config.request_body_limit)
            .log_request_bodies(config.log_request_bodies)
            .build()?;
        let description_cache = stack
            .description_cache()
            .cloned()
            .expect("the server's stack always has a cascade");
        let auth = ClientAuthLayer::new(config.auth_config())?;
        let usage = usage_layer(&config, redis.as_ref())?;
        let limits = config.rate_limit_config();
        let rate_limit = match &redis {
            Some(redis) => RateLimitLayer::shared(limits, redis.clone())?,
            None => RateLimitLayer::new(limits)?,
        };
        let messages = MessagesLayer::new(config.messages_config()?)?;
        if config.responses_secret.is_none() {
            tracing::info!(
                "no `responses_secret` set: reasoning replayed by stateless Responses clients \
                 is sealed with a random per-process secret and will not survive a restart or \
                 reach another replica"
            );
        }
        let mut responses = ResponsesLayer::new(config.responses_config()?)?;
        if let Some(redis) = &redis {
            // Stored responses are shared too: a turn stored through one replica can be
            // continued, read or deleted through any other.
            let limits = config.responses_store_limits();
            let store = TieredResponseStore::new(
                MemoryResponseStore::new(limits),
                redis.clone(),
                limits.ttl,
            );
            responses = responses.with_store(Arc::new(store));
        }
        let observe = if config.enable_monitoring {
            #[cfg(feature = "prometheus")]
            let _ = prometheus_handle();
            let monitor = Arc::new(Monitor::new(config.monitor_config()));
            let alerts = Arc::new(Alerts::with_defaults(&config.alert_rules)?);
            Some(Observe { monitor, alerts })
        } else {
            None
        };
        let health = HealthRegistry::new();
        let upstream_check = Arc::new(
            UpstreamCheck::new(upstream.clone())
                .cache_for(Duration::from_secs(config.health_probe_cache)),
        );
        health.register_with("upstream", upstream_check.clone(), true);
        let pool = upstream.clone();
        health.register_non_critical(
            "upstream_keys",
            crate::health::check_fn(move || {
                let states = pool.key_states();
                async move { key_health(&states) }
            }),
        );
        if let Some(observe) = &observe {
            health.register_non_critical("alerts", AlertCheck::new(observe.alerts.clone()));
        }
        health.register_non_critical("cache", CacheCheck::new(description_cache.clone()));
        let model_catalog = Arc::new(models::ModelCatalog::default());
        health.register_non_critical(
            "models",
            models::health_check(model_catalog.clone(), models::configured_models(&config)),
        );
        if let Some(redis) = &redis {
            // Readiness depends on Redis only when requests are refused without it.
            let critical = redis.failure() == FailureMode::Closed;
            health.register_with("redis", Arc::new(RedisCheck::new(redis.clone())), critical);
        }
        let proxy = Proxy {
            state: Arc::new(ProxyState {
                config,
                upstream,
                chat: stack.service(),
                description_cache,
                started: Instant::now(),
                started_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                shutting_down: Arc::new(AtomicBool::new(false)),
                observe,
                alert_task: Mutex::new(None),
                #[cfg(feature = "prometheus")]
                upkeep_task: Mutex::new(None),
                health,
                upstream_check,
                auth,
                rate_limit,
                messages,
                responses,
                redis,
                models: model_catalog,
                usage,
            }),
        };
        if let Some(models) = proxy.config().models_config() {
            // `GET /v1/models` says what each listed model can do, from its profile.
            let table = models.table;
            proxy.set_model_capabilities(Arc::new(move |id| {
                table.get(id).map(|p| {
                    serde_json::json!({
                        "images": p.images,
                        "tools": p.tools,
                        "thinking": p.thinking,
                        "thinking_default": p.thinking_default,
                        "efforts": p.efforts,
                        "tool_choice": p.tool_choice,
                        "reasoning_replay": p.replay_reasoning,
                    })
                })
            }));
        }
        proxy.start_alert_task();
        Ok(proxy)
    }

    /// Starts the alert task if monitoring is on, a Tokio runtime is running and it is not
    /// running yet.
    fn start_alert_task(&self) {
        let Some(observe) = &self.state.observe else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut task = self
            .state
            .alert_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if task.is_some() {
            return;
        }
        #[cfg(feature = "prometheus")]
        if let Some(handle) = prometheus_handle() {
            *self
                .state
                .upkeep_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some(prometheus::AbortOnDrop(tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(prometheus::PROMETHEUS_UPKEEP);
                    loop {
                        ticker.tick().await;
                        handle.run_upkeep();
                    }
                })));
        }
        let cache = self.state.description_cache.clone();
        let before_each = move || {
            crate::metrics::publish_cache_stats(&cache);
        };
        *task = Some(AlertTask::spawn(
            observe.alerts.clone(),
            observe.monitor.clone(),
            Duration::from_secs(self.state.config.alert_check_interval),
            Some(Box::new(before_each)),
        ));
    }

    /// The in-process monitor (`None` when `enable_monitoring` is off). Its
    /// [`increment_counter`](Monitor::increment_counter), [`set_gauge`](Monitor::set_gauge)
    /// and [`record_histogram`](Monitor::record_histogram) take users' own metrics.
    pub fn monitor(&self) -> Option<&Arc<Monitor>> {
        self.state.observe.as_ref().map(|o| &o.monitor)
    }

    /// The alert rules and their state (`None` when `enable_monitoring` is off); add rules
    /// with [`Alerts::add_rule`].
    pub fn alerts(&self) -> Option<&Arc<Alerts>> {
        self.state.observe.as_ref().map(|o| &o.alerts)
    }

    /// The health checks; register your own with
    /// [`HealthRegistry::register`](crate::health::HealthRegistry::register).
    pub fn health(&self) -> &HealthRegistry {
        &self.state.health
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The upstream forwarding service.
    pub fn upstream(&self) -> &Upstream {
        &self.state.upstream
    }

    /// The chat stack, for mounting on a route of your own.
    pub fn chat_service(&self) -> ChatService {
        self.state.chat.clone()
    }

    /// The image-description cache: statistics and clearing.
    pub fn description_cache(&self) -> &CacheHandle {
        &self.state.description_cache
    }

    /// Usage accounting, budgets and the request log.
    pub fn usage(&self) -> &UsageLayer {
        &self.state.usage
    }

    /// The shared Redis (`None` without `redis_url`).
    pub fn redis(&self) -> Option<&Redis> {
        self.state.redis.as_ref()
    }

    /// Marks the proxy as shutting down: `/health/live` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether [`begin_shutdown`](Self::begin_shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.state.shutting_down.load(Ordering::SeqCst)
    }
}

/// The key pool as a health component: healthy with every key usable, degraded with some
/// cooling down, unhealthy with all of them out (keys named by index only).
fn key_health(states: &[crate::upstream::KeyState]) -> crate::health::CheckResult {
    use crate::health::CheckResult;
    let cooling: Vec<String> = states
        .iter()
        .filter(|k| k.cooling_down_secs > 0)
        .map(|k| format!("key {} back in {} s", k.index, k.cooling_down_secs))
        .collect();
    let total = states.len();
    if cooling.is_empty() {
        CheckResult::healthy(format!("{total} key(s) usable"))
    } else if cooling.len() == total {
        CheckResult::unhealthy(format!(
            "every key is cooling down after the upstream refused it: {}",
            cooling.join(", ")
        ))
    } else {
        CheckResult::degraded(format!(
            "{} of {total} key(s) cooling down: {}",
            cooling.len(),
            cooling.join(", ")
        ))
    }
}

/// The usage layer: prices (built in, then `[models."<id>"] price`), the named keys'
/// budgets, the ledger (in Redis too with `redis_url`) and the request log.
fn usage_layer(config: &Config, redis: Option<&Redis>) -> Result<UsageLayer, BuildError> {
    let prices = PriceTable::new(
        config
            .models
            .iter()
            .filter_map(|(model, s)| Some((model.clone(), s.price.clone()?))),
    );
    let budgets = config
        .client_keys
        .iter()
        .filter_map(|(name, key)| Some((name.clone(), key.budget.filter(|b| !b.is_empty())?)))
        .collect();
    let mut ledger = Ledger::new(prices, budgets);
    if let Some(redis) = redis {
        ledger = ledger.with_redis(redis.clone());
    }
    let mut log = RequestLog::new(config.request_log_size);
    if let Some(path) = &config.request_log_path {
        log = log.with_lines(path).map_err(BuildError::RequestLog)?;
    }
    let settings = config.usage_config();
    Ok(UsageLayer::new(Arc::new(ledger), Arc::new(log), &settings))
}
