//! [`Rule::Ending`](crate::fix::Rule::Ending): the conversation must end with a user or tool
//! message (R1: no assistant prefill).
//!
//! A blank trailing assistant message without tool calls carries nothing and is dropped. A
//! prefill with content is kept: a short user turn asking to continue is appended
//! ([`FixConfig::continue_text`]), or, with [`PrefillMode::FoldIntoUser`], the prefill is
//! moved into the last user turn as an instruction to continue from it. A conversation with
//! no turn at all (only a system message) gets a user turn.

use super::{is_blank, is_system};
use crate::chat::{Content, ContentPart, Message, Role};
use crate::fix::config::{FixConfig, PrefillMode};

/// Applies the rule; returns whether anything changed.
pub(super) fn apply(messages: &mut Vec<Message>, config: &FixConfig) -> bool {
    let mut changed = false;
    while messages.last().is_some_and(|m| {
        m.role == Role::Assistant && !m.has_tool_calls() && is_blank(m.content.as_ref())
    }) {
        messages.pop();
        changed = true;
    }
    let Some(last) = messages.iter().rposition(|m| !is_system(m)) else {
        messages.push(Message::text(Role::User, config.continue_text.as_str()));
        return true;
    };
    if messages[last].role != Role::Assistant {
        return changed;
    }
    let before = last
        .checked_sub(1)
        .filter(|&i| messages[i].role == Role::User);
    match (config.prefill, before) {
        (PrefillMode::FoldIntoUser, Some(user)) if !messages[last].has_tool_calls() => {
            let prefill = messages.remove(last);
            let prefill = prefill.content.as_ref().map(Content::joined_text);
            let instruction = format!("{}\n{}", config.fold_text, prefill.unwrap_or_default());
            append_text(&mut messages[user], instruction);
        }
        _ => messages.push(Message::text(Role::User, config.continue_text.as_str())),
    }
    true
}

/// Appends a paragraph to a user message's text (as a new text part when it has parts).
fn append_text(m: &mut Message, paragraph: String) {
    match &mut m.content {
        Some(Content::Text(text)) if !text.trim().is_empty() => {
            text.push_str("\n\n");
            text.push_str(&paragraph);
        }
        Some(Content::Parts(parts)) if !parts.is_empty() => {
            parts.push(ContentPart::Text { text: paragraph })
        }
        _ => m.content = Some(Content::Text(paragraph)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn table() {
        let cont = FixConfig::default();
        let fold = FixConfig::default().with_prefill(PrefillMode::FoldIntoUser);
        // (config, input, expected roles, expected last text)
        let cases: Vec<(&FixConfig, Vec<Message>, &str, &str)> = vec![
            (&cont, vec![user("q")], "u", "q"),
            (&cont, vec![user("q"), asst("Once upon")], "uau", "Please continue."),
            (&cont, vec![user("q"), asst(" ")], "u", "q"),
            (&cont, vec![sys("s")], "su", "Please continue."),
            (
                &cont,
                vec![user("q"), asst_calls(None, &[("c", "f")])],
                "uau",
                "Please continue.",
            ),
            (
                &fold,
                vec![user("q"), asst("Once upon")],
                "u",
                "q\n\nBegin your answer with exactly the following text and continue from it:\nOnce upon",
            ),
            (
                &fold,
                vec![user("q"), asst_calls(Some("x"), &[("c", "f")])],
                "uau",
                "Please continue.",
            ),
            (
                &fold,
                vec![user("q"), asst_calls(None, &[("c", "f")]), tool("c", "r"), asst("so")],
                "uatau",
                "Please continue.",
            ),
        ];
        for (i, (config, mut input, want_roles, want_last)) in cases.into_iter().enumerate() {
            apply(&mut input, config);
            assert_eq!(roles(&input), want_roles, "case {i}");
            assert_eq!(text(input.last().unwrap()), want_last, "case {i}");
            assert!(!apply(&mut input, config), "case {i} not idempotent");
        }
    }

    #[test]
    fn continue_text_is_configurable() {
        let config = FixConfig::default().with_continue_text("Go on.");
        let mut m = vec![user("q"), asst("a")];
        assert!(apply(&mut m, &config));
        assert_eq!(text(&m[2]), "Go on.");
    }
}
