//! [`ModelAliases`]: client model names mapped to upstream models.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Client model names (exact, or `prefix*` patterns) mapped to upstream model names.
///
/// The rule: an exact name wins; otherwise the **longest** matching `prefix*` pattern wins (so
/// `claude-3-haiku*` beats `claude-*`); a name nothing matches is sent upstream as it is. A
/// lone `*` matches every name. Built from a TOML (or any serde) table:
///
/// ```
/// use hunyuan_proxy::ingress::ModelAliases;
///
/// let aliases: ModelAliases = toml::from_str(r#"
///     "claude-*" = "hunyuan-2.0-thinking-20251109"
///     "claude-3-5-haiku*" = "hunyuan-turbos-latest"
///     "sonnet" = "hunyuan-2.0-instruct-20251111"
/// "#).unwrap();
/// assert_eq!(aliases.resolve("claude-sonnet-4-5"), Some("hunyuan-2.0-thinking-20251109"));
/// assert_eq!(aliases.resolve("claude-3-5-haiku-latest"), Some("hunyuan-turbos-latest"));
/// assert_eq!(aliases.resolve("sonnet"), Some("hunyuan-2.0-instruct-20251111"));
/// assert_eq!(aliases.resolve("hy3"), None);
/// assert_eq!(aliases.upstream_model("hy3"), "hy3");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelAliases {
    exact: BTreeMap<String, String>,
    /// `(prefix, model)`, longest prefix first.
    prefixes: Vec<(String, String)>,
}

/// An alias table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AliasError {
    /// A pattern or a target is empty.
    #[error("model alias `{0}`: names and targets must not be empty")]
    Empty(String),
    /// A `*` somewhere other than at the end.
    #[error("model alias `{0}`: `*` is only allowed at the end of a pattern")]
    Wildcard(String),
}

impl ModelAliases {
    /// No aliases: every name goes upstream as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `pattern` (an exact name, or `prefix*`) → `model`. A pattern given twice keeps the
    /// last target.
    pub fn insert(
        &mut self,
        pattern: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<(), AliasError> {
        let (pattern, model) = (pattern.into(), model.into());
        if pattern.is_empty() || model.trim().is_empty() {
            return Err(AliasError::Empty(pattern));
        }
        match pattern.find('*') {
            None => {
                self.exact.insert(pattern, model);
            }
            Some(at) if at == pattern.len() - 1 => {
                let prefix = pattern[..at].to_owned();
                self.prefixes.retain(|(p, _)| *p != prefix);
                self.prefixes.push((prefix, model));
                // Longest first; equal lengths cannot both match one name unless equal.
                self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
            }
            Some(_) => return Err(AliasError::Wildcard(pattern)),
        }
        Ok(())
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(
        mut self,
        pattern: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, AliasError> {
        self.insert(pattern, model)?;
        Ok(self)
    }

    /// The upstream model for `name`, when an alias matches.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        if let Some(model) = self.exact.get(name) {
            return Some(model);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|(_, model)| model.as_str())
    }

    /// The upstream model for `name`: its alias, or `name` itself.
    pub fn upstream_model<'a>(&'a self, name: &'a str) -> &'a str {
        self.resolve(name).unwrap_or(name)
    }

    /// Whether no alias is defined.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

impl<'de> Deserialize<'de> for ModelAliases {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, String>::deserialize(d)?;
        let mut aliases = ModelAliases::new();
        for (pattern, model) in table {
            aliases
                .insert(pattern, model)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(aliases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let aliases = ModelAliases::new()
            .with("claude-*", "text")
            .unwrap()
            .with("claude-3-5-haiku*", "fast")
            .unwrap()
            .with("claude-opus-4", "big")
            .unwrap();
        assert_eq!(aliases.resolve("claude-opus-4"), Some("big"));
        assert_eq!(aliases.resolve("claude-opus-4-1"), Some("text"));
        assert_eq!(aliases.resolve("claude-3-5-haiku-20241022"), Some("fast"));
        assert_eq!(aliases.resolve("gpt-4o"), None);
        assert_eq!(aliases.upstream_model("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn a_lone_star_matches_everything_but_exact_names() {
        let aliases = ModelAliases::new()
            .with("*", "any")
            .unwrap()
            .with("hy3", "hy3")
            .unwrap();
        assert_eq!(aliases.resolve("whatever"), Some("any"));
        assert_eq!(aliases.resolve("hy3"), Some("hy3"));
    }

    #[test]
    fn bad_patterns_are_refused_from_toml_too() {
        assert_eq!(
            ModelAliases::new().insert("cl*ude", "x"),
            Err(AliasError::Wildcard("cl*ude".into()))
        );
        assert!(ModelAliases::new().insert("", "x").is_err());
        assert!(ModelAliases::new().insert("a", " ").is_err());
        let err = toml::from_str::<ModelAliases>(r#""a*b" = "x""#).unwrap_err();
        assert!(err.to_string().contains("only allowed at the end"), "{err}");
    }
}
