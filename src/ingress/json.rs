//! Reading a dialect's request body straight into typed, borrowing structs, with every error
//! naming the field it is about: `messages.2.content.0.source` in Anthropic's dotted style
//! ([`read`]), `input[2].content[0].image_url` in OpenAI's ([`read_indexed`]).
//!
//! The pieces a reader builds its types from, each reading JSON the way the dialects are
//! lenient or strict about it:
//! - [`Obj`]: a struct read from a JSON object only (a derived struct would take an array).
//! - [`Loose`]: a struct when the value is an object, `None` for anything else (read past).
//! - [`LooseStr`] / [`LooseBool`]: the value when it is a string / a boolean, `None` for
//!   anything else: an optional field a wrong type cannot fail.
//! - [`present`]: a field kept as a `serde_json::Value`, `null` included.
//!
//! A wrong type where the reader is strict is a serde error; [`read`] and [`read_indexed`] turn
//! it into a 400 whose `param` is the path [`serde_path_to_error`] tracked. A duplicate of a field a reader
//! reads is a 400 too (`duplicate field`).

use crate::error::ProxyError;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// How much of serde's message a 400 quotes (it may quote the client's own text).
const MESSAGE_LIMIT: usize = 200;

/// Reads `body` as `T`. Not JSON: [`ProxyError::InvalidJson`] (line and column); JSON of the
/// wrong shape: a 400 naming the field's dotted path (or none for the body itself).
pub(crate) fn read<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ProxyError> {
    read_styled(body, dotted)
}

/// [`read`], the field's path in OpenAI's style: `input[2].content[0].image_url`.
pub(crate) fn read_indexed<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ProxyError> {
    read_styled(body, indexed)
}

fn read_styled<'de, T: Deserialize<'de>>(
    body: &'de [u8],
    style: fn(&serde_path_to_error::Path) -> String,
) -> Result<T, ProxyError> {
    // Read without tracking the path first: `serde_path_to_error` keeps every map key it
    // passes as an owned string (measured: +17k instructions on a 10-message conversation).
    // Only a body that fails is read again, to name the field.
    // A body that is UTF-8 as a whole (checked at once, quickly) is read as a `str`, so
    // serde_json does not check each string of it again; any other is read as bytes and
    // fails as before.
    let first = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    let err = match first {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    if err.classify() != serde_json::error::Category::Data {
        return Err(to_proxy_error(err, ""));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(err) => {
            let path = style(err.path());
            Err(to_proxy_error(err.into_inner(), &path))
        }
        // Cannot happen (the same input, the same types); the first error still stands.
        Ok(_) => Err(to_proxy_error(err, "")),
    }
}

/// `input[2].content`, as [`serde_path_to_error`] writes it (empty for the body itself).
fn indexed(path: &serde_path_to_error::Path) -> String {
    if path.iter().next().is_none() {
        return String::new();
    }
    path.to_string()
}

/// `messages[2].content` → `messages.2.content`.
fn dotted(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        if !out.is_empty() {
            out.push('.');
        }
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&index.to_string()),
            serde_path_to_error::Segment::Map { key } => out.push_str(key),
            serde_path_to_error::Segment::Enum { variant } => out.push_str(variant),
            _ => out.push('?'),
        }
    }
    out
}

fn to_proxy_error(err: serde_json::Error, path: &str) -> ProxyError {
    use serde_json::error::Category;
    let what = match err.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => "syntax error",
        Category::Io => "not valid JSON",
        Category::Data => {
            // serde's message without its " at line … column …" suffix.
            let message = err.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            let message: String = message.chars().take(MESSAGE_LIMIT).collect();
            return if path.is_empty() {
                ProxyError::invalid_request(format!(
                    "the request body must be a JSON object of the documented shape: {message}"
                ))
            } else {
                ProxyError::invalid(format!("{path}: {message}"), path)
            };
        }
    };
    ProxyError::InvalidJson {
        detail: format!("line {} column {}: {what}", err.line(), err.column()),
    }
}

/// A field kept as it is, `null` included (`Some(Value::Null)`), as `obj.get(field)` sees it.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A struct read from a JSON object only (a derived struct would take an array too).
pub(crate) struct Obj<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(ObjVisitor(PhantomData))
    }
}

/// Reads past whatever value comes, for the loose readers' "anything else".
macro_rules! read_past_others {
    ($value:ty, $none:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_none<E: de::Error>(self) -> Result<$value, E> {
            Ok($none)
        }
    };
}
pub(crate) use read_past_others;

