//! Removing top-level members from a JSON object without re-encoding it.
//!
//! The FixLayer's most common response edit is dropping Hunyuan's `note` from an answer or a
//! stream event that needs nothing else. Parsing the object into members and writing it back
//! costs several thousand instructions per event; this module instead checks the object with
//! a validating scanner (the same JSON grammar serde_json accepts: strings with their escapes,
//! numbers, literals, nesting up to serde_json's depth limit) and copies every other member's
//! bytes. Whenever it is unsure (invalid JSON, an escaped key, a deeper nesting), it answers
//! `None` and the caller takes the parsing path, which decides as before.
//!
//! Hunyuan puts `note` last, so [`without_members`] first tries a shortcut that reads the
//! object from its end: the closing brace, one string value, a colon, the key, a comma. When
//! that shape is there and neither the key nor `"error"` appears anywhere before it, the
//! member is cut without scanning the rest (about a tenth of the instructions on a stream
//! event). The shortcut does not validate the members it copies: it forwards them as the
//! upstream sent them, as the proxy does with any answer it leaves alone.

/// What [`without_members`] found at the top level.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Spliced {
    /// How many members were left out.
    pub removed: usize,
    /// Whether the object has a top-level `error` member.
    pub error: bool,
}

/// serde_json's default recursion limit.
const MAX_DEPTH: u32 = 128;

