//! [`ToolNames`]: the function names sent upstream and the client's names for them.
//!
//! Hunyuan takes function names of `[A-Za-z0-9_-]` only (R11). Every name the Responses
//! request declares, `namespace` children included, is flattened (Codex's own convention:
//! `multi_agent_v1` + `spawn_agent` → `multi_agent_v1__spawn_agent`), every other character
//! becomes `_`, the result is cut to [`MAX_TOOL_NAME`] characters and made unique with a
//! numeric suffix. The map goes both ways: history calls are sent under the same names, and
//! the answer's calls carry the client's name and namespace again.

/// The longest function name sent upstream.
pub const MAX_TOOL_NAME: usize = 64;

/// The function names sent upstream and the client's name and namespace for each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNames {
    entries: Vec<ToolName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ToolName {
    sent: String,
    name: String,
    namespace: Option<String>,
}

impl ToolNames {
    /// The client's `(name, namespace)` for a name the upstream used; an unknown name (the
    /// model made it up) comes back as it is, without namespace.
    pub fn original<'a>(&'a self, sent: &'a str) -> (&'a str, Option<&'a str>) {
        match self.entries.iter().find(|e| e.sent == sent) {
            Some(e) => (&e.name, e.namespace.as_deref()),
            None => (sent, None),
        }
    }

    /// The name sent upstream for the client's `name` in `namespace`.
    pub fn sent(&self, namespace: Option<&str>, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.namespace.as_deref() == namespace)
            .map(|e| e.sent.as_str())
    }

    /// How many names are mapped.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no name is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `sent` is one of the names sent upstream.
    pub(crate) fn is_sent(&self, sent: &str) -> bool {
        self.entries.iter().any(|e| e.sent == sent)
    }

    /// The name sent for `name` in `namespace`, made (sanitized, shortened, unique) when new.
    pub(crate) fn insert(&mut self, namespace: Option<&str>, name: &str) -> &str {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.name == name && e.namespace.as_deref() == namespace)
        {
            return &self.entries[i].sent;
        }
        let flat = match namespace {
            Some(ns) => format!(
                "{}__{}",
                ns.trim_end_matches('_'),
                name.trim_start_matches('_')
            ),
            None => name.to_owned(),
        };
        let base = sanitize(&flat);
        let mut sent = base.clone();
        let mut n = 2;
        while self.is_sent(&sent) {
            let suffix = format!("_{n}");
            let keep = MAX_TOOL_NAME - suffix.len();
            sent = format!("{}{suffix}", &base[..base.len().min(keep)]);
            n += 1;
        }
        self.entries.push(ToolName {
            sent,
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
        });
        &self.entries.last().expect("just pushed").sent
    }
}

/// `[A-Za-z0-9_-]` only, at most [`MAX_TOOL_NAME`] characters, never empty.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME)
        .collect();
    if out.is_empty() {
        out.push_str("tool");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_sanitized_bounded_and_unique() {
        let mut names = ToolNames::default();
        assert_eq!(names.insert(None, "files.read"), "files_read");
        assert_eq!(names.insert(None, "files_read"), "files_read_2");
        assert_eq!(names.insert(None, "查询"), "__");
        assert_eq!(names.insert(None, ""), "tool");
        let long = "x".repeat(100);
        let first = names.insert(None, &long).to_owned();
        assert_eq!(first.len(), MAX_TOOL_NAME);
        let second = names.insert(Some("ns"), &long).to_owned();
        assert!(second.len() <= MAX_TOOL_NAME);
        let third = names.insert(Some("x"), &"x".repeat(80)).to_owned();
        assert!(third.len() <= MAX_TOOL_NAME && third != first, "{third}");
        assert_eq!(names.insert(None, "files.read"), "files_read", "stable");
        for sent in [&first, &second, &third] {
            assert!(sent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
        assert_eq!(names.original("files_read_2"), ("files_read", None));
        assert_eq!(names.original("made_up"), ("made_up", None));
        assert_eq!(
            names.insert(Some("ns_"), "_go"),
            "ns__go",
            "as Codex flattens"
        );
    }
}
