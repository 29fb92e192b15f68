//! Semantic checks on a parsed query, reporting every problem at once.
//!
//! What Elasticsearch's parser builders and `Verifier` reject that can be
//! decided without a mapping: unknown functions and their arity, `~` on a
//! function that is not case-aware, sequence and sample shape (stage counts,
//! `runs`, missing events, `maxspan`, join key counts), `head`/`tail` sizes,
//! non-field join keys, comparisons of two fields, and operand types that are
//! wrong whatever the mapping (`length(5)`, `1 and x`, `"a" + 1`).
//! Field types, which need a mapping, are left to the analysis pass.

use super::ast::*;
use super::error::{EqlError, ErrorKind};
use super::parser::with_stack;
use signatures::*;

mod signatures;

/// Every semantic error of `query`, ordered by position; empty when the
/// query is valid.
pub fn verify(query: &Query) -> Vec<EqlError> {
    let mut verifier = Verifier { errors: Vec::new() };
    verifier.query(query);
    // Checks run per construct; report them in reading order.
    verifier.errors.sort_by_key(|e| (e.span.start, e.span.end));
    verifier.errors
}

/// Elasticsearch sizes results with a Java `int`.
const MAX_PIPE_SIZE: u64 = i32::MAX as u64;
/// Elasticsearch: "A query cannot be repeated more than 100 times".
const MAX_RUNS: u64 = 100;
const MIN_SAMPLE_FILTERS: usize = 2;
const MAX_SAMPLE_FILTERS: usize = 5;

fn ordinal(i: usize) -> String {
    const WORDS: [&str; 8] = [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    ];
    WORDS
        .get(i)
        .map(|w| w.to_string())
        .unwrap_or_else(|| format!("argument {}", i + 1))
}

/// Levenshtein distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Elasticsearch: "Comparisons against fields are not (currently) supported".
const FIELD_COMPARISON: &str = "comparisons against fields are not supported by Elasticsearch EQL";

/// At most this many characters of an expression are quoted in a message.
const SNIPPET_CHARS: usize = 80;

/// `expr` as EQL for a message, cut after [`SNIPPET_CHARS`]: quoting whole
/// subtrees in per-item messages would make a long `in` list or argument
/// list quadratic in time and memory.
fn snippet(expr: &impl std::fmt::Display) -> String {
    struct Limited(String, usize);
    impl std::fmt::Write for Limited {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.1 == SNIPPET_CHARS {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
                self.1 += 1;
            }
            Ok(())
        }
    }
    let mut out = Limited(String::new(), 0);
    if std::fmt::write(&mut out, format_args!("{expr}")).is_err() {
        out.0.push_str("...");
    }
    out.0
}

/// Does `expr` read a field that must exist? An optional field (`?x`) that
/// is missing from the mapping becomes `null` in Elasticsearch, so it only
/// counts when it is not optional.
fn reads_required_field(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Field(field) => !field.optional,
        ExprKind::Literal(_) => false,
        ExprKind::Not(e) | ExprKind::Neg(e) => reads_required_field(e),
        ExprKind::And(l, r)
        | ExprKind::Or(l, r)
        | ExprKind::Compare { lhs: l, rhs: r, .. }
        | ExprKind::Arith { lhs: l, rhs: r, .. } => {
            reads_required_field(l) || reads_required_field(r)
        }
        ExprKind::In { expr, list, .. } => {
            reads_required_field(expr) || list.iter().any(reads_required_field)
        }
        ExprKind::Match { expr, patterns, .. } => {
            reads_required_field(expr) || patterns.iter().any(reads_required_field)
        }
        ExprKind::Call { args, .. } => args.iter().any(reads_required_field),
    }
}

