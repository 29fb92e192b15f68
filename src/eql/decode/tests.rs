//! Unit tests for the tricky cases, and a property test that the decoder
//! and `build_event` agree on random documents and field tables.

use super::*;
use crate::eql::event::MAX_VALUES;
use crate::eql::schema::Schema;
use crate::eql::value::Value;
use serde_json::{json, Value as Json};

fn table(schema: &Schema, names: &[&str]) -> FieldTable {
    let mut t = FieldTable::default();
    for n in names {
        t.slot(n, schema);
    }
    t
}

/// Decodes `line` and checks it against `build_event` of the parsed line.
fn agree(t: &FieldTable, line: &str) -> Event {
    let built = t.build_event(&serde_json::from_str::<Json>(line).expect("test line parses"));
    let decoded = t.decode_event(line.as_bytes()).expect("test line decodes");
    assert_eq!(decoded, built, "line: {line}");
    decoded
}

fn mapping_schema() -> Schema {
    Schema::from_mapping(&json!({"properties": {
        "pid": {"type": "long"},
        "ip": {"type": "ip"},
        "d": {"type": "date", "format": "dd-MM-yyyy"},
        "opt": {"type": "keyword", "null_value": "NULL"},
        "k": {"type": "keyword", "fields": {"raw": {"type": "keyword"}}},
        "event": {"properties": {"category": {"type": "alias", "path": "event_type"}}},
        "ds": {"type": "constant_keyword", "value": "endpoint"}
    }}))
    .expect("test mapping")
}

#[test]
fn dotted_keys_arrays_of_objects_and_nested_arrays() {
    let t = table(
        &Schema::default(),
        &["process.pid", "process.parent.name", "tags", "a.b", "a"],
    );
    let e = agree(
        &t,
        r#"{"process.pid": 1, "process": {"parent.name": "x", "parent": {"name": "y"}},
            "tags": ["t1", ["t2", [null, "t3"]], {"t": 1}],
            "a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}, 5, [{"b": 6}]], "a.b": 7}"#,
    );
    assert_eq!(e.get(0), &[Value::Long(1)]);
    assert_eq!(e.get(1), &[Value::str("x"), Value::str("y")]);
    assert_eq!(
        e.get(2),
        &[Value::str("t1"), Value::str("t2"), Value::str("t3")]
    );
    let longs = |xs: &[i64]| xs.iter().map(|&n| Value::Long(n)).collect::<Vec<_>>();
    assert_eq!(e.get(3), longs(&[1, 2, 3, 6, 7]).as_slice());
    assert_eq!(e.get(4), longs(&[5]).as_slice());
}

#[test]
fn mapping_types_aliases_null_value_and_constants() {
    let t = table(
        &mapping_schema(),
        &[
            "pid",
            "ip",
            "d",
            "opt",
            "k",
            "k.raw",
            "event.category",
            "ds",
        ],
    );
    let e = agree(
        &t,
        r#"{"pid": "42", "ip": ["10.0.0.1", "nope"], "d": "02-01-1970", "opt": [null, "x", null],
            "k": 5, "event_type": "process"}"#,
    );
    assert_eq!(e.get(0), &[Value::Long(42)]);
    assert_eq!(e.get(1), &[Value::Ip("10.0.0.1".parse().unwrap())]);
    assert_eq!(e.get(2), &[Value::Date(86_400_000)]);
    assert_eq!(
        e.get(3),
        &[Value::str("NULL"), Value::str("x"), Value::str("NULL")]
    );
    assert_eq!(e.get(4), &[Value::str("5")]);
    assert_eq!(e.get(5), &[Value::str("5")]);
    assert_eq!(e.get(6), &[Value::str("process")]);
    assert_eq!(e.get(7), &[Value::str("endpoint")]);
    // missing: no null_value, but the constant
    let e = agree(&t, "{}");
    assert!(e.get(3).is_empty());
    assert_eq!(e.get(7), &[Value::str("endpoint")]);
}

