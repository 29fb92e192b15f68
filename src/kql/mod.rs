//! KQL, Kibana's query language, with no I/O: a parser with spans and
//! Kibana's syntax errors ([`parse`]), a syntax tree shaped like Kibana's
//! ([`ast`]), and the translation to the shared [`crate::filter`] tree as
//! Kibana's `kbn-es-query` translates it for the indices' field types
//! ([`lower`]). The filter then renders as query DSL for the cluster and
//! evaluates locally with the same meaning.
//!
//! The grammar, its quirks included, is Kibana's
//! (`src/platform/packages/shared/kbn-es-query/src/kuery/grammar/grammar.peggy`):
//! `or` < `and` < `not` in precedence (keywords case-insensitive, between
//! whitespace), parentheses, `field: (a or b)`, ranges `< <= > >=`,
//! `field: *` (exists), quoted phrases (no wildcards inside), unquoted
//! values with `*` and backslash escapes, and which may hold spaces
//! (`msg: hello world` is one value), nested groups `path: { ... }`,
//! wildcard field names, and free text without a field.
//!
//! It does not: scripted fields (detection rules have none), Kibana's
//! autocomplete cursor.

pub mod ast;
mod display;
pub mod error;
mod lexer;
pub mod lower;
pub mod lucene;
mod parser;

pub use ast::{LitValue, Literal, Node, Part, RangeOp};
pub use display::{escape_kuery, escape_query_string, literal as display_literal};
pub use error::{Expected, KqlError, LowerError, ParseError};
pub use lower::{lower, lower_in_group, KqlOptions};
pub use parser::{match_all_node, parse_literal, parse_with, ParseOptions};

use serde_json::{json, Value};

use crate::filter::{FieldTypes, Filter};

/// Parses a KQL query as Kibana's detection rules do (leading wildcards
/// allowed).
pub fn parse(text: &str) -> Result<Node, ParseError> {
    parse_with(text, ParseOptions::default())
}

/// Parses and translates a query for the indices' field types.
pub fn to_filter(
    text: &str,
    types: Option<&FieldTypes>,
    opts: &KqlOptions,
) -> Result<Filter, KqlError> {
    Ok(lower(&parse(text)?, types, opts)?)
}

/// The whole query as Kibana's `buildEsQuery` sends a KQL query: its
/// translation in `bool.filter` (dropped when it matches all).
pub fn es_query(filter: &Filter) -> Value {
    let clauses: Vec<Value> = match filter {
        Filter::MatchAll => Vec::new(),
        f => vec![crate::filter::to_dsl(f)],
    };
    json!({ "bool": { "must": [], "filter": clauses, "should": [], "must_not": [] } })
}

#[cfg(test)]
mod tests;
