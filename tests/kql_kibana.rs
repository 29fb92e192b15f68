//! Tier 2: Kibana's own KQL expectations as golden tests.
//!
//! Each test restates one case of `kbn-es-query`'s test files
//! (`src/platform/packages/shared/kbn-es-query/src/kuery/functions/
//! {is,range,exists,nested,and,or,not}.test.ts`, `kuery/ast/ast.test.ts`,
//! `kuery/kuery_syntax_error.test.ts`), read as a specification: the same
//! input, the same expected query DSL, tree, printed KQL or error text,
//! written here in Rust. Nodes are built the way Kibana's
//! `nodeTypes.function.buildNode` builds them (names and `is` values read
//! with `fromLiteralExpression`, other values as plain literals).
//!
//! Not restated: the three scripted-field cases (detection rules have no
//! scripted fields), the performance cases' timings (their queries are
//! parsed), and the cases about malformed JavaScript node objects.

use detectd::filter::{to_dsl, to_dsl_with, DslOptions, FieldTypes, Filter};
use detectd::kql::{
    self, lower, lower_in_group, parse, parse_literal, KqlOptions, LitValue, Literal, Node, RangeOp,
};
use serde_json::{json, Value};

/// Kibana's `filters/stubs/fields.mocks.ts`, as Elasticsearch types
/// (`string` fields without `esTypes` as `text`, nested parents as
/// `nested` containers; the scripted fields left out).
fn fixture() -> FieldTypes {
    FieldTypes::default()
        .with("bytes", &["long"])
        .with("ssl", &["boolean"])
        .with("@timestamp", &["date"])
        .with("extension", &["text"])
        .with("machine.os", &["text"])
        .with_multi("machine.os.raw", "machine.os", &["text"])
        .with_multi("machine.os.keyword", "machine.os", &["keyword"])
        .with("nestedField", &["nested"])
        .with("nestedField.child", &["text"])
        .with("nestedField.nestedChild", &["nested"])
        .with("nestedField.nestedChild.doublyNestedChild", &["text"])
}

/// An argument of Kibana's `buildNode`.
#[derive(Clone, Copy)]
enum A<'a> {
    S(&'a str),
    N(f64),
    Null,
}

fn from_literal(a: A) -> Literal {
    match a {
        A::S(s) => parse_literal(s).unwrap_or_else(|e| panic!("literal {s}: {e}")),
        A::N(n) => Literal::new(LitValue::Number(n), false),
        A::Null => Literal::new(LitValue::Null, false),
    }
}

fn plain(a: A) -> Literal {
    match a {
        A::S(s) => Literal::new(LitValue::Text(s.into()), false),
        other => from_literal(other),
    }
}

fn is(field: A, value: A) -> Node {
    Node::Is {
        field: from_literal(field),
        value: from_literal(value),
        span: Default::default(),
    }
}

fn range(field: &str, op: RangeOp, value: A) -> Node {
    Node::Range {
        field: from_literal(A::S(field)),
        op,
        value: plain(value),
        span: Default::default(),
    }
}

fn exists(field: &str) -> Node {
    Node::Exists {
        field: plain(A::S(field)),
        span: Default::default(),
    }
}

fn nested(path: &str, child: Node) -> Node {
    Node::Nested {
        path: from_literal(A::S(path)),
        query: Box::new(child),
        span: Default::default(),
    }
}

fn and(clauses: Vec<Node>) -> Node {
    Node::And {
        clauses,
        span: Default::default(),
    }
}

fn or(clauses: Vec<Node>) -> Node {
    Node::Or {
        clauses,
        span: Default::default(),
    }
}

fn not(inner: Node) -> Node {
    Node::Not {
        inner: Box::new(inner),
        span: Default::default(),
    }
}

fn es(node: &Node, types: Option<&FieldTypes>, opts: &KqlOptions) -> Value {
    to_dsl(&lower(node, types, opts).unwrap_or_else(|e| panic!("{node}: {e}")))
}

fn es_fx(node: &Node) -> Value {
    es(node, Some(&fixture()), &KqlOptions::default())
}

fn should(q: Value) -> Value {
    json!({"bool": {"should": [q], "minimum_should_match": 1}})
}

fn tz(zone: &str) -> KqlOptions {
    KqlOptions {
        date_format_tz: Some(zone.into()),
        ..KqlOptions::default()
    }
}

use A::{Null, N, S};

// ---- is.test.ts ----

