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
    match serde_json::from_str::<Kind>(text)? {
        Kind::Object => Ok(()),
        Kind::Other(what) => Err(DecodeError::NotObject(what)),
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
    use super::check_line;

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
