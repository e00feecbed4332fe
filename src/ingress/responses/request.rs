//! The Responses request read and translated to a chat request: [`to_chat`], the one reader.
//!
//! The body is read straight into typed, borrowing structs (strings without escapes are not
//! copied), each field as strictly as the translation needs it (see
//! [`ingress::json`](crate::ingress)): a known field of the wrong type, or given twice, is a 400
//! naming it in OpenAI's style (`input[2].content[0].image_url`). The items of a stored turn
//! (`previous_response_id`) and of an `item_reference` are read through the same types.
//!
//! | Responses | chat |
//! |---|---|
//! | `instructions`, `system`/`developer` messages anywhere in `input` | the one system message, joined in order |
//! | `input` string | one user message |
//! | `message` (user/assistant; unknown roles as user, reported `role:<name>`) | a message; parts `input_text`/`output_text`/`refusal` → text, `input_image` URL or data URL → `image_url` (the cascade describes it) |
//! | `input_image` by `file_id`, `input_file`, `input_audio` | 400 naming the part |
//! | `function_call` | `tool_calls` on the assistant message of its turn (`call_id` is the id) |
//! | `function_call_output` (string or parts) | a `tool` message |
//! | `reasoning` | its `encrypted_content` opened → `reasoning_content` of the turn's assistant message when [`reasoning_history`](super::ResponsesConfig::reasoning_history) is on; else dropped silently |
//! | `item_reference` | the stored item; unknown → dropped, reported `item:item_reference` |
//! | any other item type | dropped, reported `item:<type>` |
//! | `function` tools | functions (`strict` dropped) |
//! | `namespace` tools | flattened: `multi_agent_v1` + `spawn_agent` → `multi_agent_v1__spawn_agent` |
//! | built-in tools (`web_search*`, `file_search`, `computer_use*`, `mcp`, `custom`, …) | dropped, reported `tool:<type>` |
//! | `tool_choice` `auto`/`none`/`required`/`{type: function, name}` | `tool_choice` (a choice naming a dropped tool is dropped, reported `field:tool_choice`) |
//! | `parallel_tool_calls`, `temperature`, `top_p` | the same fields |
//! | `max_output_tokens` | `max_tokens` |
//! | `reasoning.effort` | `reasoning_effort` when [`pass_reasoning_effort`](super::ResponsesConfig::pass_reasoning_effort); else reported |
//! | `text.format` `json_schema`/`json_object` | `response_format` when [`response_format`](super::ResponsesConfig::response_format); else reported |
//! | `previous_response_id` | the stored turn's input and output items, prepended (unknown → 404 `previous_response_not_found`) |
//! | `stream: true` | `stream: true` with `stream_options.include_usage` (the fixer supplies usage Hunyuan omits) |
//! | `store`, `metadata`, `user`, `prompt_cache_key`, `client_metadata`, `include`, `truncation`, `service_tier` | not sent (echoed in the response where the API echoes them) |
//! | any other field | not sent, reported `field:<name>` |
//!
//! Consecutive assistant-side items (assistant messages, function calls, reasoning) between two
//! user or tool turns form one assistant message, the way Hunyuan produced them.
//!
//! Every tool name sent upstream is made of `[A-Za-z0-9_-]`, at most 64 characters, unique;
//! [`ToolNames`] maps it back to the client's name and namespace for the answer. `model` goes
//! upstream through [`ResponsesConfig::aliases`](super::ResponsesConfig::aliases); the answer
//! names the client's model.

use super::config::ResponsesConfig;
use super::error::ResponsesError;
use super::reasoning::ReasoningCodec;
use super::response::{response_id_of_item, Echo, ResponseContext};
use super::store::{ResponseStore, StoredResponse};
pub use super::tool_names::{ToolNames, MAX_TOOL_NAME};
use crate::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role,
    StreamOptions, Tool, ToolCall,
};
use crate::ingress::json::{self, present, Loose, LooseStr, Obj};
use crate::ingress::Dropped;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
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

