//! Query DSL for a window's search: the time range (Kibana's override with
//! `@timestamp` fallback), the pushdown [`Filter`] adapted to the index
//! mappings, and the sort.
//!
//! The pushdown filter assumes every field is indexed with its JSON type.
//! Real mappings differ (a string may be `text`, a number a `keyword`, a
//! field may be unmapped), and a `term` query on the wrong type can miss
//! documents or fail the search. [`adapt`] therefore checks each leaf
//! against the field types of the searched indices, read from the same
//! mappings the events are then evaluated with ([`FieldTypes::from_schemas`];
//! `_field_caps` answers the same question), and keeps it only where the
//! query means exactly what the filter means; otherwise it moves it to the
//! `.keyword` sub-field or widens it to match-all, which keeps the filter a
//! superset.
//!
//! What the index leaves out, the evaluator leaves out too: a `keyword`
//! value longer than `ignore_above` is neither indexed (a term or wildcard
//! leaf cannot see it) nor a value for the evaluator, and a
//! `constant_keyword`, an alias or a `null_value` answer on the cluster as
//! the evaluator answers with the mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::eql::pushdown::{Bounds, Filter, Scalar};
use crate::eql::schema::Schema;
use crate::source::{TimeFilter, TimeRange};

/// The mapped types of each field over the searched indices, from
/// `_field_caps` (`unmapped` entries left out).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldTypes {
    types: BTreeMap<String, FieldCaps>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldCaps {
    pub types: BTreeSet<String>,
    /// Searchable in every index that maps it.
    pub searchable: bool,
}

const KEYWORD: &[&str] = &["keyword", "constant_keyword", "wildcard"];
const INTEGER: &[&str] = &["long", "integer", "short", "byte", "unsigned_long"];

impl FieldTypes {
    /// Reads a `_field_caps` response body.
    pub fn from_field_caps(body: &Value) -> FieldTypes {
        let mut types = BTreeMap::new();
        if let Some(fields) = body.get("fields").and_then(Value::as_object) {
            for (name, by_type) in fields {
                let Some(by_type) = by_type.as_object() else {
                    continue;
                };
                let mut caps = FieldCaps {
                    types: BTreeSet::new(),
                    searchable: true,
                };
                for (ty, info) in by_type {
                    if ty == "unmapped" {
                        continue;
                    }
                    caps.types.insert(ty.clone());
                    if info.get("searchable").and_then(Value::as_bool) == Some(false) {
                        caps.searchable = false;
                    }
                }
                if !caps.types.is_empty() {
                    types.insert(name.clone(), caps);
                }
            }
        }
        FieldTypes { types }
    }

