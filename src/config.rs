//! The proxy's configuration: one serde struct, loaded from TOML, then environment, then
//! command-line flags, and validated once at start.
//!
//! Key names follow the original project (`host`, `port`, `api_base`, `cache_ttl`, …).
//! Secrets ([`Secret`]) are redacted in `Debug` and when the config is shown in `/status`.

use crate::cascade::CascadeConfig;
use crate::error::toml_key;
pub use crate::error::InvalidConfig;
use crate::metrics::AlertRule;
pub use crate::preset::Preset;
use crate::rate_limit::RateLimit;
pub use crate::replica::{FailureMode, RedisConfig};
pub use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The whole configuration. Every field has a default; `docs/configuration.md` lists them all.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Log level: `trace`, `debug`, `info`, `warn` or `error`.
    pub log_level: String,
    /// Whether to answer CORS requests.
    pub enable_cors: bool,
    /// Allowed CORS origins; empty or `["*"]` means any origin (without credentials).
    pub cors_origins: Vec<String>,
    /// Which upstream the defaults of `api_base`, `text_model` and `vision_model` come from
    /// (default `tokenhub`; `tokenhub-cn`, `tokenhub-intl`, `tokenplan`, or `hunyuan`, the
    /// retired legacy platform's rules).
    pub upstream: Preset,
    /// The vision model that describes images (default: the preset's).
    pub vision_model: Option<String>,
    /// The tool-calling text model (default: the preset's).
    pub text_model: Option<String>,
    /// The upstream API key (env `HUNYUAN_API_KEY`).
    pub api_key: Option<Secret>,
    /// More upstream API keys (accounts); with `api_key` they form the key pool.
    pub api_keys: Vec<Secret>,
    /// Seconds a key the upstream refused (401/403) is left out of the pool (a 402 is about one
    /// model and cools no key).
    pub upstream_key_cooldown: u64,
    /// Models tried in order when a model fails (429, 5xx, timeout, after its retries)
    /// before its answer starts (`[fallback_models]` table: model → list of models).
    pub fallback_models: std::collections::BTreeMap<String, Vec<String>>,
    /// The upstream base URL, ending in `/v1` (env `HUNYUAN_API_BASE`; default: the preset's).
    pub api_base: Option<String>,
    /// Image-description cache capacity in entries.
    pub cache_max_size: usize,
    /// Image-description cache time-to-live in seconds.
    pub cache_ttl: u64,
    /// Log cache hits and misses at debug level.
    pub enable_cache_logging: bool,
    /// Collect metrics and evaluate alert rules.
    pub enable_monitoring: bool,
    /// Serve the health endpoints.
    pub enable_health_check: bool,
    /// Seconds between alert-rule evaluations.
    pub alert_check_interval: u64,
    /// Samples kept in the in-process metrics window.
    pub max_metric_points: usize,
    /// Seconds of history the metrics window covers (older samples are left out of rates,
    /// percentiles and alerts).
    pub metric_window: u64,
    /// Alert rules added to (or, by name, replacing) the defaults: `[[alert_rules]]` tables.
    pub alert_rules: Vec<AlertRule>,
    /// Seconds an upstream health probe's answer is reused (0: probe on every check).
    pub health_probe_cache: u64,
    /// Bearer token for the admin routes (`/cache*`); without one they are off.
    pub admin_token: Option<Secret>,
    /// Seconds the upstream may stay silent (before the first byte or between stream chunks).
    pub request_timeout: u64,
    /// Seconds to wait for a connection to the upstream.
    pub connect_timeout: u64,
    /// Requests in flight to the upstream at once (Hunyuan's account limit is 5).
    pub upstream_concurrency: usize,
    /// Largest accepted request body in bytes.
    pub request_body_limit: usize,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub shutdown_timeout: u64,
    /// Seconds a client may take to send a whole request head, counted from the connection's
    /// accept or the head's first byte; the connection is closed past it.
    pub client_header_timeout: u64,
    /// Seconds an idle keep-alive connection (no request in progress) is kept open.
    pub client_idle_timeout: u64,
    /// Client connections open at once; past it a new connection is closed at once (default:
    /// the open-file limit minus a reserve, see `docs/security.md`).
    pub max_connections: Option<usize>,
    /// HTTP/2: streams a client may have open at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the largest request header list in bytes.
    pub http2_max_header_list_size: u32,
    /// Seconds allowed until the upstream's answer starts, retries included (default:
    /// `request_timeout`).
    pub first_byte_timeout: Option<u64>,
    /// Retries before the answer starts, on connection failures, 429 and 500/502/503/504.
    pub upstream_retries: u32,
    /// Milliseconds before the first retry; each further retry doubles it (with jitter).
    pub upstream_retry_backoff_ms: u64,
    /// Requests that may wait for a free upstream slot; past it clients get 429 at once.
    pub upstream_queue_size: usize,
    /// Seconds a request may wait for a free upstream slot before it gets 429.
    pub upstream_queue_timeout: u64,
    /// Seconds a client may take to send its request body (408 past it).
    pub request_body_timeout: u64,
    /// Log each chat request at debug level, image data elided (off: bodies are never logged).
    pub log_request_bodies: bool,
    /// Proxy API keys clients must present (`Authorization: Bearer`); empty: no client auth.
    pub client_api_keys: Vec<Secret>,
    /// Requests per second for all clients together (`{ per_second, burst }`); none: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Requests per second for each client key; none: no limit.
    pub client_rate_limit: Option<RateLimit>,
    /// Message fixing (`[fix]` table): policy, per-rule switches, texts, message limit. The
    /// policy defaults to the `upstream` preset's.
    pub fix: crate::fix::FixConfig,
    /// Client model names mapped to upstream models (`[model_aliases]` table: an exact name or
    /// a `prefix*` pattern → the upstream model). On the Messages routes `claude-*` maps to
    /// `text_model` unless a pattern here says otherwise.
    pub model_aliases: std::collections::BTreeMap<String, String>,
    /// The image cascade (TOML table `[cascade]`; see [`CascadeConfig`]). Its models come
    /// from `vision_model` and `text_model` above; the description cache is sized by
    /// `cache_max_size`, `cache_ttl` and `cascade.cache_max_bytes`.
    pub cascade: CascadeConfig,
    /// The secret that seals reasoning replayed by stateless Responses clients
    /// (`encrypted_content`); give every replica the same one. Unset: a random secret per
    /// process, so replayed reasoning does not survive a restart or reach another replica.
    pub responses_secret: Option<Secret>,
    /// Responses kept for `previous_response_id` and `GET /v1/responses/{id}`, in entries.
    pub responses_store_entries: usize,
    /// Bytes the stored responses may take (as JSON).
    pub responses_store_bytes: u64,
    /// Seconds a stored response is kept.
    pub responses_store_ttl: u64,
    /// Redis shared by several replicas (env `HUNYUAN_REDIS_URL`; `redis://host:port/db`):
    /// description cache and rate limits. None: everything stays in-process.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key the proxy writes.
    pub redis_prefix: String,
    /// While Redis does not answer: `local` (fall back to in-process state) or `closed`
    /// (refuse requests with 503).
    pub redis_failure: FailureMode,
    /// Milliseconds one Redis call may take before it counts as failed.
    pub redis_timeout_ms: u64,
    /// Seconds a replica's lease on the shared upstream cap lives unrenewed: a crashed
    /// replica's permits come back after at most this long.
    pub redis_lease_secs: u64,
    /// Model profiles overriding or extending the built-in table (`[models."<id>"]` tables;
    /// see [`ModelSettings`](crate::models::ModelSettings) and `docs/models.md`). Not used by
    /// the `hunyuan` preset.
    pub models: std::collections::BTreeMap<String, crate::models::ModelSettings>,
    /// A forced `tool_choice` on a model that refuses it while thinking (DeepSeek V4):
    /// `auto` (the choice becomes `auto`) or `disable_thinking` (thinking is turned off for
    /// that request).
    pub forced_tool_choice: crate::models::ForcedToolChoice,
    /// The `reasoning_content` replayed for an assistant tool-call turn when neither the
    /// client's history nor the proxy's memory has it (default:
    /// [`DEFAULT_REASONING_PLACEHOLDER`](crate::models::DEFAULT_REASONING_PLACEHOLDER)).
    pub reasoning_placeholder: Option<String>,
    /// Bytes of upstream reasoning remembered by tool-call id for replay (0: none).
    pub reasoning_memory_bytes: u64,
    /// OTLP/HTTP endpoint traces are exported to (`http://collector:4318`; `/v1/traces` is
    /// added). None: the standard `OTEL_EXPORTER_OTLP_ENDPOINT` decides; neither set, no traces
    /// (docs/observability.md).
    pub otel_endpoint: Option<String>,
    /// Record message contents (`gen_ai.input.messages`, `gen_ai.output.messages`) on the
    /// upstream attempt spans (default false: prompts and answers stay out of traces).
    pub otel_capture_content: bool,
    /// Named client keys (`[client_keys.<name>]`: `key` or `key_sha256`, `budget`,
    /// `rate_limit`), accepted beside `client_api_keys`.
    pub client_keys: std::collections::BTreeMap<String, ClientKeyConfig>,
    /// Requests kept in the request log (`GET /admin/requests`); 0: none.
    pub request_log_size: usize,
    /// Also write each request's log entry as one JSON line here (`-`: stdout).
    pub request_log_path: Option<String>,
    /// Distinct models, and distinct keys, named in the usage metrics' labels; past it the
    /// rest are counted as `other`.
    pub usage_label_limit: usize,
}

