//! [`MessagesConfig`]: how the Messages ingress translates.

use crate::error::InvalidConfig;
use crate::ingress::ModelAliases;
use serde::Deserialize;
use std::time::Duration;

/// The Messages ingress's configuration: checked once, when the layer is built.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// Client model names mapped to upstream models (e.g. `"claude-*" = "hy3"`); a name no
    /// alias matches goes upstream as it is.
    pub aliases: ModelAliases,
    /// Keep `thinking` blocks of the history as the assistant's `reasoning_content` (TokenHub,
    /// whose models expect their reasoning back); off: they are dropped (the legacy endpoint
    /// refuses reasoning in history, R4).
    pub reasoning_history: bool,
    /// Pass the client's `thinking` switch upstream as `thinking: {"type": "enabled" |
    /// "disabled"}` (TokenHub); off: it only decides whether the answer shows thinking.
    pub thinking_switch: bool,
    /// Largest accepted request body, in bytes (a server's `BodyLimit` extension wins).
    pub body_limit: usize,
    /// How long a stream may stay silent before a `ping` event is sent, in seconds.
    pub ping_interval_secs: u64,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            aliases: ModelAliases::new(),
            reasoning_history: false,
            thinking_switch: false,
            body_limit: crate::chat::DEFAULT_BODY_LIMIT,
            ping_interval_secs: 15,
        }
    }
}

/// A [`MessagesConfig`] that cannot be used: the crate's one config error shape, naming the
/// field (`body_limit`, `aliases."claude-*"`).
pub type MessagesConfigError = InvalidConfig;

impl MessagesConfig {
    /// The defaults for TokenHub: reasoning kept in history, the thinking switch passed on.
    pub fn tokenhub() -> Self {
        MessagesConfig {
            reasoning_history: true,
            thinking_switch: true,
            ..Self::default()
        }
    }

    /// Sets the model aliases.
    pub fn with_aliases(mut self, aliases: ModelAliases) -> Self {
        self.aliases = aliases;
        self
    }

    /// Adds one alias (`claude-*` → `model`).
    pub fn with_alias(
        mut self,
        pattern: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, MessagesConfigError> {
        self.aliases.insert(pattern, model)?;
        Ok(self)
    }

    /// Keeps (or drops) reasoning in the history.
    pub fn with_reasoning_history(mut self, on: bool) -> Self {
        self.reasoning_history = on;
        self
    }

    /// Passes (or not) the thinking switch upstream.
    pub fn with_thinking_switch(mut self, on: bool) -> Self {
        self.thinking_switch = on;
        self
    }

    /// Sets the body limit in bytes.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the silence before a `ping`, in seconds.
    pub fn with_ping_interval_secs(mut self, secs: u64) -> Self {
        self.ping_interval_secs = secs;
        self
    }

    /// The silence before a `ping`.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }

    /// Checks the configuration (the aliases were checked as they were added).
    pub fn validate(&self) -> Result<(), MessagesConfigError> {
        if self.body_limit == 0 {
            return Err(InvalidConfig::new("body_limit", "must be at least 1 byte"));
        }
        if self.ping_interval_secs == 0 {
            return Err(InvalidConfig::new(
                "ping_interval_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
