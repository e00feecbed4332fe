//! [`CascadeConfig`]: how the image cascade behaves (TOML table `[cascade]`).

use crate::cache::CacheConfig;
use crate::models::ModelTable;
use crate::preset::Preset;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The image types TokenHub takes (`image/jpeg`, `image/png`, `image/webp`).
pub const TOKENHUB_IMAGE_TYPES: &[&str] = &["jpeg", "jpg", "png", "webp"];

/// The default prompt sent with each image. It asks for everything visible and nothing else:
/// it carries no part of the user's conversation, so a description can be reused for the same
/// image in any request.
pub const DEFAULT_PROMPT: &str = "Describe this image completely and precisely for a reader who \
cannot see it. Transcribe all visible text and code verbatim, keeping line breaks and \
indentation. List the user-interface elements (windows, dialogs, buttons, fields, menus, tabs) \
with their labels and states. For charts, graphs and tables give the type, axes, labels, values \
and trends. Then describe the layout, objects, people, colours and anything else visible. Do not \
guess at what is not visible. Answer with the description only.";

/// A [`CascadeConfig`] field with a value the cascade cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: `{key}` {problem}")]
pub struct CascadeConfigError {
    /// The key, as named in the server's config (`cascade.concurrency`, `vision_model`…).
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// What happens when an image cannot be described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnVisionFailure {
    /// The request fails with 502 (an SSE error event when the stream was already committed).
    #[default]
    Fail,
    /// A neutral placeholder stands in for the description, and the response carries the
    /// header `x-hunyuan-proxy-vision: degraded`.
    Degrade,
}

/// When a request whose images were described is switched to the text model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchModel {
    /// Always: the request goes to `text_model`.
    #[default]
    Always,
    /// Only when the requested model is not vision-capable; a vision model is kept.
    WhenNotVision,
    /// Never: the client's model is kept (use when clients name their own text model).
    Never,
}

/// How the [`CascadeLayer`](super::CascadeLayer) behaves. Every field has a default; the two
/// model names come from the top-level `vision_model` and `text_model` keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CascadeConfig {
    /// Turn the cascade on (default `true`); when off, requests pass through untouched.
    pub enabled: bool,
    /// The model that describes images (top-level key `vision_model`).
    #[serde(skip)]
    pub vision_model: String,
    /// The tool-calling text model requests are switched to (top-level key `text_model`).
    #[serde(skip)]
    pub text_model: String,
    /// The prompt sent with each image (default [`DEFAULT_PROMPT`]). Changing it (or
    /// `max_tokens`) changes every cache key, so old descriptions are not reused.
    pub prompt: String,
    /// `max_tokens` of each description (default 1024).
    pub max_tokens: u32,
    /// Images of one request described at once (default 3; the upstream's
    /// `upstream_concurrency` still caps all calls together).
    pub concurrency: usize,
    /// Most image parts in one request (default 20, TokenHub's limit); more is a 400.
    pub max_images: usize,
    /// Largest decoded `data:` image in bytes (default 10 MiB); larger is a 400.
    pub max_image_bytes: usize,
    /// What a failed description does (default `fail`).
    pub on_failure: OnVisionFailure,
    /// When to switch to `text_model` (default `always`).
    pub switch_model: SwitchModel,
    /// Pass a request that names a vision model and offers no tools through untouched, images
    /// and all (default `true`).
    pub pass_through_vision: bool,
    /// For streamed requests, commit the SSE response early and send keep-alive comments
    /// while the images are being described (default `true`).
    pub stream_keepalive: bool,
    /// Milliseconds the vision stage may take before a streamed response is committed early
    /// (default 1000).
    pub keepalive_after_ms: u64,
    /// Seconds between keep-alive comments (default 5).
    pub keepalive_interval_secs: u64,
    /// Byte budget of the description cache, on top of `cache_max_size` entries (default:
    /// none).
    pub cache_max_bytes: Option<u64>,
    /// Seconds one description may take, retries included, before it counts as failed
    /// (default 60).
    pub describe_timeout_secs: u64,
    /// Seconds a request waits for another request's description of the same image before
    /// asking the vision model itself (default 60).
    pub cache_wait_secs: u64,
    /// Image types accepted, as the subtype of `image/…` (`png`, `jpeg`, …); another type, in
    /// a `data:` URL or as an `http(s)` URL's file extension, is a 400. Default: any image
    /// type; the TokenHub presets: [`TOKENHUB_IMAGE_TYPES`].
    pub image_types: Option<Vec<String>>,
    /// The model profiles (set by the application, not in TOML). With a table, a request for
    /// a model that sees images passes with its images, tools or not, and a request for one
    /// that does not has its images described and **keeps its model** (`switch_model` is not
    /// used); without one, the legacy behaviour above.
    #[serde(skip)]
    pub models: Option<Arc<ModelTable>>,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            enabled: true,
            vision_model: Preset::Hunyuan.vision_model().to_owned(),
            text_model: Preset::Hunyuan.text_model().to_owned(),
            prompt: DEFAULT_PROMPT.to_owned(),
            max_tokens: 1024,
            concurrency: 3,
            max_images: 20,
            max_image_bytes: 10 * 1024 * 1024,
            on_failure: OnVisionFailure::Fail,
            switch_model: SwitchModel::Always,
            pass_through_vision: true,
            stream_keepalive: true,
            keepalive_after_ms: 1000,
            keepalive_interval_secs: 5,
            cache_max_bytes: None,
            describe_timeout_secs: 60,
            cache_wait_secs: 60,
            image_types: None,
            models: None,
        }
    }
}

impl CascadeConfig {
    /// Sets the vision and text models.
    pub fn models(mut self, vision: impl Into<String>, text: impl Into<String>) -> Self {
        self.vision_model = vision.into();
        self.text_model = text.into();
        self
    }

