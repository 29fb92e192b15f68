//! Lowering a parsed query into an executable plan.
//!
//! Fields are resolved against a [`Schema`] to slots of the plan's
//! [`FieldTable`], literals are converted to the compared field's type,
//! wildcards and regexes compiled and case-folded constants precomputed, so
//! evaluating an event (see `eval`) never walks the AST and, on the common
//! paths, never allocates. Sequences and samples get one [`Stage`] per
//! `[...]`; `with runs=N` stays a count (the matcher repeats the stage).
//!
//! The timestamp field is a `date` even where the schema does not map it:
//! Elasticsearch's EQL requires it to be one, so `@timestamp ==
//! "2017-08-30T20:47:33Z"` compares instants whatever the source holds
//! (ISO text or epoch milliseconds).

use super::ast::{self, ArithOp, CmpOp, ExprKind, Literal, MatchOp, Pipe, QueryBody};
use super::error::{EqlError, ErrorKind};
use super::event::{canonical_ip, Event, FieldTable};
use super::functions::{ArithKind, Func, ReturnKind};
use super::pattern::{LuceneRegex, Wildcard};
use super::schema::{FieldInfo, FieldType, Schema};
use super::span::Span;
use super::value::{parse_date_literal, parse_date_with_format, Value};

use std::net::IpAddr;
use std::sync::Arc;

mod plan;
mod set;
pub use plan::*;
pub use set::{PlanSet, PlanSetError};

fn err(span: Span, msg: impl Into<String>) -> EqlError {
    EqlError::new(ErrorKind::Semantic, span, msg)
}

/// Compiles a parsed query.
pub fn compile(
    query: &ast::Query,
    schema: &Schema,
    opts: &CompileOptions,
) -> Result<Plan, EqlError> {
    let mut c = Compiler {
        schema,
        timestamp_field: &opts.timestamp_field,
        fields: FieldTable::default(),
    };
    let ts = c.slot(&opts.timestamp_field);
    c.fields.set_timestamp(ts);
    if let Some(tb) = &opts.tiebreaker_field {
        let slot = c.slot(tb);
        c.fields.set_tiebreaker(slot);
    }
    let cat = c.slot(&opts.event_category_field);
    c.fields.set_category(cat);

    let (kind, stages, until, maxspan_ms) = match &query.body {
        QueryBody::Event(eq) => (
            PlanKind::Event,
            vec![c.stage(eq, &[], &[], 1, false, eq.span)?],
            None,
            None,
        ),
        QueryBody::Sequence(seq) => {
            let mut stages = Vec::new();
            for st in &seq.stages {
                let runs = st.runs.map_or(1, |r| r.count);
                stages.push(c.stage(&st.query, &seq.by, &st.by, runs, st.missing, st.span)?);
            }
            let until = match &seq.until {
                Some(u) => Some(c.stage(&u.query, &seq.by, &u.by, 1, false, u.span)?),
                None => None,
            };
            (
                PlanKind::Sequence,
                stages,
                until,
                seq.maxspan.map(|m| m.millis()),
            )
        }
        QueryBody::Sample(sample) => {
            let mut stages = Vec::new();
            for f in &sample.filters {
                stages.push(c.stage(&f.query, &sample.by, &f.by, 1, false, f.span)?);
            }
            (PlanKind::Sample, stages, None, None)
        }
    };
    Ok(Plan {
        kind,
        stages,
        until,
        maxspan_ms,
        pipes: query.pipes.clone(),
        fields: c.fields,
    })
}

/// The static kind of an expression, for type checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    Bool,
    Ip,
    Date,
    Version,
    Null,
    Unknown,
}

struct Compiler<'a> {
    schema: &'a Schema,
    timestamp_field: &'a str,
    fields: FieldTable,
}

