//! The query container: one query type per object, dispatched to its
//! reader; compound queries that only wrap others.

use serde_json::{Map, Value};

use super::error::{DslError, Pointer};
use crate::filter::{Filter, Scalar};

/// Nesting deeper than this is refused: a hostile query must not overflow
/// the stack.
pub(super) const MAX_DEPTH: usize = 128;

/// Query types Elasticsearch knows that detectd does not evaluate offline.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "script",
    "script_score",
    "regexp",
    "fuzzy",
    "ids",
    "multi_match",
    "combined_fields",
    "simple_query_string",
    "match_phrase_prefix",
    "match_bool_prefix",
    "more_like_this",
    "terms_set",
    "intervals",
    "function_score",
    "distance_feature",
    "rank_feature",
    "geo_bounding_box",
    "geo_distance",
    "geo_grid",
    "geo_polygon",
    "geo_shape",
    "shape",
    "has_child",
    "has_parent",
    "parent_id",
    "percolate",
    "pinned",
    "wrapper",
    "span_containing",
    "span_field_masking",
    "span_first",
    "span_multi",
    "span_near",
    "span_not",
    "span_or",
    "span_term",
    "span_within",
    "knn",
    "semantic",
    "sparse_vector",
    "text_expansion",
    "weighted_tokens",
    "rule",
];

/// Metadata fields live outside `_source`, where the evaluator looks.
const METADATA_FIELDS: &[&str] = &[
    "_id",
    "_index",
    "_routing",
    "_ignored",
    "_tier",
    "_source",
    "_seq_no",
    "_version",
    "_primary_term",
    "_field_names",
    "_doc_count",
    "_data_stream_timestamp",
];

#[derive(Default)]
pub(crate) struct Reader {
    /// The first reason found that the query cannot be evaluated offline;
    /// reading goes on so that malformed parts are still reported.
    pub unsupported: Option<String>,
    depth: usize,
}

impl Reader {
    /// Records why the query cannot be evaluated offline; the returned
    /// placeholder is never evaluated.
    pub fn unsupported(&mut self, why: impl Into<String>) -> Filter {
        if self.unsupported.is_none() {
            self.unsupported = Some(why.into());
        }
        Filter::MatchNone
    }

    /// One query object: `{"<type>": <body>}`.
    pub fn query(&mut self, v: &Value, at: &Pointer) -> Result<Filter, DslError> {
        if self.depth >= MAX_DEPTH {
            return Err(DslError::TooDeep {
                path: at.to_string(),
                limit: MAX_DEPTH,
            });
        }
        self.depth += 1;
        let out = self.dispatch(v, at);
        self.depth -= 1;
        out
    }

