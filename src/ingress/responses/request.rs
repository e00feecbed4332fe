//! The Responses request, and [`to_chat`], which asks Hunyuan the same thing as a chat request.
//!
//! | Responses | chat |
//! |---|---|
//! | `instructions`, `system`/`developer` messages anywhere in `input` | the one system message, joined in order |
//! | `input` string | one user message |
//! | `message` (user/assistant; unknown roles as user, reported `role:<name>`) | a message; parts `input_text`/`output_text`/`refusal` → text, `input_image` URL or data URL → `image_url` (the cascade describes it) |
//! | `input_image` by `file_id`, `input_file`, `input_audio` | 400 naming the part |
//! | `function_call` | `tool_calls` on the assistant message of its turn (`call_id` is the id) |
//! | `function_call_output` (string or parts) | a `tool` message |
//! | `reasoning` | its `encrypted_content` opened → `reasoning_content` of the turn's assistant message when [`reasoning_history`](super::ResponsesOptions::reasoning_history) is on; else dropped silently |
//! | `item_reference` | the stored item; unknown → dropped, reported `item:item_reference` |
//! | any other item type | dropped, reported `item:<type>` |
//! | `function` tools | functions (`strict` dropped) |
//! | `namespace` tools | flattened: `multi_agent_v1` + `spawn_agent` → `multi_agent_v1__spawn_agent` |
//! | built-in tools (`web_search*`, `file_search`, `computer_use*`, `mcp`, `custom`, …) | dropped, reported `tool:<type>` |
//! | `tool_choice` `auto`/`none`/`required`/`{type: function, name}` | `tool_choice` (a choice naming a dropped tool is dropped, reported `field:tool_choice`) |
//! | `parallel_tool_calls`, `temperature`, `top_p` | the same fields |
//! | `max_output_tokens` | `max_tokens` |
//! | `reasoning.effort` | `reasoning_effort` when [`pass_reasoning_effort`](super::ResponsesOptions::pass_reasoning_effort); else reported |
//! | `text.format` `json_schema`/`json_object` | `response_format` when [`response_format`](super::ResponsesOptions::response_format); else reported |
//! | `previous_response_id` | the stored turn's input and output items, prepended (unknown → 404 `previous_response_not_found`) |
//! | `stream: true` | `stream: true` with `stream_options.include_usage` (the fixer supplies usage Hunyuan omits) |
//! | `store`, `metadata`, `user`, `prompt_cache_key`, `client_metadata`, `include`, `truncation`, `service_tier` | not sent (echoed in the response where the API echoes them) |
//! | any other field | not sent, reported `field:<name>` |
//!
//! Consecutive assistant-side items (assistant messages, function calls, reasoning) between two
//! user or tool turns form one assistant message, the way Hunyuan produced them.
//!
//! Every tool name sent upstream is made of `[A-Za-z0-9_-]`, at most 64 characters, unique;
//! [`ToolNames`] maps it back to the client's name and namespace for the answer. `model` is
//! passed as given.

use super::error::ResponsesError;
use super::reasoning::ReasoningCodec;
use super::response::{response_id_of_item, Echo, ResponseContext};
use super::store::ResponseStore;
pub use super::tool_names::{ToolNames, MAX_TOOL_NAME};
use super::{Dropped, ResponsesOptions};
use crate::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role,
    StreamOptions, Tool, ToolCall,
};
use crate::error::ProxyError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Number, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Request fields the translation leaves out without reporting them: they change nothing the
/// upstream could honour.
const IGNORED_FIELDS: &[&str] = &[
    "prompt_cache_key",
    "prompt_cache_retention",
    "client_metadata",
    "include",
    "truncation",
    "service_tier",
    "stream_options",
    "safety_identifier",
];

