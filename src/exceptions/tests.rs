use std::path::Path;

use serde_json::json;

use super::*;

fn load(files: &[(&str, &str)]) -> (ExceptionStore, Vec<String>) {
    let (store, errors) =
        ExceptionStore::from_texts(files.iter().map(|(p, t)| (Path::new(*p), *t)));
    (store, errors.iter().map(ToString::to_string).collect())
}

const LIST: &str = r#"{"list_id":"l","namespace_type":"single","type":"detection","name":"L"}"#;

fn item_line(entries: &str) -> String {
    format!(
        r#"{{"item_id":"i","list_id":"l","namespace_type":"single","type":"simple","entries":{entries}}}"#
    )
}

#[test]
fn ndjson_errors_name_file_line_and_place() {
    let text = [
        LIST.to_string(),
        "{not json".to_string(),
        item_line(r#"[{"field":"a","operator":"included","type":"regex","value":"x"}]"#),
        item_line(r#"[{"field":"a","operator":"included","type":"match","value":"  "}]"#),
        item_line(r#"[{"field":"n","type":"nested","entries":[{"field":"b","operator":"included","type":"wildcard","value":"x"}]}]"#),
        item_line(r#"[]"#),
        r#"{"item_id":"j","list_id":"other","entries":[{"field":"a","operator":"included","type":"exists"}]}"#.to_string(),
        r#"{"name":"what"}"#.to_string(),
        r#"{"exported_exception_list_count":1}"#.to_string(),
        r#"{"rule_id":"r","type":"query"}"#.to_string(),
    ]
    .join("\n");
    let (store, errors) = load(&[("x.ndjson", &text)]);
    assert_eq!(
        errors,
        [
            "x.ndjson:2: invalid JSON: key must be a string at line 1 column 2",
            "x.ndjson:3: at `/entries/0/type`: expected `match`, `match_any`, `wildcard`, `exists`, `list`, `nested`, found `regex`",
            "x.ndjson:4: at `/entries/0/value`: expected a non-empty string, found the string \"  \"",
            "x.ndjson:5: at `/entries/0/entries/0/type`: expected `match`, `match_any`, `exists` inside a nested entry, found `wildcard`",
            "x.ndjson:6: at `/entries`: expected a non-empty array of entries, found an empty array",
            "x.ndjson:8: expected an exception list (with `list_id`), an exception list item (with `entries`) or an export summary, found an object with `name`",
            "x.ndjson:7: exception item `j` belongs to list `other` (single), which no exception file defines",
        ]
    );
    // The list with bad items is kept out of use.
    let err = store
        .resolve_json(&json!([{"list_id": "l", "namespace_type": "single"}]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exception list `l` (single) did not load (see the errors of its file)"
    );
}

#[test]
fn a_byte_order_mark_is_not_an_error() {
    let (store, errors) = load(&[("bom.ndjson", &format!("\u{feff}{LIST}"))]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(store.len(), 1);
}

#[test]
fn items_may_come_from_another_file_and_lists_are_unique() {
    let item = item_line(r#"[{"field":"a","operator":"included","type":"exists"}]"#);
    let (store, errors) = load(&[("a.ndjson", LIST), ("b.ndjson", &item), ("c.ndjson", LIST)]);
    assert_eq!(
        errors,
        ["c.ndjson:1: exception list `l` (single) is also defined at a.ndjson:1"]
    );
    assert_eq!(store.lists().next().unwrap().items.len(), 1);
    assert!(store
        .resolve_json(&json!([{"list_id": "l", "namespace_type": "single"}]))
        .is_err());
}

#[test]
fn item_fields_are_checked() {
    let bad = |item: &str| {
        let (_, errors) = load(&[("x.ndjson", &format!("{LIST}\n{item}"))]);
        errors.join("\n")
    };
    let entries = r#"[{"field":"a","operator":"included","type":"exists"}]"#;
    assert_eq!(
        bad(&format!(r#"{{"list_id":"l","entries":{entries},"os_types":["solaris"]}}"#)),
        "x.ndjson:2: at `/os_types/0`: expected \"windows\", \"linux\" or \"macos\", found the string \"solaris\""
    );
    assert_eq!(
        bad(&format!(r#"{{"list_id":"l","entries":{entries},"expire_time":"tomorrow"}}"#)),
        "x.ndjson:2: at `/expire_time`: expected an ISO 8601 date and time such as \"2024-04-24T19:00:00.000Z\", found the string \"tomorrow\""
    );
    assert_eq!(
        bad(&format!(r#"{{"list_id":"l","entries":{entries},"namespace_type":"global"}}"#)),
        "x.ndjson:2: at `/namespace_type`: expected \"single\" or \"agnostic\", found the string \"global\""
    );
    assert_eq!(
        bad(&format!(
            r#"{{"list_id":"l","entries":{entries},"type":"complex"}}"#
        )),
        "x.ndjson:2: at `/type`: expected \"simple\", found the string \"complex\""
    );
    assert_eq!(
        bad(r#"{"list_id":"l","entries":[{"field":"a","type":"match","value":"x"}]}"#),
        "x.ndjson:2: at `/entries/0`: expected `operator` in an entry, found none"
    );
    assert_eq!(
        bad(r#"{"list_id":"l","entries":[{"field":"a","operator":"included","type":"match_any","value":"x"}]}"#),
        "x.ndjson:2: at `/entries/0/value`: expected a non-empty array of strings, found the string \"x\""
    );
    assert_eq!(
        bad(r#"{"list_id":"l","entries":[{"field":"a","operator":"included","type":"list"}]}"#),
        "x.ndjson:2: at `/entries/0`: expected `list` in a `list` entry, found none"
    );
    assert_eq!(
        bad(&item_line(
            r#"[{"field":"a","operator":"included","type":"list","list":{"id":"v","type":"ip"}}]"#
        )),
        ""
    );
}

const TOML: &str = r#"[metadata]
list_name = "T"

[[exceptions]]
[exceptions.container]
list_id = "t"
name = "T"
type = "detection"

[[exceptions.items]]
name = "ok"
type = "simple"
[[exceptions.items.entries]]
field = "a"
type = "match"
operator = "included"
value = "x"

[[exceptions.items]]
name = "bad"
type = "simple"
[[exceptions.items.entries]]
field = "a"
type = "exists"
operator = "included"
[[exceptions.items.entries]]
field = "b"
type = "match"
operator = "maybe"
value = "x"

[[exceptions.items]]
list_id = "u"
entries = [{ field = "a", type = "exists", operator = "included" }]
"#;

#[test]
fn toml_errors_point_at_the_entry_line() {
    let (store, errors) = load(&[("t.toml", TOML)]);
    assert_eq!(
        errors,
        [
            "t.toml:26: at `/exceptions/0/items/1/entries/1/operator`: expected \"included\" or \"excluded\", found the string \"maybe\"",
            "t.toml:32: at `/exceptions/0/items/2/list_id`: expected the container's list_id `t`, found `u`",
        ]
    );
    assert_eq!(store.len(), 1);
    let (_, errors) = load(&[("s.toml", "[[exceptions]]\nx = = 1\n")]);
    assert_eq!(
        errors,
        ["s.toml:2: invalid TOML: invalid string: expected `\"`, `'`"]
    );
    let (_, errors) = load(&[("e.toml", "[metadata]\nlist_name = \"x\"\n")]);
    assert_eq!(
        errors,
        ["e.toml:1: expected `[[exceptions]]` tables, found none"]
    );
    let (_, errors) = load(&[(
        "c.toml",
        "[[exceptions]]\n[exceptions.container]\nname = \"x\"\n",
    )]);
    assert_eq!(
        errors,
        ["c.toml:2: at `/exceptions/0/container`: expected `list_id` in an exception list, found none"]
    );
}

#[test]
fn list_references_are_checked() {
    let store = ExceptionStore::default();
    let msg = |v| store.resolve_json(&v).unwrap_err().to_string();
    assert_eq!(
        msg(json!({})),
        "exceptions_list[0]: expected an array of list references, found an empty object"
    );
    assert_eq!(
        msg(json!([{"list_id": "a", "namespace_type": "space"}])),
        "exceptions_list[0]: expected \"single\" or \"agnostic\" for `namespace_type`, found \"space\""
    );
    assert_eq!(
        msg(json!([{"list_id": "a", "namespace_type": "single"}, "b"])),
        "exceptions_list[1]: expected an object with `list_id` and `namespace_type`, found the string \"b\""
    );
    // The same list twice is read once.
    let (store, _) = load(&[("a.ndjson", LIST)]);
    let r = store
        .resolve_json(&json!([
            {"list_id": "l", "namespace_type": "single"},
            {"list_id": "l", "namespace_type": "single", "id": "x", "type": "detection"},
        ]))
        .unwrap();
    assert_eq!(r.lists().count(), 1);
}