    /// The types of `fields` (with their `.keyword` sub-fields and parent
    /// objects, as [`adapt`] asks) in indices with these schemas: what
    /// `_field_caps` over those indices would say.
    pub fn from_schemas<'s>(
        schemas: impl IntoIterator<Item = &'s Schema>,
        fields: &BTreeSet<String>,
    ) -> FieldTypes {
        let mut wanted = BTreeSet::new();
        for f in fields {
            wanted.insert(f.clone());
            wanted.insert(format!("{f}.keyword"));
            for (i, _) in f.match_indices('.') {
                wanted.insert(f[..i].to_string());
            }
        }
        let mut types: BTreeMap<String, FieldCaps> = BTreeMap::new();
        for schema in schemas {
            for name in &wanted {
                let info = schema.resolve(name);
                let ty: &str = if info.mapped {
                    &info.es_type
                } else if schema.is_nested(name) {
                    "nested"
                } else {
                    continue;
                };
                let caps = types.entry(name.clone()).or_insert_with(|| FieldCaps {
                    types: BTreeSet::new(),
                    searchable: true,
                });
                caps.types.insert(ty.to_string());
                caps.searchable &= info.searchable || ty == "nested";
            }
        }
        FieldTypes { types }
    }

    /// A field mapped with exactly these types (for tests).
    pub fn with(mut self, field: &str, types: &[&str]) -> FieldTypes {
        self.types.insert(
            field.to_string(),
            FieldCaps {
                types: types.iter().map(|t| t.to_string()).collect(),
                searchable: true,
            },
        );
        self
    }

    /// The one type every index maps the field with, if they agree.
    pub fn single_type(&self, field: &str) -> Option<String> {
        let caps = self.types.get(field)?;
        (caps.types.len() == 1)
            .then(|| caps.types.iter().next().cloned())
            .flatten()
    }

    /// Whether some parent path of `field` is mapped as `nested`.
    pub fn under_nested(&self, field: &str) -> bool {
        field.match_indices('.').any(|(i, _)| {
            self.types
                .get(&field[..i])
                .is_some_and(|c| c.types.contains("nested"))
        })
    }

    /// Whether any index maps the field.
    pub fn is_mapped(&self, field: &str) -> bool {
        self.types.contains_key(field)
    }

    fn get(&self, field: &str) -> Option<&FieldCaps> {
        self.types.get(field).filter(|c| c.searchable)
    }

    fn all_in(&self, field: &str, family: &[&str]) -> bool {
        self.get(field)
            .is_some_and(|c| c.types.iter().all(|t| family.contains(&t.as_str())))
    }

    /// The type family every index agrees on, if any.
    fn family(&self, field: &str) -> Family {
        const NUMERIC: &[&str] = &[
            "long",
            "integer",
            "short",
            "byte",
            "unsigned_long",
            "double",
        ];
        if self.all_in(field, KEYWORD) {
            Family::Keyword
        } else if self.all_in(field, INTEGER) {
            Family::Integer
        } else if self.all_in(field, NUMERIC) {
            Family::Double
        } else if self.all_in(field, &["boolean"]) {
            Family::Boolean
        } else if self.all_in(field, &["ip"]) {
            Family::Ip
        } else if self.all_in(field, &["text", "match_only_text"]) {
            Family::Text
        } else if self.all_in(
            field,
            &[
                "keyword",
                "constant_keyword",
                "wildcard",
                "text",
                "match_only_text",
            ],
        ) {
            Family::KeywordText
        } else if self.get(field).is_some() {
            Family::Other
        } else {
            Family::Unmapped
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Keyword,
    Integer,
    /// `double` (possibly mixed with integers). `float` and friends are
    /// excluded: a float field rounds, so an exact term could miss.
    Double,
    Boolean,
    Ip,
    Text,
    /// Keyword in some indices, text in others.
    KeywordText,
    Other,
    Unmapped,
}

/// Adapts a pushdown filter to the mappings: the result is still a superset
/// of the events the query can use, and every leaf means on the cluster what
/// it means in [`Filter::matches`].
pub fn adapt(filter: &Filter, types: &FieldTypes) -> Filter {
    adapt_with(filter, types, false)
}

/// [`adapt`] for [`Filter::matches`] on the `_source` of the events the
/// cluster returns: the same leaves kept and widened, but each kept leaf
/// on its own field rather than a keyword sub-field (which holds the same
/// text), so that it selects locally what [`adapt`]'s filter selects on
/// the cluster.
pub fn adapt_on_source(filter: &Filter, types: &FieldTypes) -> Filter {
    adapt_with(filter, types, true)
}

fn adapt_with(filter: &Filter, types: &FieldTypes, on_source: bool) -> Filter {
    // Excluding is only sound with an exact clause; a clause that would
    // need widening is dropped (the result only grows).
    widen_leaves(
        filter,
        &|leaf| match leaf_verdict(leaf, types) {
            Ok(_) if on_source => leaf.clone(),
            Ok(exact) => exact,
            Err(_) => Filter::MatchAll,
        },
        &|excluded| adapt_with(excluded, types, false) == *excluded,
    )
}

/// `filter` with each leaf replaced by `leaf(it)` (itself, another leaf,
/// or match-all: the result only grows), keeping of each `must_not` only
/// the clauses `exact` says are answered exactly (widening inside an
/// exclusion would narrow).
pub fn widen_leaves(
    filter: &Filter,
    leaf: &dyn Fn(&Filter) -> Filter,
    exact: &dyn Fn(&Filter) -> bool,
) -> Filter {
    match filter {
        Filter::MatchAll => Filter::MatchAll,
        Filter::Bool {
            must,
            should,
            must_not,
        } => {
            let widen = |f: &Filter| widen_leaves(f, leaf, exact);
            let must = Filter::and(must.iter().map(widen).collect());
            let should = if should.is_empty() {
                Filter::MatchAll
            } else {
                Filter::or(should.iter().map(widen).collect())
            };
            let must_not: Vec<Filter> = must_not.iter().filter(|f| exact(f)).cloned().collect();
            let base = Filter::and(vec![must, should]);
            if must_not.is_empty() {
                base
            } else {
                Filter::Bool {
                    must: vec![base],
                    should: Vec::new(),
                    must_not,
                }
            }
        }
        other => leaf(other),
    }
}

/// Why a leaf is widened to match-all (for `detectd explain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Widening {
    /// Not a leaf (a `bool` or match-all).
    NotALeaf,
    /// Under a `nested` object, which plain queries do not see.
    Nested { field: String },
    /// `text` without a `keyword` sub-field.
    TextWithoutKeyword { field: String },
    /// Mapped, but not searchable in some index.
    NotSearchable { field: String },
    /// No searched index maps the field.
    Unmapped { field: String },
    /// Mapped with types on which the leaf would answer differently.
    Mismatch {
        field: String,
        types: Vec<String>,
        what: String,
    },
}

