use serde_json::{json, Value};

use super::*;
use crate::filter::{compile, EvalOptions, FieldTypes, Filter, Local};

fn types() -> FieldTypes {
    FieldTypes::default()
        .with("host.name", &["keyword"])
        .with("message", &["text"])
        .with("bytes", &["long"])
        .with("@timestamp", &["date"])
        .with("n", &["nested"])
        .with("n.k", &["keyword"])
        .with("n.v", &["long"])
}

fn tree(q: Value) -> Filter {
    match read(&q, &Pointer::root()).unwrap() {
        Local::Tree(t) => *t,
        Local::Unsupported(why) => panic!("unsupported: {why}"),
    }
}

fn unsupported(q: Value) -> String {
    match read(&q, &Pointer::root()).unwrap() {
        Local::Unsupported(why) => why,
        Local::Tree(t) => panic!("expected unsupported, got {t:?}"),
    }
}

fn error(q: Value) -> String {
    read(&q, &Pointer::root()).unwrap_err().to_string()
}

/// Which of the documents the query selects (indices).
fn selects(q: Value, docs: &[Value]) -> Vec<usize> {
    let m = compile(&tree(q), &types(), &EvalOptions::default()).unwrap();
    let now = chrono::Utc::now();
    docs.iter()
        .enumerate()
        .filter(|(_, d)| m.matches(d, now))
        .map(|(i, _)| i)
        .collect()
}

fn hosts() -> Vec<Value> {
    vec![
        json!({"host": {"name": "alpha"}, "bytes": 5, "message": "Hello brave new world"}),
        json!({"host": {"name": "Beta"}, "bytes": 50, "message": "new world order"}),
        json!({"host": {"name": "a*b"}, "message": "world"}),
        json!({"bytes": 500}),
    ]
}

#[test]
fn term_level_leaves() {
    let d = hosts();
    assert_eq!(selects(json!({"term": {"host.name": "alpha"}}), &d), [0]);
    assert_eq!(
        selects(
            json!({"term": {"host.name": {"value": "beta", "case_insensitive": true}}}),
            &d
        ),
        [1]
    );
    assert_eq!(
        selects(
            json!({"terms": {"host.name": ["alpha", "Beta"], "boost": 2}}),
            &d
        ),
        [0, 1]
    );
    assert_eq!(
        selects(json!({"wildcard": {"host.name": "?lph*"}}), &d),
        [0]
    );
    assert_eq!(
        selects(
            json!({"wildcard": {"host.name": {"wildcard": "b*", "case_insensitive": true}}}),
            &d
        ),
        [1]
    );
    // A prefix is literal: `*` in it is not a wildcard.
    assert_eq!(selects(json!({"prefix": {"host.name": "a*"}}), &d), [2]);
    assert_eq!(
        selects(json!({"prefix": {"host.name": {"value": "a"}}}), &d),
        [0, 2]
    );
    assert_eq!(
        selects(json!({"exists": {"field": "host.name"}}), &d),
        [0, 1, 2]
    );
}

#[test]
fn ranges_new_and_old_forms() {
    let d = hosts();
    assert_eq!(
        selects(json!({"range": {"bytes": {"gte": 50}}}), &d),
        [1, 3]
    );
    assert_eq!(
        selects(json!({"range": {"bytes": {"gt": 5, "lt": 500}}}), &d),
        [1]
    );
    assert_eq!(
        selects(
            json!({"range": {"bytes": {"from": 5, "to": 50, "include_lower": false}}}),
            &d
        ),
        [1]
    );
    // A later key overrides an earlier one on the same side.
    assert_eq!(
        selects(json!({"range": {"bytes": {"gte": 0, "gt": 50}}}), &d),
        [3]
    );
    assert_eq!(
        selects(json!({"range": {"bytes": {"from": null, "to": 5}}}), &d),
        [0]
    );
}

#[test]
fn full_text_leaves_on_text_fields() {
    let d = hosts();
    assert_eq!(
        selects(json!({"match": {"message": "order hello"}}), &d),
        [0, 1]
    );
    assert_eq!(
        selects(
            json!({"match": {"message": {"query": "ORDER", "operator": "or"}}}),
            &d
        ),
        [1]
    );
    assert_eq!(
        selects(json!({"match_phrase": {"message": "new world"}}), &d),
        [0, 1]
    );
    assert_eq!(
        selects(
            json!({"match_phrase": {"message": {"query": "world new", "slop": 0}}}),
            &d
        ),
        Vec::<usize>::new()
    );
    assert!(
        unsupported(json!({"match": {"message": {"query": "a b", "operator": "and"}}}))
            .contains("operator `and`")
    );
    assert!(
        unsupported(json!({"match_phrase": {"message": {"query": "a b", "slop": 2}}}))
            .contains("slop")
    );
}