#[test]
fn is_build_node_params() {
    let Node::Is { field, value, .. } = is(S("response"), N(200.0)) else {
        unreachable!()
    };
    assert_eq!(field.value, LitValue::Text("response".into()));
    assert_eq!(value.value, LitValue::Number(200.0));
    assert!(!value.quoted);
    let Node::Is { field, value, .. } = is(S("machine*"), S("win*")) else {
        unreachable!()
    };
    assert!(matches!(field.value, LitValue::Wildcard(_)));
    assert!(matches!(value.value, LitValue::Wildcard(_)));
    let Node::Is { value, .. } = is(S("response"), S("\"200\"")) else {
        unreachable!()
    };
    assert!(value.quoted);
}

#[test]
fn is_match_all_with_and_without_index_pattern() {
    assert_eq!(es_fx(&is(S("*"), S("*"))), json!({"match_all": {}}));
    assert_eq!(
        es(&is(S("*"), S("*")), None, &KqlOptions::default()),
        json!({"match_all": {}})
    );
}

#[test]
fn is_free_text() {
    assert_eq!(
        es_fx(&is(Null, N(200.0))),
        json!({"multi_match": {"query": 200, "type": "best_fields", "lenient": true}})
    );
    assert_eq!(
        es_fx(&is(Null, S("jpg*"))),
        json!({"query_string": {"query": "jpg*"}})
    );
}

#[test]
fn is_all_fields_is_one_query_per_field() {
    let v = es_fx(&is(S("*"), N(200.0)));
    let n = v["bool"]["should"].as_array().unwrap().len();
    assert_eq!(n, fixture().leaf_names().count());
}

#[test]
fn is_exists_match_phrase_and_query_string() {
    assert_eq!(
        es_fx(&is(S("extension"), S("*"))),
        should(json!({"exists": {"field": "extension"}}))
    );
    assert_eq!(
        es_fx(&is(S("extension"), S("jpg"))),
        should(json!({"match": {"extension": "jpg"}}))
    );
    assert_eq!(
        es(&is(S("extension"), S("jpg")), None, &KqlOptions::default()),
        should(json!({"match": {"extension": "jpg"}}))
    );
    assert_eq!(
        es_fx(&is(S("extension"), S("\"jpg\""))),
        should(json!({"match_phrase": {"extension": "jpg"}}))
    );
    assert_eq!(
        es_fx(&is(S("extension"), S("jpg*"))),
        should(json!({"query_string": {"fields": ["extension"], "query": "jpg*"}}))
    );
}

#[test]
fn is_keyword_wildcard_and_term() {
    assert_eq!(
        es_fx(&is(S("machine.os.keyword"), S("win*"))),
        should(json!({"wildcard": {"machine.os.keyword": {"value": "win*"}}}))
    );
    let ci = KqlOptions {
        case_insensitive: Some(true),
        ..KqlOptions::default()
    };
    assert_eq!(
        es(
            &is(S("machine.os.keyword"), S("win*")),
            Some(&fixture()),
            &ci
        ),
        should(
            json!({"wildcard": {"machine.os.keyword": {"value": "win*", "case_insensitive": true}}})
        )
    );
    assert_eq!(
        es_fx(&is(S("machine.os.keyword"), S(r"*\\*"))),
        should(json!({"wildcard": {"machine.os.keyword": {"value": r"*\\*"}}}))
    );
    assert_eq!(
        es_fx(&is(S("machine.os.keyword"), S("Win 7"))),
        should(json!({"term": {"machine.os.keyword": {"value": "Win 7"}}}))
    );
    assert_eq!(
        es(
            &is(S("machine.os.keyword"), S("Win 7")),
            Some(&fixture()),
            &ci
        ),
        should(
            json!({"term": {"machine.os.keyword": {"value": "Win 7", "case_insensitive": true}}})
        )
    );
}

#[test]
fn is_date_fields() {
    let node = is(S("@timestamp"), S("\"2018-04-03T19:04:17\""));
    assert_eq!(
        es_fx(&node),
        should(
            json!({"range": {"@timestamp": {"gte": "2018-04-03T19:04:17", "lte": "2018-04-03T19:04:17"}}})
        )
    );
    assert_eq!(
        es(&node, Some(&fixture()), &tz("America/Phoenix")),
        should(json!({"range": {"@timestamp": {
            "gte": "2018-04-03T19:04:17", "lte": "2018-04-03T19:04:17", "time_zone": "America/Phoenix"}}}))
    );
}