impl std::fmt::Display for Widening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Widening::NotALeaf => f.write_str("not a leaf"),
            Widening::Nested { field } => write!(
                f,
                "`{field}` is inside a `nested` object, which plain queries do not see"
            ),
            Widening::TextWithoutKeyword { field } => write!(
                f,
                "`{field}` is mapped as text (analyzed) and has no `keyword` sub-field"
            ),
            Widening::NotSearchable { field } => {
                write!(
                    f,
                    "`{field}` is not searchable in some index (`index: false`)"
                )
            }
            Widening::Unmapped { field } => {
                write!(f, "`{field}` is not mapped in the searched indices")
            }
            Widening::Mismatch { field, types, what } if types.len() > 1 => write!(
                f,
                "`{field}` is mapped differently across the indices ({}): {what}",
                types.join(", ")
            ),
            Widening::Mismatch { field, types, what } => {
                write!(f, "`{field}` is mapped as {}: {what}", types.join(", "))
            }
        }
    }
}

/// The leaf as the cluster can answer it exactly, or why it cannot (the
/// leaf is then widened to match-all: `detectd explain` shows the reason).
pub fn leaf_verdict(leaf: &Filter, types: &FieldTypes) -> Result<Filter, Widening> {
    let Some(field) = leaf_field(leaf) else {
        return Err(Widening::NotALeaf);
    };
    // Fields under a `nested` object only match inside a `nested` query;
    // the evaluator reads them from `_source`, so leave them to it.
    if types.under_nested(field) {
        return Err(Widening::Nested {
            field: field.to_string(),
        });
    }
    let family = types.family(field);
    if matches!(family, Family::Text | Family::KeywordText) {
        if matches!(leaf, Filter::Exists { .. }) {
            return Ok(leaf.clone());
        }
        // A text field is only usable through a keyword sub-field.
        let sub = format!("{field}.keyword");
        if types.family(&sub) != Family::Keyword {
            return Err(Widening::TextWithoutKeyword {
                field: field.to_string(),
            });
        }
        if !fits(leaf, Family::Keyword) {
            return Err(mismatch(leaf, &sub, types));
        }
        let renamed = rename(leaf, &sub);
        if family == Family::Text {
            return Ok(renamed);
        }
        // Keyword in some indices, text (with a keyword sub-field) in
        // others: each index answers exactly through one of the two.
        return Ok(Filter::or(vec![leaf.clone(), renamed]));
    }
    if fits(leaf, family) {
        Ok(leaf.clone())
    } else {
        let field = field.to_string();
        Err(match family {
            Family::Unmapped if types.types.contains_key(&field) => {
                Widening::NotSearchable { field }
            }
            Family::Unmapped => Widening::Unmapped { field },
            _ => mismatch(leaf, &field, types),
        })
    }
}

