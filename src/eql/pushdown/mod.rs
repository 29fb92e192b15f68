//! Pushdown: a filter over documents that keeps every event a query could
//! use, so the source can ask the cluster for less than the whole window.
//!
//! [`pushdown`] turns a query into an Elasticsearch-agnostic [`Filter`]: the
//! OR over every stage (event query, sequence stages including missing
//! stages and `until`, sample filters) of "category AND condition". The
//! filter is a **sound superset**: an event for which some stage's condition
//! is true always passes it. Where a construct cannot be translated soundly
//! (functions other than `startsWith` / `endsWith` / `stringContains` on a
//! field, arithmetic, field-to-field comparisons, `regex`, escapes in
//! patterns) that conjunct becomes [`Filter::MatchAll`] and the rest of the
//! conjunction still narrows.
//!
//! Negation follows the evaluator, which follows the query Elasticsearch
//! builds: `not` is pushed down (De Morgan, `not a < 1` is `a >= 1`), and a
//! negated leaf test (`!=`, `not in`, `not a : "x"`) is a `must_not`, true
//! where the field is missing. Such a leaf translates to match-all, never to
//! an exclusion, which also keeps the filter sound for multi-valued fields.
//!
//! The source module renders the filter to query DSL (and widens leaves the
//! index mapping cannot answer exactly); [`Filter::matches`] evaluates it in
//! memory over a JSON document for tests. [`referenced_fields`] is the
//! projection: every field the query reads.
//!
//! [`stage_filter_explained`] is the same translation that also says, for
//! `detectd explain`, which parts of a condition became match-all and why
//! ([`Unpushed`]): the reasons are recorded where the decision is made.

mod filter;

pub use filter::{
    field_values, field_values_with_nulls, parse_number, wildcard_match, Bounds, Filter, Scalar,
};

use std::collections::BTreeSet;

use super::ast::{Category, CmpOp, EventQuery, Expr, ExprKind, Literal, MatchOp, Query, QueryBody};
use super::span::Span;

/// A part of a condition the cluster is not asked to filter on: it became
/// match-all, so every event the rest of the filter lets through is
/// fetched and detectd decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpushed {
    /// The part of the query text.
    pub span: Span,
    pub reason: &'static str,
}

/// Where [`translate`] notes what it could not translate (or nowhere).
type Notes<'a> = Option<&'a mut Vec<Unpushed>>;

fn note(notes: &mut Notes<'_>, e: &Expr, reason: &'static str) -> Filter {
    if let Some(out) = notes.as_deref_mut() {
        out.push(Unpushed {
            span: e.span,
            reason,
        });
    }
    Filter::MatchAll
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
    stage_filter_with(q, event_category_field, &mut None)
}

/// [`stage_filter`], with the parts of the condition that became
/// match-all and why, in query order.
pub fn stage_filter_explained(
    q: &EventQuery,
    event_category_field: &str,
) -> (Filter, Vec<Unpushed>) {
    let mut out = Vec::new();
    let filter = stage_filter_with(q, event_category_field, &mut Some(&mut out));
    (filter, out)
}

fn stage_filter_with(q: &EventQuery, event_category_field: &str, notes: &mut Notes<'_>) -> Filter {
    let category = match &q.category {
        Category::Any(_) => Filter::MatchAll,
        // Elasticsearch matches the category with a case-sensitive term.
        Category::Named(name, _) => Filter::Term {
            field: event_category_field.to_string(),
            value: Scalar::String(name.clone()),
            case_insensitive: false,
        },
    };
    Filter::and(vec![category, translate(&q.condition, false, notes)])
}

/// A superset of the documents where `e` is true.
pub fn when_true(e: &Expr) -> Filter {
    translate(e, false, &mut None)
}

/// A superset of the documents where `not e` is true.
pub fn when_negated(e: &Expr) -> Filter {
    translate(e, true, &mut None)
}