#[test]
fn is_nested_context_and_wildcard_field_names() {
    let got = lower_in_group(
        &is(S("extension"), S("jpg")),
        Some(&fixture()),
        &KqlOptions::default(),
        "nestedField",
    )
    .unwrap();
    assert_eq!(
        to_dsl(&got),
        should(json!({"match": {"nestedField.extension": "jpg"}}))
    );
    assert_eq!(
        es_fx(&is(S("ext*"), S("jpg"))),
        should(json!({"match": {"extension": "jpg"}}))
    );
    let nested_q = json!({"nested": {
        "path": "nestedField.nestedChild",
        "query": {"match": {"nestedField.nestedChild.doublyNestedChild": "foo"}},
        "score_mode": "none"}});
    assert_eq!(
        es_fx(&is(S("*doublyNested*"), S("foo"))),
        should(nested_q.clone())
    );
    let iu = KqlOptions {
        nested_ignore_unmapped: Some(true),
        ..KqlOptions::default()
    };
    let mut with_iu = nested_q;
    with_iu["nested"]["ignore_unmapped"] = json!(true);
    assert_eq!(
        es(&is(S("*doublyNested*"), S("foo")), Some(&fixture()), &iu),
        should(with_iu)
    );
}

#[test]
fn is_to_kql_expression() {
    let cases = [
        (is(S("*"), S("*")), "*: *"),
        (is(Null, N(200.0)), "200"),
        (is(Null, S("jpg*")), "jpg*"),
        (is(S("*"), N(200.0)), "*: 200"),
        (is(S("extension"), S("*")), "extension: *"),
        (is(S("extension"), S("jpg")), "extension: jpg"),
        (is(S("extension"), S("\"jpg\"")), "extension: \"jpg\""),
        (
            is(S("\"extension\""), S("\"jpg\"")),
            "\"extension\": \"jpg\"",
        ),
        (is(S("extension"), S("jpg*")), "extension: jpg*"),
        (is(S("ext*"), S("jpg")), "ext*: jpg"),
    ];
    for (node, want) in cases {
        assert_eq!(node.to_string(), want);
    }
}

// ---- range.test.ts ----

#[test]
fn range_build_node_params() {
    let Node::Range { field, value, .. } = range("bytes", RangeOp::Gt, N(1000.0)) else {
        unreachable!()
    };
    assert_eq!(field.value, LitValue::Text("bytes".into()));
    assert_eq!(value.value, LitValue::Number(1000.0));
}

#[test]
fn range_queries() {
    let gt = should(json!({"range": {"bytes": {"gt": 1000}}}));
    assert_eq!(es_fx(&range("bytes", RangeOp::Gt, N(1000.0))), gt);
    assert_eq!(
        es(
            &range("bytes", RangeOp::Gt, N(1000.0)),
            None,
            &KqlOptions::default()
        ),
        gt
    );
    assert_eq!(es_fx(&range("byt*", RangeOp::Gt, N(1000.0))), gt);
}

#[test]
fn range_dates_and_epochs() {
    let node = range("@timestamp", RangeOp::Gt, S("2018-01-03T19:04:17"));
    assert_eq!(
        es_fx(&node),
        should(json!({"range": {"@timestamp": {"gt": "2018-01-03T19:04:17"}}}))
    );
    let phoenix = tz("America/Phoenix");
    assert_eq!(
        es(&node, Some(&fixture()), &phoenix),
        should(
            json!({"range": {"@timestamp": {"gt": "2018-01-03T19:04:17", "time_zone": "America/Phoenix"}}})
        )
    );
    assert_eq!(
        es(
            &range("@timestamp", RangeOp::Gt, N(1776338120239.0)),
            Some(&fixture()),
            &phoenix
        ),
        should(json!({"range": {"@timestamp": {"gt": 1776338120239i64}}}))
    );
    assert_eq!(
        es(
            &range("@timestamp", RangeOp::Gt, S("1776338120239")),
            Some(&fixture()),
            &phoenix
        ),
        should(json!({"range": {"@timestamp": {"gt": "1776338120239"}}}))
    );
}

