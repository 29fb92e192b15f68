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

/// The statically known type of an expression, independent of any mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Float,
    /// Some number: arithmetic, whose result may be an integer or a float.
    Number,
    String,
    Null,
    /// A field, or anything depending on one: the mapping decides.
    Unknown,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::Float => "double",
            Ty::Number => "number",
            Ty::String => "string",
            Ty::Null => "null",
            Ty::Unknown => "unknown",
        }
    }

    /// Can a value of this type be used where `want` is required?
    fn fits(self, want: Param) -> bool {
        match (self, want) {
            (Ty::Null | Ty::Unknown, _) | (_, Param::Any) => true,
            (Ty::String, Param::String) => true,
            (Ty::Int, Param::Int | Param::Number) => true,
            (Ty::Float | Ty::Number, Param::Number) => true,
            // Arithmetic on integers stays an integer; only a float is known not to be.
            (Ty::Number, Param::Int) => true,
            (Ty::Bool, Param::Bool) => true,
            _ => false,
        }
    }
}

/// The type a function parameter requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param {
    Any,
    Bool,
    Int,
    Number,
    String,
    /// A string that must be a constant (cidrMatch's ranges).
    ConstString,
}

struct Function {
    /// Lower-case name; Elasticsearch resolves function names case-insensitively.
    name: &'static str,
    min: usize,
    max: Option<usize>,
    /// Parameter types; the last one repeats for variadic functions.
    params: &'static [Param],
    /// Accepts the `~` suffix (Elasticsearch's `CaseInsensitiveScalarFunction`s).
    case_aware: bool,
    returns: Ty,
}

use Param as P;

/// Elasticsearch's `EqlFunctionRegistry`.
const FUNCTIONS: &[Function] = &[
    Function {
        name: "add",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "between",
        min: 3,
        max: Some(4),
        params: &[P::String, P::String, P::String, P::Bool],
        case_aware: true,
        returns: Ty::String,
    },
    Function {
        name: "cidrmatch",
        min: 2,
        max: None,
        params: &[P::String, P::ConstString],
        case_aware: false,
        returns: Ty::Bool,
    },
    Function {
        name: "concat",
        min: 1,
        max: None,
        params: &[P::Any],
        case_aware: false,
        returns: Ty::String,
    },
    Function {
        name: "divide",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "endswith",
        min: 2,
        max: Some(2),
        params: &[P::String],
        case_aware: true,
        returns: Ty::Bool,
    },
    Function {
        name: "indexof",
        min: 2,
        max: Some(3),
        params: &[P::String, P::String, P::Int],
        case_aware: true,
        returns: Ty::Int,
    },
    Function {
        name: "length",
        min: 1,
        max: Some(1),
        params: &[P::String],
        case_aware: false,
        returns: Ty::Int,
    },
    Function {
        name: "modulo",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "multiply",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "number",
        min: 1,
        max: Some(2),
        params: &[P::String, P::Int],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "startswith",
        min: 2,
        max: Some(2),
        params: &[P::String],
        case_aware: true,
        returns: Ty::Bool,
    },
    Function {
        name: "string",
        min: 1,
        max: Some(1),
        params: &[P::Any],
        case_aware: false,
        returns: Ty::String,
    },
    Function {
        name: "stringcontains",
        min: 2,
        max: Some(2),
        params: &[P::String],
        case_aware: true,
        returns: Ty::Bool,
    },
    Function {
        name: "substring",
        min: 2,
        max: Some(3),
        params: &[P::String, P::Int],
        case_aware: false,
        returns: Ty::String,
    },
    Function {
        name: "subtract",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
];

/// The spelling used in documentation, for messages.
const CANONICAL_NAMES: &[&str] = &[
    "add",
    "between",
    "cidrMatch",
    "concat",
    "divide",
    "endsWith",
    "indexOf",
    "length",
    "modulo",
    "multiply",
    "number",
    "startsWith",
    "string",
    "stringContains",
    "substring",
    "subtract",
];

fn function(name: &str) -> Option<&'static Function> {
    let lower = name.to_ascii_lowercase();
    FUNCTIONS.iter().find(|f| f.name == lower)
}

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
mod tests {
    use super::*;
    use crate::eql::parse;