/// `negated`: translate `not e`. Negation is pushed down the way
/// Elasticsearch's optimizer does before it builds the query (De Morgan,
/// double negation, a negated range becomes the opposite range); a negated
/// leaf test is a `must_not`, true where the field is missing, so it
/// translates to match-all rather than to anything that needs the field.
fn translate(e: &Expr, negated: bool, notes: &mut Notes<'_>) -> Filter {
    match &e.kind {
        ExprKind::Not(inner) => {
            let before = notes.as_ref().map_or(0, |n| n.len());
            let filter = translate(inner, !negated, notes);
            // What `not x` fails on is the whole `not x`, as written.
            if let Some(out) = notes.as_deref_mut() {
                for u in out.iter_mut().skip(before) {
                    if u.span == inner.span {
                        u.span = e.span;
                    }
                }
            }
            filter
        }
        ExprKind::And(a, b) if !negated => {
            Filter::and(vec![translate(a, false, notes), translate(b, false, notes)])
        }
        ExprKind::And(a, b) => {
            Filter::or(vec![translate(a, true, notes), translate(b, true, notes)])
        }
        ExprKind::Or(a, b) if !negated => {
            Filter::or(vec![translate(a, false, notes), translate(b, false, notes)])
        }
        ExprKind::Or(a, b) => {
            Filter::and(vec![translate(a, true, notes), translate(b, true, notes)])
        }
        ExprKind::Compare { op, lhs, rhs } => {
            compare(*op, lhs, rhs, negated).unwrap_or_else(|reason| note(notes, e, reason))
        }
        ExprKind::In {
            expr,
            list,
            negated: not_in,
            insensitive,
        } if negated == *not_in => {
            in_list(expr, list, *insensitive).unwrap_or_else(|reason| note(notes, e, reason))
        }
        ExprKind::Match {
            op,
            insensitive,
            expr,
            patterns,
        } if !negated => match_patterns(*op, *insensitive, expr, patterns)
            .unwrap_or_else(|reason| note(notes, e, reason)),
        ExprKind::Call {
            name,
            insensitive,
            args,
        } if !negated => string_function(name, *insensitive, args)
            .unwrap_or_else(|reason| note(notes, e, reason)),
        // Negated `in` / `:` / functions (a `must_not`): anything.
        ExprKind::In { .. } | ExprKind::Match { .. } | ExprKind::Call { .. } => note(
            notes,
            e,
            "a negated test is true where the field is missing (a must_not), so no filter can \
             require anything of the event",
        ),
        // Arithmetic, a bare field or literal as a condition: anything.
        _ => note(notes, e, "not a test of a field against constants"),
    }
}

/// `startsWith`, `endsWith`, `stringContains` of a field and a constant run
/// as queries in Elasticsearch; they are wildcards `p*`, `*p`, `*p*`.
fn string_function(name: &str, insensitive: bool, args: &[Expr]) -> Result<Filter, &'static str> {
    let shape = match name.to_ascii_lowercase().as_str() {
        "startswith" => |p: &str| format!("{p}*"),
        "endswith" => |p: &str| format!("*{p}"),
        "stringcontains" => |p: &str| format!("*{p}*"),
        _ => return Err("a function detectd evaluates itself (no query means the same)"),
    };
    let [subject, pattern] = args else {
        return Err("the function does not take a field and one constant");
    };
    let (Operand::Field(field), ExprKind::Literal(Literal::String(p))) =
        (operand(subject), &pattern.kind)
    else {
        return Err("the function does not take a field and one constant");
    };
    // A literal `*`, `?` or `\` would be a wildcard metacharacter.
    if p.contains(['*', '?', '\\']) {
        return Err(
            "the constant holds `*`, `?` or `\\`, which a wildcard query would read as a pattern",
        );
    }
    Ok(Filter::Wildcard {
        field: field.to_string(),
        pattern: shape(p),
        case_insensitive: insensitive,
    })
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

const NOT_EQUAL: &str =
    "`!=` is true where the field is missing (a must_not), so no filter can require anything of the event";

