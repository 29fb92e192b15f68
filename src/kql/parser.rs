//! The structure of KQL, rule for rule as Kibana's grammar
//! (`src/platform/packages/shared/kbn-es-query/src/kuery/grammar/grammar.peggy`):
//!
//! ```text
//! start      = Space* OrQuery? OptionalSpace
//! OrQuery    = AndQuery (Or AndQuery)*          // `or` binds loosest
//! AndQuery   = NotQuery (And NotQuery)*
//! NotQuery   = Not SubQuery / SubQuery
//! SubQuery   = '(' Space* OrQuery OptionalSpace ')' / NestedQuery
//! NestedQuery= Field Space* ':' Space* '{' Space* OrQuery OptionalSpace '}' / Expression
//! Expression = Field Space* RangeOperator Space* Literal
//!            / Field Space* ':' Space* ListOfValues
//!            / Value                            // free text
//! ListOfValues = '(' Space* OrListOfValues OptionalSpace ')' / Value
//! ```
//!
//! with the value lists mirroring the query levels. Alternatives are tried
//! in the grammar's order and every rule is memoized, so both the trees and
//! the syntax errors are Kibana's.

use super::ast::{LitValue, Literal, Node, Part};
use super::error::{Expected, ParseError};
use super::lexer::{Parser, Rule, VTree, Val, MAX_DEPTH};

/// How the query is read (Kibana's parse options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// `query:allowLeadingWildcards`; detection rules run with it on.
    pub allow_leading_wildcards: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            allow_leading_wildcards: true,
        }
    }
}

/// Parses a whole KQL query. An empty query is `*: *` (match all), as in
/// Kibana.
pub fn parse_with(src: &str, opts: ParseOptions) -> Result<Node, ParseError> {
    let mut p = Parser::new(src);
    p.allow_leading_wildcards = opts.allow_leading_wildcards;
    p.spaces();
    let query = p.or_query();
    p.optional_space();
    if p.abort.is_none() {
        if p.at_end() {
            return Ok(match query {
                Some(Val::Node(n)) => n,
                _ => match_all_node(),
            });
        }
        p.fail(Expected::EndOfInput);
    }
    Err(p.syntax_error())
}

/// Kibana's `fromLiteralExpression`: the text read as one literal (a field
/// name or value given programmatically).
pub fn parse_literal(src: &str) -> Result<Literal, ParseError> {
    let mut p = Parser::new(src);
    match p.literal() {
        Some(Val::Lit(l)) if p.at_end() => Ok(l),
        Some(_) => {
            p.fail(Expected::EndOfInput);
            Err(p.syntax_error())
        }
        None => Err(p.syntax_error()),
    }
}

/// `is(*, *)`: what an empty query means.
pub fn match_all_node() -> Node {
    let star = Literal::new(LitValue::Wildcard(vec![Part::Star]), false);
    Node::Is {
        field: star.clone(),
        value: star,
        span: Default::default(),
    }
}

impl Parser {
    fn node_rule(
        &mut self,
        rule: Rule,
        body: impl FnOnce(&mut Self) -> Option<Node>,
    ) -> Option<Node> {
        match self.cached(rule, |p| body(p).map(Val::Node)) {
            Some(Val::Node(n)) => Some(n),
            _ => None,
        }
    }

    fn values_rule(
        &mut self,
        rule: Rule,
        body: impl FnOnce(&mut Self) -> Option<VTree>,
    ) -> Option<VTree> {
        match self.cached(rule, |p| body(p).map(Val::Values)) {
            Some(Val::Values(v)) => Some(v),
            _ => None,
        }
    }

    fn lit_of(v: Option<Val>) -> Option<Literal> {
        match v {
            Some(Val::Lit(l)) => Some(l),
            _ => None,
        }
    }

