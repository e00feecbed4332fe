//! [`Preset`]: the upstreams the proxy knows by name, with their base URL, default models and
//! message-fixing policy. The server's config picks one (`upstream = "hunyuan"` or
//! `"tokenhub"`); the layers take the resolved values and never look at a preset themselves.
//!
//! ```
//! use hunyuan_proxy::fix::FixPolicy;
//! use hunyuan_proxy::preset::Preset;
//!
//! assert_eq!(Preset::Tokenhub.text_model(), "hy3");
//! assert_eq!(Preset::Tokenhub.fix_policy(), FixPolicy::TokenHub);
//! assert_eq!(Preset::default(), Preset::Hunyuan);
//! ```
//!
//! What each upstream accepts is in `docs/hunyuan-api.md`.

use crate::fix::FixPolicy;
use serde::{Deserialize, Serialize};

/// A named upstream: its base URL, default models and fixing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Hunyuan's legacy OpenAI-compatible endpoint and the original project's models.
    #[default]
    Hunyuan,
    /// Tencent's successor platform, TokenHub.
    Tokenhub,
}

impl Preset {
    /// The preset's base URL.
    pub fn api_base(self) -> &'static str {
        match self {
            Preset::Hunyuan => "https://api.hunyuan.cloud.tencent.com/v1",
            Preset::Tokenhub => "https://tokenhub.tencentmaas.com/v1",
        }
    }

    /// The preset's tool-calling text model. TokenHub's is `hy3` (GA since 2026-07-06;
    /// `hy3-preview` is its older alias).
    pub fn text_model(self) -> &'static str {
        match self {
            Preset::Hunyuan => "hunyuan-2.0-thinking-20251109",
            Preset::Tokenhub => "hy3",
        }
    }

    /// The preset's vision model.
    pub fn vision_model(self) -> &'static str {
        match self {
            Preset::Hunyuan => "hunyuan-vision-1.5-instruct",
            Preset::Tokenhub => "hy-vision-2.0-instruct",
        }
    }

    /// The message-fixing policy the preset's upstream needs.
    pub fn fix_policy(self) -> FixPolicy {
        match self {
            Preset::Hunyuan => FixPolicy::Legacy,
            Preset::Tokenhub => FixPolicy::TokenHub,
        }
    }
}