/// An OpenAI `POST /v1/responses` request.
///
/// Fields the translation acts on are typed; every other field is kept in
/// [`extra`](Self::extra) (never an error). Input items and tools stay JSON values here and
/// are read by [`to_chat`], so that an unknown item type or tool is dropped and reported
/// instead of failing the whole request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ResponsesRequest {
    /// The model name, passed on as given.
    #[serde(default)]
    pub model: String,
    /// The input: a string or a list of items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    /// System instructions (a string; a list of messages is read for its text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Value>,
    /// Tools: `function`, `namespace`, built-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required` or `{"type": "function", "name": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The answer's token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Number>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Number>,
    /// `effort` and `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningParams>,
    /// `format` (and `verbosity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextParams>,
    /// Whether the answer is streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Whether the response is stored for later turns (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// The stored response this turn continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// Client metadata, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// An end-user id, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesRequest {
    /// Parses a request body: 400 `invalid_json` when it is not JSON, 400 when a known field
    /// has the wrong type. Unknown fields are kept.
    pub fn from_slice(body: &[u8]) -> Result<Self, ResponsesError> {
        serde_json::from_slice(body).map_err(|err| {
            let error = if err.is_syntax() || err.is_eof() {
                ProxyError::InvalidJson {
                    detail: format!("line {} column {}", err.line(), err.column()),
                }
            } else {
                ProxyError::invalid_request(format!("invalid Responses request: {err}"))
            };
            ResponsesError::Proxy(error)
        })
    }
}

/// `input`: a string (one user message) or a list of items.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Input items (`message`, `function_call`, `function_call_output`, `reasoning`, …).
    Items(Vec<Value>),
}

/// Read straight from the parser, as `#[serde(untagged)]` would (a string, else a list),
/// without buffering the whole input first; anything else is the error untagged gives, raised
/// after the value (so it points where untagged's does).
impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
        /// `None`: neither a string nor a list.
        struct InputVisitor;
        impl<'de> Visitor<'de> for InputVisitor {
            type Value = Option<Input>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of items")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Some(Input::Text(v.to_owned())))
            }
            fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Some(Input::Text(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Some(Input::Items(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        deserializer.deserialize_any(InputVisitor)?.ok_or_else(|| {
            D::Error::custom("data did not match any variant of untagged enum Input")
        })
    }
}

/// `reasoning` of a request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ReasoningParams {
    /// `minimal`, `low`, `medium`, `high`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// `auto`, `concise`, `detailed` (or `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text` of a request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TextParams {
    /// `{"type": "text" | "json_object" | "json_schema", …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Other fields (`verbosity`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A translated request.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The chat request to send through the chat stack.
    pub chat: ChatRequest,
    /// What could not be carried.
    pub dropped: Dropped,
    /// The resolved input items (earlier turns prepended, references replaced), to store
    /// beside the answer when `store` is on ([`StoredResponse::new`](super::StoredResponse::new)).
    /// The ingress leaves them empty for a `store: false` request, which is never stored.
    pub input_items: Vec<Value>,
    /// What the answer side needs ([`from_completion`](super::from_completion),
    /// [`ResponsesStream`](super::ResponsesStream)); holds the tool-name map.
    pub context: ResponseContext,
}

impl Translated {
    /// The tool names sent upstream and the client's originals.
    pub fn tool_names(&self) -> &ToolNames {
        &self.context.tool_names
    }

    /// Whether the client asked for the response to be stored (`store`, default true).
    pub fn store(&self) -> bool {
        self.context.echo.store
    }

    /// The entry to store for this turn once `response` is known (from
    /// [`from_completion`](super::from_completion) or
    /// [`ResponsesStream::response`](super::ResponsesStream::response)).
    pub fn to_stored(&self, response: super::ResponseObject) -> super::StoredResponse {
        super::StoredResponse::new(self.input_items.clone(), response)
    }
}

/// Where an input item came from, for error paths.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    /// The stored turn of `previous_response_id`.
    Previous,
    /// `input[i]` of this request.
    Input(usize),
}

impl Origin {
    fn path(self) -> String {
        match self {
            Origin::Previous => "previous_response_id".to_owned(),
            Origin::Input(i) => format!("input[{i}]"),
        }
    }
}

/// The type of an input item (`message` when it has a role and no type).
pub(super) fn item_type<I: ItemView + ?Sized>(item: &I) -> Option<&str> {
    match item.field("type").and_then(Value::as_str) {
        Some(kind) => Some(kind),
        None if item.field("role").is_some() => Some("message"),
        None => None,
    }
}