    fn dispatch(&mut self, v: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let obj = v
            .as_object()
            .ok_or_else(|| DslError::expected(at, "a query object", v))?;
        let mut keys = obj.keys();
        let (name, body) = match (keys.next(), keys.next()) {
            (Some(k), None) => (k.as_str(), &obj[k]),
            (None, _) => {
                return Err(DslError::expected(
                    at,
                    "a query such as `{\"term\": ...}`",
                    v,
                ))
            }
            (Some(a), Some(b)) => {
                return Err(DslError::Expected {
                    path: at.to_string(),
                    expected: "one query type per query object".into(),
                    found: format!("`{a}` and `{b}`"),
                })
            }
        };
        let at = at.child(name);
        match name {
            "match_all" => {
                params(name, body, &["boost", "_name"], &at)?;
                Ok(Filter::MatchAll)
            }
            "match_none" => {
                params(name, body, &["boost", "_name"], &at)?;
                Ok(Filter::MatchNone)
            }
            "term" => self.term(body, &at),
            "terms" => self.terms(body, &at),
            "match" => self.match_query(body, &at),
            "match_phrase" => self.match_phrase(body, &at),
            "wildcard" => self.wildcard(body, &at, false),
            "prefix" => self.wildcard(body, &at, true),
            "range" => self.range(body, &at),
            "exists" => self.exists(body, &at),
            "query_string" => self.query_string(body, &at),
            "bool" => self.bool_query(body, &at),
            "nested" => self.nested(body, &at),
            "constant_score" => {
                let o = params(name, body, &["filter", "boost", "_name"], &at)?;
                let inner = required(o, "filter", name, &at)?;
                self.query(inner, &at.child("filter"))
            }
            "dis_max" => {
                let o = params(
                    name,
                    body,
                    &["queries", "tie_breaker", "boost", "_name"],
                    &at,
                )?;
                let queries = required(o, "queries", name, &at)?;
                let at = at.child("queries");
                let list = queries
                    .as_array()
                    .ok_or_else(|| DslError::expected(&at, "an array of queries", queries))?;
                let parts = list
                    .iter()
                    .enumerate()
                    .map(|(i, q)| self.query(q, &at.child(i)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Filter::or(parts))
            }
            // `negative` only lowers scores: the documents are `positive`'s.
            "boosting" => {
                let o = params(
                    name,
                    body,
                    &["positive", "negative", "negative_boost", "boost", "_name"],
                    &at,
                )?;
                let negative = required(o, "negative", name, &at)?;
                self.query(negative, &at.child("negative"))?;
                self.query(required(o, "positive", name, &at)?, &at.child("positive"))
            }
            other if KNOWN_UNSUPPORTED.contains(&other) => {
                if !body.is_object() {
                    return Err(DslError::expected(&at, "an object", body));
                }
                Ok(self.unsupported(format!("a `{other}` query")))
            }
            other => Err(DslError::UnknownQuery {
                path: at.to_string(),
                name: other.to_string(),
            }),
        }
    }

    fn nested(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let o = params(
            "nested",
            body,
            &[
                "path",
                "query",
                "score_mode",
                "ignore_unmapped",
                "inner_hits",
                "boost",
                "_name",
            ],
            at,
        )?;
        let path = string_param(required(o, "path", "nested", at)?, &at.child("path"))?;
        let ignore_unmapped = o
            .get("ignore_unmapped")
            .map(|v| bool_param(v, &at.child("ignore_unmapped")))
            .transpose()?;
        let query = self.query(required(o, "query", "nested", at)?, &at.child("query"))?;
        Ok(Filter::Nested {
            path: path.to_string(),
            query: Box::new(query),
            ignore_unmapped,
        })
    }

    /// A leaf on a field outside `_source` cannot be evaluated.
    pub fn field_ok(&mut self, field: &str) -> bool {
        if METADATA_FIELDS.contains(&field) {
            self.unsupported(format!("a query on the metadata field `{field}`"));
            return false;
        }
        true
    }
}

/// The body as an object whose keys are all among `allowed`.
pub(super) fn params<'a>(
    query: &str,
    body: &'a Value,
    allowed: &[&str],
    at: &Pointer,
) -> Result<&'a Map<String, Value>, DslError> {
    let o = body
        .as_object()
        .ok_or_else(|| DslError::expected(at, "an object", body))?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(DslError::UnknownParameter {
            path: at.to_string(),
            query: query.to_string(),
            param: k.clone(),
            expected: allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(o)
}

pub(super) fn required<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    query: &str,
    at: &Pointer,
) -> Result<&'a Value, DslError> {
    o.get(key).ok_or_else(|| DslError::Expected {
        path: at.to_string(),
        expected: format!("`{key}` in a `{query}` query"),
        found: "none".into(),
    })
}

pub(super) fn string_param<'a>(v: &'a Value, at: &Pointer) -> Result<&'a str, DslError> {
    v.as_str()
        .ok_or_else(|| DslError::expected(at, "a string", v))
}

pub(super) fn bool_param(v: &Value, at: &Pointer) -> Result<bool, DslError> {
    v.as_bool()
        .ok_or_else(|| DslError::expected(at, "`true` or `false`", v))
}

/// A JSON scalar as a query value.
pub(super) fn scalar(v: &Value, at: &Pointer) -> Result<Scalar, DslError> {
    Ok(match v {
        Value::String(s) => Scalar::String(s.clone()),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        _ => return Err(DslError::expected(at, "a string, number or boolean", v)),
    })
}

/// The one field of a single-field query (`{"term": {"<field>": ...}}`).
pub(super) fn single_field<'a>(
    query: &str,
    body: &'a Value,
    at: &Pointer,
) -> Result<(&'a str, &'a Value), DslError> {
    let o = body
        .as_object()
        .ok_or_else(|| DslError::expected(at, "an object naming one field", body))?;
    let mut it = o.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        (None, _) => Err(DslError::Expected {
            path: at.to_string(),
            expected: format!("a field in a `{query}` query"),
            found: "none".into(),
        }),
        (Some((a, _)), Some((b, _))) => Err(DslError::Expected {
            path: at.to_string(),
            expected: format!("one field in a `{query}` query"),
            found: format!("`{a}` and `{b}`"),
        }),
    }
}