#[test]
fn timestamp_tiebreaker_and_category() {
    let s = Schema::default();
    let mut t = FieldTable::default();
    let ts = t.slot("@timestamp", &s);
    let tb = t.slot("event.sequence", &s);
    let cat = t.slot("event.category", &s);
    t.set_timestamp(ts);
    t.set_tiebreaker(tb);
    t.set_category(cat);
    let e = agree(
        &t,
        r#"{"@timestamp": "2023-11-14T22:13:20.123Z", "event": {"sequence": 7, "category": ["network", "x"]}}"#,
    );
    assert_eq!(e.timestamp, Some(1_700_000_000_123));
    assert_eq!(e.tiebreaker, Some(Value::Long(7)));
    assert_eq!(e.get(cat), &[Value::str("network"), Value::str("x")]);
    assert_eq!(agree(&t, r#"{"@timestamp": "100"}"#).timestamp, Some(100));
    assert_eq!(agree(&t, r#"{"@timestamp": 1.5}"#).timestamp, Some(1));
    assert_eq!(agree(&t, r#"{"@timestamp": "nope"}"#).timestamp, None);
    assert_eq!(agree(&t, r#"{"@timestamp": {"a": 1}}"#).timestamp, None);
}

/// `collect` matches paths as strings, so odd field names (empty segments,
/// a trailing dot) behave as there.
#[test]
fn odd_paths_match_like_collect() {
    let t = table(&Schema::default(), &["a.", "a..b", "", ".", "a"]);
    for line in [
        r#"{"a": 1}"#,
        r#"{"a.": 2, "a": {"": 3, ".b": 4}}"#,
        r#"{"a": {"": {"b": 5}}, "a.": {"b": 6}, "": 7, ".": 8}"#,
        r#"{"a": [{"": [9]}, 10]}"#,
    ] {
        agree(&t, line);
    }
}

/// serde_json::Value keeps the last value of a repeated key at the first
/// one's position.
#[test]
fn repeated_keys_resolve_like_serde_json_value() {
    let t = table(&Schema::default(), &["a.b", "c"]);
    let e = agree(&t, r#"{"a.b": 1, "a": {"b": 2}, "a.b": 3, "c": 4}"#);
    assert_eq!(e.get(0), &[Value::Long(3), Value::Long(2)]);
    let e = agree(
        &t,
        r#"{"a": {"b": 1, "b": 2}, "c": [5], "c": 6, "z": 0, "z": 1}"#,
    );
    assert_eq!(e.get(0), &[Value::Long(2)]);
    assert_eq!(e.get(1), &[Value::Long(6)]);
    // a repeated key that leads nowhere is harmless
    agree(&t, r#"{"z": 0, "c": 6, "z": 1}"#);
}

#[test]
fn escaped_keys_and_strings() {
    let t = table(&Schema::default(), &["ab.c", "s"]);
    let e = agree(
        &t,
        r#"{"\u0061b": {"\u0063": "x\ny"}, "s": "caf\u00e9 \ud83d\ude00 \"q\""}"#,
    );
    assert_eq!(e.get(0), &[Value::str("x\ny")]);
    assert_eq!(e.get(1), &[Value::str("café 😀 \"q\"")]);
}

#[test]
fn depth_cap_is_the_same() {
    let t = table(&Schema::default(), &["a"]);
    // a scalar under the key at depth 1 plus n array levels
    for n in [62, 63, 64, 65, 100] {
        let line = format!(r#"{{"a": {}1{}}}"#, "[".repeat(n), "]".repeat(n));
        let e = agree(&t, &line);
        assert_eq!(e.get(0).len(), usize::from(n < MAX_DEPTH), "{n} levels");
    }
}

#[test]
fn value_cap_is_the_same() {
    let t = table(&mapping_schema(), &["opt", "pid"]);
    let items: Vec<Json> = (0..MAX_VALUES + 5)
        .map(|i| if i % 3 == 0 { Json::Null } else { json!(i) })
        .collect();
    let line = json!({"opt": items, "pid": [items.clone(), items]}).to_string();
    let e = agree(&t, &line);
    assert_eq!(e.get(0).len(), MAX_VALUES);
    // nulls without a null_value count towards the cap but are dropped
    assert_eq!(e.get(1).len(), MAX_VALUES / 3 * 2);
}

#[test]
fn rejects_what_serde_json_value_rejects() {
    let t = table(&Schema::default(), &["a"]);
    let deep = format!(r#"{{"z": {}{}}}"#, "[".repeat(200), "]".repeat(200));
    let cases: Vec<&[u8]> = vec![
        b"",
        b"   ",
        b"{",
        b"{\"a\": 1,}",
        b"{\"a\": 1} x",
        b"{\"z\": 1e400}",
        b"{\"z\": \"\\ud800\"}",
        b"{\"z\": \"\\x\"}",
        b"{\"z\": \"\xff\"}",
        b"{\"a\": 1, \"z\": \"tab\there\"}",
        deep.as_bytes(),
    ];
    for line in cases {
        assert!(
            serde_json::from_slice::<Json>(line).is_err(),
            "reference accepts {line:?}"
        );
        assert!(t.decode_event(line).is_err(), "decoder accepts {line:?}");
    }
    // serde_json allows 127 nested containers (the root object is one)
    let ok = format!(r#"{{"z": {}{}}}"#, "[".repeat(126), "]".repeat(126));
    agree(&t, &ok);
    let too_deep = format!(r#"{{"z": {}{}}}"#, "[".repeat(127), "]".repeat(127));
    assert!(serde_json::from_str::<Json>(&too_deep).is_err());
    assert!(t.decode_event(too_deep.as_bytes()).is_err());
}

#[test]
fn non_objects_are_errors_with_a_message() {
    let t = table(&Schema::default(), &["a"]);
    for (line, kind) in [
        ("[1, 2]", "an array"),
        ("\"s\"", "a string"),
        ("1", "a number"),
        ("-1.5", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let err = t.decode_event(line.as_bytes()).unwrap_err();
        assert!(
            matches!(err, DecodeError::NotObject(k) if k == kind),
            "{line}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("expected a JSON object, found {kind}")
        );
    }
    let err = t.decode_event(b"{\"a\": }").unwrap_err();
    assert!(matches!(err, DecodeError::Json(_)), "{err}");
    assert!(err.to_string().starts_with("invalid JSON: "), "{err}");
    let err = t.decode_event(b"{\"a\": \"\xc3\"}").unwrap_err();
    assert_eq!(err.to_string(), "invalid UTF-8 after byte 7");
}

#[test]
fn decoder_follows_slots_added_later() {
    let s = Schema::default();
    let mut t = table(&s, &["a"]);
    let line = br#"{"a": 1, "b": 2}"#;
    assert_eq!(t.decode_event(line).unwrap().get(0), &[Value::Long(1)]);
    let b = t.slot("b", &s);
    assert_eq!(t.decode_event(line).unwrap().get(b), &[Value::Long(2)]);
    // a clone keeps working on its own
    let mut u = t.clone();
    let c = u.slot("c", &s);
    assert!(u.decode_event(line).unwrap().get(c).is_empty());
    assert_eq!(t.decode_event(line).unwrap().get(b), &[Value::Long(2)]);
}

#[test]
fn numbers_like_serde_json_value() {
    let t = table(&Schema::default(), &["n"]);
    let kw = table(
        &Schema::from_mapping(&json!({"properties": {"n": {"type": "keyword"}}})).unwrap(),
        &["n"],
    );
    for line in [
        r#"{"n": [0, -0, 1.0, -1.5e3, 1E2, 18446744073709551615, -9223372036854775808]}"#,
        r#"{"n": [123456789012345678901234567890, 0.1, 5e-324, 1.7976931348623157e308]}"#,
    ] {
        agree(&t, line);
        agree(&kw, line);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// A JSON document as written: objects may repeat keys.
    #[derive(Clone, Debug)]
    enum Doc {
        Null,
        Bool(bool),
        /// Number text as serde_json would print it, or odd spellings.
        Num(String),
        Str(String),
        Arr(Vec<Doc>),
        Obj(Vec<(String, Doc)>),
    }

    const KEYS: &[&str] = &[
        "a",
        "b",
        "c",
        "a.b",
        "b.c",
        "a.b.c",
        "",
        ".",
        "a.",
        "é",
        "ünï.cødé",
        "@timestamp",
        "tags",
        "q\"t",
        "pid",
        "ip",
        "opt",
        "k",
        "event_type",
    ];

    const FIELDS: &[&str] = &[
        "a",
        "b",
        "c",
        "a.b",
        "b.c",
        "a.b.c",
        "a.b.c.d",
        "a.c",
        "",
        ".",
        "a.",
        "a..b",
        "é",
        "ünï.cødé",
        "ünï",
        "@timestamp",
        "tags",
        "q\"t",
        "pid",
        "ip",
        "opt",
        "k",
        "k.raw",
        "event.category",
        "ds",
        "d",
        "zz.top",
    ];

    fn leaf() -> impl Strategy<Value = Doc> {
        prop_oneof![
            Just(Doc::Null),
            any::<bool>().prop_map(Doc::Bool),
            any::<i64>().prop_map(|n| Doc::Num(n.to_string())),
            any::<u64>().prop_map(|n| Doc::Num(n.to_string())),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| Doc::Num(Json::from(f).to_string())),
            prop_oneof![
                Just("-0"),
                Just("1.0"),
                Just("1e2"),
                Just("-2.5E-3"),
                Just("99999999999999999999999"),
            ]
            .prop_map(|s| Doc::Num(s.to_string())),
            "[a-z0-9.:/ \"\\\\\n\t-]{0,10}".prop_map(Doc::Str),
            "\\PC{0,6}".prop_map(Doc::Str),
            prop_oneof![
                Just("10.0.0.1"),
                Just("::1"),
                Just("1970-01-01T00:00:00Z"),
                Just("2023-11-14T22:13:20.123Z"),
                Just("02-01-1970"),
                Just("42"),
                Just("true"),
            ]
            .prop_map(|s| Doc::Str(s.to_string())),
        ]
    }

    fn doc() -> impl Strategy<Value = Doc> {
        leaf().prop_recursive(6, 80, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Doc::Arr),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                    |kv| Doc::Obj(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                ),
            ]
        })
    }

    fn root() -> impl Strategy<Value = Doc> {
        proptest::collection::vec((proptest::sample::select(KEYS), doc()), 0..8)
            .prop_map(|kv| Doc::Obj(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    /// Writes a string literal, spelling ASCII letters as `\u00XX` escapes
    /// when `escape` (the decoder must unescape keys and values).
    fn write_str(out: &mut String, s: &str, escape: bool) {
        out.push('"');
        for c in s.chars() {
            if escape && c.is_ascii_alphabetic() {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                let quoted = Json::from(c.to_string()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
        }
        out.push('"');
    }

    fn write(out: &mut String, d: &Doc, style: u8) {
        let sep = if style & 1 == 1 { ", " } else { "," };
        match d {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Num(n) => out.push_str(n),
            Doc::Str(s) => write_str(out, s, style & 2 == 2),
            Doc::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    write(out, v, style);
                }
                out.push(']');
            }
            Doc::Obj(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    write_str(out, k, style & 4 == 4);
                    out.push_str(if style & 1 == 1 { ": " } else { ":" });
                    write(out, v, style);
                }
                out.push('}');
            }
        }
    }

    /// Every key path of the document, joined with dots (what a query
    /// reading this document would name).
    fn doc_paths(d: &Doc, prefix: &str, out: &mut Vec<String>) {
        match d {
            Doc::Obj(kv) => {
                for (k, v) in kv {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if !out.contains(&p) {
                        out.push(p.clone());
                    }
                    doc_paths(v, &p, out);
                }
            }
            Doc::Arr(items) => {
                for v in items {
                    doc_paths(v, prefix, out);
                }
            }
            _ => {}
        }
    }

    fn prop_schema(mapped: bool) -> Schema {
        if !mapped {
            return Schema::default();
        }
        Schema::from_mapping(&json!({"properties": {
            "a": {"properties": {"b": {"type": "long"}, "c": {"type": "double"}}},
            "b": {"type": "ip"},
            "c": {"type": "date", "format": "dd-MM-yyyy"},
            "a.b.c": {"type": "version"},
            "b.c": {"type": "boolean"},
            "pid": {"type": "long"},
            "ip": {"type": "ip"},
            "d": {"type": "date"},
            "opt": {"type": "keyword", "null_value": "NULL"},
            "tags": {"type": "keyword", "null_value": "none"},
            "k": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "event": {"properties": {"category": {"type": "alias", "path": "event_type"}}},
            "ds": {"type": "constant_keyword", "value": "endpoint"},
            "@timestamp": {"type": "date"}
        }}))
        .expect("prop mapping")
    }

    fn prop_table(mapped: bool, names: &[&str], ts: usize, tb: usize) -> FieldTable {
        let schema = prop_schema(mapped);
        let mut t = FieldTable::default();
        for n in names {
            t.slot(n, &schema);
        }
        if !t.is_empty() {
            t.set_timestamp(ts % t.len());
            t.set_tiebreaker(tb % t.len());
        }
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decoder_agrees_with_build_event(
            doc in root(),
            style in 0u8..8,
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
            names in proptest::collection::vec(proptest::sample::select(FIELDS), 0..4),
            mapped in any::<bool>(),
            ts in 0usize..12,
            tb in 0usize..12,
        ) {
            let mut line = String::new();
            write(&mut line, &doc, style);
            // mostly paths the document has, some it may not
            let mut paths = Vec::new();
            doc_paths(&doc, "", &mut paths);
            let mut fields: Vec<&str> = Vec::new();
            if !paths.is_empty() {
                fields.extend(picks.iter().map(|i| paths[i.index(paths.len())].as_str()));
            }
            fields.extend(names.iter().copied());
            let t = prop_table(mapped, &fields, ts, tb);
            match serde_json::from_str::<Json>(&line) {
                Ok(parsed) => {
                    let decoded = t.decode_event(line.as_bytes());
                    prop_assert!(decoded.is_ok(), "{line}: {:?}", decoded.err());
                    prop_assert_eq!(decoded.ok(), Some(t.build_event(&parsed)), "{}", line);
                }
                Err(_) => prop_assert!(t.decode_event(line.as_bytes()).is_err(), "{}", line),
            }
        }

        /// Broken lines: the decoder fails exactly when serde_json::Value
        /// parsing fails (or the line is not an object), and never panics.
        #[test]
        fn decoder_rejects_exactly_what_serde_json_rejects(
            doc in root(),
            cut in any::<proptest::sample::Index>(),
            insert in proptest::sample::select(&[",", "}", "]", "\"", "\\", "x", "\u{0}", "1e999", "[", ""][..]),
            names in proptest::collection::vec(proptest::sample::select(FIELDS), 0..6),
        ) {
            let mut line = String::new();
            write(&mut line, &doc, 0);
            let mut at = cut.index(line.len() + 1);
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            line.insert_str(at, insert);
            let t = prop_table(false, &names, 0, 0);
            let reference = serde_json::from_str::<Json>(&line);
            let decoded = t.decode_event(line.as_bytes());
            match reference {
                Ok(parsed) if parsed.is_object() => {
                    prop_assert_eq!(decoded.ok(), Some(t.build_event(&parsed)), "{}", line)
                }
                _ => prop_assert!(decoded.is_err(), "{}", line),
            }
        }
    }
}
