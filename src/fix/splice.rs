//! Removing top-level members from a JSON object without re-encoding it.
//!
//! The FixLayer's most common response edit is dropping Hunyuan's `note` from an answer or a
//! stream event that needs nothing else. Parsing the object into members and writing it back
//! costs several thousand instructions per event; this module instead checks the object with
//! a validating scanner (the same JSON grammar serde_json accepts: strings with their escapes,
//! numbers, literals, nesting up to serde_json's depth limit) and copies every other member's
//! bytes. Whenever it is unsure (invalid JSON, an escaped key, a deeper nesting), it answers
//! `None` and the caller takes the parsing path, which decides as before.

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
/// or a top-level key holds an escape.
pub(super) fn without_members(json: &[u8], key: &[u8], out: &mut Vec<u8>) -> Option<Spliced> {
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