#[test]
fn range_nested() {
    let got = lower_in_group(
        &range("bytes", RangeOp::Gt, N(1000.0)),
        Some(&fixture()),
        &KqlOptions::default(),
        "nestedField",
    )
    .unwrap();
    assert_eq!(
        to_dsl(&got),
        should(json!({"range": {"nestedField.bytes": {"gt": 1000}}}))
    );
    let nested_q = json!({"nested": {
        "path": "nestedField.nestedChild",
        "query": {"range": {"nestedField.nestedChild.doublyNestedChild": {"lt": 8000}}},
        "score_mode": "none"}});
    let node = range("*doublyNested*", RangeOp::Lt, N(8000.0));
    assert_eq!(es_fx(&node), should(nested_q.clone()));
    let iu = KqlOptions {
        nested_ignore_unmapped: Some(true),
        ..KqlOptions::default()
    };
    let mut with_iu = nested_q;
    with_iu["nested"]["ignore_unmapped"] = json!(true);
    assert_eq!(es(&node, Some(&fixture()), &iu), should(with_iu));
}

#[test]
fn range_to_kql_expression() {
    let cases = [
        (range("bytes", RangeOp::Gt, N(1000.0)), "bytes > 1000"),
        (range("bytes", RangeOp::Gte, N(1000.0)), "bytes >= 1000"),
        (range("bytes", RangeOp::Lt, N(1000.0)), "bytes < 1000"),
        (range("bytes", RangeOp::Lte, N(1000.0)), "bytes <= 1000"),
        (range("byt*", RangeOp::Gt, N(1000.0)), "byt* > 1000"),
        (range("byt*", RangeOp::Gt, S("100*")), r"byt* > 100\*"),
    ];
    for (node, want) in cases {
        assert_eq!(node.to_string(), want);
    }
}

// ---- exists.test.ts ----

#[test]
fn exists_function() {
    let Node::Exists { field, .. } = exists("response") else {
        unreachable!()
    };
    assert_eq!(field.value, LitValue::Text("response".into()));
    assert_eq!(
        es_fx(&exists("response")),
        json!({"exists": {"field": "response"}})
    );
    assert_eq!(
        es(&exists("response"), None, &KqlOptions::default()),
        json!({"exists": {"field": "response"}})
    );
    let got = lower_in_group(
        &exists("response"),
        Some(&fixture()),
        &KqlOptions::default(),
        "nestedField",
    )
    .unwrap();
    assert_eq!(
        to_dsl(&got),
        json!({"exists": {"field": "nestedField.response"}})
    );
    assert_eq!(exists("response").to_string(), "response: *");
}

// ---- nested.test.ts ----

#[test]
fn nested_function() {
    let child = is(S("child"), S("foo"));
    let node = nested("nestedField", child.clone());
    let v = es_fx(&node);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 1);
    assert_eq!(v["nested"]["path"], json!("nestedField"));
    assert_eq!(v["nested"]["score_mode"], json!("none"));
    assert_eq!(
        v["nested"]["query"],
        es(
            &is(S("nestedField.child"), S("foo")),
            None,
            &KqlOptions::default()
        )
    );
    assert_eq!(node.to_string(), "nestedField: { child: foo }");
    assert_eq!(
        nested("nestedField", and(vec![child.clone(), child.clone()])).to_string(),
        "nestedField: { (child: foo AND child: foo) }"
    );
    assert_eq!(
        nested("nestedField", nested("anotherNestedField", child)).to_string(),
        "nestedField: { anotherNestedField: { child: foo } }"
    );
}

// ---- and.test.ts, or.test.ts, not.test.ts ----

#[test]
fn and_or_not_functions() {
    let c1 = is(S("machine.os"), S("osx"));
    let c2 = is(S("extension"), S("jpg"));
    let both = vec![es_fx(&c1), es_fx(&c2)];
    assert_eq!(
        es_fx(&and(vec![c1.clone(), c2.clone()])),
        json!({"bool": {"filter": both}})
    );
    let must = to_dsl_with(
        &lower(
            &and(vec![c1.clone(), c2.clone()]),
            Some(&fixture()),
            &KqlOptions::default(),
        )
        .unwrap(),
        DslOptions { and_in_must: true },
    );
    assert_eq!(must, json!({"bool": {"must": both}}));
    assert_eq!(
        es_fx(&or(vec![c1.clone(), c2.clone()])),
        json!({"bool": {"should": both, "minimum_should_match": 1}})
    );
    assert_eq!(
        es_fx(&not(c2.clone())),
        json!({"bool": {"must_not": es_fx(&c2)}})
    );
    assert_eq!(and(vec![c1.clone()]).to_string(), "(machine.os: osx)");
    assert_eq!(
        and(vec![c1.clone(), c2.clone()]).to_string(),
        "(machine.os: osx AND extension: jpg)"
    );
    assert_eq!(or(vec![c1.clone()]).to_string(), "(machine.os: osx)");
    assert_eq!(
        or(vec![c1, c2.clone()]).to_string(),
        "(machine.os: osx OR extension: jpg)"
    );
    assert_eq!(not(c2).to_string(), "NOT extension: jpg");
}

