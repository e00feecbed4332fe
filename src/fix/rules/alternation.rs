//! [`Rule::Alternation`](crate::fix::Rule::Alternation): after the system message, roles
//! must follow `user (assistant (user | tool+))*` (R1).
//!
//! - consecutive user messages are merged (texts joined with a blank line; parts concatenated
//!   so images survive);
//! - consecutive assistant messages are merged (texts joined, tool calls concatenated);
//! - a conversation that starts with the assistant gets a short user turn before it;
//! - a user directly after a tool result gets a short bridging assistant turn;
//! - a tool message that answers no tool call (its preceding assistant has none, or it opens
//!   the conversation) becomes user text naming its call id, rather than being dropped.
//!
//! Messages keep their order; nothing but bridging turns is added.

use super::{is_system, join_content, BRIDGE_ASSISTANT_TEXT, OPENING_USER_TEXT};
use crate::chat::{Content, Message, Role};

/// Applies the rule; returns whether anything changed.
pub(super) fn apply(messages: &mut Vec<Message>) -> bool {
    if alternates(messages) {
        return false;
    }
    let old = std::mem::take(messages);
    let mut out = Vec::with_capacity(old.len() + 2);
    for m in old {
        match m.role {
            // The system rule put it first; with that rule off, it stays where it is.
            Role::System | Role::Developer => out.push(m),
            Role::User => push_user(&mut out, m),
            Role::Assistant => push_assistant(&mut out, m),
            Role::Tool => push_tool(&mut out, m),
        }
    }
    *messages = out;
    true
}

/// Whether [`apply`] would leave `messages` unchanged.
fn alternates(messages: &[Message]) -> bool {
    let mut last: Option<&Message> = None;
    for m in messages.iter().filter(|m| !is_system(m)) {
        let ok = match m.role {
            Role::User => last.is_none_or(|l| l.role == Role::Assistant),
            Role::Assistant => last.is_some_and(|l| matches!(l.role, Role::User | Role::Tool)),
            Role::Tool => last.is_some_and(answers_to),
            Role::System | Role::Developer => unreachable!("filtered"),
        };
        if !ok {
            return false;
        }
        last = Some(m);
    }
    true
}

/// Whether a tool message may follow `last`: an assistant with tool calls, or another tool.
fn answers_to(last: &Message) -> bool {
    match last.role {
        Role::Assistant => last.has_tool_calls(),
        Role::Tool => true,
        _ => false,
    }
}

fn last_turn(out: &mut [Message]) -> Option<&mut Message> {
    out.iter_mut().rev().find(|m| !is_system(m))
}

fn push_user(out: &mut Vec<Message>, m: Message) {
    match last_turn(out) {
        Some(last) if last.role == Role::User => {
            last.content = join_content(last.content.take(), m.content);
        }
        Some(last) if last.role == Role::Tool => {
            out.push(Message::text(Role::Assistant, BRIDGE_ASSISTANT_TEXT));
            out.push(m);
        }
        _ => out.push(m),
    }
}

fn push_assistant(out: &mut Vec<Message>, m: Message) {
    match last_turn(out) {
        None => {
            out.push(Message::text(Role::User, OPENING_USER_TEXT));
            out.push(m);
        }
        Some(last) if last.role == Role::Assistant => {
            last.content = join_content(last.content.take(), m.content);
            if let Some(calls) = m.tool_calls {
                last.tool_calls.get_or_insert_with(Vec::new).extend(calls);
            }
            for (key, value) in m.extra {
                last.extra.entry(key).or_insert(value);
            }
        }
        _ => out.push(m),
    }
}

fn push_tool(out: &mut Vec<Message>, m: Message) {
    if last_turn(out).is_some_and(|last| answers_to(last)) {
        out.push(m);
    } else {
        push_user(out, tool_as_user(m));
    }
}

/// A tool result that answers no call, as user text that keeps its call id and output.
fn tool_as_user(m: Message) -> Message {
    let output = m
        .content
        .as_ref()
        .map(Content::joined_text)
        .unwrap_or_default();
    let id = m.tool_call_id.as_deref().unwrap_or("unknown");
    let output = if output.trim().is_empty() {
        super::EMPTY_TOOL_TEXT
    } else {
        &output
    };
    Message::text(Role::User, format!("[tool result for {id}]\n{output}"))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::chat::ContentPart;

    #[test]
    fn table() {
        // (input, expected roles)
        let cases: Vec<(Vec<Message>, &str)> = vec![
            (vec![user("a"), asst("b"), user("c")], "uau"),
            (vec![sys("s"), user("a"), user("b")], "su"),
            (vec![user("a"), asst("b"), asst("c"), user("d")], "uau"),
            (vec![asst("hi"), user("q")], "uau"),
            (vec![sys("s"), asst("hi")], "sua"),
            (
                vec![
                    user("q"),
                    asst_calls(None, &[("c1", "f")]),
                    tool("c1", "r"),
                    user("x"),
                ],
                "uatau",
            ),
            (vec![user("q"), asst("no calls"), tool("c1", "r")], "uau"),
            (vec![tool("c1", "r"), asst("a")], "ua"),
            (vec![user("q"), tool("c1", "r")], "u"),
            (
                vec![
                    user("q"),
                    asst_calls(None, &[("c1", "f"), ("c2", "g")]),
                    tool("c1", "r"),
                    tool("c2", "r"),
                ],
                "uatt",
            ),
        ];
        for (i, (mut input, want)) in cases.into_iter().enumerate() {
            let was_ok = alternates(&input);
            let changed = apply(&mut input);
            assert_eq!(changed, !was_ok, "case {i}");
            assert_eq!(roles(&input), want, "case {i}");
            assert!(!apply(&mut input), "case {i} not idempotent");
        }
    }

    #[test]
    fn merges_keep_text_images_and_calls() {
        let mut m = vec![
            user("first"),
            parts(Role::User, vec![image("https://x/1.png")]),
            user("third"),
            asst_calls(Some("let me look"), &[("c1", "f")]),
            asst_calls(None, &[("c2", "g")]),
            tool("c1", "r1"),
            tool("c2", "r2"),
        ];
        assert!(apply(&mut m));
        assert_eq!(roles(&m), "uatt");
        assert_eq!(
            m[0].content,
            Some(Content::Parts(vec![
                ContentPart::text_part("first"),
                image("https://x/1.png"),
                ContentPart::text_part("third"),
            ]))
        );
        let ids: Vec<_> = m[1]
            .tool_calls
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| &c.id)
            .collect();
        assert_eq!(ids, ["c1", "c2"]);
        assert_eq!(text(&m[1]), "let me look");
    }

    #[test]
    fn orphan_tool_result_keeps_its_id_and_output() {
        let mut m = vec![user("q"), asst("a"), tool("call_9", "42")];
        apply(&mut m);
        assert_eq!(text(&m[2]), "[tool result for call_9]\n42");
        let mut m = vec![user("q"), user("q2")];
        apply(&mut m);
        assert_eq!(text(&m[0]), "q\n\nq2");
    }
}
