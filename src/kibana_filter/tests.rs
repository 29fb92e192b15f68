use serde_json::{json, Value};

use super::*;
use crate::filter::{compile, to_dsl, EvalOptions, FieldTypes, Filter};
use crate::querydsl::Pointer;

fn one(v: Value) -> KibanaFilter {
    KibanaFilter::from_json(&v, &Pointer::root().child(0)).unwrap()
}

fn err(v: Value) -> String {
    KibanaFilter::from_json(&v, &Pointer::root().child(0))
        .unwrap_err()
        .to_string()
}

fn place(filters: &[KibanaFilter], types: Option<&FieldTypes>) -> FilterClauses {
    build_query_from_filters(filters, types, &PlaceOptions::default()).unwrap()
}

#[test]
fn the_corpus_shapes() {
    // detection-rules' `[[rule.filters]]` with `meta.negate` and a
    // case-insensitive wildcard in `query`.
    let f = one(
        json!({"meta": {"negate": true}, "query": {"wildcard": {"file.path": {
        "case_insensitive": true, "value": "?:\\\\Program Files\\\\*"}}}}),
    );
    let c = place(&[f], None);
    assert!(c.filter.is_empty());
    assert_eq!(
        to_dsl(&c.must_not[0]),
        json!({"wildcard": {"file.path": {"case_insensitive": true, "value": "?:\\\\Program Files\\\\*"}}})
    );
    // The old shape: `exists` at the top level beside `meta` and `$state`.
    let f = one(
        json!({"$state": {"store": "appState"}, "exists": {"field": "user_agent.original"},
        "meta": {"disabled": false, "indexRefName": "x", "key": "user_agent.original",
                 "negate": true, "type": "exists", "value": "exists"}}),
    );
    assert_eq!(
        place(&[f], None).bool_query(),
        json!({"must": [], "filter": [], "should": [],
               "must_not": [{"exists": {"field": "user_agent.original"}}]})
    );
}

#[test]
fn local_meaning_of_placed_filters() {
    let types = FieldTypes::default()
        .with("file.path", &["keyword"])
        .with("user.name", &["keyword"]);
    let filters = vec![
        one(
            json!({"meta": {"negate": true}, "query": {"wildcard": {"file.path": {
            "case_insensitive": true, "value": "c:\\\\windows\\\\*"}}}}),
        ),
        one(json!({"query": {"exists": {"field": "user.name"}}})),
        one(json!({"meta": {"disabled": true}, "query": {"match_none": {}}})),
    ];
    let m = compile(
        &place(&filters, Some(&types)).tree(),
        &types,
        &EvalOptions::default(),
    )
    .unwrap();
    let now = chrono::Utc::now();
    assert!(m.matches(
        &json!({"file": {"path": "D:\\x"}, "user": {"name": "a"}}),
        now
    ));
    assert!(!m.matches(
        &json!({"file": {"path": "C:\\Windows\\x"}, "user": {"name": "a"}}),
        now
    ));
    assert!(!m.matches(&json!({"file": {"path": "D:\\x"}}), now));
}

#[test]
fn old_match_phrase_filters_are_migrated_and_converted() {
    let f = one(json!({"match": {"ssl": {"query": "true", "type": "phrase"}}, "meta": {}}));
    assert_eq!(
        place(std::slice::from_ref(&f), None).bool_query()["filter"],
        json!([{"match_phrase": {"ssl": {"query": "true"}}}])
    );
    let types = FieldTypes::default()
        .with("ssl", &["boolean"])
        .with("bytes", &["long"]);
    assert_eq!(
        place(std::slice::from_ref(&f), Some(&types)).bool_query()["filter"],
        json!([{"match_phrase": {"ssl": {"query": true}}}])
    );
    let n = one(json!({"query": {"match": {"bytes": {"query": "12", "type": "phrase"}}}}));
    assert_eq!(
        place(&[n], Some(&types)).bool_query()["filter"],
        json!([{"match_phrase": {"bytes": {"query": 12}}}])
    );
    let bad = one(json!({"match": {"ssl": {"query": "yes", "type": "phrase"}}}));
    assert_eq!(
        build_query_from_filters(&[bad], Some(&types), &PlaceOptions::default())
            .unwrap_err()
            .to_string(),
        "at `/query/match_phrase/ssl`: \"yes\" is not a valid boolean value for boolean field `ssl`"
    );
}

#[test]
fn a_query_drops_other_top_level_keys() {
    let f = one(json!({"query": {"match_all": {}}, "size": 0, "meta": {}}));
    assert_eq!(
        place(&[f], None).bool_query()["filter"],
        json!([{"match_all": {}}])
    );
}

