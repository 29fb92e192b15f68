//! Parser behaviour beyond Kibana's own test cases: Kibana's grammar quirks
//! kept on purpose, spans, depth limit, and carets.

use super::*;
use crate::diagnostic::render;
use crate::filter::to_dsl;
use serde_json::json;

fn ok(q: &str) -> Node {
    parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn keywords_are_case_insensitive_and_need_spaces() {
    assert_eq!(ok("a:1 OR b:2").to_string(), "(a: 1 OR b: 2)");
    assert_eq!(ok("a:1 And NOT b:2").to_string(), "(a: 1 AND NOT b: 2)");
    // `or` inside a word or without spaces is text
    assert_eq!(ok("a: sorry").to_string(), "a: sorry");
    assert_eq!(ok("not:x").to_string(), "not: x");
}

#[test]
fn not_followed_by_a_space_ends_a_value_as_in_kibana() {
    // Kibana's `Keyword` rule stops an unquoted value before `not `, even
    // inside a word, so this is a syntax error there too.
    assert!(parse("msg: cannot run").is_err());
    assert!(parse("msg: \"cannot run\"").is_ok());
    assert_eq!(ok(r"msg: can\not run").to_string(), r"msg: can\not run");
    // A range's field printed before ` < ` keeps its escaped `not` even
    // inside a word (found by the round-trip property).
    assert_eq!(ok(r"8L\NOT <mH").to_string(), r"8L\NOT < mH");
    // ... but `\n` there is a newline and `ot`, no word.
    assert_eq!(ok(r"a\not >= 1").to_string(), r"a\not >= 1");
    // `or` and `and` are words only after a space.
    assert_eq!(ok(r"a: x \or").to_string(), r"a: x \or");
    assert_eq!(ok(r"a: x\or").to_string(), r"a: xor");
}

#[test]
fn escapes_and_wildcards() {
    // `\ ` is not an escape: the backslash is special and stops the value
    assert!(parse(r"f: a\ b").is_err());
    let Node::Is { value, .. } = ok(r"f: C\:\\Windows\\*") else {
        panic!()
    };
    assert_eq!(
        value.value,
        LitValue::Wildcard(vec![Part::Text(r"C:\Windows\".into()), Part::Star])
    );
    let Node::Is { value, .. } = ok("f: \"a*b\"") else {
        panic!()
    };
    assert_eq!(value.value, LitValue::Text("a*b".into()));
    assert!(value.quoted);
    let Node::Is { value, .. } = ok(r"f: a\tb") else {
        panic!()
    };
    assert_eq!(value.value, LitValue::Text("a\tb".into()));
}

#[test]
fn spans_point_into_the_query() {
    let q = "a: 1 and b > 2";
    let Node::And { clauses, span } = ok(q) else {
        panic!()
    };
    assert_eq!(&q[span.range()], q);
    assert_eq!(&q[clauses[1].span().range()], "b > 2");
    let err = parse("a: (1 or )").unwrap_err();
    let out = render("<query>", "a: (1 or )", err.span(), &err.to_string());
    assert!(
        out.contains("1:10: error: expected \"(\", NOT, value, found `)`"),
        "{out}"
    );
    assert!(out.ends_with("  |          ^\n"), "{out}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let q = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(parse(&q), Err(ParseError::TooDeep { .. })));
    let q = format!("{}a{}", "(".repeat(50), ")".repeat(50));
    assert!(parse(&q).is_ok());
}

#[test]
fn leading_wildcards_can_be_refused() {
    let no = ParseOptions {
        allow_leading_wildcards: false,
    };
    assert!(matches!(
        parse_with("f: *x", no),
        Err(ParseError::LeadingWildcard { .. })
    ));
    assert!(parse_with("f: *", no).is_ok());
    assert!(parse_with("f: x*", no).is_ok());
}

#[test]
fn whole_query_shape_and_free_text() {
    let types = FieldTypes::default()
        .with("process.name", &["keyword"])
        .with("message", &["match_only_text"]);
    let f = to_filter(
        "process.name: cmd.exe and not powershell",
        Some(&types),
        &KqlOptions::detection_rules(),
    )
    .unwrap();
    assert_eq!(
        es_query(&f),
        json!({"bool": {"must": [], "filter": [{"bool": {"filter": [
            {"bool": {"should": [{"term": {"process.name": {"value": "cmd.exe"}}}], "minimum_should_match": 1}},
            {"bool": {"must_not": {"multi_match": {"type": "best_fields", "query": "powershell", "lenient": true}}}}
        ]}}], "should": [], "must_not": []}})
    );
    let all = to_filter("", None, &KqlOptions::default()).unwrap();
    assert_eq!(es_query(&all)["bool"]["filter"], json!([]));
    // a wildcard value with a space on a text field: the query_string has
    // two terms, either may match
    let f = to_filter("message: foo bar*", Some(&types), &KqlOptions::default()).unwrap();
    assert_eq!(
        to_dsl(&f),
        json!({"bool": {"should": [{"query_string": {"fields": ["message"], "query": "foo bar*"}}], "minimum_should_match": 1}})
    );
}

#[test]
fn nested_fields_outside_their_group_are_errors() {
    let types = FieldTypes::default()
        .with("n", &["nested"])
        .with("n.a", &["keyword"])
        .with("o.b", &["keyword"]);
    let opts = KqlOptions::default();
    assert!(matches!(
        to_filter("n.a: x", Some(&types), &opts),
        Err(KqlError::Lower(LowerError::NestedOutsideGroup { .. }))
    ));
    assert!(matches!(
        to_filter("o: { b: x }", Some(&types), &opts),
        Err(KqlError::Lower(LowerError::NotNested { .. }))
    ));
    assert!(to_filter("n: { a: x }", Some(&types), &opts).is_ok());
}
