//! TokenHub mode ([`MockConfig::tokenhub`](super::MockConfig::tokenhub)): the per-model rules of
//! `spec/tokenhub.md`, TokenHub's error envelope and texts, images ignored by text-only models
//! (the table is on [`validate_tokenhub`]).

use super::answer::{answer_as, Answer, Voice};
use super::validate::{decode_data_url, hex, Rejection};
use super::MockPolicy;
use http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The models a TokenHub-mode mock serves by default (`spec/tokenhub.md`, December 2026).
pub const TOKENHUB_MODELS: &[&str] = &[
    "hy4",
    "hy4-flash",
    "hy3",
    "hy-vision-2.0-instruct",
    "hunyuan-t1-vision-20250916",
    "deepseek-v4-flash",
    "deepseek-v4-pro",
    "deepseek/deepseek-flash",
    "glm-5.2",
    "glm-5.3",
    "glm-5.3-flash",
    "kimi-k2.6",
    "kimi-k3",
    "minimax-m3",
];

/// 401 (TokenHub's text).
pub const MSG_INVALID_KEY: &str = "invalid api key";
/// 402: the model is not enabled (paid for) for this key (TokenHub's text).
pub const MSG_NOT_ENABLED: &str = "endpoint is inactive: FREE_QUOTA_EXHAUSTED";
/// 429 (TokenHub's text).
pub const MSG_RATE_LIMITED: &str = "rate limit exceeded on dimension: rpm";
/// 451 (TokenHub's text).
pub const MSG_FILTERED: &str = "content was filtered by safety policy";
/// DeepSeek V4's reasoning-replay refusal (verbatim).
pub const MSG_DEEPSEEK_REPLAY: &str =
    "The `reasoning_content` in the thinking mode must be passed back to the API.";
/// MiniMax's refusal of `thinking.type: "enabled"` (verbatim).
pub const MSG_MINIMAX_THINKING: &str =
    "invalid params, invalid thinking.type: \"enabled\" (allowed: adaptive, disabled) (2013)";
/// A forced `tool_choice` to DeepSeek while thinking is on (text invented).
pub const MSG_TOOL_CHOICE_THINKING: &str =
    "invalid parameter 'tool_choice': only \"auto\" and \"none\" are supported in thinking mode";
/// A `tool_choice` other than `auto` to `hy3` (text invented).
pub const MSG_TOOL_CHOICE_AUTO_ONLY: &str =
    "invalid parameter 'tool_choice': only \"auto\" is supported";
/// `kimi-k3` with a `reasoning_effort` other than `max` (text invented).
pub const MSG_KIMI_K3_EFFORT: &str =
    "invalid parameter 'reasoning_effort': only \"max\" is supported";
/// More than 4 stop sequences (text invented).
pub const MSG_TOO_MANY_STOPS: &str = "invalid parameter 'stop': at most 4 sequences are allowed";
/// An image that is not JPG, PNG or WebP, or not an http(s) or data URL (text invented).
pub const MSG_IMAGE_FORMAT: &str =
    "invalid parameter 'image_url': only JPG, PNG and WebP images by http(s) or data URL are supported";
/// An image over 10 MB (text invented).
pub const MSG_IMAGE_TOO_LARGE: &str = "invalid parameter 'image_url': an image exceeds 10 MB";
/// More than 20 images in one request (text invented).
pub const MSG_TOO_MANY_IMAGES: &str =
    "invalid parameter 'messages': at most 20 images per request are allowed";
/// What a model that cannot see appends to an answer to a request with images.
pub const SAW_NO_IMAGE: &str = "(I saw no image.)";

/// The most bytes of one image.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// The most images in one request.
pub const MAX_IMAGES: usize = 20;
/// The most `stop` sequences.
pub const MAX_STOPS: usize = 4;

/// Kimi K2's reasoning-replay refusal for the assistant message at `index` (verbatim form).
pub fn kimi_replay_message(index: usize) -> String {
    format!("thinking is enabled but reasoning_content is missing in assistant tool call message at index {index}")
}

/// The `developer`-role refusal of DeepSeek and GLM for the message at `index` (verbatim form).
pub fn developer_role_message(index: usize) -> String {
    format!(
        "Failed to deserialize the JSON body into the target type: messages[{index}].role: \
         unknown variant `developer`, expected one of `system`, `user`, `assistant`, `tool`"
    )
}