    /// Sets the description prompt.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = prompt.into();
        self
    }

    /// Sets `max_tokens` of each description.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = n;
        self
    }

    /// Sets how many images of one request are described at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets the most image parts per request.
    pub fn max_images(mut self, n: usize) -> Self {
        self.max_images = n;
        self
    }

    /// Sets the largest decoded `data:` image in bytes.
    pub fn max_image_bytes(mut self, n: usize) -> Self {
        self.max_image_bytes = n;
        self
    }

    /// Sets what a failed description does.
    pub fn on_failure(mut self, mode: OnVisionFailure) -> Self {
        self.on_failure = mode;
        self
    }

    /// Sets when to switch to the text model.
    pub fn switch_model(mut self, when: SwitchModel) -> Self {
        self.switch_model = when;
        self
    }

    /// Sets whether vision-model requests without tools pass through untouched.
    pub fn pass_through_vision(mut self, on: bool) -> Self {
        self.pass_through_vision = on;
        self
    }

    /// Sets the streaming keep-alive: on or off, when to commit, how often to send comments.
    pub fn stream_keepalive(mut self, on: bool, after: Duration, interval: Duration) -> Self {
        self.stream_keepalive = on;
        self.keepalive_after_ms = after.as_millis().try_into().unwrap_or(u64::MAX);
        self.keepalive_interval_secs = interval.as_secs();
        self
    }

    /// Decides by `table` which models see images (passed natively) and keeps the client's
    /// model when images are described.
    pub fn model_table(mut self, table: Arc<ModelTable>) -> Self {
        self.models = Some(table);
        self
    }

    /// Sets the accepted image types (`None`: any).
    pub fn image_types(mut self, types: Option<Vec<String>>) -> Self {
        self.image_types = types;
        self
    }

    /// Whether images are passed to `model` natively: it sees them by the model table.
    pub fn sees_images(&self, model: &str) -> bool {
        self.models.as_ref().is_some_and(|t| t.sees_images(model))
    }

    /// Turns the cascade on or off.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Whether `model` can take images: the configured vision model, or any model whose name
    /// contains `vision` (Hunyuan's naming, R8).
    pub fn is_vision_model(&self, model: &str) -> bool {
        model == self.vision_model || model.contains("vision")
    }

    /// The description cache's settings, given the top-level cache keys.
    pub fn cache_config(&self, max_entries: usize, ttl: Duration, log: bool) -> CacheConfig {
        CacheConfig::default()
            .max_entries(max_entries)
            .max_bytes(self.cache_max_bytes)
            .ttl(ttl)
            .wait(Duration::from_secs(self.cache_wait_secs))
            .log_outcomes(log)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), CascadeConfigError> {
        let invalid = |key, problem: &str| {
            Err(CascadeConfigError {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.vision_model.trim().is_empty() {
            return invalid("vision_model", "must not be empty");
        }
        if self.text_model.trim().is_empty() {
            return invalid("text_model", "must not be empty");
        }
        if self.prompt.trim().is_empty() {
            return invalid("cascade.prompt", "must not be empty");
        }
        if self.max_tokens == 0 {
            return invalid("cascade.max_tokens", "must be at least 1");
        }
        if self.concurrency == 0 {
            return invalid("cascade.concurrency", "must be at least 1");
        }
        if self.max_images == 0 {
            return invalid("cascade.max_images", "must be at least 1");
        }
        if self.max_image_bytes == 0 {
            return invalid("cascade.max_image_bytes", "must be at least 1");
        }
        if self.keepalive_interval_secs == 0 {
            return invalid("cascade.keepalive_interval_secs", "must be at least 1");
        }
        if self.cache_max_bytes == Some(0) {
            return invalid("cascade.cache_max_bytes", "must be at least 1 when set");
        }
        if self.describe_timeout_secs == 0 {
            return invalid("cascade.describe_timeout_secs", "must be at least 1");
        }
        if self.cache_wait_secs == 0 {
            return invalid("cascade.cache_wait_secs", "must be at least 1");
        }
        if self.image_types.as_ref().is_some_and(|t| t.is_empty()) {
            return invalid(
                "cascade.image_types",
                "must name at least one type when set",
            );
        }
        Ok(())
    }

    /// `describe_timeout_secs` as a duration.
    pub fn describe_timeout(&self) -> Duration {
        Duration::from_secs(self.describe_timeout_secs)
    }

    pub(crate) fn keepalive_after(&self) -> Duration {
        Duration::from_millis(self.keepalive_after_ms)
    }

    pub(crate) fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(self.keepalive_interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_parse_from_toml() {
        assert!(CascadeConfig::default().validate().is_ok());
        let c: CascadeConfig =
            toml::from_str("on_failure = \"degrade\"\nswitch_model = \"when_not_vision\"").unwrap();
        assert_eq!(c.on_failure, OnVisionFailure::Degrade);
        assert_eq!(c.switch_model, SwitchModel::WhenNotVision);
        assert_eq!(c.max_images, 20);
        assert!(toml::from_str::<CascadeConfig>("vision_model = \"x\"").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let err = CascadeConfig::default()
            .concurrency(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("cascade.concurrency"), "{err}");
        let err = CascadeConfig::default()
            .models("", "t")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("vision_model"), "{err}");
    }

    #[test]
    fn vision_models_are_recognised() {
        let c = CascadeConfig::default().models("my-eyes", "my-text");
        assert!(c.is_vision_model("my-eyes"));
        assert!(c.is_vision_model("hunyuan-turbos-vision"));
        assert!(!c.is_vision_model("my-text"));
    }
}
