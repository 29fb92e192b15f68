//! Tier 2: Kibana's expectations for filters as golden tests.
//!
//! Each test restates cases of `kbn-es-query`'s test files
//! (`src/platform/packages/shared/kbn-es-query/src/es_query/
//! {from_filters,from_nested_filter,from_combined_filter,migrate_filter}.test.ts`)
//! and of the detection engine's `rule_types/utils/get_query_filter.test.ts`,
//! read as a specification: the same filters (as Kibana's `build*Filter`
//! helpers make them), the same expected query DSL, written here in Rust.
//!
//! Not restated: the cases about JavaScript object identity (`toBe`) and
//! not mutating the input (Rust borrows), the ones on multiple data views
//! beyond the query they send, and combined filters' preserved `meta`.

use detectd::filter::{to_dsl, FieldTypes};
use detectd::kibana_filter::{
    build_query_from_filters, parse_filters, FilterClauses, KibanaFilter, PlaceOptions,
};
use detectd::kql::{self, KqlOptions};
use detectd::querydsl::Pointer;
use serde_json::{json, Value};

/// Kibana's `filters/stubs/fields.mocks.ts` fields these cases use, as
/// Elasticsearch types.
fn fields() -> FieldTypes {
    FieldTypes::default()
        .with("bytes", &["long"])
        .with("ssl", &["boolean"])
        .with("extension", &["text"])
        .with("machine.os", &["text"])
        .with_multi("machine.os.keyword", "machine.os", &["keyword"])
        .with("nestedField", &["nested"])
        .with("nestedField.child", &["text"])
}

fn filters(v: Value) -> Vec<KibanaFilter> {
    parse_filters(&v).unwrap()
}

fn build(v: Value, types: Option<&FieldTypes>, opts: &PlaceOptions) -> FilterClauses {
    build_query_from_filters(&filters(v), types, opts).unwrap()
}

fn bool_query(v: Value) -> Value {
    build(v, Some(&fields()), &PlaceOptions::default()).bool_query()
}

/// The one placed query of a single filter.
fn query_of(f: Value, types: Option<&FieldTypes>) -> Value {
    let c = build(json!([f]), types, &PlaceOptions::default());
    let all: Vec<Value> = c.filter.iter().chain(&c.must_not).map(to_dsl).collect();
    assert_eq!(all.len(), 1);
    all[0].clone()
}

// Kibana's filter builders, as they shape their output.
fn phrase(field: &str, value: Value) -> Value {
    json!({"meta": {"index": "logstash-*"}, "query": {"match_phrase": {field: value}}})
}
fn phrases(field: &str, values: &[&str]) -> Value {
    let should: Vec<Value> = values
        .iter()
        .map(|v| json!({"match_phrase": {field: v}}))
        .collect();
    json!({"meta": {"index": "logstash-*", "type": "phrases", "key": field, "params": values},
           "query": {"bool": {"should": should, "minimum_should_match": 1}}})
}
fn range(field: &str, params: Value) -> Value {
    json!({"meta": {"index": "logstash-*", "params": {}, "field": field},
           "query": {"range": {field: params}}})
}
fn exists(field: &str) -> Value {
    json!({"meta": {"index": "logstash-*"}, "query": {"exists": {"field": field}}})
}
fn combined(relation: &str, params: Vec<Value>) -> Value {
    json!({"$state": {"store": "appState"},
           "meta": {"type": "combined", "relation": relation, "params": params,
                    "index": "logstash-*", "disabled": false, "negate": false}})
}
fn negated(mut f: Value) -> Value {
    f["meta"]["negate"] = json!(true);
    f
}
fn empty_bool(filter: Vec<Value>, must_not: Vec<Value>) -> Value {
    json!({"bool": {"must": [], "filter": filter, "should": [], "must_not": must_not}})
}

// from_filters.test.ts

#[test]
fn from_filters_returns_the_parameters_of_a_bool_query() {
    assert_eq!(
        bool_query(json!([])),
        json!({"must": [], "filter": [], "should": [], "must_not": []})
    );
}

#[test]
fn from_filters_combines_filters_in_the_bool_clauses() {
    let got = bool_query(json!([
        {"query": {"match_all": {}}, "meta": {"type": "match_all"}},
        {"query": {"exists": {"field": "foo"}}, "meta": {"type": "exists"}},
    ]));
    assert_eq!(
        got["filter"],
        json!([{"match_all": {}}, {"exists": {"field": "foo"}}])
    );
}

