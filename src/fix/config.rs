//! [`FixConfig`]: which rules run, under which policy, with which texts.

use crate::cascade::VisionModels;
use crate::error::InvalidConfig;
use serde::{Deserialize, Serialize};

/// Which upstream's rules the fixer follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FixPolicy {
    /// The legacy endpoint (`api.hunyuan.cloud.tencent.com`): every rule R1–R12 applies
    /// (`docs/hunyuan-api.md` numbers them).
    #[default]
    Legacy,
    /// TokenHub (`tokenhub.tencentmaas.com`): `reasoning_content` and `reasoning_effort` are
    /// kept, role order and the message limit are not enforced, stop strings are not trimmed.
    #[serde(rename = "tokenhub")]
    TokenHub,
}

/// What to do with a trailing assistant message (a prefill).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillMode {
    /// Keep the prefill and append a short user turn asking to continue
    /// ([`FixConfig::continue_text`]).
    #[default]
    ContinueTurn,
    /// Remove the prefill and append it to the last user turn as an instruction to continue
    /// from it ([`FixConfig::fold_text`]). A prefill that carries tool calls, or that follows a
    /// tool result, always gets a continue turn instead.
    FoldIntoUser,
}

/// One named fix rule. [`Rule::name`] is what [`FixReport`](super::FixReport) records and what
/// metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// `developer` → `system`; all system texts merged into one message at index 0.
    System,
    /// Strict user/assistant alternation, starting with user; tools only after tool calls.
    Alternation,
    /// The conversation ends with user or tool (no prefill).
    Ending,
    /// No empty content.
    EmptyContent,
    /// Unsupported fields dropped, out-of-range values refused.
    Fields,
    /// Tool names outside `[A-Za-z0-9_-]` rewritten (and mapped back in answers).
    ToolNames,
    /// Text-only part lists flattened for text models; image-only messages get a text part.
    ContentShape,
    /// At most [`FixConfig::max_messages`] messages.
    Length,
    /// Response side: a trailing stop string the upstream kept is cut (OpenAI semantics).
    StopTrim,
    /// Response side: streamed tool calls re-emitted in OpenAI's delta shape.
    ToolCallDeltas,
}

impl Rule {
    /// Every rule, in the order the request-side rules run.
    pub const ALL: [Rule; 10] = [
        Rule::Fields,
        Rule::ToolNames,
        Rule::System,
        Rule::Alternation,
        Rule::Ending,
        Rule::EmptyContent,
        Rule::Length,
        Rule::ContentShape,
        Rule::StopTrim,
        Rule::ToolCallDeltas,
    ];

    /// The rule's name, as recorded in [`FixReport`](super::FixReport) and in config.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::System => "system",
            Rule::Alternation => "alternation",
            Rule::Ending => "ending",
            Rule::EmptyContent => "empty_content",
            Rule::Fields => "fields",
            Rule::ToolNames => "tool_names",
            Rule::ContentShape => "content_shape",
            Rule::Length => "length",
            Rule::StopTrim => "stop_trim",
            Rule::ToolCallDeltas => "tool_call_deltas",
        }
    }

    /// Whether the rule is on under `policy` unless configured otherwise.
    pub const fn default_for(self, policy: FixPolicy) -> bool {
        match policy {
            FixPolicy::Legacy => true,
            // TokenHub documents no role-order rule and no message limit, and already cuts
            // before the stop text.
            FixPolicy::TokenHub => !matches!(
                self,
                Rule::Alternation | Rule::Ending | Rule::Length | Rule::StopTrim
            ),
        }
    }
}

/// Per-rule switches. `None` (the default) means "as the policy says"
/// ([`Rule::default_for`]); `Some(false)` turns a rule off, `Some(true)` on.
///
/// In TOML: `[fix.rules]` with `length = false`, `alternation = true`, ….
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSwitches {
    /// [`Rule::System`].
    pub system: Option<bool>,
    /// [`Rule::Alternation`].
    pub alternation: Option<bool>,
    /// [`Rule::Ending`].
    pub ending: Option<bool>,
    /// [`Rule::EmptyContent`].
    pub empty_content: Option<bool>,
    /// [`Rule::Fields`].
    pub fields: Option<bool>,
    /// [`Rule::ToolNames`].
    pub tool_names: Option<bool>,
    /// [`Rule::ContentShape`].
    pub content_shape: Option<bool>,
    /// [`Rule::Length`].
    pub length: Option<bool>,
    /// [`Rule::StopTrim`].
    pub stop_trim: Option<bool>,
    /// [`Rule::ToolCallDeltas`].
    pub tool_call_deltas: Option<bool>,
}

