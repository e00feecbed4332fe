//! Reading and parsing request bodies, once, with clear errors.
//!
//! The typed parse is the fast path. Only when it fails is the body looked at again, as a
//! `serde_json::Value`, to name the offending field (`messages[3].role`) in the 400 answer.

use crate::chat::{ChatRequest, CompletionRequest};
use crate::error::ProxyError;
use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, Request};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

/// The default request body limit: 20 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 20 * 1024 * 1024;

/// The body limit in force for a request, put into request extensions by the server so that
/// every layer reading the body honours the configured `request_body_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// How long a client may take to send its body, put into request extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub std::time::Duration);

/// The default body read timeout: 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Rejects a request whose `Content-Type` is present and not JSON (415).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ProxyError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ProxyError::UnsupportedMediaType)
    }
}

/// Reads a whole body, counting bytes as they arrive (chunked bodies too): 413 past `limit`,
/// 408 when it has not all arrived within `timeout` (a slow-loris client).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ProxyError> {
    match tokio::time::timeout(timeout, read_body_unbounded(headers, body, limit)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::RequestTimeout(timeout)),
    }
}

async fn read_body_unbounded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limit as u64 {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::PayloadTooLarge { limit })
        }
        Err(_) => Err(ProxyError::invalid_request(
            "the request body could not be read",
        )),
    }
}

/// The request body exactly as the client sent it, kept by [`ParseLayer`](crate::chat::ParseLayer)
/// beside the [`ChatRequest`] parsed from it (request extension), so that a request nobody
/// changed is forwarded without being serialized again.
///
/// The contract:
/// - [`take_chat`] removes it: a layer that takes the request to change it (a user's own layer
///   included) makes the upstream serialize the request it put back;
/// - a layer that edits the `ChatRequest` in place (`extensions_mut().get_mut()`) must remove
///   it too (`extensions_mut().remove::<RawChatBody>()`);
/// - built-in layers leave it in place when they change nothing: the FixLayer fixes the
///   request where it lies and removes the raw body when a rule fired; the CascadeLayer takes
///   the request only when it has images to replace;
/// - [`Upstream`](crate::upstream::Upstream) sends these bytes only when they belong to the
///   `ChatRequest` it takes (a request replaced by another one in the extensions is
///   serialized) and stripping [`OVERRIDE_FIELDS`](crate::chat::OVERRIDE_FIELDS) removed
///   nothing.
#[derive(Debug, Clone)]
pub struct RawChatBody {
    bytes: Bytes,
    /// The address of the parsed request's message list: a `ChatRequest` put in place of the
    /// parsed one has its own list, so these bytes no longer belong to it.
    messages: usize,
}

impl RawChatBody {
    fn new(bytes: Bytes, chat: &ChatRequest) -> Self {
        RawChatBody {
            bytes,
            messages: chat.messages.as_ptr() as usize,
        }
    }

    /// The body as it came.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The body, when it still belongs to `chat` (the request parsed from it, moved but not
    /// replaced).
    pub(crate) fn into_bytes_for(self, chat: &ChatRequest) -> Option<Bytes> {
        (self.messages == chat.messages.as_ptr() as usize).then_some(self.bytes)
    }
}

/// Parses `bytes` into a chat request and the [`RawChatBody`] that goes with it.
pub(crate) fn parse_chat_keeping_raw(
    bytes: Bytes,
) -> Result<(ChatRequest, RawChatBody), ProxyError> {
    let chat = parse_chat(&bytes)?;
    let raw = RawChatBody::new(bytes, &chat);
    Ok((chat, raw))
}

/// Takes the parsed chat request and its [`RawChatBody`] (when there is one) out of `req`: for
/// the upstream, which forwards the raw bytes when they still belong to the request.
pub(crate) async fn take_chat_and_raw(
    req: &mut Request<Body>,
) -> Result<(ChatRequest, Option<RawChatBody>), ProxyError> {
    let raw = req.extensions_mut().remove::<RawChatBody>();
    Ok((take_chat(req).await?, raw))
}

/// Takes the parsed chat request out of `req`: from its extensions when an earlier layer
/// parsed it, otherwise by reading and parsing the body (with the [`BodyLimit`] in force, or
/// [`DEFAULT_BODY_LIMIT`]). Put it back with `req.extensions_mut().insert(chat)`.
///
/// It also drops the [`RawChatBody`], so the upstream serializes whatever request is put back.
pub async fn take_chat(req: &mut Request<Body>) -> Result<ChatRequest, ProxyError> {
    req.extensions_mut().remove::<RawChatBody>();
    if let Some(chat) = req.extensions_mut().remove::<ChatRequest>() {
        return Ok(chat);
    }
    check_content_type(req.headers())?;
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let timeout = req
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let body = std::mem::take(req.body_mut());
    let bytes = read_body(req.headers(), body, limit, timeout).await?;
    parse_chat(&bytes)
}