/// A translated request.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The chat request to send through the chat stack (model already mapped through the
    /// aliases).
    pub chat: ChatRequest,
    /// What could not be carried.
    pub dropped: Dropped,
    /// The resolved input items as the client sent them (earlier turns prepended, references
    /// replaced), to store beside the answer ([`StoredResponse::new`]). Empty for a
    /// `store: false` request, which is never stored.
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
    pub fn to_stored(&self, response: super::ResponseObject) -> StoredResponse {
        StoredResponse::new(self.input_items.clone(), response)
    }
}

/// Reads a Responses request body and translates it to the chat request; see the
/// [module docs](self) for every rule. Reads `store` for `previous_response_id` and
/// `item_reference` (without a store, both are unknown: a 404 and a dropped item). Unknown
/// fields are reported, never refused; a wrong shape is a 400 naming its field.
pub async fn to_chat(
    body: &[u8],
    config: &ResponsesConfig,
    store: Option<&dyn ResponseStore>,
) -> Result<Translated, ResponsesError> {
    let raw = body;
    let mut body: Body<'_> = json::read_indexed(raw)?;
    let model = match body.model.take() {
        Some(model) if !model.trim().is_empty() => model,
        _ => return Err(ResponsesError::invalid("`model` is required", "model")),
    };
    let previous: Vec<Value> = match body.previous_response_id.as_deref() {
        None => Vec::new(),
        Some(id) => {
            let stored = match store {
                Some(store) => store.get(id).await?,
                None => None,
            };
            stored
                .ok_or_else(|| ResponsesError::PreviousResponseNotFound { id: id.to_owned() })?
                .replay_items()
        }
    };
    let input = body.input.take();
    let no_input = match &input {
        None => true,
        Some(Input::Items(items)) => items.is_empty(),
        Some(Input::Text(_)) => false,
    };
    if no_input && previous.is_empty() {
        return Err(ResponsesError::invalid(
            "`input` is required (a string or a list of items)",
            "input",
        ));
    }
    let mut dropped = Dropped::new();
    let references = match &input {
        Some(Input::Items(items)) => resolve_references(items, store, &mut dropped).await?,
        _ => Vec::new(),
    };
    let store_on = body.store != Some(false);
    let kept = if store_on {
        kept_input(raw, input.as_ref(), &references)?
    } else {
        Vec::new()
    };

    // Every item in order, typed: the stored turn's, then this request's.
    let mut items: Vec<(Origin, Option<ItemIn<'_>>)> = Vec::new();
    items.extend(previous.iter().map(|v| (Origin::Previous, stored_item(v))));
    match input {
        None => {}
        Some(Input::Text(text)) => items.push((Origin::Input(0), Some(ItemIn::user(text)))),
        Some(Input::Items(list)) => {
            items.reserve(list.len());
            let mut references = references.iter();
            for (i, Loose(item)) in list.into_iter().enumerate() {
                if !item.as_ref().is_some_and(ItemIn::is_reference) {
                    items.push((Origin::Input(i), item));
                } else if let Some(Some(found)) = references.next() {
                    items.push((Origin::Input(i), stored_item(found)));
                }
            }
        }
    }
    let mut translated = translate(body, model, items, config, dropped)?;
    if store_on {
        let mut input_items = previous;
        input_items.extend(kept);
        translated.input_items = input_items;
    }
    Ok(translated)
}

/// The stored item each `item_reference` of `items` names, in order (`None`, reported
/// `item:item_reference`, when it names none the client may read).
async fn resolve_references(
    items: &[Loose<ItemIn<'_>>],
    store: Option<&dyn ResponseStore>,
    dropped: &mut Dropped,
) -> Result<Vec<Option<Value>>, ResponsesError> {
    let mut fetched: HashMap<String, Option<Arc<StoredResponse>>> = HashMap::new();
    let mut found = Vec::new();
    for Loose(item) in items {
        let Some(item) = item.as_ref().filter(|item| item.is_reference()) else {
            continue;
        };
        let value = match (store, item.id.as_str()) {
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
        if value.is_none() {
            dropped.add("item:item_reference");
        }
        found.push(value);
    }
    Ok(found)
}

/// The request's input items as the client sent them, references replaced by the items they
/// name (`references`, in order) and unknown ones left out: what a stored turn keeps, ids and
/// fields the translation does not read included. Read from the body a second time, as JSON
/// values, only for a request that will be stored.
fn kept_input(
    raw: &[u8],
    input: Option<&Input<'_>>,
    references: &[Option<Value>],
) -> Result<Vec<Value>, ResponsesError> {
    #[derive(Deserialize)]
    struct InputOnly {
        #[serde(default)]
        input: Vec<Value>,
    }
    match input {
        None => Ok(Vec::new()),
        Some(Input::Text(text)) => Ok(vec![
            json!({"type": "message", "role": "user", "content": text}),
        ]),
        Some(Input::Items(_)) => {
            let InputOnly { input } = json::read_indexed(raw)?;
            let mut references = references.iter();
            Ok(input
                .into_iter()
                .filter_map(|item| {
                    if item.get("type").and_then(Value::as_str) == Some("item_reference") {
                        references.next().cloned().flatten()
                    } else {
                        Some(item)
                    }
                })
                .collect())
        }
    }
}

/// A stored item (of `previous_response_id` or an `item_reference`) read as the body's items
/// are; `None` when it is not an object.
fn stored_item(item: &Value) -> Option<ItemIn<'_>> {
    Loose::<ItemIn<'_>>::deserialize(item)
        .ok()
        .and_then(|Loose(item)| item)
}

/// The request body: every field the translation reads, typed; the names of the others, to
/// report.
#[derive(Default)]
struct Body<'a> {
    model: Option<String>,
    input: Option<Input<'a>>,
    instructions: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u64>,
    temperature: Option<Number>,
    top_p: Option<Number>,
    reasoning: Option<ReasoningIn>,
    text: Option<Obj<Map<String, Value>>>,
    stream: Option<bool>,
    store: Option<bool>,
    previous_response_id: Option<String>,
    metadata: Option<Value>,
    user: Option<String>,
    /// The names of the other fields.
    other: Vec<Cow<'a, str>>,
}

/// A key of the request body.
enum Key<'a> {
    Model,
    Input,
    Instructions,
    Tools,
    ToolChoice,
    ParallelToolCalls,
    MaxOutputTokens,
    Temperature,
    TopP,
    Reasoning,
    Text,
    Stream,
    Store,
    PreviousResponseId,
    Metadata,
    User,
    Other(Cow<'a, str>),
}

impl<'a> Key<'a> {
    fn of(name: &str) -> Option<Key<'a>> {
        Some(match name {
            "model" => Key::Model,
            "input" => Key::Input,
            "instructions" => Key::Instructions,
            "tools" => Key::Tools,
            "tool_choice" => Key::ToolChoice,
            "parallel_tool_calls" => Key::ParallelToolCalls,
            "max_output_tokens" => Key::MaxOutputTokens,
            "temperature" => Key::Temperature,
            "top_p" => Key::TopP,
            "reasoning" => Key::Reasoning,
            "text" => Key::Text,
            "stream" => Key::Stream,
            "store" => Key::Store,
            "previous_response_id" => Key::PreviousResponseId,
            "metadata" => Key::Metadata,
            "user" => Key::User,
            _ => return None,
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::of(v).unwrap_or(Key::Other(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::of(v).unwrap_or_else(|| Key::Other(Cow::Owned(v.to_owned()))))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Responses request object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
                let mut body = Body::default();
                // One bit per known field: a second one is an error, not the last one winning.
                let mut seen = 0u32;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    macro_rules! field {
                        ($bit:literal, $name:literal, $slot:ident) => {{
                            if seen & (1 << $bit) != 0 {
                                // Raised as the value's error, so the 400 names the field.
                                let never = map.next_value_seed(Duplicate($name))?;
                                match never {}
                            }
                            seen |= 1 << $bit;
                            body.$slot = map.next_value()?;
                        }};
                    }
                    match key {
                        Key::Model => field!(0, "model", model),
                        Key::Input => field!(1, "input", input),
                        Key::Instructions => field!(2, "instructions", instructions),
                        Key::Tools => field!(3, "tools", tools),
                        Key::ToolChoice => field!(4, "tool_choice", tool_choice),
                        Key::ParallelToolCalls => {
                            field!(5, "parallel_tool_calls", parallel_tool_calls)
                        }
                        Key::MaxOutputTokens => field!(6, "max_output_tokens", max_output_tokens),
                        Key::Temperature => field!(7, "temperature", temperature),
                        Key::TopP => field!(8, "top_p", top_p),
                        Key::Reasoning => field!(9, "reasoning", reasoning),
                        Key::Text => field!(10, "text", text),
                        Key::Stream => field!(11, "stream", stream),
                        Key::Store => field!(12, "store", store),
                        Key::PreviousResponseId => {
                            field!(13, "previous_response_id", previous_response_id)
                        }
                        Key::Metadata => field!(14, "metadata", metadata),
                        Key::User => field!(15, "user", user),
                        Key::Other(name) => {
                            map.next_value::<IgnoredAny>()?;
                            body.other.push(name);
                        }
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(BodyVisitor)
    }
}

/// The value of a field given twice: refused, as a derived struct refuses it.
struct Duplicate(&'static str);

impl<'de> de::DeserializeSeed<'de> for Duplicate {
    type Value = std::convert::Infallible;

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
        Err(de::Error::duplicate_field(self.0))
    }
}

/// `input`: a string (one user message) or a list of items.
enum Input<'a> {
    Text(Cow<'a, str>),
    /// Items; `None` for an item that is not an object (refused when translated).
    Items(Vec<Loose<ItemIn<'a>>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InputVisitor;
        impl<'de> Visitor<'de> for InputVisitor {
            type Value = Input<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of items")
            }
            json::visit_cow_str!(Input<'de>, Input::Text);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Input<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Input::Items(items))
            }
        }
        d.deserialize_any(InputVisitor)
    }
}

/// `reasoning` of a request.
#[derive(Deserialize)]
struct ReasoningIn {
    /// `minimal`, `low`, `medium`, `high`…
    #[serde(default)]
    effort: Option<String>,
    /// `auto`, `concise`, `detailed` (or `none`).
    #[serde(default)]
    summary: Option<String>,
}

/// A field read for whether it is there and its string, if it is one.
#[derive(Default)]
enum Field<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    /// Present, not a string (`null` included).
    Other,
}

impl<'a> Field<'a> {
    fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            Field::Absent | Field::Other => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match LooseStr::deserialize(d)?.0 {
            Some(s) => Field::Str(s),
            None => Field::Other,
        })
    }
}

