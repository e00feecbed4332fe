//! [`Rule::EmptyContent`](crate::fix::Rule::EmptyContent): Hunyuan refuses empty content
//! (`""`, `null`, missing, `[]`; R3).
//!
//! An assistant with tool calls gets a short sentence naming the tools; an empty tool result,
//! user turn or assistant answer gets a placeholder. Nothing is deleted, so alternation holds.
//! A conversation left with no message at all (only blank system messages, which the system
//! rule drops) gets a placeholder user turn.

use super::{is_blank, EMPTY_ASSISTANT_TEXT, EMPTY_TOOL_TEXT, EMPTY_USER_TEXT};
use crate::chat::{Content, Message, Role};

/// Applies the rule; returns whether anything changed.
pub(super) fn apply(messages: &mut Vec<Message>) -> bool {
    if messages.is_empty() {
        messages.push(Message::text(Role::User, EMPTY_USER_TEXT));
        return true;
    }
    let mut changed = false;
    for m in messages.iter_mut() {
        if !is_blank(m.content.as_ref()) {
            continue;
        }
        let text = match m.role {
            Role::Assistant if m.has_tool_calls() => calling_sentence(m),
            Role::Assistant => EMPTY_ASSISTANT_TEXT.to_owned(),
            Role::Tool => EMPTY_TOOL_TEXT.to_owned(),
            Role::User => EMPTY_USER_TEXT.to_owned(),
            // The system rule drops blank system messages; with it off they are left alone.
            Role::System | Role::Developer => continue,
        };
        m.content = Some(Content::Text(text));
        changed = true;
    }
    changed
}

/// `Calling get_weather.` / `Calling get_weather, search.`
fn calling_sentence(m: &Message) -> String {
    let mut out = String::from("Calling ");
    for (i, call) in m.tool_calls.iter().flatten().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&call.function.name);
    }
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn table() {
        let mut null_user = user("");
        null_user.content = None;
        // (input, expected text, changed)
        let cases: Vec<(Message, &str, bool)> = vec![
            (user("q"), "q", false),
            (user(""), EMPTY_USER_TEXT, true),
            (null_user, EMPTY_USER_TEXT, true),
            (parts(Role::User, vec![]), EMPTY_USER_TEXT, true),
            (parts(Role::User, vec![image("https://x")]), "", false),
            (tool("c", " "), EMPTY_TOOL_TEXT, true),
            (asst(""), EMPTY_ASSISTANT_TEXT, true),
            (
                asst_calls(None, &[("c1", "get_weather")]),
                "Calling get_weather.",
                true,
            ),
            (
                asst_calls(Some(" "), &[("c1", "a"), ("c2", "b")]),
                "Calling a, b.",
                true,
            ),
            (
                asst_calls(Some("Let me check."), &[("c1", "a")]),
                "Let me check.",
                false,
            ),
            (sys(""), "", false),
        ];
        for (i, (m, want, changed_want)) in cases.into_iter().enumerate() {
            let mut list = vec![m];
            assert_eq!(apply(&mut list), changed_want, "case {i}");
            assert_eq!(text(&list[0]), want, "case {i}");
            assert!(!apply(&mut list), "case {i} not idempotent");
        }
        let mut none = vec![];
        assert!(apply(&mut none));
        assert_eq!(text(&none[0]), EMPTY_USER_TEXT);
    }
}
