//! The Messages request read straight into typed, borrowing structs and translated from
//! them: the usual way in.
//!
//! It reads what well-formed requests carry and gives up (`None`) on anything else, rare
//! shapes included (`document` blocks, a wrong type anywhere, a duplicate field); the body is
//! then read again as a `serde_json::Value` by [`translate`](super::translate), which decides
//! and names the field of any error. What this reading accepts it translates exactly as
//! `translate` does: debug builds (the tests) check each result against it.

use super::config::MessagesConfig;
use super::request::{
    assemble, dropped_block, parts_to_content, rest, tool_result_message, Translated,
};
use crate::chat::{
    Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role, Tool, ToolCall,
};
use crate::ingress::Dropped;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The reading gave up: the `Value` path decides.
struct Bail;

type Read<T> = Result<T, Bail>;

/// Translates `body`, or `None` when the `Value` path has to (see the [module docs](self)).
pub(super) fn translate(body: &[u8], config: &MessagesConfig) -> Option<Translated> {
    let Obj(body) = serde_json::from_slice::<Obj<Body<'_>>>(body).ok()?;
    body.translate(config).ok()
}

/// A JSON string, borrowed from the body when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(StrVisitor)
    }
}

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }

    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

/// A struct read from a JSON object only (a derived struct would take an array too).
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(ObjVisitor(std::marker::PhantomData))
    }
}

/// A field kept as it is, `null` included (`Some(Value::Null)`), as `obj.get(field)` sees it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `content` or `system`: a string or a list of blocks.
enum TextOrBlocks<'a> {
    Text(Str<'a>),
    Blocks(Vec<Obj<Block<'a>>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for TextOrBlocks<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = TextOrBlocks<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TextOrBlocks::Text(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextOrBlocks::Text(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(TextOrBlocks::Text(Str(Cow::Owned(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(TextOrBlocks::Blocks(blocks))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// The request body: what is translated block by block is typed, the small fields are kept
/// as values for [`rest`].
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    messages: Option<Vec<Obj<MessageIn<'a>>>>,
    #[serde(borrow)]
    system: Option<TextOrBlocks<'a>>,
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
    stream: Option<Value>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow)]
    role: Option<Str<'a>>,
    #[serde(borrow)]
    content: Option<TextOrBlocks<'a>>,
}

/// Any content block: the fields of every kind the translation reads.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    #[serde(borrow)]
    tool_use_id: Option<Str<'a>>,
    #[serde(borrow)]
    content: Option<TextOrBlocks<'a>>,
    is_error: Option<bool>,
    #[serde(borrow)]
    thinking: Option<Str<'a>>,
    #[serde(borrow)]
    source: Option<Obj<Source<'a>>>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    media_type: Option<Str<'a>>,
    #[serde(borrow)]
    data: Option<Str<'a>>,
    #[serde(borrow)]
    url: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ToolIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    defer_loading: Option<bool>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    description: Option<Str<'a>>,
    #[serde(default, deserialize_with = "present")]
    input_schema: Option<Value>,
}