fn static_type(expr: &Expr) -> Ty {
    match &expr.kind {
        ExprKind::Literal(Literal::Null) => Ty::Null,
        ExprKind::Literal(Literal::Bool(_)) => Ty::Bool,
        ExprKind::Literal(Literal::Int(_)) => Ty::Int,
        ExprKind::Literal(Literal::Float(_)) => Ty::Float,
        ExprKind::Literal(Literal::String(_)) => Ty::String,
        ExprKind::Field(_) => Ty::Unknown,
        ExprKind::Not(_)
        | ExprKind::And(..)
        | ExprKind::Or(..)
        | ExprKind::Compare { .. }
        | ExprKind::In { .. }
        | ExprKind::Match { .. } => Ty::Bool,
        ExprKind::Neg(e) => match static_type(e) {
            ty @ (Ty::Int | Ty::Float) => ty,
            _ => Ty::Number,
        },
        ExprKind::Arith { .. } => Ty::Number,
        ExprKind::Call { name, .. } => function(name).map_or(Ty::Unknown, |f| f.returns),
    }
}

struct Verifier {
    errors: Vec<EqlError>,
}

impl Verifier {
    fn error(&mut self, kind: ErrorKind, span: Span, message: impl Into<String>) {
        self.errors.push(EqlError::new(kind, span, message));
    }

    fn query(&mut self, query: &Query) {
        match &query.body {
            QueryBody::Event(q) => self.event_query(q),
            QueryBody::Sequence(s) => self.sequence(s),
            QueryBody::Sample(s) => self.sample(s),
        }
        for pipe in &query.pipes {
            let (name, n, span) = match pipe {
                Pipe::Head(n, span) => ("head", *n, *span),
                Pipe::Tail(n, span) => ("tail", *n, *span),
            };
            // Elasticsearch rejects only negative sizes (`head 0` is valid and
            // returns nothing); the grammar cannot express a negative one.
            if n > MAX_PIPE_SIZE {
                self.error(
                    ErrorKind::Semantic,
                    span,
                    format!("pipe [{name}] expects an integer up to {MAX_PIPE_SIZE}, found [{n}]"),
                );
            }
        }
    }

    fn event_query(&mut self, q: &EventQuery) {
        let condition = &q.condition;
        let ty = static_type(condition);
        if !matches!(ty, Ty::Bool | Ty::Null | Ty::Unknown) {
            self.error(
                ErrorKind::Semantic,
                condition.span,
                format!(
                    "condition must be boolean, found [{}] of type [{}]",
                    snippet(condition),
                    ty.name()
                ),
            );
        }
        self.field_comparisons(condition);
        self.expr(condition);
    }

    /// `by` keys must be fields, checked as expressions too.
    fn keys(&mut self, keys: &[Expr]) {
        for key in keys {
            if !matches!(key.kind, ExprKind::Field(_)) {
                self.error(
                    ErrorKind::Unsupported,
                    key.span,
                    format!("join keys must be field names, found [{}]", snippet(key)),
                );
            }
            self.expr(key);
        }
    }

    fn sequence(&mut self, s: &Sequence) {
        self.keys(&s.by);
        if let Some(maxspan) = &s.maxspan {
            if maxspan.value == 0 {
                self.error(
                    ErrorKind::Semantic,
                    maxspan.span,
                    format!("a positive maxspan value is required, found [{maxspan}]"),
                );
            }
        }

        let mut queries: u64 = 0;
        for stage in &s.stages {
            self.stage(stage);
            queries = queries.saturating_add(stage.runs.map_or(1, |r| r.count));
        }
        if queries < 2 {
            self.error(
                ErrorKind::Semantic,
                s.span,
                format!("a sequence requires a minimum of 2 queries, found [{queries}]"),
            );
        }
        if s.stages.iter().all(|stage| stage.missing) {
            self.error(
                ErrorKind::Semantic,
                s.span,
                "a sequence requires at least one positive event query, found only missing events [![...]]",
            );
        }
        if s.maxspan.is_none() {
            for stage in s.stages.iter().filter(|stage| stage.missing) {
                self.error(
                    ErrorKind::Semantic,
                    stage.span,
                    "missing events [![...]] require [with maxspan] on the sequence",
                );
            }
        }
        if let Some(until) = &s.until {
            self.stage(until);
            if until.missing {
                self.error(
                    ErrorKind::Semantic,
                    until.span,
                    "[until] cannot be a missing event [![...]]",
                );
            }
            if let Some(runs) = &until.runs {
                self.error(
                    ErrorKind::Semantic,
                    runs.span,
                    "[until] cannot be repeated with [with runs]",
                );
            }
        }

        // Elasticsearch counts the keys of every stage, until included.
        let stages = s.stages.iter().chain(s.until.as_deref());
        self.key_counts(stages.map(|stage| (stage.by.as_slice(), stage.span)));
    }