/// An input item: the fields of every item type the translation reads, each read leniently
/// (the type of item decides, below, what is required of it).
#[derive(Deserialize, Default)]
struct ItemIn<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: LooseStr<'a>,
    /// Present without a `type`: a message.
    #[serde(default, borrow)]
    role: Field<'a>,
    /// Present but not a string: a function call without an id (`id` is not read instead).
    #[serde(default, borrow)]
    call_id: Field<'a>,
    #[serde(default, borrow)]
    id: LooseStr<'a>,
    #[serde(default, borrow)]
    name: LooseStr<'a>,
    #[serde(default, borrow)]
    namespace: LooseStr<'a>,
    /// A string, or an object (sent as its JSON).
    #[serde(default, deserialize_with = "present")]
    arguments: Option<Value>,
    #[serde(default, borrow)]
    encrypted_content: LooseStr<'a>,
    #[serde(default, borrow)]
    content: ContentIn<'a>,
    #[serde(default, borrow)]
    output: ContentIn<'a>,
}

impl<'a> ItemIn<'a> {
    /// A user message of `text` (a string `input`).
    fn user(text: Cow<'a, str>) -> Self {
        ItemIn {
            kind: LooseStr(Some(Cow::Borrowed("message"))),
            role: Field::Str(Cow::Borrowed("user")),
            content: ContentIn::Text(text),
            ..ItemIn::default()
        }
    }

