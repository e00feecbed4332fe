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

/// The parsed chat request as it travels in request extensions, with the client's own bytes
/// for as long as nobody changed it.
///
/// [`ParseLayer`](crate::chat::ParseLayer) puts one into the extensions; every later layer
/// reads the request through it ([`Deref`](std::ops::Deref) to [`ChatRequest`]), and the
/// [`Upstream`](crate::upstream::Upstream) forwards the client's bytes instead of serializing
/// the request again when they are still here. "Unchanged" holds by construction:
///
/// - [`get_mut`](Self::get_mut), the only way to change the request where it lies, drops the
///   bytes first;
/// - [`take_chat`] moves the request out and drops them; what is put back with [`put_chat`]
///   (or [`ParsedChat::new`]) has none, so it is serialized.
///
/// ```
/// use hunyuan_proxy::chat::{ChatRequest, ParsedChat};
///
/// let chat: ChatRequest = serde_json::from_str(
///     r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
/// ).unwrap();
/// let mut parsed = ParsedChat::new(chat);
/// assert_eq!(parsed.model, "m");
/// parsed.get_mut().model = "other".into();
/// assert!(parsed.raw().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ParsedChat {
    chat: ChatRequest,
    raw: Option<Bytes>,
}

impl ParsedChat {
    /// A request with no client bytes beside it (one a layer built or changed).
    pub fn new(chat: ChatRequest) -> Self {
        ParsedChat { chat, raw: None }
    }

    /// `chat` beside the bytes it was parsed from.
    pub(crate) fn with_raw(chat: ChatRequest, raw: Bytes) -> Self {
        ParsedChat {
            chat,
            raw: Some(raw),
        }
    }

    /// The request.
    pub fn get(&self) -> &ChatRequest {
        &self.chat
    }

    /// The request, to change where it lies: the client's bytes are dropped first, so the
    /// upstream serializes the changed request.
    pub fn get_mut(&mut self) -> &mut ChatRequest {
        self.raw = None;
        &mut self.chat
    }

    /// The client's bytes, while the request is unchanged.
    pub fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The request, without the client's bytes.
    pub fn into_request(self) -> ChatRequest {
        self.chat
    }

    /// The request and, when it is unchanged, the client's bytes.
    pub fn into_parts(self) -> (ChatRequest, Option<Bytes>) {
        (self.chat, self.raw)
    }

    /// Runs `edit` on the request where it lies; `edit` returns its result and whether it
    /// changed anything. The bytes are kept only when it did not.
    ///
    /// For the built-in FixLayer, whose rules each report what they change. In debug builds
    /// (the tests) a claim of "unchanged" is checked against the serialized request.
    pub(crate) fn edit_reporting<R>(
        &mut self,
        edit: impl FnOnce(&mut ChatRequest) -> (R, bool),
    ) -> R {
        #[cfg(debug_assertions)]
        let before = self
            .raw
            .is_some()
            .then(|| crate::chat::to_json_bytes(&self.chat));
        let (result, changed) = edit(&mut self.chat);
        if changed {
            self.raw = None;
        }
        #[cfg(debug_assertions)]
        if let Some(before) = before.filter(|_| !changed) {
            debug_assert_eq!(
                before,
                crate::chat::to_json_bytes(&self.chat),
                "an edit reported no change but changed the request"
            );
        }
        result
    }
}

impl std::ops::Deref for ParsedChat {
    type Target = ChatRequest;

    fn deref(&self) -> &ChatRequest {
        &self.chat
    }
}

/// Serializes the request (as the upstream would send it).
impl serde::Serialize for ParsedChat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.chat.serialize(serializer)
    }
}

impl From<ChatRequest> for ParsedChat {
    fn from(chat: ChatRequest) -> Self {
        ParsedChat::new(chat)
    }
}

/// Parses `bytes` into a chat request kept beside them.
pub(crate) fn parse_chat_keeping_raw(bytes: Bytes) -> Result<ParsedChat, ProxyError> {
    let chat = parse_chat(&bytes)?;
    Ok(ParsedChat::with_raw(chat, bytes))
}

/// Takes the [`ParsedChat`] out of `req` (client bytes included while unchanged), reading and
/// parsing the body when no earlier layer did: for the upstream, which forwards the bytes
/// when they are there.
pub(crate) async fn take_parsed(req: &mut Request<Body>) -> Result<ParsedChat, ProxyError> {
    if let Some(parsed) = req.extensions_mut().remove::<ParsedChat>() {
        return Ok(parsed);
    }
    let bytes = read_request_body(req, DEFAULT_BODY_LIMIT).await?;
    parse_chat_keeping_raw(bytes)
}

/// Puts `chat` into `req`'s extensions, for the next layer (without client bytes: the
/// upstream serializes it).
pub fn put_chat<B>(req: &mut Request<B>, chat: ChatRequest) {
    req.extensions_mut().insert(ParsedChat::new(chat));
}

/// Takes the parsed chat request out of `req`: from its extensions when an earlier layer
/// parsed it, otherwise by reading and parsing the body (with the [`BodyLimit`] in force, or
/// [`DEFAULT_BODY_LIMIT`]). Put it back with [`put_chat`].
///
/// The client's bytes stay behind: the upstream serializes whatever request is put back.
pub async fn take_chat(req: &mut Request<Body>) -> Result<ChatRequest, ProxyError> {
    if let Some(parsed) = req.extensions_mut().remove::<ParsedChat>() {
        return Ok(parsed.into_request());
    }
    let bytes = read_request_body(req, DEFAULT_BODY_LIMIT).await?;
    parse_chat(&bytes)
}

/// Makes sure `req` carries its [`ParsedChat`]: left as it is when an earlier layer parsed it,
/// otherwise read and parsed here (as [`take_chat`] does) and put into the extensions.
pub async fn ensure_chat(req: &mut Request<Body>) -> Result<(), ProxyError> {
    if req.extensions().get::<ParsedChat>().is_none() {
        let chat = take_chat(req).await?;
        put_chat(req, chat);
    }
    Ok(())
}

/// Takes `req`'s body and reads it whole, as every reader of a request body does (the chat
/// parser and each dialect ingress): 415 when its `Content-Type` is present and not JSON,
/// 413 past the limit in force (the request's [`BodyLimit`], else `default_limit`), 408 when
/// it has not all arrived within the [`BodyReadTimeout`] in force (else
/// [`DEFAULT_BODY_READ_TIMEOUT`]).
pub async fn read_request_body(
    req: &mut Request<Body>,
    default_limit: usize,
) -> Result<Bytes, ProxyError> {
    check_content_type(req.headers())?;
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(default_limit, |l| l.0);
    let timeout = req
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let body = std::mem::take(req.body_mut());
    read_body(req.headers(), body, limit, timeout).await
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
