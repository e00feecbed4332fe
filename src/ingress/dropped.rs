//! [`Dropped`]: what a dialect could not carry to the chat model, told to the client and counted.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::fmt;

/// The response header listing what was dropped: `x-hunyuan-proxy-dropped: top_k, tool:bash_20250124`.
pub const DROPPED_HEADER: HeaderName = HeaderName::from_static("x-hunyuan-proxy-dropped");

/// The counter of dropped items, labelled `dialect` and `item`.
pub const DROPPED_METRIC: &str = "hunyuan_proxy_dropped_total";

/// Names of the parts of a request a dialect could not carry (a field, a block type, a tool),
/// in the order they were first met, each once: what every dialect ingress (Messages,
/// Responses) reports. Meant for a response header and a metric; never an error.
///
/// Names the proxy chose (`&'static str`, e.g. `top_k`) are metric labels as they are; names
/// built from client input (`tool:web_search_20250305`) are listed in the header in full but
/// counted under the label `other`, so a client cannot grow the metric's label set. A dialect
/// that knows a client-named item (a built-in tool it drops) records the proxy's own
/// `&'static str` for it, so that item keeps its label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    items: Vec<Cow<'static, str>>,
}

impl Dropped {
    /// Nothing dropped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `item` (once; later records of the same name are ignored).
    pub fn add(&mut self, item: impl Into<Cow<'static, str>>) {
        let item = item.into();
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The names, in the order they were recorded.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|i| i.as_ref())
    }

    /// The names as a slice, in the order they were recorded.
    pub fn as_slice(&self) -> &[Cow<'static, str>] {
        &self.items
    }

    /// Whether `name` was recorded.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|item| item == name)
    }

    /// The header value (`a, b`), `None` when nothing was dropped.
    pub fn header_value(&self) -> Option<HeaderValue> {
        if self.items.is_empty() {
            return None;
        }
        let joined = self.iter().collect::<Vec<_>>().join(", ");
        // Client-built names may hold bytes a header cannot; those are replaced.
        let clean: String = joined
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&clean).ok()
    }

    /// Counts every item under `dialect` in [`DROPPED_METRIC`].
    pub fn count(&self, dialect: &'static str) {
        for item in &self.items {
            let label: &'static str = match item {
                Cow::Borrowed(name) => name,
                Cow::Owned(_) => "other",
            };
            metrics::counter!(DROPPED_METRIC, "dialect" => dialect, "item" => label).increment(1);
        }
    }

    /// Adds the items to [`DROPPED_HEADER`] on `headers` (after what a layer behind the
    /// dialect, such as a model's profile, already named there) and counts them; nothing
    /// when empty.
    pub fn report(&self, dialect: &'static str, headers: &mut HeaderMap) {
        let Some(value) = self.header_value() else {
            return;
        };
        let merged = headers
            .get(DROPPED_HEADER)
            .filter(|earlier| !earlier.is_empty())
            .and_then(|earlier| {
                let mut both = earlier.as_bytes().to_vec();
                both.extend_from_slice(b", ");
                both.extend_from_slice(value.as_bytes());
                HeaderValue::from_bytes(&both).ok()
            });
        headers.insert(DROPPED_HEADER, merged.unwrap_or(value));
        self.count(dialect);
    }
}

impl fmt::Display for Dropped {
    /// The names joined by `, `, as in the header (unprintable bytes kept).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_listed_once_in_order() {
        let mut dropped = Dropped::new();
        assert!(dropped.header_value().is_none());
        dropped.add("top_k");
        dropped.add(format!("tool:{}", "bash_20250124"));
        dropped.add("top_k");
        assert_eq!(
            dropped.iter().collect::<Vec<_>>(),
            ["top_k", "tool:bash_20250124"]
        );
        assert_eq!(dropped.header_value().unwrap(), "top_k, tool:bash_20250124");
        assert_eq!(dropped.as_slice(), ["top_k", "tool:bash_20250124"]);
        assert_eq!(dropped.to_string(), "top_k, tool:bash_20250124");
        assert!(dropped.contains("top_k") && !dropped.contains("tool:bash"));
        let mut headers = HeaderMap::new();
        dropped.report("test", &mut headers);
        assert_eq!(headers[DROPPED_HEADER], "top_k, tool:bash_20250124");
    }

    #[test]
    fn a_report_keeps_what_a_layer_behind_the_dialect_named() {
        let mut headers = HeaderMap::new();
        headers.insert(
            DROPPED_HEADER,
            HeaderValue::from_static("param:temperature"),
        );
        let mut dropped = Dropped::new();
        dropped.add("tool:web_search");
        dropped.report("test", &mut headers);
        assert_eq!(
            headers[DROPPED_HEADER],
            "param:temperature, tool:web_search"
        );
    }

    #[test]
    fn unprintable_client_names_do_not_break_the_header() {
        let mut dropped = Dropped::new();
        dropped.add(String::from("block:\u{7}é"));
        assert_eq!(dropped.header_value().unwrap(), "block:??");
    }
}