/// A named client key (`[client_keys.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientKeyConfig {
    /// The key the client presents.
    pub key: Option<Secret>,
    /// Or the hex SHA-256 of that key, so the file need not hold it.
    pub key_sha256: Option<String>,
    /// Tokens and cost the key may use per UTC day or month.
    pub budget: Option<crate::usage::Budget>,
    /// The key's own request rate, in place of `client_rate_limit` for this key (the global
    /// `rate_limit` still applies); shared through Redis when `redis_url` is set.
    pub rate_limit: Option<RateLimit>,
}

impl ClientKeyConfig {
    /// Checks the key's own shape (exactly one of `key` and `key_sha256`) and budget; its
    /// length and name are the [`AuthConfig`](crate::auth::AuthConfig)'s to check, its rate
    /// the [`RateLimitConfig`](crate::rate_limit::RateLimitConfig)'s. The error names the key
    /// by `name` (`client_keys.alice.budget`), never by value.
    pub fn validate(&self, name: &str) -> Result<(), InvalidConfig> {
        let table = format!("client_keys.{}", toml_key(name));
        if self.key_match().is_none() {
            return Err(InvalidConfig::new(
                table,
                "needs exactly one of `key` or `key_sha256` (64 hex digits)",
            ));
        }
        if self.budget.is_some_and(|b| !b.is_valid()) {
            return Err(InvalidConfig::new(
                format!("{table}.budget"),
                "needs limits above zero",
            ));
        }
        Ok(())
    }