/// Why a leaf does not mean on `field`'s mapping what it means in memory.
fn mismatch(leaf: &Filter, field: &str, types: &FieldTypes) -> Widening {
    let mapped: Vec<String> = types
        .types
        .get(field)
        .map(|c| c.types.iter().cloned().collect())
        .unwrap_or_default();
    let what = match leaf {
        Filter::Wildcard { .. } => "a wildcard query needs a keyword field".to_string(),
        Filter::Range { .. } => {
            "a range over its values would not compare as detectd does".to_string()
        }
        Filter::Term { value, .. } => format!(
            "the term {} would not compare as detectd does",
            value.to_json()
        ),
        Filter::Terms { .. } => "the terms would not compare as detectd does".to_string(),
        _ => "the query would not mean what it means in detectd".to_string(),
    };
    Widening::Mismatch {
        field: field.to_string(),
        types: mapped,
        what,
    }
}

/// Whether a leaf means on a field of this family what it means in memory.
fn fits(leaf: &Filter, family: Family) -> bool {
    match leaf {
        Filter::Exists { .. } => family != Family::Unmapped,
        Filter::Term { value, .. } => scalar_fits(value, family),
        Filter::Terms { values, .. } => values.iter().all(|v| scalar_fits(v, family)),
        Filter::Wildcard { .. } => family == Family::Keyword,
        Filter::Range { bounds, .. } => {
            let bs = [&bounds.gt, &bounds.gte, &bounds.lt, &bounds.lte];
            match family {
                Family::Integer | Family::Double => bs
                    .iter()
                    .all(|b| b.as_ref().is_none_or(|s| scalar_fits(s, family))),
                Family::Keyword => bs
                    .iter()
                    .all(|b| b.as_ref().is_none_or(|s| scalar_fits(s, Family::Keyword))),
                _ => false,
            }
        }
        _ => false,
    }
}

fn scalar_fits(v: &Scalar, family: Family) -> bool {
    match (v, family) {
        // A numeric string equals a number in memory ("135" == 135.0) but
        // not as a keyword term ("135.0" is indexed as written).
        (Scalar::String(s), Family::Keyword) => s.trim().parse::<f64>().is_err(),
        (Scalar::String(s), Family::Ip) => s.parse::<IpAddr>().is_ok(),
        (Scalar::Int(_), Family::Integer | Family::Double) => true,
        (Scalar::Float(f), Family::Integer) => f.fract() == 0.0 && f.abs() < 9.0e15,
        (Scalar::Float(_), Family::Double) => true,
        (Scalar::Bool(_), Family::Boolean) => true,
        _ => false,
    }
}

fn leaf_field(f: &Filter) -> Option<&str> {
    match f {
        Filter::Term { field, .. }
        | Filter::Terms { field, .. }
        | Filter::Wildcard { field, .. }
        | Filter::Range { field, .. }
        | Filter::Exists { field } => Some(field),
        _ => None,
    }
}

fn rename(f: &Filter, to: &str) -> Filter {
    let mut f = f.clone();
    match &mut f {
        Filter::Term { field, .. }
        | Filter::Terms { field, .. }
        | Filter::Wildcard { field, .. }
        | Filter::Range { field, .. }
        | Filter::Exists { field } => *field = to.to_string(),
        _ => {}
    }
    f
}

