//! [`Preset`]: the upstreams the proxy knows by name, with their base URL, default models and
//! message-fixing policy. The server's config picks one (`upstream = "tokenhub"`, the default,
//! or `"tokenhub-cn"`, `"tokenhub-intl"`, `"tokenplan"`, `"hunyuan"`); the layers take the
//! resolved values and never look at a preset themselves.
//!
//! ```
//! use hunyuan_proxy::fix::FixPolicy;
//! use hunyuan_proxy::preset::Preset;
//!
//! assert_eq!(Preset::default(), Preset::Tokenhub);
//! assert_eq!(Preset::Tokenhub.text_model(), "hy4");
//! assert_eq!(Preset::Tokenhub.vision_model(), "hy4-flash");
//! assert_eq!(Preset::TokenhubIntl.fix_policy(), FixPolicy::TokenHub);
//! assert!(Preset::Hunyuan.is_legacy());
//! ```
//!
//! What each upstream accepts is in `docs/hunyuan-api.md` and `docs/models.md`.

use crate::fix::FixPolicy;
use serde::{Deserialize, Serialize};

/// A named upstream: its base URL, default models and fixing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum Preset {
    /// TokenHub, China site (`tokenhub.tencentmaas.com`): the default.
    #[default]
    #[serde(rename = "tokenhub")]
    Tokenhub,
    /// TokenHub, China site's backup host (`tokenhub.tencentmaas.cn`).
    #[serde(rename = "tokenhub-cn")]
    TokenhubBackup,
    /// TokenHub, Singapore site (`tokenhub-intl.tencentcloudmaas.com`); a key works only on
    /// the site that issued it.
    #[serde(rename = "tokenhub-intl")]
    TokenhubIntl,
    /// TokenHub's Token Plan subscription (`/plan/v3`, `sk-tp-…` keys, no `/models`).
    #[serde(rename = "tokenplan")]
    TokenPlan,
    /// The retired legacy endpoint (`api.hunyuan.cloud.tencent.com`, shut down on
    /// 2026-09-30) and the original project's models and fixing rules, for
    /// legacy-compatible endpoints.
    #[serde(rename = "hunyuan")]
    Hunyuan,
}

impl Preset {
    /// The preset's base URL.
    pub fn api_base(self) -> &'static str {
        match self {
            Preset::Hunyuan => "https://api.hunyuan.cloud.tencent.com/v1",
            Preset::Tokenhub => "https://tokenhub.tencentmaas.com/v1",
            Preset::TokenhubBackup => "https://tokenhub.tencentmaas.cn/v1",
            Preset::TokenhubIntl => "https://tokenhub-intl.tencentcloudmaas.com/v1",
            Preset::TokenPlan => "https://tokenhub.tencentmaas.com/plan/v3",
        }
    }

    /// The model clients that name no real model (Claude Code's `claude-*`, Codex's `gpt-*`)
    /// are sent to. On TokenHub `hy4`: the flagship sees images and calls tools, and its
    /// facts are the best documented (H), which is what an agent's tool loop needs; choose
    /// `hy4-flash` with `text_model` for about a twelfth of the price.
    pub fn text_model(self) -> &'static str {
        match self {
            Preset::Hunyuan => "hunyuan-2.0-thinking-20251109",
            _ => "hy4",
        }
    }

    /// The model that describes images for models that cannot see them. On TokenHub
    /// `hy4-flash`: it sees images, is about twelve times cheaper than `hy4` and fast, and a
    /// description is context-free and cached, so the cheaper model is enough.
    pub fn vision_model(self) -> &'static str {
        match self {
            Preset::Hunyuan => "hunyuan-vision-1.5-instruct",
            _ => "hy4-flash",
        }
    }

    /// The message-fixing policy the preset's upstream needs.
    pub fn fix_policy(self) -> FixPolicy {
        match self {
            Preset::Hunyuan => FixPolicy::Legacy,
            _ => FixPolicy::TokenHub,
        }
    }

    /// Whether this is the retired legacy platform (its fixing rules, the cascade switching
    /// to `text_model`, no model profiles).
    pub fn is_legacy(self) -> bool {
        self == Preset::Hunyuan
    }

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Hunyuan => "hunyuan",
            Preset::Tokenhub => "tokenhub",
            Preset::TokenhubBackup => "tokenhub-cn",
            Preset::TokenhubIntl => "tokenhub-intl",
            Preset::TokenPlan => "tokenplan",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_reads_by_its_config_name() {
        for preset in [
            Preset::Tokenhub,
            Preset::TokenhubBackup,
            Preset::TokenhubIntl,
            Preset::TokenPlan,
            Preset::Hunyuan,
        ] {
            let text = format!("\"{}\"", preset.name());
            let read: Preset = serde_json::from_str(&text).unwrap();
            assert_eq!(read, preset);
            assert!(preset.api_base().starts_with("https://"));
        }
        assert!(serde_json::from_str::<Preset>("\"TokenHub\"").is_err());
    }
}