/// Appends `json` (one object, optionally surrounded by JSON whitespace) to `out` without its
/// top-level members named `key`. Everything else keeps its bytes: each removed member goes
/// with the comma (and whitespace) before it, or after it when it comes first.
///
/// Returns `None`, with `out` in an unspecified state, when `json` is not a valid JSON object
/// or a top-level key holds an escape. When the member is the object's last and holds a string
/// (see [`without_last_member`]), the members before it are copied without being checked.
pub(super) fn without_members(json: &[u8], key: &[u8], out: &mut Vec<u8>) -> Option<Spliced> {
    if let Some(found) = without_last_member(json, key, out) {
        return Some(found);
    }
    let mut sc = Scanner { s: json, i: 0 };
    let mut found = Spliced {
        removed: 0,
        error: false,
    };
    sc.ws();
    // Input from `copy_from` on is still to be copied.
    let mut copy_from = sc.i;
    sc.expect(b'{')?;
    sc.ws();
    if sc.peek()? == b'}' {
        sc.i += 1;
    } else {
        // The end of the last kept member's value.
        let mut kept_end = None;
        // Every member so far was removed: the next one starts the copy.
        let mut skip_to_next = false;
        loop {
            let key_start = sc.i;
            if sc.peek()? != b'"' || sc.string()? {
                // Not a key, or a key with an escape: let the parser decide.
                return None;
            }
            let key_end = sc.i;
            sc.ws();
            sc.expect(b':')?;
            sc.ws();
            sc.value(1)?;
            let value_end = sc.i;
            if skip_to_next {
                copy_from = key_start;
                skip_to_next = false;
            }
            let name = &json[key_start + 1..key_end - 1];
            if name == key {
                found.removed += 1;
                match kept_end {
                    // Cut from the end of the member before, its comma included.
                    Some(end) => {
                        if copy_from < end {
                            out.extend_from_slice(&json[copy_from..end]);
                        }
                    }
                    // Cut up to the next member, its comma included.
                    None => {
                        out.extend_from_slice(&json[copy_from..key_start]);
                        skip_to_next = true;
                    }
                }
                copy_from = value_end;
            } else {
                found.error |= name == b"error";
                kept_end = Some(value_end);
            }
            sc.ws();
            match sc.next()? {
                b',' => sc.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    let end = sc.i;
    sc.ws();
    if sc.i != json.len() {
        return None;
    }
    out.extend_from_slice(&json[copy_from..end]);
    Some(found)
}

/// The shortcut for the common shape: `key` is the last member of the object and holds a
/// string, and neither `"key"` nor `"error"` occurs in the bytes before it (so it is the only
/// such member, and the object is no error). Reads backwards from the closing brace; appends
/// the object without the member (and the comma and whitespace before it) to `out` and
/// answers `Some` only when every step matched; otherwise leaves `out` alone and answers
/// `None` for the full scan.
fn without_last_member(json: &[u8], key: &[u8], out: &mut Vec<u8>) -> Option<Spliced> {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    // The end of `json[..end]` once trailing whitespace is skipped.
    let trim_end = |end: usize| {
        json[..end]
            .iter()
            .rposition(|b| !is_ws(b))
            .map_or(0, |i| i + 1)
    };
    let close_brace = trim_end(json.len()).checked_sub(1)?;
    if json[close_brace] != b'}' {
        return None;
    }
    // The value: a string, from its closing quote back to the first quote that no backslash
    // escapes (inside a JSON string every quote is escaped, so that one opens it).
    let close_quote = trim_end(close_brace).checked_sub(1)?;
    if json[close_quote] != b'"' {
        return None;
    }
    let open_quote = unescaped_quote_before(json, close_quote)?;
    let colon = trim_end(open_quote).checked_sub(1)?;
    if json[colon] != b':' {
        return None;
    }
    // The key, exactly `"key"`, its opening quote not escaped (not the tail of a longer string).
    let key_end = trim_end(colon);
    let key_start = key_end.checked_sub(key.len() + 2)?;
    let quoted = &json[key_start..key_end];
    if quoted[0] != b'"' || quoted[quoted.len() - 1] != b'"' || &quoted[1..quoted.len() - 1] != key
    {
        return None;
    }
    if backslashes_before(json, key_start) % 2 == 1 {
        return None;
    }
    let comma = trim_end(key_start).checked_sub(1)?;
    if json[comma] != b',' {
        // The only member (or not an object at all): the full scan handles it.
        return None;
    }
    let kept_end = trim_end(comma);
    let kept = &json[..kept_end];
    if json.iter().find(|b| !is_ws(b)) != Some(&b'{')
        || occurs(kept, &json[key_start..key_end])
        || QUOTED_ERROR.find(kept).is_some()
    {
        return None;
    }
    out.extend_from_slice(kept);
    out.extend_from_slice(&json[close_quote + 1..]);
    Some(Spliced {
        removed: 1,
        error: false,
    })
}

/// A memchr finder built once, on first use.
pub(super) type Finder = std::sync::LazyLock<memchr::memmem::Finder<'static>>;
// memchr's finders, built once: building one costs more than searching a stream event.
pub(super) static QUOTED_NOTE: Finder = Finder::new(|| memchr::memmem::Finder::new(b"\"note\""));
static QUOTED_ERROR: Finder = Finder::new(|| memchr::memmem::Finder::new(b"\"error\""));

/// Whether `needle` occurs in `haystack` (with the prebuilt finder for the usual `"note"`).
fn occurs(haystack: &[u8], needle: &[u8]) -> bool {
    if needle == QUOTED_NOTE.needle() {
        QUOTED_NOTE.find(haystack).is_some()
    } else {
        memchr::memmem::find(haystack, needle).is_some()
    }
}

/// How many backslashes stand right before `json[at]`.
fn backslashes_before(json: &[u8], at: usize) -> usize {
    json[..at].iter().rev().take_while(|&&b| b == b'\\').count()
}

/// The opening quote of the string whose closing quote is at `close`.
fn unescaped_quote_before(json: &[u8], close: usize) -> Option<usize> {
    let mut end = close;
    loop {
        let quote = memchr::memrchr(b'"', &json[..end])?;
        if backslashes_before(json, quote) % 2 == 0 {
            return Some(quote);
        }
        end = quote;
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether a string byte needs a look: a quote, a backslash or a control character.
fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The high bit of each byte of `word` (little-endian) that [`is_special`], exact up to the
/// first such byte (borrows may flag bytes after it, never before it): the lowest set bit
/// marks the first special byte.
fn special_mask(word: u64) -> u64 {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string starting at the opening quote; returns whether it holds an escape.
    fn string(&mut self) -> Option<bool> {
        let s = self.s;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            // Past plain text eight bytes at a time, to the first special byte exactly.
            loop {
                match s.get(i..i + 8) {
                    Some(word) => {
                        let mask = special_mask(u64::from_le_bytes(word.try_into().ok()?));
                        if mask != 0 {
                            i += (mask.trailing_zeros() / 8) as usize;
                            break;
                        }
                        i += 8;
                    }
                    None => {
                        while i < s.len() && !is_special(s[i]) {
                            i += 1;
                        }
                        break;
                    }
                }
            }
            match *s.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *s.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = s.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // Control characters must be escaped.
                _ => return None,
            }
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.ws();
                    self.expect(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn splice(json: &str) -> Option<(String, Spliced)> {
        let mut out = Vec::new();
        let found = without_members(json.as_bytes(), b"note", &mut out)?;
        Some((String::from_utf8(out).unwrap(), found))
    }

    /// The splice must agree with parsing and removing the member.
    fn agrees(json: &str) {
        let (out, found) = splice(json).unwrap_or_else(|| panic!("refused {json}"));
        let mut want: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        let had = want.remove("note").is_some();
        assert_eq!(found.removed > 0, had, "{json}");
        let got: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(got, want, "{json} -> {out}");
    }

    #[test]
    fn removes_the_note_wherever_it_stands() {
        for json in [
            r#"{"note":"n"}"#,
            r#"{"note":"n","id":"x"}"#,
            r#"{"id":"x","note":"n"}"#,
            r#"{"id":"x","note":"n","choices":[]}"#,
            r#" { "id" : "x" , "note" : "n" , "a" : [ 1 , -2.5e+3 , true , false , null ] } "#,
            r#"{"note":"n","note":"m","id":1}"#,
            r#"{}"#,
            r#"{"id":"x"}"#,
        ] {
            agrees(json);
        }
        for (json, want) in [
            (
                r#"{"id":"x","note":"n","c": {"a" : [1, 2.50]}}"#,
                r#"{"id":"x","c": {"a" : [1, 2.50]}}"#,
            ),
            (r#" { "note" : "n" , "id" : 1 } "#, r#"{ "id" : 1 }"#),
            (r#"{"id" : 1 , "note" : "n" }"#, r#"{"id" : 1 }"#),
            (r#"{"note":1,"note":2}"#, r#"{}"#),
            (
                r#"{"note":1 , "note":2 ,"a":3,"note":4,"note":5,"b":6,"note":7}"#,
                r#"{"a":3,"b":6}"#,
            ),
            (r#"{"a":1,"note":2,"note":3}"#, r#"{"a":1}"#),
            (r#"{ "note":1 }"#, r#"{  }"#),
        ] {
            assert_eq!(splice(json).unwrap().0, want, "{json}");
            agrees(json);
        }
    }

    #[test]
    fn escapes_inside_strings_do_not_end_them() {
        for json in [
            r#"{"note":"say \"note\": \\","id":"x"}"#,
            r#"{"id":"a\\","note":"n"}"#,
            r#"{"id":"\\\"","note":"\"}","x":"\\\\"}"#,
            r#"{"content":"{\"note\":\"inner\"}","note":"\u4ee5\/\b\f\n\r\t"}"#,
            r#"{"choices":[{"delta":{"content":"\"note\":\"x\""}}],"note":"以上内容"}"#,
            r#"{"x":{"note":"nested stays"},"note":"top goes"}"#,
        ] {
            agrees(json);
        }
        let (out, _) = splice(r#"{"x":{"note":"nested stays"},"note":"top goes"}"#).unwrap();
        assert_eq!(out, r#"{"x":{"note":"nested stays"}}"#);
        let (out, found) = splice(r#"{"content":"\"note\":1"}"#).unwrap();
        assert_eq!(found.removed, 0);
        assert_eq!(out, r#"{"content":"\"note\":1"}"#);
    }

    #[test]
    fn the_word_check_finds_the_first_special_byte() {
        let first = |bytes: &[u8; 8]| {
            let mask = special_mask(u64::from_le_bytes(*bytes));
            (mask != 0).then(|| mask.trailing_zeros() as usize / 8)
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let fills = [
            b'a', b'"', b'\\', 0, 0x1f, 0x20, 0x21, 0x5c, 0x7f, 0x80, 0xa0, 0xe4, 0xff,
        ];
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = [0u8; 8];
            for (k, b) in bytes.iter_mut().enumerate() {
                *b = fills[((seed >> (k * 8)) % fills.len() as u64) as usize];
            }
            assert_eq!(
                first(&bytes),
                bytes.iter().position(|&b| is_special(b)),
                "{bytes:?}"
            );
        }
        assert_eq!(first(b"plain ok"), None);
        let long = format!(
            r#"{{"a":"{}\"{}","note":"{}","b":"x\\"}}"#,
            "以上内容".repeat(9),
            "z".repeat(13),
            "y".repeat(17)
        );
        agrees(&long);
        let control = format!("{{\"note\":\"{}{}x\"}}", "q".repeat(21), '\u{1}');
        assert!(splice(&control).is_none());
    }

    fn shortcut(json: &str) -> Option<String> {
        let mut out = Vec::new();
        let found = without_last_member(json.as_bytes(), b"note", &mut out);
        assert!(found.is_some() || out.is_empty(), "a refusal wrote to out");
        found.map(|found| {
            assert_eq!(
                found,
                Spliced {
                    removed: 1,
                    error: false
                }
            );
            String::from_utf8(out).unwrap()
        })
    }

    #[test]
    fn the_shortcut_cuts_hunyuans_trailing_note() {
        let event = r#"{"id":"3a3f","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"note\": {x}"},"finish_reason":null}],"note":"以上内容为AI生成"}"#;
        assert_eq!(
            shortcut(event).unwrap(),
            r#"{"id":"3a3f","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"note\": {x}"},"finish_reason":null}]}"#
        );
        for (json, want) in [
            (r#"{"id":1,"note":"n"}"#, r#"{"id":1}"#),
            ("{\"id\" : 1 ,\n \"note\" : \"n\" }\n", "{\"id\" : 1 }\n"),
            (r#"{"id":1,"note":"a \" b \\"}"#, r#"{"id":1}"#),
            (r#"{"id":1,"note":"\\\"}\\"}"#, r#"{"id":1}"#),
            (r#"{"id":1,"note":""}"#, r#"{"id":1}"#),
        ] {
            assert_eq!(shortcut(json).as_deref(), Some(want), "{json}");
            agrees(json);
        }
    }

    #[test]
    fn the_shortcut_leaves_other_shapes_to_the_full_scan() {
        for json in [
            // Not last, not a string, the only member, twice, beside an error.
            r#"{"note":"n","id":1}"#,
            r#"{"id":1,"note":5}"#,
            r#"{"id":1,"note":{"a":"b"}}"#,
            r#"{"note":"n"}"#,
            r#"{"note":"m","id":1,"note":"n"}"#,
            r#"{"error":{"message":"m"},"note":"n"}"#,
            // A key that only ends like the note, and an escaped key.
            r#"{"id":1,"xnote":"n"}"#,
            r#"{"id":1,"a\"note":"n"}"#,
            r#"{"id":1,"no\u0074e":"n"}"#,
            // The word inside a nested object still sends it to the scan (conservative).
            r#"{"x":{"note":"keep"},"note":"n"}"#,
            // Not objects.
            r#"["id","note":"n"}"#,
            r#""note":"n"}"#,
            "",
            "}",
        ] {
            assert_eq!(shortcut(json), None, "{json}");
            if serde_json::from_str::<serde_json::Map<String, Value>>(json).is_ok()
                && !json.contains('\\')
            {
                agrees(json);
            }
        }
    }

    #[test]
    fn the_shortcut_agrees_with_parsing_on_any_string() {
        let pieces = [
            "a", "\"", "\\", "\\\"", "\"note\"", "以上", "\u{1}", "}", ",", ":", " ",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut text = || {
            let mut out = String::new();
            for _ in 0..(seed % 7) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                out.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out
        };
        for _ in 0..5_000 {
            let json = serde_json::to_string(&serde_json::json!({
                "id": text(),
                "content": text(),
            }))
            .unwrap();
            let json = format!(
                "{},\"note\":{}}}",
                &json[..json.len() - 1],
                Value::String(text())
            );
            let got = shortcut(&json);
            let mut want: serde_json::Map<String, Value> = serde_json::from_str(&json).unwrap();
            want.remove("note");
            match got {
                Some(out) => {
                    let out: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
                    assert_eq!(out, want, "{json}");
                }
                // Refused only when the word stands as a string before it.
                None => assert!(
                    json[..json.rfind(",\"note\":").unwrap()].contains("\"note\""),
                    "{json}"
                ),
            }
            agrees(&json);
        }
    }

    #[test]
    fn the_shortcut_copies_the_members_before_the_note_unchecked() {
        // As documented: they go on as the upstream sent them, like any untouched answer.
        assert_eq!(
            shortcut(r#"{"a":01,"note":"n"}"#).as_deref(),
            Some(r#"{"a":01}"#)
        );
    }

    #[test]
    fn reports_error_members() {
        let (_, found) = splice(r#"{"error":{"message":"m"},"note":"n"}"#).unwrap();
        assert_eq!(
            found,
            Spliced {
                removed: 1,
                error: true
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_be_sure_of() {
        for json in [
            r#"{"note": oops"#,
            r#"{"note":"n""#,
            r#"{"note":"n",}"#,
            r#"{"note":"n"} x"#,
            r#"{"note":"n" "id":1}"#,
            r#"{"no\u0074e":"n"}"#,
            r#"{"note":"bad \x escape"}"#,
            "{\"note\":\"raw\ncontrol\"}",
            r#"{"note":"n","a":01}"#,
            r#"{"note":"n","a":1.}"#,
            r#"{"note":"n","a":-}"#,
            r#"{"note":"n","a":tru}"#,
            r#"{"note":"n","a":[1,]}"#,
            r#"{"note":"n","a":{"b"}}"#,
            r#"{"note":"\u12"}"#,
            r#"["note"]"#,
            "",
        ] {
            assert!(splice(json).is_none(), "{json}");
            assert!(
                serde_json::from_str::<serde_json::Map<String, Value>>(json).is_err()
                    || json.contains('\\'),
                "{json} is valid: only escaped keys may be refused"
            );
        }
        let deep = format!(
            "{{\"a\":{}{},\"note\":1}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(splice(&deep).is_none());
        let ok = format!(
            "{{\"a\":{}{},\"note\":1}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        agrees(&ok);
    }
}