    /// The item's type: `type`, else `message` when it has a `role`.
    fn kind(&self) -> Option<&str> {
        match self.kind.as_str() {
            Some(kind) => Some(kind),
            None if self.role.is_present() => Some("message"),
            None => None,
        }
    }

    fn is_reference(&self) -> bool {
        self.kind.as_str() == Some("item_reference")
    }
}

/// `content` or `output`: absent or `null`, a string, a list of parts, or any other value.
#[derive(Default)]
enum ContentIn<'a> {
    #[default]
    Null,
    Text(Cow<'a, str>),
    Parts(Vec<PartIn<'a>>),
    /// An object, a number or a boolean, kept (a tool's output is sent as its JSON).
    Other(Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for ContentIn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = ContentIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a list of parts or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ContentIn::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ContentIn::Null)
            }
            json::visit_cow_str!(Self::Value, ContentIn::Text);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(ContentIn::Parts(parts))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(ContentIn::Other)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ContentIn::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ContentIn::Other(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ContentIn::Other(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ContentIn::Other(Value::from(v)))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// A content part: a plain string, an object, or anything else (reported `part:unknown`).
enum PartIn<'a> {
    Text(Cow<'a, str>),
    Fields(PartFields<'a>),
    Other,
}

#[derive(Deserialize)]
struct PartFields<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: LooseStr<'a>,
    #[serde(default, borrow)]
    text: LooseStr<'a>,
    #[serde(default, borrow)]
    refusal: LooseStr<'a>,
    #[serde(default, borrow)]
    image_url: ImageUrlIn<'a>,
    #[serde(default, borrow)]
    file_id: Field<'a>,
    #[serde(default, borrow)]
    detail: LooseStr<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for PartIn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = PartIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a part object")
            }
            json::visit_cow_str!(Self::Value, PartIn::Text);
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                PartFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(PartIn::Fields)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                json::drain_seq(seq).map(|()| PartIn::Other)
            }
            json::read_past_others!(PartIn<'de>, PartIn::Other);
        }
        d.deserialize_any(PartVisitor)
    }
}

