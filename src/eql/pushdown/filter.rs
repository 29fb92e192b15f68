//! The pushdown [`Filter`] and its in-memory semantics.
//!
//! [`Filter::matches`] evaluates a filter over a `_source` document the way
//! the evaluator reads documents without a mapping; the source module keeps
//! every leaf whose rendering on the cluster would answer differently out of
//! the query (it widens it), so the cluster returns at least what
//! [`Filter::matches`] accepts.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

/// A scalar a leaf compares with.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl Scalar {
    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::String(s) => Value::String(s.clone()),
        }
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

/// A document filter. `Bool` matches when every `must` matches, no `must_not`
/// matches, and (if `should` is not empty) at least one `should` matches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Filter {
    MatchAll,
    /// Some value of `field` equals `value` (ASCII/Unicode case folded for
    /// strings when `case_insensitive`).
    Term {
        field: String,
        value: Scalar,
        case_insensitive: bool,
    },
    /// Some value of `field` equals one of `values` (case-sensitive).
    Terms {
        field: String,
        values: Vec<Scalar>,
    },
    /// Some string value of `field` matches `pattern` (`*` any run, `?` one
    /// character, no escapes).
    Wildcard {
        field: String,
        pattern: String,
        case_insensitive: bool,
    },
    Range {
        field: String,
        bounds: Bounds,
    },
    /// `field` has at least one non-null value.
    Exists {
        field: String,
    },
    Bool {
        must: Vec<Filter>,
        should: Vec<Filter>,
        must_not: Vec<Filter>,
    },
}

impl Filter {
    pub fn is_match_all(&self) -> bool {
        matches!(self, Filter::MatchAll)
    }

    /// AND of filters, simplified: match-all parts drop out, nested ANDs
    /// flatten.
    pub fn and(parts: Vec<Filter>) -> Filter {
        let mut must = Vec::new();
        for p in parts {
            match p {
                Filter::MatchAll => {}
                Filter::Bool {
                    must: m,
                    should,
                    must_not,
                } if should.is_empty() && must_not.is_empty() => must.extend(m),
                other => must.push(other),
            }
        }
        match must.len() {
            0 => Filter::MatchAll,
            1 => must.pop().unwrap_or(Filter::MatchAll),
            _ => Filter::Bool {
                must,
                should: Vec::new(),
                must_not: Vec::new(),
            },
        }
    }

    /// OR of filters, simplified: one match-all part makes the whole OR
    /// match-all, nested ORs flatten, and an OR of zero parts is match-all
    /// (callers only OR non-empty lists; match-all is the sound default).
    pub fn or(parts: Vec<Filter>) -> Filter {
        let mut should = Vec::new();
        for p in parts {
            match p {
                Filter::MatchAll => return Filter::MatchAll,
                Filter::Bool {
                    must,
                    should: s,
                    must_not,
                } if must.is_empty() && must_not.is_empty() && !s.is_empty() => should.extend(s),
                other => should.push(other),
            }
        }
        match should.len() {
            0 => Filter::MatchAll,
            1 => should.pop().unwrap_or(Filter::MatchAll),
            _ => Filter::Bool {
                must: Vec::new(),
                should,
                must_not: Vec::new(),
            },
        }
    }

    /// Evaluates the filter over a `_source` document with the evaluator's
    /// semantics without a mapping: multi-valued fields match if any value
    /// does, dotted names reach into objects and flat dotted keys alike,
    /// numeric and boolean strings equal the value they spell, patterns see
    /// numbers as text. The source widens every leaf whose mapping would
    /// answer differently on the cluster.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Filter::MatchAll => true,
            Filter::Term {
                field,
                value,
                case_insensitive,
            } => field_values(doc, field)
                .iter()
                .any(|v| scalar_eq(v, value, *case_insensitive)),
            Filter::Terms { field, values } => field_values(doc, field)
                .iter()
                .any(|v| values.iter().any(|t| scalar_eq(v, t, false))),
            Filter::Wildcard {
                field,
                pattern,
                case_insensitive,
            } => field_values(doc, field).iter().any(|v| {
                as_text(v).is_some_and(|s| wildcard_match(pattern, &s, *case_insensitive))
            }),
            Filter::Range { field, bounds } => field_values(doc, field)
                .iter()
                .any(|v| in_bounds(v, bounds)),
            Filter::Exists { field } => !field_values(doc, field).is_empty(),
            Filter::Bool {
                must,
                should,
                must_not,
            } => {
                must.iter().all(|f| f.matches(doc))
                    && !must_not.iter().any(|f| f.matches(doc))
                    && (should.is_empty() || should.iter().any(|f| f.matches(doc)))
            }
        }
    }

    /// Every field a leaf of the filter names.
    pub fn fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields(&self, out: &mut BTreeSet<String>) {
        match self {
            Filter::MatchAll => {}
            Filter::Term { field, .. }
            | Filter::Terms { field, .. }
            | Filter::Wildcard { field, .. }
            | Filter::Range { field, .. }
            | Filter::Exists { field } => {
                out.insert(field.clone());
            }
            Filter::Bool {
                must,
                should,
                must_not,
            } => {
                for f in must.iter().chain(should).chain(must_not) {
                    f.collect_fields(out);
                }
            }
        }
    }
}