    /// How the key is recognised, if it is given one way or the other.
    pub fn key_match(&self) -> Option<crate::auth::KeyMatch> {
        match (&self.key, &self.key_sha256) {
            (Some(key), None) => Some(crate::auth::KeyMatch::Key(key.clone())),
            (None, Some(hex)) => crate::auth::KeyMatch::sha256_hex(hex),
            _ => None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_owned(),
            port: 4000,
            log_level: "info".to_owned(),
            enable_cors: false,
            cors_origins: Vec::new(),
            upstream: Preset::Tokenhub,
            vision_model: None,
            text_model: None,
            api_key: None,
            api_keys: Vec::new(),
            upstream_key_cooldown: 60,
            fallback_models: std::collections::BTreeMap::new(),
            api_base: None,
            cache_max_size: 1000,
            cache_ttl: 3600,
            enable_cache_logging: false,
            enable_monitoring: true,
            enable_health_check: true,
            alert_check_interval: 30,
            max_metric_points: 10_000,
            metric_window: 300,
            alert_rules: Vec::new(),
            health_probe_cache: 5,
            admin_token: None,
            request_timeout: 600,
            connect_timeout: 10,
            upstream_concurrency: 5,
            request_body_limit: crate::chat::DEFAULT_BODY_LIMIT,
            shutdown_timeout: 30,
            client_header_timeout: 30,
            client_idle_timeout: 75,
            max_connections: None,
            http2_max_concurrent_streams: 256,
            http2_max_header_list_size: 64 * 1024,
            first_byte_timeout: None,
            upstream_retries: 2,
            upstream_retry_backoff_ms: 250,
            upstream_queue_size: 256,
            upstream_queue_timeout: 60,
            request_body_timeout: 30,
            log_request_bodies: false,
            client_api_keys: Vec::new(),
            rate_limit: None,
            client_rate_limit: None,
            fix: crate::fix::FixConfig::default(),
            model_aliases: std::collections::BTreeMap::new(),
            cascade: CascadeConfig::default(),
            responses_secret: None,
            responses_store_entries: 1000,
            responses_store_bytes: 64 * 1024 * 1024,
            responses_store_ttl: 3600,
            redis_url: None,
            redis_prefix: "hunyuan-proxy:".to_owned(),
            redis_failure: FailureMode::Local,
            redis_timeout_ms: 50,
            redis_lease_secs: 10,
            models: std::collections::BTreeMap::new(),
            forced_tool_choice: crate::models::ForcedToolChoice::Auto,
            reasoning_placeholder: None,
            reasoning_memory_bytes: 32 * 1024 * 1024,
            otel_endpoint: None,
            otel_capture_content: false,
            client_keys: std::collections::BTreeMap::new(),
            request_log_size: 1000,
            request_log_path: None,
            usage_label_limit: 50,
        }
    }
}

/// A configuration that could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a key of the wrong type or an unknown key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's explanation (names the key).
        message: String,
    },
    /// A key has a value the proxy cannot use: the key as written in the file
    /// (`upstream_concurrency`, `cascade.concurrency`, `models."hy4".price`) and what is wrong.
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// The keys of the file that set [`UpstreamConfig`](crate::upstream::UpstreamConfig) fields
/// of another name (`api_base`, `api_keys`, `connect_timeout`, `first_byte_timeout` and
/// `fallback_models` keep theirs).
const UPSTREAM_KEYS: &[(&str, &str)] = &[
    ("key_cooldown", "upstream_key_cooldown"),
    ("read_timeout", "request_timeout"),
    ("concurrency", "upstream_concurrency"),
    ("max_retries", "upstream_retries"),
    ("retry_backoff", "upstream_retry_backoff_ms"),
    ("queue_size", "upstream_queue_size"),
    ("queue_timeout", "upstream_queue_timeout"),
];

/// The [`CascadeConfig`] fields set by top-level keys; the others are in `[cascade]`.
const CASCADE_KEYS: &[(&str, &str)] = &[
    ("vision_model", "vision_model"),
    ("text_model", "text_model"),
    ("", "cascade."),
];

/// The keys that set the description cache's [`CacheConfig`](crate::cache::CacheConfig).
const CACHE_KEYS: &[(&str, &str)] = &[
    ("max_entries", "cache_max_size"),
    ("ttl", "cache_ttl"),
    ("max_bytes", "cascade.cache_max_bytes"),
    ("wait", "cascade.cache_wait_secs"),
];

/// The keys that set the [`AuthConfig`](crate::auth::AuthConfig).
const AUTH_KEYS: &[(&str, &str)] = &[("keys", "client_api_keys"), ("named", "client_keys")];

/// The keys that set the [`RateLimitConfig`](crate::rate_limit::RateLimitConfig) (a named
/// key's own limit is `client_keys.<name>.rate_limit`).
const RATE_LIMIT_KEYS: &[(&str, &str)] =
    &[("global", "rate_limit"), ("per_key", "client_rate_limit")];

/// The keys that set the [`MonitorConfig`](crate::metrics::MonitorConfig).
const MONITOR_KEYS: &[(&str, &str)] = &[
    ("max_points", "max_metric_points"),
    ("window", "metric_window"),
];

/// The key that sets the [`UsageConfig`](crate::usage::UsageConfig).
const USAGE_KEYS: &[(&str, &str)] = &[("label_limit", "usage_label_limit")];

/// The keys that set the Messages and Responses ingresses' configs.
const INGRESS_KEYS: &[(&str, &str)] = &[
    ("aliases", "model_aliases"),
    ("body_limit", "request_body_limit"),
    ("store_limits.max_entries", "responses_store_entries"),
    ("store_limits.max_bytes", "responses_store_bytes"),
    ("store_limits.ttl", "responses_store_ttl"),
];

/// The key of the file that set a layer config's `field`, by `keys` (layer field → key): the
/// whole field, or its first segment (`named.alice.key` → `client_keys.alice.key`); an entry
/// with an empty field is a prefix for every other field (`concurrency` →
/// `cascade.concurrency`). A field `keys` does not name keeps its name.
fn key_of(field: &str, keys: &[(&str, &str)]) -> String {
    for (from, to) in keys {
        if from.is_empty() {
            return format!("{to}{field}");
        }
        if field == *from {
            return (*to).to_owned();
        }
        if let Some(rest) = field.strip_prefix(from) {
            if rest.starts_with(['.', '[']) {
                return format!("{to}{rest}");
            }
        }
    }
    field.to_owned()
}

