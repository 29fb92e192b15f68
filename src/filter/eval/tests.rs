//! Evaluator semantics per field type, as Elasticsearch answers them.

use chrono::{TimeZone as _, Utc};
use serde_json::{json, Value};

use super::*;
use crate::filter::tree::{Bounds, Scalar};

fn types() -> FieldTypes {
    FieldTypes::from_mapping(&json!({"properties":{
        "kw":{"type":"keyword","ignore_above":8},
        "msg":{"type":"text","fields":{"raw":{"type":"keyword"}}},
        "n":{"type":"long"},
        "f":{"type":"float"},
        "d":{"type":"date"},
        "ip":{"type":"ip"},
        "b":{"type":"boolean"},
        "nv":{"type":"keyword","null_value":"NULL"},
        "ne":{"type":"nested","properties":{"a":{"type":"keyword"},"c":{"type":"long"}}},
        "obj":{"properties":{"x":{"type":"keyword"}}}
    }}))
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, 10, 0, 0).unwrap()
}

fn check(f: &Filter, doc: Value) -> bool {
    compile(f, &types(), &EvalOptions::default())
        .unwrap_or_else(|e| panic!("{f:?}: {e}"))
        .matches(&doc, now())
}

fn m(field: &str, q: &str) -> Filter {
    Filter::Match {
        field: field.into(),
        query: q.into(),
    }
}

fn range(field: &str, side: &str, v: Scalar) -> Filter {
    let mut bounds = Bounds::default();
    match side {
        "gt" => bounds.gt = Some(v),
        "gte" => bounds.gte = Some(v),
        "lt" => bounds.lt = Some(v),
        _ => bounds.lte = Some(v),
    }
    Filter::Range {
        field: field.into(),
        bounds,
        time_zone: None,
        format: None,
    }
}

#[test]
fn keyword_is_exact_and_respects_ignore_above() {
    assert!(check(
        &Filter::term("kw", "Foo"),
        json!({"kw": ["x", "Foo"]})
    ));
    assert!(!check(&Filter::term("kw", "foo"), json!({"kw": "Foo"})));
    assert!(check(&m("kw", "Foo"), json!({"kw": "Foo"})));
    assert!(!check(
        &Filter::term("kw", "toolongvalue"),
        json!({"kw": "toolongvalue"})
    ));
    assert!(!check(&Filter::exists("kw"), json!({"kw": "toolongvalue"})));
    let ci = Filter::Term {
        field: "kw".into(),
        value: "FOO".into(),
        case_insensitive: Some(true),
    };
    assert!(check(&ci, json!({"kw": "foo"})));
    assert!(check(&Filter::term("nv", "NULL"), json!({"nv": null})));
    assert!(!check(&Filter::term("nv", "NULL"), json!({})));
}

#[test]
fn text_is_analyzed() {
    let doc = json!({"msg": "Hello World, cmd.exe running"});
    assert!(check(&m("msg", "WORLD foo"), doc.clone()));
    assert!(!check(&m("msg", "foo bar"), doc.clone()));
    let phrase = |q: &str| Filter::MatchPhrase {
        field: "msg".into(),
        query: q.into(),
    };
    assert!(check(&phrase("hello world"), doc.clone()));
    assert!(!check(&phrase("world hello"), doc.clone()));
    // values of an array are not one phrase
    assert!(!check(&phrase("a b"), json!({"msg": ["x a", "b y"]})));
    // a term is not analyzed: it must equal a token
    assert!(check(&Filter::term("msg", "cmd.exe"), doc.clone()));
    assert!(!check(&Filter::term("msg", "Hello"), doc.clone()));
    assert!(!check(&m("msg", "!!!"), doc.clone()));
    // the keyword multi-field reads the same source value
    assert!(check(
        &Filter::term("msg.raw", "Hello World, cmd.exe running"),
        doc.clone()
    ));
    let qsw = |p: &str| Filter::QueryStringWildcard {
        field: "msg".into(),
        pattern: p.into(),
        analyze: false,
    };
    assert!(check(&qsw("CMD*"), doc.clone()));
    let raw_wc = Filter::Wildcard {
        field: "msg".into(),
        pattern: "CMD*".into(),
        case_insensitive: None,
    };
    assert!(!check(&raw_wc, doc));
}

