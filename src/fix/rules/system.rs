//! [`Rule::System`](crate::fix::Rule::System): Hunyuan takes at most one system message, at
//! index 0 (R2), and no `developer` role (R10).
//!
//! Every system or developer text, wherever it stands, is merged in order into one system
//! message at index 0; blank ones are dropped.

use super::{is_blank, is_system};
use crate::chat::{Content, Message, Role};

/// Applies the rule; returns whether anything changed.
pub(super) fn apply(messages: &mut Vec<Message>) -> bool {
    if already_fixed(messages) {
        return false;
    }
    let mut text = String::new();
    let mut first: Option<Message> = None;
    messages.retain_mut(|m| {
        if !is_system(m) {
            return true;
        }
        if !is_blank(m.content.as_ref()) {
            let piece = m
                .content
                .as_ref()
                .map(Content::joined_text)
                .unwrap_or_default();
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&piece);
            if first.is_none() {
                // Keep the first system message's other fields (`name`, unknown fields).
                first = Some(Message {
                    role: Role::System,
                    content: None,
                    name: m.name.take(),
                    tool_calls: None,
                    tool_call_id: None,
                    extra: std::mem::take(&mut m.extra),
                });
            }
        }
        false
    });
    if let Some(mut system) = first {
        system.content = Some(Content::Text(text));
        messages.insert(0, system);
    }
    true
}

/// One non-blank `system` text message at index 0 and no other system or developer message.
fn already_fixed(messages: &[Message]) -> bool {
    let rest = match messages.first() {
        Some(m) if is_system(m) => {
            let ok = m.role == Role::System
                && matches!(&m.content, Some(Content::Text(t)) if !t.trim().is_empty());
            if !ok {
                return false;
            }
            &messages[1..]
        }
        _ => messages,
    };
    !rest.iter().any(is_system)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn table() {
        // (input, expected roles, expected system text, changed)
        let cases: Vec<(Vec<Message>, &str, Option<&str>, bool)> = vec![
            (vec![sys("a"), user("q")], "su", Some("a"), false),
            (vec![user("q")], "u", None, false),
            (vec![dev("a"), user("q")], "su", Some("a"), true),
            (vec![user("q"), sys("late")], "su", Some("late"), true),
            (
                vec![sys("a"), user("q"), dev("b"), asst("x"), sys("c")],
                "sua",
                Some("a\n\nb\n\nc"),
                true,
            ),
            (vec![sys(""), user("q")], "u", None, true),
            (vec![sys(" "), dev("b"), user("q")], "su", Some("b"), true),
        ];
        for (i, (mut input, roles_want, sys_want, changed_want)) in cases.into_iter().enumerate() {
            let changed = apply(&mut input);
            assert_eq!(changed, changed_want, "case {i}");
            assert_eq!(roles(&input), roles_want, "case {i}");
            if let Some(want) = sys_want {
                assert_eq!(text(&input[0]), want, "case {i}");
            }
            assert!(!apply(&mut input), "case {i} not idempotent");
        }
    }

    #[test]
    fn parts_system_becomes_text() {
        let mut m = vec![
            parts(Role::System, vec![crate::chat::ContentPart::text_part("x")]),
            user("q"),
        ];
        assert!(apply(&mut m));
        assert_eq!(m[0].content, Some(Content::Text("x".into())));
    }
}
