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

mod filter;

pub use filter::{field_values, wildcard_match, Bounds, Filter, Scalar};

use std::collections::BTreeSet;

use super::ast::{Category, CmpOp, EventQuery, Expr, ExprKind, Literal, MatchOp, Query, QueryBody};

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

/// A superset of the documents where `e` is true.
pub fn when_true(e: &Expr) -> Filter {
    translate(e, false)
}

/// A superset of the documents where `not e` is true.
pub fn when_negated(e: &Expr) -> Filter {
    translate(e, true)
}

/// `negated`: translate `not e`. Negation is pushed down the way
/// Elasticsearch's optimizer does before it builds the query (De Morgan,
/// double negation, a negated range becomes the opposite range); a negated
/// leaf test is a `must_not`, true where the field is missing, so it
/// translates to match-all rather than to anything that needs the field.
fn translate(e: &Expr, negated: bool) -> Filter {
    match &e.kind {
        ExprKind::Not(inner) => translate(inner, !negated),
        ExprKind::And(a, b) if !negated => {
            Filter::and(vec![translate(a, false), translate(b, false)])
        }
        ExprKind::And(a, b) => Filter::or(vec![translate(a, true), translate(b, true)]),
        ExprKind::Or(a, b) if !negated => {
            Filter::or(vec![translate(a, false), translate(b, false)])
        }
        ExprKind::Or(a, b) => Filter::and(vec![translate(a, true), translate(b, true)]),
        ExprKind::Compare { op, lhs, rhs } => compare(*op, lhs, rhs, negated),
        ExprKind::In {
            expr,
            list,
            negated: not_in,
            insensitive,
        } if negated == *not_in => in_list(expr, list, *insensitive),
        ExprKind::Match {
            op,
            insensitive,
            expr,
            patterns,
        } if !negated => match_patterns(*op, *insensitive, expr, patterns),
        ExprKind::Call {
            name,
            insensitive,
            args,
        } if !negated => string_function(name, *insensitive, args),
        // Other functions, arithmetic, literals, negated `in` / `:` /
        // functions (a `must_not`): anything.
        _ => Filter::MatchAll,
    }
}

/// `startsWith`, `endsWith`, `stringContains` of a field and a constant run
/// as queries in Elasticsearch; they are wildcards `p*`, `*p`, `*p*`.
fn string_function(name: &str, insensitive: bool, args: &[Expr]) -> Filter {
    let shape = match name.to_ascii_lowercase().as_str() {
        "startswith" => |p: &str| format!("{p}*"),
        "endswith" => |p: &str| format!("*{p}"),
        "stringcontains" => |p: &str| format!("*{p}*"),
        _ => return Filter::MatchAll,
    };
    let [subject, pattern] = args else {
        return Filter::MatchAll;
    };
    let (Operand::Field(field), ExprKind::Literal(Literal::String(p))) =
        (operand(subject), &pattern.kind)
    else {
        return Filter::MatchAll;
    };
    // A literal `*`, `?` or `\` would be a wildcard metacharacter.
    if p.contains(['*', '?', '\\']) {
        return Filter::MatchAll;
    }
    Filter::Wildcard {
        field: field.to_string(),
        pattern: shape(p),
        case_insensitive: insensitive,
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

/// `lhs op rhs`, or `not (lhs op rhs)` when `negated`.
fn compare(op: CmpOp, lhs: &Expr, rhs: &Expr, negated: bool) -> Filter {
    // Put the field on the left: `135 == port` is `port == 135`, `5 < x` is `x > 5`.
    let (field, value, op) = match (operand(lhs), operand(rhs)) {
        (Operand::Field(f), other) => (f, other, op),
        (other, Operand::Field(f)) => (f, other, op.flipped()),
        _ => return Filter::MatchAll,
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
        Operand::Null if op == CmpOp::Ne => return exists(field),
        Operand::Value(v) => v,
        // `f == null`, comparisons with null, field against field,
        // arithmetic, functions: not translatable.
        _ => return Filter::MatchAll,
    };
    let range = |bounds: Bounds| match &value {
        // Ranges over booleans are not worth translating; stay sound.
        Scalar::Bool(_) => Filter::MatchAll,
        _ => Filter::Range {
            field: field.to_string(),
            bounds,
        },
    };
    let v = || Some(value.clone());
    match op {
        CmpOp::Eq => Filter::Term {
            field: field.to_string(),
            value: value.clone(),
            case_insensitive: false,
        },
        // `!=` is `must_not` of `==`: true where the field is missing.
        CmpOp::Ne => Filter::MatchAll,
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
fn in_list(expr: &Expr, list: &[Expr], insensitive: bool) -> Filter {
    let Operand::Field(field) = operand(expr) else {
        return Filter::MatchAll;
    };
    let mut values = Vec::with_capacity(list.len());
    for item in list {
        match operand(item) {
            Operand::Value(v) => values.push(v),
            // A null or an expression in the list: leave it to the evaluator.
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
fn match_patterns(op: MatchOp, insensitive: bool, expr: &Expr, patterns: &[Expr]) -> Filter {
    let Operand::Field(field) = operand(expr) else {
        return Filter::MatchAll;
    };
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

#[cfg(test)]
mod tests;