    fn stage(&mut self, stage: &SequenceStage) {
        self.event_query(&stage.query);
        self.keys(&stage.by);
        if let Some(runs) = &stage.runs {
            if runs.count == 0 {
                self.error(
                    ErrorKind::Semantic,
                    runs.span,
                    "a positive runs value is required, found [0]",
                );
            } else if runs.count > MAX_RUNS {
                self.error(
                    ErrorKind::Semantic,
                    runs.span,
                    format!(
                        "a query cannot be repeated more than {MAX_RUNS} times, found [{}]",
                        runs.count
                    ),
                );
            }
        }
    }

    /// Every stage or filter must name the same number of keys of its own.
    fn key_counts<'a>(&mut self, parts: impl Iterator<Item = (&'a [Expr], Span)>) {
        let mut expected = None;
        for (keys, span) in parts {
            match expected {
                None => expected = Some(keys.len()),
                Some(n) if n != keys.len() => {
                    let span = match (keys.first(), keys.last()) {
                        (Some(first), Some(last)) => first.span.to(last.span),
                        _ => span,
                    };
                    self.error(
                        ErrorKind::Semantic,
                        span,
                        format!(
                            "inconsistent number of join keys specified, expected [{n}] but found [{}]",
                            keys.len()
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn sample(&mut self, s: &Sample) {
        self.keys(&s.by);
        for filter in &s.filters {
            self.event_query(&filter.query);
            self.keys(&filter.by);
        }
        let n = s.filters.len();
        if n < MIN_SAMPLE_FILTERS {
            self.error(
                ErrorKind::Semantic,
                s.span,
                format!("a sample requires a minimum of {MIN_SAMPLE_FILTERS} queries, found [{n}]"),
            );
        } else if n > MAX_SAMPLE_FILTERS {
            self.error(
                ErrorKind::Semantic,
                s.span,
                format!("a sample must contain at most {MAX_SAMPLE_FILTERS} queries, found [{n}]"),
            );
        }
        if s.by.is_empty() && s.filters.iter().all(|f| f.by.is_empty()) {
            self.error(
                ErrorKind::Semantic,
                s.span,
                "a sample requires at least one join key ([sample by ...] or [...] by ...)",
            );
        }
        self.key_counts(s.filters.iter().map(|f| (f.by.as_slice(), f.span)));
    }

    /// Elasticsearch translates the boolean skeleton of a filter (and / or /
    /// not over comparisons) into a search query, which needs a constant on
    /// one side: "Comparisons against fields are not (currently) supported".
    /// Comparisons inside function arguments run as scripts and are fine.
    fn field_comparisons(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::And(l, r) | ExprKind::Or(l, r) => {
                self.field_comparisons(l);
                self.field_comparisons(r);
            }
            ExprKind::Not(e) => self.field_comparisons(e),
            ExprKind::Compare { op, lhs, rhs }
                if reads_required_field(lhs) && reads_required_field(rhs) =>
            {
                let message = format!(
                    "{FIELD_COMPARISON}, found [{}] in [{}]",
                    snippet(rhs),
                    op.symbol()
                );
                self.error(ErrorKind::Unsupported, rhs.span, message);
            }
            _ => {}
        }
    }

    /// Checks every node of an expression: function calls, `in` lists and
    /// operand types.
    fn expr(&mut self, expr: &Expr) {
        // Trees can be MAX_EXPR_HEIGHT tall.
        with_stack(|| self.expr_here(expr))
    }

    fn expr_here(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Literal(_) | ExprKind::Field(_) => {}
            ExprKind::Not(e) => {
                self.operand(e, "not", Param::Bool);
                self.expr(e);
            }
            ExprKind::And(l, r) | ExprKind::Or(l, r) => {
                let op = if matches!(expr.kind, ExprKind::And(..)) {
                    "and"
                } else {
                    "or"
                };
                self.operand(l, op, Param::Bool);
                self.operand(r, op, Param::Bool);
                self.expr(l);
                self.expr(r);
            }
            ExprKind::Neg(e) => {
                self.operand(e, "-", Param::Number);
                self.expr(e);
            }
            ExprKind::Arith { op, lhs, rhs } => {
                self.operand(lhs, op.symbol(), Param::Number);
                self.operand(rhs, op.symbol(), Param::Number);
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Compare { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::In { expr: e, list, .. } => {
                self.expr(e);
                for item in list {
                    if reads_required_field(item) {
                        let message = format!(
                            "{FIELD_COMPARISON}, found [{}] in [{} in (...)]",
                            snippet(item),
                            snippet(e)
                        );
                        self.error(ErrorKind::Unsupported, item.span, message);
                    }
                    self.expr(item);
                }
            }
            ExprKind::Match {
                expr: e, patterns, ..
            } => {
                self.expr(e);
                for pattern in patterns {
                    self.expr(pattern);
                }
            }
            ExprKind::Call {
                name,
                insensitive,
                args,
            } => {
                self.call(expr, name, *insensitive, args);
                for arg in args {
                    self.expr(arg);
                }
            }
        }
    }

    fn operand(&mut self, e: &Expr, op: &str, want: Param) {
        let ty = static_type(e);
        if !ty.fits(want) {
            let want = if want == Param::Bool {
                "boolean"
            } else {
                "numeric"
            };
            self.error(
                ErrorKind::Semantic,
                e.span,
                format!(
                    "operand of [{op}] must be {want}, found [{}] of type [{}]",
                    snippet(e),
                    ty.name()
                ),
            );
        }
    }

    fn call(&mut self, call: &Expr, name: &str, insensitive: bool, args: &[Expr]) {
        let Some(spec) = function(name) else {
            let lower = name.to_ascii_lowercase();
            let mut suggestions: Vec<&str> = CANONICAL_NAMES
                .iter()
                .copied()
                .filter(|known| distance(&lower, &known.to_ascii_lowercase()) <= 2)
                .collect();
            suggestions.truncate(3);
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!(", did you mean [{}]?", suggestions.join("], ["))
            };
            self.error(
                ErrorKind::Semantic,
                call.span,
                format!("unknown function [{name}]{hint}"),
            );
            return;
        };
        if insensitive && !spec.case_aware {
            self.error(
                ErrorKind::Semantic,
                call.span,
                format!("function [{name}] does not support case-insensitive matching [~]"),
            );
        }
        let n = args.len();
        let arity_ok = n >= spec.min && spec.max.is_none_or(|max| n <= max);
        if !arity_ok {
            let expected = match spec.max {
                Some(max) if max == spec.min => format!("exactly {max}"),
                Some(max) => format!("{} to {max}", spec.min),
                None => format!("at least {}", spec.min),
            };
            let plural = if spec.min == 1 && spec.max == Some(1) {
                "argument"
            } else {
                "arguments"
            };
            self.error(
                ErrorKind::Semantic,
                call.span,
                format!("function [{name}] expects {expected} {plural}, found [{n}]"),
            );
            return;
        }
        for (i, arg) in args.iter().enumerate() {
            let want = spec.params[i.min(spec.params.len() - 1)];
            let ty = static_type(arg);
            let type_ok = ty.fits(match want {
                Param::ConstString => Param::String,
                other => other,
            });
            if !type_ok {
                let want_name = match want {
                    Param::Any => "any",
                    Param::Bool => "boolean",
                    Param::Int => "integer",
                    Param::Number => "numeric",
                    Param::String | Param::ConstString => "string",
                };
                self.error(
                    ErrorKind::Semantic,
                    arg.span,
                    format!(
                        "{} argument of [{name}] must be [{want_name}], found [{}] of type [{}]",
                        ordinal(i),
                        snippet(arg),
                        ty.name()
                    ),
                );
            } else if want == Param::ConstString && reads_required_field(arg) {
                self.error(
                    ErrorKind::Semantic,
                    arg.span,
                    format!(
                        "{} argument of [{name}] must be a constant, found [{}]",
                        ordinal(i),
                        snippet(arg)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