/// `kimi-k3`'s refusal of a sampling parameter (text invented).
pub fn kimi_k3_sampling_message(name: &str) -> String {
    format!("invalid parameter '{name}': not supported by this model")
}

/// The hy family's refusal of an unknown `reasoning_effort` (TokenHub's form, assumed).
pub fn hy_effort_message(effort: &str) -> String {
    format!(
        "unknown variant `{effort}`, expected one of `none`, `minimal`, `low`, `medium`, `high`"
    )
}

/// Which TokenHub models a mock in TokenHub mode serves, and which of them are not enabled for
/// the key (402) or not deployed (`status: "offline"` in `/v1/models`, 400 on chat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenHubMode {
    /// Models answered with 402 [`MSG_NOT_ENABLED`] (listed `online` by `/v1/models`).
    pub disabled_models: Vec<String>,
    /// Models listed with `status: "offline"` and refused on chat.
    pub offline_models: Vec<String>,
}

/// A model family, for the rules that follow the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hy,
    DeepSeek,
    Glm,
    Kimi,
    KimiK3,
    MiniMax,
    Other,
}

/// What the mock knows of a TokenHub model.
#[derive(Debug, Clone, Copy)]
struct Model {
    family: Family,
    sees_images: bool,
    thinks_by_default: bool,
}

fn model(id: &str) -> Model {
    let (family, sees_images, thinks_by_default) = match id {
        "hy4" | "hy4-flash" => (Family::Hy, true, true),
        "hy-vision-2.0-instruct" => (Family::Hy, true, false),
        "hunyuan-t1-vision-20250916" => (Family::Hy, true, true),
        "deepseek/deepseek-flash" => (Family::DeepSeek, true, true),
        "glm-5.3-flash" => (Family::Glm, true, true),
        "kimi-k2.6" => (Family::Kimi, true, true),
        "kimi-k3" => (Family::KimiK3, false, true),
        "minimax-m3" => (Family::MiniMax, false, true),
        m if m.starts_with("hy") => (Family::Hy, false, true),
        m if m.starts_with("deepseek") => (Family::DeepSeek, false, true),
        m if m.starts_with("glm") => (Family::Glm, false, true),
        m if m.starts_with("kimi") => (Family::Kimi, false, true),
        _ => (Family::Other, false, false),
    };
    Model {
        family,
        sees_images,
        thinks_by_default,
    }
}

/// Whether thinking is on for this request to `model`.
fn thinking_on(body: &Value, model: &Model) -> bool {
    match body.pointer("/thinking/type").and_then(Value::as_str) {
        Some("disabled") => false,
        Some(_) => true,
        None => match body.get("reasoning_effort").and_then(Value::as_str) {
            Some("none") if model.family == Family::Hy => false,
            _ => model.thinks_by_default,
        },
    }
}

/// TokenHub's error envelope with `status` and `message`; `type` and `code` follow the status
/// (the table of `spec/tokenhub.md`), `request_id` is derived from `seed` and the message.
pub fn tokenhub_rejection(
    status: StatusCode,
    message: impl Into<String>,
    seed: &[u8],
) -> Rejection {
    let message = message.into();
    let (error_type, code, source) = match status.as_u16() {
        400 => ("invalid_request_error", "400001", "gateway"),
        401 => ("authentication_error", "401002", "gateway"),
        402 => ("permission_error", "401007", "gateway"),
        404 => ("invalid_request_error", "404001", "gateway"),
        429 => ("rate_limit_error", "429001", "gateway"),
        451 => ("content_filter_error", "451001", "upstream"),
        502 => ("upstream_error", "502001", "upstream"),
        _ => ("api_error", "500001", "gateway"),
    };
    let mut hasher = Sha256::new();
    hasher.update(seed);
    hasher.update(message.as_bytes());
    let request_id = hex(&hasher.finalize()[..16]);
    Rejection {
        status,
        body: json!({
            "error": {
                "type": error_type,
                "code": code,
                "message": message,
                "source": source,
                "upstream_code": null,
                "upstream_status": null,
                "request_id": request_id,
            }
        }),
    }
}

