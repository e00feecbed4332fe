//! [`ResponsesConfig`]: how the Responses ingress translates (what [`to_chat`](super::to_chat)
//! reads), and where it keeps responses.

use super::reasoning::ReasoningCodec;
use super::store::StoreLimits;
use crate::error::InvalidConfig;
use crate::ingress::ModelAliases;
use std::time::Duration;

/// The Responses ingress's configuration: checked once, when the layer is built. The
/// translation ([`to_chat`](super::to_chat)) reads it as it is.
///
/// The defaults suit the legacy endpoint: no reasoning in history, no `reasoning_effort`, no
/// `response_format`; [`tokenhub`](Self::tokenhub) turns all three on.
#[derive(Debug, Clone)]
pub struct ResponsesConfig {
    /// Client model names mapped to upstream models (e.g. `"gpt-*" = "hy3"`); a name no alias
    /// matches goes upstream as it is. The answer always names the client's model.
    pub aliases: ModelAliases,
    /// Replayed reasoning items become the assistant's `reasoning_content` (TokenHub); off:
    /// they are dropped (the legacy endpoint refuses reasoning in history).
    pub reasoning_history: bool,
    /// `reasoning.effort` goes upstream as `reasoning_effort` (TokenHub); off: dropped and
    /// reported.
    pub pass_reasoning_effort: bool,
    /// `text.format` goes upstream as `response_format` (TokenHub); off: dropped and reported.
    pub response_format: bool,
    /// Seals and opens reasoning's `encrypted_content`; give every replica the same secret
    /// ([`ReasoningCodec::new`]). The default is a per-process secret.
    pub codec: ReasoningCodec,
    /// Bounds of the in-memory response store (entries, bytes, time to live).
    pub store_limits: StoreLimits,
    /// Largest accepted request body, in bytes (a server's `BodyLimit` extension wins).
    pub body_limit: usize,
    /// How long a stream may stay silent before a keep-alive comment is sent, in seconds.
    pub keepalive_secs: u64,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            aliases: ModelAliases::new(),
            reasoning_history: false,
            pass_reasoning_effort: false,
            response_format: false,
            codec: ReasoningCodec::ephemeral(),
            store_limits: StoreLimits::default(),
            body_limit: crate::chat::DEFAULT_BODY_LIMIT,
            keepalive_secs: 15,
        }
    }
}

/// A [`ResponsesConfig`] that cannot be used: the crate's one config error shape, naming the
/// field (`keepalive_secs`, `store_limits.max_entries`, `aliases."gpt-*"`).
pub type ResponsesConfigError = InvalidConfig;

/// The fewest bytes the response store may be given: one stored response's JSON is larger.
const MIN_STORE_BYTES: u64 = 1024;

impl ResponsesConfig {
    /// The defaults for TokenHub: reasoning kept in history, `reasoning.effort` and
    /// `text.format` passed on.
    pub fn tokenhub() -> Self {
        ResponsesConfig {
            reasoning_history: true,
            pass_reasoning_effort: true,
            response_format: true,
            ..Self::default()
        }
    }

    /// Sets the model aliases.
    pub fn with_aliases(mut self, aliases: ModelAliases) -> Self {
        self.aliases = aliases;
        self
    }

    /// Adds one alias (`gpt-*` → `model`).
    pub fn with_alias(
        mut self,
        pattern: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, ResponsesConfigError> {
        self.aliases.insert(pattern, model)?;
        Ok(self)
    }

    /// Keeps (or drops) replayed reasoning in the history.
    pub fn with_reasoning_history(mut self, on: bool) -> Self {
        self.reasoning_history = on;
        self
    }

    /// Passes (or drops) `reasoning.effort`.
    pub fn with_pass_reasoning_effort(mut self, on: bool) -> Self {
        self.pass_reasoning_effort = on;
        self
    }

    /// Passes (or drops) `text.format`.
    pub fn with_response_format(mut self, on: bool) -> Self {
        self.response_format = on;
        self
    }

    /// Seals reasoning under `secret` (the same on every replica).
    pub fn with_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.codec = ReasoningCodec::new(secret);
        self
    }

    /// Seals and opens reasoning with `codec` (one made elsewhere with the replicas' secret).
    pub fn with_codec(mut self, codec: ReasoningCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the store's bounds.
    pub fn with_store_limits(mut self, limits: StoreLimits) -> Self {
        self.store_limits = limits;
        self
    }

    /// Sets the body limit in bytes.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the silence before a keep-alive, in seconds.
    pub fn with_keepalive_secs(mut self, secs: u64) -> Self {
        self.keepalive_secs = secs;
        self
    }

    /// The silence before a keep-alive.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }

    /// Checks the configuration (the aliases were checked as they were added); the error
    /// names the field (`store_limits.ttl`).
    pub fn validate(&self) -> Result<(), ResponsesConfigError> {
        let invalid = |field: &str, problem: &str| Err(InvalidConfig::new(field, problem));
        if self.body_limit == 0 {
            return invalid("body_limit", "must be at least 1 byte");
        }
        if self.keepalive_secs == 0 {
            return invalid("keepalive_secs", "must be at least 1");
        }
        if self.store_limits.max_entries == 0 {
            return invalid("store_limits.max_entries", "must be at least 1");
        }
        if self.store_limits.max_bytes < MIN_STORE_BYTES {
            return invalid(
                "store_limits.max_bytes",
                &format!("must be at least {MIN_STORE_BYTES} bytes"),
            );
        }
        if self.store_limits.ttl < Duration::from_secs(1) {
            return invalid("store_limits.ttl", "must be at least 1 second");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_validation() {
        let legacy = ResponsesConfig::default();
        assert!(legacy.validate().is_ok());
        assert!(!legacy.reasoning_history);
        let hub = ResponsesConfig::tokenhub();
        assert!(hub.reasoning_history && hub.pass_reasoning_effort && hub.response_format);
        let bad = ResponsesConfig::default().with_store_limits(StoreLimits {
            max_entries: 0,
            ..StoreLimits::default()
        });
        assert_eq!(
            bad.validate().unwrap_err().field,
            "store_limits.max_entries"
        );
        // The server refused fewer than 1024 bytes, the layer only 0: one rule now.
        let bad = ResponsesConfig::default().with_store_limits(StoreLimits {
            max_bytes: 10,
            ..StoreLimits::default()
        });
        assert_eq!(bad.validate().unwrap_err().field, "store_limits.max_bytes");
        let bad = ResponsesConfig::default().with_store_limits(StoreLimits {
            ttl: Duration::ZERO,
            ..StoreLimits::default()
        });
        assert_eq!(bad.validate().unwrap_err().field, "store_limits.ttl");
        assert_eq!(
            ResponsesConfig::default()
                .with_keepalive_secs(0)
                .validate()
                .unwrap_err()
                .field,
            "keepalive_secs"
        );
        let a = ResponsesConfig::default().with_secret("s").codec;
        let b = ResponsesConfig::default().with_secret("s").codec;
        assert_eq!(b.open(&a.seal("x")).as_deref(), Some("x"));
    }
}
