//! [`ModelProfile`]: what one upstream model can do and what it refuses, and
//! [`ModelSettings`], the `[models."<id>"]` table that overrides or adds a profile.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a model's thinking is switched on and off through the chat request's `thinking` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingSwitch {
    /// `thinking: {"type": "enabled" | "disabled"}` (hy, DeepSeek, GLM-5.2, Kimi K2.x);
    /// `adaptive` becomes `enabled`.
    Toggle,
    /// `thinking: {"type": "adaptive" | "disabled"}` (MiniMax); `enabled` becomes `adaptive`.
    AdaptiveOrDisabled,
    /// Always thinking, no switch (GLM-5.3, hunyuan-t1-vision): the field is not sent, and
    /// a request to turn thinking off is reported.
    AlwaysOn,
    /// No `thinking` field at all (kimi-k3, models without reasoning): it is not sent and is
    /// reported.
    Unsupported,
}

/// Which `tool_choice` values a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceSupport {
    /// Every OpenAI value.
    Any,
    /// Only `auto` and `none` (hy3): `required` or a named function becomes `auto`.
    AutoOnly,
    /// `required` or a named function refused while thinking is on (DeepSeek V4): the
    /// request is downgraded (see [`ForcedToolChoice`](super::ForcedToolChoice)).
    NotForcedWhileThinking,
}

/// What one model can do and refuses. The built-in table ([`ModelTable::builtin`](super::ModelTable::builtin))
/// holds TokenHub's models; `docs/models.md` lists them with the confidence of each fact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    /// The model sees images: they are passed to it natively, never described.
    pub images: bool,
    /// The model calls tools.
    pub tools: bool,
    /// How its thinking is switched.
    pub thinking: ThinkingSwitch,
    /// Whether it thinks when the request says nothing.
    pub thinking_default: bool,
    /// The `reasoning_effort` values it accepts, lowest first; empty: the field is not sent.
    /// Another value becomes the nearest accepted one on the scale
    /// `none, minimal, low, medium, high, xhigh, max`.
    pub efforts: Vec<String>,
    /// An assistant turn with tool calls must carry its non-empty `reasoning_content` while
    /// thinking is on (replayed when the client dropped it).
    pub replay_reasoning: bool,
    /// The `tool_choice` values it takes.
    pub tool_choice: ToolChoiceSupport,
    /// Top-level request fields it refuses: removed and reported.
    pub strip_params: Vec<String>,
    /// Top-level request fields it takes under another name (`max_tokens` →
    /// `max_completion_tokens`).
    pub rename_params: BTreeMap<String, String>,
    /// It takes the `developer` role (otherwise `developer` becomes `system`).
    pub developer_role: bool,
    /// The most `stop` sequences it takes (extra ones are removed and reported).
    pub max_stop: Option<usize>,
    /// For a retired id: the current model requests are sent to instead.
    pub replaced_by: Option<String>,
}

impl Default for ModelProfile {
    /// A model the proxy knows nothing about: text and tools, no rules applied beyond
    /// TokenHub's general `stop` limit.
    fn default() -> Self {
        ModelProfile {
            images: false,
            tools: true,
            thinking: ThinkingSwitch::Toggle,
            thinking_default: false,
            efforts: Vec::new(),
            replay_reasoning: false,
            tool_choice: ToolChoiceSupport::Any,
            strip_params: Vec::new(),
            rename_params: BTreeMap::new(),
            developer_role: true,
            max_stop: Some(4),
            replaced_by: None,
        }
    }
}

impl ModelProfile {
    /// The profile with `settings` laid over it (keys left out keep their value).
    pub fn with(mut self, settings: &ModelSettings) -> Self {
        let s = settings;
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = &s.$field {
                    self.$field = v.clone();
                }
            )*};
        }
        set!(
            images,
            tools,
            thinking,
            thinking_default,
            efforts,
            replay_reasoning,
            tool_choice,
            strip_params,
            rename_params,
            developer_role
        );
        if let Some(n) = s.max_stop {
            self.max_stop = (n > 0).then_some(n);
        }
        if let Some(to) = &s.replaced_by {
            self.replaced_by = (!to.is_empty()).then(|| to.clone());
        }
        self
    }
}

/// One `[models."<id>"]` table of the config: overrides a built-in profile, or adds a model
/// (starting from `like`'s profile, or from the default one). An id ending in `*` is a prefix
/// (`[models."deepseek-v4-flash*"]` covers the dated ids).
///
/// ```toml
/// [models."glm-5.4"]
/// like = "glm-5.2"
/// images = true
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// Start from this model's profile (a built-in or configured id).
    pub like: Option<String>,
    /// [`ModelProfile::images`].
    pub images: Option<bool>,
    /// [`ModelProfile::tools`].
    pub tools: Option<bool>,
    /// [`ModelProfile::thinking`]: `toggle`, `adaptive_or_disabled`, `always_on`,
    /// `unsupported`.
    pub thinking: Option<ThinkingSwitch>,
    /// [`ModelProfile::thinking_default`].
    pub thinking_default: Option<bool>,
    /// [`ModelProfile::efforts`].
    pub efforts: Option<Vec<String>>,
    /// [`ModelProfile::replay_reasoning`].
    pub replay_reasoning: Option<bool>,
    /// [`ModelProfile::tool_choice`]: `any`, `auto_only`, `not_forced_while_thinking`.
    pub tool_choice: Option<ToolChoiceSupport>,
    /// [`ModelProfile::strip_params`].
    pub strip_params: Option<Vec<String>>,
    /// [`ModelProfile::rename_params`].
    pub rename_params: Option<BTreeMap<String, String>>,
    /// [`ModelProfile::developer_role`].
    pub developer_role: Option<bool>,
    /// [`ModelProfile::max_stop`] (0: no limit).
    pub max_stop: Option<usize>,
    /// [`ModelProfile::replaced_by`] (`""`: the id is served again, not retired).
    pub replaced_by: Option<String>,
    /// The model's price per million tokens (read by the usage accounting, not by the
    /// profile; overrides a built-in one).
    pub price: Option<crate::usage::Price>,
}
