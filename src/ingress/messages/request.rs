//! The Messages request read and translated to a chat request: [`to_chat`], the one reader.
//!
//! The body is read straight into typed, borrowing structs (strings without escapes are not
//! copied); each field is read as strictly as the translation needs it (see
//! [`ingress::json`](crate::ingress)), so a wrong shape is a 400 naming its field.

use super::config::MessagesConfig;
use crate::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role, Stop,
    StreamOptions, Tool, ToolCall,
};
use crate::error::ProxyError;
use crate::ingress::json::{self, present, Loose, LooseBool, LooseStr, Obj};
use crate::ingress::Dropped;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

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

/// Reads a Messages request body and translates it to the chat request. Unknown fields
/// (`context_management`, `output_config`, `container`, `mcp_servers`, …) are ignored; wrong
/// shapes are a 400 naming the field (`messages.2.content.0.source.data`).
pub fn to_chat(body: &[u8], config: &MessagesConfig) -> Result<Translated, ProxyError> {
    let Obj(body) = json::read::<Obj<Body<'_>>>(body)?;
    body.into_chat(config)
}

/// `content` (of a message, a system prompt or a `tool_result` block): a string, a list of
/// blocks, or something else the caller refuses or ignores.
#[derive(Default)]
enum BlockContent<'a> {
    /// Absent or `null`.
    #[default]
    Absent,
    Text(Cow<'a, str>),
    Blocks(Vec<Loose<Block<'a>>>),
    /// Any other value (read past).
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for BlockContent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = BlockContent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BlockContent::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BlockContent::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BlockContent::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(BlockContent::Blocks(blocks))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(BlockContent::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(BlockContent::Absent)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(BlockContent::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(BlockContent::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(BlockContent::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(BlockContent::Other)
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// The request body: what is translated block by block is typed, the small fields are kept
/// as values for [`rest`].
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    model: LooseStr<'a>,
    #[serde(borrow)]
    messages: Option<Vec<Obj<MessageIn<'a>>>>,
    #[serde(default, borrow)]
    system: BlockContent<'a>,
    #[serde(borrow)]
    tools: Option<Vec<Obj<ToolIn<'a>>>>,
    #[serde(default, deserialize_with = "present")]
    tool_choice: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    max_tokens: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    temperature: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    top_p: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    top_k: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    stop_sequences: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    thinking: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    output_config: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    stream: Option<Value>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(default, borrow)]
    role: LooseStr<'a>,
    #[serde(default, borrow)]
    content: BlockContent<'a>,
}

/// Any content block: the fields of every kind the translation reads, each read the way
/// that kind needs it (a field of the wrong type is refused where the kind needs it, below,
/// and ignored elsewhere).
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: LooseStr<'a>,
    #[serde(default, borrow)]
    text: LooseStr<'a>,
    #[serde(default, borrow)]
    title: LooseStr<'a>,
    #[serde(default, borrow)]
    id: LooseStr<'a>,
    #[serde(default, borrow)]
    name: LooseStr<'a>,
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    #[serde(default, borrow)]
    tool_use_id: LooseStr<'a>,
    #[serde(default, borrow)]
    content: BlockContent<'a>,
    #[serde(default)]
    is_error: LooseBool,
    #[serde(default, borrow)]
    thinking: LooseStr<'a>,
    #[serde(default, borrow)]
    source: Loose<Source<'a>>,
}

/// An image's or a document's `source`.
#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: LooseStr<'a>,
    #[serde(default, borrow)]
    media_type: LooseStr<'a>,
    #[serde(default, borrow)]
    data: LooseStr<'a>,
    #[serde(default, borrow)]
    url: LooseStr<'a>,
    /// A `content` document's content: a string or a list of text parts.
    #[serde(default, borrow)]
    content: BlockContent<'a>,
}

#[derive(Deserialize)]
struct ToolIn<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: LooseStr<'a>,
    #[serde(default)]
    defer_loading: LooseBool,
    #[serde(default, borrow)]
    name: LooseStr<'a>,
    #[serde(default, borrow)]
    description: LooseStr<'a>,
    #[serde(default, deserialize_with = "present")]
    input_schema: Option<Value>,
}

impl Body<'_> {
    fn into_chat(self, config: &MessagesConfig) -> Result<Translated, ProxyError> {
        let mut dropped = Dropped::new();
        let client_model = match self.model.into_string() {
            Some(m) if !m.trim().is_empty() => m,
            _ => return Err(invalid("model", "a non-empty string is required")),
        };
        let Some(messages) = self.messages else {
            return Err(invalid("messages", "a list of messages is required"));
        };
        if messages.is_empty() {
            return Err(invalid("messages", "at least one message is required"));
        }
        let mut system: Vec<String> = Vec::new();
        match self.system {
            BlockContent::Absent => {}
            BlockContent::Text(s) => system.push(s.into_owned()),
            BlockContent::Blocks(blocks) => {
                blocks_text(blocks, "system", &mut system, &mut dropped)?
            }
            BlockContent::Other => {
                return Err(invalid("system", "a string or a list of text blocks"))
            }
        }
        let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
        for (i, Obj(message)) in messages.into_iter().enumerate() {
            let content = message.content;
            match message.role.as_str() {
                Some("system") => match content {
                    BlockContent::Text(s) => system.push(s.into_owned()),
                    BlockContent::Blocks(blocks) => blocks_text(
                        blocks,
                        &format!("messages.{i}.content"),
                        &mut system,
                        &mut dropped,
                    )?,
                    BlockContent::Absent | BlockContent::Other => {
                        return Err(invalid(
                            &format!("messages.{i}.content"),
                            "a string or a list of blocks",
                        ))
                    }
                },
                Some("user") => user_message(content, i, &mut out, &mut dropped)?,
                Some("assistant") => out.push(assistant_message(content, i, config, &mut dropped)?),
                Some(other) => {
                    return Err(invalid(
                        &format!("messages.{i}.role"),
                        &format!(
                            "unknown role `{}`: expected `user` or `assistant`",
                            other.chars().take(40).collect::<String>()
                        ),
                    ))
                }
                None => return Err(invalid(&format!("messages.{i}.role"), "a role is required")),
            }
        }
        let tools = tools(self.tools, &mut dropped)?;
        let fields = [
            ("tool_choice", self.tool_choice.as_ref()),
            ("max_tokens", self.max_tokens.as_ref()),
            ("temperature", self.temperature.as_ref()),
            ("top_p", self.top_p.as_ref()),
            ("top_k", self.top_k.as_ref()),
            ("metadata", self.metadata.as_ref()),
            ("stop_sequences", self.stop_sequences.as_ref()),
            ("thinking", self.thinking.as_ref()),
            ("output_config", self.output_config.as_ref()),
            ("stream", self.stream.as_ref()),
        ];
        let get = |field: &str| fields.iter().find(|(name, _)| *name == field)?.1;
        let rest = rest(&get, tools.is_some(), config, &mut dropped)?;
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
}

/// The top-level fields after `tools`.
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
    if config.thinking_switch && thinking != Some(false) {
        if let Some(effort) = effort(get)? {
            extra.insert("reasoning_effort".into(), Value::String(effort.into()));
        }
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

/// The effort the client asked for, as chat's `reasoning_effort` word: Claude Code's
/// `output_config.effort` as it is (the model's profile fits it to what the model takes),
/// else the thinking budget in three steps (under 4,096 tokens `low`, under 16,384
/// `medium`, else `high`).
fn effort<'v>(get: &dyn Fn(&str) -> Option<&'v Value>) -> Result<Option<&'v str>, ProxyError> {
    match get("output_config").and_then(|c| c.get("effort")) {
        None | Some(Value::Null) => {}
        Some(Value::String(word)) if !word.is_empty() => return Ok(Some(word)),
        Some(_) => return Err(invalid("output_config.effort", "a word is required")),
    }
    let budget = match get("thinking").and_then(|t| t.get("budget_tokens")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or_default(),
        Some(_) => {
            return Err(invalid(
                "thinking.budget_tokens",
                "a non-negative integer is required",
            ))
        }
    };
    Ok(Some(match budget {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }))
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

/// A block and its type (taken out of it), or a 400 when it has none (or is no object).
fn typed_block<'a>(
    block: Option<Block<'a>>,
    path: &dyn Fn() -> String,
) -> Result<(Cow<'a, str>, Block<'a>), ProxyError> {
    match block {
        Some(mut block) => match block.kind.0.take() {
            Some(kind) => Ok((kind, block)),
            None => Err(invalid(
                &format!("{}.type", path()),
                "each block needs a `type`",
            )),
        },
        None => Err(invalid(
            &format!("{}.type", path()),
            "each block needs a `type`",
        )),
    }
}