    /// Enters a parenthesis or brace; false (and the parse aborts) past the
    /// depth limit.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.pos;
            self.abort = Some(ParseError::TooDeep {
                limit: MAX_DEPTH,
                span: self.span(at.saturating_sub(1), at),
            });
            return false;
        }
        true
    }

    /// `head (sep item)*`, as the `+` repetition of the grammar reads it.
    fn chain<T>(
        &mut self,
        head: T,
        sep: fn(&mut Self) -> Option<Val>,
        item: fn(&mut Self) -> Option<T>,
    ) -> Vec<T> {
        let mut items = vec![head];
        loop {
            let save = self.pos;
            if sep(self).is_some() {
                if let Some(next) = item(self) {
                    items.push(next);
                    continue;
                }
            }
            self.pos = save;
            return items;
        }
    }

    pub fn or_query(&mut self) -> Option<Val> {
        self.node_rule(Rule::OrQuery, |p| {
            let start = p.pos;
            let head = p.and_query()?;
            let mut items = p.chain(head, Self::or_op, Self::and_query);
            Some(if items.len() == 1 {
                items.pop()?
            } else {
                Node::Or {
                    clauses: items,
                    span: p.span(start, p.pos),
                }
            })
        })
        .map(Val::Node)
    }

    fn or_query_node(&mut self) -> Option<Node> {
        match self.or_query() {
            Some(Val::Node(n)) => Some(n),
            _ => None,
        }
    }

    fn and_query(&mut self) -> Option<Node> {
        self.node_rule(Rule::AndQuery, |p| {
            let start = p.pos;
            let head = p.not_query()?;
            let mut items = p.chain(head, Self::and_op, Self::not_query);
            Some(if items.len() == 1 {
                items.pop()?
            } else {
                Node::And {
                    clauses: items,
                    span: p.span(start, p.pos),
                }
            })
        })
    }

    fn not_query(&mut self) -> Option<Node> {
        self.node_rule(Rule::NotQuery, |p| {
            let start = p.pos;
            if p.not_op().is_some() {
                if let Some(inner) = p.sub_query() {
                    return Some(Node::Not {
                        inner: Box::new(inner),
                        span: p.span(start, p.pos),
                    });
                }
            }
            p.pos = start;
            p.sub_query()
        })
    }

    fn sub_query(&mut self) -> Option<Node> {
        self.node_rule(Rule::SubQuery, |p| {
            let start = p.pos;
            if p.lit("(") {
                if !p.enter() {
                    return None;
                }
                p.spaces();
                let inner = p.or_query_node();
                p.depth -= 1;
                if let Some(inner) = inner {
                    p.optional_space();
                    if p.lit(")") {
                        return Some(inner);
                    }
                }
            }
            p.pos = start;
            p.nested_query()
        })
    }

    fn field(&mut self) -> Option<Literal> {
        Self::lit_of(self.named(Rule::Field, "fieldName", |p| p.literal()))
    }

    fn nested_query(&mut self) -> Option<Node> {
        self.node_rule(Rule::NestedQuery, |p| {
            let start = p.pos;
            if let Some(path) = p.field() {
                p.spaces();
                if p.lit(":") {
                    p.spaces();
                    if p.lit("{") {
                        if !p.enter() {
                            return None;
                        }
                        p.spaces();
                        let inner = p.or_query_node();
                        p.depth -= 1;
                        if let Some(inner) = inner {
                            p.optional_space();
                            if p.lit("}") {
                                return Some(Node::Nested {
                                    path,
                                    query: Box::new(inner),
                                    span: p.span(start, p.pos),
                                });
                            }
                        }
                    }
                }
            }
            p.pos = start;
            p.expression()
        })
    }

    fn expression(&mut self) -> Option<Node> {
        self.node_rule(Rule::Expression, |p| {
            p.field_range()
                .or_else(|| p.field_value())
                .or_else(|| p.value_expression())
        })
    }

    fn field_range(&mut self) -> Option<Node> {
        self.node_rule(Rule::FieldRange, |p| {
            let start = p.pos;
            let field = p.field()?;
            p.spaces();
            let Some(Val::Op(op)) = p.range_operator() else {
                return None;
            };
            p.spaces();
            let value = Self::lit_of(p.literal())?;
            Some(Node::Range {
                field,
                op,
                value,
                span: p.span(start, p.pos),
            })
        })
    }

    fn field_value(&mut self) -> Option<Node> {
        self.node_rule(Rule::FieldValue, |p| {
            let field = p.field()?;
            p.spaces();
            if !p.lit(":") {
                return None;
            }
            p.spaces();
            let values = p.list_of_values()?;
            Some(apply(&values, &field))
        })
    }

    fn value_expression(&mut self) -> Option<Node> {
        self.node_rule(Rule::ValueExpression, |p| {
            let value = p.value()?;
            let mut field = Literal::new(LitValue::Null, false);
            field.span = value.span;
            Some(Node::Is {
                span: value.span,
                field,
                value,
            })
        })
    }

    fn list_of_values(&mut self) -> Option<VTree> {
        self.values_rule(Rule::ListOfValues, |p| {
            let start = p.pos;
            if p.lit("(") {
                if !p.enter() {
                    return None;
                }
                p.spaces();
                let inner = p.or_list();
                p.depth -= 1;
                if let Some(inner) = inner {
                    p.optional_space();
                    if p.lit(")") {
                        return Some(inner);
                    }
                }
            }
            p.pos = start;
            p.value().map(VTree::Value)
        })
    }

    fn or_list(&mut self) -> Option<VTree> {
        self.values_rule(Rule::OrList, |p| {
            let start = p.pos;
            let head = p.and_list()?;
            let mut items = p.chain(head, Self::or_op, Self::and_list);
            Some(if items.len() == 1 {
                items.pop()?
            } else {
                VTree::Or(items, p.span(start, p.pos))
            })
        })
    }

    fn and_list(&mut self) -> Option<VTree> {
        self.values_rule(Rule::AndList, |p| {
            let start = p.pos;
            let head = p.not_list()?;
            let mut items = p.chain(head, Self::and_op, Self::not_list);
            Some(if items.len() == 1 {
                items.pop()?
            } else {
                VTree::And(items, p.span(start, p.pos))
            })
        })
    }

    fn not_list(&mut self) -> Option<VTree> {
        self.values_rule(Rule::NotList, |p| {
            let start = p.pos;
            if p.not_op().is_some() {
                if let Some(inner) = p.list_of_values() {
                    return Some(VTree::Not(Box::new(inner), p.span(start, p.pos)));
                }
            }
            p.pos = start;
            p.list_of_values()
        })
    }

    /// `Value "value" = QuotedString / UnquotedLiteral`
    fn value(&mut self) -> Option<Literal> {
        let v = self.named(Rule::Value, "value", |p| {
            if let Some(v) = p.quoted_string() {
                return Some(v);
            }
            let lit = Self::lit_of(p.unquoted_literal())?;
            if !p.allow_leading_wildcards && has_leading_wildcard(&lit) {
                p.abort = Some(ParseError::LeadingWildcard { span: lit.span });
                return None;
            }
            Some(Val::Lit(lit))
        });
        Self::lit_of(v)
    }
}

fn has_leading_wildcard(l: &Literal) -> bool {
    matches!(&l.value, LitValue::Wildcard(parts) if parts.first() == Some(&Part::Star) && parts.len() > 1)
}

/// A value list applied to its field (`f: (a or b)` is `f: a or f: b`).
fn apply(values: &VTree, field: &Literal) -> Node {
    match values {
        VTree::Or(items, span) => Node::Or {
            clauses: items.iter().map(|v| apply(v, field)).collect(),
            span: *span,
        },
        VTree::And(items, span) => Node::And {
            clauses: items.iter().map(|v| apply(v, field)).collect(),
            span: *span,
        },
        VTree::Not(inner, span) => Node::Not {
            inner: Box::new(apply(inner, field)),
            span: *span,
        },
        VTree::Value(v) => Node::Is {
            field: field.clone(),
            value: v.clone(),
            span: field.span.to(v.span),
        },
    }
}
