//! What compiling produces: the [`Plan`] of a query, its [`Stage`]s and join
//! keys, and the compiled expressions ([`CExpr`]) and conditions ([`Pred`])
//! that `eval` runs against events.

use super::*;

/// Which fields carry time, order and category.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub timestamp_field: String,
    pub tiebreaker_field: Option<String>,
    pub event_category_field: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            timestamp_field: "@timestamp".into(),
            tiebreaker_field: None,
            event_category_field: "event.category".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanKind {
    Event,
    Sequence,
    Sample,
}

/// An executable query.
#[derive(Clone, Debug)]
pub struct Plan {
    pub kind: PlanKind,
    pub stages: Vec<Stage>,
    pub until: Option<Stage>,
    pub maxspan_ms: Option<u64>,
    pub pipes: Vec<Pipe>,
    pub(super) fields: FieldTable,
}

impl Plan {
    /// Every field the plan reads (conditions, keys, timestamp, tiebreaker,
    /// category), for fetch projection and event building.
    pub fn fields(&self) -> &FieldTable {
        &self.fields
    }

    /// Builds an event from `_source` with this plan's fields.
    pub fn event(&self, source: &serde_json::Value) -> Event {
        self.fields.build_event(source)
    }
}

/// One stage: a category filter, a condition and join keys.
#[derive(Clone, Debug)]
pub struct Stage {
    /// `None` for `any`.
    pub category: Option<Box<str>>,
    pub(crate) category_slot: usize,
    pub(crate) predicate: Pred,
    /// Sequence/sample-level keys first, then the stage's own.
    pub keys: Vec<JoinKey>,
    /// `with runs=N` (1 when absent).
    pub runs: u64,
    /// `![...]`.
    pub missing: bool,
    pub span: Span,
}

/// One join key expression.
#[derive(Clone, Debug)]
pub struct JoinKey {
    pub(crate) expr: CExpr,
    /// `?field`: a null/missing value is a null key component rather than
    /// excluding the event.
    pub optional: bool,
}

/// A compiled value expression.
#[derive(Clone, Debug)]
pub(crate) enum CExpr {
    Const(Value),
    Field(usize),
    Neg(Box<CExpr>),
    Arith(ArithKind, Box<CExpr>, Box<CExpr>),
    Call(Func, Vec<CExpr>, bool),
    Pred(Box<Pred>),
}

/// A compiled condition; evaluates to true, false or null.
#[derive(Clone, Debug)]
pub(crate) enum Pred {
    Const(Option<bool>),
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    /// `x == null` (true when missing or null).
    IsNull(CExpr),
    /// Field (any value) compared with a constant.
    FieldCmp {
        slot: usize,
        op: CmpOp,
        rhs: Value,
    },
    /// Field (any value) equal to one of the constants (case-sensitive).
    FieldIn {
        slot: usize,
        list: Box<[Value]>,
        has_null: bool,
    },
    /// Field (any value) equal to one of the lower-cased constants, ignoring case.
    FieldInFold {
        slot: usize,
        list: Box<[Box<str>]>,
    },
    FieldWild {
        slot: usize,
        pats: Box<[Wildcard]>,
    },
    FieldRegex {
        slot: usize,
        res: Box<[LuceneRegex]>,
    },
    /// General comparison of two scalar expressions. `nulls_equal`: both
    /// sides are optional fields (`?x == ?y`); Elasticsearch turns unknown
    /// optional fields into `null` and `null == null` into `true`.
    Cmp {
        op: CmpOp,
        lhs: CExpr,
        rhs: CExpr,
        nulls_equal: bool,
    },
    In {
        expr: CExpr,
        list: Vec<CExpr>,
        insensitive: bool,
    },
    Wild {
        expr: CExpr,
        pats: Box<[Wildcard]>,
    },
    Regex {
        expr: CExpr,
        res: Box<[LuceneRegex]>,
    },
    /// A boolean-valued expression (a function, a boolean field). `dsl`:
    /// Elasticsearch runs it as a query (a boolean field, or `startsWith`,
    /// `endsWith`, `stringContains`, `cidrMatch` on a field with constant
    /// arguments), not as a script.
    Truthy {
        expr: CExpr,
        dsl: bool,
    },
}
