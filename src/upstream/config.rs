//! How the upstream is reached: [`UpstreamConfig`], checked once by
//! [`validate`](UpstreamConfig::validate) when the [`Upstream`](super::Upstream) is built.

use crate::error::InvalidConfig;
use crate::secret::Secret;
use http::HeaderValue;
use std::time::Duration;

/// How the upstream is reached.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL ending in `/v1`.
    pub api_base: String,
    /// The key sent as `Authorization: Bearer`.
    pub api_key: Option<Secret>,
    /// More keys (accounts): with `api_key` they form the key pool (the union, `api_key`
    /// first, duplicates once). Each key has its own `concurrency`.
    pub api_keys: Vec<Secret>,
    /// How long a key the upstream refused (401/403) is left out.
    pub key_cooldown: Duration,
    /// Models tried in order, before the first byte, when a model's attempts (retries
    /// included) failed with 429, 5xx or a timeout: model → its fallbacks.
    pub fallback_models: std::collections::BTreeMap<String, Vec<String>>,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time the upstream may stay silent: before its answer starts, and between stream chunks.
    pub read_timeout: Duration,
    /// Requests in flight at once, per key.
    pub concurrency: usize,
    /// Time allowed from sending a request until the upstream's answer starts (retries
    /// included).
    pub first_byte_timeout: Duration,
    /// Retries before the answer starts, on connection failures, 429 and 500/502/503/504.
    pub max_retries: u32,
    /// The first retry's backoff; each further retry doubles it (with jitter).
    pub retry_backoff: Duration,
    /// Requests that may wait for a free slot; past it callers get 429 at once.
    pub queue_size: usize,
    /// How long a request may wait for a free slot before it gets 429.
    pub queue_timeout: Duration,
}

impl UpstreamConfig {
    /// Defaults (10 s connect, 600 s read, 5 in flight) for `api_base`.
    pub fn new(api_base: impl Into<String>) -> Self {
        UpstreamConfig {
            api_base: api_base.into(),
            api_key: None,
            api_keys: Vec::new(),
            key_cooldown: Duration::from_secs(60),
            fallback_models: std::collections::BTreeMap::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(600),
            concurrency: 5,
            first_byte_timeout: Duration::from_secs(600),
            max_retries: 2,
            retry_backoff: Duration::from_millis(250),
            queue_size: 256,
            queue_timeout: Duration::from_secs(60),
        }
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// Adds keys to the pool (see [`api_keys`](Self::api_keys)).
    pub fn api_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.api_keys.extend(keys.into_iter().map(Secret::new));
        self
    }

    /// The pool's keys: `api_key`, then `api_keys`, each value once.
    pub fn pool_keys(&self) -> Vec<&Secret> {
        let mut keys: Vec<&Secret> = Vec::new();
        for key in self.api_key.iter().chain(&self.api_keys) {
            if !keys.iter().any(|k| k.expose() == key.expose()) {
                keys.push(key);
            }
        }
        keys
    }