/// Parses a chat request, naming the offending field when it is not valid.
pub fn parse_chat(bytes: &[u8]) -> Result<ChatRequest, ProxyError> {
    let chat: ChatRequest = match serde_json::from_slice(bytes) {
        Ok(chat) => chat,
        Err(err) => return Err(diagnose_chat(bytes, &err)),
    };
    if chat.model.trim().is_empty() {
        return Err(ProxyError::invalid(
            "`model` is required and must be a non-empty string",
            "model",
        ));
    }
    if chat.messages.is_empty() {
        return Err(ProxyError::invalid(
            "`messages` must be a non-empty list",
            "messages",
        ));
    }
    Ok(chat)
}

/// Parses a legacy completions request, naming the offending field when it is not valid.
pub fn parse_completion(bytes: &[u8]) -> Result<CompletionRequest, ProxyError> {
    let req: CompletionRequest = match serde_json::from_slice(bytes) {
        Ok(req) => req,
        Err(err) => {
            let value = parse_value(bytes)?;
            let obj = value.as_object().ok_or_else(not_an_object)?;
            return Err(match obj.get("prompt") {
                None => ProxyError::invalid("`prompt` is required", "prompt"),
                Some(Value::String(_)) => check_common_fields(obj)
                    .unwrap_or_else(|| ProxyError::invalid_request(clean_serde_message(&err))),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                    check_common_fields(obj)
                        .unwrap_or_else(|| ProxyError::invalid_request(clean_serde_message(&err)))
                }
                Some(_) => {
                    ProxyError::invalid("`prompt` must be a string or a list of strings", "prompt")
                }
            });
        }
    };
    if req.model.trim().is_empty() {
        return Err(ProxyError::invalid(
            "`model` is required and must be a non-empty string",
            "model",
        ));
    }
    Ok(req)
}

fn parse_value(bytes: &[u8]) -> Result<Value, ProxyError> {
    serde_json::from_slice::<Value>(bytes).map_err(|e| ProxyError::InvalidJson {
        detail: clean_serde_message(&e),
    })
}

fn not_an_object() -> ProxyError {
    ProxyError::invalid_request("the request body must be a JSON object")
}

/// serde's message without the type names of our structs.
fn clean_serde_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.contains("recursion limit") {
        return "the JSON is nested too deeply".to_owned();
    }
    text
}

fn diagnose_chat(bytes: &[u8], err: &serde_json::Error) -> ProxyError {
    let value = match parse_value(bytes) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(obj) = value.as_object() else {
        return not_an_object();
    };
    if let Some(e) = check_common_fields(obj) {
        return e;
    }
    match obj.get("messages") {
        None => return ProxyError::invalid("`messages` is required", "messages"),
        Some(Value::Array(messages)) => {
            for (i, m) in messages.iter().enumerate() {
                if let Some(e) = diagnose_message(i, m) {
                    return e;
                }
            }
        }
        Some(_) => return ProxyError::invalid("`messages` must be a list", "messages"),
    }
    if let Some(tools) = obj.get("tools") {
        if let Some(e) = diagnose_tools(tools) {
            return e;
        }
    }
    if let Some(stop) = obj.get("stop") {
        let ok = stop.is_null()
            || stop.is_string()
            || stop
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return ProxyError::invalid("`stop` must be a string or a list of strings", "stop");
        }
    }
    ProxyError::invalid_request(clean_serde_message(err))
}

/// Fields shared by chat and completions requests.
fn check_common_fields(obj: &serde_json::Map<String, Value>) -> Option<ProxyError> {
    match obj.get("model") {
        None | Some(Value::String(_)) => {}
        Some(_) => return Some(ProxyError::invalid("`model` must be a string", "model")),
    }
    match obj.get("stream") {
        None | Some(Value::Bool(_)) | Some(Value::Null) => {}
        Some(_) => return Some(ProxyError::invalid("`stream` must be a boolean", "stream")),
    }
    match obj.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Bool(_)) | Some(Value::Null) => {}
            Some(_) => {
                return Some(ProxyError::invalid(
                    "`stream_options.include_usage` must be a boolean",
                    "stream_options.include_usage",
                ))
            }
        },
        Some(_) => {
            return Some(ProxyError::invalid(
                "`stream_options` must be an object",
                "stream_options",
            ))
        }
    }
    None
}