    fn errors(src: &str) -> Vec<(ErrorKind, String, String)> {
        let query = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        verify(&query)
            .into_iter()
            .map(|e| (e.kind, src[e.span.range()].to_string(), e.message))
            .collect()
    }

    fn messages(src: &str) -> Vec<String> {
        errors(src).into_iter().map(|(_, _, m)| m).collect()
    }

    fn ok(src: &str) {
        assert_eq!(errors(src), vec![], "{src}");
    }

    #[test]
    fn valid_queries_have_no_errors() {
        for src in [
            "process where startsWith(process.name, \"cmd\") and length(x) > 2",
            "process where STARTSWITH~(process.name, \"CMD\") and endsWith~(a, \"b\")",
            "process where between(a, \"x\", \"y\") == \"z\" and between~(a, \"x\", \"y\", true) == \"\"",
            "process where cidrMatch(source.ip, \"10.0.0.0/8\", \"192.168.0.0/16\")",
            "process where concat(a) == \"x\" and concat(a, 1, b, null) == \"y\"",
            "process where indexOf(a, \"x\") == 1 and indexOf~(a, \"x\", 2) == 3",
            "process where number(a) == 1 and number(a, 16) == 2 and string(1) == \"1\"",
            "process where substring(a, 1) == \"x\" and substring(a, 1, -1) == \"x\"",
            "process where add(1, 2) == subtract(a, 1) and multiply(a, 2) == 4 and divide(a, 2) + modulo(a, 2) < 1.5",
            "process where stringContains~(a, \"b\")",
            "process where a == null and null == b and (a + 1) * 2 > -3",
            "process where ?x == ?y and ?a in (?b, \"c\") and a == ?b",
            "process where length(a) == 3 and startsWith(a, b)",
            "process where a",
            "process where null",
            "sequence by user.name with maxspan=1m [a where true] by x [b where true] by y until [c where true] by z | head 0",
            "sequence [a where true] with runs=2",
            "sequence with maxspan=1s [a where true] ![b where true] [c where true] with runs=100",
            "sample by host [a where true] [b where true]",
            "sample [a where true] by x [b where true] by y [c where true] by z [d where true] by w [e where true] by v",
        ] {
            ok(src);
        }
    }

    #[test]
    fn unknown_functions_suggest_close_names() {
        assert_eq!(
            errors("process where startWith(a, \"b\")"),
            vec![(
                ErrorKind::Semantic,
                "startWith(a, \"b\")".into(),
                "unknown function [startWith], did you mean [startsWith]?".into()
            )]
        );
        assert_eq!(
            messages("process where frobnicate(a)"),
            vec!["unknown function [frobnicate]"]
        );
    }

    #[test]
    fn arity() {
        let cases = [
            (
                "between(a, \"b\")",
                "function [between] expects 3 to 4 arguments, found [2]",
            ),
            (
                "between(a, \"b\", \"c\", true, 1)",
                "function [between] expects 3 to 4 arguments, found [5]",
            ),
            (
                "cidrMatch(a)",
                "function [cidrMatch] expects at least 2 arguments, found [1]",
            ),
            (
                "concat()",
                "function [concat] expects at least 1 arguments, found [0]",
            ),
            (
                "indexOf(a)",
                "function [indexOf] expects 2 to 3 arguments, found [1]",
            ),
            (
                "length(a, b)",
                "function [length] expects exactly 1 argument, found [2]",
            ),
            (
                "number(a, 1, 2)",
                "function [number] expects 1 to 2 arguments, found [3]",
            ),
            (
                "substring(a)",
                "function [substring] expects 2 to 3 arguments, found [1]",
            ),
            (
                "add(1)",
                "function [add] expects exactly 2 arguments, found [1]",
            ),
            (
                "string()",
                "function [string] expects exactly 1 argument, found [0]",
            ),
        ];
        for (call, message) in cases {
            let src = format!("process where {call} == 1");
            assert_eq!(messages(&src), vec![message.to_string()], "{src}");
        }
    }