impl Config {
    /// Parses TOML text (`origin` names it in errors).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.message().to_owned(),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The config the server runs with: `file` (or the defaults), then the process
    /// environment (`HUNYUAN_API_KEY`, `HUNYUAN_API_BASE`). Flags are the caller's to apply on
    /// top; validation happens in [`Proxy::new`](crate::Proxy::new).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|key| std::env::var(key).ok());
        Ok(config)
    }

    /// Points the config at a mock upstream (`--demo`): its base URL, a demo key, and an admin
    /// token (`demo-admin-token`) unless one is set, so the admin routes can be tried. The
    /// preset stays the configured one: the binary starts the mock in its TokenHub mode for
    /// the TokenHub presets and in its legacy mode for `hunyuan`.
    pub fn use_demo_upstream(&mut self, base_url: String) {
        self.api_base = Some(base_url);
        self.api_key = Some(Secret::new("demo-key"));
        if self.admin_token.is_none() {
            self.admin_token = Some(Secret::new("demo-admin-token"));
        }
    }

    /// Applies `HUNYUAN_API_KEY`, `HUNYUAN_API_BASE` and `HUNYUAN_REDIS_URL` from `lookup` (use
    /// `|k| std::env::var(k).ok()` for the process environment). Empty values are ignored.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(key) = lookup("HUNYUAN_API_KEY").filter(|v| !v.is_empty()) {
            self.api_key = Some(Secret::new(key));
        }
        if let Some(base) = lookup("HUNYUAN_API_BASE").filter(|v| !v.is_empty()) {
            self.api_base = Some(base);
        }
        if let Some(url) = lookup("HUNYUAN_REDIS_URL").filter(|v| !v.is_empty()) {
            self.redis_url = Some(Secret::new(url));
        }
    }

    /// Checks every key; the error names the first bad one as it is written in the file.
    ///
    /// The server's own keys (listening, client connections, monitoring, Redis, the request
    /// log, …) are checked here. Every other key is checked by the config of the layer it
    /// configures: each layer config is built as [`Proxy::new`](crate::Proxy::new) builds it
    /// and its own `validate` runs, with the layer's field names turned back into the keys the
    /// user wrote (`concurrency` → `upstream_concurrency`). So each rule lives in one place.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server_keys()?;
        self.upstream_config()
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, UPSTREAM_KEYS)))?;
        self.fix_config().validate().map_err(|e| e.within("fix"))?;
        self.cascade_config()
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, CASCADE_KEYS)))?;
        self.description_cache_config()
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, CACHE_KEYS)))?;
        let table = self.model_table()?;
        self.models_settings(table).validate()?;
        self.auth_config()
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, AUTH_KEYS)))?;
        self.rate_limit_config().validate().map_err(|e| {
            e.renamed(|f| match f.strip_prefix("named.") {
                Some(name) => format!("client_keys.{name}.rate_limit"),
                None => key_of(f, RATE_LIMIT_KEYS),
            })
        })?;
        self.messages_config()?
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, INGRESS_KEYS)))?;
        self.responses_config()?
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, INGRESS_KEYS)))?;
        self.monitor_config()
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, MONITOR_KEYS)))?;
        self.usage_config()
            .validate()
            .map_err(|e| e.renamed(|f| key_of(f, USAGE_KEYS)))?;
        for (index, rule) in self.alert_rules.iter().enumerate() {
            rule.validate()
                .map_err(|e| e.within(&format!("alert_rules[{index}]")))?;
        }
        Ok(())
    }

    /// The keys no layer config checks: the listener, client connections, monitoring, the
    /// named keys' own shape and budgets, Redis, the usage labels and the secrets' lengths.
    fn validate_server_keys(&self) -> Result<(), InvalidConfig> {
        let invalid = |key: &str, problem: &str| Err(InvalidConfig::new(key, problem));
        if self.host.trim().is_empty() {
            return invalid("host", "must not be empty");
        }
        if self.port == 0 {
            return invalid("port", "must be between 1 and 65535");
        }
        if !LOG_LEVELS.contains(&self.log_level.to_ascii_lowercase().as_str()) {
            return invalid(
                "log_level",
                &format!(
                    "is `{}`; expected one of {}",
                    self.log_level,
                    LOG_LEVELS.join(", ")
                ),
            );
        }
        for origin in &self.cors_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return invalid("cors_origins", "holds a value that is not a valid origin");
            }
        }
        if self.alert_check_interval == 0 {
            return invalid("alert_check_interval", "must be at least 1 second");
        }
        let mut names = std::collections::HashSet::new();
        if let Some(rule) = self.alert_rules.iter().find(|r| !names.insert(&r.name)) {
            return invalid("alert_rules", &format!("names `{}` twice", rule.name));
        }
        if self.request_body_timeout == 0 {
            return invalid("request_body_timeout", "must be at least 1 second");
        }
        if self.request_body_limit < 1024 {
            return invalid("request_body_limit", "must be at least 1024 bytes");
        }
        if self.client_header_timeout == 0 {
            return invalid("client_header_timeout", "must be at least 1 second");
        }
        if self.client_idle_timeout == 0 {
            return invalid("client_idle_timeout", "must be at least 1 second");
        }
        if self.max_connections == Some(0) {
            return invalid("max_connections", "must be at least 1");
        }
        if self.http2_max_concurrent_streams == 0 {
            return invalid("http2_max_concurrent_streams", "must be at least 1");
        }
        if self.http2_max_header_list_size < 1024 {
            return invalid("http2_max_header_list_size", "must be at least 1024 bytes");
        }
        for (name, key) in &self.client_keys {
            key.validate(name)?;
        }
        if self.redis_timeout_ms == 0 {
            return invalid("redis_timeout_ms", "must be at least 1");
        }
        if self.redis_lease_secs == 0 {
            return invalid("redis_lease_secs", "must be at least 1");
        }
        if self.redis_url.as_ref().is_some_and(|u| u.is_empty()) {
            return invalid("redis_url", "must not be empty when set");
        }
        if self.responses_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return invalid("responses_secret", "must be at least 16 characters");
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 8) {
            return invalid("admin_token", "must be at least 8 characters");
        }
        Ok(())
    }

    /// The message-fixing config with its policy resolved: the `[fix]` table's, else the
    /// `upstream` preset's.
    pub fn fix_config(&self) -> crate::fix::FixConfig {
        let mut fix = self.fix.clone();
        fix.policy.get_or_insert(self.upstream.fix_policy());
        fix.vision = self.cascade_config().vision_models();
        fix
    }

    /// The upstream base URL without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_base
            .as_deref()
            .unwrap_or(self.upstream.api_base())
            .trim_end_matches('/')
    }

    /// The tool-calling text model.
    pub fn text_model(&self) -> &str {
        self.text_model
            .as_deref()
            .unwrap_or(self.upstream.text_model())
    }

    /// The vision model.
    pub fn vision_model(&self) -> &str {
        self.vision_model
            .as_deref()
            .unwrap_or(self.upstream.vision_model())
    }

    /// The cascade's settings with the models of `vision_model` and `text_model`; on the
    /// TokenHub presets also the model table (images native to models that see them, the
    /// client's model kept) and TokenHub's image types.
    pub fn cascade_config(&self) -> CascadeConfig {
        let cascade = self
            .cascade
            .clone()
            .models(self.vision_model(), self.text_model());
        if self.upstream.is_legacy() {
            return cascade;
        }
        let types = cascade.image_types.clone().unwrap_or_else(|| {
            crate::cascade::TOKENHUB_IMAGE_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect()
        });
        let cascade = cascade.image_types(Some(types));
        match self.model_table() {
            Ok(table) => cascade.model_table(std::sync::Arc::new(table)),
            Err(_) => cascade,
        }
    }

    /// The built-in model table with the `[models."<id>"]` tables laid over it (a table that
    /// cannot be used is named: `models."glm-6".like`).
    pub fn model_table(&self) -> Result<crate::models::ModelTable, InvalidConfig> {
        crate::models::ModelTable::builtin().configure(&self.models)
    }

    /// The model-profile layer's settings; `None` on the `hunyuan` preset, which has no
    /// profiles.
    pub fn models_config(&self) -> Option<crate::models::ModelsConfig> {
        if self.upstream.is_legacy() {
            return None;
        }
        Some(self.models_settings(self.model_table().ok()?))
    }

    /// The model-profile layer's settings over `table`, whatever the preset.
    fn models_settings(&self, table: crate::models::ModelTable) -> crate::models::ModelsConfig {
        let defaults = crate::models::ModelsConfig::default();
        crate::models::ModelsConfig {
            table: std::sync::Arc::new(table),
            forced_tool_choice: self.forced_tool_choice,
            reasoning_placeholder: self
                .reasoning_placeholder
                .clone()
                .unwrap_or(defaults.reasoning_placeholder),
            memory_bytes: self.reasoning_memory_bytes,
        }
    }

    /// The in-process monitor's window: `max_metric_points` samples over `metric_window`.
    pub fn monitor_config(&self) -> crate::metrics::MonitorConfig {
        crate::metrics::MonitorConfig {
            max_points: self.max_metric_points,
            window: Duration::from_secs(self.metric_window),
        }
    }

    /// The usage layer's settings: `usage_label_limit`.
    pub fn usage_config(&self) -> crate::usage::UsageConfig {
        crate::usage::UsageConfig {
            label_limit: self.usage_label_limit,
        }
    }

    /// The client keys: `client_api_keys`, then the named keys (`[client_keys.<name>]`)
    /// whose `key` or `key_sha256` is usable.
    pub fn auth_config(&self) -> crate::auth::AuthConfig {
        let mut auth = crate::auth::AuthConfig::new(self.client_api_keys.clone());
        for (name, key) in &self.client_keys {
            if let Some(key) = key.key_match() {
                auth = auth.named(name.clone(), key);
            }
        }
        auth
    }

    /// The rate limits: `rate_limit`, `client_rate_limit` and each named key's `rate_limit`.
    pub fn rate_limit_config(&self) -> crate::rate_limit::RateLimitConfig {
        crate::rate_limit::RateLimitConfig {
            global: self.rate_limit,
            per_key: self.client_rate_limit,
            named: self
                .client_keys
                .iter()
                .filter_map(|(name, key)| Some((name.clone(), key.rate_limit?)))
                .collect(),
        }
    }

    /// The Messages ingress's settings: TokenHub keeps reasoning in history and takes the
    /// thinking switch; `claude-*` names go to the text model unless `model_aliases` says
    /// otherwise. A malformed alias is named (`model_aliases."claude-*"`).
    pub fn messages_config(
        &self,
    ) -> Result<crate::ingress::messages::MessagesConfig, InvalidConfig> {
        use crate::ingress::messages::MessagesConfig;
        let messages = match self.upstream {
            Preset::Hunyuan => MessagesConfig::default(),
            _ => MessagesConfig::tokenhub(),
        };
        Ok(messages
            .with_body_limit(self.request_body_limit)
            .with_aliases(self.model_aliases_after("claude-*")?))
    }

    /// `default` (a client's own model names) → `text_model`, then `model_aliases`, which may
    /// override it.
    fn model_aliases_after(
        &self,
        default: &str,
    ) -> Result<crate::ingress::ModelAliases, InvalidConfig> {
        let mut aliases = crate::ingress::ModelAliases::new();
        let text = (default.to_owned(), self.text_model().to_owned());
        for (pattern, model) in std::iter::once(text).chain(self.model_aliases.clone()) {
            aliases
                .insert(pattern, model)
                .map_err(|e| InvalidConfig::from(e).renamed(|f| key_of(f, INGRESS_KEYS)))?;
        }
        Ok(aliases)
    }

    /// The Responses ingress's settings: TokenHub keeps reasoning in history and takes
    /// `reasoning.effort` and `text.format`; `gpt-*` names (Codex's defaults) go to the text
    /// model unless `model_aliases` says otherwise; reasoning is sealed under
    /// `responses_secret` (or a per-process secret). A malformed alias is named
    /// (`model_aliases."gpt-*"`).
    pub fn responses_config(
        &self,
    ) -> Result<crate::ingress::responses::ResponsesConfig, InvalidConfig> {
        use crate::ingress::responses::ResponsesConfig;
        let responses = match self.upstream {
            Preset::Hunyuan => ResponsesConfig::default(),
            _ => ResponsesConfig::tokenhub(),
        };
        let mut responses = responses
            .with_body_limit(self.request_body_limit)
            .with_store_limits(self.responses_store_limits())
            .with_aliases(self.model_aliases_after("gpt-*")?);
        if let Some(secret) = &self.responses_secret {
            responses = responses.with_secret(secret.expose());
        }
        Ok(responses)
    }

    /// The upstream settings: base URL, key, timeouts, concurrency, queue and retries.
    pub fn upstream_config(&self) -> crate::upstream::UpstreamConfig {
        crate::upstream::UpstreamConfig {
            api_base: self.api_base().to_owned(),
            api_key: self.api_key.clone(),
            api_keys: self.api_keys.clone(),
            key_cooldown: Duration::from_secs(self.upstream_key_cooldown),
            fallback_models: self.fallback_models.clone(),
            connect_timeout: self.connect_timeout(),
            read_timeout: self.request_timeout(),
            concurrency: self.upstream_concurrency,
            first_byte_timeout: self.first_byte_timeout(),
            max_retries: self.upstream_retries,
            retry_backoff: Duration::from_millis(self.upstream_retry_backoff_ms),
            queue_size: self.upstream_queue_size,
            queue_timeout: Duration::from_secs(self.upstream_queue_timeout),
        }
    }

    /// The description cache's settings: `cache_max_size`, `cache_ttl`,
    /// `enable_cache_logging`, and the `[cascade]` table's byte budget and wait.
    pub fn description_cache_config(&self) -> crate::cache::CacheConfig {
        self.cascade.cache_config(
            self.cache_max_size,
            self.cache_ttl(),
            self.enable_cache_logging,
        )
    }

    /// The Responses store's bounds: `responses_store_entries`, `responses_store_bytes` and
    /// `responses_store_ttl`.
    pub fn responses_store_limits(&self) -> crate::ingress::responses::StoreLimits {
        crate::ingress::responses::StoreLimits {
            max_entries: self.responses_store_entries,
            max_bytes: self.responses_store_bytes,
            ttl: Duration::from_secs(self.responses_store_ttl),
        }
    }

    /// The Redis settings, when `redis_url` is set.
    pub fn redis_config(&self) -> Option<RedisConfig> {
        let url = self.redis_url.as_ref()?;
        Some(
            RedisConfig::new(url.expose())
                .prefix(self.redis_prefix.clone())
                .failure(self.redis_failure)
                .timeout(Duration::from_millis(self.redis_timeout_ms)),
        )
    }

    /// `redis_lease_secs` as a duration.
    pub fn redis_lease(&self) -> Duration {
        Duration::from_secs(self.redis_lease_secs)
    }

    /// `cache_ttl` as a duration.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl)
    }

    /// `request_timeout` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }

    /// `first_byte_timeout` (or `request_timeout`) as a duration.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_secs(self.first_byte_timeout.unwrap_or(self.request_timeout))
    }

    /// `request_body_timeout` as a duration.
    pub fn request_body_timeout(&self) -> Duration {
        Duration::from_secs(self.request_body_timeout)
    }

    /// `connect_timeout` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_keys_own_rate_limit_is_taken_and_checked() {
        let text = "[client_keys.alice]\nkey = \"sk-alice-0123\"\n\
                    rate_limit = { per_second = 2, burst = 10 }\n";
        let c = Config::from_toml_str(text, "test").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.client_keys["alice"].rate_limit,
            Some(RateLimit::new(2.0, 10))
        );
        let zero = Config::from_toml_str(&text.replace("burst = 10", "burst = 0"), "test")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(zero.contains("`client_keys.alice.rate_limit`"), "{zero}");
        assert!(!zero.contains("sk-alice"), "{zero}");
    }

    #[test]
    fn redis_settings_come_from_the_file_and_the_environment() {
        let mut c = Config::from_toml_str(
            "redis_prefix = \"team-a:\"\nredis_failure = \"closed\"\nredis_timeout_ms = 20\n",
            "test",
        )
        .unwrap();
        assert!(c.redis_config().is_none(), "no URL: in-process");
        c.apply_env(|k| (k == "HUNYUAN_REDIS_URL").then(|| "redis://127.0.0.1:6390/0".into()));
        let redis = c.redis_config().unwrap();
        assert_eq!(redis.url, "redis://127.0.0.1:6390/0");
        assert_eq!(redis.prefix, "team-a:");
        assert_eq!(redis.failure, FailureMode::Closed);
        assert_eq!(redis.timeout, Duration::from_millis(20));
        assert!(!format!("{c:?}").contains("6390"), "the URL is redacted");
        assert!(Config::from_toml_str("redis_failure = \"open\"", "test").is_err());
        let lease = Config::from_toml_str("redis_lease_secs = 2", "test").unwrap();
        assert_eq!(lease.redis_lease(), Duration::from_secs(2));
        assert_eq!(Config::default().redis_lease(), Duration::from_secs(10));
        let zero = Config::from_toml_str("redis_lease_secs = 0", "test").unwrap();
        assert!(zero.validate().is_err());
        let defaults = Config::default();
        assert_eq!(
            (
                defaults.redis_prefix.as_str(),
                defaults.redis_failure,
                defaults.redis_timeout_ms
            ),
            ("hunyuan-proxy:", FailureMode::Local, 50)
        );
    }

    #[test]
    fn defaults_match_the_original() {
        let c = Config {
            upstream: Preset::Hunyuan,
            ..Config::default()
        };
        assert_eq!(c.port, 4000);
        assert_eq!(c.cache_max_size, 1000);
        assert_eq!(c.cache_ttl, 3600);
        assert_eq!(c.alert_check_interval, 30);
        assert_eq!(c.max_metric_points, 10_000);
        assert_eq!(c.upstream_concurrency, 5);
        assert_eq!(c.vision_model(), "hunyuan-vision-1.5-instruct");
        assert_eq!(c.text_model(), "hunyuan-2.0-thinking-20251109");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validation_names_the_bad_key() {
        let err = Config::from_toml_str("port = 0", "t.toml")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("`port`"), "{err}");
        let c = Config {
            log_level: "loud".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("log_level"));
        let c = Config {
            api_base: Some("".into()),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("api_base"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let err = Config::from_toml_str("prot = 4000", "t.toml").unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        let err = Config::from_toml_str("port = \"x\"", "t.toml").unwrap_err();
        assert!(err.to_string().contains("t.toml"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_secrets_are_redacted() {
        let mut c = Config::from_toml_str(
            "api_key = \"file-key\"\napi_base = \"http://a/v1\"",
            "t.toml",
        )
        .unwrap();
        c.apply_env(|k| match k {
            "HUNYUAN_API_KEY" => Some("env-key".into()),
            _ => None,
        });
        assert_eq!(c.api_key.as_ref().unwrap().expose(), "env-key");
        assert_eq!(c.api_base(), "http://a/v1");
        let shown = format!("{c:?}");
        assert!(!shown.contains("env-key"));
        assert!(serde_json::to_string(&c).unwrap().contains("[redacted]"));
    }

    #[test]
    fn alert_rules_load_and_are_validated() {
        let c = Config::from_toml_str(
            "[[alert_rules]]\nname = \"many_fixes\"\nmetric = \"counter:fixes\"\n\
             condition = \"gt\"\nthreshold = 100.0\nseverity = \"low\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.alert_rules[0].name, "many_fixes");
        assert!(c.validate().is_ok());
        let mut twice = c.clone();
        twice.alert_rules.push(c.alert_rules[0].clone());
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let err = Config::from_toml_str(
            "[[alert_rules]]\nname = \"x\"\nmetric = \"latency\"\ncondition = \"gt\"\nthreshold = 1.0\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("alert metric"), "{err}");
    }

    #[test]
    fn responses_keys_have_defaults_and_are_checked() {
        let c = Config::default();
        assert!(c.responses_secret.is_none());
        assert_eq!(c.responses_store_limits().max_entries, 1000);
        assert_eq!(c.responses_store_limits().ttl, Duration::from_secs(3600));
        let c = Config::from_toml_str(
            "responses_secret = \"0123456789abcdef-shared\"\nresponses_store_ttl = 60",
            "t.toml",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.responses_store_limits().ttl, Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        for (text, key) in [
            ("responses_secret = \"short\"", "responses_secret"),
            ("responses_store_entries = 0", "responses_store_entries"),
            ("responses_store_bytes = 10", "responses_store_bytes"),
            ("responses_store_ttl = 0", "responses_store_ttl"),
        ] {
            let err = Config::from_toml_str(text, "t.toml")
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn tokenhub_is_the_default_preset() {
        let c = Config::default();
        assert_eq!(c.upstream, Preset::Tokenhub);
        assert_eq!(c.api_base(), "https://tokenhub.tencentmaas.com/v1");
        assert_eq!((c.text_model(), c.vision_model()), ("hy4", "hy4-flash"));
        assert!(c.models_config().is_some());
        let cascade = c.cascade_config();
        assert!(cascade.sees_images("hy4") && !cascade.sees_images("hy3"));
        let intl = Config::from_toml_str("upstream = \"tokenhub-intl\"", "t.toml").unwrap();
        assert_eq!(
            intl.api_base(),
            "https://tokenhub-intl.tencentcloudmaas.com/v1"
        );
        let legacy = Config::from_toml_str("upstream = \"hunyuan\"", "t.toml").unwrap();
        assert!(legacy.models_config().is_none());
        assert!(legacy.cascade_config().models.is_none());
    }

    #[test]
    fn models_tables_are_read_and_checked() {
        let c = Config::from_toml_str(
            "forced_tool_choice = \"disable_thinking\"\n\
             [models.\"glm-6\"]\nlike = \"glm-5.2\"\nimages = true\n\
             [models.\"glm-6\".price]\ninput = 1.0\noutput = 4.0\n",
            "t.toml",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        let models = c.models_config().unwrap();
        assert!(models.table.sees_images("glm-6"));
        assert_eq!(
            models.forced_tool_choice,
            crate::models::ForcedToolChoice::DisableThinking
        );
        let bad = Config::from_toml_str("[models.x]\nlike = \"nothing\"", "t.toml").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("models"));
        assert!(Config::from_toml_str("[models.x]\nvision = true", "t.toml").is_err());
    }

    #[test]
    fn cascade_table_is_read_and_checked() {
        let c = Config::from_toml_str(
            "vision_model = \"v\"\n[cascade]\non_failure = \"degrade\"\nmax_images = 3",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.cascade.max_images, 3);
        assert_eq!(c.cascade_config().vision_model, "v");
        assert!(c.validate().is_ok());
        let c = Config::from_toml_str("[cascade]\nconcurrency = 0", "t.toml").unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("cascade.concurrency"), "{err}");
        assert!(Config::from_toml_str("[cascade]\nbogus = 1", "t.toml").is_err());
    }

    #[test]
    fn proxy_config_fix_table_follows_the_upstream_preset() {
        let config = Config::from_toml_str(
            "upstream = \"tokenhub\"\n[fix.rules]\nlength = true\n",
            "test",
        )
        .unwrap();
        let fix = config.fix_config();
        assert_eq!(fix.policy(), crate::fix::FixPolicy::TokenHub);
        assert!(fix.enabled(crate::fix::Rule::Length));
        assert!(!fix.enabled(crate::fix::Rule::Alternation));
        let legacy = Config::from_toml_str(
            "upstream = \"hunyuan\"\n[fix]\nprefill = \"fold_into_user\"\n",
            "test",
        )
        .unwrap()
        .fix_config();
        assert_eq!(legacy.policy(), crate::fix::FixPolicy::Legacy);
        assert_eq!(legacy.prefill, crate::fix::PrefillMode::FoldIntoUser);
        let bad = Config::from_toml_str("[fix]\nmax_messages = 1\n", "test").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`fix.max_messages`"));
        assert!(Config::from_toml_str("[fix.rules]\nunknown = true\n", "test").is_err());
    }

    /// The message of `text`'s validation error (the text must parse).
    fn refusal(text: &str) -> String {
        Config::from_toml_str(text, "t.toml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_key_the_user_wrote() {
        for (text, key) in [
            // Checked by the upstream's config, named by the file's keys.
            ("upstream_concurrency = 0", "`upstream_concurrency`"),
            ("request_timeout = 0", "`request_timeout`"),
            ("connect_timeout = 0", "`connect_timeout`"),
            ("first_byte_timeout = 0", "`first_byte_timeout`"),
            ("upstream_queue_timeout = 0", "`upstream_queue_timeout`"),
            ("upstream_key_cooldown = 0", "`upstream_key_cooldown`"),
            ("api_base = \"ftp://h/v1\"", "`api_base`"),
            ("api_keys = [\" \"]", "`api_keys`"),
            ("api_key = \"sk-\\nx\"", "`api_key`"),
            // The description cache's config.
            ("cache_max_size = 0", "`cache_max_size`"),
            ("cache_ttl = 0", "`cache_ttl`"),
            (
                "[cascade]\ncache_max_bytes = 0",
                "`cascade.cache_max_bytes`",
            ),
            (
                "[cascade]\ncache_wait_secs = 0",
                "`cascade.cache_wait_secs`",
            ),
            // The cascade's and the fixer's tables.
            ("[cascade]\nmax_images = 0", "`cascade.max_images`"),
            ("text_model = \" \"", "`text_model`"),
            ("[fix]\ncontinue_text = \"\"", "`fix.continue_text`"),
            ("[fix]\nmax_messages = 1", "`fix.max_messages`"),
            // The auth and rate-limit layers.
            (
                "client_api_keys = [\"long-enough\", \"short\"]",
                "`client_api_keys[1]`",
            ),
            (
                "[client_keys.bob]\nkey = \"short\"",
                "`client_keys.bob.key`",
            ),
            (
                "rate_limit = { per_second = 0.0, burst = 1 }",
                "`rate_limit`",
            ),
            (
                "client_rate_limit = { per_second = 1.0, burst = 0 }",
                "`client_rate_limit`",
            ),
            // The models table, the named keys, the ingresses, the alert rules.
            (
                "[models.\"hy4\"]\nprice = { input = -1.0, output = 1.0 }",
                "`models.\"hy4\".price`",
            ),
            (
                "[client_keys.alice]\nkey = \"sk-alice-0123\"\nbudget = { tokens_per_day = 0 }",
                "`client_keys.alice.budget`",
            ),
            (
                "[model_aliases]\n\"cl*ude\" = \"hy4\"",
                "`model_aliases.\"cl*ude\"`",
            ),
            ("responses_store_bytes = 10", "`responses_store_bytes`"),
            ("reasoning_placeholder = \" \"", "`reasoning_placeholder`"),
            ("max_metric_points = 0", "`max_metric_points`"),
            ("metric_window = 0", "`metric_window`"),
            ("usage_label_limit = 0", "`usage_label_limit`"),
            (
                "[[alert_rules]]\nname = \"x\"\nmetric = \"error_rate\"\ncondition = \"gt\"\n\
                 threshold = 0.5\nhysteresis = 2.0\n",
                "`alert_rules[0].hysteresis`",
            ),
        ] {
            let err = refusal(text);
            assert!(err.contains(key), "{text:?}: {err}");
            assert!(!err.contains("sk-alice"), "{err}");
        }
    }

    #[test]
    fn an_empty_fallback_list_is_refused_as_before() {
        // `Config::validate` refused it, the upstream's own config took it: one rule now.
        let err = refusal("[fallback_models]\nhy4 = []");
        assert!(err.contains("`fallback_models.\"hy4\"`"), "{err}");
        let err = refusal("[fallback_models]\nhy4 = [\"hy4\"]");
        assert!(err.contains("`fallback_models.\"hy4\"`"), "{err}");
        let ok = Config::from_toml_str("[fallback_models]\nhy4 = [\"hy3\"]", "t.toml").unwrap();
        ok.validate().unwrap();
        crate::upstream::Upstream::new(ok.upstream_config()).unwrap();
        let empty = Config::from_toml_str("[fallback_models]\nhy4 = []", "t.toml").unwrap();
        assert!(empty.upstream_config().validate().is_err());
    }

    #[test]
    fn a_small_response_store_is_refused_by_the_layer_too() {
        // The server refused fewer than 1024 bytes, the Responses layer only 0.
        let c = Config::from_toml_str("responses_store_bytes = 10", "t.toml").unwrap();
        assert!(c.responses_config().unwrap().validate().is_err());
    }

    #[test]
    fn a_named_keys_name_may_not_look_like_a_plain_keys() {
        let hex = "ab".repeat(32);
        let err = refusal(&format!("[client_keys.\"#0\"]\nkey_sha256 = \"{hex}\""));
        assert!(err.contains("`client_keys`"), "{err}");
        let err = refusal("[client_keys.carol]\nkey = \"sk-carol-0123\"\nkey_sha256 = \"00\"");
        assert!(err.contains("`client_keys.carol`"), "{err}");
    }

    #[test]
    fn the_fixer_and_the_cascade_agree_on_who_sees_images() {
        for preset in ["tokenhub", "tokenhub-intl", "tokenplan", "hunyuan"] {
            let c = Config::from_toml_str(&format!("upstream = \"{preset}\""), "t.toml").unwrap();
            let (cascade, fix) = (c.cascade_config(), c.fix_config());
            let table = crate::models::ModelTable::builtin();
            let names = table.entries().map(|(id, _)| id).chain(
                [
                    c.vision_model(),
                    c.text_model(),
                    "hunyuan-vision-1.5-instruct",
                    "x-vision",
                ]
                .map(str::to_owned),
            );
            for model in names {
                assert_eq!(
                    fix.vision.sees_images(&model),
                    cascade.sees_images(&model),
                    "{preset}: {model}"
                );
            }
        }
        // TokenHub: the table decides, not the name; the legacy preset keeps its naming rule.
        let hub = Config::default().fix_config().vision;
        assert!(hub.sees_images("hy4") && !hub.sees_images("hy3"));
        let legacy = Config::from_toml_str("upstream = \"hunyuan\"", "t.toml")
            .unwrap()
            .fix_config()
            .vision;
        assert!(legacy.sees_images("hunyuan-vision-1.5-instruct") && !legacy.sees_images("hy4"));
    }
}