impl RuleSwitches {
    fn slot(&mut self, rule: Rule) -> &mut Option<bool> {
        match rule {
            Rule::System => &mut self.system,
            Rule::Alternation => &mut self.alternation,
            Rule::Ending => &mut self.ending,
            Rule::EmptyContent => &mut self.empty_content,
            Rule::Fields => &mut self.fields,
            Rule::ToolNames => &mut self.tool_names,
            Rule::ContentShape => &mut self.content_shape,
            Rule::Length => &mut self.length,
            Rule::StopTrim => &mut self.stop_trim,
            Rule::ToolCallDeltas => &mut self.tool_call_deltas,
        }
    }

    fn get(&self, rule: Rule) -> Option<bool> {
        // `slot` on a copy: the switches are ten bytes, and one match stays the only mapping.
        *{ *self }.slot(rule)
    }
}

/// The default text of the user turn appended after a prefill.
pub const DEFAULT_CONTINUE_TEXT: &str = "Please continue.";
/// The default instruction a folded prefill is introduced with.
pub const DEFAULT_FOLD_TEXT: &str =
    "Begin your answer with exactly the following text and continue from it:";
/// The legacy endpoint's message limit (R7).
pub const DEFAULT_MAX_MESSAGES: usize = 40;

/// Configuration of the [`FixLayer`](super::FixLayer).
///
/// ```
/// use hunyuan_proxy::fix::{FixConfig, FixPolicy, PrefillMode, Rule};
/// let config = FixConfig::tokenhub()
///     .with_rule(Rule::Alternation, true)
///     .with_prefill(PrefillMode::FoldIntoUser)
///     .with_max_messages(60);
/// assert!(config.enabled(Rule::Alternation));
/// assert!(!config.enabled(Rule::Length));
/// assert_eq!(config.policy(), FixPolicy::TokenHub);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixConfig {
    /// The upstream's rule set; sets each rule's default. `None`: the proxy's upstream preset
    /// decides (in the ready-made stack), else [`FixPolicy::Legacy`].
    pub policy: Option<FixPolicy>,
    /// Per-rule overrides of the policy.
    pub rules: RuleSwitches,
    /// The user turn appended after a trailing assistant message.
    pub continue_text: String,
    /// What to do with a trailing assistant message.
    pub prefill: PrefillMode,
    /// The instruction a folded prefill is introduced with ([`PrefillMode::FoldIntoUser`]).
    pub fold_text: String,
    /// The most messages sent upstream ([`Rule::Length`]), the system message included.
    pub max_messages: usize,
    /// Drop Hunyuan's non-standard top-level `note` field from answers.
    pub drop_note: bool,
    /// When a streaming client asked for `stream_options.include_usage` and the upstream sent
    /// no usage, send a final usage chunk with *estimated* token counts (characters / 4).
    pub synthesize_usage: bool,
    /// Which models see images, for [`Rule::ContentShape`] (not in TOML): the cascade's
    /// answer ([`CascadeConfig::vision_models`](crate::cascade::CascadeConfig::vision_models)),
    /// which the server's config passes on. Default: the legacy naming (a name containing
    /// `vision`).
    #[serde(skip)]
    pub vision: VisionModels,
}

impl Default for FixConfig {
    fn default() -> Self {
        FixConfig {
            policy: None,
            rules: RuleSwitches::default(),
            continue_text: DEFAULT_CONTINUE_TEXT.to_owned(),
            prefill: PrefillMode::ContinueTurn,
            fold_text: DEFAULT_FOLD_TEXT.to_owned(),
            max_messages: DEFAULT_MAX_MESSAGES,
            drop_note: true,
            synthesize_usage: true,
            vision: VisionModels::default(),
        }
    }
}

impl FixConfig {
    /// The legacy endpoint's rules (the default).
    pub fn legacy() -> Self {
        Self::default()
    }