#[test]
fn numbers_dates_ips_booleans() {
    assert!(check(&m("n", "5"), json!({"n": "5"})));
    assert!(check(&m("n", "5"), json!({"n": 5.9})));
    assert!(!check(&m("n", "5.5"), json!({"n": 5})));
    assert!(compile(&m("n", "abc"), &types(), &EvalOptions::default()).is_err());
    assert!(check(&m("f", "0.1"), json!({"f": 0.1})));
    assert!(check(&range("f", "lte", "0.1".into()), json!({"f": 0.1})));
    assert!(check(&range("n", "gt", "4.5".into()), json!({"n": 5})));
    // dates: lte rounds up, gt rounds up, gte/lt down
    let doc = json!({"d": "2018-04-03T19:04:17Z"});
    assert!(check(&range("d", "lte", "2018-04-03".into()), doc.clone()));
    assert!(!check(&range("d", "gt", "2018-04-03".into()), doc.clone()));
    assert!(check(&range("d", "gte", "2018-04-03".into()), doc.clone()));
    assert!(!check(&range("d", "lt", "2018-04-03".into()), doc.clone()));
    assert!(check(&range("d", "gte", "now-10y".into()), doc.clone()));
    assert!(!check(&range("d", "gte", "now-1d/d".into()), doc.clone()));
    assert!(check(&m("d", "2018-04-03T19:04:17"), doc.clone()));
    assert!(check(&range("d", "gt", Scalar::Int(1522782256999)), doc));
    assert!(check(&m("ip", "10.0.0.0/8"), json!({"ip": "10.1.2.3"})));
    assert!(!check(&m("ip", "10.0.0.0/8"), json!({"ip": "11.1.2.3"})));
    assert!(check(&m("ip", "10.1.2.3/32"), json!({"ip": "10.1.2.3"})));
    assert!(check(&m("ip", "::1/128"), json!({"ip": "::1"})));
    assert!(check(&m("ip", "::/0"), json!({"ip": "10.0.0.1"})));
    assert!(check(
        &range("ip", "lt", "10.0.0.2".into()),
        json!({"ip": "10.0.0.1"})
    ));
    assert!(check(&m("b", "true"), json!({"b": "true"})));
    assert!(compile(&m("b", "yes"), &types(), &EvalOptions::default()).is_err());
}

#[test]
fn constant_keywords_and_custom_analysis() {
    let t = FieldTypes::from_mapping(&json!({"properties":{
        "ds":{"type":"constant_keyword","value":"endpoint.events"},
        "low":{"type":"keyword","normalizer":"lowercase"},
        "en":{"type":"text","analyzer":"english"}
    }}));
    let opts = EvalOptions::default();
    let m = compile(&Filter::term("ds", "endpoint.events"), &t, &opts).unwrap();
    assert!(m.matches(&json!({}), now()));
    assert!(compile(&Filter::term("low", "x"), &t, &opts).is_err());
    assert!(compile(&m_en(), &t, &opts).is_err());
}

fn m_en() -> Filter {
    m("en", "running")
}

#[test]
fn missing_fields_and_not() {
    let not = Filter::not(Filter::term("kw", "x"));
    assert!(check(&not, json!({})));
    assert!(check(&not, json!({"kw": null})));
    assert!(!check(&not, json!({"kw": ["y", "x"]})));
    assert!(!check(&Filter::exists("kw"), json!({"kw": []})));
    assert!(check(&Filter::exists("obj"), json!({"obj": {"x": "1"}})));
    assert!(!check(&Filter::exists("obj"), json!({"obj": {}})));
    // unmapped: nothing matches
    assert!(!check(&Filter::term("other", "x"), json!({"other": "x"})));
}

#[test]
fn nested_objects_match_on_their_own() {
    let doc = json!({"ne": [{"a": "x", "c": 1}, {"a": "y", "c": 2}]});
    let both = |a: &str, c: i64| Filter::Nested {
        path: "ne".into(),
        query: Box::new(Filter::And(vec![
            Filter::term("ne.a", a),
            Filter::term("ne.c", Scalar::Int(c)),
        ])),
        ignore_unmapped: None,
    };
    assert!(check(&both("x", 1), doc.clone()));
    assert!(!check(&both("x", 2), doc.clone()));
    // outside a nested query, nested fields match nothing
    assert!(!check(&Filter::term("ne.a", "x"), doc));
    let bad = Filter::Nested {
        path: "obj".into(),
        query: Box::new(Filter::MatchAll),
        ignore_unmapped: None,
    };
    assert!(compile(&bad, &types(), &EvalOptions::default()).is_err());
}

#[test]
fn multi_match_over_all_fields_is_lenient() {
    let mm = |q: &str| Filter::MultiMatch {
        query: q.into(),
        phrase: false,
        lenient: true,
    };
    assert!(check(&mm("world"), json!({"msg": "hello world"})));
    assert!(check(&mm("5"), json!({"n": 5})));
    assert!(!check(&mm("5"), json!({"n": 6})));
    assert!(!check(&mm("nothing"), json!({"kw": "x", "n": 1})));
}

#[test]
fn dynamic_mapping_types_each_value() {
    let opts = EvalOptions {
        unmapped: Unmapped::Dynamic,
    };
    let empty = FieldTypes::default();
    let run = |f: &Filter, doc: Value| compile(f, &empty, &opts).unwrap().matches(&doc, now());
    assert!(run(
        &m("message", "Hello"),
        json!({"message": "hello world"})
    ));
    assert!(!run(
        &Filter::term("message.keyword", "hello"),
        json!({"message": "hello world"})
    ));
    assert!(run(
        &Filter::term("message.keyword", "hello world"),
        json!({"message": "hello world"})
    ));
    assert!(run(&m("port", "445"), json!({"port": 445})));
    assert!(run(
        &range("@timestamp", "gte", "2024-01-01".into()),
        json!({"@timestamp": "2024-02-01T00:00:00Z"})
    ));
    assert!(run(&Filter::exists("a.b"), json!({"a": {"b": false}})));
    let mm = Filter::MultiMatch {
        query: "needle".into(),
        phrase: false,
        lenient: true,
    };
    assert!(run(&mm, json!({"x": {"y": "a needle here"}})));
    assert!(!run(&mm, json!({"x": {"y": "hay"}})));
}