    #[test]
    fn tilde_only_on_case_aware_functions() {
        for name in [
            "between",
            "endsWith",
            "indexOf",
            "startsWith",
            "stringContains",
        ] {
            let src = format!("process where {name}~(a, \"b\", \"c\") != null");
            let errs = messages(&src);
            assert!(
                errs.iter().all(|m| !m.contains("case-insensitive")),
                "{src}: {errs:?}"
            );
        }
        for (call, name) in [
            ("length~(a)", "length"),
            ("concat~(a)", "concat"),
            ("cidrMatch~(a, \"10.0.0.0/8\")", "cidrMatch"),
            ("number~(a)", "number"),
            ("add~(1, 2)", "add"),
        ] {
            let src = format!("process where {call} != null");
            assert_eq!(
                messages(&src),
                vec![format!(
                    "function [{name}] does not support case-insensitive matching [~]"
                )],
                "{src}"
            );
        }
    }

    #[test]
    fn argument_and_operand_types() {
        assert_eq!(
            errors("process where length(5) == 1"),
            vec![(
                ErrorKind::Semantic,
                "5".into(),
                "first argument of [length] must be [string], found [5] of type [integer]".into()
            )]
        );
        assert_eq!(
            messages("process where substring(a, 1.5) == \"x\""),
            vec!["second argument of [substring] must be [integer], found [1.5] of type [double]"]
        );
        assert_eq!(
            messages("process where cidrMatch(ip, range) and between(a, \"b\", \"c\", 1) == \"\""),
            vec![
                "second argument of [cidrMatch] must be a constant, found [range]",
                "fourth argument of [between] must be [boolean], found [1] of type [integer]",
            ]
        );
        assert_eq!(
            messages("process where \"a\" + 1 == 2 and -true == 1"),
            vec![
                "operand of [+] must be numeric, found [\"a\"] of type [string]",
                "operand of [-] must be numeric, found [true] of type [boolean]",
            ]
        );
        assert_eq!(
            messages("process where 1 and not \"x\""),
            vec![
                "operand of [and] must be boolean, found [1] of type [integer]",
                "operand of [not] must be boolean, found [\"x\"] of type [string]",
            ]
        );
        assert_eq!(
            messages("process where length(a)"),
            vec!["condition must be boolean, found [length(a)] of type [integer]"]
        );
    }

    #[test]
    fn comparisons_between_fields() {
        assert_eq!(
            errors("process where (a < 9 and b >= 7) or opcode == pid"),
            vec![(
                ErrorKind::Unsupported,
                "pid".into(),
                "comparisons against fields are not supported by Elasticsearch EQL, found [pid] in [==]"
                    .into()
            )]
        );
        assert_eq!(
            messages("process where not a + 1 > b"),
            vec!["comparisons against fields are not supported by Elasticsearch EQL, found [b] in [>]"]
        );
        assert_eq!(
            messages("process where name in (parent_name, \"SYSTEM\")"),
            vec!["comparisons against fields are not supported by Elasticsearch EQL, found [parent_name] in [name in (...)]"]
        );
        // optional fields may resolve to null, and function arguments run as scripts
        ok("process where ?x == ?y and a == ?b and stringContains(a, b)");
        ok("process where string(a == b) == \"true\"");
    }

    #[test]
    fn join_keys_must_be_fields() {
        assert_eq!(
            errors("sequence by a, length(b) [x where true] [y where true]"),
            vec![(
                ErrorKind::Unsupported,
                "length(b)".into(),
                "join keys must be field names, found [length(b)]".into()
            )]
        );
    }

