//! Reading a struct that keeps its unknown fields in an `extra` map, without serde's
//! `#[serde(flatten)]`.
//!
//! A derived `Deserialize` with a flattened map first buffers the whole object into serde's
//! private value tree (every key and value copied once more) and then reads the typed fields
//! out of that; for a ~450-byte chat answer that doubles the parse. [`read_with_extra`] reads
//! the object once: a key the struct types is read into its field, any other key with its value
//! goes to `extra` as it was, so nothing the peer sent is lost. Serialization keeps the derived
//! `flatten`, which costs nothing extra.
//!
//! [`with_extra!`](crate::chat::extra) implements it for a struct from the list of its typed
//! fields; the semantics are the derive's: a repeated typed field and a missing required one are
//! errors, an absent optional one keeps its default, a repeated unknown key keeps the last value.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;

/// A struct read by [`read_with_extra`].
pub(crate) trait WithExtra: Sized {
    /// The struct's name, for errors.
    const NAME: &'static str;
    /// The JSON names of its typed fields (at most 64).
    const FIELDS: &'static [&'static str];
    /// The typed fields that must be present.
    const REQUIRED: &'static [&'static str];
    /// The value the fields are read into: every optional field at its default.
    fn blank() -> Self;
    /// Reads the value of the typed field `name` (one of [`FIELDS`](Self::FIELDS)).
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        name: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error>;
    /// The map of every other field.
    fn extra(&mut self) -> &mut Map<String, Value>;
}

/// Reads a `T` from a JSON object in one pass (see the module docs).
pub(crate) fn read_with_extra<'de, T: WithExtra, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(ExtraVisitor(PhantomData))
}

struct ExtraVisitor<T>(PhantomData<T>);

impl<'de, T: WithExtra> Visitor<'de> for ExtraVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", T::NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut out = T::blank();
        let mut seen = 0u64;
        while let Some(key) = map.next_key_seed(KeySeed(T::FIELDS))? {
            match key {
                Key::Field(index) => {
                    let name = T::FIELDS[index];
                    if seen & (1 << index) != 0 {
                        return Err(de::Error::duplicate_field(name));
                    }
                    seen |= 1 << index;
                    out.read_field(name, &mut map)?;
                }
                Key::Other(name) => {
                    let value: Value = map.next_value()?;
                    out.extra().insert(name, value);
                }
            }
        }
        for required in T::REQUIRED {
            let index = T::FIELDS.iter().position(|f| f == required);
            if index.is_none_or(|i| seen & (1 << i) == 0) {
                return Err(de::Error::missing_field(required));
            }
        }
        Ok(out)
    }
}

/// A key: the index of a typed field, or the name of another one.
enum Key {
    Field(usize),
    Other(String),
}

/// Reads a key without allocating when it names a typed field.
struct KeySeed(&'static [&'static str]);

impl KeySeed {
    fn find(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|f| *f == key)
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match self.find(key) {
            Some(index) => Key::Field(index),
            None => Key::Other(key.to_owned()),
        })
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key, E> {
        Ok(match self.find(&key) {
            Some(index) => Key::Field(index),
            None => Key::Other(key),
        })
    }
}

/// Implements `Deserialize` for a struct with an `extra: Map<String, Value>` field through
/// [`read_with_extra`]: `with_extra!(Type, blank, ["json" => field, …], required [..])`.
macro_rules! with_extra {
    ($ty:ident, $blank:expr, [$($name:literal => $field:ident),* $(,)?], required [$($req:literal),*]) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::chat::extra::read_with_extra(deserializer)
            }
        }

        impl $crate::chat::extra::WithExtra for $ty {
            const NAME: &'static str = stringify!($ty);
            const FIELDS: &'static [&'static str] = &[$($name),*];
            const REQUIRED: &'static [&'static str] = &[$($req),*];

            fn blank() -> Self {
                $blank
            }

            fn read_field<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                name: &'static str,
                map: &mut A,
            ) -> Result<(), A::Error> {
                match name {
                    $($name => self.$field = map.next_value()?,)*
                    _ => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(())
            }

            fn extra(&mut self) -> &mut serde_json::Map<String, serde_json::Value> {
                &mut self.extra
            }
        }
    };
}
pub(crate) use with_extra;

#[cfg(test)]
mod tests {
    use crate::chat::{ChatChunk, ChatCompletion, ToolCall};
    use serde_json::{json, Value};

    #[test]
    fn unknown_fields_round_trip_at_every_level() {
        let answer = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": null, "reasoning_content": "think",
                    "tool_calls": [{"id": "t", "type": "function", "x": [1],
                        "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "note": "n", "system_fingerprint": "fp"});
        let typed: ChatCompletion = serde_json::from_slice(answer.to_string().as_bytes()).unwrap();
        assert_eq!(typed.extra["note"], "n");
        assert_eq!(typed.choices[0].extra["logprobs"], Value::Null);
        assert_eq!(typed.choices[0].message.extra["reasoning_content"], "think");
        assert_eq!(serde_json::to_value(&typed).unwrap(), answer);
        // The same from a `Value` (owned keys).
        let again: ChatCompletion = serde_json::from_value(answer.clone()).unwrap();
        assert_eq!(again, typed);

        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": null, "x": true,
                "delta": {"content": "a", "reasoning_content": "r"}}], "note": "n"});
        let typed: ChatChunk = serde_json::from_str(&chunk.to_string()).unwrap();
        assert_eq!(typed.choices[0].delta.extra["reasoning_content"], "r");
        assert_eq!(serde_json::to_value(&typed).unwrap(), chunk);
    }

    #[test]
    fn escaped_keys_are_the_fields_they_spell() {
        let typed: ChatCompletion =
            serde_json::from_str(r#"{"i\u0064": "c", "n\u006fte": "n", "choices": []}"#).unwrap();
        assert_eq!(typed.id, "c");
        assert_eq!(typed.extra["note"], "n");
    }

    #[test]
    fn bad_answers_are_refused_as_the_derive_refused_them() {
        let error = |json: &str| serde_json::from_str::<ChatCompletion>(json).unwrap_err();
        assert!(error(r#"{"id": "a", "id": "b"}"#)
            .to_string()
            .contains("duplicate field `id`"));
        assert!(error(r#"{"choices": [{"index": 0}]}"#)
            .to_string()
            .contains("missing field `message`"));
        assert!(error(r#"{"created": "soon"}"#)
            .to_string()
            .contains("invalid type"));
        assert!(error("[1, 2]")
            .to_string()
            .contains("struct ChatCompletion"));
        let call = serde_json::from_str::<ToolCall>(r#"{"function": {"name": "f"}}"#);
        assert!(call.unwrap_err().to_string().contains("missing field `id`"));
        let call: ToolCall =
            serde_json::from_str(r#"{"id": "t", "function": {"name": "f"}}"#).unwrap();
        assert_eq!(call.kind, "function", "an absent type is a function call");
    }
}