/// `lhs op rhs`, or `not (lhs op rhs)` when `negated`.
fn compare(op: CmpOp, lhs: &Expr, rhs: &Expr, negated: bool) -> Result<Filter, &'static str> {
    // Put the field on the left: `135 == port` is `port == 135`, `5 < x` is `x > 5`.
    let (field, value, op) = match (operand(lhs), operand(rhs)) {
        (Operand::Field(f), other) => (f, other, op),
        (other, Operand::Field(f)) => (f, other, op.flipped()),
        _ => return Err("compares expressions, not a field with a constant"),
    };
    // `not (a < 1)` is `a >= 1`; `not (a == 1)` is `a != 1`, a `must_not`.
    let op = if negated {
        match op {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    } else {
        op
    };
    let value = match value {
        // `f != null` needs a value; `f == null` holds where it is missing,
        // which no positive filter can say.
        Operand::Null if op == CmpOp::Ne => return Ok(exists(field)),
        Operand::Null => return Err(
            "a comparison with null holds where the field is missing, which no filter can require",
        ),
        Operand::Value(v) => v,
        // field against field, arithmetic, functions: not translatable.
        Operand::Field(_) | Operand::Other => {
            return Err("compares a field with an expression, not with a constant")
        }
    };
    let range = |bounds: Bounds| match &value {
        // Ranges over booleans are not worth translating; stay sound.
        Scalar::Bool(_) => Err("a range over booleans"),
        _ => Ok(Filter::Range {
            field: field.to_string(),
            bounds,
        }),
    };
    let v = || Some(value.clone());
    match op {
        CmpOp::Eq => Ok(Filter::Term {
            field: field.to_string(),
            value: value.clone(),
            case_insensitive: false,
        }),
        // `!=` is `must_not` of `==`: true where the field is missing.
        CmpOp::Ne => Err(NOT_EQUAL),
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

/// `f in (list)` / `f in~ (list)`.
fn in_list(expr: &Expr, list: &[Expr], insensitive: bool) -> Result<Filter, &'static str> {
    let Operand::Field(field) = operand(expr) else {
        return Err("`in` over an expression, not a field");
    };
    let mut values = Vec::with_capacity(list.len());
    for item in list {
        match operand(item) {
            Operand::Value(v) => values.push(v),
            // A null or an expression in the list: leave it to the evaluator.
            _ => return Err("the list holds null or an expression"),
        }
    }
    if values.is_empty() {
        return Err("an empty list");
    }
    if insensitive {
        // `terms` has no case_insensitive flag: one term per value.
        return Ok(Filter::or(
            values
                .into_iter()
                .map(|v| Filter::Term {
                    field: field.to_string(),
                    case_insensitive: matches!(v, Scalar::String(_)),
                    value: v,
                })
                .collect(),
        ));
    }
    Ok(Filter::Terms {
        field: field.to_string(),
        values,
    })
}

/// `f : p`, `f like p`, `f regex p` (each with pattern lists).
fn match_patterns(
    op: MatchOp,
    insensitive: bool,
    expr: &Expr,
    patterns: &[Expr],
) -> Result<Filter, &'static str> {
    let Operand::Field(field) = operand(expr) else {
        return Err("a pattern match on an expression, not a field");
    };
    let case_insensitive = insensitive || op == MatchOp::Colon;
    if op == MatchOp::Regex {
        return Err(
            "regular expressions are matched by detectd (Lucene's regexp query is not asked)",
        );
    }
    if patterns.is_empty() {
        return Err("no patterns");
    }
    let mut parts = Vec::with_capacity(patterns.len());
    for p in patterns {
        let ExprKind::Literal(Literal::String(pattern)) = &p.kind else {
            return Err("a pattern that is not a string constant");
        };
        // How an escaped `*` behaves differs between EQL and the wildcard
        // query; rather than guess, let the evaluator decide.
        if pattern.contains('\\') {
            return Err("a pattern with an escape (`\\`), which EQL and the wildcard query read differently");
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
    Ok(Filter::or(parts))
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

/// Every field an expression reads.
pub fn expr_fields(e: &Expr, out: &mut BTreeSet<String>) {
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

#[cfg(test)]
mod tests;