/// The text a block can stand for: `text` blocks, `document` blocks with a text source, and
/// any other block with a `text` string. `None` when it has none.
fn block_text(block: Block<'_>, kind: &str) -> Option<String> {
    if kind == "document" {
        let source = block.source.0?;
        let text = match source.kind.as_str() {
            Some("text") => source.data.into_string()?,
            Some("content") => match source.content {
                BlockContent::Text(s) => s.into_owned(),
                BlockContent::Blocks(parts) => parts
                    .iter()
                    .filter_map(|p| p.0.as_ref().and_then(|p| p.text.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                BlockContent::Absent | BlockContent::Other => return None,
            },
            _ => return None,
        };
        return Some(match block.title.as_str() {
            Some(title) => format!("{title}\n\n{text}"),
            None => text,
        });
    }
    block.text.into_string()
}

/// How a dropped block is named (`block:<type>`).
pub(super) fn dropped_block(kind: &str) -> String {
    format!("block:{}", kind.chars().take(40).collect::<String>())
}

/// The texts of a list of blocks (system prompts): text-bearing blocks kept, others dropped.
fn blocks_text(
    blocks: Vec<Loose<Block<'_>>>,
    path: &str,
    texts: &mut Vec<String>,
    dropped: &mut Dropped,
) -> Result<(), ProxyError> {
    for (j, Loose(block)) in blocks.into_iter().enumerate() {
        let (kind, block) = typed_block(block, &|| format!("{path}.{j}"))?;
        match block_text(block, &kind) {
            Some(text) => texts.push(text),
            None => dropped.add(dropped_block(&kind)),
        }
    }
    Ok(())
}

/// An image block as an `image_url` part (`None`, reported, for sources it cannot carry).
fn image_part(
    block: Block<'_>,
    path: &dyn Fn() -> String,
    dropped: &mut Dropped,
) -> Result<Option<ContentPart>, ProxyError> {
    let source_path = || format!("{}.source", path());
    let Some(source) = block.source.0 else {
        return Err(invalid(&source_path(), "an image needs a `source` object"));
    };
    let url = match source.kind.as_str() {
        Some("base64") => {
            let media_type = source.media_type.as_str().ok_or_else(|| {
                invalid(
                    &format!("{}.media_type", source_path()),
                    "a string is required",
                )
            })?;
            let data = source.data.as_str().ok_or_else(|| {
                invalid(
                    &format!("{}.data", source_path()),
                    "a base64 string is required",
                )
            })?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => source
            .url
            .into_string()
            .ok_or_else(|| invalid(&format!("{}.url", source_path()), "a string is required"))?,
        Some(_) => {
            dropped.add("image:file");
            return Ok(None);
        }
        None => {
            return Err(invalid(
                &format!("{}.type", source_path()),
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
    content: BlockContent<'_>,
    i: usize,
    out: &mut Vec<Message>,
    dropped: &mut Dropped,
) -> Result<(), ProxyError> {
    let blocks = match content {
        BlockContent::Text(s) => {
            out.push(Message::text(Role::User, s.into_owned()));
            return Ok(());
        }
        BlockContent::Blocks(blocks) => blocks,
        BlockContent::Absent | BlockContent::Other => {
            return Err(invalid(
                &format!("messages.{i}.content"),
                "a string or a list of blocks",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut had_results = false;
    for (j, Loose(block)) in blocks.into_iter().enumerate() {
        let bpath = || format!("messages.{i}.content.{j}");
        let (kind, block) = typed_block(block, &bpath)?;
        match kind.as_ref() {
            "text" => {
                let text = block
                    .text
                    .into_string()
                    .ok_or_else(|| invalid(&format!("{}.text", bpath()), "a string is required"))?;
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
fn tool_message(
    block: Block<'_>,
    path: &dyn Fn() -> String,
    dropped: &mut Dropped,
) -> Result<Message, ProxyError> {
    let id = block
        .tool_use_id
        .into_string()
        .ok_or_else(|| invalid(&format!("{}.tool_use_id", path()), "a string is required"))?;
    let mut parts = Vec::new();
    match block.content {
        BlockContent::Absent => {}
        BlockContent::Text(s) => parts.push(ContentPart::text_part(s.into_owned())),
        BlockContent::Blocks(inner) => {
            for (k, Loose(b)) in inner.into_iter().enumerate() {
                let bpath = || format!("{}.content.{k}", path());
                let (kind, b) = typed_block(b, &bpath)?;
                match kind.as_ref() {
                    "image" => parts.extend(image_part(b, &bpath, dropped)?),
                    kind => match block_text(b, kind) {
                        Some(text) => parts.push(ContentPart::text_part(text)),
                        None => dropped.add(dropped_block(kind)),
                    },
                }
            }
        }
        BlockContent::Other => {
            return Err(invalid(
                &format!("{}.content", path()),
                "a string or a list of blocks",
            ))
        }
    }
    Ok(tool_result_message(
        id,
        parts,
        block.is_error.0 == Some(true),
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
    content: BlockContent<'_>,
    i: usize,
    config: &MessagesConfig,
    dropped: &mut Dropped,
) -> Result<Message, ProxyError> {
    let mut message = Message::text(Role::Assistant, "");
    let blocks = match content {
        BlockContent::Text(s) => {
            message.content = Some(Content::Text(s.into_owned()));
            return Ok(message);
        }
        BlockContent::Blocks(blocks) => blocks,
        BlockContent::Absent | BlockContent::Other => {
            return Err(invalid(
                &format!("messages.{i}.content"),
                "a string or a list of blocks",
            ))
        }
    };
    let mut texts: Vec<String> = Vec::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (j, Loose(block)) in blocks.into_iter().enumerate() {
        let bpath = || format!("messages.{i}.content.{j}");
        let (kind, block) = typed_block(block, &bpath)?;
        match kind.as_ref() {
            "text" => {
                let text = block
                    .text
                    .into_string()
                    .ok_or_else(|| invalid(&format!("{}.text", bpath()), "a string is required"))?;
                if !text.is_empty() {
                    texts.push(text);
                }
            }
            "tool_use" => {
                let id = block
                    .id
                    .into_string()
                    .ok_or_else(|| invalid(&format!("{}.id", bpath()), "a string is required"))?;
                let name = block
                    .name
                    .into_string()
                    .ok_or_else(|| invalid(&format!("{}.name", bpath()), "a string is required"))?;
                let arguments = match block.input {
                    Some(input) => input.to_string(),
                    None => "{}".to_owned(),
                };
                calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall { name, arguments },
                    extra: Map::new(),
                });
            }
            "thinking" => {
                if config.reasoning_history {
                    if let Some(t) = block.thinking.as_str() {
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
fn tools(
    list: Option<Vec<Obj<ToolIn<'_>>>>,
    dropped: &mut Dropped,
) -> Result<Option<Vec<Tool>>, ProxyError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, Obj(tool)) in list.into_iter().enumerate() {
        match tool.kind.as_str() {
            None | Some("custom") => {}
            Some(kind) => {
                dropped.add(format!(
                    "tool:{}",
                    kind.chars().take(40).collect::<String>()
                ));
                continue;
            }
        }
        if tool.defer_loading.0 == Some(true) {
            dropped.add("tool:deferred");
            continue;
        }
        let name = tool
            .name
            .into_string()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(&format!("tools.{i}.name"), "a non-empty string is required"))?;
        let parameters = match tool.input_schema {
            Some(schema @ Value::Object(_)) => schema,
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(_) => {
                return Err(invalid(
                    &format!("tools.{i}.input_schema"),
                    "an object is required",
                ))
            }
        };
        out.push(Tool {
            kind: "function".into(),
            function: FunctionDef {
                name,
                description: tool.description.into_string(),
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
