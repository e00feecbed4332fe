//! The request validator: Hunyuan's rules R1–R12 (see `docs/hunyuan-api.md`) over the raw JSON
//! body.
//!
//! The validator works on [`serde_json::Value`] rather than the crate's typed model on purpose:
//! it judges exactly what went over the wire, so a bug in the typed model cannot hide a request
//! that Hunyuan would refuse.

use super::MockPolicy;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The R1 message (verbatim from Hunyuan).
pub const MSG_ROLE_ORDER: &str = "messages 中 user（tool） 和 assistant 角色需交替出现 (一问一答)，以 user 提问开始， user（tool）提问结束, tool 可以连续出现多次";
/// The R2 message (verbatim from a client bug report).
pub const MSG_SYSTEM_FIRST: &str = "system 角色必须位于列表的最开始";
/// The R3 message (verbatim from Hunyuan).
pub const MSG_EMPTY_CONTENT: &str = "messages 中 content 不能为空";
/// The R5 message, also used for bodies that are not JSON or have the wrong shape (verbatim).
pub const MSG_BAD_FORMAT: &str = "请求格式有误";

/// Hunyuan's code for a broken message list (verbatim). The mock also uses it for every rule
/// whose real code is unknown.
pub const CODE_INVALID: &str = "1001";
/// Hunyuan's code for a malformed request (R5, verbatim).
pub const CODE_BAD_FORMAT: &str = "4003";

/// The most messages the legacy endpoint takes (R7).
pub const MAX_MESSAGES: usize = 40;

/// Hunyuan refused a request: the status and the exact error envelope it answers with.
///
/// The envelope is `{"error":{"id","message","type","param","code"}}` with `param` always
/// `null` and `code` a numeric *string*. The `id` is 32 hex digits derived from the request and
/// the message, so the same bad request is always refused with the same body.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The HTTP status (400 for every rule).
    pub status: StatusCode,
    /// Hunyuan's error envelope.
    pub body: Value,
}

impl Rejection {
    /// A rejection with a Hunyuan envelope. `seed` feeds the deterministic error id.
    pub fn new(
        status: StatusCode,
        error_type: &str,
        code: &str,
        message: impl Into<String>,
        seed: &[u8],
    ) -> Self {
        let message = message.into();
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(message.as_bytes());
        let id = hex(&hasher.finalize()[..16]);
        Rejection {
            status,
            body: json!({
                "error": {
                    "id": id,
                    "message": message,
                    "type": error_type,
                    "param": null,
                    "code": code,
                }
            }),
        }
    }

    /// The envelope's `error.message`.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    /// The envelope's `error.code` (a numeric string such as `"1001"`).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The envelope's `error.type` (`invalid_request_error` or `runtime_error`).
    pub fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or_default()
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code(), self.message())
    }
}

impl std::error::Error for Rejection {}

impl axum::response::IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Whether the mock treats `model` as a vision model: the legacy platform's answer, the
/// crate's one rule ([`VisionModels`](crate::cascade::VisionModels), by name).
pub(crate) fn is_vision_model(model: &str) -> bool {
    crate::cascade::VisionModels::default().sees_images(model)
}