/// `image_url`: the URL as a string or `{"url": …}`; `None` for anything else.
#[derive(Default)]
struct ImageUrlIn<'a>(Option<Cow<'a, str>>);

#[derive(Deserialize)]
struct UrlObject<'a> {
    #[serde(default, borrow)]
    url: LooseStr<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ImageUrlIn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UrlVisitor;
        impl<'de> Visitor<'de> for UrlVisitor {
            type Value = ImageUrlIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a URL or an object with a `url`")
            }
            json::visit_cow_str!(Self::Value, |url| ImageUrlIn(Some(url)));
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                UrlObject::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|o| ImageUrlIn(o.url.0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                json::drain_seq(seq).map(|()| ImageUrlIn(None))
            }
            json::read_past_others!(ImageUrlIn<'de>, ImageUrlIn(None));
        }
        d.deserialize_any(UrlVisitor)
    }
}

/// Where an input item came from, for error paths.
#[derive(Debug, Clone, Copy)]
enum Origin {
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

/// The synchronous part of [`to_chat`]: every item is at hand, typed.
fn translate(
    body: Body<'_>,
    model: String,
    items: Vec<(Origin, Option<ItemIn<'_>>)>,
    config: &ResponsesConfig,
    mut dropped: Dropped,
) -> Result<Translated, ResponsesError> {
    let Body {
        instructions,
        tools: client_tools,
        tool_choice,
        parallel_tool_calls,
        max_output_tokens,
        temperature,
        top_p,
        reasoning,
        text,
        stream,
        store,
        previous_response_id,
        metadata,
        user,
        mut other,
        ..
    } = body;
    let mut names = ToolNames::default();
    let tools = translate_tools(
        client_tools.as_deref().unwrap_or_default(),
        &mut names,
        &mut dropped,
    )?;

    let mut conversation = Conversation {
        codec: config.reasoning_history.then_some(&config.codec),
        names: &mut names,
        dropped: &mut dropped,
        system: Vec::new(),
        messages: Vec::with_capacity(items.len() + 1),
        assistant_open: false,
        pending_reasoning: String::new(),
    };
    if let Some(instructions) = &instructions {
        let text = match instructions {
            Value::String(s) => s.clone(),
            other => text_of(other),
        };
        if !text.is_empty() {
            conversation.system.push(text);
        }
    }
    for (origin, item) in items {
        conversation.item(origin, item)?;
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
    let choice = translate_tool_choice(tool_choice.as_ref(), &tools, &names, &mut dropped);
    if let Some(choice) = choice {
        extra.insert("tool_choice".into(), choice);
    }
    if let (Some(parallel), false) = (parallel_tool_calls, tools.is_empty()) {
        extra.insert("parallel_tool_calls".into(), Value::Bool(parallel));
    }
    if let Some(max) = max_output_tokens {
        extra.insert("max_tokens".into(), Value::from(max));
    }
    if let Some(t) = &temperature {
        extra.insert("temperature".into(), Value::Number(t.clone()));
    }
    if let Some(p) = &top_p {
        extra.insert("top_p".into(), Value::Number(p.clone()));
    }
    let (effort, summary) = reasoning.map_or((None, None), |r| (r.effort, r.summary));
    if let Some(effort) = &effort {
        if config.pass_reasoning_effort {
            extra.insert("reasoning_effort".into(), Value::String(effort.clone()));
        } else {
            dropped.add("field:reasoning.effort");
        }
    }
    let mut text_echo = text.map_or_else(Map::new, |Obj(text)| text);
    match text_echo.get("format").filter(|f| !f.is_null()) {
        Some(format) => match response_format(format) {
            Ok(None) => {}
            Ok(Some(chat_format)) if config.response_format => {
                extra.insert("response_format".into(), chat_format);
            }
            Ok(Some(_)) | Err(()) => dropped.add("field:text.format"),
        },
        None => {
            text_echo.insert("format".into(), json!({"type": "text"}));
        }
    }
    // Reported in name order, each once.
    other.sort_unstable();
    for key in &other {
        if !IGNORED_FIELDS.contains(&key.as_ref()) {
            dropped.add(format!("field:{key}"));
        }
    }

    let stream = stream == Some(true);
    let chat = ChatRequest {
        model: config.aliases.upstream_model(&model).to_owned(),
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

    let reasoning_summary = summary
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != "none");
    let echo = Echo {
        instructions,
        tools: client_tools.unwrap_or_default(),
        tool_choice: tool_choice.unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: parallel_tool_calls.unwrap_or(true),
        previous_response_id,
        store: store.unwrap_or(true),
        temperature,
        top_p,
        max_output_tokens,
        metadata: metadata.unwrap_or_else(|| json!({})),
        user,
        reasoning: json!({"effort": effort, "summary": summary}),
        text: Value::Object(text_echo),
    };
    // Built whole: `ResponseContext::new` would make a codec and echo defaults only to have
    // them replaced.
    let context = ResponseContext {
        id: super::new_id("resp"),
        created_at: super::unix_now(),
        model,
        tool_names: names,
        codec: config.codec.clone(),
        reasoning_summary,
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
                        other => dropped.add(dropped_tool(other)),
                    }
                }
            }
            "" => dropped.add("tool:unknown"),
            other => dropped.add(dropped_tool(other)),
        }
    }
    Ok(out)
}