#[test]
fn bool_clause_rules() {
    let d = hosts();
    let alpha = json!({"term": {"host.name": "alpha"}});
    let beta = json!({"term": {"host.name": "Beta"}});
    let big = json!({"range": {"bytes": {"gte": 50}}});
    // `should` is optional beside `filter`.
    assert_eq!(
        selects(json!({"bool": {"filter": big, "should": [alpha]}}), &d),
        [1, 3]
    );
    // ... and required alone, or beside `must_not` only.
    assert_eq!(
        selects(json!({"bool": {"should": [alpha, beta]}}), &d),
        [0, 1]
    );
    assert_eq!(
        selects(
            json!({"bool": {"should": [alpha, beta], "must_not": [beta]}}),
            &d
        ),
        [0]
    );
    assert_eq!(
        selects(
            json!({"bool": {"filter": big, "should": [alpha, beta], "minimum_should_match": 1}}),
            &d
        ),
        [1]
    );
    // 67% of 3 is 2 clauses; 66% rounds down to 1.
    let three = |spec: &str| {
        json!({"bool": {"should": [alpha, big, {"exists": {"field": "message"}}],
            "minimum_should_match": spec}})
    };
    assert_eq!(selects(three("67%"), &d), [0, 1]);
    assert_eq!(selects(three("66%"), &d), [0, 1, 2, 3]);
    assert_eq!(
        selects(
            json!({"bool": {"must_not": {"exists": {"field": "host.name"}}}}),
            &d
        ),
        [3]
    );
    assert_eq!(selects(json!({"bool": {}}), &d), [0, 1, 2, 3]);
    // Kibana's OR of no filters: no clause at all matches everything.
    assert_eq!(
        selects(
            json!({"bool": {"should": [], "minimum_should_match": 1}}),
            &d
        ),
        [0, 1, 2, 3]
    );
    assert_eq!(
        selects(
            json!({"bool": {"filter": [big], "minimum_should_match": 1}}),
            &d
        ),
        Vec::<usize>::new()
    );
    assert_eq!(
        selects(json!({"constant_score": {"filter": alpha}}), &d),
        [0]
    );
    assert_eq!(
        selects(json!({"dis_max": {"queries": [alpha, beta]}}), &d),
        [0, 1]
    );
}

#[test]
fn nested_queries_look_into_each_object() {
    let docs = vec![
        json!({"n": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]}),
        json!({"n": [{"k": "a", "v": 2}]}),
    ];
    let q = json!({"nested": {"path": "n", "score_mode": "none", "query": {"bool": {"filter": [
        {"term": {"n.k": "a"}}, {"term": {"n.v": 2}}]}}}});
    assert_eq!(selects(q, &docs), [1]);
}

#[test]
fn query_string_through_the_lucene_subset() {
    let d = hosts();
    assert_eq!(
        selects(
            json!({"query_string": {"query": "host.name:alpha OR bytes:500"}}),
            &d
        ),
        [0, 3]
    );
    assert_eq!(
        selects(json!({"query_string": {"query": "  "}}), &d),
        Vec::<usize>::new()
    );
    assert!(
        unsupported(json!({"query_string": {"query": "a", "default_field": "message"}}))
            .contains("default_field")
    );
    assert!(
        unsupported(json!({"query_string": {"query": "host.name:/al.*/"}}))
            .contains("outside the Lucene subset")
    );
}

#[test]
fn what_cannot_be_evaluated_offline_says_why() {
    assert_eq!(
        unsupported(json!({"script": {"script": {"source": "true"}}})),
        "a `script` query"
    );
    assert_eq!(
        unsupported(json!({"term": {"_id": "x"}})),
        "a query on the metadata field `_id`"
    );
    assert!(unsupported(json!({"exists": {"field": "process.*"}})).contains("pattern"));
    assert!(
        unsupported(json!({"terms": {"a": {"index": "i", "id": "1", "path": "p"}}}))
            .contains("lookup")
    );
    // The first reason wins, and the rest is still checked for errors.
    let q = json!({"bool": {"filter": [{"regexp": {"a": "b"}}, {"term": {"a": {"valeu": 1}}}]}});
    assert!(error(q).contains("valeu"));
}

#[test]
fn malformed_queries_are_errors_with_their_place() {
    assert_eq!(
        error(json!({"bool": {"filter": [{"trem": {"a": 1}}]}})),
        "at `/bool/filter/0/trem`: unknown query type `trem`, expected a query such as `term`, `match_phrase`, `wildcard`, `range`, `exists`, `bool` or `query_string`"
    );
    assert_eq!(
        error(json!({"wildcard": {"f": {"value": "x", "case_sensitive": true}}})),
        "at `/wildcard/f`: a `wildcard` query takes no `case_sensitive` (expected `value`, `wildcard`, `case_insensitive`, `rewrite`, `boost`, `_name`)"
    );
    assert_eq!(
        error(json!({"term": {"a": 1}, "exists": {"field": "b"}})),
        "at `/`: expected one query type per query object, found `term` and `exists`"
    );
    assert_eq!(
        error(json!({"term": {"a": 1, "b": 2}})),
        "at `/term`: expected one field in a `term` query, found `a` and `b`"
    );
    assert_eq!(
        error(json!({})),
        "at `/`: expected a query such as `{\"term\": ...}`, found an empty object"
    );
    assert_eq!(
        error(json!({"term": {"a": [1]}})),
        "at `/term/a`: expected a string, number or boolean, found an array"
    );
    assert_eq!(
        error(json!({"bool": {"should": "x"}})),
        "at `/bool/should`: expected a query object or an array of them, found the string \"x\""
    );
    assert_eq!(
        error(json!({"nested": {"query": {"match_all": {}}}})),
        "at `/nested`: expected `path` in a `nested` query, found none"
    );
    let mut deep = json!({"match_all": {}});
    for _ in 0..200 {
        deep = json!({"bool": {"must_not": deep}});
    }
    assert!(error(deep).contains("nests deeper than 128"));
}