/// Checks `body` against Hunyuan's request rules, as the mock server does.
///
/// Under [`MockPolicy::Legacy`] every rule R1–R12 of `docs/hunyuan-api.md` is enforced; under
/// [`MockPolicy::TokenHub`] the role-order rule (R1) and the 40-message limit (R7) are off,
/// R4 is inverted (`reasoning_content` in history is accepted) and `reasoning_effort` is
/// accepted; everything else (penalties included) is still refused. Unknown fields (such as
/// TokenHub's `thinking`) are accepted under both policies.
///
/// This function does not know the server's model list: it only checks that `model` is a
/// non-empty string and uses its name for R8 (a name containing `vision` takes images and no
/// tools). The server additionally refuses models it was not configured with.
///
/// What is refused, with status 400 throughout:
///
/// | rule | type | code | message |
/// |---|---|---|---|
/// | not JSON, not an object, a field of the wrong JSON type | `runtime_error` | `4003` | `请求格式有误` (verbatim text; its use for shape errors is an assumption) |
/// | R1 role order | `invalid_request_error` | `1001` | verbatim, see [`MSG_ROLE_ORDER`] |
/// | R2 system not first / twice | `invalid_request_error` | `1001` | `system 角色必须位于列表的最开始` (code assumed) |
/// | R3 empty `content` (`""`, `null`, missing, `[]`, only empty text parts) | `invalid_request_error` | `1001` | `messages 中 content 不能为空` |
/// | R5 `frequency_penalty` / `presence_penalty` present | `runtime_error` | `4003` | `请求格式有误` |
///
/// The texts of the following are **invented** (Hunyuan's are unknown); they all use code
/// `1001` and type `invalid_request_error`: missing model, R4 `reasoning_content` in history,
/// R6 `parallel_tool_calls` / `reasoning_effort` / `tools[].function.strict` (refused here,
/// although the real server's behaviour is unknown, so that the proxy's fixer is exercised),
/// R7 more than 40 messages, R8 images for a non-vision model or tools for a vision model,
/// R9 an image URL that is neither `http(s)://` nor `data:image/<type>;base64,` (or whose
/// base64 does not decode), and a message with images but no text part, R10 the `developer`
/// role, R11 another unknown role or a tool/function name outside `[A-Za-z0-9_-]`, R12
/// `temperature` outside [0, 2], `top_p` outside [0, 1], `seed` outside 1..=10000, and `n`
/// greater than 1.
pub fn validate(body: &Value, policy: MockPolicy) -> Result<(), Rejection> {
    let check = Check { body };
    let Some(obj) = body.as_object() else {
        return Err(check.bad_format());
    };

    // model
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.as_str(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(check.invalid("model 不能为空"))
        }
        Some(_) => return Err(check.bad_format()),
    };

    // R5: penalties, even when 0.
    if obj.contains_key("frequency_penalty") || obj.contains_key("presence_penalty") {
        return Err(check.bad_format());
    }

    // R6: unsupported fields.
    if obj.contains_key("parallel_tool_calls") {
        return Err(check.invalid("不支持的参数: parallel_tool_calls"));
    }
    if policy == MockPolicy::Legacy && obj.contains_key("reasoning_effort") {
        return Err(check.invalid("不支持的参数: reasoning_effort"));
    }

    // n
    if let Some(n) = obj.get("n").filter(|v| !v.is_null()) {
        match n.as_u64() {
            Some(1) => {}
            Some(_) => return Err(check.invalid("n 只支持取值 1")),
            None if n.is_number() => return Err(check.invalid("n 只支持取值 1")),
            None => return Err(check.bad_format()),
        }
    }

    // R12: ranges.
    check.range(obj.get("temperature"), "temperature", 0.0, 2.0)?;
    check.range(obj.get("top_p"), "top_p", 0.0, 1.0)?;
    if let Some(s) = obj.get("seed").filter(|v| !v.is_null()) {
        let Some(s) = s.as_f64() else {
            return Err(check.bad_format());
        };
        if !(1.0..=10000.0).contains(&s) || s.fract() != 0.0 {
            return Err(check.invalid("seed 取值范围为 [1, 10000]"));
        }
    }

    // stop: a string or a list of strings.
    match obj.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => return Err(check.bad_format()),
    }

    // tools: R6 strict, R8 vision, R11 names.
    let vision = is_vision_model(model);
    match obj.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            if vision && !tools.is_empty() {
                return Err(check.invalid(format!("模型 {model} 不支持 tools 参数")));
            }
            for tool in tools {
                let Some(function) = tool.get("function").and_then(Value::as_object) else {
                    return Err(check.bad_format());
                };
                if function.contains_key("strict") {
                    return Err(check.invalid("不支持的参数: tools.function.strict"));
                }
                match function.get("name") {
                    Some(Value::String(name)) => check.tool_name(name)?,
                    _ => return Err(check.bad_format()),
                }
            }
        }
        Some(_) => return Err(check.bad_format()),
    }

    // messages
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return Err(check.bad_format());
    };
    if messages.is_empty() {
        return Err(check.invalid(MSG_ROLE_ORDER));
    }
    if policy == MockPolicy::Legacy && messages.len() > MAX_MESSAGES {
        return Err(check.invalid(format!("messages 数量不能超过 {MAX_MESSAGES} 条")));
    }

    let mut roles = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(check.bad_format());
        };
        let role = match message.get("role") {
            Some(Value::String(role)) => role.as_str(),
            _ => return Err(check.bad_format()),
        };
        match role {
            "system" | "user" | "assistant" | "tool" => {}
            "developer" => return Err(check.invalid("messages 中 role 不支持 developer")),
            other => {
                return Err(check.invalid(format!(
                    "messages 中 role 只能是 system、user、assistant、tool，不支持 {other}"
                )))
            }
        }
        // R2
        if role == "system" && i != 0 {
            return Err(check.invalid(MSG_SYSTEM_FIRST));
        }
        // R4
        if policy == MockPolicy::Legacy && message.contains_key("reasoning_content") {
            return Err(check.invalid("messages 中不能包含 reasoning_content 字段"));
        }
        // R3 and R9
        check.content(message.get("content"), vision, model)?;
        // R11 on assistant tool calls
        if let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) {
            let Some(calls) = calls.as_array() else {
                return Err(check.bad_format());
            };
            for call in calls {
                match call.get("function").and_then(|f| f.get("name")) {
                    Some(Value::String(name)) => check.tool_name(name)?,
                    _ => return Err(check.bad_format()),
                }
            }
        }
        roles.push(role);
    }

    // R1
    if policy == MockPolicy::Legacy && !roles_alternate(&roles) {
        return Err(check.invalid(MSG_ROLE_ORDER));
    }
    Ok(())
}

