//! Evaluating compiled plans against events, with Elasticsearch semantics.
//!
//! Conditions are three-valued (true, false, null) with Kleene `and`/`or`;
//! `not null` is null and a stage matches only on true. A field holding
//! several values matches a comparison when any value does; `!=` and
//! `not in` are the negation of that any-match. A missing field is null.
//! Field-versus-constant comparisons borrow the event's values and never
//! allocate; functions may (they build strings).

use std::cmp::Ordering;

use super::ast::CmpOp;
use super::compile::{CExpr, JoinKey, Pred, Stage};
use super::event::Event;
use super::functions::arith;
use super::value::Value;

type Tri = Option<bool>;

impl Stage {
    /// Whether the event belongs to this stage: category and condition
    /// (null counts as no match).
    #[inline]
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(cat) = &self.category {
            let cats = event.get(self.category_slot);
            let cat = cat.as_bytes();
            if !cats
                .iter()
                .any(|v| v.as_str().is_some_and(|c| bytes_eq(c.as_bytes(), cat)))
            {
                return false;
            }
        }
        self.predicate.eval(event, false) == Some(true)
    }

    /// The join keys of the event, one `Vec` per combination of the values
    /// of multi-valued keys (cartesian product, duplicates collapsed, null
    /// values dropped). A missing non-optional key gives no keys at all; a
    /// missing optional key gives a null component. Clears `out` first.
    pub fn join_keys(&self, event: &Event, out: &mut Vec<Vec<Value>>) {
        out.clear();
        out.push(Vec::with_capacity(self.keys.len()));
        let mut candidates: Vec<Value> = Vec::new();
        for key in &self.keys {
            key_values(key, event, &mut candidates);
            if candidates.is_empty() {
                if key.optional {
                    candidates.push(Value::Null);
                } else {
                    out.clear();
                    return;
                }
            }
            if candidates.len() == 1 {
                let v = candidates.pop().unwrap_or(Value::Null);
                for combo in out.iter_mut() {
                    combo.push(v.clone());
                }
            } else {
                let mut next = Vec::with_capacity(out.len() * candidates.len());
                for combo in out.iter() {
                    for v in &candidates {
                        let mut c = combo.clone();
                        c.push(v.clone());
                        next.push(c);
                    }
                }
                *out = next;
            }
        }
    }

    /// Whether the stage has join keys.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// The distinct non-null values of one key for an event.
fn key_values(key: &JoinKey, event: &Event, out: &mut Vec<Value>) {
    out.clear();
    match &key.expr {
        CExpr::Field(slot) => {
            for v in event.get(*slot) {
                if !v.is_null() && !out.contains(v) {
                    out.push(v.clone());
                }
            }
        }
        other => {
            let v = other.eval(event);
            if !v.is_null() {
                out.push(v);
            }
        }
    }
}

