//! The Messages request translated to a chat request: [`translate`].

use super::config::MessagesConfig;
use crate::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role, Stop,
    StreamOptions, Tool, ToolCall,
};
use crate::error::ProxyError;
use crate::ingress::Dropped;
use serde_json::{Map, Value};

/// A Messages request as the chat stack will see it, and what the answer needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The chat request (model already mapped through the aliases).
    pub chat: ChatRequest,
    /// The model name the client asked for; the answer names it.
    pub client_model: String,
    /// Whether the client asked for thinking (`enabled` or `adaptive`): only then does the
    /// answer carry `thinking` blocks.
    pub thinking: bool,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// The client's `stop_sequences`.
    pub stop_sequences: Vec<String>,
    /// What could not be carried.
    pub dropped: Dropped,
}

/// A 400 naming the field at `path` (Anthropic's dotted style: `messages.2.content.0.source`).
pub(super) fn invalid(path: &str, what: &str) -> ProxyError {
    ProxyError::invalid(format!("{path}: {what}"), path)
}

/// Translates a Messages request body. Unknown fields (`context_management`, `output_config`,
/// `container`, `mcp_servers`, …) are ignored; wrong shapes are a 400 naming the field.
pub fn translate(body: &Value, config: &MessagesConfig) -> Result<Translated, ProxyError> {
    let Some(obj) = body.as_object() else {
        return Err(ProxyError::invalid_request(
            "the request body must be a JSON object",
        ));
    };
    let mut dropped = Dropped::new();
    let client_model = match obj.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => return Err(invalid("model", "a non-empty string is required")),
    };
    let Some(Value::Array(messages)) = obj.get("messages") else {
        return Err(invalid("messages", "a list of messages is required"));
    };
    if messages.is_empty() {
        return Err(invalid("messages", "at least one message is required"));
    }
    let mut system: Vec<String> = Vec::new();
    match obj.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => system.push(s.clone()),
        Some(Value::Array(blocks)) => {
            system.extend(blocks_text(blocks, "system", &mut dropped)?);
        }
        Some(_) => return Err(invalid("system", "a string or a list of text blocks")),
    }
    let mut out: Vec<Message> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages.{i}");
        let Some(m) = message.as_object() else {
            return Err(invalid(&path, "each message must be an object"));
        };
        let content = m.get("content");
        match m.get("role").and_then(Value::as_str) {
            Some("system") => match content {
                Some(Value::String(s)) => system.push(s.clone()),
                Some(Value::Array(blocks)) => system.extend(blocks_text(
                    blocks,
                    &format!("{path}.content"),
                    &mut dropped,
                )?),
                _ => {
                    return Err(invalid(
                        &format!("{path}.content"),
                        "a string or a list of blocks",
                    ))
                }
            },
            Some("user") => user_message(content, &path, &mut out, &mut dropped)?,
            Some("assistant") => out.push(assistant_message(content, &path, config, &mut dropped)?),
            Some(other) => {
                return Err(invalid(
                    &format!("{path}.role"),
                    &format!(
                        "unknown role `{}`: expected `user` or `assistant`",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
            None => return Err(invalid(&format!("{path}.role"), "a role is required")),
        }
    }
    let tools = tools(obj.get("tools"), &mut dropped)?;
    let rest = rest(
        &|field| obj.get(field),
        tools.is_some(),
        config,
        &mut dropped,
    )?;
    Ok(assemble(
        client_model,
        system,
        out,
        tools,
        rest,
        dropped,
        config,
    ))
}

/// The top-level fields after `tools`, read the same way by both readings of a request.
pub(super) struct Rest {
    extra: Map<String, Value>,
    stop_sequences: Vec<String>,
    thinking: Option<bool>,
    stream: bool,
}

/// Reads `tool_choice`, `max_tokens`, `temperature`, `top_p`, `top_k`, `metadata`,
/// `stop_sequences`, `thinking` and `stream` through `get` (the field as the body has it:
/// `None` when absent).
pub(super) fn rest<'v>(
    get: &dyn Fn(&str) -> Option<&'v Value>,
    has_tools: bool,
    config: &MessagesConfig,
    dropped: &mut Dropped,
) -> Result<Rest, ProxyError> {
    let mut extra = Map::new();
    if let Some(choice) = get("tool_choice").filter(|c| !c.is_null()) {
        if let Some(choice) = tool_choice(choice)? {
            if has_tools {
                extra.insert("tool_choice".into(), choice);
            }
        }
    }
    match get("max_tokens") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            extra.insert("max_tokens".into(), Value::Number(n.clone()));
        }
        Some(_) => return Err(invalid("max_tokens", "a positive integer is required")),
    }
    for field in ["temperature", "top_p"] {
        match get(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                extra.insert(field.into(), v.clone());
            }
            Some(_) => return Err(invalid(field, "a number is required")),
        }
    }
    if get("top_k").is_some_and(|v| !v.is_null()) {
        dropped.add("top_k");
    }
    if let Some(user) = get("metadata").and_then(|m| m.get("user_id")) {
        match user {
            Value::String(s) if !s.is_empty() => {
                extra.insert("user".into(), Value::String(s.clone()));
            }
            Value::String(_) | Value::Null => {}
            _ => return Err(invalid("metadata.user_id", "a string is required")),
        }
    }
    let stop_sequences = match get("stop_sequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(&format!("stop_sequences.{i}"), "a string is required"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("stop_sequences", "a list of strings is required")),
    };
    let thinking = match get("thinking") {
        None | Some(Value::Null) => None,
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some("enabled") | Some("adaptive") => Some(true),
            Some("disabled") => Some(false),
            _ => {
                return Err(invalid(
                    "thinking.type",
                    "one of `enabled`, `adaptive`, `disabled` is required",
                ))
            }
        },
    };
    if let (Some(on), true) = (thinking, config.thinking_switch) {
        let kind = if on { "enabled" } else { "disabled" };
        extra.insert("thinking".into(), serde_json::json!({ "type": kind }));
    }
    let stream = match get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "a boolean is required")),
    };
    Ok(Rest {
        extra,
        stop_sequences,
        thinking,
        stream,
    })
}