/// R1: after an optional system message, `user (assistant (user | tool+))*`.
fn roles_alternate(roles: &[&str]) -> bool {
    let rest = match roles.first() {
        Some(&"system") => &roles[1..],
        _ => roles,
    };
    let mut expect_question = true; // a user (or, after an assistant, tools) must come next
    let mut prev = "";
    for (i, &role) in rest.iter().enumerate() {
        match role {
            "user" if expect_question => expect_question = false,
            "tool" if expect_question && i > 0 => expect_question = false,
            "tool" if prev == "tool" => {}
            "assistant" if !expect_question => expect_question = true,
            _ => return false,
        }
        prev = role;
    }
    !rest.is_empty() && !expect_question
}

/// Builds rejections; the request is serialized (for the error id) only when one is needed.
struct Check<'a> {
    body: &'a Value,
}

impl Check<'_> {
    fn seed(&self) -> Vec<u8> {
        serde_json::to_vec(self.body).unwrap_or_default()
    }

    fn invalid(&self, message: impl Into<String>) -> Rejection {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            CODE_INVALID,
            message,
            &self.seed(),
        )
    }

    fn bad_format(&self) -> Rejection {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "runtime_error",
            CODE_BAD_FORMAT,
            MSG_BAD_FORMAT,
            &self.seed(),
        )
    }

    fn range(&self, value: Option<&Value>, name: &str, lo: f64, hi: f64) -> Result<(), Rejection> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let Some(x) = value.as_f64() else {
            return Err(self.bad_format());
        };
        if (lo..=hi).contains(&x) {
            Ok(())
        } else {
            Err(self.invalid(format!("{name} 取值范围为 [{lo}, {hi}]")))
        }
    }

    fn tool_name(&self, name: &str) -> Result<(), Rejection> {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(self.invalid(format!(
                "function.name 只能包含字母、数字、下划线和中划线: {name}"
            )))
        }
    }

    /// R3 (non-empty content) and R8/R9 (image parts).
    fn content(&self, content: Option<&Value>, vision: bool, model: &str) -> Result<(), Rejection> {
        match content {
            None | Some(Value::Null) => Err(self.invalid(MSG_EMPTY_CONTENT)),
            Some(Value::String(text)) if text.is_empty() => Err(self.invalid(MSG_EMPTY_CONTENT)),
            Some(Value::String(_)) => Ok(()),
            Some(Value::Array(parts)) => {
                let mut has_text = false;
                let mut has_nonempty_text = false;
                let mut images = 0usize;
                for part in parts {
                    match part.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            let Some(text) = part.get("text").and_then(Value::as_str) else {
                                return Err(self.bad_format());
                            };
                            has_text = true;
                            has_nonempty_text |= !text.is_empty();
                        }
                        Some("image_url") => {
                            let url = match part.get("image_url") {
                                Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
                                Some(Value::String(s)) => Some(s.as_str()),
                                _ => None,
                            };
                            let Some(url) = url else {
                                return Err(self.bad_format());
                            };
                            if !vision {
                                return Err(self.invalid(format!("模型 {model} 不支持图片输入")));
                            }
                            self.image_url(url)?;
                            images += 1;
                        }
                        _ => return Err(self.bad_format()),
                    }
                }
                if images > 0 && !has_text {
                    return Err(self.invalid("包含图片的消息必须同时包含文本 (text) 内容"));
                }
                if images == 0 && !has_nonempty_text {
                    return Err(self.invalid(MSG_EMPTY_CONTENT));
                }
                Ok(())
            }
            Some(_) => Err(self.bad_format()),
        }
    }

    /// R9: `http(s)://…` or `data:image/<type>;base64,<valid base64>`.
    fn image_url(&self, url: &str) -> Result<(), Rejection> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(());
        }
        if decode_data_url(url).is_some() {
            return Ok(());
        }
        Err(self
            .invalid("image_url.url 必须是 http(s) 链接或 data:image/<type>;base64, 格式的数据"))
    }
}