/// Renders a filter to query DSL as is (call [`adapt`] first).
pub fn to_dsl(filter: &Filter) -> Value {
    match filter {
        Filter::MatchAll => json!({ "match_all": {} }),
        Filter::Term {
            field,
            value,
            case_insensitive,
        } => {
            let mut body = Map::new();
            body.insert("value".into(), value.to_json());
            // Only strings have a case; the flag on other types is an error
            // on some versions.
            if *case_insensitive && matches!(value, Scalar::String(_)) {
                body.insert("case_insensitive".into(), Value::Bool(true));
            }
            json!({ "term": { field: body } })
        }
        Filter::Terms { field, values } => {
            json!({ "terms": { field: values.iter().map(Scalar::to_json).collect::<Vec<_>>() } })
        }
        Filter::Wildcard {
            field,
            pattern,
            case_insensitive,
        } => {
            let mut body = Map::new();
            body.insert("value".into(), Value::String(pattern.clone()));
            if *case_insensitive {
                body.insert("case_insensitive".into(), Value::Bool(true));
            }
            json!({ "wildcard": { field: body } })
        }
        Filter::Range { field, bounds } => json!({ "range": { field: bounds_json(bounds) } }),
        Filter::Exists { field } => json!({ "exists": { "field": field } }),
        Filter::Bool {
            must,
            should,
            must_not,
        } => {
            let mut b = Map::new();
            if !must.is_empty() {
                b.insert("filter".into(), must.iter().map(to_dsl).collect());
            }
            if !should.is_empty() {
                b.insert("should".into(), should.iter().map(to_dsl).collect());
                // In filter context the default is 0 as soon as `filter` is
                // present, which would make `should` optional.
                b.insert("minimum_should_match".into(), json!(1));
            }
            if !must_not.is_empty() {
                b.insert("must_not".into(), must_not.iter().map(to_dsl).collect());
            }
            json!({ "bool": b })
        }
    }
}

fn bounds_json(b: &Bounds) -> Value {
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
    Value::Object(m)
}

