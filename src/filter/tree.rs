//! The filter tree: what a query language means over documents, in the
//! vocabulary of Elasticsearch's query DSL.
//!
//! Each leaf is one Elasticsearch query type (`term`, `match`,
//! `match_phrase`, `wildcard`, `range`, `exists`, ...) on one field, because
//! what a leaf selects depends on the field's mapping exactly as the query
//! type's does on the cluster (a `match` is analyzed on a `text` field and
//! exact on a `keyword`). [`super::dsl`] renders the tree as query DSL and
//! [`super::eval`] evaluates it over `_source` documents with the same
//! semantics, given the indices' [`super::FieldTypes`].
//!
//! The tree is built as written: constructors do not simplify (`Or` of one
//! clause stays an `Or`), so a front end that must send exactly what Kibana
//! sends can; [`Filter::and`] and [`Filter::or`] are the simplifying
//! helpers.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

/// A value a leaf compares with, as it is sent in the query DSL.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl Scalar {
    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::String(s) => Value::String(s.clone()),
        }
    }

    /// The value as Elasticsearch reads it where a string is expected (a
    /// keyword term, text to analyze): JSON's spelling of numbers and
    /// booleans. `None` for null.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Float(f) => Some(Scalar::Float(*f).to_json().to_string()),
            Scalar::String(s) => Some(s.clone()),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Scalar {
        Scalar::String(s.to_string())
    }
}

/// Bounds of a range; `None` = unbounded on that side.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Bounds {
    pub gt: Option<Scalar>,
    pub gte: Option<Scalar>,
    pub lt: Option<Scalar>,
    pub lte: Option<Scalar>,
}

/// A `query_string` query as sent to the cluster, and what it means locally.
///
/// The cluster parses `query` with Lucene's classic syntax; detectd does not
/// re-parse it here. The front end that wrote it says what it selects
/// ([`Local::Tree`]) or why that cannot be known offline
/// ([`Local::Unsupported`], an error when evaluated, never a guess).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryString {
    pub query: String,
    /// Empty: the index's default fields (`*`).
    pub fields: Vec<String>,
    pub analyze_wildcard: Option<bool>,
    pub time_zone: Option<String>,
    pub local: Local,
}

/// A query sent to the cluster exactly as someone else wrote it (a Kibana
/// filter's query, the filter Kibana builds from exception lists), and
/// what it means locally.
///
/// Rendering gives back `dsl` untouched, so the cluster receives byte for
/// byte what Kibana would send; [`Local`] says what it selects, as read by
/// the front end that made it ([`crate::querydsl`]), or why that cannot be
/// known offline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verbatim {
    pub dsl: Value,
    pub local: Local,
}

/// The local meaning of a passthrough query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Local {
    Tree(Box<Filter>),
    Unsupported(String),
}

/// A document filter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Filter {
    MatchAll,
    MatchNone,
    /// Every clause matches (`bool.filter`).
    And(Vec<Filter>),
    /// At least one clause matches (`bool.should`, `minimum_should_match:
    /// 1`); an empty `Or` matches nothing.
    Or(Vec<Filter>),
    /// The clause does not match (`bool.must_not`); true where the field is
    /// missing.
    Not(Box<Filter>),
    /// `term`: some indexed term of `field` equals `value` (not analyzed).
    /// `case_insensitive` is sent only when set.
    Term {
        field: String,
        value: Scalar,
        case_insensitive: Option<bool>,
    },
    /// `terms`: some indexed term equals one of `values`.
    Terms {
        field: String,
        values: Vec<Scalar>,
    },
    /// `match` (operator `or`): on `text` the query is analyzed and any of
    /// its tokens matches; on other types it is one exact, typed term.
    Match {
        field: String,
        query: Scalar,
    },
    /// `match_phrase`: on `text` the query's tokens appear consecutively in
    /// one value; on other types an exact, typed term.
    MatchPhrase {
        field: String,
        query: Scalar,
    },
    /// `multi_match` over the index's default fields (`*`).
    MultiMatch {
        query: Scalar,
        phrase: bool,
        lenient: bool,
    },
    /// `wildcard`: Lucene wildcard syntax (`*`, `?`, `\` escapes) against
    /// each indexed term as is (a `text` field's tokens, a keyword's value).
    Wildcard {
        field: String,
        pattern: String,
        case_insensitive: Option<bool>,
    },
    /// One wildcard term of a `query_string` on `field` (`*` expands to every
    /// field, leniently): the pattern goes through the field's normalizer
    /// first (lowercased for `text`). With `analyze` (`analyze_wildcard`) a
    /// `text` field's analyzer splits the pattern; only patterns it would
    /// leave whole evaluate offline. Renders as a `query_string`.
    QueryStringWildcard {
        field: String,
        pattern: String,
        analyze: bool,
    },
    Range {
        field: String,
        bounds: Bounds,
        time_zone: Option<String>,
        format: Option<String>,
    },
    /// `exists`: the field has an indexed value.
    Exists {
        field: String,
    },
    /// `nested`: some object at `path` matches `query` on its own.
    Nested {
        path: String,
        query: Box<Filter>,
        ignore_unmapped: Option<bool>,
    },
    QueryString(QueryString),
    Verbatim(Verbatim),
}