/// The text TokenHub answers a fault `status` with (the mock's own line for others).
pub(crate) fn fault_message(status: StatusCode) -> String {
    match status.as_u16() {
        401 => MSG_INVALID_KEY.to_owned(),
        402 => MSG_NOT_ENABLED.to_owned(),
        429 => MSG_RATE_LIMITED.to_owned(),
        451 => MSG_FILTERED.to_owned(),
        code => format!("mock fault: status {code}"),
    }
}

/// Checks `body` against TokenHub's per-model rules, as a mock in TokenHub mode does. The model
/// list, the key and the enabled models are the server's business, not this function's.
///
/// Every refusal is TokenHub's envelope
/// `{"error":{"type","code","message","source","upstream_code","upstream_status","request_id"}}`
/// (`code` a numeric string, `request_id` derived from the request). What is refused:
///
/// | status | when | message |
/// |---|---|---|
/// | 401 | no or a wrong `Authorization: Bearer` key | [`MSG_INVALID_KEY`] |
/// | 400 | a model the mock does not serve, or one configured offline | `invalid parameter 'model': …` |
/// | 402 | a model configured as not enabled for the key | [`MSG_NOT_ENABLED`] |
/// | 400 | DeepSeek V4 with thinking on: an assistant turn with `tool_calls` and no non-empty `reasoning_content` | [`MSG_DEEPSEEK_REPLAY`] |
/// | 400 | `kimi-k2.6` with thinking on, the same | [`kimi_replay_message`] |
/// | 400 | a `developer` message to a DeepSeek or GLM model | [`developer_role_message`] |
/// | 400 | `tool_choice` `"required"` or a named function to DeepSeek with thinking on; anything but `"auto"` to `hy3` | [`MSG_TOOL_CHOICE_THINKING`], [`MSG_TOOL_CHOICE_AUTO_ONLY`] |
/// | 400 | `thinking.type: "enabled"` to `minimax-m3` | [`MSG_MINIMAX_THINKING`] |
/// | 400 | `kimi-k3`: `reasoning_effort` other than `max`; `temperature`, `top_p` or a penalty | [`MSG_KIMI_K3_EFFORT`], [`kimi_k3_sampling_message`] |
/// | 400 | the hy family: `reasoning_effort` outside none/minimal/low/medium/high | [`hy_effort_message`] |
/// | 400 | more than 4 `stop` sequences | [`MSG_TOO_MANY_STOPS`] |
/// | 400 | a model that sees images: not JPG/PNG/WebP, over 10 MB, over 20 images, not a URL or data URL | [`MSG_IMAGE_FORMAT`], [`MSG_IMAGE_TOO_LARGE`], [`MSG_TOO_MANY_IMAGES`] |
/// | 429 / 451 | injected with [`Fault::RateLimited`](super::Fault) / [`Fault::Status(451)`](super::Fault) | [`MSG_RATE_LIMITED`], [`MSG_FILTERED`] |
///
/// The texts of the 400s for `model`, `tool_choice`, `kimi-k3`, the image limits and `stop` are
/// invented (TokenHub's are not published); the others are TokenHub's or the vendor's, as
/// `spec/tokenhub.md` quotes them.
///
/// Models that cannot see (`hy3`, DeepSeek V4, `glm-5.2`, `glm-5.3`, `kimi-k3`, `minimax-m3`)
/// **ignore** images, as TokenHub does (silently for `hy3`): the request is answered as if the
/// image parts were not there, and the answer ends with [`SAW_NO_IMAGE`], so a test sees that a
/// description was needed. The recorded request still holds the images.
///
/// Answers: a thinking model (thinking on by default for every model here except
/// `hy-vision-2.0-instruct`; off with `thinking: {"type": "disabled"}` or, for the hy family,
/// `reasoning_effort: "none"`) carries `reasoning_content`; usage carries
/// `prompt_tokens_details.cached_tokens` (every message but the last) and
/// `completion_tokens_details.reasoning_tokens`; a stream ends with a usage chunk only when
/// `stream_options.include_usage` is `true`.
pub fn validate_tokenhub(body: &Value) -> Result<(), Rejection> {
    let reject = |message: String| {
        Err(tokenhub_rejection(
            StatusCode::BAD_REQUEST,
            message,
            &serde_json::to_vec(body).unwrap_or_default(),
        ))
    };
    let Some(obj) = body.as_object() else {
        return reject("invalid request body: expected a JSON object".into());
    };
    let id = match obj.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m,
        _ => return reject("invalid parameter 'model': model is required".into()),
    };
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return reject("invalid parameter 'messages': messages is required".into());
    };
    if messages.is_empty() {
        return reject("invalid parameter 'messages': messages must not be empty".into());
    }
    let model = model(id);
    let thinking = thinking_on(body, &model);

    if model.family == Family::MiniMax
        && body.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled")
    {
        return reject(MSG_MINIMAX_THINKING.into());
    }
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "developer" && matches!(model.family, Family::DeepSeek | Family::Glm) {
            return reject(developer_role_message(i));
        }
        let calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        let replayed = message
            .get("reasoning_content")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty());
        if role == "assistant" && calls && !replayed && thinking {
            match model.family {
                Family::DeepSeek => return reject(MSG_DEEPSEEK_REPLAY.into()),
                Family::Kimi => return reject(kimi_replay_message(i)),
                _ => {}
            }
        }
    }
    match (obj.get("tool_choice"), model.family) {
        (None | Some(Value::Null), _) => {}
        (Some(Value::String(c)), Family::Hy) if c == "auto" => {}
        (Some(_), Family::Hy) if id.starts_with("hy3") => {
            return reject(MSG_TOOL_CHOICE_AUTO_ONLY.into())
        }
        (Some(Value::String(c)), Family::DeepSeek) if c == "auto" || c == "none" => {}
        (Some(_), Family::DeepSeek) if thinking => return reject(MSG_TOOL_CHOICE_THINKING.into()),
        _ => {}
    }
    let effort = obj.get("reasoning_effort").filter(|v| !v.is_null());
    match model.family {
        Family::KimiK3 => {
            if effort.is_some_and(|e| e.as_str() != Some("max")) {
                return reject(MSG_KIMI_K3_EFFORT.into());
            }
            for name in [
                "temperature",
                "top_p",
                "presence_penalty",
                "frequency_penalty",
            ] {
                if obj.get(name).is_some_and(|v| !v.is_null()) {
                    return reject(kimi_k3_sampling_message(name));
                }
            }
        }
        Family::Hy => {
            if let Some(effort) = effort {
                let word = effort.as_str().unwrap_or_default();
                if !matches!(word, "none" | "minimal" | "low" | "medium" | "high") {
                    return reject(hy_effort_message(&effort.to_string().replace('"', "")));
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(stops)) = obj.get("stop") {
        if stops.len() > MAX_STOPS {
            return reject(MSG_TOO_MANY_STOPS.into());
        }
    }
    if model.sees_images {
        let urls: Vec<&str> = messages.iter().flat_map(image_urls).collect();
        if urls.len() > MAX_IMAGES {
            return reject(MSG_TOO_MANY_IMAGES.into());
        }
        for url in urls {
            check_image(url).or_else(|message| reject(message.into()))?;
        }
    }
    Ok(())
}

/// The image URLs of one message's content parts.
fn image_urls(message: &Value) -> Vec<&str> {
    let Some(parts) = message.get("content").and_then(Value::as_array) else {
        return Vec::new();
    };
    parts
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
        .map(|p| match p.get("image_url") {
            Some(Value::Object(o)) => o.get("url").and_then(Value::as_str).unwrap_or(""),
            Some(Value::String(s)) => s.as_str(),
            _ => "",
        })
        .collect()
}

/// An image TokenHub takes: an http(s) URL, or a JPG/PNG/WebP data URL of at most 10 MB.
fn check_image(url: &str) -> Result<(), &'static str> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    let mime = url
        .strip_prefix("data:image/")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or("");
    if !matches!(mime, "jpeg" | "jpg" | "png" | "webp") {
        return Err(MSG_IMAGE_FORMAT);
    }
    match decode_data_url(url) {
        None => Err(MSG_IMAGE_FORMAT),
        Some(bytes) if bytes.len() > MAX_IMAGE_BYTES => Err(MSG_IMAGE_TOO_LARGE),
        Some(_) => Ok(()),
    }
}

/// The answer of a TokenHub model to a valid request: images removed first for a model that
/// cannot see (and [`SAW_NO_IMAGE`] appended when there were any), `reasoning_content` while
/// thinking is on, usage details.
pub(crate) fn answer(body: &Value) -> Answer {
    let id = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let model = model(id);
    let voice = Voice {
        sees_images: model.sees_images,
        reasons: thinking_on(body, &model),
    };
    if model.sees_images {
        return answer_as(body, MockPolicy::TokenHub, voice);
    }
    let mut seen = body.clone();
    let mut ignored = 0;
    if let Some(messages) = seen.get_mut("messages").and_then(Value::as_array_mut) {
        for message in messages {
            if let Some(parts) = message.get_mut("content").and_then(Value::as_array_mut) {
                let before = parts.len();
                parts.retain(|p| p.get("type").and_then(Value::as_str) != Some("image_url"));
                ignored += before - parts.len();
            }
        }
    }
    let mut answer = answer_as(&seen, MockPolicy::TokenHub, voice);
    if ignored > 0 {
        answer.content.push(' ');
        answer.content.push_str(SAW_NO_IMAGE);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_and_the_proxys_model_table_agree_on_who_sees_images() {
        // The mock plays TokenHub from its own facts; the proxy decides from its model table
        // (through the cascade's `VisionModels`). They must agree on every model it serves.
        let proxy = crate::Config::default().cascade_config().vision_models();
        for id in TOKENHUB_MODELS {
            assert_eq!(model(id).sees_images, proxy.sees_images(id), "{id}");
        }
    }

    fn refused(body: Value) -> Rejection {
        validate_tokenhub(&body).expect_err(&format!("{body} should be refused"))
    }

    fn accepted(body: Value) {
        if let Err(r) = validate_tokenhub(&body) {
            panic!("{body} should pass, got {r}");
        }
    }

    fn tool_turn(reasoning: Option<&str>) -> Value {
        let mut assistant = json!({"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}
        ]});
        if let Some(r) = reasoning {
            assistant["reasoning_content"] = json!(r);
        }
        json!([
            {"role": "user", "content": "list files"},
            assistant,
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
        ])
    }

    fn assert_envelope(r: &Rejection, status: u16, message: &str) {
        assert_eq!(r.status.as_u16(), status);
        assert_eq!(r.message(), message);
        let error = &r.body["error"];
        for field in ["type", "code", "source", "request_id"] {
            assert!(error[field].is_string(), "{field} missing in {error}");
        }
        assert!(error.get("upstream_code").is_some() && error.get("upstream_status").is_some());
    }

    #[test]
    fn deepseek_and_kimi_refuse_a_tool_turn_without_its_reasoning_while_thinking() {
        let r = refused(json!({"model": "deepseek-v4-flash", "messages": tool_turn(None)}));
        assert_envelope(&r, 400, MSG_DEEPSEEK_REPLAY);
        assert_eq!(r.code(), "400001");
        let r = refused(json!({"model": "deepseek-v4-pro", "messages": tool_turn(Some(""))}));
        assert_eq!(r.message(), MSG_DEEPSEEK_REPLAY);
        let r = refused(json!({"model": "kimi-k2.6", "messages": tool_turn(None)}));
        assert_envelope(&r, 400, &kimi_replay_message(1));
        accepted(
            json!({"model": "deepseek-v4-flash", "messages": tool_turn(Some("I should list"))}),
        );
        accepted(
            json!({"model": "deepseek-v4-flash", "messages": tool_turn(None), "thinking": {"type": "disabled"}}),
        );
        accepted(json!({"model": "hy3", "messages": tool_turn(None)}));
    }

    #[test]
    fn deepseek_and_glm_refuse_the_developer_role() {
        let messages = json!([{"role": "system", "content": "s"}, {"role": "developer", "content": "d"}, {"role": "user", "content": "u"}]);
        for model in ["deepseek-v4-flash", "glm-5.2"] {
            let r = refused(json!({"model": model, "messages": messages}));
            assert_envelope(&r, 400, &developer_role_message(1));
        }
        assert!(developer_role_message(1).contains("messages[1].role: unknown variant `developer`"));
        accepted(json!({"model": "hy4", "messages": messages}));
    }

    #[test]
    fn forced_tool_choice_is_refused_by_thinking_deepseek_and_anything_but_auto_by_hy3() {
        let user = json!([{"role": "user", "content": "u"}]);
        for choice in [
            json!("required"),
            json!({"type": "function", "function": {"name": "Bash"}}),
        ] {
            let r = refused(
                json!({"model": "deepseek-v4-flash", "messages": user, "tool_choice": choice}),
            );
            assert_envelope(&r, 400, MSG_TOOL_CHOICE_THINKING);
            accepted(
                json!({"model": "deepseek-v4-flash", "messages": user, "tool_choice": choice, "thinking": {"type": "disabled"}}),
            );
            accepted(json!({"model": "hy4", "messages": user, "tool_choice": choice}));
        }
        for choice in ["required", "none"] {
            let r = refused(json!({"model": "hy3", "messages": user, "tool_choice": choice}));
            assert_envelope(&r, 400, MSG_TOOL_CHOICE_AUTO_ONLY);
        }
        accepted(json!({"model": "hy3", "messages": user, "tool_choice": "auto"}));
        accepted(json!({"model": "deepseek-v4-flash", "messages": user, "tool_choice": "auto"}));
    }

    #[test]
    fn minimax_refuses_thinking_enabled() {
        let user = json!([{"role": "user", "content": "u"}]);
        let r = refused(
            json!({"model": "minimax-m3", "messages": user, "thinking": {"type": "enabled"}}),
        );
        assert_envelope(&r, 400, MSG_MINIMAX_THINKING);
        for kind in ["adaptive", "disabled"] {
            accepted(json!({"model": "minimax-m3", "messages": user, "thinking": {"type": kind}}));
        }
    }

    #[test]
    fn kimi_k3_takes_only_max_effort_and_no_sampling_parameters() {
        let user = json!([{"role": "user", "content": "u"}]);
        let r = refused(json!({"model": "kimi-k3", "messages": user, "reasoning_effort": "high"}));
        assert_envelope(&r, 400, MSG_KIMI_K3_EFFORT);
        for name in [
            "temperature",
            "top_p",
            "presence_penalty",
            "frequency_penalty",
        ] {
            let r = refused(json!({"model": "kimi-k3", "messages": user, name: 0.5}));
            assert_envelope(&r, 400, &kimi_k3_sampling_message(name));
        }
        accepted(
            json!({"model": "kimi-k3", "messages": user, "reasoning_effort": "max", "max_completion_tokens": 100}),
        );
        accepted(json!({"model": "kimi-k2.6", "messages": user, "temperature": 0.5}));
    }

    #[test]
    fn the_hy_family_knows_five_efforts() {
        let user = json!([{"role": "user", "content": "u"}]);
        for effort in ["none", "minimal", "low", "medium", "high"] {
            accepted(json!({"model": "hy4", "messages": user, "reasoning_effort": effort}));
        }
        for model in ["hy3", "hy4", "hy4-flash"] {
            let r = refused(json!({"model": model, "messages": user, "reasoning_effort": "xhigh"}));
            assert_envelope(&r, 400, &hy_effort_message("xhigh"));
        }
        assert_eq!(
            hy_effort_message("xhigh"),
            "unknown variant `xhigh`, expected one of `none`, `minimal`, `low`, `medium`, `high`"
        );
    }

    #[test]
    fn at_most_four_stop_sequences() {
        let user = json!([{"role": "user", "content": "u"}]);
        accepted(json!({"model": "glm-5.2", "messages": user, "stop": ["a", "b", "c", "d"]}));
        let r = refused(
            json!({"model": "glm-5.2", "messages": user, "stop": ["a", "b", "c", "d", "e"]}),
        );
        assert_envelope(&r, 400, MSG_TOO_MANY_STOPS);
    }

    fn image_message(urls: &[String]) -> Value {
        let mut parts = vec![json!({"type": "text", "text": "what is this?"})];
        parts.extend(
            urls.iter()
                .map(|u| json!({"type": "image_url", "image_url": {"url": u}})),
        );
        json!([{"role": "user", "content": parts}])
    }

    fn data_url(mime: &str, bytes: usize) -> String {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(vec![0u8; bytes]);
        format!("data:image/{mime};base64,{data}")
    }

    #[test]
    fn vision_models_take_jpg_png_webp_up_to_10_mb_and_20_images() {
        let ok: Vec<String> = ["png", "jpeg", "jpg", "webp"]
            .iter()
            .map(|m| data_url(m, 16))
            .chain(["https://example.com/a.gif".to_owned()])
            .collect();
        accepted(json!({"model": "hy4", "messages": image_message(&ok)}));
        let r = refused(json!({"model": "hy4", "messages": image_message(&[data_url("gif", 16)])}));
        assert_envelope(&r, 400, MSG_IMAGE_FORMAT);
        let r = refused(
            json!({"model": "hy4-flash", "messages": image_message(&["file:///a.png".to_owned()])}),
        );
        assert_eq!(r.message(), MSG_IMAGE_FORMAT);
        let r = refused(
            json!({"model": "kimi-k2.6", "messages": image_message(&[data_url("png", MAX_IMAGE_BYTES + 1)])}),
        );
        assert_envelope(&r, 400, MSG_IMAGE_TOO_LARGE);
        let many = vec![data_url("png", 4); MAX_IMAGES + 1];
        let r = refused(json!({"model": "hy4", "messages": image_message(&many)}));
        assert_envelope(&r, 400, MSG_TOO_MANY_IMAGES);
        accepted(json!({"model": "hy4", "messages": image_message(&many[..MAX_IMAGES])}));
    }

    #[test]
    fn text_only_models_ignore_images_and_say_they_saw_none() {
        let gif = vec![data_url("gif", 16), data_url("png", 16)];
        for model in [
            "hy3",
            "deepseek-v4-flash",
            "glm-5.2",
            "kimi-k3",
            "minimax-m3",
        ] {
            let body = json!({"model": model, "messages": image_message(&gif)});
            accepted(body.clone());
            let answer = answer(&body);
            assert_eq!(
                answer.content,
                format!("Echo: what is this? {SAW_NO_IMAGE}"),
                "{model}"
            );
            assert!(!answer.content.contains("Description of image"));
        }
        let body = json!({"model": "hy4", "messages": image_message(&[data_url("png", 16)])});
        let seen = answer(&body);
        assert!(
            seen.content.starts_with("Description of image "),
            "{}",
            seen.content
        );
        assert!(!seen.content.contains(SAW_NO_IMAGE));
    }

    #[test]
    fn thinking_models_reason_unless_turned_off_and_usage_has_its_details() {
        let user = json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}, {"role": "user", "content": "again"}]);
        let on = answer(&json!({"model": "deepseek-v4-flash", "messages": user}));
        assert_eq!(on.reasoning.as_deref(), Some("Thinking about: again"));
        let body = on.completion(0);
        assert_eq!(
            body["choices"][0]["message"]["reasoning_content"],
            "Thinking about: again"
        );
        let usage = &body["usage"];
        assert!(
            usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert!(
            usage["completion_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
        let off = answer(
            &json!({"model": "deepseek-v4-flash", "messages": user, "thinking": {"type": "disabled"}}),
        );
        assert!(off.reasoning.is_none());
        assert_eq!(
            off.completion(0)["usage"]["completion_tokens_details"]["reasoning_tokens"],
            0
        );
        let none = answer(&json!({"model": "hy4", "messages": user, "reasoning_effort": "none"}));
        assert!(none.reasoning.is_none());
    }

    #[test]
    fn streams_carry_usage_only_when_asked() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let has_usage = |body: Value| {
            answer(&body)
                .events(0)
                .iter()
                .any(|e| std::str::from_utf8(e).unwrap().contains("\"usage\""))
        };
        assert!(!has_usage(
            json!({"model": "hy4", "messages": user, "stream": true})
        ));
        assert!(has_usage(
            json!({"model": "hy4", "messages": user, "stream": true, "stream_options": {"include_usage": true}})
        ));
    }

    #[test]
    fn the_envelope_follows_the_status() {
        let r = tokenhub_rejection(StatusCode::PAYMENT_REQUIRED, MSG_NOT_ENABLED, b"x");
        assert_eq!(r.error_type(), "permission_error");
        assert_eq!(r.code(), "401007");
        let r = tokenhub_rejection(StatusCode::from_u16(451).unwrap(), MSG_FILTERED, b"x");
        assert_eq!(r.error_type(), "content_filter_error");
        assert_eq!(r.body["error"]["source"], "upstream");
    }
}