/// The translation from its read parts: the system texts joined into the first message.
pub(super) fn assemble(
    client_model: String,
    system: Vec<String>,
    mut out: Vec<Message>,
    tools: Option<Vec<Tool>>,
    rest: Rest,
    dropped: Dropped,
    config: &MessagesConfig,
) -> Translated {
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        out.insert(0, Message::text(Role::System, system.join("\n\n")));
    }
    let Rest {
        extra,
        stop_sequences,
        thinking,
        stream,
    } = rest;
    let chat = ChatRequest {
        model: config.aliases.upstream_model(&client_model).to_owned(),
        messages: out,
        stream: Some(stream),
        // Usage for `message_delta`: the fixer synthesizes it when the upstream sends none.
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        tools,
        stop: (!stop_sequences.is_empty()).then(|| Stop::Many(stop_sequences.clone())),
        extra,
    };
    Translated {
        chat,
        client_model,
        thinking: thinking.unwrap_or(false),
        stream,
        stop_sequences,
        dropped,
    }
}

/// The type of a block, or a 400.
fn block_type<'a>(block: &'a Value, path: &str) -> Result<&'a str, ProxyError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{path}.type"), "each block needs a `type`"))
}

/// The text a block can stand for: `text` blocks, `document` blocks with a text source, and
/// any other block with a `text` string. `None` when it has none.
fn block_text(block: &Value, kind: &str) -> Option<String> {
    if kind == "document" {
        let source = block.get("source")?;
        let text = match source.get("type").and_then(Value::as_str) {
            Some("text") => source.get("data")?.as_str()?.to_owned(),
            Some("content") => match source.get("content")? {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => return None,
            },
            _ => return None,
        };
        return Some(match block.get("title").and_then(Value::as_str) {
            Some(title) => format!("{title}\n\n{text}"),
            None => text,
        });
    }
    block.get("text").and_then(Value::as_str).map(str::to_owned)
}

/// How a dropped block is named (`block:<type>`).
pub(super) fn dropped_block(kind: &str) -> String {
    format!("block:{}", kind.chars().take(40).collect::<String>())
}

/// The texts of a list of blocks (system prompts): text-bearing blocks kept, others dropped.
fn blocks_text(
    blocks: &[Value],
    path: &str,
    dropped: &mut Dropped,
) -> Result<Vec<String>, ProxyError> {
    let mut texts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let kind = block_type(block, &format!("{path}.{j}"))?;
        match block_text(block, kind) {
            Some(text) => texts.push(text),
            None => dropped.add(dropped_block(kind)),
        }
    }
    Ok(texts)
}

/// An image block as an `image_url` part (`None`, reported, for sources it cannot carry).
fn image_part(
    block: &Value,
    path: &str,
    dropped: &mut Dropped,
) -> Result<Option<ContentPart>, ProxyError> {
    let source_path = format!("{path}.source");
    let Some(source) = block.get("source").and_then(Value::as_object) else {
        return Err(invalid(&source_path, "an image needs a `source` object"));
    };
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = source
                .get("media_type")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(&format!("{source_path}.media_type"), "a string is required")
                })?;
            let data = source.get("data").and_then(Value::as_str).ok_or_else(|| {
                invalid(
                    &format!("{source_path}.data"),
                    "a base64 string is required",
                )
            })?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{source_path}.url"), "a string is required"))?
            .to_owned(),
        Some(_) => {
            dropped.add("image:file");
            return Ok(None);
        }
        None => {
            return Err(invalid(
                &format!("{source_path}.type"),
                "`base64` or `url` is required",
            ))
        }
    };
    Ok(Some(ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    }))
}

