//! [`Rule::Fields`](crate::fix::Rule::Fields): request fields Hunyuan refuses or ignores.
//!
//! - dropped: `frequency_penalty`, `presence_penalty` (R5, refused even when 0),
//!   `parallel_tool_calls`, `tools[].function.strict` (R6), `logit_bias`, `logprobs`,
//!   `top_logprobs`, and `n` when it is 1; under the legacy policy also `reasoning_effort`
//!   and `reasoning_content`/`reasoning`/`thinking` in history messages (R4);
//! - refused with a 400 naming the field, never clamped: `n` other than 1, `temperature`
//!   outside [0, 2], `top_p` outside [0, 1], `seed` outside 1..=10000 (R12);
//! - TokenHub, `hy3*`/`hy4*` models: an assistant tool-call message without
//!   `reasoning_content` gets `""` (interleaved thinking expects it back); for `hy3*`,
//!   `tool_choice` `required` or a named function becomes `auto`;
//! - TokenHub, streams: `stream_options.include_usage` is set (TokenHub sends no usage
//!   otherwise; the answer side drops it when the client did not ask).

use crate::chat::{ChatRequest, Role};
use crate::error::ProxyError;
use crate::fix::config::FixPolicy;
use serde_json::{Map, Value};

/// Top-level fields dropped under every policy.
const UNSUPPORTED: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "parallel_tool_calls",
    "logit_bias",
    "logprobs",
    "top_logprobs",
];
/// History fields the legacy endpoint refuses.
const HISTORY_REASONING: &[&str] = &["reasoning_content", "reasoning", "thinking"];

/// Applies the rule; returns whether anything changed, or a 400.
pub(super) fn apply(chat: &mut ChatRequest, policy: FixPolicy) -> Result<bool, ProxyError> {
    check_ranges(&chat.extra)?;
    let mut changed = remove_all(&mut chat.extra, UNSUPPORTED);
    if chat
        .extra
        .get("n")
        .is_some_and(|n| n.is_null() || n.as_u64() == Some(1))
    {
        chat.extra.remove("n");
        changed = true;
    }
    for tool in chat.tools.iter_mut().flatten() {
        changed |= tool.function.extra.remove("strict").is_some();
    }
    match policy {
        FixPolicy::Legacy => {
            changed |= chat.extra.remove("reasoning_effort").is_some();
            for m in &mut chat.messages {
                changed |= remove_all(&mut m.extra, HISTORY_REASONING);
            }
        }
        FixPolicy::TokenHub => {
            let model = chat.model.as_str();
            if model.starts_with("hy3") || model.starts_with("hy4") {
                for m in &mut chat.messages {
                    if m.role == Role::Assistant
                        && m.has_tool_calls()
                        && !m.extra.contains_key("reasoning_content")
                    {
                        m.extra
                            .insert("reasoning_content".into(), Value::String(String::new()));
                        changed = true;
                    }
                }
            }
            if model.starts_with("hy3") {
                changed |= relax_tool_choice(&mut chat.extra);
            }
            // TokenHub streams carry usage only when asked; the answer side drops it again
            // when the client did not ask.
            if chat.is_stream() {
                let options = chat.stream_options.get_or_insert_with(Default::default);
                if options.include_usage != Some(true) {
                    options.include_usage = Some(true);
                    changed = true;
                }
            }
        }
    }
    Ok(changed)
}

fn remove_all(map: &mut Map<String, Value>, keys: &[&str]) -> bool {
    if map.is_empty() {
        return false;
    }
    let before = map.len();
    for key in keys {
        map.remove(*key);
    }
    map.len() != before
}

/// `hy3*` takes only `auto`/`none` for `tool_choice`.
fn relax_tool_choice(extra: &mut Map<String, Value>) -> bool {
    match extra.get_mut("tool_choice") {
        Some(choice) if choice.is_object() || choice == "required" => {
            *choice = Value::String("auto".into());
            true
        }
        _ => false,
    }
}