// ---- ast.test.ts ----

fn parsed(q: &str) -> Node {
    parse(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .without_spans()
}

#[test]
fn ast_from_kuery_expression() {
    let f = |s| is(Null, S(s));
    let cases: Vec<(&str, Node)> = vec![
        ("  ", is(S("*"), S("*"))),
        ("foo", f("foo")),
        ("  foo ", f("foo")),
        ("foo bar", f("foo bar")),
        ("foo and bar", and(vec![f("foo"), f("bar")])),
        ("foo and\u{00A0}bar", and(vec![f("foo"), f("bar")])),
        ("foo or bar", or(vec![f("foo"), f("bar")])),
        ("foo and bar and baz", and(vec![f("foo"), f("bar"), f("baz")])),
        ("foo or bar or baz", or(vec![f("foo"), f("bar"), f("baz")])),
        ("not (foo or bar)", not(or(vec![f("foo"), f("bar")]))),
        (
            "foo or bar and baz or qux",
            or(vec![f("foo"), and(vec![f("bar"), f("baz")]), f("qux")]),
        ),
        (
            "(foo or bar) and baz",
            and(vec![or(vec![f("foo"), f("bar")]), f("baz")]),
        ),
        ("foo:bar", is(S("foo"), S("bar"))),
        ("foo:bar baz", is(S("foo"), S("bar baz"))),
        ("foo:\"bar baz\"", is(S("foo"), S("\"bar baz\""))),
        (
            "foo:(bar or baz)",
            or(vec![is(S("foo"), S("bar")), is(S("foo"), S("baz"))]),
        ),
        (
            "foo:((bar or baz) and not qux)",
            and(vec![
                or(vec![is(S("foo"), S("bar")), is(S("foo"), S("baz"))]),
                not(is(S("foo"), S("qux"))),
            ]),
        ),
        (
            "bytes > 1000 and bytes < 8000",
            and(vec![
                range("bytes", RangeOp::Gt, S("1000")),
                range("bytes", RangeOp::Lt, S("8000")),
            ]),
        ),
        (
            "bytes >= 1000 and bytes <= 8000",
            and(vec![
                range("bytes", RangeOp::Gte, S("1000")),
                range("bytes", RangeOp::Lte, S("8000")),
            ]),
        ),
        ("machine*:osx", is(S("machine*"), S("osx"))),
        ("foo:ba*", is(S("foo"), S("ba*"))),
        ("foo:*", is(S("foo"), S("*"))),
        (
            "nestedField:{ childOfNested: foo }",
            nested("nestedField", is(S("childOfNested"), S("foo"))),
        ),
        (
            "response:200 and nestedField:{ childOfNested:foo or childOfNested:bar }",
            and(vec![
                is(S("response"), S("200")),
                nested(
                    "nestedField",
                    or(vec![
                        is(S("childOfNested"), S("foo")),
                        is(S("childOfNested"), S("bar")),
                    ]),
                ),
            ]),
        ),
        (
            "response:200 and ( nestedField:{ childOfNested:foo } or nestedField:{ childOfNested:bar } )",
            and(vec![
                is(S("response"), S("200")),
                or(vec![
                    nested("nestedField", is(S("childOfNested"), S("foo"))),
                    nested("nestedField", is(S("childOfNested"), S("bar"))),
                ]),
            ]),
        ),
        (
            "nestedField:{ nestedChild:{ doublyNestedChild:foo } }",
            nested(
                "nestedField",
                nested("nestedChild", is(S("doublyNestedChild"), S("foo"))),
            ),
        ),
    ];
    for (q, want) in cases {
        assert_eq!(parsed(q), want.without_spans(), "{q}");
    }
}

#[test]
fn ast_performance_cases_parse() {
    assert!(parse("not fleet-agent-actions.attributes.sent_at: * and fleet-agent-actions.attributes.agent_id:1234567").is_ok());
    let one = "(alert.attributes.alertTypeId:.index-threshold and alert.attributes.consumer:(alerts or builtInAlerts or siem or infrastructure or logs or monitoring or apm or uptime))";
    let complex = vec![one; 19].join(" or ");
    assert!(parse(&format!("({complex})")).is_ok());
    assert_eq!(
        parsed("((((((((((foo))))))))))"),
        is(Null, S("foo")).without_spans()
    );
}

#[test]
fn ast_from_literal_expression() {
    let lit = |s: &str| parse_literal(s).unwrap().value;
    assert_eq!(lit("foo"), LitValue::Text("foo".into()));
    assert_eq!(lit("true"), LitValue::Bool(true));
    assert_eq!(lit("false"), LitValue::Bool(false));
    for s in [
        ".3",
        ".36",
        ".00001",
        "3",
        "-4",
        "0",
        "0.0",
        "2.0",
        "0.8",
        "790.9",
        "0.0001",
        "96565646732345",
        "070",
        "..4",
        ".3text",
        "text",
        ".",
        "-",
        "001",
        "00.2",
        "0.0.1",
        "3.",
        "--4",
        "-.4",
        "-0",
        "00949",
    ] {
        assert_eq!(lit(s), LitValue::Text(s.into()), "{s}");
    }
    assert_eq!(
        lit(r#"\\\(\)\:\<\>\"\*"#),
        LitValue::Text(r#"\():<>"*"#.into())
    );
    assert_eq!(lit(r"\\u00A0"), LitValue::Text(r"\u00A0".into()));
    assert_eq!(lit(r#""\():<>\"*""#), LitValue::Text(r#"\():<>"*"#.into()));
    assert_eq!(lit(r#""\\""#), LitValue::Text(r"\".into()));
    assert_eq!(lit(r#""\\u00A0""#), LitValue::Text(r"\u00A0".into()));
    assert!(matches!(lit("foo*bar"), LitValue::Wildcard(_)));
}

#[test]
fn ast_to_elasticsearch_query_and_kql() {
    assert_eq!(
        es_fx(&exists("response")),
        json!({"exists": {"field": "response"}})
    );
    let node = is(S("@timestamp"), S("\"2018-04-03T19:04:17\""));
    let got = es(&node, Some(&fixture()), &tz("America/Phoenix"));
    assert_eq!(
        got["bool"]["should"][0]["range"]["@timestamp"]["time_zone"],
        json!("America/Phoenix")
    );
    assert_eq!(exists("response").to_string(), "response: *");
    assert_eq!(kql::display_literal(&plain(S("foo"))), "foo");
    assert_eq!(kql::display_literal(&from_literal(S("foo*bar"))), "foo*bar");
    let node =
        parse("field: (value AND value2 OR \"value3\") OR nested: { field2: value4 }").unwrap();
    assert_eq!(
        node.to_string(),
        "(((field: value AND field: value2) OR field: \"value3\") OR nested: { field2: value4 })"
    );
}

// ---- kuery_syntax_error.test.ts ----

#[test]
fn syntax_errors_as_kibana_reports_them() {
    let cases = [
        ("response:", "Expected \"(\", \"{\", value, whitespace but end of input found.\nresponse:\n---------^"),
        ("response:200 or ", "Expected \"(\", NOT, field name, value but end of input found.\nresponse:200 or \n----------------^"),
        ("response:(200 or )", "Expected \"(\", NOT, value but \")\" found.\nresponse:(200 or )\n-----------------^"),
        ("response:200 and not ", "Expected \"(\", field name, value but end of input found.\nresponse:200 and not \n---------------------^"),
        ("response:(200 and not )", "Expected \"(\", value but \")\" found.\nresponse:(200 and not )\n----------------------^"),
        ("foo:\"ba ", "Expected \"(\", \"{\", value, whitespace but \"\"\" found.\nfoo:\"ba \n----^"),
        ("foo:\"ba \"r\"", "Expected AND, OR, end of input but \"r\" found.\nfoo:\"ba \"r\"\n---------^"),
        ("foo:ba:r", "Expected AND, OR, end of input but \":\" found.\nfoo:ba:r\n------^"),
        ("foo > ", "Expected literal, whitespace but end of input found.\nfoo > \n------^"),
        ("< 1000", "Expected \"(\", NOT, end of input, field name, value, whitespace but \"<\" found.\n< 1000\n^"),
    ];
    for (q, want) in cases {
        let err = parse(q).expect_err(q);
        assert_eq!(err.kibana_message(q), want, "{q}");
    }
}

#[test]
fn kibana_filter_shapes_are_plain_filters() {
    // The translation is a filter tree like any other: `or` of one clause
    // stays an `Or`, so the DSL keeps Kibana's `bool.should` wrapper.
    let f = lower(
        &is(S("extension"), S("jpg")),
        Some(&fixture()),
        &KqlOptions::default(),
    )
    .unwrap();
    assert!(matches!(f, Filter::Or(ref v) if v.len() == 1));
}