/// `content` or `output` of an input item as the translation reads it.
pub(super) enum ContentView<'a, P> {
    /// Absent or `null`.
    Null,
    /// A string.
    Text(&'a str),
    /// A list of parts.
    Parts(&'a [P]),
    /// Anything else (an object, a number…).
    Other(&'a Value),
}

/// An input item as the translation reads it: a JSON value, or the typed reading of
/// [`fast`](super::fast). Scalar fields come as `Value::get` gives them.
pub(super) trait ItemView {
    /// A part of its content.
    type Part: PartView;
    /// Whether it is a JSON object.
    fn is_object(&self) -> bool;
    /// The field `key`, as `Value::get` gives it.
    fn field(&self, key: &str) -> Option<&Value>;
    /// The field `key` holding content (`content`, `output`).
    fn content(&self, key: &str) -> ContentView<'_, Self::Part>;
}

/// A content part as the translation reads it.
pub(super) trait PartView {
    /// The part itself, when it is a plain string.
    fn as_text(&self) -> Option<&str>;
    /// The field `key`, as `Value::get` gives it.
    fn field(&self, key: &str) -> Option<&Value>;
}

impl ItemView for Value {
    type Part = Value;
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
    fn content(&self, key: &str) -> ContentView<'_, Value> {
        match self.get(key) {
            None | Some(Value::Null) => ContentView::Null,
            Some(Value::String(s)) => ContentView::Text(s),
            Some(Value::Array(parts)) => ContentView::Parts(parts),
            Some(other) => ContentView::Other(other),
        }
    }
}

impl PartView for Value {
    fn as_text(&self) -> Option<&str> {
        self.as_str()
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

/// Translates a Responses request into a chat request; see the [module docs](self) for every
/// rule. Reads `store` for `previous_response_id` and `item_reference` (without a store, both
/// are unknown).
pub async fn to_chat(
    mut req: ResponsesRequest,
    options: &ResponsesOptions,
    store: Option<&dyn ResponseStore>,
) -> Result<Translated, ResponsesError> {
    let mut items: Vec<(Origin, Value)> = Vec::new();
    if let Some(id) = req.previous_response_id.as_deref() {
        let stored = match store {
            Some(store) => store.get(id).await?,
            None => None,
        };
        let stored =
            stored.ok_or_else(|| ResponsesError::PreviousResponseNotFound { id: id.to_owned() })?;
        items.extend(
            stored
                .replay_items()
                .into_iter()
                .map(|v| (Origin::Previous, v)),
        );
    }
    let mut dropped = Dropped::default();
    let no_input = match &req.input {
        None => true,
        Some(Input::Items(list)) => list.is_empty(),
        Some(Input::Text(_)) => false,
    };
    if no_input && items.is_empty() {
        return Err(ResponsesError::invalid(
            "`input` is required (a string or a list of items)",
            "input",
        ));
    }
    match req.input.take() {
        None => {}
        Some(Input::Text(text)) => items.push((
            Origin::Input(0),
            json!({"type": "message", "role": "user", "content": text}),
        )),
        Some(Input::Items(list)) => {
            let mut fetched: HashMap<String, Option<Arc<super::StoredResponse>>> = HashMap::new();
            for (i, item) in list.into_iter().enumerate() {
                if item_type(&item) != Some("item_reference") {
                    items.push((Origin::Input(i), item));
                    continue;
                }
                let found = match (store, item.get("id").and_then(Value::as_str)) {
                    (Some(store), Some(id)) => match response_id_of_item(id) {
                        Some(resp) => {
                            if !fetched.contains_key(&resp) {
                                let entry = store.get(&resp).await?;
                                fetched.insert(resp.clone(), entry);
                            }
                            fetched[&resp].as_ref().and_then(|s| s.item(id))
                        }
                        None => None,
                    },
                    _ => None,
                };
                match found {
                    Some(found) => items.push((Origin::Input(i), found)),
                    None => dropped.push("item:item_reference"),
                }
            }
        }
    }
    translate(req, items, options, dropped)
}

/// The synchronous part of [`to_chat`]: every item is at hand.
fn translate(
    req: ResponsesRequest,
    items: Vec<(Origin, Value)>,
    options: &ResponsesOptions,
    dropped: Dropped,
) -> Result<Translated, ResponsesError> {
    let mut translated = translate_items(req, &items, options, dropped)?;
    translated.input_items = items.into_iter().map(|(_, v)| v).collect();
    Ok(translated)
}

/// [`translate`] over items of any reading; the result's `input_items` are left empty.
pub(super) fn translate_items<I: ItemView>(
    mut req: ResponsesRequest,
    items: &[(Origin, I)],
    options: &ResponsesOptions,
    mut dropped: Dropped,
) -> Result<Translated, ResponsesError> {
    let mut names = ToolNames::default();
    let tools = translate_tools(
        req.tools.as_deref().unwrap_or_default(),
        &mut names,
        &mut dropped,
    )?;

    let mut conversation = Conversation {
        codec: options.reasoning_history.then_some(&options.codec),
        names: &mut names,
        dropped: &mut dropped,
        system: Vec::new(),
        messages: Vec::new(),
        assistant_open: false,
        pending_reasoning: String::new(),
    };
    if let Some(instructions) = &req.instructions {
        let text = match instructions {
            Value::String(s) => s.clone(),
            other => text_of(other),
        };
        if !text.is_empty() {
            conversation.system.push(text);
        }
    }
    for (origin, item) in items {
        conversation.item(*origin, item)?;
    }
    let Conversation {
        system,
        mut messages,
        ..
    } = conversation;
    if !system.is_empty() {
        messages.insert(0, Message::text(Role::System, system.join("\n\n")));
    }

    let mut extra = Map::new();
    let tool_choice = translate_tool_choice(req.tool_choice.as_ref(), &tools, &names, &mut dropped);
    if let Some(choice) = tool_choice {
        extra.insert("tool_choice".into(), choice);
    }
    if let (Some(parallel), false) = (req.parallel_tool_calls, tools.is_empty()) {
        extra.insert("parallel_tool_calls".into(), Value::Bool(parallel));
    }
    if let Some(max) = req.max_output_tokens {
        extra.insert("max_tokens".into(), Value::from(max));
    }
    if let Some(t) = &req.temperature {
        extra.insert("temperature".into(), Value::Number(t.clone()));
    }
    if let Some(p) = &req.top_p {
        extra.insert("top_p".into(), Value::Number(p.clone()));
    }
    let reasoning = req.reasoning.take().unwrap_or_default();
    if let Some(effort) = &reasoning.effort {
        if options.pass_reasoning_effort {
            extra.insert("reasoning_effort".into(), Value::String(effort.clone()));
        } else {
            dropped.push("field:reasoning.effort");
        }
    }
    let format = req.text.as_ref().and_then(|t| t.format.as_ref());
    if let Some(format) = format {
        match response_format(format) {
            Ok(None) => {}
            Ok(Some(chat_format)) if options.response_format => {
                extra.insert("response_format".into(), chat_format);
            }
            Ok(Some(_)) | Err(()) => dropped.push("field:text.format"),
        }
    }
    for key in req.extra.keys() {
        if !IGNORED_FIELDS.contains(&key.as_str()) {
            dropped.push(format!("field:{key}"));
        }
    }

    let stream = req.stream == Some(true);
    let chat = ChatRequest {
        model: req.model.clone(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        tools: (!tools.is_empty()).then_some(tools),
        stop: None,
        extra,
    };

    let mut text_echo = match &req.text {
        Some(text) => serde_json::to_value(text).unwrap_or_else(|_| json!({})),
        None => json!({}),
    };
    if text_echo.get("format").is_none() {
        text_echo["format"] = json!({"type": "text"});
    }
    let echo = Echo {
        instructions: req.instructions.take(),
        tools: req.tools.take().unwrap_or_default(),
        tool_choice: req.tool_choice.take().unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        previous_response_id: req.previous_response_id.take(),
        store: req.store.unwrap_or(true),
        temperature: req.temperature.take(),
        top_p: req.top_p.take(),
        max_output_tokens: req.max_output_tokens,
        metadata: req.metadata.take().unwrap_or_else(|| json!({})),
        user: req.user.take(),
        reasoning: json!({"effort": reasoning.effort, "summary": reasoning.summary}),
        text: text_echo,
    };
    // Built whole: `ResponseContext::new` would make a codec and echo defaults only to have
    // them replaced.
    let context = ResponseContext {
        id: super::new_id("resp"),
        created_at: super::unix_now(),
        model: req.model,
        tool_names: names,
        codec: options.codec.clone(),
        reasoning_summary: reasoning
            .summary
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != "none"),
        echo,
    };

    Ok(Translated {
        chat,
        dropped,
        input_items: Vec::new(),
        context,
    })
}

/// Function tools, namespaces flattened; built-ins dropped and reported.
fn translate_tools(
    tools: &[Value],
    names: &mut ToolNames,
    dropped: &mut Dropped,
) -> Result<Vec<Tool>, ResponsesError> {
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str).unwrap_or("") {
            "function" => out.push(function_tool(tool, None, names, || format!("tools[{i}]"))?),
            "namespace" => {
                let Some(ns) = tool.get("name").and_then(Value::as_str) else {
                    return Err(ResponsesError::invalid(
                        "a namespace tool needs a `name`",
                        format!("tools[{i}].name"),
                    ));
                };
                let children = tool.get("tools").and_then(Value::as_array);
                for (j, child) in children.into_iter().flatten().enumerate() {
                    match child
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("function")
                    {
                        "function" => out.push(function_tool(child, Some(ns), names, || {
                            format!("tools[{i}].tools[{j}]")
                        })?),
                        other => dropped.push(format!("tool:{other}")),
                    }
                }
            }
            "" => dropped.push("tool:unknown"),
            other => dropped.push(format!("tool:{other}")),
        }
    }
    Ok(out)
}

fn function_tool(
    tool: &Value,
    namespace: Option<&str>,
    names: &mut ToolNames,
    path: impl FnOnce() -> String,
) -> Result<Tool, ResponsesError> {
    let Some(name) = tool.get("name").and_then(Value::as_str) else {
        return Err(ResponsesError::invalid(
            "a function tool needs a `name`",
            format!("{}.name", path()),
        ));
    };
    Ok(Tool {
        kind: "function".to_owned(),
        function: FunctionDef {
            name: names.insert(namespace, name).to_owned(),
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: tool.get("parameters").filter(|p| !p.is_null()).cloned(),
            extra: Map::new(),
        },
        extra: Map::new(),
    })
}

/// The chat `tool_choice`, or `None` (reported when the client's choice could not be kept).
fn translate_tool_choice(
    choice: Option<&Value>,
    tools: &[Tool],
    names: &ToolNames,
    dropped: &mut Dropped,
) -> Option<Value> {
    let choice = choice?;
    if tools.is_empty() {
        if choice != "auto" && choice != "none" {
            dropped.push("field:tool_choice");
        }
        return None;
    }
    match choice {
        Value::String(mode) if ["auto", "none", "required"].contains(&mode.as_str()) => {
            Some(choice.clone())
        }
        Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("function") => {
            let name = obj.get("name").and_then(Value::as_str)?;
            let namespace = obj.get("namespace").and_then(Value::as_str);
            // The client's name, or the flattened name itself.
            let sent = names
                .sent(namespace, name)
                .or_else(|| (namespace.is_none() && names.is_sent(name)).then_some(name));
            match sent {
                Some(sent) => Some(json!({"type": "function", "function": {"name": sent}})),
                None => {
                    dropped.push("field:tool_choice");
                    None
                }
            }
        }
        _ => {
            dropped.push("field:tool_choice");
            None
        }
    }
}

/// The chat `response_format` for a `text.format`: `Ok(None)` for plain text, `Err` for a
/// format chat has no counterpart for.
fn response_format(format: &Value) -> Result<Option<Value>, ()> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key) {
                    schema.insert(key.to_owned(), v.clone());
                }
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": Value::Object(schema)}),
            ))
        }
        Some(_) => Err(()),
    }
}