#[test]
fn from_filters_removes_disabled_and_falsy_filters() {
    let got = bool_query(json!([
        {"query": {"match_all": {}}, "meta": {"type": "match_all", "negate": true, "disabled": true}},
        null,
    ]));
    assert_eq!(got["must_not"], json!([]));
    assert_eq!(got["must"], json!([]));
    assert_eq!(got["filter"], json!([]));
}

#[test]
fn from_filters_places_negated_filters_in_must_not() {
    let got = bool_query(json!([
        {"query": {"match_all": {}}, "meta": {"type": "match_all", "negate": true}}
    ]));
    assert_eq!(got["must_not"], json!([{"match_all": {}}]));
}

#[test]
fn from_filters_translates_old_syntax_and_migrates_deprecated_match() {
    let got =
        bool_query(json!([{"query": {"exists": {"field": "foo"}}, "meta": {"type": "exists"}}]));
    assert_eq!(got["filter"], json!([{"exists": {"field": "foo"}}]));
    let got = bool_query(json!([
        {"match": {"extension": {"query": "foo", "type": "phrase"}}, "meta": {"type": "phrase"}}
    ]));
    assert_eq!(
        got["filter"],
        json!([{"match_phrase": {"extension": {"query": "foo"}}}])
    );
}

#[test]
fn from_filters_adds_no_query_string_options() {
    let got = bool_query(json!([
        {"query": {"query_string": {"query": "foo"}}, "meta": {"type": "query_string"}}
    ]));
    assert_eq!(got["filter"], json!([{"query_string": {"query": "foo"}}]));
}

#[test]
fn from_filters_wraps_filters_on_nested_fields() {
    let f = json!([{"query": {"exists": {"field": "nestedField.child"}},
                    "meta": {"type": "exists", "alias": "", "disabled": false, "negate": false}}]);
    let types = fields();
    assert_eq!(
        build(f.clone(), Some(&types), &PlaceOptions::default()).bool_query()["filter"],
        json!([{"nested": {"path": "nestedField", "query": {"exists": {"field": "nestedField.child"}}}}])
    );
    let opts = PlaceOptions {
        nested_ignore_unmapped: Some(true),
    };
    assert_eq!(
        build(f, Some(&types), &opts).bool_query()["filter"],
        json!([{"nested": {"path": "nestedField", "query": {"exists": {"field": "nestedField.child"}},
                           "ignore_unmapped": true}}])
    );
}

#[test]
fn from_filters_with_several_data_views_sends_each_query() {
    let got = bool_query(json!([
        {"query": {"query_string": {"query": "foo"}}, "meta": {"index": "1"}},
        {"query": {"query_string": {"query": "bar"}}, "meta": {"index": "2"}},
    ]));
    assert_eq!(
        got["filter"],
        json!([{"query_string": {"query": "foo"}}, {"query_string": {"query": "bar"}}])
    );
}

// from_nested_filter.test.ts

#[test]
fn from_nested_filter_wraps_only_known_nested_fields() {
    let types = fields();
    assert_eq!(
        query_of(phrase("nestedField.child", json!("foo")), Some(&types)),
        json!({"nested": {"path": "nestedField", "query": {"match_phrase": {"nestedField.child": "foo"}}}})
    );
    let opts = PlaceOptions {
        nested_ignore_unmapped: Some(true),
    };
    let c = build(
        json!([phrase("nestedField.child", json!("foo"))]),
        Some(&types),
        &opts,
    );
    assert_eq!(
        to_dsl(&c.filter[0]),
        json!({"nested": {"path": "nestedField", "query": {"match_phrase": {"nestedField.child": "foo"}},
                          "ignore_unmapped": true}})
    );
    // Not nested, not in the index pattern, no index pattern, no field.
    assert_eq!(
        query_of(phrase("extension", json!("jpg")), Some(&types)),
        json!({"match_phrase": {"extension": "jpg"}})
    );
    assert_eq!(
        query_of(phrase("notarealfield", json!("jpg")), Some(&types)),
        json!({"match_phrase": {"notarealfield": "jpg"}})
    );
    assert_eq!(
        query_of(phrase("nestedField.child", json!("jpg")), None),
        json!({"match_phrase": {"nestedField.child": "jpg"}})
    );
    let qs = json!({"meta": {"index": "logstash-*", "alias": "foo"},
                    "query": {"query_string": {"query": "response:200"}}});
    assert_eq!(
        query_of(qs, Some(&types)),
        json!({"query_string": {"query": "response:200"}})
    );
}

