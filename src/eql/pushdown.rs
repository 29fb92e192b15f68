//! Pushdown: a filter over documents that keeps every event a query could
//! use, so the source can ask the cluster for less than the whole window.
//!
//! [`pushdown`] turns a query into an Elasticsearch-agnostic [`Filter`]: the
//! OR over every stage (event query, sequence stages including missing
//! stages and `until`, sample filters) of "category AND condition". The
//! filter is a **sound superset**: an event for which some stage's condition
//! is true always passes it. Where a construct cannot be translated soundly
//! (functions, arithmetic, field-to-field comparisons, `regex`, escapes in
//! patterns) that conjunct becomes [`Filter::MatchAll`] and the rest of the
//! conjunction still narrows.
//!
//! Negation follows EQL's three-valued logic: a comparison with a missing
//! field is null, and `not null` is null, so `not (a == "x")` can only be
//! true where `a` exists. The translation therefore computes two filters per
//! expression: a superset of where it is *true* and a superset of where it is
//! *false*; `not` swaps them. Negations never become `must_not` clauses,
//! which keeps the filter sound for multi-valued fields whatever the
//! evaluator decides about them.
//!
//! The source module renders the filter to query DSL (and widens leaves the
//! index mapping cannot answer exactly); [`Filter::matches`] evaluates it in
//! memory over a JSON document for tests. [`referenced_fields`] is the
//! projection: every field the query reads.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::ast::{Category, CmpOp, EventQuery, Expr, ExprKind, Literal, MatchOp, Query, QueryBody};

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

    /// Evaluates the filter over a `_source` document, with the semantics
    /// the rendered query has on a cluster whose mapping indexes every leaf
    /// field with its JSON type (keyword for strings, numbers as numbers):
    /// multi-valued fields match if any value does, dotted names reach into
    /// objects and flat dotted keys alike, strings never equal numbers.
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
            } => field_values(doc, field).iter().any(|v| match v {
                Value::String(s) => wildcard_match(pattern, s, *case_insensitive),
                _ => false,
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

/// The filter for a whole query: OR over its stages of (category AND
/// condition). `event_category_field` is the rule's (default `event.category`).
pub fn pushdown(query: &Query, event_category_field: &str) -> Filter {
    match &query.body {
        QueryBody::Event(q) => stage_filter(q, event_category_field),
        QueryBody::Sequence(seq) => {
            // Missing-event and `until` stages decide whether a sequence is
            // emitted, so their events must be fetched too.
            let stages = seq
                .stages
                .iter()
                .chain(seq.until.as_deref())
                .map(|s| stage_filter(&s.query, event_category_field))
                .collect();
            Filter::or(stages)
        }
        QueryBody::Sample(sample) => Filter::or(
            sample
                .filters
                .iter()
                .map(|f| stage_filter(&f.query, event_category_field))
                .collect(),
        ),
    }
}

/// The filter of one `category where condition`.
pub fn stage_filter(q: &EventQuery, event_category_field: &str) -> Filter {
    let category = match &q.category {
        Category::Any(_) => Filter::MatchAll,
        // Elasticsearch matches the category with a case-sensitive term.
        Category::Named(name, _) => Filter::Term {
            field: event_category_field.to_string(),
            value: Scalar::String(name.clone()),
            case_insensitive: false,
        },
    };
    Filter::and(vec![category, when_true(&q.condition)])
}

/// A superset of the documents where `e` evaluates to true.
pub fn when_true(e: &Expr) -> Filter {
    match &e.kind {
        ExprKind::Not(inner) => when_false(inner),
        ExprKind::And(a, b) => Filter::and(vec![when_true(a), when_true(b)]),
        ExprKind::Or(a, b) => Filter::or(vec![when_true(a), when_true(b)]),
        ExprKind::Compare { op, lhs, rhs } => compare(*op, lhs, rhs, true),
        ExprKind::In {
            expr,
            list,
            negated,
            insensitive,
        } => in_list(expr, list, *insensitive, !*negated),
        ExprKind::Match {
            op,
            insensitive,
            expr,
            patterns,
        } => match_patterns(*op, *insensitive, expr, patterns, true),
        _ => Filter::MatchAll,
    }
}

/// A superset of the documents where `e` evaluates to false (not null).
pub fn when_false(e: &Expr) -> Filter {
    match &e.kind {
        ExprKind::Not(inner) => when_true(inner),
        // `a and b` is false when either is false.
        ExprKind::And(a, b) => Filter::or(vec![when_false(a), when_false(b)]),
        ExprKind::Or(a, b) => Filter::and(vec![when_false(a), when_false(b)]),
        ExprKind::Compare { op, lhs, rhs } => compare(*op, lhs, rhs, false),
        ExprKind::In {
            expr,
            list,
            negated,
            insensitive,
        } => in_list(expr, list, *insensitive, *negated),
        ExprKind::Match {
            op,
            insensitive,
            expr,
            patterns,
        } => match_patterns(*op, *insensitive, expr, patterns, false),
        _ => Filter::MatchAll,
    }
}

/// A literal operand, with unary minus folded into numbers.
enum Operand<'a> {
    Field(&'a str),
    Null,
    Value(Scalar),
    Other,
}

fn operand(e: &Expr) -> Operand<'_> {
    match &e.kind {
        ExprKind::Field(f) => Operand::Field(&f.name),
        ExprKind::Literal(lit) => match lit {
            Literal::Null => Operand::Null,
            Literal::Bool(b) => Operand::Value(Scalar::Bool(*b)),
            Literal::Int(i) => Operand::Value(Scalar::Int(*i)),
            Literal::Float(f) if f.is_finite() => Operand::Value(Scalar::Float(*f)),
            Literal::Float(_) => Operand::Other,
            Literal::String(s) => Operand::Value(Scalar::String(s.clone())),
        },
        ExprKind::Neg(inner) => match &inner.kind {
            ExprKind::Literal(Literal::Int(i)) => i
                .checked_neg()
                .map_or(Operand::Other, |n| Operand::Value(Scalar::Int(n))),
            ExprKind::Literal(Literal::Float(f)) if f.is_finite() => {
                Operand::Value(Scalar::Float(-f))
            }
            _ => Operand::Other,
        },
        _ => Operand::Other,
    }
}

fn exists(field: &str) -> Filter {
    Filter::Exists {
        field: field.to_string(),
    }
}

/// `lhs op rhs` true (`want_true`) or false.
fn compare(op: CmpOp, lhs: &Expr, rhs: &Expr, want_true: bool) -> Filter {
    // Put the field on the left: `135 == port` is `port == 135`, `5 < x` is `x > 5`.
    let (field, value, op) = match (operand(lhs), operand(rhs)) {
        (Operand::Field(f), other) => (f, other, op),
        (other, Operand::Field(f)) => (f, other, flip(op)),
        _ => return Filter::MatchAll,
    };
    let value = match value {
        Operand::Null => {
            // `f == null` is true where f is missing (no positive filter for
            // that) and false where it exists; `f != null` the other way.
            return match (op, want_true) {
                (CmpOp::Eq, false) | (CmpOp::Ne, true) => exists(field),
                _ => Filter::MatchAll,
            };
        }
        Operand::Value(v) => v,
        // Field against field, arithmetic, function: not translatable.
        Operand::Field(_) | Operand::Other => return Filter::MatchAll,
    };
    let field_s = field.to_string();
    let term = |v: Scalar| Filter::Term {
        field: field_s.clone(),
        value: v,
        case_insensitive: false,
    };
    let range = |bounds: Bounds| match (&value, bounds) {
        // Ranges over booleans mean nothing useful; stay sound.
        (Scalar::Bool(_), _) => exists(field),
        (_, b) => Filter::Range {
            field: field.to_string(),
            bounds: b,
        },
    };
    let v = || Some(value.clone());
    if !want_true {
        // A comparison is false only where the field has a value. Nothing
        // narrower is claimed: whether mixed types or multi-values compare
        // false or null is the evaluator's business, and `exists` is a
        // superset either way.
        return exists(field);
    }
    match op {
        CmpOp::Eq => term(value.clone()),
        // A non-null comparison result needs the field.
        CmpOp::Ne => exists(field),
        CmpOp::Lt => range(Bounds {
            lt: v(),
            ..Bounds::default()
        }),
        CmpOp::Le => range(Bounds {
            lte: v(),
            ..Bounds::default()
        }),
        CmpOp::Gt => range(Bounds {
            gt: v(),
            ..Bounds::default()
        }),
        CmpOp::Ge => range(Bounds {
            gte: v(),
            ..Bounds::default()
        }),
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// `f in (list)` true (`want_true`) or false.
fn in_list(expr: &Expr, list: &[Expr], insensitive: bool, want_true: bool) -> Filter {
    let Operand::Field(field) = operand(expr) else {
        return Filter::MatchAll;
    };
    if !want_true {
        return exists(field);
    }
    let mut values = Vec::with_capacity(list.len());
    for item in list {
        match operand(item) {
            Operand::Value(v) => values.push(v),
            // `f in (null, ...)`: true for a missing f; a field or
            // expression in the list: anything.
            _ => return Filter::MatchAll,
        }
    }
    if values.is_empty() {
        return Filter::MatchAll;
    }
    if insensitive {
        // `terms` has no case_insensitive flag: one term per value.
        return Filter::or(
            values
                .into_iter()
                .map(|v| Filter::Term {
                    field: field.to_string(),
                    case_insensitive: matches!(v, Scalar::String(_)),
                    value: v,
                })
                .collect(),
        );
    }
    Filter::Terms {
        field: field.to_string(),
        values,
    }
}

/// `f : p`, `f like p`, `f regex p` (each with pattern lists).
fn match_patterns(
    op: MatchOp,
    insensitive: bool,
    expr: &Expr,
    patterns: &[Expr],
    want_true: bool,
) -> Filter {
    let Operand::Field(field) = operand(expr) else {
        return Filter::MatchAll;
    };
    if !want_true {
        return exists(field);
    }
    let case_insensitive = insensitive || op == MatchOp::Colon;
    if op == MatchOp::Regex || patterns.is_empty() {
        return Filter::MatchAll;
    }
    let mut parts = Vec::with_capacity(patterns.len());
    for p in patterns {
        let ExprKind::Literal(Literal::String(pattern)) = &p.kind else {
            return Filter::MatchAll;
        };
        // How an escaped `*` behaves differs between EQL and the wildcard
        // query; rather than guess, let the evaluator decide.
        if pattern.contains('\\') {
            return Filter::MatchAll;
        }
        if pattern.contains(['*', '?']) {
            parts.push(Filter::Wildcard {
                field: field.to_string(),
                pattern: pattern.clone(),
                case_insensitive,
            });
        } else {
            parts.push(Filter::Term {
                field: field.to_string(),
                value: Scalar::String(pattern.clone()),
                case_insensitive,
            });
        }
    }
    Filter::or(parts)
}

/// Every field the query reads: conditions, join keys, function arguments,
/// plus the category field when a stage names a category. The caller adds
/// the timestamp and tiebreaker fields.
pub fn referenced_fields(query: &Query, event_category_field: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let stage = |q: &EventQuery, out: &mut BTreeSet<String>| {
        if matches!(q.category, Category::Named(..)) {
            out.insert(event_category_field.to_string());
        }
        expr_fields(&q.condition, out);
    };
    match &query.body {
        QueryBody::Event(q) => stage(q, &mut out),
        QueryBody::Sequence(seq) => {
            for k in &seq.by {
                expr_fields(k, &mut out);
            }
            for s in seq.stages.iter().chain(seq.until.as_deref()) {
                stage(&s.query, &mut out);
                for k in &s.by {
                    expr_fields(k, &mut out);
                }
            }
        }
        QueryBody::Sample(sample) => {
            for k in &sample.by {
                expr_fields(k, &mut out);
            }
            for f in &sample.filters {
                stage(&f.query, &mut out);
                for k in &f.by {
                    expr_fields(k, &mut out);
                }
            }
        }
    }
    out
}

fn expr_fields(e: &Expr, out: &mut BTreeSet<String>) {
    match &e.kind {
        ExprKind::Literal(_) => {}
        ExprKind::Field(f) => {
            out.insert(f.name.clone());
        }
        ExprKind::Not(a) | ExprKind::Neg(a) => expr_fields(a, out),
        ExprKind::And(a, b)
        | ExprKind::Or(a, b)
        | ExprKind::Compare { lhs: a, rhs: b, .. }
        | ExprKind::Arith { lhs: a, rhs: b, .. } => {
            expr_fields(a, out);
            expr_fields(b, out);
        }
        ExprKind::In { expr, list, .. } => {
            expr_fields(expr, out);
            list.iter().for_each(|x| expr_fields(x, out));
        }
        ExprKind::Match { expr, patterns, .. } => {
            expr_fields(expr, out);
            patterns.iter().for_each(|x| expr_fields(x, out));
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|x| expr_fields(x, out)),
    }
}

/// The non-null scalar values at a dotted path: objects are entered both
/// as nested objects and as flat dotted keys (`{"a.b": 1}`), arrays are
/// flattened (any value can match).
pub fn field_values<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect_path(doc, path, &mut out);
    out
}

fn collect_path<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_path(i, path, out)),
        Value::Object(map) => {
            if let Some(leaf) = map.get(path) {
                collect_leaf(leaf, out);
            }
            // Every split point `head.rest` where `head` is a key.
            for (i, _) in path.match_indices('.') {
                if let Some(child) = map.get(&path[..i]) {
                    collect_path(child, &path[i + 1..], out);
                }
            }
        }
        _ => {}
    }
}

