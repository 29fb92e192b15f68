//! Whether a line is a document, without building it: what opening an
//! input asks of every line. [`check_line`] accepts and rejects exactly the
//! lines [`super::parse_line`] does, with the same messages: both run
//! serde_json's own parser over the line (`deserialize_any`, which checks
//! syntax, UTF-8, escapes, number ranges and the nesting limit whatever
//! the visitor), and the visitor here, like `Value`'s, refuses nothing —
//! it only keeps nothing.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::eql::decode::DecodeError;

/// `Ok` when [`super::parse_line`] gives a document, else its error.
pub(super) fn check_line(bytes: &[u8]) -> Result<(), DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if plainly_an_object(bytes) {
        return Ok(());
    }
    match serde_json::from_str::<Kind>(text)? {
        Kind::Object => Ok(()),
        Kind::Other(what) => Err(DecodeError::NotObject(what)),
    }
}

/// Nesting the quick check follows (serde_json's limit is 128).
const QUICK_DEPTH: u32 = 100;

/// Whether `bytes` (valid UTF-8) is certainly one JSON object serde_json
/// reads without error — the common line, checked without serde's
/// per-value machinery (strings are skipped with `memchr`). `false` says
/// nothing: serde_json then decides, and gives the message. Where serde_json
/// has rules of its own this answers `false`: a number with an exponent or
/// longer than 300 bytes (out of range), a `\u` escape of a surrogate
/// (pairs), nesting deeper than [`QUICK_DEPTH`].
fn plainly_an_object(bytes: &[u8]) -> bool {
    /// Where the check is: what it expects next.
    enum At {
        /// After `{` or `[`: its close, or a first element.
        Opened,
        /// A member (key, `:`, value) or an element.
        Element,
        /// After a value: `,`, a close, or (at the top) the end.
        Done,
    }
    // No control character anywhere: none in a string then, and outside
    // strings only spaces (a tab or CR between tokens goes to serde_json).
    // No early exit: the loop vectorises.
    if bytes.iter().fold(false, |c, &b| c | (b < 0x20)) {
        return false;
    }
    let mut s = Quick { b: bytes, i: 0 };
    s.ws();
    if !s.eat(b'{') {
        return false;
    }
    // bit d: the container at depth d + 1 is an object
    let (mut objects, mut depth): (u128, u32) = (1, 1);
    let mut at = At::Opened;
    loop {
        s.ws();
        let in_object = depth > 0 && objects >> (depth - 1) & 1 == 1;
        let close = if in_object { b'}' } else { b']' };
        at = match at {
            At::Opened if s.eat(close) => {
                depth -= 1;
                At::Done
            }
            At::Opened => At::Element,
            At::Element => {
                if in_object {
                    if !s.string() {
                        return false;
                    }
                    s.ws();
                    if !s.eat(b':') {
                        return false;
                    }
                    s.ws();
                }
                match s.b.get(s.i) {
                    Some(&open @ (b'{' | b'[')) if depth < QUICK_DEPTH => {
                        s.i += 1;
                        objects = (objects & !(1 << depth)) | (u128::from(open == b'{') << depth);
                        depth += 1;
                        At::Opened
                    }
                    Some(b'"') if s.string() => At::Done,
                    Some(b'-' | b'0'..=b'9') if s.number() => At::Done,
                    Some(b't') if s.word(b"true") => At::Done,
                    Some(b'f') if s.word(b"false") => At::Done,
                    Some(b'n') if s.word(b"null") => At::Done,
                    _ => return false,
                }
            }
            At::Done if depth == 0 => return s.i == s.b.len(),
            At::Done if s.eat(b',') => At::Element,
            At::Done if s.eat(close) => {
                depth -= 1;
                At::Done
            }
            At::Done => return false,
        };
    }
}

/// The quick check's place in a line.
struct Quick<'a> {
    b: &'a [u8],
    i: usize,
}