impl Compiler<'_> {
    /// What the schema says about a field, with the timestamp field a date
    /// when the schema does not map it.
    fn resolve(&self, name: &str) -> FieldInfo {
        let mut info = self.schema.resolve(name);
        if info.ty == FieldType::Dynamic && name == self.timestamp_field {
            info.ty = FieldType::Date {
                formats: Vec::new(),
            };
        }
        info
    }

    fn slot(&mut self, name: &str) -> usize {
        let info = self.resolve(name);
        self.fields.slot_with(name, || info)
    }

    fn stage(
        &mut self,
        q: &ast::EventQuery,
        global_by: &[ast::Expr],
        by: &[ast::Expr],
        runs: u64,
        missing: bool,
        span: Span,
    ) -> Result<Stage, EqlError> {
        let category = match &q.category {
            ast::Category::Any(_) => None,
            ast::Category::Named(n, _) => Some(n.clone().into_boxed_str()),
        };
        let category_slot = self.fields.category_slot().unwrap_or(0);
        let predicate = self.pred(&q.condition)?;
        let mut keys = Vec::new();
        for k in global_by.iter().chain(by) {
            let optional = matches!(&k.kind, ExprKind::Field(f) if f.optional);
            keys.push(JoinKey {
                expr: self.expr(k)?,
                optional,
            });
        }
        Ok(Stage {
            category,
            category_slot,
            predicate,
            keys,
            runs,
            missing,
            span,
        })
    }

    fn field_type(&self, name: &str) -> FieldType {
        self.resolve(name).ty
    }

    fn kind_of(&self, e: &ast::Expr) -> Kind {
        match &e.kind {
            ExprKind::Literal(Literal::Null) => Kind::Null,
            ExprKind::Literal(Literal::Bool(_)) => Kind::Bool,
            ExprKind::Literal(Literal::Int(_) | Literal::Float(_)) => Kind::Num,
            ExprKind::Literal(Literal::String(_)) => Kind::Str,
            ExprKind::Field(f) => match self.field_type(&f.name) {
                FieldType::Keyword => Kind::Str,
                FieldType::Long | FieldType::Double => Kind::Num,
                FieldType::Boolean => Kind::Bool,
                FieldType::Date { .. } => Kind::Date,
                FieldType::Ip => Kind::Ip,
                FieldType::Version => Kind::Version,
                FieldType::Dynamic => Kind::Unknown,
            },
            ExprKind::Neg(_) | ExprKind::Arith { .. } => Kind::Num,
            ExprKind::Not(_)
            | ExprKind::And(..)
            | ExprKind::Or(..)
            | ExprKind::Compare { .. }
            | ExprKind::In { .. }
            | ExprKind::Match { .. } => Kind::Bool,
            ExprKind::Call { name, .. } => match Func::resolve(name).map(Func::returns) {
                Some(ReturnKind::Bool) => Kind::Bool,
                Some(ReturnKind::Number) => Kind::Num,
                Some(ReturnKind::Str) => Kind::Str,
                None => Kind::Unknown,
            },
        }
    }

    fn expect_kind(&self, e: &ast::Expr, allowed: &[Kind], what: &str) -> Result<(), EqlError> {
        let k = self.kind_of(e);
        if matches!(k, Kind::Null | Kind::Unknown) || allowed.contains(&k) {
            Ok(())
        } else {
            Err(err(
                e.span,
                format!("expected {what}, found {}", kind_name(k)),
            ))
        }
    }

    fn field_slot(&mut self, f: &ast::Field) -> usize {
        self.slot(&f.name)
    }

    /// A literal converted for comparison with a field of type `ty`.
    fn convert_literal(
        &self,
        lit: &Literal,
        ty: &FieldType,
        span: Span,
    ) -> Result<Value, EqlError> {
        let v = literal_value(lit);
        Ok(match (ty, &v) {
            (FieldType::Date { formats }, Value::Str(s)) => match formats
                .iter()
                .find_map(|f| parse_date_with_format(s, f))
                .or_else(|| parse_date_literal(s))
            {
                Some(ms) => Value::Date(ms),
                None => {
                    return Err(err(span, format!("expected a date, found \"{s}\"")));
                }
            },
            (FieldType::Date { .. }, Value::Long(n)) => Value::Date(*n),
            (FieldType::Ip, Value::Str(s)) => match s.parse::<IpAddr>() {
                Ok(ip) => Value::Ip(canonical_ip(ip)),
                Err(_) => return Err(err(span, format!("expected an ip address, found \"{s}\""))),
            },
            (FieldType::Version, Value::Str(s)) => Value::Version(s.clone()),
            // Elasticsearch runs `keyword_field == 123` as a term query for
            // "123", and `long_field == "5"` as one for 5.
            (FieldType::Keyword, Value::Long(_) | Value::Double(_) | Value::Bool(_)) => {
                Value::str(&v.to_string())
            }
            (FieldType::Long | FieldType::Double, Value::Str(s)) => {
                match (s.trim().parse::<i64>(), s.trim().parse::<f64>()) {
                    (Ok(n), _) => Value::Long(n),
                    (_, Ok(d)) => Value::Double(d),
                    _ => v,
                }
            }
            _ => v,
        })
    }

    fn pred(&mut self, e: &ast::Expr) -> Result<Pred, EqlError> {
        Ok(match &e.kind {
            ExprKind::Literal(Literal::Bool(b)) => Pred::Const(Some(*b)),
            ExprKind::Literal(Literal::Null) => Pred::Const(None),
            ExprKind::Literal(_) | ExprKind::Arith { .. } | ExprKind::Neg(_) => {
                return Err(err(
                    e.span,
                    "expected a boolean condition, found a non-boolean expression",
                ));
            }
            ExprKind::Field(f) => {
                self.expect_kind(e, &[Kind::Bool], "a boolean condition")?;
                Pred::Truthy {
                    expr: CExpr::Field(self.field_slot(f)),
                    dsl: true,
                }
            }
            ExprKind::Not(inner) => negate(self.pred(inner)?),
            ExprKind::And(a, b) => Pred::And(Box::new(self.pred(a)?), Box::new(self.pred(b)?)),
            ExprKind::Or(a, b) => Pred::Or(Box::new(self.pred(a)?), Box::new(self.pred(b)?)),
            ExprKind::Compare { op, lhs, rhs } => self.compare(*op, lhs, rhs)?,
            ExprKind::In {
                expr,
                list,
                negated,
                insensitive,
            } => {
                let p = self.in_list(expr, list, *insensitive)?;
                if *negated {
                    negate(p)
                } else {
                    p
                }
            }
            ExprKind::Match {
                op,
                insensitive,
                expr,
                patterns,
            } => self.matching(*op, *insensitive, expr, patterns)?,
            ExprKind::Call { .. } => {
                if self.kind_of(e) != Kind::Bool {
                    return Err(err(
                        e.span,
                        "expected a boolean condition, found a non-boolean function",
                    ));
                }
                let expr = self.expr(e)?;
                let dsl = matches!(&expr, CExpr::Call(
                    Func::StartsWith | Func::EndsWith | Func::StringContains | Func::CidrMatch,
                    args,
                    _,
                ) if matches!(args.first(), Some(CExpr::Field(_)))
                    && args[1..].iter().all(|a| matches!(a, CExpr::Const(_))));
                Pred::Truthy { expr, dsl }
            }
        })
    }

    fn compare(&mut self, op: CmpOp, lhs: &ast::Expr, rhs: &ast::Expr) -> Result<Pred, EqlError> {
        let is_null = |e: &ast::Expr| matches!(e.kind, ExprKind::Literal(Literal::Null));
        // `x == null` / `x != null` test for missing or null, they are not
        // three-valued comparisons.
        if matches!(op, CmpOp::Eq | CmpOp::Ne) && (is_null(lhs) || is_null(rhs)) {
            let other = if is_null(lhs) { rhs } else { lhs };
            let p = Pred::IsNull(self.expr(other)?);
            return Ok(if op == CmpOp::Ne {
                Pred::Not(Box::new(p))
            } else {
                p
            });
        }
        if is_null(lhs) || is_null(rhs) {
            return Ok(Pred::Const(None));
        }
        let optional = |e: &ast::Expr| matches!(&e.kind, ExprKind::Field(f) if f.optional);
        let nulls_equal = optional(lhs) && optional(rhs);
        // An optional field may resolve to null (unknown to the mapping), so
        // only comparisons of known fields with each other are rejected.
        if has_field(lhs) && has_field(rhs) && !optional(lhs) && !optional(rhs) {
            // Elasticsearch needs one side of a comparison to be a constant
            return Err(EqlError::new(
                ErrorKind::Unsupported,
                lhs.span.to(rhs.span),
                "expected a constant on one side of the comparison, found fields on both sides",
            ));
        }
        match (&lhs.kind, literal_of(lhs), &rhs.kind, literal_of(rhs)) {
            (ExprKind::Field(f), _, _, Some(lit)) => {
                let ty = self.field_type(&f.name);
                let rhs = self.convert_literal(&lit, &ty, rhs.span)?;
                let slot = self.field_slot(f);
                Ok(field_cmp(slot, op, rhs))
            }
            (_, Some(lit), ExprKind::Field(f), _) => {
                let ty = self.field_type(&f.name);
                let lhs_v = self.convert_literal(&lit, &ty, lhs.span)?;
                let slot = self.field_slot(f);
                Ok(field_cmp(slot, op.flipped(), lhs_v))
            }
            _ => Ok(Pred::Cmp {
                op,
                lhs: self.expr(lhs)?,
                rhs: self.expr(rhs)?,
                nulls_equal,
            }),
        }
    }

    fn in_list(
        &mut self,
        expr: &ast::Expr,
        list: &[ast::Expr],
        insensitive: bool,
    ) -> Result<Pred, EqlError> {
        let literals: Option<Vec<Literal>> = list.iter().map(literal_of).collect();
        if let (ExprKind::Field(f), Some(literals)) = (&expr.kind, literals) {
            let ty = self.field_type(&f.name);
            let slot = self.field_slot(f);
            if insensitive {
                let mut folded = Vec::new();
                for (item, lit) in list.iter().zip(&literals) {
                    match lit {
                        Literal::String(s) => folded.push(s.to_lowercase().into_boxed_str()),
                        Literal::Null => {}
                        _ => {
                            return Err(err(
                                item.span,
                                "expected a string in `in~`, found a non-string value",
                            ))
                        }
                    }
                }
                return Ok(Pred::FieldInFold {
                    slot,
                    list: folded.into_boxed_slice(),
                });
            }
            let mut values = Vec::new();
            let mut has_null = false;
            for (item, lit) in list.iter().zip(&literals) {
                match lit {
                    Literal::Null => has_null = true,
                    lit => values.push(self.convert_literal(lit, &ty, item.span)?),
                }
            }
            return Ok(Pred::FieldIn {
                slot,
                list: values.into_boxed_slice(),
                has_null,
            });
        }
        let e = self.expr(expr)?;
        let mut items = Vec::new();
        for item in list {
            items.push(self.expr(item)?);
        }
        Ok(Pred::In {
            expr: e,
            list: items,
            insensitive,
        })
    }

    fn matching(
        &mut self,
        op: MatchOp,
        insensitive: bool,
        expr: &ast::Expr,
        patterns: &[ast::Expr],
    ) -> Result<Pred, EqlError> {
        let insensitive = insensitive || op == MatchOp::Colon;
        let mut texts = Vec::new();
        for p in patterns {
            match &p.kind {
                ExprKind::Literal(Literal::String(s)) => texts.push((s.as_str(), p.span)),
                _ => {
                    return Err(err(
                        p.span,
                        "expected a constant string pattern, found an expression",
                    ));
                }
            }
        }
        self.expect_kind(expr, &[Kind::Str, Kind::Ip, Kind::Version], "a string")?;
        let slot = match &expr.kind {
            ExprKind::Field(f) => Some(self.field_slot(f)),
            _ => None,
        };
        Ok(match op {
            MatchOp::Colon | MatchOp::Like => {
                let pats: Box<[Wildcard]> = texts
                    .iter()
                    .map(|(t, _)| Wildcard::new(t, insensitive))
                    .collect();
                match slot {
                    Some(slot) => Pred::FieldWild { slot, pats },
                    None => Pred::Wild {
                        expr: self.expr(expr)?,
                        pats,
                    },
                }
            }
            MatchOp::Regex => {
                let mut res = Vec::new();
                for (t, span) in &texts {
                    res.push(
                        LuceneRegex::new(t, insensitive).map_err(|e| err(*span, e.to_string()))?,
                    );
                }
                let res = res.into_boxed_slice();
                match slot {
                    Some(slot) => Pred::FieldRegex { slot, res },
                    None => Pred::Regex {
                        expr: self.expr(expr)?,
                        res,
                    },
                }
            }
        })
    }

    fn expr(&mut self, e: &ast::Expr) -> Result<CExpr, EqlError> {
        Ok(match &e.kind {
            ExprKind::Literal(lit) => CExpr::Const(literal_value(lit)),
            ExprKind::Field(f) => CExpr::Field(self.field_slot(f)),
            ExprKind::Neg(inner) => {
                self.expect_kind(inner, &[Kind::Num], "a number")?;
                match &inner.kind {
                    ExprKind::Literal(Literal::Int(n)) => match n.checked_neg() {
                        Some(v) => CExpr::Const(Value::Long(v)),
                        None => CExpr::Const(Value::Null),
                    },
                    ExprKind::Literal(Literal::Float(d)) => CExpr::Const(Value::Double(-d)),
                    _ => CExpr::Neg(Box::new(self.expr(inner)?)),
                }
            }
            ExprKind::Arith { op, lhs, rhs } => {
                self.expect_kind(lhs, &[Kind::Num], "a number")?;
                self.expect_kind(rhs, &[Kind::Num], "a number")?;
                let kind = match op {
                    ArithOp::Add => ArithKind::Add,
                    ArithOp::Sub => ArithKind::Sub,
                    ArithOp::Mul => ArithKind::Mul,
                    ArithOp::Div => ArithKind::Div,
                    ArithOp::Mod => ArithKind::Mod,
                };
                CExpr::Arith(kind, Box::new(self.expr(lhs)?), Box::new(self.expr(rhs)?))
            }
            ExprKind::Call {
                name,
                insensitive,
                args,
            } => self.call(name, *insensitive, args, e.span)?,
            ExprKind::Not(_)
            | ExprKind::And(..)
            | ExprKind::Or(..)
            | ExprKind::Compare { .. }
            | ExprKind::In { .. }
            | ExprKind::Match { .. } => CExpr::Pred(Box::new(self.pred(e)?)),
        })
    }

    fn call(
        &mut self,
        name: &str,
        insensitive: bool,
        args: &[ast::Expr],
        span: Span,
    ) -> Result<CExpr, EqlError> {
        let func = Func::resolve(name)
            .ok_or_else(|| err(span, format!("expected a known function, found `{name}`")))?;
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let expected = if max == usize::MAX {
                format!("at least {min}")
            } else if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(err(
                span,
                format!(
                    "expected {expected} arguments to `{}`, found {}",
                    func.name(),
                    args.len()
                ),
            ));
        }
        if insensitive && !func.has_insensitive() {
            return Err(err(
                span,
                format!(
                    "expected a function with a `~` variant, found `{}~`",
                    func.name()
                ),
            ));
        }
        const STR: &[Kind] = &[Kind::Str, Kind::Ip, Kind::Version];
        const NUM: &[Kind] = &[Kind::Num];
        let check = |c: &Self, i: usize, kinds: &[Kind], what: &str| -> Result<(), EqlError> {
            match args.get(i) {
                Some(a) => c.expect_kind(a, kinds, what),
                None => Ok(()),
            }
        };
        match func {
            Func::Add | Func::Subtract | Func::Multiply | Func::Divide | Func::Modulo => {
                check(self, 0, NUM, "a number")?;
                check(self, 1, NUM, "a number")?;
            }
            Func::Between => {
                for i in 0..3 {
                    check(self, i, STR, "a string")?;
                }
                check(self, 3, &[Kind::Bool], "a boolean")?;
            }
            Func::CidrMatch => {
                check(self, 0, &[Kind::Ip, Kind::Str], "an ip address")?;
                for (i, a) in args.iter().enumerate().skip(1) {
                    match &a.kind {
                        ExprKind::Literal(Literal::String(s))
                            if super::functions::Cidr::parse(s).is_some() => {}
                        _ => {
                            return Err(err(
                                args[i].span,
                                "expected a constant cidr block such as \"10.0.0.0/8\"",
                            ))
                        }
                    }
                }
            }
            Func::EndsWith | Func::StartsWith | Func::StringContains => {
                check(self, 0, STR, "a string")?;
                check(self, 1, STR, "a string")?;
            }
            Func::IndexOf => {
                check(self, 0, STR, "a string")?;
                check(self, 1, STR, "a string")?;
                check(self, 2, NUM, "a number")?;
            }
            Func::Length => check(self, 0, STR, "a string")?,
            Func::Number => {
                check(self, 0, &[Kind::Str], "a string")?;
                check(self, 1, NUM, "a number")?;
            }
            Func::Substring => {
                check(self, 0, STR, "a string")?;
                check(self, 1, NUM, "a number")?;
                check(self, 2, NUM, "a number")?;
            }
            Func::Concat | Func::String => {}
        }
        let mut cargs = Vec::with_capacity(args.len());
        for a in args {
            cargs.push(self.expr(a)?);
        }
        Ok(CExpr::Call(func, cargs, insensitive))
    }
}