/// The text of a content value (a string or parts), images ignored.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p
                    .get("text")
                    .or_else(|| p.get("refusal"))
                    .and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(_) => content.get("content").map(text_of).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The conversation being built from input items.
struct Conversation<'a> {
    /// Opens replayed reasoning; `None` when reasoning history is off.
    codec: Option<&'a ReasoningCodec>,
    names: &'a mut ToolNames,
    dropped: &'a mut Dropped,
    /// System texts, in order.
    system: Vec<String>,
    messages: Vec<Message>,
    /// Whether the last message is an assistant message later assistant-side items join.
    assistant_open: bool,
    /// Reasoning waiting for the next assistant-side item of its turn (dropped if none comes).
    pending_reasoning: String,
}

impl Conversation<'_> {
    fn item<I: ItemView>(&mut self, origin: Origin, item: &I) -> Result<(), ResponsesError> {
        if !item.is_object() {
            return Err(ResponsesError::invalid(
                "an input item must be an object",
                origin.path(),
            ));
        }
        match item_type(item) {
            Some("message") => self.message(item, origin),
            Some("function_call") => self.function_call(item, origin),
            Some("function_call_output") => self.function_output(item, origin),
            Some("reasoning") => {
                self.reasoning(item);
                Ok(())
            }
            Some(other) => {
                self.dropped.push(format!("item:{other}"));
                Ok(())
            }
            None => {
                self.dropped.push("item:unknown");
                Ok(())
            }
        }
    }

    fn message<I: ItemView>(&mut self, item: &I, origin: Origin) -> Result<(), ResponsesError> {
        let content = || item.content("content");
        let role = item.field("role").and_then(Value::as_str).unwrap_or("user");
        match role {
            "system" | "developer" => {
                let content = self.content(content(), origin, "content", false)?;
                let text = content.map(|c| c.joined_text()).unwrap_or_default();
                if !text.is_empty() {
                    self.system.push(text);
                }
            }
            "assistant" => {
                let content = self.content(content(), origin, "content", false)?;
                let text = content.map(|c| c.joined_text()).unwrap_or_default();
                let message = self.assistant();
                match &mut message.content {
                    Some(Content::Text(existing)) if !existing.is_empty() => {
                        existing.push('\n');
                        existing.push_str(&text);
                    }
                    slot => *slot = Some(Content::Text(text)),
                }
            }
            other => {
                if other != "user" {
                    self.dropped.push(format!("role:{other}"));
                }
                let content = self.content(content(), origin, "content", true)?;
                self.close_assistant();
                let mut message = Message::text(Role::User, "");
                message.content = content;
                self.messages.push(message);
            }
        }
        Ok(())
    }

    fn function_call<I: ItemView>(
        &mut self,
        item: &I,
        origin: Origin,
    ) -> Result<(), ResponsesError> {
        let call_id = item
            .field("call_id")
            .or_else(|| item.field("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ResponsesError::invalid(
                    "a function_call needs a `call_id`",
                    format!("{}.call_id", origin.path()),
                )
            })?;
        let name = item.field("name").and_then(Value::as_str).ok_or_else(|| {
            ResponsesError::invalid(
                "a function_call needs a `name`",
                format!("{}.name", origin.path()),
            )
        })?;
        let namespace = item.field("namespace").and_then(Value::as_str);
        let sent = match self.names.sent(namespace, name) {
            Some(sent) => sent.to_owned(),
            // A flattened name replayed as such.
            None if namespace.is_none() && self.names.is_sent(name) => name.to_owned(),
            None => self.names.insert(namespace, name).to_owned(),
        };
        let arguments = match item.field("arguments") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => "{}".to_owned(),
        };
        let call = ToolCall {
            id: call_id.to_owned(),
            kind: "function".to_owned(),
            function: FunctionCall {
                name: sent,
                arguments,
            },
            extra: Map::new(),
        };
        self.assistant()
            .tool_calls
            .get_or_insert_with(Vec::new)
            .push(call);
        Ok(())
    }

    fn function_output<I: ItemView>(
        &mut self,
        item: &I,
        origin: Origin,
    ) -> Result<(), ResponsesError> {
        let call_id = item
            .field("call_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ResponsesError::invalid(
                    "a function_call_output needs a `call_id`",
                    format!("{}.call_id", origin.path()),
                )
            })?;
        let content = match item.content("output") {
            ContentView::Text(s) => Some(Content::Text(s.to_owned())),
            parts @ ContentView::Parts(_) => self.content(parts, origin, "output", true)?,
            ContentView::Null => Some(Content::Text(String::new())),
            ContentView::Other(other) => Some(Content::Text(match other.get("content") {
                Some(Value::String(s)) => s.clone(),
                _ => other.to_string(),
            })),
        };
        self.close_assistant();
        self.messages.push(Message {
            role: Role::Tool,
            content,
            name: None,
            tool_calls: None,
            tool_call_id: Some(call_id.to_owned()),
            extra: Map::new(),
        });
        Ok(())
    }

    fn reasoning<I: ItemView>(&mut self, item: &I) {
        let Some(codec) = self.codec else { return };
        let Some(text) = item
            .field("encrypted_content")
            .and_then(Value::as_str)
            .and_then(|blob| codec.open(blob))
        else {
            return;
        };
        // It belongs to the assistant-side items that follow it in the same turn.
        if !self.pending_reasoning.is_empty() {
            self.pending_reasoning.push('\n');
        }
        self.pending_reasoning.push_str(&text);
    }

    /// The assistant message of the current turn, opened when needed, with the reasoning
    /// that came before this item.
    fn assistant(&mut self) -> &mut Message {
        if !self.assistant_open {
            let mut message = Message::text(Role::Assistant, "");
            message.content = None;
            self.messages.push(message);
            self.assistant_open = true;
        }
        let reasoning = std::mem::take(&mut self.pending_reasoning);
        let message = self.messages.last_mut().expect("an open assistant message");
        if !reasoning.is_empty() {
            append_reasoning(message, &reasoning);
        }
        message
    }

    /// Ends the assistant turn: the next assistant-side item opens a new message, and
    /// reasoning no assistant message took is dropped.
    fn close_assistant(&mut self) {
        self.assistant_open = false;
        self.pending_reasoning.clear();
    }

    /// Message content from a string or a list of parts; images kept only when `images`.
    fn content<P: PartView>(
        &mut self,
        content: ContentView<'_, P>,
        origin: Origin,
        field: &str,
        images: bool,
    ) -> Result<Option<Content>, ResponsesError> {
        let parts = match content {
            ContentView::Null => return Ok(None),
            ContentView::Text(s) => return Ok(Some(Content::Text(s.to_owned()))),
            ContentView::Parts(parts) => parts,
            ContentView::Other(_) => {
                return Err(ResponsesError::invalid(
                    "content must be a string or a list of parts",
                    format!("{}.{field}", origin.path()),
                ))
            }
        };
        let mut out: Vec<ContentPart> = Vec::new();
        for (j, part) in parts.iter().enumerate() {
            let part_path = || format!("{}.{field}[{j}]", origin.path());
            if let Some(s) = part.as_text() {
                out.push(ContentPart::text_part(s));
                continue;
            }
            let kind = part.field("type").and_then(Value::as_str).unwrap_or("");
            match kind {
                "input_text" | "output_text" | "text" | "summary_text" => {
                    let text = part
                        .field("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    out.push(ContentPart::text_part(text));
                }
                "refusal" => {
                    let text = part
                        .field("refusal")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    out.push(ContentPart::text_part(text));
                }
                "input_image" => {
                    let url = match part.field("image_url") {
                        Some(Value::String(url)) => Some(url.clone()),
                        Some(obj) => obj.get("url").and_then(Value::as_str).map(str::to_owned),
                        None => None,
                    };
                    let Some(url) = url else {
                        let message = if part.field("file_id").is_some() {
                            "input_image by file_id is not supported (the proxy keeps no files): send the image as an https URL or a data: URL"
                        } else {
                            "input_image needs an image_url (an https URL or a data: URL)"
                        };
                        return Err(ResponsesError::invalid(message, part_path()));
                    };
                    if images {
                        let detail = part
                            .field("detail")
                            .and_then(Value::as_str)
                            .filter(|d| *d != "auto")
                            .map(str::to_owned);
                        out.push(ContentPart::ImageUrl {
                            image_url: ImageUrl { url, detail },
                        });
                    } else {
                        self.dropped.push("part:input_image");
                    }
                }
                "input_file" => {
                    return Err(ResponsesError::invalid(
                        "input_file parts are not supported: send the file's text as input_text",
                        part_path(),
                    ))
                }
                "input_audio" => {
                    return Err(ResponsesError::invalid(
                        "input_audio parts are not supported: the upstream takes text and images",
                        part_path(),
                    ))
                }
                "" => self.dropped.push("part:unknown"),
                other => self.dropped.push(format!("part:{other}")),
            }
        }
        if out.iter().any(|p| p.image_url().is_some()) {
            Ok(Some(Content::Parts(out)))
        } else {
            Ok(Some(Content::Text(Content::Parts(out).joined_text())))
        }
    }
}

fn append_reasoning(message: &mut Message, text: &str) {
    match message.extra.get_mut("reasoning_content") {
        Some(Value::String(existing)) if !existing.is_empty() => {
            existing.push('\n');
            existing.push_str(text);
        }
        _ => {
            message
                .extra
                .insert("reasoning_content".into(), Value::String(text.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests;
