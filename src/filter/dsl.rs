//! Renders a [`Filter`] as Elasticsearch query DSL, node for node.
//!
//! The rendering is literal: the front end decided which query type each
//! leaf is for the indices' field types, so nothing is adapted here. The
//! shapes follow what Kibana's `kbn-es-query` sends (an `or` is
//! `bool.should` with `minimum_should_match: 1`, a `not` a `bool.must_not`
//! holding one query, optional flags only when set), so a KQL query renders
//! exactly as Kibana renders it.

use serde_json::{json, Map, Value};

use super::tree::{Bounds, Filter, QueryString};

/// Rendering choices that do not change what matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DslOptions {
    /// `and` as `bool.must` (scoring) instead of `bool.filter`: Kibana's
    /// `filtersInMustClause`.
    pub and_in_must: bool,
}

/// The query DSL of a filter.
pub fn to_dsl(filter: &Filter) -> Value {
    to_dsl_with(filter, DslOptions::default())
}

pub fn to_dsl_with(filter: &Filter, opts: DslOptions) -> Value {
    let r = |f: &Filter| to_dsl_with(f, opts);
    match filter {
        Filter::MatchAll => json!({ "match_all": {} }),
        Filter::MatchNone => json!({ "match_none": {} }),
        Filter::And(clauses) => {
            let key = if opts.and_in_must { "must" } else { "filter" };
            json!({ "bool": { key: clauses.iter().map(r).collect::<Vec<_>>() } })
        }
        Filter::Or(clauses) => json!({ "bool": {
            "should": clauses.iter().map(r).collect::<Vec<_>>(),
            "minimum_should_match": 1
        } }),
        Filter::Not(inner) => json!({ "bool": { "must_not": r(inner) } }),
        Filter::Term {
            field,
            value,
            case_insensitive,
        } => {
            let mut body = Map::new();
            body.insert("value".into(), value.to_json());
            if let Some(ci) = case_insensitive {
                body.insert("case_insensitive".into(), Value::Bool(*ci));
            }
            json!({ "term": { field: body } })
        }
        Filter::Terms { field, values } => {
            let values: Vec<Value> = values.iter().map(|v| v.to_json()).collect();
            json!({ "terms": { field: values } })
        }
        Filter::Match { field, query } => json!({ "match": { field: query.to_json() } }),
        Filter::MatchPhrase { field, query } => {
            json!({ "match_phrase": { field: query.to_json() } })
        }
        Filter::MultiMatch {
            query,
            phrase,
            lenient,
        } => json!({ "multi_match": {
            "type": if *phrase { "phrase" } else { "best_fields" },
            "query": query.to_json(),
            "lenient": lenient
        } }),
        Filter::Wildcard {
            field,
            pattern,
            case_insensitive,
        } => {
            let mut body = Map::new();
            body.insert("value".into(), Value::String(pattern.clone()));
            if let Some(ci) = case_insensitive {
                body.insert("case_insensitive".into(), Value::Bool(*ci));
            }
            json!({ "wildcard": { field: body } })
        }
        Filter::QueryStringWildcard {
            field,
            pattern,
            analyze,
        } => {
            let mut body = json!({ "fields": [field], "query": pattern });
            if *analyze {
                body["analyze_wildcard"] = json!(true);
            }
            json!({ "query_string": body })
        }
        Filter::Range {
            field,
            bounds,
            time_zone,
            format,
        } => {
            let mut body = bounds_json(bounds);
            if let Some(tz) = time_zone {
                body.insert("time_zone".into(), Value::String(tz.clone()));
            }
            if let Some(fmt) = format {
                body.insert("format".into(), Value::String(fmt.clone()));
            }
            json!({ "range": { field: body } })
        }
        Filter::Exists { field } => json!({ "exists": { "field": field } }),
        Filter::Nested {
            path,
            query,
            ignore_unmapped,
        } => {
            let mut body = Map::new();
            body.insert("path".into(), Value::String(path.clone()));
            body.insert("query".into(), r(query));
            body.insert("score_mode".into(), json!("none"));
            if let Some(iu) = ignore_unmapped {
                body.insert("ignore_unmapped".into(), Value::Bool(*iu));
            }
            json!({ "nested": body })
        }
        Filter::QueryString(qs) => query_string_json(qs),
        Filter::Verbatim(v) => v.dsl.clone(),
    }
}

fn query_string_json(qs: &QueryString) -> Value {
    let mut body = Map::new();
    if !qs.fields.is_empty() {
        body.insert("fields".into(), json!(qs.fields));
    }
    body.insert("query".into(), Value::String(qs.query.clone()));
    if let Some(aw) = qs.analyze_wildcard {
        body.insert("analyze_wildcard".into(), Value::Bool(aw));
    }
    if let Some(tz) = &qs.time_zone {
        body.insert("time_zone".into(), Value::String(tz.clone()));
    }
    json!({ "query_string": body })
}

fn bounds_json(b: &Bounds) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("gt", &b.gt),
        ("gte", &b.gte),
        ("lt", &b.lt),
        ("lte", &b.lte),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.to_json());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tree::{Local, Scalar};

    #[test]
    fn renders_each_node() {
        let f = Filter::And(vec![
            Filter::Or(vec![Filter::term("a", "x")]),
            Filter::not(Filter::exists("b")),
            Filter::Range {
                field: "@timestamp".into(),
                bounds: Bounds {
                    gte: Some("2018".into()),
                    lte: Some("2018".into()),
                    ..Bounds::default()
                },
                time_zone: Some("Zulu".into()),
                format: None,
            },
        ]);
        assert_eq!(
            to_dsl(&f),
            json!({"bool":{"filter":[
                {"bool":{"should":[{"term":{"a":{"value":"x"}}}],"minimum_should_match":1}},
                {"bool":{"must_not":{"exists":{"field":"b"}}}},
                {"range":{"@timestamp":{"gte":"2018","lte":"2018","time_zone":"Zulu"}}}
            ]}})
        );
        assert_eq!(
            to_dsl_with(&Filter::And(vec![]), DslOptions { and_in_must: true }),
            json!({"bool":{"must":[]}})
        );
        let qs = Filter::QueryString(QueryString {
            query: "a:b".into(),
            fields: vec![],
            analyze_wildcard: Some(true),
            time_zone: Some("Zulu".into()),
            local: Local::Unsupported("x".into()),
        });
        assert_eq!(
            to_dsl(&qs),
            json!({"query_string":{"query":"a:b","analyze_wildcard":true,"time_zone":"Zulu"}})
        );
        let nested = Filter::Nested {
            path: "n".into(),
            query: Box::new(Filter::Match {
                field: "n.c".into(),
                query: Scalar::Int(1),
            }),
            ignore_unmapped: Some(true),
        };
        assert_eq!(
            to_dsl(&nested),
            json!({"nested":{"path":"n","query":{"match":{"n.c":1}},"score_mode":"none","ignore_unmapped":true}})
        );
    }
}