impl Filter {
    pub fn term(field: &str, value: impl Into<Scalar>) -> Filter {
        Filter::Term {
            field: field.to_string(),
            value: value.into(),
            case_insensitive: None,
        }
    }

    pub fn exists(field: &str) -> Filter {
        Filter::Exists {
            field: field.to_string(),
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(f: Filter) -> Filter {
        Filter::Not(Box::new(f))
    }

    /// AND of filters, simplified: match-all parts drop out, nested ANDs
    /// flatten, a match-none part makes the whole match-none.
    pub fn and(parts: Vec<Filter>) -> Filter {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Filter::MatchAll => {}
                Filter::MatchNone => return Filter::MatchNone,
                Filter::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::MatchAll,
            1 => out.pop().unwrap_or(Filter::MatchAll),
            _ => Filter::And(out),
        }
    }

    /// OR of filters, simplified: a match-all part makes the whole
    /// match-all, match-none parts drop out, nested ORs flatten; an OR of
    /// nothing matches nothing.
    pub fn or(parts: Vec<Filter>) -> Filter {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Filter::MatchAll => return Filter::MatchAll,
                Filter::MatchNone => {}
                Filter::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::MatchNone,
            1 => out.pop().unwrap_or(Filter::MatchNone),
            _ => Filter::Or(out),
        }
    }

    pub fn is_match_all(&self) -> bool {
        matches!(self, Filter::MatchAll)
    }

    /// Every field a leaf names (nested leaves by their full name; `*` for
    /// the all-fields leaves).
    pub fn fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields(&self, out: &mut BTreeSet<String>) {
        match self {
            Filter::MatchAll | Filter::MatchNone => {}
            Filter::MultiMatch { .. } => {
                out.insert("*".to_string());
            }
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|f| f.collect_fields(out)),
            Filter::Not(f) => f.collect_fields(out),
            Filter::Nested { query, .. } => query.collect_fields(out),
            Filter::QueryString(qs) => match &qs.local {
                Local::Tree(t) => t.collect_fields(out),
                Local::Unsupported(_) if qs.fields.is_empty() => {
                    out.insert("*".to_string());
                }
                Local::Unsupported(_) => out.extend(qs.fields.iter().cloned()),
            },
            // Unknown meaning, unknown fields: all of them.
            Filter::Verbatim(v) => match &v.local {
                Local::Tree(t) => t.collect_fields(out),
                Local::Unsupported(_) => {
                    out.insert("*".to_string());
                }
            },
            Filter::Term { field, .. }
            | Filter::Terms { field, .. }
            | Filter::Match { field, .. }
            | Filter::MatchPhrase { field, .. }
            | Filter::Wildcard { field, .. }
            | Filter::QueryStringWildcard { field, .. }
            | Filter::Range { field, .. }
            | Filter::Exists { field } => {
                out.insert(field.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplifying_helpers() {
        let t = Filter::term("a", "x");
        assert_eq!(Filter::and(vec![Filter::MatchAll, t.clone()]), t);
        assert_eq!(
            Filter::and(vec![t.clone(), Filter::MatchNone]),
            Filter::MatchNone
        );
        assert_eq!(Filter::or(vec![]), Filter::MatchNone);
        assert_eq!(
            Filter::or(vec![t.clone(), Filter::MatchAll]),
            Filter::MatchAll
        );
        assert_eq!(
            Filter::or(vec![Filter::Or(vec![t.clone(), t.clone()]), t.clone()]),
            Filter::Or(vec![t.clone(), t.clone(), t])
        );
    }

    #[test]
    fn scalar_text() {
        assert_eq!(Scalar::Float(1.5).as_text().as_deref(), Some("1.5"));
        assert_eq!(Scalar::Int(-3).as_text().as_deref(), Some("-3"));
        assert_eq!(Scalar::Null.as_text(), None);
    }
}