fn and(a: Tri, b: impl FnOnce() -> Tri) -> Tri {
    if a == Some(false) {
        return Some(false);
    }
    match (a, b()) {
        (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Tri, b: impl FnOnce() -> Tri) -> Tri {
    if a == Some(true) {
        return Some(true);
    }
    match (a, b()) {
        (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

#[inline]
fn cmp_holds(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    }
}

/// `a op b` in Elasticsearch terms, with a fast path for two strings.
#[inline]
fn compare(op: CmpOp, a: &Value, b: &Value) -> Tri {
    if let (Value::Str(x), Value::Str(y)) = (a, b) {
        if op == CmpOp::Eq {
            return Some(bytes_eq(x.as_bytes(), y.as_bytes()));
        }
        return Some(cmp_holds(op, x.as_bytes().cmp(y.as_bytes())));
    }
    match a.es_cmp(b) {
        Some(o) => Some(cmp_holds(op, o)),
        None => coerced_cmp(a, b).map(|o| cmp_holds(op, o)),
    }
}

/// Without a mapping the same field can hold `4` in one event and `"4"` in
/// another; Elasticsearch would have indexed both under one type, so a
/// numeric or boolean string compares with a number or boolean by value.
#[cold]
fn coerced_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    fn as_num(s: &str) -> Option<Value> {
        let s = s.trim();
        s.parse::<i64>()
            .map(Value::Long)
            .or_else(|_| s.parse::<f64>().map(Value::Double))
            .ok()
    }
    fn as_bool(s: &str) -> Option<Value> {
        match s {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Str(s), Value::Long(_) | Value::Double(_)) => as_num(s)?.es_cmp(b),
        (Value::Long(_) | Value::Double(_), Value::Str(s)) => a.es_cmp(&as_num(s)?),
        (Value::Str(s), Value::Bool(_)) => as_bool(s)?.es_cmp(b),
        (Value::Bool(_), Value::Str(s)) => a.es_cmp(&as_bool(s)?),
        _ => None,
    }
}

/// Case-insensitive equality against an already lower-cased constant.
#[inline]
fn eq_folded(s: &str, lowered: &str) -> bool {
    if s.is_ascii() && lowered.is_ascii() {
        s.len() == lowered.len() && s.as_bytes().eq_ignore_ascii_case(lowered.as_bytes())
    } else {
        s.to_lowercase() == lowered
    }
}

/// A value as text for pattern matching (strings directly; other kinds as
/// Elasticsearch would print them).
fn with_text<R>(v: &Value, f: impl FnOnce(&str) -> R) -> Option<R> {
    match v {
        Value::Null => None,
        Value::Str(s) | Value::Version(s) => Some(f(s)),
        other => Some(f(&other.to_string())),
    }
}

/// Byte equality for the short strings events are full of (categories,
/// names, ports as text): compares lengths, then inline, without the call
/// into libc's `memcmp` that slice equality makes. That call was a fifth of
/// an event query's time.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 32 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Any value of `values` satisfies `test`; null when there are no values.
#[inline]
fn any_value(values: &[Value], mut test: impl FnMut(&Value) -> Tri) -> Tri {
    if values.is_empty() {
        return None;
    }
    let mut saw_false = false;
    for v in values {
        match test(v) {
            Some(true) => return Some(true),
            Some(false) => saw_false = true,
            None => {}
        }
    }
    if saw_false {
        Some(false)
    } else {
        None
    }
}

impl Pred {
    /// Evaluates the condition. `script`: as inside an Elasticsearch script
    /// (a condition used as a value, e.g. `null == (x > 1)`), where a missing
    /// field makes a comparison null. Otherwise as the query Elasticsearch
    /// builds: a field-level test on a missing field is simply false, so its
    /// negation (`!=`, `not in`, `not x : ...`, a `must_not`) is true.
    pub(crate) fn eval(&self, event: &Event, script: bool) -> Tri {
        let leaf = |t: Tri| if script { t } else { Some(t == Some(true)) };
        match self {
            Pred::Const(t) => *t,
            Pred::And(a, b) => and(a.eval(event, script), || b.eval(event, script)),
            Pred::Or(a, b) => or(a.eval(event, script), || b.eval(event, script)),
            Pred::Not(p) => p.eval(event, script).map(|b| !b),
            Pred::IsNull(e) => Some(match e {
                CExpr::Field(slot) => event.get(*slot).is_empty(),
                other => other.eval(event).is_null(),
            }),
            Pred::FieldCmp { slot, op, rhs } => {
                leaf(any_value(event.get(*slot), |v| compare(*op, v, rhs)))
            }
            Pred::FieldIn {
                slot,
                list,
                has_null,
            } => {
                let r = any_value(event.get(*slot), |v| {
                    let mut saw_false = false;
                    for item in list.iter() {
                        match compare(CmpOp::Eq, v, item) {
                            Some(true) => return Some(true),
                            Some(false) => saw_false = true,
                            None => {}
                        }
                    }
                    if saw_false {
                        Some(false)
                    } else {
                        None
                    }
                });
                leaf(if r == Some(false) && *has_null {
                    None
                } else {
                    r
                })
            }
            Pred::FieldInFold { slot, list } => leaf(any_value(event.get(*slot), |v| {
                with_text(v, |s| list.iter().any(|l| eq_folded(s, l)))
            })),
            Pred::FieldWild { slot, pats } => leaf(any_value(event.get(*slot), |v| {
                with_text(v, |s| pats.iter().any(|p| p.is_match(s)))
            })),
            Pred::FieldRegex { slot, res } => leaf(any_value(event.get(*slot), |v| {
                with_text(v, |s| res.iter().any(|r| r.is_match(s)))
            })),
            Pred::Cmp {
                op,
                lhs,
                rhs,
                nulls_equal,
            } => {
                let (a, b) = (lhs.eval(event), rhs.eval(event));
                if *nulls_equal && a.is_null() && b.is_null() {
                    return match op {
                        CmpOp::Eq => Some(true),
                        CmpOp::Ne => Some(false),
                        _ => None,
                    };
                }
                compare(*op, &a, &b)
            }
            Pred::In {
                expr,
                list,
                insensitive,
            } => {
                let v = expr.eval(event);
                if v.is_null() {
                    return None;
                }
                let mut result = Some(false);
                for item in list {
                    let w = item.eval(event);
                    let r = if *insensitive {
                        match (v.as_str(), w.as_str()) {
                            (Some(a), Some(b)) => Some(a.to_lowercase() == b.to_lowercase()),
                            _ => compare(CmpOp::Eq, &v, &w),
                        }
                    } else {
                        compare(CmpOp::Eq, &v, &w)
                    };
                    match r {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => result = None,
                    }
                }
                result
            }
            Pred::Wild { expr, pats } => {
                with_text(&expr.eval(event), |s| pats.iter().any(|p| p.is_match(s)))
            }
            Pred::Regex { expr, res } => {
                with_text(&expr.eval(event), |s| res.iter().any(|r| r.is_match(s)))
            }
            Pred::Truthy { expr, dsl } => {
                let t = match expr {
                    CExpr::Field(slot) => any_value(event.get(*slot), |v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    }),
                    other => match other.eval(event) {
                        Value::Bool(b) => Some(b),
                        _ => None,
                    },
                };
                if *dsl {
                    leaf(t)
                } else {
                    t
                }
            }
        }
    }
}

/// A field's value inside a function or arithmetic: Elasticsearch scripts
/// read the first doc value, and doc values are sorted, so a multi-valued
/// field gives its smallest value.
fn scalar(values: &[Value]) -> Value {
    match values {
        [] => Value::Null,
        [one] => one.clone(),
        many => many
            .iter()
            .min_by(|a, b| a.es_cmp(b).unwrap_or(Ordering::Equal))
            .cloned()
            .unwrap_or(Value::Null),
    }
}

impl CExpr {
    /// The scalar value of the expression; a multi-valued field gives its
    /// smallest value.
    pub(crate) fn eval(&self, event: &Event) -> Value {
        match self {
            CExpr::Const(v) => v.clone(),
            CExpr::Field(slot) => scalar(event.get(*slot)),
            CExpr::Neg(e) => match e.eval(event) {
                Value::Long(n) => n.checked_neg().map_or(Value::Null, Value::Long),
                Value::Double(d) => Value::Double(-d),
                _ => Value::Null,
            },
            CExpr::Arith(op, a, b) => {
                let (x, y) = (a.eval(event), b.eval(event));
                arith(*op, &x, &y)
            }
            CExpr::Call(func, args, insensitive) => {
                let vals: Vec<Value> = args.iter().map(|a| a.eval(event)).collect();
                func.call(&vals, *insensitive)
            }
            CExpr::Pred(p) => match p.eval(event, true) {
                Some(b) => Value::Bool(b),
                None => Value::Null,
            },
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bytes_eq_tests {
    use super::bytes_eq;

    #[test]
    fn equal_only_when_same_bytes_and_length() {
        let samples: [&[u8]; 6] = [b"", b"a", b"process", b"Process", b"processes", &[b'x'; 40]];
        for a in samples {
            for b in samples {
                assert_eq!(bytes_eq(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
        let long_a = [b'x'; 40];
        let mut long_b = long_a;
        long_b[39] = b'y';
        assert!(!bytes_eq(&long_a, &long_b));
    }
}