/// The bytes of a `data:image/<type>;base64,…` URL, or `None` when it is not one.
pub(crate) fn decode_data_url(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("data:image/")?;
    let (mime, data) = rest.split_once(";base64,")?;
    if mime.is_empty()
        || !mime
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    engine
        .decode(data)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(data))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_mock_and_the_legacy_preset_agree_on_who_sees_images() {
        let config = crate::Config {
            upstream: crate::config::Preset::Hunyuan,
            ..crate::Config::default()
        };
        let (cascade, fix) = (config.cascade_config(), config.fix_config());
        for model in [
            config.vision_model(),
            config.text_model(),
            "hunyuan-turbos-vision",
            "hunyuan-t1-vision-20250916",
            "hunyuan-turbos-latest",
            "hy4",
        ] {
            let sees = cascade.sees_images(model);
            assert_eq!(is_vision_model(model), sees, "{model}");
            assert_eq!(fix.vision.sees_images(model), sees, "{model}");
        }
    }

    fn ok(body: Value) {
        if let Err(r) = validate(&body, MockPolicy::Legacy) {
            panic!("expected {body} to pass, got {r}");
        }
    }

    fn refused(body: Value, code: &str, message_part: &str) -> Rejection {
        let r = validate(&body, MockPolicy::Legacy).expect_err("expected a rejection");
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r}");
        assert_eq!(r.code(), code, "{r}");
        assert!(r.message().contains(message_part), "{r}");
        let id = r.body["error"]["id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(r.body["error"]["param"].is_null());
        r
    }

    fn chat(messages: Value) -> Value {
        json!({"model": "hunyuan-turbos-latest", "messages": messages})
    }

    fn u(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }
    fn a(text: &str) -> Value {
        json!({"role": "assistant", "content": text})
    }
    fn t(text: &str) -> Value {
        json!({"role": "tool", "content": text, "tool_call_id": "call_1"})
    }
    fn s(text: &str) -> Value {
        json!({"role": "system", "content": text})
    }

    #[test]
    fn valid_tool_conversation_passes() {
        ok(json!({
            "model": "hunyuan-2.0-instruct-20251111",
            "temperature": 0.5, "top_p": 1, "seed": 42, "n": 1, "stop": ["\n\n"],
            "tools": [{"type": "function", "function": {"name": "get_weather-v2", "parameters": {}}}],
            "messages": [
                s("be brief"), u("weather?"),
                {"role": "assistant", "content": " ", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather-v2", "arguments": "{}"}}]},
                t("sunny"), t("warm"), a("Sunny and warm."), u("thanks"),
            ],
        }));
    }

    #[test]
    fn r1_role_order() {
        for messages in [
            json!([u("a"), u("b")]),
            json!([u("a"), a("b")]),
            json!([a("a"), u("b")]),
            json!([t("a")]),
            json!([u("a"), a("b"), a("c"), u("d")]),
            json!([u("a"), a("b"), t("c"), u("d")]),
            json!([s("x")]),
            json!([]),
        ] {
            let r = refused(chat(messages), "1001", MSG_ROLE_ORDER);
            assert_eq!(r.error_type(), "invalid_request_error");
            assert_eq!(r.message(), MSG_ROLE_ORDER);
        }
        ok(chat(json!([s("x"), u("a"), a("b"), t("c"), t("d")])));
        // TokenHub has no role-order rule.
        let two_users = chat(json!([u("a"), u("b"), a("prefill")]));
        assert!(validate(&two_users, MockPolicy::TokenHub).is_ok());
    }

    #[test]
    fn r2_system_first_and_once() {
        let r = refused(chat(json!([u("a"), s("late")])), "1001", MSG_SYSTEM_FIRST);
        assert_eq!(r.message(), MSG_SYSTEM_FIRST);
        refused(
            chat(json!([s("a"), s("b"), u("c")])),
            "1001",
            MSG_SYSTEM_FIRST,
        );
        let r = validate(&chat(json!([u("a"), s("late")])), MockPolicy::TokenHub).unwrap_err();
        assert_eq!(r.message(), MSG_SYSTEM_FIRST);
    }

    #[test]
    fn r3_empty_content() {
        for content in [
            json!(""),
            Value::Null,
            json!([]),
            json!([{"type": "text", "text": ""}]),
        ] {
            let r = refused(
                chat(json!([{"role": "user", "content": content}])),
                "1001",
                MSG_EMPTY_CONTENT,
            );
            assert_eq!(r.message(), MSG_EMPTY_CONTENT);
        }
        refused(chat(json!([{"role": "user"}])), "1001", MSG_EMPTY_CONTENT);
        refused(chat(json!([s(""), u("a")])), "1001", MSG_EMPTY_CONTENT);
        // Whitespace-only is accepted.
        ok(chat(json!([u("a"), a(" "), u("b")])));
    }

    #[test]
    fn r4_reasoning_content_in_history() {
        let body = chat(json!([
            u("a"),
            {"role": "assistant", "content": "b", "reasoning_content": "hmm"},
            u("c"),
        ]));
        refused(body.clone(), "1001", "reasoning_content");
        assert!(validate(&body, MockPolicy::TokenHub).is_ok());
    }

    #[test]
    fn r5_penalties_even_zero() {
        for field in ["frequency_penalty", "presence_penalty"] {
            let mut body = chat(json!([u("a")]));
            body[field] = json!(0);
            let r = refused(body.clone(), "4003", MSG_BAD_FORMAT);
            assert_eq!(r.error_type(), "runtime_error");
            assert_eq!(r.body["error"]["message"], "请求格式有误", "exact R5 body");
            assert!(validate(&body, MockPolicy::TokenHub).is_err());
        }
    }

    #[test]
    fn r6_unsupported_fields() {
        let mut body = chat(json!([u("a")]));
        body["parallel_tool_calls"] = json!(false);
        refused(body, "1001", "parallel_tool_calls");
        let mut body = chat(json!([u("a")]));
        body["reasoning_effort"] = json!("low");
        refused(body.clone(), "1001", "reasoning_effort");
        assert!(validate(&body, MockPolicy::TokenHub).is_ok());
        let mut body = chat(json!([u("a")]));
        body["tools"] = json!([{"type": "function", "function": {"name": "f", "strict": true}}]);
        refused(body, "1001", "strict");
    }

    #[test]
    fn r7_at_most_40_messages() {
        let mut messages = vec![];
        for i in 0..20 {
            messages.push(u(&format!("q{i}")));
            messages.push(a(&format!("a{i}")));
        }
        messages.push(u("last"));
        let body = chat(Value::Array(messages.clone()));
        refused(body.clone(), "1001", "40");
        assert!(validate(&body, MockPolicy::TokenHub).is_ok());
        // Exactly 40 (a system message and 39 alternating turns) is fine.
        let mut forty = vec![s("sys")];
        forty.extend_from_slice(&messages[..39]);
        assert_eq!(forty.len(), 40);
        ok(chat(Value::Array(forty)));
    }

    #[test]
    fn r8_images_and_tools_by_model() {
        let image = json!([{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ]}]);
        refused(chat(image.clone()), "1001", "图片");
        ok(json!({"model": "hunyuan-vision", "messages": image}));
        refused(
            json!({"model": "hunyuan-vision", "messages": [u("a")],
                   "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "1001",
            "tools",
        );
    }

    #[test]
    fn r9_image_urls_and_text_part() {
        let with = |url: &str| {
            json!({"model": "hunyuan-vision", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": url}},
            ]}]})
        };
        ok(with("data:image/png;base64,iVBORw0KGgo="));
        ok(with("http://example.com/a.jpg"));
        refused(with("ftp://example.com/a.jpg"), "1001", "image_url");
        refused(with("iVBORw0KGgo="), "1001", "image_url");
        refused(with("data:text/plain;base64,aGk="), "1001", "image_url");
        refused(with("data:image/png;base64,!!!"), "1001", "image_url");
        refused(
            json!({"model": "hunyuan-vision", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ]}]}),
            "1001",
            "文本",
        );
    }

    #[test]
    fn r10_r11_roles_and_tool_names() {
        refused(
            chat(json!([{"role": "developer", "content": "x"}, u("a")])),
            "1001",
            "developer",
        );
        refused(
            chat(json!([{"role": "function", "content": "x"}, u("a")])),
            "1001",
            "function",
        );
        refused(
            json!({"model": "hunyuan-turbos-latest", "messages": [u("a")],
                   "tools": [{"type": "function", "function": {"name": "get.weather"}}]}),
            "1001",
            "get.weather",
        );
        refused(
            chat(json!([u("a"),
                {"role": "assistant", "content": " ", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bad name", "arguments": "{}"}}]},
                t("x")])),
            "1001",
            "bad name",
        );
    }

    #[test]
    fn r12_ranges_and_n() {
        for (field, value, part) in [
            ("temperature", json!(2.5), "temperature"),
            ("temperature", json!(-0.1), "temperature"),
            ("top_p", json!(1.5), "top_p"),
            ("seed", json!(0), "seed"),
            ("seed", json!(10001), "seed"),
            ("n", json!(2), "n "),
        ] {
            let mut body = chat(json!([u("a")]));
            body[field] = value;
            refused(body, "1001", part);
        }
        let mut body = chat(json!([u("a")]));
        body["temperature"] = json!(2);
        body["top_p"] = json!(0);
        body["seed"] = json!(10000);
        ok(body);
    }

    #[test]
    fn shape_errors_are_format_errors() {
        refused(json!([1, 2]), "4003", MSG_BAD_FORMAT);
        refused(
            json!({"model": "m", "messages": "hi"}),
            "4003",
            MSG_BAD_FORMAT,
        );
        refused(json!({"messages": [u("a")]}), "1001", "model");
    }

    /// R1 restated differently: collapse runs of tools into one, drop a leading system; what
    /// is left must alternate question (user, or tools after the first turn) / assistant, and
    /// end with a question.
    fn reference_order(roles: &[&str]) -> bool {
        let mut rest: Vec<&str> = roles.strip_prefix(&["system"]).unwrap_or(roles).to_vec();
        rest.dedup_by(|a, b| *a == "tool" && *b == "tool");
        rest.len() % 2 == 1
            && rest.first() == Some(&"user")
            && rest.iter().enumerate().all(|(i, r)| {
                if i % 2 == 0 {
                    *r == "user" || *r == "tool"
                } else {
                    *r == "assistant"
                }
            })
    }

    proptest::proptest! {
        #[test]
        fn r1_matches_its_restatement(roles in proptest::collection::vec(
            proptest::sample::select(vec!["system", "user", "assistant", "tool"]), 0..12,
        )) {
            let messages: Vec<Value> = roles
                .iter()
                .map(|r| json!({"role": r, "content": "x", "tool_call_id": "c"}))
                .collect();
            let single_system = !roles.iter().skip(1).any(|r| *r == "system");
            let verdict = validate(&chat(Value::Array(messages)), MockPolicy::Legacy);
            match verdict {
                Ok(()) => proptest::prop_assert!(single_system && reference_order(&roles)),
                Err(r) if !single_system => proptest::prop_assert_eq!(r.message(), MSG_SYSTEM_FIRST),
                Err(r) => {
                    proptest::prop_assert_eq!(r.message(), MSG_ROLE_ORDER);
                    proptest::prop_assert!(!reference_order(&roles));
                }
            }
        }
    }

    #[test]
    fn same_request_same_error_id() {
        let body = chat(json!([u("a"), u("b")]));
        let a = validate(&body, MockPolicy::Legacy).unwrap_err();
        let b = validate(&body, MockPolicy::Legacy).unwrap_err();
        assert_eq!(a.body, b.body);
    }
}
