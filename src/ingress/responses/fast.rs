//! A `store: false` Responses request read with its input items typed, not as JSON values:
//! the usual way in for clients that keep the conversation themselves (Codex).
//!
//! It takes requests that need nothing from the store (`store: false`, no
//! `previous_response_id`, no `item_reference`) and whose items have the shapes the
//! translation reads; it gives up (`None`) on anything else, a wrong type or a duplicate
//! field included, and on any request the translation refuses. The body is then read again
//! as [`ResponsesRequest`] by the usual path, which decides and names the error. The items go
//! through the same translation either way ([`translate_items`]); debug builds (the tests)
//! check each result against the usual path.

use super::request::{
    item_type, translate_items, ContentView, ItemView, Origin, PartView, ReasoningParams,
    ResponsesRequest, TextParams, Translated,
};
use super::{Dropped, ResponsesOptions};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Translates `body`, or `None` when the usual path has to (see the [module docs](self)).
/// The result's `input_items` are empty: a `store: false` response is not stored.
pub(super) fn read(body: &[u8], options: &ResponsesOptions) -> Option<Translated> {
    let req: FastRequest = serde_json::from_slice(body).ok()?;
    if req.store != Some(false) || req.previous_response_id.is_some() {
        return None;
    }
    if req.model.trim().is_empty() {
        return None;
    }
    let items = match req.input {
        Some(Items(items)) if !items.is_empty() => items,
        _ => return None,
    };
    if items
        .iter()
        .any(|item| item_type(item) == Some("item_reference"))
    {
        return None;
    }
    let items: Vec<(Origin, ItemIn)> = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| (Origin::Input(i), item))
        .collect();
    let rest = ResponsesRequest {
        model: req.model,
        input: None,
        instructions: req.instructions,
        tools: req.tools,
        tool_choice: req.tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        max_output_tokens: req.max_output_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        reasoning: req.reasoning,
        text: req.text,
        stream: req.stream,
        store: req.store,
        previous_response_id: None,
        metadata: req.metadata,
        user: req.user,
        extra: req.extra,
    };
    translate_items(rest, &items, options, Dropped::default()).ok()
}

/// [`ResponsesRequest`] field for field, with typed input items.
#[derive(Deserialize)]
struct FastRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Option<Items>,
    #[serde(default)]
    instructions: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<Number>,
    #[serde(default)]
    top_p: Option<Number>,
    #[serde(default)]
    reasoning: Option<ReasoningParams>,
    #[serde(default)]
    text: Option<TextParams>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    user: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `input` as a list of items (a string is left to the usual path).
struct Items(Vec<ItemIn>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of input items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(Obj(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Items(items))
            }
        }
        d.deserialize_seq(ItemsVisitor)
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

/// A field kept as it is, `null` included (`Some(Value::Null)`), as `Value::get` sees it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An input item: the fields the translation reads.
#[derive(Deserialize)]
struct ItemIn {
    #[serde(rename = "type", default, deserialize_with = "present")]
    kind: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    role: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    call_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    namespace: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    arguments: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    encrypted_content: Option<Value>,
    #[serde(default)]
    content: ContentIn,
    #[serde(default)]
    output: ContentIn,
}

/// `content` or `output`: absent or `null`, a string, or a list of parts (anything else is
/// left to the usual path).
#[derive(Default)]
enum ContentIn {
    #[default]
    Null,
    Text(String),
    Parts(Vec<PartIn>),
}