fn diagnose_message(i: usize, m: &Value) -> Option<ProxyError> {
    let at = |field: &str| format!("messages[{i}].{field}");
    let Some(obj) = m.as_object() else {
        return Some(ProxyError::invalid(
            format!("messages[{i}] must be an object"),
            format!("messages[{i}]"),
        ));
    };
    match obj.get("role") {
        None => return Some(ProxyError::invalid("`role` is required", at("role"))),
        Some(Value::String(r))
            if ["system", "developer", "user", "assistant", "tool"].contains(&r.as_str()) => {}
        Some(Value::String(r)) => {
            return Some(ProxyError::invalid(
                format!(
                    "unknown role `{}`; expected system, developer, user, assistant or tool",
                    truncate(r, 40)
                ),
                at("role"),
            ))
        }
        Some(_) => return Some(ProxyError::invalid("`role` must be a string", at("role"))),
    }
    match obj.get("content") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if let Some(e) = diagnose_part(i, j, part) {
                    return Some(e);
                }
            }
        }
        Some(_) => {
            return Some(ProxyError::invalid(
                "`content` must be a string, a list of content parts, or null",
                at("content"),
            ))
        }
    }
    for field in ["name", "tool_call_id"] {
        match obj.get(field) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => {
                return Some(ProxyError::invalid(
                    format!("`{field}` must be a string"),
                    at(field),
                ))
            }
        }
    }
    match obj.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (k, call) in calls.iter().enumerate() {
                let at_call = format!("messages[{i}].tool_calls[{k}]");
                let ok = call.get("id").is_some_and(Value::is_string)
                    && call
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .is_some_and(Value::is_string)
                    && call
                        .get("function")
                        .and_then(|f| f.get("arguments"))
                        .is_none_or(|a| a.is_string());
                if !ok {
                    return Some(ProxyError::invalid(
                        "a tool call needs a string `id`, `function.name` and `function.arguments`",
                        at_call,
                    ));
                }
            }
        }
        Some(_) => {
            return Some(ProxyError::invalid(
                "`tool_calls` must be a list",
                at("tool_calls"),
            ))
        }
    }
    None
}

fn diagnose_part(i: usize, j: usize, part: &Value) -> Option<ProxyError> {
    let at = format!("messages[{i}].content[{j}]");
    let Some(obj) = part.as_object() else {
        return Some(ProxyError::invalid("a content part must be an object", at));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("text") => {
            if !obj.get("text").is_some_and(Value::is_string) {
                return Some(ProxyError::invalid(
                    "a text part needs a string `text`",
                    format!("{at}.text"),
                ));
            }
        }
        Some("image_url") => {
            let url = obj.get("image_url").and_then(|u| u.get("url"));
            if !url.is_some_and(Value::is_string) {
                return Some(ProxyError::invalid(
                    "an image part needs `image_url.url` as a string",
                    format!("{at}.image_url.url"),
                ));
            }
        }
        Some(other) => {
            return Some(ProxyError::invalid(
                format!(
                    "unsupported content part type `{}`; expected text or image_url",
                    truncate(other, 40)
                ),
                format!("{at}.type"),
            ))
        }
        None => {
            return Some(ProxyError::invalid(
                "a content part needs a string `type`",
                format!("{at}.type"),
            ))
        }
    }
    None
}

fn diagnose_tools(tools: &Value) -> Option<ProxyError> {
    let Some(list) = tools.as_array() else {
        if tools.is_null() {
            return None;
        }
        return Some(ProxyError::invalid("`tools` must be a list", "tools"));
    };
    for (k, tool) in list.iter().enumerate() {
        let name = tool.get("function").and_then(|f| f.get("name"));
        if !name.is_some_and(Value::is_string) {
            return Some(ProxyError::invalid(
                "a tool needs `function.name` as a string",
                format!("tools[{k}].function.name"),
            ));
        }
    }
    None
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> Option<String> {
        parse_chat(body.as_bytes())
            .unwrap_err()
            .param()
            .map(str::to_owned)
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(
            param_of(
                r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot"}]}"#
            ),
            Some("messages[1].role".into())
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":"hi"}"#),
            Some("messages".into())
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"role":"user","content":1}]}"#),
            Some("messages[0].content".into())
        );
        assert_eq!(
            param_of(r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"a"}]}"#),
            Some("stream".into())
        );
        assert_eq!(
            param_of(
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#
            ),
            Some("messages[0].content[0].image_url.url".into())
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[]}"#),
            Some("messages".into())
        );
    }

    #[test]
    fn deep_nesting_is_a_400_not_a_crash() {
        let deep = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"a"}}],"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = parse_chat(deep.as_bytes()).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn invalid_json_and_non_objects() {
        assert!(matches!(
            parse_chat(b"{\"model\":"),
            Err(ProxyError::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_chat(b"[1,2]"),
            Err(ProxyError::InvalidRequest { param: None, .. })
        ));
    }

    #[test]
    fn content_type_must_be_json() {
        let mut headers = HeaderMap::new();
        assert!(check_content_type(&headers).is_ok());
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(check_content_type(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(matches!(
            check_content_type(&headers),
            Err(ProxyError::UnsupportedMediaType)
        ));
    }
}
