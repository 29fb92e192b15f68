//! Leaf queries: one field, one test. Each accepts Elasticsearch's short
//! form (`{"term": {"f": "v"}}`) and long form (`{"term": {"f": {"value":
//! "v", ...}}}`), and refuses parameters Elasticsearch does not know.
//! Parameters that change which documents match in ways the evaluator does
//! not model make the query unsupported offline.

use serde_json::{Map, Value};

use super::error::{DslError, Pointer};
use super::reader::{bool_param, params, required, scalar, single_field, string_param, Reader};
use crate::filter::{Bounds, Filter, Local, Scalar};
use crate::kql::lucene::{self, LuceneOptions};

impl Reader {
    pub(super) fn term(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let (field, spec) = single_field("term", body, at)?;
        let at = at.child(field);
        let (value, case_insensitive) = match spec {
            Value::Object(_) => {
                let o = params(
                    "term",
                    spec,
                    &["value", "case_insensitive", "boost", "_name"],
                    &at,
                )?;
                let value = scalar(required(o, "value", "term", &at)?, &at.child("value"))?;
                (value, opt_bool(o, "case_insensitive", &at)?)
            }
            v => (scalar(v, &at)?, None),
        };
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        Ok(Filter::Term {
            field: field.to_string(),
            value,
            case_insensitive,
        })
    }

