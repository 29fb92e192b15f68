//! Documents made from a query's own literals, so that a good share of them
//! match some stage: for every field the query compares, a value taken from
//! (or built around) the literals it is compared with, a case-flipped
//! variant, or an unrelated value; fields are sometimes left out or
//! multi-valued. Deterministic for a seed.

use std::collections::BTreeMap;

use detectd::eql::ast::{Category, EventQuery, Expr, ExprKind, Literal, Query, QueryBody};
use serde_json::{json, Map, Value};

/// A tiny deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Candidate values per field, and the stages' categories.
#[derive(Default, Debug)]
pub struct Vocabulary {
    pub fields: BTreeMap<String, Vec<Value>>,
    pub categories: Vec<Option<String>>,
}

fn lit_value(e: &Expr) -> Option<Value> {
    match &e.kind {
        ExprKind::Literal(Literal::String(s)) => Some(json!(s)),
        ExprKind::Literal(Literal::Int(i)) => Some(json!(i)),
        ExprKind::Literal(Literal::Float(f)) => Some(json!(f)),
        ExprKind::Literal(Literal::Bool(b)) => Some(json!(b)),
        ExprKind::Neg(inner) => match &inner.kind {
            ExprKind::Literal(Literal::Int(i)) => Some(json!(-i)),
            ExprKind::Literal(Literal::Float(f)) => Some(json!(-f)),
            _ => None,
        },
        _ => None,
    }
}

fn field_name(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Field(f) => Some(&f.name),
        _ => None,
    }
}

/// Concrete strings a wildcard pattern matches (`*` filled, `?` one char).
fn instantiate(pattern: &str, fill: &str) -> String {
    pattern.replace('*', fill).replace('?', "q")
}

impl Vocabulary {
    pub fn of(query: &Query) -> Vocabulary {
        let mut v = Vocabulary::default();
        let stage = |q: &EventQuery, keys: &[&Expr], v: &mut Vocabulary| {
            v.categories.push(match &q.category {
                Category::Any(_) => None,
                Category::Named(n, _) => Some(n.clone()),
            });
            v.walk(&q.condition);
            for k in keys {
                if let Some(f) = field_name(k) {
                    v.add(f, json!("key-1"));
                    v.add(f, json!("key-2"));
                }
            }
        };
        match &query.body {
            QueryBody::Event(q) => stage(q, &[], &mut v),
            QueryBody::Sequence(s) => {
                for st in s.stages.iter().chain(s.until.as_deref()) {
                    let keys: Vec<&Expr> = s.by.iter().chain(&st.by).collect();
                    stage(&st.query, &keys, &mut v);
                }
            }
            QueryBody::Sample(s) => {
                for f in &s.filters {
                    let keys: Vec<&Expr> = s.by.iter().chain(&f.by).collect();
                    stage(&f.query, &keys, &mut v);
                }
            }
        }
        v.unify_types();
        v
    }

    fn add(&mut self, field: &str, value: Value) {
        let list = self.fields.entry(field.to_string()).or_default();
        if !list.contains(&value) {
            list.push(value);
        }
    }

    fn walk(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Not(a) | ExprKind::Neg(a) => self.walk(a),
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.walk(a);
                self.walk(b);
            }
            ExprKind::Compare { lhs, rhs, .. } => {
                let (f, l) = match (field_name(lhs), field_name(rhs)) {
                    (Some(f), _) => (f, rhs),
                    (_, Some(f)) => (f, lhs),
                    _ => return self.walk_fields(e),
                };
                match lit_value(l) {
                    Some(Value::Number(n)) if n.is_i64() => {
                        let i = n.as_i64().unwrap_or(0);
                        for x in [i - 1, i, i + 1] {
                            self.add(f, json!(x));
                        }
                    }
                    Some(v) => self.add(f, v),
                    None => self.walk_fields(l),
                }
                self.add(f, json!("other"));
            }
            ExprKind::In { expr, list, .. } => {
                if let Some(f) = field_name(expr) {
                    for item in list {
                        if let Some(v) = lit_value(item) {
                            self.add(f, v);
                        }
                    }
                    self.add(f, json!("other"));
                }
            }
            ExprKind::Match { expr, patterns, .. } => {
                if let Some(f) = field_name(expr) {
                    for p in patterns {
                        if let Some(Value::String(p)) = lit_value(p) {
                            self.add(f, json!(instantiate(&p, "")));
                            self.add(f, json!(instantiate(&p, "Ab")));
                        }
                    }
                    self.add(f, json!("other"));
                }
            }
            ExprKind::Call { args, .. } => {
                let strs: Vec<String> = args
                    .iter()
                    .filter_map(lit_value)
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                for a in args {
                    if let Some(f) = field_name(a) {
                        for s in &strs {
                            self.add(f, json!(s));
                            self.add(f, json!(format!("x{s}y")));
                        }
                        self.add(f, json!("other"));
                    } else {
                        self.walk(a);
                    }
                }
            }
            _ => self.walk_fields(e),
        }
    }

    fn walk_fields(&mut self, e: &Expr) {
        if let Some(f) = field_name(e) {
            self.add(f, json!("other"));
            self.add(f, json!(1));
        }
    }

    /// One JSON type per field, so the index mapping never conflicts:
    /// strings win (numbers become their text), else numbers, else bools.
    fn unify_types(&mut self) {
        for values in self.fields.values_mut() {
            if values.iter().any(Value::is_string) {
                let mut out: Vec<Value> = Vec::new();
                for v in values.drain(..) {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    if !out.contains(&json!(s)) {
                        out.push(json!(s));
                    }
                }
                *values = out;
            } else if values.iter().any(Value::is_number) {
                values.retain(Value::is_number);
            }
        }
        // A field cannot be both a value and an object: drop prefixes.
        let names: Vec<String> = self.fields.keys().cloned().collect();
        for n in &names {
            if names.iter().any(|m| m.starts_with(&format!("{n}."))) {
                self.fields.remove(n);
            }
        }
    }

    /// One document: a stage's category and a random pick per field.
    pub fn document(&self, rng: &mut Rng, timestamp: &str, category_field: &str) -> Value {
        let mut doc = Map::new();
        doc.insert("@timestamp".into(), json!(timestamp));
        let cat = self.categories[rng.below(self.categories.len())]
            .clone()
            .unwrap_or_else(|| ["process", "network", "file"][rng.below(3)].to_string());
        insert_path(&mut doc, category_field, json!(cat));
        for (field, values) in &self.fields {
            if field == category_field || field == "@timestamp" || rng.chance(25) {
                continue;
            }
            let pick = |rng: &mut Rng| {
                let v = values[rng.below(values.len())].clone();
                match v {
                    Value::String(s) if rng.chance(30) => json!(flip_case(&s)),
                    other => other,
                }
            };
            let value = if rng.chance(10) {
                json!([pick(rng), pick(rng)])
            } else {
                pick(rng)
            };
            insert_path(&mut doc, field, value);
        }
        Value::Object(doc)
    }
}

fn flip_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_lowercase() {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c.to_lowercase().next().unwrap_or(c)
            }
        })
        .collect()
}

/// Sets a dotted path as nested objects (skips it on a conflict).
pub fn insert_path(doc: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = doc;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            if !cur.contains_key(p) {
                cur.insert(p.to_string(), value);
            }
            return;
        }
        let entry = cur.entry(p.to_string()).or_insert_with(|| json!({}));
        match entry {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}
