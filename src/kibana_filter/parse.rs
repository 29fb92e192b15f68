//! One filter object -> [`KibanaFilter`]: meta checked, the query found as
//! Kibana's `migrateFilter` finds it (`kbn-es-query`
//! `src/es_query/migrate_filter.ts`) and validated.

use serde_json::{json, Map, Value};

use super::error::FilterError;
use super::{Body, KibanaFilter, Relation};
use crate::querydsl::error::describe;
use crate::querydsl::{self, Pointer};

pub(super) fn filter(v: &Value, at: &Pointer) -> Result<KibanaFilter, FilterError> {
    let obj = v.as_object().ok_or_else(|| FilterError::Expected {
        path: at.to_string(),
        expected: "a filter object with `meta` and `query`".into(),
        found: describe(v),
    })?;
    let empty = Map::new();
    let meta_at = at.child("meta");
    let meta = match obj.get("meta") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => return Err(expected(&meta_at, "an object", other)),
    };
    // Kibana reads `disabled` loosely but compares `negate` with `===`: a
    // `negate` that is not a boolean silently drops the filter there, so it
    // is an error here.
    let disabled = match meta.get("disabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(expected(
                &meta_at.child("disabled"),
                "`true` or `false`",
                other,
            ))
        }
    };
    let negate = match meta.get("negate") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(expected(
                &meta_at.child("negate"),
                "`true` or `false`",
                other,
            ))
        }
    };
    let alias = match meta.get("alias") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(expected(&meta_at.child("alias"), "a string or null", other)),
    };
    let meta_str = |key: &str| -> Result<Option<&str>, FilterError> {
        match meta.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(expected(&meta_at.child(key), "a string", other)),
        }
    };
    let filter_type = meta_str("type")?;
    let key = meta_str("key")?;
    let meta_field = meta_str("field")?;
    meta_str("index")?;

    let body = if filter_type == Some("combined") {
        combined(meta, &meta_at)?
    } else {
        let (query, convert) = migrate(obj, at)?;
        let query_at = at.child("query");
        querydsl::read(&query, &query_at)?;
        let field = filter_field(&query, filter_type, key, meta_field);
        Body::Query {
            query,
            field,
            convert,
        }
    };
    Ok(KibanaFilter {
        raw: v.clone(),
        disabled,
        negate,
        alias,
        body,
    })
}

fn expected(at: &Pointer, what: &str, found: &Value) -> FilterError {
    FilterError::Expected {
        path: at.to_string(),
        expected: what.into(),
        found: describe(found),
    }
}

/// `meta.relation` and the sub-filters in `meta.params`.
fn combined(meta: &Map<String, Value>, at: &Pointer) -> Result<Body, FilterError> {
    let relation = match meta.get("relation") {
        Some(Value::String(r)) if r == "AND" => Relation::And,
        Some(Value::String(r)) if r == "OR" => Relation::Or,
        Some(other) => return Err(expected(&at.child("relation"), "\"AND\" or \"OR\"", other)),
        None => {
            return Err(FilterError::Expected {
                path: at.to_string(),
                expected: "`relation` in a combined filter".into(),
                found: "none".into(),
            })
        }
    };
    let params_at = at.child("params");
    let params = match meta.get("params") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, f)| filter(f, &params_at.child(i)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(expected(&params_at, "an array of filters", other)),
        None => {
            return Err(FilterError::Expected {
                path: at.to_string(),
                expected: "`params` in a combined filter".into(),
                found: "none".into(),
            })
        }
    };
    Ok(Body::Combined { relation, params })
}

/// The filter's query as `migrateFilter` leaves it, and the field of an old
/// `match` phrase filter whose value Kibana converts for the field's type.
fn migrate(obj: &Map<String, Value>, at: &Pointer) -> Result<(Value, Option<String>), FilterError> {
    let query = match obj.get("query") {
        None | Some(Value::Null) => None,
        Some(q @ Value::Object(_)) => Some(q),
        Some(other) => return Err(expected(&at.child("query"), "a query object", other)),
    };
    // `{match: {f: {query, type: "phrase"}}}`, at the top level or in
    // `query`: rewritten as `match_phrase` without `type`; every other key
    // is dropped.
    let top_match = obj.get("match").filter(|m| !m.is_null());
    let query_match = query.and_then(|q| q.get("match"));
    if let Some(m) = top_match.or(query_match) {
        if let Some(field) = m.as_object().and_then(|o| o.keys().next()) {
            let is_phrase = |m: Option<&Value>| {
                m.and_then(|m| m.get(field))
                    .and_then(|p| p.get("type"))
                    .and_then(Value::as_str)
                    == Some("phrase")
            };
            if is_phrase(query_match) || is_phrase(top_match) {
                let params = m[field].as_object().cloned().unwrap_or_default();
                let mut params: Map<String, Value> =
                    params.into_iter().filter(|(k, _)| k != "type").collect();
                if !params.contains_key("query") {
                    params.insert("query".into(), Value::Null);
                }
                let migrated = json!({ "match_phrase": { field.clone(): params } });
                return Ok((migrated, Some(field.clone())));
            }
        }
    }
    if let Some(q) = query {
        // With a `query`, Kibana keeps only `meta`, `query` and `$state`.
        return Ok((q.clone(), None));
    }
    let mut q = Map::new();
    for (k, v) in obj {
        if !matches!(k.as_str(), "meta" | "query" | "$state") {
            q.insert(k.clone(), v.clone());
        }
    }
    if q.is_empty() {
        return Err(FilterError::NoQuery {
            path: at.to_string(),
        });
    }
    Ok((Value::Object(q), None))
}

/// Kibana's `getFilterField` (`filters/build_filters/get_filter_field.ts`):
/// the field of an exists, phrase, phrases or range filter.
fn filter_field(
    query: &Value,
    filter_type: Option<&str>,
    key: Option<&str>,
    meta_field: Option<&str>,
) -> Option<String> {
    let first_key = |v: Option<&Value>| {
        v.and_then(Value::as_object)
            .and_then(|o| o.keys().next().cloned())
    };
    let meta_field = meta_field.filter(|f| !f.is_empty()).map(str::to_string);
    if let Some(exists) = query.get("exists") {
        return exists
            .get("field")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let script_params = query.pointer("/script/script/params");
    let range_keys = script_params.and_then(Value::as_object).is_some_and(|p| {
        ["gte", "gt", "lte", "lt", "from", "to"]
            .iter()
            .any(|k| p.contains_key(*k))
    });
    let is_phrase = query.get("match_phrase").is_some()
        || query
            .get("match")
            .and_then(Value::as_object)
            .is_some_and(|m| {
                m.values()
                    .any(|p| p.get("type").and_then(Value::as_str) == Some("phrase"))
            });
    let is_scripted_phrase = script_params.is_some_and(|p| p.get("value").is_some()) && !range_keys;
    if is_phrase || is_scripted_phrase {
        let config = query.get("match_phrase").or_else(|| query.get("match"));
        return meta_field.or_else(|| first_key(config));
    }
    if filter_type == Some("phrases") {
        return key.map(str::to_string);
    }
    let is_range = match filter_type.filter(|t| !t.is_empty()) {
        Some(t) => t == "range",
        None => query.get("range").is_some(),
    };
    if is_range || range_keys {
        return meta_field.or_else(|| first_key(query.get("range")));
    }
    None
}
