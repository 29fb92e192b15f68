//! The local evaluator: a [`Filter`] over `_source` documents with the
//! semantics the cluster gives it for the indices' field types.
//!
//! [`compile`] resolves every leaf against the [`FieldTypes`] once (query
//! values parsed for the field's type, text analyzed, patterns compiled) and
//! fails where the cluster would fail the search (a number query on `bytes:
//! abc`) or where detectd cannot know the answer offline (a type or date
//! format it does not model, a `query_string` outside the evaluable subset):
//! never a silently wrong answer. [`Matcher::matches`] then decides per
//! document.
//!
//! Elasticsearch semantics kept: a multi-valued field matches when any value
//! does; a missing or `null` field matches no leaf (and so satisfies a
//! `not`); `null_value` stands in for an explicit `null`; keyword values
//! past `ignore_above` are not indexed; integer types truncate fractions;
//! `float`/`half_float`/`scaled_float` compare at their precision; fields
//! under a `nested` object only match inside a `nested` query on that path.
//! Fields the types do not know are handled per [`Unmapped`].
//!
//! A `constant_keyword` reads its mapped value (every document has it).
//!
//! Limits: a field mapped to types of different families in different
//! indices cannot be evaluated, nor one with an analyzer other than
//! `standard` or a normalizer (errors, when the mapping says so; field caps
//! do not, so with field caps alone such a field is read as standard text
//! or a plain keyword); a `constant_keyword` known only from field caps is
//! read from `_source`; `include_in_parent` nested objects are not
//! modelled.

mod compile;
mod leaf;
mod typed;
pub mod values;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::date::{DateError, Nanos};
use super::fields::FieldTypes;
use super::tree::Filter;
use compile::{DynLeaf, Leaf, Node};

/// What a leaf on a field the types do not know matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unmapped {
    /// Nothing, as on the cluster with an explicit mapping.
    #[default]
    NoMatch,
    /// What Elasticsearch's default dynamic mapping would have made of each
    /// value: strings are `text` (with a `.keyword` sub-field, `ignore_above`
    /// 256) or `date` when they read as ISO dates, integers `long`, other
    /// numbers `float`, booleans `boolean`. A `nested` query on an unknown
    /// path looks into each object at the path.
    Dynamic,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalOptions {
    pub unmapped: Unmapped,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("cannot evaluate offline: {0}")]
    Unsupported(String),
    #[error("field `{field}`: {message}")]
    Query { field: String, message: String },
    #[error(transparent)]
    Date(#[from] DateError),
}

/// A compiled filter.
#[derive(Clone, Debug)]
pub struct Matcher {
    root: Node,
    mapped: BTreeSet<String>,
}

/// Compiles a filter for the indices' field types.
pub fn compile(
    filter: &Filter,
    types: &FieldTypes,
    opts: &EvalOptions,
) -> Result<Matcher, EvalError> {
    let root = compile::Compiler { types, opts }.node(filter, false)?;
    Ok(Matcher {
        root,
        mapped: types.leaf_names().map(str::to_string).collect(),
    })
}

impl Matcher {
    /// Whether the document matches; `now` resolves date math.
    pub fn matches(&self, doc: &Value, now: DateTime<Utc>) -> bool {
        let now = Nanos::from(now.timestamp()) * 1_000_000_000
            + Nanos::from(now.timestamp_subsec_nanos());
        self.eval(&self.root, doc, None, now)
    }

    fn eval(&self, node: &Node, doc: &Value, scope: Option<&str>, now: Nanos) -> bool {
        match node {
            Node::Const(b) => *b,
            Node::And(v) => v.iter().all(|n| self.eval(n, doc, scope, now)),
            Node::Or(v) => v.iter().any(|n| self.eval(n, doc, scope, now)),
            Node::Not(n) => !self.eval(n, doc, scope, now),
            Node::Leaf(leaf) => leaf_matches(leaf, doc, scope, now),
            Node::Dynamic(leaf) => {
                scope.is_none_or(|s| leaf.source.starts_with(s))
                    && values::scalars(doc, &leaf.source)
                        .into_iter()
                        .any(|v| leaf.matches(v, now))
            }
            Node::AnyUnmapped(leaf) => values::leaves(doc)
                .into_iter()
                .any(|(path, v)| !self.mapped.contains(&path) && leaf.matches(v, now)),
            Node::Nested { path, inner } => values::objects(doc, path).into_iter().any(|obj| {
                let sub = values::rooted(path, obj);
                self.eval(inner, &sub, Some(path), now)
            }),
        }
    }
}

fn leaf_matches(leaf: &Leaf, doc: &Value, scope: Option<&str>, now: Nanos) -> bool {
    if leaf.nested.as_deref() != scope {
        return false;
    }
    let hit = |v: &Value| {
        typed::index(&leaf.family, v, leaf.ignore_above)
            .is_some_and(|ix| leaf.test.matches(&ix, now))
    };
    if let Some(c) = &leaf.constant {
        return hit(c);
    }
    if values::scalars(doc, &leaf.source).into_iter().any(hit) {
        return true;
    }
    leaf.null_value
        .as_ref()
        .is_some_and(|nv| values::has_null(doc, &leaf.source) && hit(nv))
}

impl DynLeaf {
    fn matches(&self, v: &Value, now: Nanos) -> bool {
        let Some((family, test)) = self.pick(v) else {
            return false;
        };
        let ignore_above = self.keyword_sub.then_some(256);
        typed::index(family, v, ignore_above).is_some_and(|ix| test.matches(&ix, now))
    }
}

#[cfg(test)]
mod tests;