    /// TokenHub's rules.
    pub fn tokenhub() -> Self {
        FixConfig {
            policy: Some(FixPolicy::TokenHub),
            ..Self::default()
        }
    }

    /// The policy in force ([`FixPolicy::Legacy`] when unset).
    pub fn policy(&self) -> FixPolicy {
        self.policy.unwrap_or_default()
    }

    /// Whether `rule` runs: the switch when set, else the policy's default.
    pub fn enabled(&self, rule: Rule) -> bool {
        self.rules
            .get(rule)
            .unwrap_or_else(|| rule.default_for(self.policy()))
    }

    /// Sets the policy (rules not switched explicitly follow it).
    pub fn with_policy(mut self, policy: FixPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Turns one rule on or off, whatever the policy says.
    pub fn with_rule(mut self, rule: Rule, on: bool) -> Self {
        *self.rules.slot(rule) = Some(on);
        self
    }

    /// Sets the user turn appended after a prefill.
    pub fn with_continue_text(mut self, text: impl Into<String>) -> Self {
        self.continue_text = text.into();
        self
    }

    /// Sets what happens to a trailing assistant message.
    pub fn with_prefill(mut self, mode: PrefillMode) -> Self {
        self.prefill = mode;
        self
    }

    /// Sets the instruction a folded prefill is introduced with.
    pub fn with_fold_text(mut self, text: impl Into<String>) -> Self {
        self.fold_text = text.into();
        self
    }

    /// Sets the message limit.
    pub fn with_max_messages(mut self, max: usize) -> Self {
        self.max_messages = max;
        self
    }

    /// Whether Hunyuan's `note` field is dropped from answers.
    pub fn with_drop_note(mut self, on: bool) -> Self {
        self.drop_note = on;
        self
    }

    /// Decides by `vision` which models see images ([`Rule::ContentShape`]).
    pub fn with_vision_models(mut self, vision: VisionModels) -> Self {
        self.vision = vision;
        self
    }

    /// Whether a missing usage chunk is synthesized (with estimated counts).
    pub fn with_synthesize_usage(mut self, on: bool) -> Self {
        self.synthesize_usage = on;
        self
    }

    /// Checks the configuration; the layer calls this once when it is built.
    /// The error names the field (`max_messages`); the server puts it in its table
    /// (`fix.max_messages`).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.max_messages < 2 {
            return Err(InvalidConfig::new(
                "max_messages",
                format!(
                    "must be at least 2 (a system message and a question), got {}",
                    self.max_messages
                ),
            ));
        }
        if self.continue_text.trim().is_empty() {
            return Err(InvalidConfig::new("continue_text", "must not be empty"));
        }
        if self.fold_text.trim().is_empty() {
            return Err(InvalidConfig::new("fold_text", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_set_rule_defaults() {
        let legacy = FixConfig::legacy();
        assert!(Rule::ALL.iter().all(|r| legacy.enabled(*r)));
        let hub = FixConfig::tokenhub();
        for rule in [
            Rule::Alternation,
            Rule::Ending,
            Rule::Length,
            Rule::StopTrim,
        ] {
            assert!(!hub.enabled(rule), "{}", rule.name());
        }
        for rule in [
            Rule::System,
            Rule::Fields,
            Rule::EmptyContent,
            Rule::ToolNames,
        ] {
            assert!(hub.enabled(rule), "{}", rule.name());
        }
        assert!(!legacy.with_rule(Rule::Length, false).enabled(Rule::Length));
    }

    #[test]
    fn toml_round_trip_and_validation() {
        let config: FixConfig = toml::from_str(
            r#"
            policy = "tokenhub"
            prefill = "fold_into_user"
            max_messages = 30
            [rules]
            alternation = true
            "#,
        )
        .unwrap();
        assert_eq!(config.policy(), FixPolicy::TokenHub);
        assert!(config.enabled(Rule::Alternation));
        assert_eq!(config.max_messages, 30);
        assert!(config.drop_note);
        assert!(toml::from_str::<FixConfig>("nonsense = 1").is_err());
        assert!(FixConfig::default()
            .with_max_messages(1)
            .validate()
            .is_err());
        assert_eq!(
            FixConfig::default()
                .with_continue_text("  ")
                .validate()
                .unwrap_err()
                .field,
            "continue_text"
        );
        assert!(FixConfig::default().validate().is_ok());
    }
}