impl Body<'_> {
    fn translate(self, config: &MessagesConfig) -> Read<Translated> {
        let mut dropped = Dropped::new();
        let client_model = match self.model {
            Some(m) if !m.as_str().trim().is_empty() => m.into_string(),
            _ => return Err(Bail),
        };
        let messages = self.messages.filter(|m| !m.is_empty()).ok_or(Bail)?;
        let mut system: Vec<String> = Vec::new();
        match self.system {
            None => {}
            Some(TextOrBlocks::Text(s)) => system.push(s.into_string()),
            Some(TextOrBlocks::Blocks(blocks)) => blocks_text(blocks, &mut system, &mut dropped)?,
        }
        let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
        for Obj(message) in messages {
            let content = message.content.ok_or(Bail)?;
            match message.role.as_ref().map(Str::as_str) {
                Some("system") => match content {
                    TextOrBlocks::Text(s) => system.push(s.into_string()),
                    TextOrBlocks::Blocks(blocks) => blocks_text(blocks, &mut system, &mut dropped)?,
                },
                Some("user") => user_message(content, &mut out, &mut dropped)?,
                Some("assistant") => out.push(assistant_message(content, config, &mut dropped)?),
                _ => return Err(Bail),
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
            ("stream", self.stream.as_ref()),
        ];
        let get = |field: &str| fields.iter().find(|(name, _)| *name == field)?.1;
        let rest = rest(&get, tools.is_some(), config, &mut dropped).map_err(|_| Bail)?;
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

/// The block's type (required).
fn kind<'b>(block: &'b Block<'_>) -> Read<&'b str> {
    block.kind.as_ref().map(Str::as_str).ok_or(Bail)
}

/// The text a block other than `text` stands for (`document` blocks are left to the
/// `Value` path).
fn block_text(block: &mut Block<'_>, kind: &str) -> Read<Option<String>> {
    if kind == "document" {
        return Err(Bail);
    }
    Ok(block.text.take().map(Str::into_string))
}

/// The texts of system blocks: text-bearing blocks kept, others dropped.
fn blocks_text(
    blocks: Vec<Obj<Block<'_>>>,
    texts: &mut Vec<String>,
    dropped: &mut Dropped,
) -> Read<()> {
    for Obj(mut block) in blocks {
        let kind = kind(&block)?.to_owned();
        match block_text(&mut block, &kind)? {
            Some(text) => texts.push(text),
            None => dropped.add(dropped_block(&kind)),
        }
    }
    Ok(())
}

fn image_part(block: Block<'_>, dropped: &mut Dropped) -> Read<Option<ContentPart>> {
    let Obj(source) = block.source.ok_or(Bail)?;
    let url = match source.kind.as_ref().map(Str::as_str) {
        Some("base64") => {
            let media_type = source.media_type.ok_or(Bail)?;
            let data = source.data.ok_or(Bail)?;
            format!("data:{};base64,{}", media_type.as_str(), data.as_str())
        }
        Some("url") => source.url.ok_or(Bail)?.into_string(),
        Some(_) => {
            dropped.add("image:file");
            return Ok(None);
        }
        None => return Err(Bail),
    };
    Ok(Some(ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    }))
}

fn user_message(
    content: TextOrBlocks<'_>,
    out: &mut Vec<Message>,
    dropped: &mut Dropped,
) -> Read<()> {
    let blocks = match content {
        TextOrBlocks::Text(s) => {
            out.push(Message::text(Role::User, s.into_string()));
            return Ok(());
        }
        TextOrBlocks::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut had_results = false;
    for Obj(mut block) in blocks {
        match kind(&block)? {
            "text" => {
                let text = block.text.ok_or(Bail)?;
                parts.push(ContentPart::text_part(text.into_string()));
            }
            "image" => parts.extend(image_part(block, dropped)?),
            "tool_result" => {
                had_results = true;
                out.push(tool_message(block, dropped)?);
            }
            kind => {
                let kind = kind.to_owned();
                match block_text(&mut block, &kind)? {
                    Some(text) => parts.push(ContentPart::text_part(text)),
                    None => dropped.add(dropped_block(&kind)),
                }
            }
        }
    }
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

fn tool_message(block: Block<'_>, dropped: &mut Dropped) -> Read<Message> {
    let id = block.tool_use_id.ok_or(Bail)?.into_string();
    let mut parts = Vec::new();
    match block.content {
        None => {}
        Some(TextOrBlocks::Text(s)) => parts.push(ContentPart::text_part(s.into_string())),
        Some(TextOrBlocks::Blocks(inner)) => {
            for Obj(mut b) in inner {
                match kind(&b)? {
                    "image" => parts.extend(image_part(b, dropped)?),
                    kind => {
                        let kind = kind.to_owned();
                        match block_text(&mut b, &kind)? {
                            Some(text) => parts.push(ContentPart::text_part(text)),
                            None => dropped.add(dropped_block(&kind)),
                        }
                    }
                }
            }
        }
    }
    Ok(tool_result_message(id, parts, block.is_error == Some(true)))
}

fn assistant_message(
    content: TextOrBlocks<'_>,
    config: &MessagesConfig,
    dropped: &mut Dropped,
) -> Read<Message> {
    let mut message = Message::text(Role::Assistant, "");
    let blocks = match content {
        TextOrBlocks::Text(s) => {
            message.content = Some(Content::Text(s.into_string()));
            return Ok(message);
        }
        TextOrBlocks::Blocks(blocks) => blocks,
    };
    let mut texts: Vec<String> = Vec::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for Obj(mut block) in blocks {
        match kind(&block)? {
            "text" => {
                let text = block.text.ok_or(Bail)?;
                if !text.as_str().is_empty() {
                    texts.push(text.into_string());
                }
            }
            "tool_use" => {
                let id = block.id.ok_or(Bail)?.into_string();
                let name = block.name.ok_or(Bail)?.into_string();
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
                    if let Some(t) = &block.thinking {
                        reasoning.push_str(t.as_str());
                    }
                }
            }
            "redacted_thinking" => {}
            kind => {
                let kind = kind.to_owned();
                match block_text(&mut block, &kind)? {
                    Some(text) => texts.push(text),
                    None => dropped.add(dropped_block(&kind)),
                }
            }
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

fn tools(list: Option<Vec<Obj<ToolIn<'_>>>>, dropped: &mut Dropped) -> Read<Option<Vec<Tool>>> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for Obj(tool) in list {
        match tool.kind.as_ref().map(Str::as_str) {
            None | Some("custom") => {}
            Some(kind) => {
                dropped.add(format!(
                    "tool:{}",
                    kind.chars().take(40).collect::<String>()
                ));
                continue;
            }
        }
        if tool.defer_loading == Some(true) {
            dropped.add("tool:deferred");
            continue;
        }
        let name = tool
            .name
            .filter(|n| !n.as_str().is_empty())
            .ok_or(Bail)?
            .into_string();
        let parameters = match tool.input_schema {
            Some(schema @ Value::Object(_)) => schema,
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(_) => return Err(Bail),
        };
        out.push(Tool {
            kind: "function".into(),
            function: FunctionDef {
                name,
                description: tool.description.map(Str::into_string),
                parameters: Some(parameters),
                extra: Map::new(),
            },
            extra: Map::new(),
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fast reading of `body`, checked against the `Value` path: the same translation, or
    /// `None` where that path decides.
    fn both(body: &Value, config: &MessagesConfig) -> Option<Translated> {
        let fast = translate(body.to_string().as_bytes(), config);
        match (&fast, super::super::translate(body, config)) {
            (Some(fast), Ok(slow)) => assert_eq!(fast, &slow, "{body}"),
            (Some(_), Err(err)) => panic!("taken, but the value path says {err}: {body}"),
            (None, _) => {}
        }
        fast
    }

    #[test]
    fn common_requests_read_the_same_both_ways() {
        let config = MessagesConfig {
            reasoning_history: true,
            thinking_switch: true,
            ..MessagesConfig::default()
        };
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100, "temperature": 0.5, "top_k": 3,
            "system": [{"type": "text", "text": "Be \"brief\".", "cache_control": {"type": "ephemeral"}},
                       {"type": "mystery"}],
            "metadata": {"user_id": "u1"}, "stop_sequences": ["END"],
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "stream": true,
            "tool_choice": {"type": "tool", "name": "Read"},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look\u{e9}"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "image", "source": {"type": "file", "file_id": "f"}},
                    {"type": "server_note", "text": "kept"}, {"type": "other"}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "redacted_thinking", "data": "x"}, {"type": "text", "text": ""},
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"z": 1, "a": [true, null]}},
                    {"type": "tool_use", "id": "t2", "name": "Read"},
                    {"type": "tool_use", "id": "t3", "name": "Read", "input": null}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": true,
                     "content": [{"type": "text", "text": "bad"}, {"type": "image",
                        "source": {"type": "url", "url": "https://x/z.png"}}, {"type": "x"}]},
                    {"type": "tool_result", "tool_use_id": "t3", "is_error": true}]},
                {"role": "system", "content": "Later system."},
                {"role": "assistant", "content": "Plain."}
            ],
            "tools": [{"name": "Read", "description": "Reads", "input_schema": {"type": "object"}},
                      {"name": "Bare"}, {"type": "web_search_20250305", "name": "web_search"},
                      {"name": "Later", "defer_loading": true}]
        });
        let t = both(&body, &config).expect("read fast");
        assert!(!t.dropped.is_empty());
        for config in [MessagesConfig::default(), config] {
            let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "system": "s", "tools": null, "stream": null, "metadata": "not an object"});
            both(&plain, &config).expect("read fast");
        }
    }

    #[test]
    fn odd_shapes_are_left_to_the_value_path() {
        let config = MessagesConfig::default();
        let user = |content: Value| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
        for body in [
            json!([1, 2]),
            json!({"model": "m", "messages": []}),
            json!({"model": " ", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "m", "messages": [["user", "hi"]]}),
            json!({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": null}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [["x"]]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "x", "description": 5}]}),
            user(json!([["text", "hi"]])),
            user(json!([{"type": "text"}])),
            user(json!([{"text": "no type"}])),
            user(json!([{"type": "document", "source": {"type": "text", "data": "doc"}}])),
            user(json!([{"type": "image", "source": ["base64", "image/png", "AAAA", null]}])),
            user(json!([{"type": "image", "source": {"type": "base64", "data": "AAAA"}}])),
            user(json!([{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}])),
            user(json!([{"type": "tool_result", "tool_use_id": "t", "content": {"a": 1}}])),
        ] {
            assert!(both(&body, &config).is_none(), "{body}");
        }
        // A duplicate field, which a `Value` reads as its last occurrence.
        let body =
            br#"{"model": "a", "model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;
        assert!(translate(body, &config).is_none());
    }
}