impl<'de> Deserialize<'de> for ContentIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = ContentIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a list of parts or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ContentIn, E> {
                Ok(ContentIn::Null)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ContentIn, E> {
                Ok(ContentIn::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ContentIn, E> {
                Ok(ContentIn::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContentIn, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(ContentIn::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// A content part: a plain string or an object (anything else is left to the usual path).
enum PartIn {
    Text(String),
    Fields(PartFields),
}

#[derive(Deserialize)]
struct PartFields {
    #[serde(rename = "type", default, deserialize_with = "present")]
    kind: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    text: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    refusal: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    image_url: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    file_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    detail: Option<Value>,
}

impl<'de> Deserialize<'de> for PartIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = PartIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a part object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PartIn, E> {
                Ok(PartIn::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<PartIn, E> {
                Ok(PartIn::Text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PartIn, A::Error> {
                PartFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(PartIn::Fields)
            }
        }
        d.deserialize_any(PartVisitor)
    }
}

impl ItemView for ItemIn {
    type Part = PartIn;

    fn is_object(&self) -> bool {
        true
    }

    fn field(&self, key: &str) -> Option<&Value> {
        match key {
            "type" => self.kind.as_ref(),
            "role" => self.role.as_ref(),
            "call_id" => self.call_id.as_ref(),
            "id" => self.id.as_ref(),
            "name" => self.name.as_ref(),
            "namespace" => self.namespace.as_ref(),
            "arguments" => self.arguments.as_ref(),
            "encrypted_content" => self.encrypted_content.as_ref(),
            _ => {
                debug_assert!(false, "the typed item does not keep `{key}`");
                None
            }
        }
    }

    fn content(&self, key: &str) -> ContentView<'_, PartIn> {
        let content = match key {
            "content" => &self.content,
            "output" => &self.output,
            _ => {
                debug_assert!(false, "the typed item does not keep `{key}`");
                return ContentView::Null;
            }
        };
        match content {
            ContentIn::Null => ContentView::Null,
            ContentIn::Text(s) => ContentView::Text(s),
            ContentIn::Parts(parts) => ContentView::Parts(parts),
        }
    }
}

impl PartView for PartIn {
    fn as_text(&self) -> Option<&str> {
        match self {
            PartIn::Text(s) => Some(s),
            PartIn::Fields(_) => None,
        }
    }

    fn field(&self, key: &str) -> Option<&Value> {
        let PartIn::Fields(part) = self else {
            return None;
        };
        match key {
            "type" => part.kind.as_ref(),
            "text" => part.text.as_ref(),
            "refusal" => part.refusal.as_ref(),
            "image_url" => part.image_url.as_ref(),
            "file_id" => part.file_id.as_ref(),
            "detail" => part.detail.as_ref(),
            _ => {
                debug_assert!(false, "the typed part does not keep `{key}`");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;
    use serde_json::json;

    /// The typed reading of `body`, checked against the usual path.
    fn both(body: &Value, options: &ResponsesOptions) -> Option<Translated> {
        let bytes = body.to_string();
        let fast = read(bytes.as_bytes(), options)?;
        let request = ResponsesRequest::from_slice(bytes.as_bytes()).expect("parses");
        let slow = super::super::to_chat(request, options, None)
            .now_or_never()
            .expect("no store to wait for")
            .expect("translates");
        assert_eq!(fast.chat, slow.chat, "{body}");
        assert_eq!(fast.dropped, slow.dropped, "{body}");
        assert_eq!(fast.context.echo, slow.context.echo, "{body}");
        assert_eq!(fast.context.tool_names, slow.context.tool_names, "{body}");
        assert_eq!(fast.context.model, slow.context.model);
        assert_eq!(
            fast.context.reasoning_summary,
            slow.context.reasoning_summary
        );
        assert!(fast.input_items.is_empty());
        Some(fast)
    }

    #[test]
    fn items_read_the_same_both_ways() {
        let codec = crate::ingress::responses::ReasoningCodec::new("s");
        let sealed = codec.seal("earlier thought");
        let options = ResponsesOptions::default()
            .with_reasoning_history(true)
            .with_codec(codec);
        let body = json!({
            "model": "gpt-5", "store": false, "stream": true, "instructions": "Be brief.",
            "temperature": 0.2, "max_output_tokens": 50, "parallel_tool_calls": false,
            "reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"},
            "metadata": {"k": "v"}, "user": "u", "prompt_cache_key": "p", "unknown_field": 1,
            "tool_choice": {"type": "function", "name": "shell"},
            "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}},
                      {"type": "namespace", "name": "ns", "tools": [{"name": "a.b"}]},
                      {"type": "web_search"}],
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
                {"role": "user", "content": [{"type": "input_text", "text": "Look"}, "plain",
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "high"},
                    {"type": "input_image", "image_url": {"url": "https://x/z.png"}, "detail": "auto"},
                    {"type": "mystery"}, {"text": "no type"}]},
                {"type": "reasoning", "encrypted_content": sealed, "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "On it."},
                    {"type": "refusal", "refusal": "no"}, {"type": "input_image", "image_url": "https://x/a.png"}]},
                {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call", "id": "c2", "name": "b", "namespace": "ns", "arguments": {"z": 1}},
                {"type": "function_call", "call_id": "c3", "name": "made_up", "arguments": ""},
                {"type": "function_call_output", "call_id": "c1", "output": "a\nb"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "x"}]},
                {"type": "function_call_output", "call_id": "c3", "output": null},
                {"type": "function_call_output", "call_id": "c4"},
                {"type": "web_search_call", "id": "w"},
                {"role": "critic", "content": "hm"},
                {"type": "message", "role": "user", "content": null},
                {"id": "x"}
            ]
        });
        both(&body, &options).expect("read typed");
        both(&body, &ResponsesOptions::default()).expect("read typed");
    }

    #[test]
    fn other_requests_are_left_to_the_usual_path() {
        let options = ResponsesOptions::default();
        let with = |input: Value| json!({"model": "m", "store": false, "input": input});
        for body in [
            json!({"model": "m", "input": [{"role": "user", "content": "hi"}]}),
            json!({"model": "m", "store": true, "input": [{"role": "user", "content": "hi"}]}),
            json!({"model": "m", "store": false, "previous_response_id": "resp_1",
                "input": [{"role": "user", "content": "hi"}]}),
            json!({"model": " ", "store": false, "input": [{"role": "user", "content": "hi"}]}),
            with(json!("hi")),
            with(json!([])),
            with(json!([["message"]])),
            with(json!([{"type": "item_reference", "id": "msg_1"}])),
            with(json!([{"role": "user", "content": {"text": "hi"}}])),
            with(json!([{"role": "user", "content": [5]}])),
            with(
                json!([{"type": "function_call_output", "call_id": "c", "output": {"content": "x"}}]),
            ),
            with(json!([{"type": "function_call", "name": "f"}])),
            with(json!([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}])),
        ] {
            assert!(both(&body, &options).is_none(), "{body}");
        }
        let duplicate = br#"{"model": "m", "store": false, "input": [{"role": "user", "role": "assistant", "content": "hi"}]}"#;
        assert!(read(duplicate, &options).is_none());
    }
}