/// Parts to content: plain text when there is no image (what text models take best).
pub(super) fn parts_to_content(parts: Vec<ContentPart>) -> Content {
    if parts.iter().all(|p| p.text().is_some()) {
        let texts: Vec<&str> = parts.iter().filter_map(ContentPart::text).collect();
        Content::Text(texts.join("\n"))
    } else {
        Content::Parts(parts)
    }
}

/// A user message: its `tool_result` blocks become `tool` messages (in order), everything
/// else one user message after them.
fn user_message(
    content: Option<&Value>,
    path: &str,
    out: &mut Vec<Message>,
    dropped: &mut Dropped,
) -> Result<(), ProxyError> {
    let blocks = match content {
        Some(Value::String(s)) => {
            out.push(Message::text(Role::User, s.clone()));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(
                &format!("{path}.content"),
                "a string or a list of blocks",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut had_results = false;
    for (j, block) in blocks.iter().enumerate() {
        let bpath = format!("{path}.content.{j}");
        match block_type(block, &bpath)? {
            "text" => {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{bpath}.text"), "a string is required"))?;
                parts.push(ContentPart::text_part(text));
            }
            "image" => parts.extend(image_part(block, &bpath, dropped)?),
            "tool_result" => {
                had_results = true;
                out.push(tool_message(block, &bpath, dropped)?);
            }
            kind => match block_text(block, kind) {
                Some(text) => parts.push(ContentPart::text_part(text)),
                None => dropped.add(dropped_block(kind)),
            },
        }
    }
    // A user turn with results only needs no user message of its own.
    if !parts.is_empty() || !had_results {
        out.push(Message {
            role: Role::User,
            content: Some(parts_to_content(parts)),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Map::new(),
        });
    }
    Ok(())
}

/// A `tool_result` block as a `tool` message; images stay image parts (the cascade describes
/// them), `is_error` results are prefixed `Error: `.
fn tool_message(block: &Value, path: &str, dropped: &mut Dropped) -> Result<Message, ProxyError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{path}.tool_use_id"), "a string is required"))?;
    let mut parts = Vec::new();
    match block.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => parts.push(ContentPart::text_part(s.clone())),
        Some(Value::Array(inner)) => {
            for (k, b) in inner.iter().enumerate() {
                let bpath = format!("{path}.content.{k}");
                match block_type(b, &bpath)? {
                    "image" => parts.extend(image_part(b, &bpath, dropped)?),
                    kind => match block_text(b, kind) {
                        Some(text) => parts.push(ContentPart::text_part(text)),
                        None => dropped.add(dropped_block(kind)),
                    },
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                &format!("{path}.content"),
                "a string or a list of blocks",
            ))
        }
    }
    Ok(tool_result_message(
        id.to_owned(),
        parts,
        block.get("is_error").and_then(Value::as_bool) == Some(true),
    ))
}

/// A `tool_result` block's content as the chat `tool` message answering call `id`; a failed
/// tool's text starts with `Error: ` (the chat dialect has no error flag).
pub(super) fn tool_result_message(
    id: String,
    mut parts: Vec<ContentPart>,
    is_error: bool,
) -> Message {
    if is_error {
        match parts.iter_mut().find_map(|p| match p {
            ContentPart::Text { text } => Some(text),
            ContentPart::ImageUrl { .. } => None,
        }) {
            Some(text) => text.insert_str(0, "Error: "),
            None => parts.insert(0, ContentPart::text_part("Error: the tool failed.")),
        }
    }
    Message {
        role: Role::Tool,
        content: Some(parts_to_content(parts)),
        name: None,
        tool_calls: None,
        tool_call_id: Some(id),
        extra: Map::new(),
    }
}

/// An assistant message: text, `tool_use` → tool calls, thinking → `reasoning_content` when
/// the history keeps reasoning (TokenHub), dropped otherwise.
fn assistant_message(
    content: Option<&Value>,
    path: &str,
    config: &MessagesConfig,
    dropped: &mut Dropped,
) -> Result<Message, ProxyError> {
    let mut message = Message::text(Role::Assistant, "");
    let blocks = match content {
        Some(Value::String(s)) => {
            message.content = Some(Content::Text(s.clone()));
            return Ok(message);
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(
                &format!("{path}.content"),
                "a string or a list of blocks",
            ))
        }
    };
    let mut texts: Vec<String> = Vec::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let bpath = format!("{path}.content.{j}");
        match block_type(block, &bpath)? {
            "text" => {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{bpath}.text"), "a string is required"))?;
                if !text.is_empty() {
                    texts.push(text.to_owned());
                }
            }
            "tool_use" => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{bpath}.id"), "a string is required"))?;
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{bpath}.name"), "a string is required"))?;
                let input = block
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                calls.push(ToolCall {
                    id: id.to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments: input.to_string(),
                    },
                    extra: Map::new(),
                });
            }
            "thinking" => {
                if config.reasoning_history {
                    if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                        reasoning.push_str(t);
                    }
                }
            }
            "redacted_thinking" => {}
            kind => match block_text(block, kind) {
                Some(text) => texts.push(text),
                None => dropped.add(dropped_block(kind)),
            },
        }
    }
    message.content = (!texts.is_empty()).then(|| Content::Text(texts.join("\n")));
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    if config.reasoning_history && (!reasoning.is_empty() || message.has_tool_calls()) {
        message
            .extra
            .insert("reasoning_content".into(), Value::String(reasoning));
    }
    Ok(message)
}