    pub(super) fn terms(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let o = body
            .as_object()
            .ok_or_else(|| DslError::expected(at, "an object naming one field", body))?;
        let fields: Vec<(&String, &Value)> = o
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"))
            .collect();
        let (field, values) = match fields.as_slice() {
            [one] => *one,
            [] => {
                return Err(DslError::Expected {
                    path: at.to_string(),
                    expected: "a field in a `terms` query".into(),
                    found: "none".into(),
                })
            }
            [(a, _), (b, _), ..] => {
                return Err(DslError::Expected {
                    path: at.to_string(),
                    expected: "one field in a `terms` query".into(),
                    found: format!("`{a}` and `{b}`"),
                })
            }
        };
        let at = at.child(field);
        let values = match values {
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| scalar(v, &at.child(i)))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Object(_) => return Ok(self.unsupported("a `terms` lookup in another index")),
            other => return Err(DslError::expected(&at, "an array of values", other)),
        };
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        Ok(Filter::Terms {
            field: field.to_string(),
            values,
        })
    }

    pub(super) fn match_query(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let (field, spec) = single_field("match", body, at)?;
        let at = at.child(field);
        let query = match spec {
            Value::Object(_) => {
                let o = params(
                    "match",
                    spec,
                    &[
                        "query",
                        "operator",
                        "analyzer",
                        "fuzziness",
                        "minimum_should_match",
                        "zero_terms_query",
                        "lenient",
                        "cutoff_frequency",
                        "auto_generate_synonyms_phrase_query",
                        "max_expansions",
                        "prefix_length",
                        "fuzzy_transpositions",
                        "fuzzy_rewrite",
                        "boost",
                        "_name",
                    ],
                    &at,
                )?;
                let query = scalar(required(o, "query", "match", &at)?, &at.child("query"))?;
                if let Some(op) = o.get("operator") {
                    let op = string_param(op, &at.child("operator"))?;
                    if !op.eq_ignore_ascii_case("or") {
                        self.unsupported(format!("a `match` query with operator `{op}`"));
                    }
                }
                if let Some(f) = o.get("fuzziness") {
                    if !matches!(f, Value::Number(n) if n.as_u64() == Some(0))
                        && f.as_str() != Some("0")
                    {
                        self.unsupported("a fuzzy `match` query");
                    }
                }
                self.analysis_options("match", o, &at)?;
                if o.contains_key("minimum_should_match") {
                    self.unsupported("a `match` query with `minimum_should_match`");
                }
                if o.contains_key("cutoff_frequency") {
                    self.unsupported("a `match` query with `cutoff_frequency`");
                }
                if opt_bool(o, "lenient", &at)? == Some(true) {
                    self.unsupported("a lenient `match` query");
                }
                query
            }
            v => scalar(v, &at)?,
        };
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        Ok(Filter::Match {
            field: field.to_string(),
            query,
        })
    }

    pub(super) fn match_phrase(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let (field, spec) = single_field("match_phrase", body, at)?;
        let at = at.child(field);
        let query = match spec {
            Value::Object(_) => {
                let o = params(
                    "match_phrase",
                    spec,
                    &[
                        "query",
                        "analyzer",
                        "slop",
                        "zero_terms_query",
                        "boost",
                        "_name",
                    ],
                    &at,
                )?;
                let query = scalar(
                    required(o, "query", "match_phrase", &at)?,
                    &at.child("query"),
                )?;
                if let Some(slop) = o.get("slop") {
                    match slop.as_u64() {
                        Some(0) => {}
                        Some(_) => {
                            self.unsupported("a `match_phrase` query with `slop`");
                        }
                        None => {
                            return Err(DslError::expected(
                                &at.child("slop"),
                                "a non-negative integer",
                                slop,
                            ))
                        }
                    }
                }
                self.analysis_options("match_phrase", o, &at)?;
                query
            }
            v => scalar(v, &at)?,
        };
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        Ok(Filter::MatchPhrase {
            field: field.to_string(),
            query,
        })
    }

    /// `analyzer` and `zero_terms_query`, shared by `match` and
    /// `match_phrase`: the evaluator analyzes text with the standard
    /// analyzer and matches nothing when no token is left.
    fn analysis_options(
        &mut self,
        query: &str,
        o: &Map<String, Value>,
        at: &Pointer,
    ) -> Result<(), DslError> {
        if let Some(a) = o.get("analyzer") {
            let a = string_param(a, &at.child("analyzer"))?;
            if a != "standard" {
                self.unsupported(format!("a `{query}` query with the analyzer `{a}`"));
            }
        }
        if let Some(z) = o.get("zero_terms_query") {
            let z = string_param(z, &at.child("zero_terms_query"))?;
            if !z.eq_ignore_ascii_case("none") {
                self.unsupported(format!("a `{query}` query with `zero_terms_query: {z}`"));
            }
        }
        Ok(())
    }

    /// `wildcard`, or `prefix` read as the wildcard `<escaped value>*`
    /// (the same term-level test on the same indexed terms).
    pub(super) fn wildcard(
        &mut self,
        body: &Value,
        at: &Pointer,
        prefix: bool,
    ) -> Result<Filter, DslError> {
        let name = if prefix { "prefix" } else { "wildcard" };
        let (field, spec) = single_field(name, body, at)?;
        let at = at.child(field);
        let (value, case_insensitive) = match spec {
            Value::Object(_) => {
                let allowed: &[&str] = if prefix {
                    &["value", "case_insensitive", "rewrite", "boost", "_name"]
                } else {
                    &[
                        "value",
                        "wildcard",
                        "case_insensitive",
                        "rewrite",
                        "boost",
                        "_name",
                    ]
                };
                let o = params(name, spec, allowed, &at)?;
                let key = if o.contains_key("value") || prefix {
                    "value"
                } else {
                    "wildcard"
                };
                let v = scalar(required(o, key, name, &at)?, &at.child(key))?;
                (v, opt_bool(o, "case_insensitive", &at)?)
            }
            v => (scalar(v, &at)?, None),
        };
        let text = value.as_text().unwrap_or_default();
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        let pattern = if prefix {
            format!("{}*", escape_wildcard(&text))
        } else {
            text
        };
        Ok(Filter::Wildcard {
            field: field.to_string(),
            pattern,
            case_insensitive,
        })
    }

    /// `range`, including the old `from`/`to`/`include_lower`/
    /// `include_upper` form, read in order as Elasticsearch reads it (a
    /// later key overrides an earlier one on the same side).
    pub(super) fn range(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let (field, spec) = single_field("range", body, at)?;
        let at = at.child(field);
        let o = params(
            "range",
            spec,
            &[
                "gt",
                "gte",
                "lt",
                "lte",
                "from",
                "to",
                "include_lower",
                "include_upper",
                "format",
                "time_zone",
                "relation",
                "boost",
                "_name",
            ],
            &at,
        )?;
        let (mut from, mut to) = (None, None);
        let (mut include_lower, mut include_upper) = (true, true);
        let mut time_zone = None;
        let mut format = None;
        let bound = |v: &Value, at: &Pointer| -> Result<Option<Scalar>, DslError> {
            match v {
                Value::Null => Ok(None),
                v => scalar(v, at).map(Some),
            }
        };
        for (k, v) in o {
            let here = at.child(k);
            match k.as_str() {
                "from" => from = bound(v, &here)?,
                "to" => to = bound(v, &here)?,
                "gt" | "gte" => {
                    from = bound(v, &here)?;
                    include_lower = k == "gte";
                }
                "lt" | "lte" => {
                    to = bound(v, &here)?;
                    include_upper = k == "lte";
                }
                "include_lower" => include_lower = bool_param(v, &here)?,
                "include_upper" => include_upper = bool_param(v, &here)?,
                "time_zone" => time_zone = Some(string_param(v, &here)?.to_string()),
                "format" => format = Some(string_param(v, &here)?.to_string()),
                "relation" => {
                    let r = string_param(v, &here)?;
                    if !r.eq_ignore_ascii_case("intersects") {
                        self.unsupported(format!("a `range` query with relation `{r}`"));
                    }
                }
                _ => {}
            }
        }
        let mut bounds = Bounds::default();
        if include_lower {
            bounds.gte = from;
        } else {
            bounds.gt = from;
        }
        if include_upper {
            bounds.lte = to;
        } else {
            bounds.lt = to;
        }
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        Ok(Filter::Range {
            field: field.to_string(),
            bounds,
            time_zone,
            format,
        })
    }

    pub(super) fn exists(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let o = params("exists", body, &["field", "boost", "_name"], at)?;
        let field = string_param(required(o, "field", "exists", at)?, &at.child("field"))?;
        // Elasticsearch expands a pattern over the mapped fields; the
        // evaluator would read it as one field name.
        if field.contains('*') {
            return Ok(
                self.unsupported(format!("an `exists` query on the field pattern `{field}`"))
            );
        }
        if !self.field_ok(field) {
            return Ok(Filter::MatchNone);
        }
        Ok(Filter::exists(field))
    }

    /// `query_string` through the Lucene subset. Kibana sends a filter's
    /// `query_string` as written (no `analyze_wildcard` or time zone added),
    /// so only the query's own options apply.
    pub(super) fn query_string(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let o = params(
            "query_string",
            body,
            &[
                "query",
                "default_field",
                "fields",
                "default_operator",
                "analyzer",
                "quote_analyzer",
                "allow_leading_wildcard",
                "enable_position_increments",
                "fuzzy_max_expansions",
                "fuzziness",
                "fuzzy_prefix_length",
                "fuzzy_transpositions",
                "phrase_slop",
                "boost",
                "analyze_wildcard",
                "max_determinized_states",
                "minimum_should_match",
                "quote_field_suffix",
                "lenient",
                "time_zone",
                "rewrite",
                "auto_generate_synonyms_phrase_query",
                "type",
                "tie_breaker",
                "escape",
                "_name",
            ],
            at,
        )?;
        let query = string_param(
            required(o, "query", "query_string", at)?,
            &at.child("query"),
        )?;
        let analyze_wildcard = opt_bool(o, "analyze_wildcard", at)?;
        let time_zone = match o.get("time_zone") {
            Some(v) => Some(string_param(v, &at.child("time_zone"))?.to_string()),
            None => None,
        };
        if let Some(why) = self.query_string_limits(o, at)? {
            return Ok(self.unsupported(why));
        }
        // An empty query string matches nothing on the cluster.
        if query.trim().is_empty() {
            return Ok(Filter::MatchNone);
        }
        let opts = LuceneOptions {
            analyze_wildcard,
            time_zone,
        };
        Ok(match lucene::to_filter(query, &opts) {
            Filter::QueryString(qs) => match qs.local {
                Local::Tree(t) => *t,
                Local::Unsupported(why) => self.unsupported(why),
            },
            other => other,
        })
    }

    /// Options of a `query_string` the Lucene subset does not model: the
    /// reason, or `None` when they leave the meaning alone.
    fn query_string_limits(
        &mut self,
        o: &Map<String, Value>,
        at: &Pointer,
    ) -> Result<Option<String>, DslError> {
        let all_fields = |v: &Value| match v {
            Value::String(s) => s == "*",
            Value::Array(a) => a.len() == 1 && a[0].as_str() == Some("*"),
            _ => false,
        };
        for key in ["default_field", "fields"] {
            if let Some(v) = o.get(key) {
                if !all_fields(v) {
                    return Ok(Some(format!("a `query_string` with `{key}`")));
                }
            }
        }
        if let Some(op) = o.get("default_operator") {
            let op = string_param(op, &at.child("default_operator"))?;
            if !op.eq_ignore_ascii_case("or") {
                return Ok(Some(format!(
                    "a `query_string` with default operator `{op}`"
                )));
            }
        }
        for key in ["analyzer", "quote_analyzer"] {
            if let Some(a) = o.get(key) {
                if string_param(a, &at.child(key))? != "standard" {
                    return Ok(Some(format!("a `query_string` with `{key}`")));
                }
            }
        }
        for key in ["quote_field_suffix", "minimum_should_match"] {
            if o.contains_key(key) {
                return Ok(Some(format!("a `query_string` with `{key}`")));
            }
        }
        if o.get("phrase_slop").is_some_and(|v| v.as_u64() != Some(0)) {
            return Ok(Some("a `query_string` with `phrase_slop`".into()));
        }
        if opt_bool(o, "allow_leading_wildcard", at)? == Some(false) {
            return Ok(Some(
                "a `query_string` with `allow_leading_wildcard: false`".into(),
            ));
        }
        if opt_bool(o, "escape", at)? == Some(true) {
            return Ok(Some("a `query_string` with `escape: true`".into()));
        }
        Ok(None)
    }
}

fn opt_bool(o: &Map<String, Value>, key: &str, at: &Pointer) -> Result<Option<bool>, DslError> {
    o.get(key)
        .map(|v| bool_param(v, &at.child(key)))
        .transpose()
}

/// A literal as a wildcard pattern matching exactly it.
fn escape_wildcard(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