    #[test]
    fn sequence_shape() {
        assert_eq!(
            messages("sequence [a where true]"),
            vec!["a sequence requires a minimum of 2 queries, found [1]"]
        );
        assert_eq!(
            messages("sequence with maxspan=1s ![a where true] ![b where true]"),
            vec!["a sequence requires at least one positive event query, found only missing events [![...]]"]
        );
        assert_eq!(
            errors("sequence [a where true] ![b where true] [c where true]"),
            vec![(
                ErrorKind::Semantic,
                "![b where true]".into(),
                "missing events [![...]] require [with maxspan] on the sequence".into()
            )]
        );
        assert_eq!(
            messages(
                "sequence with maxspan=1s [a where true] [b where true] until ![c where true] with runs=2"
            ),
            vec![
                "[until] cannot be a missing event [![...]]",
                "[until] cannot be repeated with [with runs]",
            ]
        );
        assert_eq!(
            messages("sequence with maxspan=0s [a where true] [b where true]"),
            vec!["a positive maxspan value is required, found [0s]"]
        );
        assert_eq!(
            messages("sequence [a where true] with runs=0 [b where true] with runs=101"),
            vec![
                "a positive runs value is required, found [0]",
                "a query cannot be repeated more than 100 times, found [101]",
            ]
        );
    }

    #[test]
    fn join_key_counts() {
        assert_eq!(
            errors("sequence by u [a where true] by x [b where true] by y, z"),
            vec![(
                ErrorKind::Semantic,
                "y, z".into(),
                "inconsistent number of join keys specified, expected [1] but found [2]".into()
            )]
        );
        assert_eq!(
            messages("sequence [a where true] by x [b where true] by y until [c where true]"),
            vec!["inconsistent number of join keys specified, expected [1] but found [0]"]
        );
        assert_eq!(
            messages("sample [a where true] by x [b where true]"),
            vec!["inconsistent number of join keys specified, expected [1] but found [0]"]
        );
    }

    #[test]
    fn sample_shape() {
        assert_eq!(
            messages("sample by h [a where true]"),
            vec!["a sample requires a minimum of 2 queries, found [1]"]
        );
        let six = "[a where true] ".repeat(6);
        assert_eq!(
            messages(&format!("sample by h {six}")),
            vec!["a sample must contain at most 5 queries, found [6]"]
        );
        assert_eq!(
            messages("sample [a where true] [b where true]"),
            vec!["a sample requires at least one join key ([sample by ...] or [...] by ...)"]
        );
    }

    #[test]
    fn pipe_sizes() {
        ok("process where true | head 2147483647 | tail 0");
        assert_eq!(
            messages("process where true | head 2147483648"),
            vec!["pipe [head] expects an integer up to 2147483647, found [2147483648]"]
        );
    }

    #[test]
    fn messages_quote_at_most_a_snippet() {
        let list = (0..100)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let errs = messages(&format!("process where x in ({list})"));
        assert_eq!(errs.len(), 100);
        assert_eq!(
            errs[99],
            "comparisons against fields are not supported by Elasticsearch EQL, found [f99] in [x in (...)]"
        );
        let long = format!("process where length(\"{}\") > \"a\" + 1", "x".repeat(200));
        let errs = messages(&long);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0],
            "operand of [+] must be numeric, found [\"a\"] of type [string]"
        );
        let errs = messages(&format!("process where \"{}\"", "y".repeat(200)));
        assert_eq!(
            errs[0],
            format!(
                "condition must be boolean, found [\"{}...] of type [string]",
                "y".repeat(79)
            )
        );
    }

    #[test]
    fn all_errors_are_reported_in_order() {
        let errs = messages(
            "sequence [a where foo(1)] with runs=0 [b where length(1, 2) and startsWith~(x)]",
        );
        assert_eq!(
            errs,
            vec![
                "a sequence requires a minimum of 2 queries, found [1]",
                "unknown function [foo]",
                "a positive runs value is required, found [0]",
                "operand of [and] must be boolean, found [length(1, 2)] of type [integer]",
                "function [length] expects exactly 1 argument, found [2]",
                "function [startsWith] expects exactly 2 arguments, found [1]",
            ]
        );
    }
}