    /// Tries `fallbacks`, in order, when `model` fails before its answer starts.
    pub fn fallback<I, M>(mut self, model: impl Into<String>, fallbacks: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<String>,
    {
        self.fallback_models.insert(
            model.into(),
            fallbacks.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Sets the read timeout.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the number of requests in flight at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets the time allowed until the answer starts.
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.first_byte_timeout = timeout;
        self
    }

    /// Sets the number of retries before the answer starts.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first retry's backoff.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets the wait queue's length and the longest wait in it.
    pub fn queue(mut self, size: usize, timeout: Duration) -> Self {
        self.queue_size = size;
        self.queue_timeout = timeout;
        self
    }

    /// Checks every field; the error names the first bad one. `api_base` must be an http(s)
    /// URL with a host, every key fit in a header (and not be empty in `api_keys`), each
    /// `fallback_models` entry name other, non-empty models, `concurrency` be at least 1 and
    /// every timeout be longer than zero (`queue_size`, `max_retries` and `retry_backoff` may
    /// be 0).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |field: &str, problem: &str| Err(InvalidConfig::new(field, problem));
        match reqwest::Url::parse(self.api_base.trim_end_matches('/')) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => return invalid("api_base", "must be an http:// or https:// URL with a host"),
        }
        if self.api_keys.iter().any(|k| k.expose().trim().is_empty()) {
            return invalid("api_keys", "holds an empty key");
        }
        self.auth_headers()?;
        for (model, fallbacks) in &self.fallback_models {
            if fallbacks.is_empty() || fallbacks.iter().any(|f| f.trim().is_empty() || f == model) {
                return invalid(
                    &format!("fallback_models.{model:?}"),
                    "needs a list of other, non-empty model names",
                );
            }
        }
        if self.key_cooldown.is_zero() {
            return invalid("key_cooldown", "must be longer than zero");
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        for (field, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("first_byte_timeout", self.first_byte_timeout),
            ("queue_timeout", self.queue_timeout),
        ] {
            if timeout.is_zero() {
                return invalid(field, "must be longer than zero");
            }
        }
        Ok(())
    }

    /// The `Authorization` header of each pool key ([`pool_keys`](Self::pool_keys)), marked
    /// sensitive; a key that cannot be a header is refused (named `api_key` or `api_keys`,
    /// never by value).
    pub fn auth_headers(&self) -> Result<Vec<HeaderValue>, InvalidConfig> {
        self.pool_keys()
            .into_iter()
            .enumerate()
            .map(|(index, key)| {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| {
                        let field = if index == 0 && self.api_key.is_some() {
                            "api_key"
                        } else {
                            "api_keys"
                        };
                        InvalidConfig::new(field, "holds characters not allowed in a header")
                    })?;
                value.set_sensitive(true);
                Ok(value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: UpstreamConfig) -> String {
        config.validate().unwrap_err().field
    }

    #[test]
    fn the_defaults_are_valid() {
        UpstreamConfig::new("https://api.hunyuan.cloud.tencent.com/v1")
            .validate()
            .unwrap();
        UpstreamConfig::new("http://127.0.0.1:9/v1/")
            .validate()
            .unwrap();
    }

    #[test]
    fn api_base_must_be_an_http_url_with_a_host() {
        for base in [
            "",
            "api.hunyuan.cloud.tencent.com/v1",
            "ftp://host/v1",
            "file:///v1",
        ] {
            let err = UpstreamConfig::new(base).validate().unwrap_err();
            assert_eq!(err.field, "api_base", "{base:?}");
            assert!(err.to_string().contains("`api_base`"), "{err}");
        }
    }

    #[test]
    fn an_api_key_that_cannot_be_a_header_is_refused() {
        let config = UpstreamConfig::new("http://h/v1").api_key("sk-\nnewline");
        assert_eq!(field_of(config), "api_key");
    }

    #[test]
    fn concurrency_and_every_timeout_must_be_above_zero() {
        let base = || UpstreamConfig::new("http://h/v1");
        assert_eq!(field_of(base().concurrency(0)), "concurrency");
        assert_eq!(
            field_of(base().connect_timeout(Duration::ZERO)),
            "connect_timeout"
        );
        assert_eq!(
            field_of(base().read_timeout(Duration::ZERO)),
            "read_timeout"
        );
        assert_eq!(
            field_of(base().first_byte_timeout(Duration::ZERO)),
            "first_byte_timeout"
        );
        assert_eq!(field_of(base().queue(4, Duration::ZERO)), "queue_timeout");
        // No queue, no retries and no backoff are all meaningful.
        base()
            .queue(0, Duration::from_secs(1))
            .max_retries(0)
            .retry_backoff(Duration::ZERO)
            .validate()
            .unwrap();
    }

    #[test]
    fn fallback_lists_must_name_other_models() {
        let base = || UpstreamConfig::new("http://h/v1");
        let empty: [&str; 0] = [];
        assert_eq!(
            field_of(base().fallback("hy4", empty)),
            "fallback_models.\"hy4\""
        );
        assert_eq!(
            field_of(base().fallback("glm-5.2", ["glm-5.2"])),
            "fallback_models.\"glm-5.2\""
        );
        assert_eq!(
            field_of(base().fallback("hy4", [" "])),
            "fallback_models.\"hy4\""
        );
        base().fallback("hy4", ["hy4-flash"]).validate().unwrap();
    }
}
