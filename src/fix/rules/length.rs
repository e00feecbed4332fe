//! [`Rule::Length`](crate::fix::Rule::Length): the legacy endpoint takes at most 40 messages
//! (R7; configurable as [`FixConfig::max_messages`](crate::fix::FixConfig::max_messages)).
//!
//! The oldest turns after the system message are dropped in whole question/answer units: a
//! unit starts at a user message and runs to the next one, so a tool call is never split from
//! its results and the kept conversation still starts with a user turn. When the newest unit
//! alone is too long (a long agent loop), whole tool rounds (an assistant message and the
//! tool results that follow it) are dropped from its start, keeping its question. Because the
//! rule runs after alternation and ending, what it keeps still satisfies them.

use super::is_system;
use crate::chat::{Message, Role};

/// Applies the rule; returns whether anything changed.
pub(super) fn apply(messages: &mut Vec<Message>, max: usize) -> bool {
    if messages.len() <= max {
        return false;
    }
    let start = usize::from(messages.first().is_some_and(is_system));
    let excess = messages.len() - max;
    // Unit starts: user messages after the system message, oldest first.
    let cut = messages[start..]
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::User)
        .map(|(i, _)| start + i)
        .find(|&i| i - start >= excess);
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let cut = match (cut, last_user) {
        (Some(cut), _) => cut,
        (None, Some(last)) => last,
        (None, None) => start,
    };
    messages.drain(start..cut);
    if messages.len() > max {
        drop_tool_rounds(messages, max);
    }
    true
}

/// Drops whole tool rounds right after the last user message until `max` holds or only the
/// last round is left.
fn drop_tool_rounds(messages: &mut Vec<Message>, max: usize) {
    let Some(question) = messages.iter().rposition(|m| m.role == Role::User) else {
        return;
    };
    let first = question + 1;
    loop {
        let excess = messages.len().saturating_sub(max);
        if excess == 0 {
            return;
        }
        // The round starting at `first` ends before the next assistant message.
        let end = messages
            .get(first + 1..)
            .and_then(|rest| rest.iter().position(|m| m.role == Role::Assistant))
            .map(|p| first + 1 + p);
        match end {
            Some(end) if messages[first].role == Role::Assistant => {
                messages.drain(first..end);
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn chat(units: usize) -> Vec<Message> {
        let mut m = vec![sys("s")];
        for i in 0..units {
            m.push(user(&format!("q{i}")));
            m.push(asst_calls(Some("x"), &[(&format!("c{i}"), "f")]));
            m.push(tool(&format!("c{i}"), "r"));
            m.push(asst(&format!("a{i}")));
        }
        m.push(user("last"));
        m
    }

    #[test]
    fn table() {
        // (input, max, expected roles, expected first question)
        let cases: Vec<(Vec<Message>, usize, &str, &str)> = vec![
            (chat(2), 40, "suatauatau", "q0"),
            (chat(2), 9, "suatau", "q1"),
            (chat(2), 6, "suatau", "q1"),
            (chat(2), 5, "su", "last"),
            (chat(10), 40, "suatauatauatauatauatauatauatauatauatau", "q1"),
        ];
        for (i, (mut input, max, want, first_q)) in cases.into_iter().enumerate() {
            apply(&mut input, max);
            assert!(input.len() <= max, "case {i}");
            assert_eq!(roles(&input), want, "case {i}");
            assert_eq!(text(&input[1]), first_q, "case {i}");
            assert!(!apply(&mut input, max), "case {i} not idempotent");
        }
    }

    #[test]
    fn a_long_agent_loop_keeps_its_question_and_latest_rounds() {
        let mut m = vec![sys("s"), user("do it")];
        for i in 0..30 {
            m.push(asst_calls(None, &[(&format!("c{i}"), "f")]));
            m.push(tool(&format!("c{i}"), "r"));
        }
        assert!(apply(&mut m, 40));
        assert_eq!(m.len(), 40);
        assert_eq!(text(&m[1]), "do it");
        assert_eq!(m[2].tool_calls.as_ref().unwrap()[0].id, "c11");
        assert_eq!(m[39].tool_call_id.as_deref(), Some("c29"));
    }
}