#[test]
fn nested_wrapping_needs_the_field_in_the_types() {
    let types = FieldTypes::default()
        .with("n", &["nested"])
        .with("n.c", &["keyword"]);
    let phrase = one(json!({"query": {"match_phrase": {"n.c": "x"}}}));
    let range = one(
        json!({"meta": {"type": "range", "field": "n.c"}, "query": {"range": {"n.c": {"gte": "a"}}}}),
    );
    let phrases = one(json!({"meta": {"type": "phrases", "key": "n.c"},
        "query": {"bool": {"should": [{"match_phrase": {"n.c": "x"}}], "minimum_should_match": 1}}}));
    let custom = one(json!({"meta": {"type": "custom"}, "query": {"term": {"n.c": "x"}}}));
    let c = place(&[phrase, range, phrases, custom], Some(&types));
    let dsl: Vec<Value> = c.filter.iter().map(to_dsl).collect();
    assert_eq!(
        dsl[0],
        json!({"nested": {"path": "n", "query": {"match_phrase": {"n.c": "x"}}}})
    );
    assert_eq!(dsl[1]["nested"]["path"], json!("n"));
    assert_eq!(dsl[2]["nested"]["path"], json!("n"));
    // A custom filter names no field: sent as written.
    assert_eq!(dsl[3], json!({"term": {"n.c": "x"}}));
    // The wrapped query evaluates inside each nested object.
    let m = compile(&c.filter[0], &types, &EvalOptions::default()).unwrap();
    assert!(m.matches(&json!({"n": [{"c": "y"}, {"c": "x"}]}), chrono::Utc::now()));
    // Without types there is nothing to wrap with.
    let alone = one(json!({"query": {"match_phrase": {"n.c": "x"}}}));
    assert_eq!(
        to_dsl(&place(&[alone], None).filter[0]),
        json!({"match_phrase": {"n.c": "x"}})
    );
}

#[test]
fn an_empty_or_combined_filter_matches_everything_as_on_the_cluster() {
    let f = one(json!({"meta": {"type": "combined", "relation": "OR", "params": []}}));
    let c = place(&[f], None);
    assert_eq!(
        to_dsl(&c.filter[0]),
        json!({"bool": {"should": [], "minimum_should_match": 1}})
    );
    let m = compile(&c.tree(), &FieldTypes::default(), &EvalOptions::default()).unwrap();
    assert!(m.matches(&json!({}), chrono::Utc::now()));
}

#[test]
fn unsupported_queries_place_but_do_not_evaluate() {
    let f = one(json!({"query": {"script": {"script": {"source": "doc['a'].value > 1"}}}}));
    let c = place(&[f], None);
    assert_eq!(
        compile(&c.tree(), &FieldTypes::default(), &EvalOptions::default())
            .unwrap_err()
            .to_string(),
        "cannot evaluate offline: a `script` query"
    );
    assert!(matches!(&c.filter[0], Filter::Verbatim(_)));
}

#[test]
fn unknown_shapes_are_errors_with_their_place() {
    assert_eq!(
        err(json!({"meta": {"negate": false}})),
        "at `/0`: a filter needs a query: `query`, or a top-level query such as `exists`, `range` or `match_phrase`"
    );
    assert_eq!(
        err(json!({"meta": {"negate": "true"}, "query": {"match_all": {}}})),
        "at `/0/meta/negate`: expected `true` or `false`, found the string \"true\""
    );
    assert_eq!(
        err(json!({"query": {"wildcard": {"f": {"value": "x", "caseInsensitive": true}}}})),
        "at `/0/query/wildcard/f`: a `wildcard` query takes no `caseInsensitive` (expected `value`, `wildcard`, `case_insensitive`, `rewrite`, `boost`, `_name`)"
    );
    assert_eq!(
        err(json!({"exists": {"field": "a"}, "range": {"b": {"gte": 1}}})),
        "at `/0/query`: expected one query type per query object, found `exists` and `range`"
    );
    assert_eq!(
        err(json!({"query": "a:b"})),
        "at `/0/query`: expected a query object, found the string \"a:b\""
    );
    assert_eq!(
        err(json!({"meta": {"type": "combined", "relation": "XOR", "params": []}})),
        "at `/0/meta/relation`: expected \"AND\" or \"OR\", found the string \"XOR\""
    );
    assert_eq!(
        err(json!({"meta": {"type": "combined", "relation": "AND", "params": [{"query": {"foo": {}}}]}})),
        "at `/0/meta/params/0/query/foo`: unknown query type `foo`, expected a query such as `term`, `match_phrase`, `wildcard`, `range`, `exists`, `bool` or `query_string`"
    );
    assert_eq!(
        err(json!([1])),
        "at `/0`: expected a filter object with `meta` and `query`, found an array"
    );
}

#[test]
fn a_filter_list_reports_every_bad_filter() {
    let errors = parse_filters(&json!([
        {"query": {"match_all": {}}},
        {"query": {"nope": {}}},
        {"meta": {"disabled": 1}, "query": {"match_all": {}}},
    ]))
    .unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path()).collect();
    assert_eq!(paths, ["/1/query/nope", "/2/meta/disabled"]);
    assert!(parse_filters(&json!({})).is_err());
    assert_eq!(parse_filters(&json!([])).unwrap(), vec![]);
}