/// A literal, also a negated numeric one (`-1` parses as a negation).
fn literal_of(e: &ast::Expr) -> Option<Literal> {
    match &e.kind {
        ExprKind::Literal(l) => Some(l.clone()),
        ExprKind::Neg(inner) => match literal_of(inner)? {
            Literal::Int(n) => n.checked_neg().map(Literal::Int),
            Literal::Float(d) => Some(Literal::Float(-d)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the expression reads a field (is not foldable to a constant).
fn has_field(e: &ast::Expr) -> bool {
    match &e.kind {
        ExprKind::Literal(_) => false,
        ExprKind::Field(_) => true,
        ExprKind::Not(a) | ExprKind::Neg(a) => has_field(a),
        ExprKind::And(a, b) | ExprKind::Or(a, b) => has_field(a) || has_field(b),
        ExprKind::Compare { lhs, rhs, .. } | ExprKind::Arith { lhs, rhs, .. } => {
            has_field(lhs) || has_field(rhs)
        }
        ExprKind::In { expr, list, .. } => has_field(expr) || list.iter().any(has_field),
        ExprKind::Match { expr, patterns, .. } => has_field(expr) || patterns.iter().any(has_field),
        ExprKind::Call { args, .. } => args.iter().any(has_field),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Str => "a string",
        Kind::Num => "a number",
        Kind::Bool => "a boolean",
        Kind::Ip => "an ip",
        Kind::Date => "a date",
        Kind::Version => "a version",
        Kind::Null => "null",
        Kind::Unknown => "an untyped value",
    }
}

fn literal_value(lit: &Literal) -> Value {
    match lit {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(n) => Value::Long(*n),
        Literal::Float(d) => Value::Double(*d),
        Literal::String(s) => Value::Str(Arc::from(s.as_str())),
    }
}

/// `field op constant`; `!=` is the negation of "any value equals", as the
/// query DSL's `must_not` would do for a multi-valued field.
fn field_cmp(slot: usize, op: CmpOp, rhs: Value) -> Pred {
    if op == CmpOp::Ne {
        Pred::Not(Box::new(Pred::FieldCmp {
            slot,
            op: CmpOp::Eq,
            rhs,
        }))
    } else {
        Pred::FieldCmp { slot, op, rhs }
    }
}

/// `not p`, pushed down the way Elasticsearch's optimizer does before it
/// builds the query: De Morgan through `and`/`or`, double negation removed,
/// and a negated range becomes the opposite range (`not x > 1` is `x <= 1`,
/// which a missing field does not satisfy). Anything else stays a `Not`
/// (a `must_not` query, which a missing field does satisfy).
pub(crate) fn negate(p: Pred) -> Pred {
    match p {
        Pred::Const(t) => Pred::Const(t.map(|b| !b)),
        Pred::Not(inner) => *inner,
        Pred::And(a, b) => Pred::Or(Box::new(negate(*a)), Box::new(negate(*b))),
        Pred::Or(a, b) => Pred::And(Box::new(negate(*a)), Box::new(negate(*b))),
        Pred::FieldCmp { slot, op, rhs } if op != CmpOp::Eq && op != CmpOp::Ne => Pred::FieldCmp {
            slot,
            op: match op {
                CmpOp::Lt => CmpOp::Ge,
                CmpOp::Le => CmpOp::Gt,
                CmpOp::Gt => CmpOp::Le,
                _ => CmpOp::Lt,
            },
            rhs,
        },
        other => Pred::Not(Box::new(other)),
    }
}
