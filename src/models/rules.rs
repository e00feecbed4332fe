//! The per-profile request rules: the chat request made into one the target model accepts.
//!
//! Each change is named (the names go into `x-hunyuan-proxy-dropped` and a metric): what was
//! removed, and what was changed to another value because the model takes no other.

use super::memory::ReasoningMemory;
use super::profile::{ModelProfile, ThinkingSwitch, ToolChoiceSupport};
use super::table::EFFORT_SCALE;
use crate::chat::{ChatRequest, Role, Stop};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// The text replayed as `reasoning_content` for an assistant tool-call turn whose reasoning
/// neither the client nor the proxy's memory has (the models that need it refuse an empty one).
pub const DEFAULT_REASONING_PLACEHOLDER: &str =
    "(Earlier reasoning for this step is not available.)";

/// What to do with a forced `tool_choice` (`required` or a named function) on a model that
/// refuses it while thinking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForcedToolChoice {
    /// `tool_choice` becomes `auto`; the model thinks and may still answer without a call.
    #[default]
    Auto,
    /// Thinking is turned off for the request, and the forced choice is kept.
    DisableThinking,
}

/// Where the replayed reasoning of assistant tool-call turns came from, in one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Turns whose reasoning came from the proxy's memory of the answer.
    pub memory: usize,
    /// Turns given the placeholder.
    pub placeholder: usize,
}

/// What applying a profile did to a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleOutcome {
    /// Whether the request changed at all.
    pub changed: bool,
    /// Names of what was removed or changed against the client's wish, in order, each once.
    pub dropped: Vec<Cow<'static, str>>,
    /// Reasoning put back into tool-call turns.
    pub replayed: Replayed,
    /// Whether the model will think for this request (as far as the proxy can tell).
    pub thinking: bool,
}

impl RuleOutcome {
    fn drop(&mut self, item: impl Into<Cow<'static, str>>) {
        let item = item.into();
        self.changed = true;
        if !self.dropped.contains(&item) {
            self.dropped.push(item);
        }
    }
}

/// Field names the proxy may report, as `'static` metric labels.
const KNOWN_FIELDS: &[&str] = &[
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "max_tokens",
    "seed",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "n",
    "parallel_tool_calls",
    "response_format",
];

fn field_name(name: &str) -> Cow<'static, str> {
    match KNOWN_FIELDS.iter().find(|k| **k == name) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_owned()),
    }
}

/// The accepted effort nearest `wanted`: the highest accepted one not above it, else the
/// lowest accepted one.
fn nearest_effort<'a>(efforts: &'a [String], wanted: &str) -> Option<&'a str> {
    let rank = |e: &str| EFFORT_SCALE.iter().position(|s| *s == e);
    let wanted_rank = rank(wanted).unwrap_or(EFFORT_SCALE.len() / 2);
    efforts
        .iter()
        .filter(|e| rank(e).is_some_and(|r| r <= wanted_rank))
        .max_by_key(|e| rank(e))
        .or_else(|| efforts.iter().min_by_key(|e| rank(e)))
        .map(String::as_str)
}

fn is_forced(choice: &Value) -> bool {
    choice.is_object() || choice == "required"
}

