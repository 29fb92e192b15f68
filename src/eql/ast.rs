//! The EQL syntax tree, exactly as written (no resolution, no typing).
//!
//! The parser produces it, [`std::fmt::Display`] prints it back as canonical
//! EQL, and the analysis pass lowers it into an executable plan. Every node
//! has a [`Span`] into the query text. Derived equality compares spans too;
//! use [`Query::eq_ignoring_spans`] to compare trees parsed from different
//! texts (the round-trip property `parse(print(ast)) == ast`).

use serde::{Deserialize, Serialize};

pub use super::span::Span;

/// A whole query: an event query, a sequence or a sample, then pipes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub body: QueryBody,
    pub pipes: Vec<Pipe>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueryBody {
    Event(EventQuery),
    Sequence(Sequence),
    Sample(Sample),
}

/// `<category> where <condition>`; `any where ...` has category `Any`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventQuery {
    pub category: Category,
    pub condition: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Category {
    Any(Span),
    /// A category name as written (an identifier or a quoted string).
    Named(String, Span),
}

/// `sequence [by k, ...] [with maxspan=N<unit>] stage... [until stage]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Sequence-level join keys (`sequence by a, b`), applied to every stage.
    pub by: Vec<Expr>,
    pub maxspan: Option<TimeSpan>,
    pub stages: Vec<SequenceStage>,
    pub until: Option<Box<SequenceStage>>,
    pub span: Span,
}

/// One `[...]` (or `![...]`) stage with its per-stage `by` and `with runs=N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceStage {
    pub query: EventQuery,
    pub by: Vec<Expr>,
    /// `with runs=N` repeats the stage N times (1..=100 in Elasticsearch).
    pub runs: Option<Runs>,
    /// `![...]`: a missing-event stage.
    pub missing: bool,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runs {
    pub count: u64,
    pub span: Span,
}

/// `sample by k, ... [filter] [filter] ...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub by: Vec<Expr>,
    pub filters: Vec<SampleFilter>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleFilter {
    pub query: EventQuery,
    pub by: Vec<Expr>,
    pub span: Span,
}

/// A duration such as `5s`, `500ms`, `1h` in `with maxspan=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSpan {
    pub value: u64,
    pub unit: TimeUnit,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeUnit {
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    pub fn millis(self) -> u64 {
        match self {
            TimeUnit::Millis => 1,
            TimeUnit::Seconds => 1_000,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millis => "ms",
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "m",
            TimeUnit::Hours => "h",
            TimeUnit::Days => "d",
        }
    }
}

impl TimeSpan {
    /// The span in milliseconds, saturating on overflow.
    pub fn millis(&self) -> u64 {
        self.value.saturating_mul(self.unit.millis())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pipe {
    Head(u64, Span),
    Tail(u64, Span),
}

/// An expression node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ExprKind {
    Literal(Literal),
    Field(Field),
    Not(Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Compare {
        op: CmpOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `+ - * / %`.
    Arith {
        op: ArithOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `x in (a, b)`, `x not in (...)`, `x in~ (...)`, `x not in~ (...)`.
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        insensitive: bool,
    },
    /// `x : "a*"`, `x : ("a", "b")`, `x like "a*"`, `x like~ (...)`,
    /// `x regex "..."`, `x regex~ (...)`. `:` is always case-insensitive;
    /// `insensitive` is the `~` of `like~` / `regex~` and is true for `:`.
    /// A single pattern prints without parentheses, several with.
    Match {
        op: MatchOp,
        insensitive: bool,
        expr: Box<Expr>,
        patterns: Vec<Expr>,
    },
    /// A function call. `name` is as written (`startsWith`, `startswith`);
    /// `insensitive` is the `~` suffix.
    Call {
        name: String,
        insensitive: bool,
        args: Vec<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// The string value after escape processing (raw strings verbatim).
    String(String),
}

/// A field reference. `name` is the dotted path with backquotes removed
/// (`` a.`b-c`.d `` is `a.b-c.d`); `optional` is the `?` prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchOp {
    /// `:` — wildcard match, always case-insensitive.
    Colon,
    /// `like` / `like~` — wildcard match.
    Like,
    /// `regex` / `regex~` — Lucene regular expression, whole-string.
    Regex,
}

// Span-insensitive equality: compare clones whose spans are all zeroed, so
// `parse(print(ast))` can be compared with `ast` although every offset moved.

impl Query {
    /// Structural equality that ignores every span.
    pub fn eq_ignoring_spans(&self, other: &Query) -> bool {
        self.without_spans() == other.without_spans()
    }

    /// A copy with every span set to `0..0`.
    pub fn without_spans(&self) -> Query {
        let mut copy = self.clone();
        copy.clear_spans();
        copy
    }

    fn clear_spans(&mut self) {
        self.span = Span::default();
        match &mut self.body {
            QueryBody::Event(q) => q.clear_spans(),
            QueryBody::Sequence(s) => {
                s.span = Span::default();
                Expr::clear_all(&mut s.by);
                if let Some(maxspan) = &mut s.maxspan {
                    maxspan.span = Span::default();
                }
                for stage in s.stages.iter_mut().chain(s.until.as_deref_mut()) {
                    stage.clear_spans();
                }
            }
            QueryBody::Sample(s) => {
                s.span = Span::default();
                Expr::clear_all(&mut s.by);
                for filter in &mut s.filters {
                    filter.span = Span::default();
                    filter.query.clear_spans();
                    Expr::clear_all(&mut filter.by);
                }
            }
        }
        for pipe in &mut self.pipes {
            match pipe {
                Pipe::Head(_, span) | Pipe::Tail(_, span) => *span = Span::default(),
            }
        }
    }
}

impl SequenceStage {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.query.clear_spans();
        Expr::clear_all(&mut self.by);
        if let Some(runs) = &mut self.runs {
            runs.span = Span::default();
        }
    }
}

impl EventQuery {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        match &mut self.category {
            Category::Any(span) | Category::Named(_, span) => *span = Span::default(),
        }
        self.condition.clear_spans();
    }
}

impl Expr {
    /// Structural equality that ignores every span.
    pub fn eq_ignoring_spans(&self, other: &Expr) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.clear_spans();
        b.clear_spans();
        a == b
    }

    fn clear_all(exprs: &mut [Expr]) {
        for expr in exprs {
            expr.clear_spans();
        }
    }

    fn clear_spans(&mut self) {
        self.span = Span::default();
        match &mut self.kind {
            ExprKind::Literal(_) | ExprKind::Field(_) => {}
            ExprKind::Not(e) | ExprKind::Neg(e) => e.clear_spans(),
            ExprKind::And(l, r)
            | ExprKind::Or(l, r)
            | ExprKind::Compare { lhs: l, rhs: r, .. }
            | ExprKind::Arith { lhs: l, rhs: r, .. } => {
                l.clear_spans();
                r.clear_spans();
            }
            ExprKind::In { expr, list, .. } => {
                expr.clear_spans();
                Expr::clear_all(list);
            }
            ExprKind::Match { expr, patterns, .. } => {
                expr.clear_spans();
                Expr::clear_all(patterns);
            }
            ExprKind::Call { args, .. } => Expr::clear_all(args),
        }
    }
}