impl Quick<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let here = self.b.get(self.i) == Some(&c);
        self.i += usize::from(here);
        here
    }

    fn word(&mut self, w: &[u8]) -> bool {
        let here = self.b[self.i..].starts_with(w);
        self.i += if here { w.len() } else { 0 };
        here
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - from
    }

    /// A string (the line has no control characters) whose escapes are
    /// all known and none a surrogate. Strings in events are short: a byte
    /// loop finds their end sooner than a `memchr` call.
    fn string(&mut self) -> bool {
        if !self.eat(b'"') {
            return false;
        }
        loop {
            while self.b.get(self.i).is_some_and(|&c| c != b'"' && c != b'\\') {
                self.i += 1;
            }
            let Some(&end) = self.b.get(self.i) else {
                return false;
            };
            self.i += 1;
            if end == b'"' {
                return true;
            }
            match self.b.get(self.i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    let hex = self.b.get(self.i + 1..self.i + 5);
                    let unit = hex
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u16::from_str_radix(h, 16).ok());
                    match unit {
                        Some(u) if !(0xD800..=0xDFFF).contains(&u) => self.i += 5,
                        _ => return false,
                    }
                }
                _ => return false,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?`, at most 300 bytes. An exponent is
    /// not read: the `e` that follows is no `,` or close, so the line goes
    /// to serde_json, which knows the range.
    fn number(&mut self) -> bool {
        let from = self.i;
        self.eat(b'-');
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return false,
        }
        if self.eat(b'.') && self.digits() == 0 {
            return false;
        }
        self.i - from <= 300
    }
}

/// What a JSON value was, its content checked and dropped.
enum Kind {
    Object,
    /// As `parse_line` names it.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind::Other("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Other("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        while seq.next_element::<Kind>()?.is_some() {}
        Ok(Kind::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        while map.next_entry::<Kind, Kind>()?.is_some() {}
        Ok(Kind::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_line;
    use super::{check_line, plainly_an_object, Kind};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use serde_json::Value;

    fn serde_reads_an_object(line: &str) -> bool {
        matches!(serde_json::from_str::<Kind>(line), Ok(Kind::Object))
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\\\\\"/\\x00-\\x1f\u{e9}\u{1F600}]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A line: an object JSON writes (compact or spaced), then a few bytes
    /// inserted, deleted or replaced (from JSON's own characters, escapes,
    /// exponents, a control character).
    fn arb_line() -> impl Strategy<Value = String> {
        const BYTES: &[u8] = b"{}[]\",:\\u/d8e0E.-+9trufalsn \t\x01";
        let doc = prop::collection::btree_map("[a-z]{0,3}", arb_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        let edit = (any::<prop::sample::Index>(), 0..BYTES.len(), 0..3u8);
        (doc, any::<bool>(), prop::collection::vec(edit, 0..3)).prop_map(|(doc, pretty, edits)| {
            // a line has no newline: spaces between tokens instead
            let text = if pretty {
                serde_json::to_string_pretty(&doc).map(|t| t.replace('\n', " "))
            } else {
                serde_json::to_string(&doc)
            };
            let mut line = text.unwrap().into_bytes();
            for (at, b, op) in edits {
                let i = at.index(line.len() + 1);
                match op {
                    0 => line.insert(i, BYTES[b]),
                    _ if i == line.len() => {}
                    1 => {
                        line.remove(i);
                    }
                    _ => line[i] = BYTES[b],
                }
            }
            String::from_utf8_lossy(&line).into_owned()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        /// The quick check never accepts a line serde_json refuses.
        #[test]
        fn the_quick_check_accepts_only_objects_serde_json_reads(line in arb_line()) {
            if plainly_an_object(line.as_bytes()) {
                prop_assert!(serde_reads_an_object(&line), "{line:?}");
            }
        }
    }

    #[test]
    fn the_quick_check_answers_most_lines_and_the_edits_break_many() {
        // The property says nothing if the quick check accepted nothing or
        // the edits broke nothing: count both over a fixed sample.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut quick, mut objects, mut broken) = (0, 0, 0);
        for _ in 0..4000 {
            let line = arb_line().new_tree(&mut runner).unwrap().current();
            match (
                plainly_an_object(line.as_bytes()),
                serde_reads_an_object(&line),
            ) {
                (true, _) => quick += 1,
                (false, true) => objects += 1,
                (false, false) => broken += 1,
            }
        }
        assert!(quick > 1200 && quick > 2 * objects, "{quick} {objects}");
        assert!(broken > 800, "{broken}");
    }

    #[test]
    fn accepts_and_rejects_what_parse_line_does_with_its_messages() {
        let deep_ok = format!("{{\"a\":{}1{}}}", "[".repeat(120), "]".repeat(120));
        let too_deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let lines: Vec<Vec<u8>> = [
            r#"{"a": 1, "b": {"c": [1, 2.5, -3, "x\n\u00e9", null, true, {}]}}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"big": 1e400}"#,
            r#"{"big": -1e400}"#,
            r#"{"n": 18446744073709551616}"#,
            r#"{"s": "\ud800"}"#,
            r#"{"s": "\ud83d\ude00"}"#,
            r#"{"s": "\x"}"#,
            r#"{"k": 1} trailing"#,
            r#"{"k": 1"#,
            r#"{"k" 1}"#,
            r#"{1: 2}"#,
            "{\"tab\": \"a\tb\"}",
            r#"[1, 2]"#,
            r#""text""#,
            r#"true"#,
            r#"12"#,
            r#"null"#,
            r#"{}"#,
            &deep_ok,
            &too_deep,
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .chain([b"{\"a\": \"\xff\"}".to_vec(), b"\xc3".to_vec()])
        .collect();
        for line in &lines {
            let want = parse_line(line).map(|_| ()).map_err(|e| e.to_string());
            let got = check_line(line).map_err(|e| e.to_string());
            assert_eq!(got, want, "{}", String::from_utf8_lossy(line));
        }
        // both sides of the line are exercised
        let ok = |l: &str| check_line(l.as_bytes()).is_ok();
        assert!(ok(r#"{"a": 1, "a": 2}"#) && ok(&deep_ok));
        assert!(!ok(r#"{"big": 1e400}"#) && !ok(r#"{"s": "\ud800"}"#) && !ok(&too_deep));
        assert_eq!(
            check_line(b"[1, 2]").unwrap_err().to_string(),
            "expected a JSON object, found an array"
        );
    }
}
