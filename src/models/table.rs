//! [`ModelTable`]: the built-in profiles of TokenHub's models, the retired ids, and the
//! lookup by exact id, then by the longest matching prefix.

use super::profile::{ModelProfile, ModelSettings, ThinkingSwitch, ToolChoiceSupport};
use crate::error::InvalidConfig;
use std::collections::BTreeMap;

/// The effort scale every effort vocabulary is a part of, lowest first.
pub const EFFORT_SCALE: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];

/// The profiles the proxy knows, by exact id and by prefix (an id ending in `*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelTable {
    exact: BTreeMap<String, ModelProfile>,
    /// Longest prefix first.
    prefixes: Vec<(String, ModelProfile)>,
}

/// The model a request names, resolved through retirements.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a> {
    /// The model to call (the client's, or its replacement when it was retired).
    pub model: &'a str,
    /// Its profile (`None`: a model the table does not know; no rules apply).
    pub profile: Option<&'a ModelProfile>,
    /// Whether the client's id was retired and replaced by [`model`](Self::model).
    pub retired: bool,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl ModelTable {
    /// An empty table (every model unknown).
    pub fn new() -> Self {
        Self::default()
    }

    /// TokenHub's models as of December 2026 (`docs/models.md` gives each fact's source and
    /// confidence; the L-marked ones are the first to override).
    pub fn builtin() -> Self {
        let hy_efforts = strings(&["none", "minimal", "low", "medium", "high"]);
        let hy = ModelProfile {
            images: true,
            thinking: ThinkingSwitch::Toggle,
            thinking_default: true,
            efforts: hy_efforts,
            replay_reasoning: true,
            developer_role: false,
            ..ModelProfile::default()
        };
        let hy3 = ModelProfile {
            images: false,
            tool_choice: ToolChoiceSupport::AutoOnly,
            ..hy.clone()
        };
        let vision = ModelProfile {
            images: true,
            tools: false,
            thinking: ThinkingSwitch::Unsupported,
            developer_role: false,
            ..ModelProfile::default()
        };
        let t1_vision = ModelProfile {
            thinking: ThinkingSwitch::AlwaysOn,
            thinking_default: true,
            ..vision.clone()
        };
        let deepseek = ModelProfile {
            images: false,
            thinking: ThinkingSwitch::Toggle,
            thinking_default: true,
            replay_reasoning: true,
            tool_choice: ToolChoiceSupport::NotForcedWhileThinking,
            developer_role: false,
            ..ModelProfile::default()
        };
        let glm52 = ModelProfile {
            images: false,
            thinking: ThinkingSwitch::Toggle,
            thinking_default: true,
            developer_role: false,
            ..ModelProfile::default()
        };
        let glm53 = ModelProfile {
            thinking: ThinkingSwitch::AlwaysOn,
            ..glm52.clone()
        };
        let kimi = ModelProfile {
            images: true,
            thinking: ThinkingSwitch::Toggle,
            thinking_default: true,
            replay_reasoning: true,
            ..ModelProfile::default()
        };
        let kimi_k3 = ModelProfile {
            images: false,
            thinking: ThinkingSwitch::Unsupported,
            thinking_default: true,
            efforts: strings(&["max"]),
            replay_reasoning: true,
            strip_params: strings(&[
                "temperature",
                "top_p",
                "frequency_penalty",
                "presence_penalty",
            ]),
            rename_params: [("max_tokens".to_owned(), "max_completion_tokens".to_owned())].into(),
            ..ModelProfile::default()
        };
        let minimax = ModelProfile {
            images: false,
            thinking: ThinkingSwitch::AdaptiveOrDisabled,
            thinking_default: true,
            ..ModelProfile::default()
        };
        let retired = |to: &str| ModelProfile {
            replaced_by: Some(to.to_owned()),
            ..ModelProfile::default()
        };
        let mut table = ModelTable::new();
        for (id, profile) in [
            ("hy4", hy.clone()),
            ("hy4-flash", hy),
            ("hy3", hy3),
            ("hy-vision-2.0-instruct", vision),
            ("hunyuan-t1-vision-20250916", t1_vision),
            ("deepseek-v4-flash*", deepseek.clone()),
            ("deepseek-v4-pro*", deepseek.clone()),
            (
                "deepseek/deepseek-flash",
                ModelProfile {
                    images: true,
                    ..deepseek
                },
            ),
            ("glm-5.2", glm52),
            ("glm-5.3", glm53.clone()),
            (
                "glm-5.3-flash",
                ModelProfile {
                    images: true,
                    ..glm53
                },
            ),
            ("kimi-k2.6", kimi),
            ("kimi-k3", kimi_k3),
            ("minimax-m3", minimax),
            ("hy3-preview", retired("hy3")),
            ("hy4-preview", retired("hy4")),
            ("hunyuan-vision*", retired("hy4")),
            ("hunyuan-turbos-*", retired("hy4-flash")),
            ("hunyuan-lite*", retired("hy4-flash")),
            ("hunyuan-*", retired("hy4")),
        ] {
            table.insert(id, profile);
        }
        table
    }

    /// Adds or replaces the profile of `id` (a trailing `*` makes it a prefix).
    pub fn insert(&mut self, id: &str, profile: ModelProfile) {
        match id.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.retain(|(p, _)| p != prefix);
                self.prefixes.push((prefix.to_owned(), profile));
                self.prefixes
                    .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            }
            None => {
                self.exact.insert(id.to_owned(), profile);
            }
        }
    }

    /// The table with the config's `[models."<id>"]` tables laid over it: a known id is
    /// overridden key by key; a new one starts from `like`'s profile or the default one. A
    /// table that cannot be used is named by its key (`models."glm-6".like`).
    pub fn configure(
        mut self,
        settings: &BTreeMap<String, ModelSettings>,
    ) -> Result<Self, InvalidConfig> {
        // Tables without `like` first, so a `like` may name a model added by the config.
        let ordered = settings
            .iter()
            .filter(|(_, s)| s.like.is_none())
            .chain(settings.iter().filter(|(_, s)| s.like.is_some()));
        for (id, s) in ordered {
            let error = |key: &str, problem: &str| {
                // Model ids are quoted as the docs write them (`[models."hy4"]`).
                let table = format!("models.{id:?}");
                let field = match key {
                    "" => table,
                    key => format!("{table}.{key}"),
                };
                InvalidConfig::new(field, problem)
            };
            if id.trim_end_matches('*').is_empty() {
                return Err(error("", "needs a model id"));
            }
            if s.price.as_ref().is_some_and(|p| !p.is_valid()) {
                return Err(error("price", "needs figures >= 0 and a currency"));
            }
            let base = match &s.like {
                Some(like) => self
                    .profile_of_id(like)
                    .cloned()
                    .ok_or_else(|| error("like", &format!("is `{like}`, an unknown model")))?,
                None => self.profile_of_id(id).cloned().unwrap_or_default(),
            };
            let profile = base.with(s);
            for effort in &profile.efforts {
                if !EFFORT_SCALE.contains(&effort.as_str()) {
                    return Err(error(
                        "efforts",
                        &format!(
                            "has effort `{effort}`, not one of {}",
                            EFFORT_SCALE.join(", ")
                        ),
                    ));
                }
            }
            self.insert(id, profile);
        }
        Ok(self)
    }

    /// The profile stored under exactly `id` (a prefix entry when `id` ends in `*`).
    fn profile_of_id(&self, id: &str) -> Option<&ModelProfile> {
        match id.strip_suffix('*') {
            Some(prefix) => self
                .prefixes
                .iter()
                .find(|(p, _)| p == prefix)
                .map(|(_, profile)| profile),
            None => self.get(id),
        }
    }

    /// The profile of `model`: its exact entry, else the longest prefix entry that matches.
    pub fn get(&self, model: &str) -> Option<&ModelProfile> {
        self.exact.get(model).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| model.starts_with(prefix.as_str()))
                .map(|(_, profile)| profile)
        })
    }

    /// `model` followed through retirements (at most 4 steps) to the model to call.
    pub fn resolve<'a>(&'a self, model: &'a str) -> Resolved<'a> {
        let mut current = model;
        let mut profile = self.get(model);
        for _ in 0..4 {
            match profile.and_then(|p| p.replaced_by.as_deref()) {
                Some(next) if next != current => {
                    current = next;
                    profile = self.get(next);
                }
                _ => break,
            }
        }
        Resolved {
            model: current,
            profile: profile.filter(|p| p.replaced_by.is_none()),
            retired: current != model,
        }
    }

    /// Whether the model named `model` (after retirements) sees images.
    pub fn sees_images(&self, model: &str) -> bool {
        self.resolve(model).profile.is_some_and(|p| p.images)
    }

    /// Every id in the table with its profile (prefix ids end in `*`), for documentation and
    /// listings.
    pub fn entries(&self) -> impl Iterator<Item = (String, &ModelProfile)> {
        self.exact.iter().map(|(id, p)| (id.clone(), p)).chain(
            self.prefixes
                .iter()
                .map(|(prefix, p)| (format!("{prefix}*"), p)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_says_who_sees_images() {
        let table = ModelTable::builtin();
        for model in [
            "hy4",
            "hy4-flash",
            "kimi-k2.6",
            "deepseek/deepseek-flash",
            "glm-5.3-flash",
        ] {
            assert!(table.sees_images(model), "{model}");
        }
        for model in [
            "hy3",
            "deepseek-v4-flash",
            "deepseek-v4-pro-20261201",
            "glm-5.2",
            "kimi-k3",
            "minimax-m3",
            "unknown-model",
        ] {
            assert!(!table.sees_images(model), "{model}");
        }
    }

    #[test]
    fn dated_ids_and_retired_names_resolve() {
        let table = ModelTable::builtin();
        let dated = table.resolve("deepseek-v4-flash-20261120");
        assert!(dated.profile.unwrap().replay_reasoning);
        assert!(!dated.retired);
        for (old, new) in [
            ("hy3-preview", "hy3"),
            ("hy4-preview", "hy4"),
            ("hunyuan-2.0-thinking-20251109", "hy4"),
            ("hunyuan-vision-1.5-instruct", "hy4"),
            ("hunyuan-turbos-latest", "hy4-flash"),
        ] {
            let resolved = table.resolve(old);
            assert_eq!((resolved.model, resolved.retired), (new, true), "{old}");
            assert!(resolved.profile.is_some());
        }
        // A current id under a retired prefix is its own model.
        let t1 = table.resolve("hunyuan-t1-vision-20250916");
        assert_eq!(t1.model, "hunyuan-t1-vision-20250916");
        assert_eq!(t1.profile.unwrap().thinking, ThinkingSwitch::AlwaysOn);
        let unknown = table.resolve("qwen-9");
        assert_eq!((unknown.model, unknown.profile), ("qwen-9", None));
    }

    #[test]
    fn config_overrides_key_by_key_and_adds_models() {
        let settings: BTreeMap<String, ModelSettings> = toml::from_str(
            r#"
            [hy3]
            images = true
            [glm-6]
            like = "glm-5.2"
            efforts = ["low", "high"]
            price = { input = 1.0, output = 4.0 }
            ["hy4-preview"]
            replaced_by = ""
            "#,
        )
        .unwrap();
        let table = ModelTable::builtin().configure(&settings).unwrap();
        let hy3 = table.get("hy3").unwrap();
        assert!(hy3.images);
        assert_eq!(hy3.tool_choice, ToolChoiceSupport::AutoOnly, "kept");
        let glm6 = table.get("glm-6").unwrap();
        assert!(!glm6.developer_role, "from glm-5.2");
        assert_eq!(glm6.efforts, ["low", "high"]);
        assert!(!table.resolve("hy4-preview").retired);
        let bad: BTreeMap<String, ModelSettings> = toml::from_str("[x]\nlike = \"nope\"").unwrap();
        let err = ModelTable::builtin().configure(&bad).unwrap_err();
        assert!(err.to_string().contains("models.\"x\""), "{err}");
        assert_eq!(err.field, "models.\"x\".like");
        let bad: BTreeMap<String, ModelSettings> =
            toml::from_str("[x]\nefforts = [\"huge\"]").unwrap();
        assert!(ModelTable::builtin().configure(&bad).is_err());
        assert!(toml::from_str::<BTreeMap<String, ModelSettings>>("[x]\nbogus = 1").is_err());
    }
}