/// ISO-8601 with milliseconds, as Kibana sends the window bounds.
pub fn iso(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The time range filter: bounds inclusive; with a fallback, documents
/// without the primary field are matched on the fallback field instead.
pub fn time_range(range: &TimeRange, tf: &TimeFilter) -> Value {
    let on = |field: &str| {
        json!({ "range": { field: {
            "gte": iso(&range.from),
            "lte": iso(&range.to),
            "format": "strict_date_optional_time"
        } } })
    };
    match &tf.fallback {
        None => on(&tf.primary),
        Some(fb) => json!({ "bool": {
            "minimum_should_match": 1,
            "should": [
                on(&tf.primary),
                { "bool": {
                    "filter": [on(fb)],
                    "must_not": [{ "exists": { "field": tf.primary } }]
                } }
            ]
        } }),
    }
}

/// The whole `query`: time range AND the adapted pushdown filter.
pub fn search_query(range: &TimeRange, tf: &TimeFilter, filter: &Filter) -> Value {
    let mut clauses = vec![time_range(range, tf)];
    if !filter.is_match_all() {
        clauses.push(to_dsl(filter));
    }
    json!({ "bool": { "filter": clauses } })
}

/// The `query` of a search without a time range: the adapted pushdown
/// filter alone.
pub fn filter_query(filter: &Filter) -> Value {
    let clauses: Vec<Value> = if filter.is_match_all() {
        Vec::new()
    } else {
        vec![to_dsl(filter)]
    };
    json!({ "bool": { "filter": clauses } })
}

/// Adds a request's exact clause, already translated for the indices'
/// field types, to the filters of `query` (a [`search_query`]); a clause
/// that matches everything adds nothing.
pub fn add_exact(query: &mut Value, exact: &crate::filter::Filter) {
    if matches!(exact, crate::filter::Filter::MatchAll) {
        return;
    }
    if let Some(clauses) = query
        .pointer_mut("/bool/filter")
        .and_then(Value::as_array_mut)
    {
        clauses.push(crate::filter::to_dsl(exact));
    }
}

/// The type the tiebreaker's sort is given for unmapped indices: the one
/// type every index maps it with; `long` when no index maps it (any type
/// makes the sort valid, all values missing); none when they disagree.
pub fn tiebreaker_type(types: &FieldTypes, tiebreaker: &str) -> Option<String> {
    types
        .single_type(tiebreaker)
        .or_else(|| (!types.is_mapped(tiebreaker)).then(|| "long".to_string()))
}

/// How hits are ordered and paged: timestamp, tiebreaker (missing last),
/// then a unique per-document key.
pub fn sort(
    timestamp_field: &str,
    tiebreaker: Option<&str>,
    tiebreaker_type: Option<&str>,
    shard_doc: bool,
) -> Value {
    let mut sort = vec![json!({ timestamp_field: { "order": "asc", "unmapped_type": "date" } })];
    if let Some(tb) = tiebreaker {
        let mut spec = json!({ "order": "asc", "missing": "_last" });
        if let Some(t) = tiebreaker_type {
            spec["unmapped_type"] = json!(t);
        }
        sort.push(json!({ tb: spec }));
    }
    if shard_doc {
        sort.push(json!({ "_shard_doc": "asc" }));
    } else {
        // OpenSearch before 3.3 has no `_shard_doc`: index name and id are
        // unique together and sortable on those versions.
        sort.push(json!({ "_index": "asc" }));
        sort.push(json!({ "_id": "asc" }));
    }
    Value::Array(sort)
}

/// Index order: `_shard_doc` in a point in time, or `_index` + `_id`
/// where the server has none.
pub fn index_order(shard_doc: bool) -> Value {
    if shard_doc {
        json!([{ "_shard_doc": "asc" }])
    } else {
        json!([{ "_index": "asc" }, { "_id": "asc" }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn term(field: &str, v: Scalar, ci: bool) -> Filter {
        Filter::Term {
            field: field.into(),
            value: v,
            case_insensitive: ci,
        }
    }

    #[test]
    fn a_timeless_search_has_no_range_and_pages_in_index_order() {
        assert_eq!(
            filter_query(&Filter::MatchAll),
            json!({"bool": {"filter": []}})
        );
        assert_eq!(index_order(true), json!([{"_shard_doc": "asc"}]));
        assert_eq!(
            index_order(false),
            json!([{"_index": "asc"}, {"_id": "asc"}])
        );
    }

    #[test]
    fn a_widened_leaf_says_why() {
        let types = FieldTypes::default()
            .with("process.name", &["keyword"])
            .with("msg", &["text"])
            .with("port", &["keyword"])
            .with("mixed", &["keyword", "long"])
            .with("obj", &["nested"])
            .with("pid", &["long"]);
        let s = |v: &str| Scalar::String(v.into());
        let why = |leaf: Filter| leaf_verdict(&leaf, &types).unwrap_err().to_string();
        assert!(leaf_verdict(&term("process.name", s("a"), true), &types).is_ok());
        assert_eq!(
            why(term("user.name", s("a"), false)),
            "`user.name` is not mapped in the searched indices"
        );
        assert_eq!(
            why(term("msg", s("a"), false)),
            "`msg` is mapped as text (analyzed) and has no `keyword` sub-field"
        );
        assert_eq!(
            why(term("port", Scalar::Int(135), false)),
            "`port` is mapped as keyword: the term 135 would not compare as detectd does"
        );
        assert!(why(term("mixed", s("a"), false))
            .contains("mapped differently across the indices (keyword, long)"));
        assert!(why(term("obj.x", s("a"), false)).contains("inside a `nested` object"));
        let wild = Filter::Wildcard {
            field: "pid".into(),
            pattern: "4*".into(),
            case_insensitive: false,
        };
        assert_eq!(
            why(wild),
            "`pid` is mapped as long: a wildcard query needs a keyword field"
        );
        // adapt widens exactly the leaves leaf_verdict refuses
        assert_eq!(
            adapt(&term("port", Scalar::Int(135), false), &types),
            Filter::MatchAll
        );
    }

    #[test]
    fn leaves_fit_the_mapping_or_widen() {
        let types = FieldTypes::default()
            .with("process.name", &["keyword"])
            .with("msg", &["text"])
            .with("msg.keyword", &["keyword"])
            .with("body", &["text"])
            .with("port", &["long"])
            .with("ip", &["ip"])
            .with("mixed", &["keyword", "long"])
            .with("kt", &["keyword", "text"])
            .with("kt.keyword", &["keyword"]);
        let s = |v: &str| Scalar::String(v.into());
        let kept = term("process.name", s("a"), true);
        assert_eq!(adapt(&kept, &types), kept);
        assert_eq!(
            adapt(&term("msg", s("a"), true), &types),
            term("msg.keyword", s("a"), true)
        );
        assert_eq!(
            adapt(&term("body", s("a"), false), &types),
            Filter::MatchAll
        );
        assert_eq!(
            adapt(&term("port", Scalar::Int(135), false), &types),
            term("port", Scalar::Int(135), false)
        );
        assert_eq!(
            adapt(&term("port", s("135"), false), &types),
            Filter::MatchAll
        );
        assert_eq!(
            adapt(&term("process.name", Scalar::Int(1), false), &types),
            Filter::MatchAll
        );
        assert_eq!(
            adapt(&term("ip", s("10.0.0.1"), false), &types),
            term("ip", s("10.0.0.1"), false)
        );
        assert_eq!(
            adapt(&term("ip", s("10.*"), false), &types),
            Filter::MatchAll
        );
        assert_eq!(
            adapt(&term("mixed", s("a"), false), &types),
            Filter::MatchAll
        );
        assert_eq!(
            adapt(&term("unmapped", s("a"), false), &types),
            Filter::MatchAll
        );
        let nested = types
            .clone()
            .with("n", &["nested"])
            .with("n.k", &["keyword"]);
        assert_eq!(
            adapt(&term("n.k", s("a"), false), &nested),
            Filter::MatchAll
        );
        assert_eq!(adapt(&term("n", s("a"), false), &nested), Filter::MatchAll);
        let wc = Filter::Wildcard {
            field: "port".into(),
            pattern: "1*".into(),
            case_insensitive: false,
        };
        assert_eq!(adapt(&wc, &types), Filter::MatchAll);
    }

    #[test]
    fn on_source_the_kept_leaves_stay_on_their_own_fields() {
        let types = FieldTypes::default()
            .with("msg", &["text"])
            .with("msg.keyword", &["keyword"])
            .with("kt", &["keyword", "text"])
            .with("kt.keyword", &["keyword"])
            .with("body", &["text"])
            .with("a", &["keyword"]);
        let s = |v: &str| Scalar::String(v.into());
        // where the cluster reads the keyword sub-field, `_source` has the
        // text on the field itself
        let msg = term("msg", s("x"), true);
        assert_eq!(adapt_on_source(&msg, &types), msg);
        let kt = term("kt", s("x"), false);
        assert_eq!(adapt_on_source(&kt, &types), kt);
        // widened alike
        assert_eq!(
            adapt_on_source(&term("body", s("x"), false), &types),
            Filter::MatchAll
        );
        // an exclusion the cluster drops (it would need a sub-field) is
        // dropped here too: locally it must not select less
        let f = Filter::Bool {
            must: vec![term("a", s("y"), false)],
            should: vec![],
            must_not: vec![msg.clone()],
        };
        assert_eq!(adapt(&f, &types), term("a", s("y"), false));
        assert_eq!(adapt_on_source(&f, &types), term("a", s("y"), false));
    }

    #[test]
    fn widening_inside_bool_keeps_the_rest_and_drops_inexact_exclusions() {
        let types = FieldTypes::default()
            .with("a", &["keyword"])
            .with("n", &["long"]);
        let s = |v: &str| Scalar::String(v.into());
        let f = Filter::Bool {
            must: vec![term("a", s("x"), false), term("n", s("oops"), false)],
            should: vec![],
            must_not: vec![term("n", s("bad"), false), term("a", s("y"), false)],
        };
        let got = adapt(&f, &types);
        let want = Filter::Bool {
            must: vec![term("a", s("x"), false)],
            should: vec![],
            must_not: vec![term("a", s("y"), false)],
        };
        assert_eq!(got, want);
        // A should with a widened branch is match-all as a whole.
        let f = Filter::or(vec![term("a", s("x"), false), term("n", s("oops"), false)]);
        assert_eq!(adapt(&f, &types), Filter::MatchAll);
    }

    #[test]
    fn renders_dsl() {
        let f = Filter::Bool {
            must: vec![term("a", Scalar::String("X".into()), true)],
            should: vec![
                Filter::Wildcard {
                    field: "b".into(),
                    pattern: "*.exe".into(),
                    case_insensitive: true,
                },
                Filter::Terms {
                    field: "c".into(),
                    values: vec![Scalar::Int(1), Scalar::Int(2)],
                },
            ],
            must_not: vec![],
        };
        assert_eq!(
            to_dsl(&f),
            json!({"bool":{"filter":[{"term":{"a":{"value":"X","case_insensitive":true}}}],
                "should":[{"wildcard":{"b":{"value":"*.exe","case_insensitive":true}}},{"terms":{"c":[1,2]}}],
                "minimum_should_match":1}})
        );
        assert_eq!(
            to_dsl(&term("n", Scalar::Int(5), true)),
            json!({"term":{"n":{"value":5}}})
        );
    }

    #[test]
    fn time_range_with_and_without_fallback() {
        let range = TimeRange {
            from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2024, 1, 1, 0, 9, 0).unwrap(),
        };
        let plain = time_range(&range, &TimeFilter::kibana(None, false));
        assert_eq!(
            plain,
            json!({"range":{"@timestamp":{"gte":"2024-01-01T00:00:00.000Z","lte":"2024-01-01T00:09:00.000Z","format":"strict_date_optional_time"}}})
        );
        let fb = time_range(&range, &TimeFilter::kibana(Some("event.ingested"), false));
        assert_eq!(
            fb["bool"]["should"][0]["range"]["event.ingested"]["gte"],
            json!("2024-01-01T00:00:00.000Z")
        );
        assert_eq!(
            fb["bool"]["should"][1]["bool"]["must_not"][0],
            json!({"exists":{"field":"event.ingested"}})
        );
        let off = time_range(&range, &TimeFilter::kibana(Some("event.ingested"), true));
        assert!(off["range"]["event.ingested"].is_object());
    }

    #[test]
    fn field_caps_parsing() {
        let body = json!({"indices":["a","b"],"fields":{
            "x":{"keyword":{"type":"keyword","searchable":true},"unmapped":{"type":"unmapped"}},
            "y":{"text":{"type":"text","searchable":true}},
            "z":{"keyword":{"type":"keyword","searchable":false}}}});
        let t = FieldTypes::from_field_caps(&body);
        assert_eq!(t.family("x"), Family::Keyword);
        assert_eq!(t.family("y"), Family::Text);
        assert_eq!(t.family("z"), Family::Unmapped);
        assert_eq!(t.family("w"), Family::Unmapped);
    }
}