/// The built-in tools of the Responses API, as reported when dropped: each is counted under
/// its own metric label, any other tool type the client names under `other`.
const BUILTIN_TOOLS: &[&str] = &[
    "tool:web_search",
    "tool:web_search_preview",
    "tool:file_search",
    "tool:computer_use_preview",
    "tool:image_generation",
    "tool:code_interpreter",
    "tool:local_shell",
    "tool:mcp",
    "tool:custom",
];

/// The name a dropped tool of type `kind` is reported under: `tool:<kind>`, the proxy's own
/// name (and metric label) for a built-in tool.
fn dropped_tool(kind: &str) -> Cow<'static, str> {
    match BUILTIN_TOOLS.iter().find(|known| known[5..] == *kind) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(format!("tool:{kind}")),
    }
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
            dropped.add("field:tool_choice");
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
                    dropped.add("field:tool_choice");
                    None
                }
            }
        }
        _ => {
            dropped.add("field:tool_choice");
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

/// The text of the parts of a content: text parts joined by newlines, as
/// [`Content::joined_text`] joins them, without copying a lone text.
fn into_text(content: Option<Content>) -> String {
    match content {
        None => String::new(),
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => join_texts(parts),
    }
}

/// The text parts of `parts` joined by newlines (what [`Content::joined_text`] gives).
fn join_texts(parts: Vec<ContentPart>) -> String {
    let mut joined = String::new();
    for part in parts {
        let ContentPart::Text { text } = part else {
            continue;
        };
        if joined.is_empty() {
            joined = text;
        } else {
            joined.push('\n');
            joined.push_str(&text);
        }
    }
    joined
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
    fn item(&mut self, origin: Origin, item: Option<ItemIn<'_>>) -> Result<(), ResponsesError> {
        let Some(item) = item else {
            return Err(ResponsesError::invalid(
                "an input item must be an object",
                origin.path(),
            ));
        };
        match item.kind() {
            Some("message") => self.message(item, origin),
            Some("function_call") => self.function_call(item, origin),
            Some("function_call_output") => self.function_output(item, origin),
            Some("reasoning") => {
                self.reasoning(&item);
                Ok(())
            }
            Some(other) => {
                self.dropped.add(format!("item:{other}"));
                Ok(())
            }
            None => {
                self.dropped.add("item:unknown");
                Ok(())
            }
        }
    }

    fn message(&mut self, item: ItemIn<'_>, origin: Origin) -> Result<(), ResponsesError> {
        let ItemIn { role, content, .. } = item;
        let role = role.as_str().unwrap_or("user");
        match role {
            "system" | "developer" => {
                let text = into_text(self.content(content, origin, "content", false)?);
                if !text.is_empty() {
                    self.system.push(text);
                }
            }
            "assistant" => {
                let text = into_text(self.content(content, origin, "content", false)?);
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
                    self.dropped.add(format!("role:{other}"));
                }
                let content = self.content(content, origin, "content", true)?;
                self.close_assistant();
                let mut message = Message::text(Role::User, "");
                message.content = content;
                self.messages.push(message);
            }
        }
        Ok(())
    }

    fn function_call(&mut self, item: ItemIn<'_>, origin: Origin) -> Result<(), ResponsesError> {
        let ItemIn {
            call_id,
            id,
            name,
            namespace,
            arguments,
            ..
        } = item;
        // `id` stands in for an absent `call_id` only.
        let call_id = match call_id {
            Field::Absent => id.0,
            Field::Str(call_id) => Some(call_id),
            Field::Other => None,
        }
        .ok_or_else(|| {
            ResponsesError::invalid(
                "a function_call needs a `call_id`",
                format!("{}.call_id", origin.path()),
            )
        })?;
        let name = name.as_str().ok_or_else(|| {
            ResponsesError::invalid(
                "a function_call needs a `name`",
                format!("{}.name", origin.path()),
            )
        })?;
        let namespace = namespace.as_str();
        let sent = match self.names.sent(namespace, name) {
            Some(sent) => sent.to_owned(),
            // A flattened name replayed as such.
            None if namespace.is_none() && self.names.is_sent(name) => name.to_owned(),
            None => self.names.insert(namespace, name).to_owned(),
        };
        let arguments = match arguments {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => "{}".to_owned(),
        };
        let call = ToolCall {
            id: call_id.into_owned(),
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

    fn function_output(&mut self, item: ItemIn<'_>, origin: Origin) -> Result<(), ResponsesError> {
        let ItemIn {
            call_id, output, ..
        } = item;
        let Field::Str(call_id) = call_id else {
            return Err(ResponsesError::invalid(
                "a function_call_output needs a `call_id`",
                format!("{}.call_id", origin.path()),
            ));
        };
        let content = match output {
            ContentIn::Text(s) => Some(Content::Text(s.into_owned())),
            parts @ ContentIn::Parts(_) => self.content(parts, origin, "output", true)?,
            ContentIn::Null => Some(Content::Text(String::new())),
            ContentIn::Other(other) => Some(Content::Text(match other.get("content") {
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
            tool_call_id: Some(call_id.into_owned()),
            extra: Map::new(),
        });
        Ok(())
    }

    fn reasoning(&mut self, item: &ItemIn<'_>) {
        let Some(codec) = self.codec else { return };
        let Some(text) = item
            .encrypted_content
            .as_str()
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
    fn content(
        &mut self,
        content: ContentIn<'_>,
        origin: Origin,
        field: &str,
        images: bool,
    ) -> Result<Option<Content>, ResponsesError> {
        let parts = match content {
            ContentIn::Null => return Ok(None),
            ContentIn::Text(s) => return Ok(Some(Content::Text(s.into_owned()))),
            ContentIn::Parts(parts) => parts,
            ContentIn::Other(_) => {
                return Err(ResponsesError::invalid(
                    "content must be a string or a list of parts",
                    format!("{}.{field}", origin.path()),
                ))
            }
        };
        let mut out: Vec<ContentPart> = Vec::with_capacity(parts.len());
        for (j, part) in parts.into_iter().enumerate() {
            let part_path = || format!("{}.{field}[{j}]", origin.path());
            let part = match part {
                PartIn::Text(s) => {
                    out.push(ContentPart::text_part(s.into_owned()));
                    continue;
                }
                PartIn::Other => {
                    self.dropped.add("part:unknown");
                    continue;
                }
                PartIn::Fields(part) => part,
            };
            match part.kind.as_str().unwrap_or("") {
                "input_text" | "output_text" | "text" | "summary_text" => {
                    out.push(ContentPart::text_part(
                        part.text.into_string().unwrap_or_default(),
                    ));
                }
                "refusal" => {
                    out.push(ContentPart::text_part(
                        part.refusal.into_string().unwrap_or_default(),
                    ));
                }
                "input_image" => {
                    let Some(url) = part.image_url.0 else {
                        let message = if part.file_id.is_present() {
                            "input_image by file_id is not supported (the proxy keeps no files): send the image as an https URL or a data: URL"
                        } else {
                            "input_image needs an image_url (an https URL or a data: URL)"
                        };
                        return Err(ResponsesError::invalid(message, part_path()));
                    };
                    if images {
                        let detail = part.detail.into_string().filter(|d| *d != "auto");
                        out.push(ContentPart::ImageUrl {
                            image_url: ImageUrl {
                                url: url.into_owned(),
                                detail,
                            },
                        });
                    } else {
                        self.dropped.add("part:input_image");
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
                "" => self.dropped.add("part:unknown"),
                other => self.dropped.add(format!("part:{other}")),
            }
        }
        if out.iter().any(|p| p.image_url().is_some()) {
            Ok(Some(Content::Parts(out)))
        } else {
            Ok(Some(Content::Text(join_texts(out))))
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
