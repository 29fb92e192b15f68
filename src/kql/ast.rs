//! The KQL syntax tree, shaped like Kibana's (`kuery/node_types`): function
//! nodes `or`, `and`, `not`, `nested`, `is`, `range`, `exists` over literal
//! and wildcard nodes. Every node carries its byte span in the query.

use crate::eql::Span;

/// A literal's value. The parser makes text, booleans (`true`, `false`
/// unquoted), `null` and wildcards; numbers only come from programmatic
/// construction, as in Kibana.
#[derive(Clone, Debug, PartialEq)]
pub enum LitValue {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    /// Unquoted text with at least one unescaped `*`.
    Wildcard(Vec<Part>),
}

/// A piece of a wildcard literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// An unescaped `*`.
    Star,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub value: LitValue,
    /// Written between double quotes (a phrase).
    pub quoted: bool,
    pub span: Span,
}

impl Literal {
    pub fn new(value: LitValue, quoted: bool) -> Literal {
        Literal {
            value,
            quoted,
            span: Span::default(),
        }
    }

    /// `*` alone (Kibana's `isLoneWildcard`).
    pub fn is_lone_wildcard(&self) -> bool {
        matches!(&self.value, LitValue::Wildcard(p) if p.as_slice() == [Part::Star])
    }

    /// The value as Kibana's `toElasticsearchQuery` gives it for a literal
    /// used as a name or plain value: wildcards joined with `*`, other values
    /// spelled as JavaScript would (`String(value)`).
    pub fn to_plain_string(&self) -> String {
        match &self.value {
            LitValue::Null => "null".into(),
            LitValue::Bool(b) => b.to_string(),
            LitValue::Number(n) => js_number(*n),
            LitValue::Text(s) => s.clone(),
            LitValue::Wildcard(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.as_str(),
                    Part::Star => "*",
                })
                .collect(),
        }
    }
}

/// A number as JavaScript's `String(n)` spells it (integers without `.0`).
pub fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl RangeOp {
    /// The query DSL key (`gt`, `gte`, ...).
    pub fn key(self) -> &'static str {
        match self {
            RangeOp::Gt => "gt",
            RangeOp::Gte => "gte",
            RangeOp::Lt => "lt",
            RangeOp::Lte => "lte",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            RangeOp::Gt => ">",
            RangeOp::Gte => ">=",
            RangeOp::Lt => "<",
            RangeOp::Lte => "<=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Or {
        clauses: Vec<Node>,
        span: Span,
    },
    And {
        clauses: Vec<Node>,
        span: Span,
    },
    Not {
        inner: Box<Node>,
        span: Span,
    },
    /// `path: { query }`.
    Nested {
        path: Literal,
        query: Box<Node>,
        span: Span,
    },
    /// `field: value`; a `null` field is free text (searched in all fields).
    Is {
        field: Literal,
        value: Literal,
        span: Span,
    },
    Range {
        field: Literal,
        op: RangeOp,
        value: Literal,
        span: Span,
    },
    /// Kibana's `exists` function (built programmatically; the grammar
    /// writes `field: *`, an `is` with a lone wildcard).
    Exists {
        field: Literal,
        span: Span,
    },
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Or { span, .. }
            | Node::And { span, .. }
            | Node::Not { span, .. }
            | Node::Nested { span, .. }
            | Node::Is { span, .. }
            | Node::Range { span, .. }
            | Node::Exists { span, .. } => *span,
        }
    }

    /// The same tree with every span zeroed, to compare structure.
    pub fn without_spans(&self) -> Node {
        let z = Span::default();
        let lit = |l: &Literal| Literal {
            span: z,
            ..l.clone()
        };
        match self {
            Node::Or { clauses, .. } => Node::Or {
                clauses: clauses.iter().map(Node::without_spans).collect(),
                span: z,
            },
            Node::And { clauses, .. } => Node::And {
                clauses: clauses.iter().map(Node::without_spans).collect(),
                span: z,
            },
            Node::Not { inner, .. } => Node::Not {
                inner: Box::new(inner.without_spans()),
                span: z,
            },
            Node::Nested { path, query, .. } => Node::Nested {
                path: lit(path),
                query: Box::new(query.without_spans()),
                span: z,
            },
            Node::Is { field, value, .. } => Node::Is {
                field: lit(field),
                value: lit(value),
                span: z,
            },
            Node::Range {
                field, op, value, ..
            } => Node::Range {
                field: lit(field),
                op: *op,
                value: lit(value),
                span: z,
            },
            Node::Exists { field, .. } => Node::Exists {
                field: lit(field),
                span: z,
            },
        }
    }
}