// from_combined_filter.test.ts

fn combined_query(f: Value) -> Value {
    query_of(f, None)
}

#[test]
fn combined_and_filters() {
    assert_eq!(
        combined_query(combined("AND", vec![])),
        empty_bool(vec![], vec![])
    );
    let subs = vec![
        phrase("extension", json!("value")),
        range("bytes", json!({"gte": 10})),
        exists("machine.os"),
    ];
    assert_eq!(
        combined_query(combined("AND", subs)),
        empty_bool(
            vec![
                json!({"match_phrase": {"extension": "value"}}),
                json!({"range": {"bytes": {"gte": 10}}}),
                json!({"exists": {"field": "machine.os"}}),
            ],
            vec![]
        )
    );
    let subs = vec![
        negated(phrases("extension", &["tar", "gz"])),
        range("bytes", json!({"gte": 10})),
        exists("machine.os"),
    ];
    assert_eq!(
        combined_query(combined("AND", subs)),
        empty_bool(
            vec![
                json!({"range": {"bytes": {"gte": 10}}}),
                json!({"exists": {"field": "machine.os"}}),
            ],
            vec![json!({"bool": {"minimum_should_match": 1, "should": [
                {"match_phrase": {"extension": "tar"}}, {"match_phrase": {"extension": "gz"}}]}})]
        )
    );
}

#[test]
fn combined_or_filters() {
    assert_eq!(
        combined_query(combined("OR", vec![])),
        json!({"bool": {"minimum_should_match": 1, "should": []}})
    );
    let subs = vec![
        phrase("extension", json!("value")),
        range("bytes", json!({"gte": 10})),
        exists("machine.os"),
    ];
    assert_eq!(
        combined_query(combined("OR", subs)),
        json!({"bool": {"minimum_should_match": 1, "should": [
            empty_bool(vec![json!({"match_phrase": {"extension": "value"}})], vec![]),
            empty_bool(vec![json!({"range": {"bytes": {"gte": 10}}})], vec![]),
            empty_bool(vec![json!({"exists": {"field": "machine.os"}})], vec![]),
        ]}})
    );
    let subs = vec![
        negated(phrases("extension", &["tar", "gz"])),
        range("bytes", json!({"gte": 10})),
        exists("machine.os"),
    ];
    assert_eq!(
        combined_query(combined("OR", subs)),
        json!({"bool": {"minimum_should_match": 1, "should": [
            empty_bool(vec![], vec![json!({"bool": {"minimum_should_match": 1, "should": [
                {"match_phrase": {"extension": "tar"}}, {"match_phrase": {"extension": "gz"}}]}})]),
            empty_bool(vec![json!({"range": {"bytes": {"gte": 10}}})], vec![]),
            empty_bool(vec![json!({"exists": {"field": "machine.os"}})], vec![]),
        ]}})
    );
}

#[test]
fn combined_nested_relations() {
    let inner_and = combined(
        "AND",
        vec![
            phrase("extension", json!("value")),
            range("bytes", json!({"gte": 10})),
        ],
    );
    let or = combined(
        "OR",
        vec![
            phrases("extension", &["tar", "gz"]),
            phrase("ssl", json!(false)),
            inner_and,
            exists("machine.os"),
        ],
    );
    let outer = combined(
        "AND",
        vec![or, phrases("machine.os.keyword", &["foo", "bar"])],
    );
    let tar_gz = json!({"bool": {"minimum_should_match": 1, "should": [
        {"match_phrase": {"extension": "tar"}}, {"match_phrase": {"extension": "gz"}}]}});
    let expected = empty_bool(
        vec![
            json!({"bool": {"minimum_should_match": 1, "should": [
                empty_bool(vec![tar_gz], vec![]),
                empty_bool(vec![json!({"match_phrase": {"ssl": false}})], vec![]),
                empty_bool(vec![empty_bool(vec![
                    json!({"match_phrase": {"extension": "value"}}),
                    json!({"range": {"bytes": {"gte": 10}}}),
                ], vec![])], vec![]),
                empty_bool(vec![json!({"exists": {"field": "machine.os"}})], vec![]),
            ]}}),
            json!({"bool": {"minimum_should_match": 1, "should": [
                {"match_phrase": {"machine.os.keyword": "foo"}},
                {"match_phrase": {"machine.os.keyword": "bar"}}]}}),
        ],
        vec![],
    );
    assert_eq!(combined_query(outer), expected);
}

