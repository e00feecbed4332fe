//! [`Rule::ToolNames`](crate::fix::Rule::ToolNames): Hunyuan takes tool function names made
//! of `[A-Za-z0-9_-]` only (R11).
//!
//! Every other character becomes `_` (an empty name becomes `tool`); a name that would then
//! collide with another gets a numeric suffix. The same original name is rewritten the same
//! way in `tools`, in history tool calls and in `tool_choice`, and the mapping is kept in
//! [`ToolNameMap`] so answers (streamed ones included) carry the client's names again. The
//! rewrite depends only on the request, so an agent loop sees stable names across turns.

use crate::chat::ChatRequest;
use serde_json::Value;

/// Tool names rewritten for the upstream: `(sent upstream, the client's original)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNameMap {
    pairs: Vec<(String, String)>,
}

impl ToolNameMap {
    /// Whether no name was rewritten.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The client's name for a name the upstream used, if it was rewritten.
    pub fn original(&self, sent: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(s, _)| s == sent)
            .map(|(_, o)| o.as_str())
    }

    /// The name sent upstream for a client's name, if it was rewritten.
    pub fn sent(&self, original: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(_, o)| o == original)
            .map(|(s, _)| s.as_str())
    }

    /// The rewritten pairs, `(sent upstream, original)`.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Whether Hunyuan accepts `name` as a function name.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Applies the rule; returns whether anything changed.
pub(super) fn apply(chat: &mut ChatRequest, map: &mut ToolNameMap) -> bool {
    let mut names = names_mut(chat);
    if names.iter().all(|n| is_valid_tool_name(n)) {
        return false;
    }
    let taken: Vec<String> = names
        .iter()
        .filter(|n| is_valid_tool_name(n))
        .map(|n| n.to_string())
        .collect();
    for name in names.iter_mut() {
        if is_valid_tool_name(name) {
            continue;
        }
        let sent = match map.sent(name) {
            Some(sent) => sent.to_owned(),
            None => {
                let sent = unique(sanitize(name), &taken, map);
                map.pairs.push((sent.clone(), name.to_string()));
                sent
            }
        };
        **name = sent;
    }
    true
}

/// Every tool name in the request, in a fixed order: tools, history, `tool_choice`.
fn names_mut(chat: &mut ChatRequest) -> Vec<&mut String> {
    let mut names: Vec<&mut String> = Vec::new();
    for tool in chat.tools.iter_mut().flatten() {
        names.push(&mut tool.function.name);
    }
    for m in &mut chat.messages {
        for call in m.tool_calls.iter_mut().flatten() {
            names.push(&mut call.function.name);
        }
    }
    if let Some(Value::String(name)) = chat
        .extra
        .get_mut("tool_choice")
        .and_then(|c| c.get_mut("function"))
        .and_then(|f| f.get_mut("name"))
    {
        names.push(name);
    }
    names
}

fn sanitize(name: &str) -> String {
    if name.is_empty() {
        return "tool".to_owned();
    }
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unique(base: String, taken: &[String], map: &ToolNameMap) -> String {
    let used = |n: &str| taken.iter().any(|t| t == n) || map.original(n).is_some();
    if !used(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !used(n))
        .expect("an unused suffix exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_with(tools: &[&str], called: &[&str], choice: Option<&str>) -> ChatRequest {
        let calls: Vec<_> = called
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"id": format!("c{i}"), "type": "function", "function": {"name": n, "arguments": "{}"}}))
            .collect();
        let mut body = json!({
            "model": "m",
            "tools": tools.iter().map(|n| json!({"type": "function", "function": {"name": n}})).collect::<Vec<_>>(),
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x", "tool_calls": calls}],
        });
        if let Some(c) = choice {
            body["tool_choice"] = json!({"type": "function", "function": {"name": c}});
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn table() {
        // (tools, called, expected tool names, expected called names)
        type Names<'a> = &'a [&'a str];
        let cases: Vec<(Names, Names, Names, Names)> = vec![
            (
                &["get_weather", "a-b"],
                &["a-b"],
                &["get_weather", "a-b"],
                &["a-b"],
            ),
            (
                &["files.read"],
                &["files.read"],
                &["files_read"],
                &["files_read"],
            ),
            (&["a.b", "a_b"], &["a.b"], &["a_b_2", "a_b"], &["a_b_2"]),
            (&["a.b", "a b"], &[], &["a_b", "a_b_2"], &[]),
            (&["查询"], &["查询"], &["__"], &["__"]),
            (&[""], &[], &["tool"], &[]),
        ];
        for (i, (tools, called, want_tools, want_called)) in cases.into_iter().enumerate() {
            let mut chat = chat_with(tools, called, None);
            let mut map = ToolNameMap::default();
            let changed = apply(&mut chat, &mut map);
            assert_eq!(changed, !map.is_empty(), "case {i}");
            let got: Vec<_> = chat
                .tools
                .iter()
                .flatten()
                .map(|t| t.function.name.as_str())
                .collect();
            assert_eq!(got, want_tools, "case {i}");
            let got: Vec<_> = chat.messages[1]
                .tool_calls
                .iter()
                .flatten()
                .map(|c| c.function.name.as_str())
                .collect();
            assert_eq!(got, want_called, "case {i}");
            for (tool, sent) in tools.iter().zip(want_tools) {
                let back = map.original(sent).unwrap_or(sent);
                assert_eq!(back, *tool, "case {i} reversible");
            }
            assert!(
                !apply(&mut chat, &mut ToolNameMap::default()),
                "case {i} idempotent"
            );
        }
    }

    #[test]
    fn tool_choice_is_rewritten_too() {
        let mut chat = chat_with(&["fs.read"], &[], Some("fs.read"));
        let mut map = ToolNameMap::default();
        assert!(apply(&mut chat, &mut map));
        assert_eq!(chat.extra["tool_choice"]["function"]["name"], "fs_read");
        assert_eq!(map.original("fs_read"), Some("fs.read"));
    }
}