/// A visitor's three string visits for a value borrowing from the body: `$wrap` makes the
/// value of the `Cow<'de, str>` (borrowed when the string has no escapes).
macro_rules! visit_cow_str {
    ($value:ty, $wrap:expr) => {
        fn visit_borrowed_str<E: ::serde::de::Error>(self, v: &'de str) -> Result<$value, E> {
            Ok(($wrap)(::std::borrow::Cow::Borrowed(v)))
        }
        fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$value, E> {
            Ok(($wrap)(::std::borrow::Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: ::serde::de::Error>(self, v: String) -> Result<$value, E> {
            Ok(($wrap)(::std::borrow::Cow::Owned(v)))
        }
    };
}
pub(crate) use visit_cow_str;

/// Reads past a sequence.
pub(crate) fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Reads past a map.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A struct when the value is an object, `None` for any other value (read past): what
/// `value.as_object()` followed by field look-ups reads.
pub(crate) struct Loose<T>(pub(crate) Option<T>);

impl<T> Default for Loose<T> {
    fn default() -> Self {
        Loose(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LooseVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for LooseVisitor<T> {
            type Value = Loose<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Loose(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose<T>, A::Error> {
                drain_seq(seq).map(|()| Loose(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Loose<T>, E> {
                Ok(Loose(None))
            }
            read_past_others!(Loose<T>, Loose(None));
        }
        d.deserialize_any(LooseVisitor(PhantomData))
    }
}

/// A string field, borrowed from the body when it has no escapes; `None` when absent or not a
/// string (what `get(field).and_then(Value::as_str)` reads).
#[derive(Default)]
pub(crate) struct LooseStr<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'a> LooseStr<'a> {
    /// The string, if there is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The string, owned.
    pub(crate) fn into_string(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LooseStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = LooseStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            visit_cow_str!(LooseStr<'de>, |s| LooseStr(Some(s)));
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq).map(|()| LooseStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| LooseStr(None))
            }
            read_past_others!(LooseStr<'de>, LooseStr(None));
        }
        d.deserialize_any(StrVisitor)
    }
}

/// A boolean field; `None` when absent or not a boolean.
#[derive(Default, Clone, Copy)]
pub(crate) struct LooseBool(pub(crate) Option<bool>);

impl<'de> Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BoolVisitor;
        impl<'de> Visitor<'de> for BoolVisitor {
            type Value = LooseBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LooseBool, E> {
                Ok(LooseBool(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LooseBool, A::Error> {
                drain_seq(seq).map(|()| LooseBool(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LooseBool, A::Error> {
                drain_map(map).map(|()| LooseBool(None))
            }
        }
        d.deserialize_any(BoolVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        name: LooseStr<'a>,
        #[serde(default)]
        flag: LooseBool,
        #[serde(default)]
        #[allow(dead_code)]
        list: Vec<Obj<Inner>>,
    }

    #[derive(Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn a_body_that_is_not_utf8_is_read_as_bytes_as_before() {
        // Bytes that are not UTF-8 in a value nobody reads do not matter, as before.
        let probe = read::<Obj<Probe>>(b"{\"skipped\": \"\xff\", \"name\": \"n\"}")
            .ok()
            .unwrap()
            .0;
        assert_eq!(probe.name.as_str(), Some("n"));
        // In a string that is read, they are a 400 at the bytes' position.
        let err = read::<Obj<Probe>>(b"{\"name\": \"\xff\"}").err().unwrap();
        assert_eq!(err.status(), 400);
        let utf8 = read::<Obj<Probe>>("{\"name\": \"é\"}".as_bytes())
            .ok()
            .unwrap()
            .0;
        assert_eq!(utf8.name.as_str(), Some("é"));
    }

    #[test]
    fn wrong_types_in_strict_places_name_the_field() {
        let err = read::<Obj<Probe>>(br#"{"list": [{"n": 1}, {"n": "x"}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.param(), Some("list.1.n"));
        let err = read::<Obj<Probe>>(br#"{"list": [[1]]}"#).err().unwrap();
        assert_eq!(err.param(), Some("list.0"));
        let err = read::<Obj<Probe>>(b"[]").err().unwrap();
        assert_eq!(err.param(), None);
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn indexed_paths_are_written_as_openai_writes_them() {
        let err = read_indexed::<Obj<Probe>>(br#"{"list": [{"n": 1}, {"n": "x"}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.param(), Some("list[1].n"));
        let err = read_indexed::<Obj<Probe>>(b"[]").err().unwrap();
        assert_eq!(err.param(), None);
    }

    #[test]
    fn loose_fields_take_any_value_and_keep_only_theirs() {
        let Obj(p) = read::<Obj<Probe>>(br#"{"name": {"a": [1]}, "flag": "yes"}"#).unwrap();
        assert_eq!(p.name.as_str(), None);
        assert_eq!(p.flag.0, None);
        let Obj(p) = read::<Obj<Probe>>(br#"{"name": "n", "flag": true}"#).unwrap();
        assert_eq!(p.name.as_str(), Some("n"));
        assert_eq!(p.flag.0, Some(true));
    }

    #[test]
    fn a_duplicate_field_and_broken_json_are_400s() {
        let err = read::<Obj<Probe>>(br#"{"name": "a", "name": "b"}"#)
            .err()
            .unwrap();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("duplicate field"), "{err}");
        let err = read::<Obj<Probe>>(br#"{"name": "#).err().unwrap();
        assert!(matches!(err, ProxyError::InvalidJson { .. }), "{err}");
        let err = read::<Obj<Probe>>(br#"{} x"#).err().unwrap();
        assert!(matches!(err, ProxyError::InvalidJson { .. }), "{err}");
    }
}