// migrate_filter.test.ts

#[test]
fn migrate_filter_cases() {
    let new = json!({"match_phrase": {"fieldFoo": {"query": "foobar"}}});
    assert_eq!(
        query_of(
            json!({"match": {"fieldFoo": {"query": "foobar", "type": "phrase"}}, "meta": {}}),
            None
        ),
        new
    );
    assert_eq!(
        query_of(
            json!({"query": {"match": {"fieldFoo": {"query": "foobar", "type": "phrase"}}}, "meta": {}}),
            None
        ),
        new
    );
    assert_eq!(
        query_of(json!({"query": {"match_all": {}}}), None),
        json!({"match_all": {}})
    );
    assert_eq!(
        query_of(
            json!({"query": {"match_all": {}}, "meta": {}, "size": 0}),
            None
        ),
        json!({"match_all": {}})
    );
}

// get_query_filter.test.ts: the rule's query and its filters in one search,
// as `buildEsQuery` merges them (a KQL query in `filter`, first).

fn get_query_filter(kuery: &str, filters: Value) -> Value {
    let types = FieldTypes::default();
    let q = kql::to_filter(kuery, None, &KqlOptions::detection_rules()).unwrap();
    let mut out = kql::es_query(&q);
    let placed = build(filters, Some(&types), &PlaceOptions::default()).bool_query();
    for key in ["must", "filter", "should", "must_not"] {
        let extra = placed[key].as_array().unwrap().clone();
        out["bool"][key].as_array_mut().unwrap().extend(extra);
    }
    out
}

#[test]
fn get_query_filter_with_filters() {
    let windows = json!({"bool": {"should": [{"match": {"host.name": "windows"}}], "minimum_should_match": 1}});
    let phrase_filter = |disabled: bool| {
        json!({"meta": {"alias": "custom label here", "disabled": disabled, "key": "host.name",
                        "negate": false, "params": {"query": "siem-windows"}, "type": "phrase"},
               "query": {"match_phrase": {"host.name": "siem-windows"}}})
    };
    let siem = json!({"match_phrase": {"host.name": "siem-windows"}});
    assert_eq!(
        get_query_filter("host.name: windows", json!([phrase_filter(false)])),
        json!({"bool": {"must": [], "filter": [windows, siem], "should": [], "must_not": []}})
    );
    assert_eq!(
        get_query_filter(
            "host.name: windows",
            json!([phrase_filter(false), phrase_filter(true)])
        ),
        json!({"bool": {"must": [], "filter": [windows, siem], "should": [], "must_not": []}})
    );
    assert_eq!(
        get_query_filter("host.name: windows", json!([phrase_filter(true)])),
        json!({"bool": {"must": [], "filter": [windows], "should": [], "must_not": []}})
    );
    // Filters without meta information.
    assert_eq!(
        get_query_filter(
            "host.name: windows",
            json!([{"query": {"match_phrase": {"host.name": "siem-windows"}}},
                   {"query": {"exists": {"field": "host.hostname"}}}])
        ),
        json!({"bool": {"must": [], "filter": [windows, siem, {"exists": {"field": "host.hostname"}}],
                        "should": [], "must_not": []}})
    );
}

#[test]
fn a_filter_made_by_kibana_places_like_any_other() {
    let f = KibanaFilter::from_query(json!({"bool": {"should": []}}), true, None).unwrap();
    assert_eq!(
        f.raw(),
        &json!({"meta": {"alias": null, "disabled": false, "negate": true}, "query": {"bool": {"should": []}}})
    );
    let c = build_query_from_filters(&[f], None, &PlaceOptions::default()).unwrap();
    assert_eq!(
        c.bool_query()["must_not"],
        json!([{"bool": {"should": []}}])
    );
    assert!(KibanaFilter::from_json(&json!({"query": {"bool": 1}}), &Pointer::root()).is_err());
}
