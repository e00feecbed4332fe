//! [`CascadeConfig`]: how the image cascade behaves (TOML table `[cascade]`).

use crate::cache::CacheConfig;
use crate::error::InvalidConfig;
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

/// Which models see images: the one answer the fixer ([`Rule::ContentShape`]), the cascade and
/// the mock share (build it with [`CascadeConfig::vision_models`]).
///
/// With a model table (the TokenHub presets) a model sees images when its profile says so
/// (after retirements); without one (the legacy platform) when it is the configured vision
/// model or its name contains `vision`, Hunyuan's naming (R8).
///
/// ```
/// use hunyuan_proxy::cascade::{CascadeConfig, VisionModels};
///
/// assert!(VisionModels::default().sees_images("hunyuan-vision-1.5-instruct"));
/// assert!(!VisionModels::default().sees_images("hunyuan-2.0-thinking-20251109"));
/// let legacy = CascadeConfig::default().models("my-eyes", "my-text").vision_models();
/// assert!(legacy.sees_images("my-eyes") && !legacy.sees_images("my-text"));
/// ```
///
/// [`Rule::ContentShape`]: crate::fix::Rule::ContentShape
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VisionModels {
    table: Option<Arc<ModelTable>>,
    vision_model: Option<String>,
}

impl VisionModels {
    /// By the model table: a model sees images when its profile says so.
    pub fn by_table(table: Arc<ModelTable>) -> Self {
        VisionModels {
            table: Some(table),
            vision_model: None,
        }
    }

    /// By the legacy naming: `vision_model`, or any name containing `vision`.
    pub fn by_name(vision_model: impl Into<String>) -> Self {
        VisionModels {
            table: None,
            vision_model: Some(vision_model.into()),
        }
    }

    /// Whether images are passed to `model` as they are.
    pub fn sees_images(&self, model: &str) -> bool {
        sees_images(self.table.as_deref(), self.vision_model.as_deref(), model)
    }
}

/// The rule itself, written once: by `table` when there is one, else `vision_model` or a name
/// containing `vision`.
fn sees_images(table: Option<&ModelTable>, vision_model: Option<&str>, model: &str) -> bool {
    match table {
        Some(table) => table.sees_images(model),
        None => vision_model == Some(model) || model.contains("vision"),
    }
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

    /// Which models see images: by the model table when there is one, else by the legacy
    /// naming (`vision_model`, or a name containing `vision`).
    pub fn vision_models(&self) -> VisionModels {
        match &self.models {
            Some(table) => VisionModels::by_table(table.clone()),
            None => VisionModels::by_name(self.vision_model.clone()),
        }
    }

    /// Whether `model` sees images ([`vision_models`](Self::vision_models)): its images are
    /// passed to it as they are (with a model table, tools or not; without one, only with
    /// `pass_through_vision` and no tools), and `switch_model = "when_not_vision"` keeps it.
    pub fn sees_images(&self, model: &str) -> bool {
        sees_images(self.models.as_deref(), Some(&self.vision_model), model)
    }

    /// Turns the cascade on or off.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
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

    /// Checks every field; the error names the first bad one by its field (`concurrency`,
    /// `vision_model`; the server names its keys: `cascade.concurrency`). The description
    /// cache's fields (`cache_max_bytes`, `cache_wait_secs`) are the
    /// [`CacheConfig`]'s to check ([`cache_config`](Self::cache_config)).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |field: &str, problem: &str| Err(InvalidConfig::new(field, problem));
        if self.vision_model.trim().is_empty() {
            return invalid("vision_model", "must not be empty");
        }
        if self.text_model.trim().is_empty() {
            return invalid("text_model", "must not be empty");
        }
        if self.prompt.trim().is_empty() {
            return invalid("prompt", "must not be empty");
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens", "must be at least 1");
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        if self.max_images == 0 {
            return invalid("max_images", "must be at least 1");
        }
        if self.max_image_bytes == 0 {
            return invalid("max_image_bytes", "must be at least 1");
        }
        if self.keepalive_interval_secs == 0 {
            return invalid("keepalive_interval_secs", "must be at least 1");
        }
        if self.describe_timeout_secs == 0 {
            return invalid("describe_timeout_secs", "must be at least 1");
        }
        if self.image_types.as_ref().is_some_and(|t| t.is_empty()) {
            return invalid("image_types", "must name at least one type when set");
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
        // The layer names its own field; the server's config adds the table (`cascade.`).
        assert_eq!(err.field, "concurrency", "{err}");
        let err = CascadeConfig::default()
            .models("", "t")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("vision_model"), "{err}");
    }

    #[test]
    fn vision_models_are_recognised() {
        let c = CascadeConfig::default().models("my-eyes", "my-text");
        assert!(c.sees_images("my-eyes"));
        assert!(c.sees_images("hunyuan-turbos-vision"));
        assert!(!c.sees_images("my-text"));
        for model in ["my-eyes", "hunyuan-turbos-vision", "my-text"] {
            assert_eq!(c.vision_models().sees_images(model), c.sees_images(model));
        }
    }
}