fn check_ranges(extra: &Map<String, Value>) -> Result<(), ProxyError> {
    if let Some(n) = extra.get("n").filter(|n| !n.is_null()) {
        if n.as_u64() != Some(1) {
            return Err(ProxyError::invalid(
                "`n` must be 1: Hunyuan returns a single choice",
                "n",
            ));
        }
    }
    check_range(extra, "temperature", 0.0, 2.0)?;
    check_range(extra, "top_p", 0.0, 1.0)?;
    if let Some(seed) = extra.get("seed").filter(|s| !s.is_null()) {
        if !seed.as_u64().is_some_and(|s| (1..=10_000).contains(&s)) {
            return Err(ProxyError::invalid(
                "`seed` must be an integer between 1 and 10000 for Hunyuan",
                "seed",
            ));
        }
    }
    Ok(())
}

fn check_range(
    extra: &Map<String, Value>,
    field: &'static str,
    lo: f64,
    hi: f64,
) -> Result<(), ProxyError> {
    let Some(value) = extra.get(field).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match value.as_f64() {
        Some(x) if (lo..=hi).contains(&x) => Ok(()),
        _ => Err(ProxyError::invalid(
            format!("`{field}` must be a number between {lo} and {hi}"),
            field,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn base(extra: Value) -> Value {
        let mut body = json!({"model": "hunyuan-turbos-latest", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "reasoning_content": "hmm"},
            {"role": "user", "content": "q2"}
        ]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    #[test]
    fn drops_unsupported_fields() {
        let mut c = chat(base(json!({
            "frequency_penalty": 0, "presence_penalty": 0.5, "parallel_tool_calls": false,
            "reasoning_effort": "low", "logit_bias": {}, "logprobs": false, "n": 1,
            "temperature": 0.7, "max_tokens": 10,
            "tools": [{"type": "function", "function": {"name": "f", "strict": true}}]
        })));
        assert!(apply(&mut c, FixPolicy::Legacy).unwrap());
        let v = serde_json::to_value(&c).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["max_tokens", "messages", "model", "temperature", "tools"]
        );
        assert_eq!(v["tools"][0]["function"], json!({"name": "f"}));
        assert!(v["messages"][1].get("reasoning_content").is_none());
        assert!(!apply(&mut c, FixPolicy::Legacy).unwrap());
    }

    #[test]
    fn tokenhub_keeps_reasoning() {
        let mut c = chat(base(
            json!({"reasoning_effort": "high", "presence_penalty": 0}),
        ));
        assert!(apply(&mut c, FixPolicy::TokenHub).unwrap());
        assert_eq!(c.extra["reasoning_effort"], "high");
        assert_eq!(c.messages[1].extra["reasoning_content"], "hmm");
        assert!(!c.extra.contains_key("presence_penalty"));
    }

    #[test]
    fn tokenhub_hy3_tool_choice_and_empty_reasoning() {
        let mut c = chat(
            json!({"model": "hy3", "tool_choice": "required", "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"}
            ]}),
        );
        assert!(apply(&mut c, FixPolicy::TokenHub).unwrap());
        assert_eq!(c.extra["tool_choice"], "auto");
        assert_eq!(c.messages[1].extra["reasoning_content"], "");
        assert!(!apply(&mut c, FixPolicy::TokenHub).unwrap());
    }

    #[test]
    fn refuses_out_of_range_values_naming_the_field() {
        for (field, value) in [
            ("n", json!(2)),
            ("n", json!(0)),
            ("temperature", json!(2.5)),
            ("temperature", json!(-0.1)),
            ("temperature", json!("hot")),
            ("top_p", json!(1.01)),
            ("seed", json!(0)),
            ("seed", json!(10_001)),
        ] {
            let mut c = chat(base(json!({ field: value })));
            let err = apply(&mut c, FixPolicy::Legacy).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
            assert_eq!(err.param(), Some(field), "{field}={value}");
        }
        let mut c = chat(base(json!({"temperature": 2, "top_p": 0, "seed": 10_000})));
        assert!(apply(&mut c, FixPolicy::Legacy).is_ok());
    }
}