/// The non-null scalar values at a dotted path: objects are entered both
/// as nested objects and as flat dotted keys (`{"a.b": 1}`), arrays are
/// flattened (any value can match).
pub fn field_values<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect_path(doc, path, false, &mut out);
    out
}

/// Like [`field_values`], with explicit `null`s kept (also in arrays): what
/// a projection of `_source` must carry, since a mapping's `null_value`
/// gives an explicit null a value.
pub fn field_values_with_nulls<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect_path(doc, path, true, &mut out);
    out
}

fn collect_path<'a>(v: &'a Value, path: &str, nulls: bool, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_path(i, path, nulls, out)),
        Value::Object(map) => {
            if let Some(leaf) = map.get(path) {
                collect_leaf(leaf, nulls, out);
            }
            // Every split point `head.rest` where `head` is a key.
            for (i, _) in path.match_indices('.') {
                if let Some(child) = map.get(&path[..i]) {
                    collect_path(child, &path[i + 1..], nulls, out);
                }
            }
        }
        _ => {}
    }
}

fn collect_leaf<'a>(v: &'a Value, nulls: bool, out: &mut Vec<&'a Value>) {
    match v {
        Value::Null if nulls => out.push(v),
        Value::Null | Value::Object(_) => {}
        Value::Array(items) => items.iter().for_each(|i| collect_leaf(i, nulls, out)),
        scalar => out.push(scalar),
    }
}

/// A scalar document value as text, as the evaluator matches patterns and
/// folded comparisons (numbers and booleans by their JSON text).
fn as_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// The number a string spells, as equality compares numeric strings.
pub fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// Equality as the evaluator has it without a mapping: strings exactly (or
/// folded), numbers by value, and a numeric or boolean string equal to the
/// number or boolean it spells.
fn scalar_eq(v: &Value, want: &Scalar, case_insensitive: bool) -> bool {
    if case_insensitive {
        if let Scalar::String(w) = want {
            return as_text(v).is_some_and(|s| s.to_lowercase() == w.to_lowercase());
        }
    }
    match (v, want) {
        (Value::String(s), Scalar::String(w)) => s == w,
        (Value::Number(n), Scalar::String(w)) => {
            n.as_f64().is_some_and(|x| parse_number(w) == Some(x))
        }
        (Value::Bool(b), Scalar::String(w)) => w == if *b { "true" } else { "false" },
        (Value::Bool(b), Scalar::Bool(w)) => b == w,
        (Value::String(s), Scalar::Bool(w)) => s == if *w { "true" } else { "false" },
        (v, Scalar::Int(w)) => number_of(v) == Some(*w as f64),
        (v, Scalar::Float(w)) => number_of(v) == Some(*w),
        _ => false,
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

fn cmp_scalar(v: &Value, bound: &Scalar) -> Option<std::cmp::Ordering> {
    match (v, bound) {
        (Value::String(s), Scalar::String(b)) => Some(s.as_bytes().cmp(b.as_bytes())),
        (_, Scalar::Int(b)) => number_of(v)?.partial_cmp(&(*b as f64)),
        (_, Scalar::Float(b)) => number_of(v)?.partial_cmp(b),
        (Value::Number(n), Scalar::String(b)) => n.as_f64()?.partial_cmp(&parse_number(b)?),
        _ => None,
    }
}

fn in_bounds(v: &Value, b: &Bounds) -> bool {
    use std::cmp::Ordering::*;
    let check = |bound: &Option<Scalar>, ok: &[std::cmp::Ordering]| match bound {
        None => true,
        Some(s) => cmp_scalar(v, s).is_some_and(|o| ok.contains(&o)),
    };
    check(&b.gt, &[Greater])
        && check(&b.gte, &[Greater, Equal])
        && check(&b.lt, &[Less])
        && check(&b.lte, &[Less, Equal])
}

/// `*` matches any run of characters, `?` exactly one; no escapes.
pub fn wildcard_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative glob match with single-star backtracking: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