fn collect_leaf<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Null | Value::Object(_) => {}
        Value::Array(items) => items.iter().for_each(|i| collect_leaf(i, out)),
        scalar => out.push(scalar),
    }
}

fn scalar_eq(v: &Value, want: &Scalar, case_insensitive: bool) -> bool {
    match (v, want) {
        (Value::String(s), Scalar::String(w)) => {
            if case_insensitive {
                s.to_lowercase() == w.to_lowercase()
            } else {
                s == w
            }
        }
        (Value::Bool(b), Scalar::Bool(w)) => b == w,
        (Value::Number(n), Scalar::Int(w)) => n.as_f64() == Some(*w as f64),
        (Value::Number(n), Scalar::Float(w)) => n.as_f64() == Some(*w),
        _ => false,
    }
}

fn cmp_scalar(v: &Value, bound: &Scalar) -> Option<std::cmp::Ordering> {
    match (v, bound) {
        (Value::Number(n), Scalar::Int(b)) => n.as_f64()?.partial_cmp(&(*b as f64)),
        (Value::Number(n), Scalar::Float(b)) => n.as_f64()?.partial_cmp(b),
        (Value::String(s), Scalar::String(b)) => Some(s.as_str().cmp(b.as_str())),
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

#[cfg(test)]
#[path = "pushdown_tests.rs"]
mod tests;