/// Tools: plain (custom) tools with `input_schema` → functions; server and client-defined
/// built-ins (`web_search_*`, `bash_*`, …) and deferred tools are dropped and reported.
fn tools(value: Option<&Value>, dropped: &mut Dropped) -> Result<Option<Vec<Tool>>, ProxyError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("tools", "a list of tools is required")),
    };
    let mut out = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let path = format!("tools.{i}");
        let Some(t) = tool.as_object() else {
            return Err(invalid(&path, "each tool must be an object"));
        };
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(kind) => {
                dropped.add(format!(
                    "tool:{}",
                    kind.chars().take(40).collect::<String>()
                ));
                continue;
            }
        }
        if t.get("defer_loading").and_then(Value::as_bool) == Some(true) {
            dropped.add("tool:deferred");
            continue;
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(&format!("{path}.name"), "a non-empty string is required"))?;
        let parameters = match t.get("input_schema") {
            Some(schema @ Value::Object(_)) => schema.clone(),
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(_) => {
                return Err(invalid(
                    &format!("{path}.input_schema"),
                    "an object is required",
                ))
            }
        };
        out.push(Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: name.to_owned(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters: Some(parameters),
                extra: Map::new(),
            },
            extra: Map::new(),
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

/// `tool_choice`: auto/any/tool/none → auto/required/named/none.
fn tool_choice(choice: &Value) -> Result<Option<Value>, ProxyError> {
    let kind = choice.get("type").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            "tool_choice.type",
            "one of `auto`, `any`, `tool`, `none` is required",
        )
    })?;
    Ok(Some(match kind {
        "auto" => Value::from("auto"),
        "any" => Value::from("required"),
        "none" => Value::from("none"),
        "tool" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "a string is required"))?;
            serde_json::json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "one of `auto`, `any`, `tool`, `none` is required",
            ))
        }
    }))
}

/// Counted per image part, whatever its size: a data URL's length says little about tokens.
const IMAGE_TOKENS: u64 = 400;

/// A rough input size for `message_start` and `count_tokens`: the characters of every
/// message's text, tool-call arguments and tool definitions, plus 4 per message, divided by 4
/// (rounded up, at least 1), and 400 per image. An **estimate**: Hunyuan's
/// tokenizer is not known to the proxy.
pub fn estimate_input_tokens(chat: &ChatRequest) -> u64 {
    let mut chars = 0usize;
    let mut images = 0u64;
    for m in &chat.messages {
        chars += 4;
        match &m.content {
            Some(Content::Text(t)) => chars += t.chars().count(),
            Some(Content::Parts(parts)) => {
                for part in parts {
                    match part {
                        ContentPart::Text { text } => chars += text.chars().count(),
                        ContentPart::ImageUrl { .. } => images += 1,
                    }
                }
            }
            None => {}
        }
        for call in m.tool_calls.iter().flatten() {
            chars += call.function.name.len() + call.function.arguments.chars().count();
        }
        if let Some(Value::String(r)) = m.extra.get("reasoning_content") {
            chars += r.chars().count();
        }
    }
    for tool in chat.tools.iter().flatten() {
        chars += tool.function.name.len();
        chars += tool
            .function
            .description
            .as_deref()
            .map_or(0, |d| d.chars().count());
        chars += tool.function.parameters.as_ref().map_or(0, json_len);
    }
    (chars.div_ceil(4) as u64 + images * IMAGE_TOKENS).max(1)
}

/// The length of `value`'s compact JSON (`value.to_string().len()`), counted as it is
/// written, without the string.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