/// Applies `profile` to `chat`: effort, thinking, `tool_choice`, refused and renamed fields,
/// the `developer` role, `stop`, tools on a model without them, and reasoning replay (from
/// `memory` when given, else `placeholder`).
pub fn apply_profile(
    chat: &mut ChatRequest,
    profile: &ModelProfile,
    forced: ForcedToolChoice,
    memory: Option<&ReasoningMemory>,
    placeholder: &str,
) -> RuleOutcome {
    let mut out = RuleOutcome::default();
    let extra = &mut chat.extra;

    // Effort first: `none` on a model without an effort field is its thinking switch.
    let mut effort_off = false;
    if let Some(effort) = extra.get("reasoning_effort").cloned() {
        match effort.as_str() {
            Some(wanted) if profile.efforts.is_empty() => {
                extra.remove("reasoning_effort");
                let can_switch = matches!(
                    profile.thinking,
                    ThinkingSwitch::Toggle | ThinkingSwitch::AdaptiveOrDisabled
                );
                if wanted == "none" && can_switch && !extra.contains_key("thinking") {
                    extra.insert("thinking".into(), json!({"type": "disabled"}));
                    out.changed = true;
                } else {
                    out.drop("reasoning_effort");
                }
            }
            Some(wanted) if !profile.efforts.iter().any(|e| e == wanted) => {
                match nearest_effort(&profile.efforts, wanted) {
                    Some(near) => {
                        effort_off = near == "none";
                        extra.insert("reasoning_effort".into(), Value::String(near.to_owned()));
                    }
                    None => {
                        extra.remove("reasoning_effort");
                    }
                }
                out.drop("reasoning_effort");
            }
            Some(wanted) => effort_off = wanted == "none",
            None => {
                extra.remove("reasoning_effort");
                out.drop("reasoning_effort");
            }
        }
    }

    // The thinking switch, in the model's vocabulary.
    if let Some(thinking) = extra.remove("thinking") {
        let kind = thinking
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let others = thinking
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != "type"));
        let wants_off = kind.as_deref() == Some("disabled");
        let put = |extra: &mut Map<String, Value>, kind: &str| {
            extra.insert("thinking".into(), json!({ "type": kind }));
        };
        match (profile.thinking, kind.as_deref()) {
            (ThinkingSwitch::Toggle, Some("enabled" | "adaptive")) => put(extra, "enabled"),
            (ThinkingSwitch::AdaptiveOrDisabled, Some("enabled" | "adaptive")) => {
                put(extra, "adaptive")
            }
            (ThinkingSwitch::Toggle | ThinkingSwitch::AdaptiveOrDisabled, Some("disabled")) => {
                put(extra, "disabled")
            }
            (ThinkingSwitch::AlwaysOn, _) if !wants_off && kind.is_some() => {}
            (ThinkingSwitch::Unsupported, _)
                if kind.is_some() && wants_off != profile.thinking_default => {}
            _ => out.drop("thinking"),
        }
        if others {
            out.drop("thinking.budget_tokens");
        }
        if extra.get("thinking") != Some(&thinking) {
            out.changed = true;
        }
    }
    let thinking_kind = extra
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str);
    out.thinking = match thinking_kind {
        Some("disabled") => false,
        Some(_) => true,
        None => profile.thinking_default && !effort_off,
    };

    // Tools on a model without them, then `tool_choice`.
    if !profile.tools && chat.tools.is_some() {
        chat.tools = None;
        extra.remove("tool_choice");
        out.drop("tools");
    }
    if extra.get("tool_choice").is_some_and(is_forced) {
        match profile.tool_choice {
            ToolChoiceSupport::Any => {}
            ToolChoiceSupport::AutoOnly => {
                extra.insert("tool_choice".into(), Value::String("auto".into()));
                out.drop("tool_choice");
            }
            ToolChoiceSupport::NotForcedWhileThinking if out.thinking => {
                let can_switch_off = matches!(
                    profile.thinking,
                    ThinkingSwitch::Toggle | ThinkingSwitch::AdaptiveOrDisabled
                );
                if forced == ForcedToolChoice::DisableThinking && can_switch_off {
                    extra.insert("thinking".into(), json!({"type": "disabled"}));
                    out.thinking = false;
                    out.drop("thinking");
                } else {
                    extra.insert("tool_choice".into(), Value::String("auto".into()));
                    out.drop("tool_choice");
                }
            }
            ToolChoiceSupport::NotForcedWhileThinking => {}
        }
    }

    // Fields refused or renamed.
    for name in &profile.strip_params {
        if extra.remove(name).is_some() {
            out.drop(field_name(name));
        }
    }
    for (from, to) in &profile.rename_params {
        if let Some(value) = extra.remove(from) {
            out.changed = true;
            extra.entry(to.clone()).or_insert(value);
        }
    }

    // The `developer` role and `stop`.
    if !profile.developer_role {
        for message in &mut chat.messages {
            if message.role == Role::Developer {
                message.role = Role::System;
                out.changed = true;
            }
        }
    }
    if let (Some(max), Some(Stop::Many(stops))) = (profile.max_stop, chat.stop.as_mut()) {
        if stops.len() > max {
            stops.truncate(max);
            out.drop("stop");
        }
    }

    // Reasoning replay for assistant tool-call turns.
    if profile.replay_reasoning && out.thinking {
        for message in &mut chat.messages {
            if message.role != Role::Assistant || !message.has_tool_calls() {
                continue;
            }
            let present = message
                .extra
                .get("reasoning_content")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.trim().is_empty());
            if present {
                continue;
            }
            let remembered = memory.and_then(|m| {
                message
                    .tool_calls
                    .iter()
                    .flatten()
                    .find_map(|call| m.get(&call.id))
            });
            let text = match remembered {
                Some(text) => {
                    out.replayed.memory += 1;
                    text.to_string()
                }
                None => {
                    out.replayed.placeholder += 1;
                    placeholder.to_owned()
                }
            };
            message
                .extra
                .insert("reasoning_content".into(), Value::String(text));
            out.changed = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelTable;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn run(model: &str, body: Value) -> (ChatRequest, RuleOutcome) {
        let table = ModelTable::builtin();
        let mut c = chat(body);
        let profile = table.get(model).unwrap().clone();
        let out = apply_profile(
            &mut c,
            &profile,
            ForcedToolChoice::Auto,
            None,
            DEFAULT_REASONING_PLACEHOLDER,
        );
        (c, out)
    }

    fn tool_turns() -> Value {
        json!([
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "list files"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}
        ])
    }

    #[test]
    fn hy_efforts_are_mapped_onto_none_to_high() {
        for (asked, sent) in [("xhigh", "high"), ("max", "high"), ("medium", "medium")] {
            let (c, out) = run(
                "hy4",
                json!({"model": "hy4", "messages": [], "reasoning_effort": asked}),
            );
            assert_eq!(c.extra["reasoning_effort"], sent);
            assert_eq!(out.dropped.is_empty(), asked == sent, "{asked}");
        }
        let (_, out) = run(
            "hy4",
            json!({"model": "hy4", "messages": [], "reasoning_effort": "none"}),
        );
        assert!(!out.thinking, "none turns hy thinking off");
    }

    #[test]
    fn kimi_k3_takes_effort_max_and_no_sampling_parameters() {
        let (c, out) = run(
            "kimi-k3",
            json!({"model": "kimi-k3", "messages": [], "reasoning_effort": "low",
                   "temperature": 0.3, "top_p": 0.9, "presence_penalty": 0.1, "max_tokens": 100,
                   "thinking": {"type": "enabled"}}),
        );
        assert_eq!(c.extra["reasoning_effort"], "max");
        for gone in [
            "temperature",
            "top_p",
            "presence_penalty",
            "max_tokens",
            "thinking",
        ] {
            assert!(!c.extra.contains_key(gone), "{gone}");
        }
        assert_eq!(c.extra["max_completion_tokens"], 100);
        assert_eq!(
            out.dropped,
            [
                "reasoning_effort",
                "temperature",
                "top_p",
                "presence_penalty"
            ]
        );
    }

    #[test]
    fn minimax_gets_adaptive_never_enabled() {
        let (c, out) = run(
            "minimax-m3",
            json!({"model": "minimax-m3", "messages": [], "thinking": {"type": "enabled"}}),
        );
        assert_eq!(c.extra["thinking"], json!({"type": "adaptive"}));
        assert!(out.dropped.is_empty() && out.changed);
        let (c, _) = run(
            "minimax-m3",
            json!({"model": "minimax-m3", "messages": [], "thinking": {"type": "disabled"}}),
        );
        assert_eq!(c.extra["thinking"], json!({"type": "disabled"}));
    }

    #[test]
    fn deepseek_replays_reasoning_maps_developer_and_downgrades_forced_tools() {
        let memory = ReasoningMemory::new(4096);
        memory.remember(&["call_1".to_owned()], "I should list the files.");
        let table = ModelTable::builtin();
        let profile = table.get("deepseek-v4-flash").unwrap();
        let mut c = chat(
            json!({"model": "deepseek-v4-flash", "messages": tool_turns(),
            "tool_choice": "required", "reasoning_effort": "high",
            "tools": [{"type": "function", "function": {"name": "ls"}}]}),
        );
        let out = apply_profile(&mut c, profile, ForcedToolChoice::Auto, Some(&memory), "x");
        assert_eq!(c.messages[0].role, Role::System);
        assert_eq!(
            c.messages[2].extra["reasoning_content"],
            "I should list the files."
        );
        assert_eq!(c.extra["tool_choice"], "auto");
        assert_eq!(out.dropped, ["reasoning_effort", "tool_choice"]);
        assert_eq!(out.replayed.memory, 1);
        // Unknown ids get the placeholder; turning thinking off keeps the forced choice.
        let mut c = chat(
            json!({"model": "deepseek-v4-flash", "messages": tool_turns(),
            "tool_choice": {"type": "function", "function": {"name": "ls"}}}),
        );
        let out = apply_profile(
            &mut c,
            profile,
            ForcedToolChoice::DisableThinking,
            None,
            "gone",
        );
        assert_eq!(c.extra["thinking"], json!({"type": "disabled"}));
        assert!(c.extra["tool_choice"].is_object());
        assert!(!out.thinking);
        assert!(c.messages[2].extra.get("reasoning_content").is_none());
        let (c, out) = run(
            "deepseek-v4-flash",
            json!({"model": "deepseek-v4-flash", "messages": tool_turns()}),
        );
        assert_eq!(
            c.messages[2].extra["reasoning_content"],
            DEFAULT_REASONING_PLACEHOLDER
        );
        assert_eq!(out.replayed.placeholder, 1);
    }

    #[test]
    fn deepseek_effort_none_is_its_thinking_switch() {
        let (c, out) = run(
            "deepseek-v4-pro",
            json!({"model": "deepseek-v4-pro", "messages": tool_turns(),
                   "reasoning_effort": "none", "tool_choice": "required"}),
        );
        assert_eq!(c.extra["thinking"], json!({"type": "disabled"}));
        assert_eq!(
            c.extra["tool_choice"], "required",
            "allowed without thinking"
        );
        assert!(out.dropped.is_empty());
    }

    #[test]
    fn hy3_takes_only_auto_and_stop_is_cut_to_four() {
        let (c, out) = run(
            "hy3",
            json!({"model": "hy3", "messages": [], "tool_choice": "required",
                   "stop": ["a", "b", "c", "d", "e"]}),
        );
        assert_eq!(c.extra["tool_choice"], "auto");
        assert_eq!(
            c.stop,
            Some(Stop::Many(vec![
                "a".into(),
                "b".into(),
                "c".into(),
                "d".into()
            ]))
        );
        assert_eq!(out.dropped, ["tool_choice", "stop"]);
    }

    #[test]
    fn always_on_thinking_reports_a_request_to_turn_it_off() {
        let (c, out) = run(
            "glm-5.3",
            json!({"model": "glm-5.3", "messages": [], "thinking": {"type": "disabled"}}),
        );
        assert!(!c.extra.contains_key("thinking"));
        assert_eq!(out.dropped, ["thinking"]);
        let (_, out) = run(
            "glm-5.3",
            json!({"model": "glm-5.3", "messages": [], "thinking": {"type": "enabled"}}),
        );
        assert!(out.dropped.is_empty());
    }

    #[test]
    fn an_untouched_request_is_reported_unchanged() {
        let (_, out) = run(
            "hy4",
            json!({"model": "hy4", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(
            out,
            RuleOutcome {
                thinking: true,
                ..RuleOutcome::default()
            }
        );
    }
}
