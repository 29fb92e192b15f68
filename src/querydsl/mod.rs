//! Elasticsearch query DSL read into the filter tree: what a query someone
//! else wrote selects, so detectd can evaluate it locally with the same
//! meaning the cluster gives it.
//!
//! The queries come from Kibana: a rule's `filters` (Kibana filter objects,
//! [`crate::kibana_filter`]) and the filter Kibana builds from exception
//! lists ([`crate::exceptions`]). The cluster always gets them as written
//! ([`crate::filter::Verbatim`]); this module only says what they mean.
//!
//! [`read`] answers in three ways:
//! - a tree ([`Local::Tree`]) for the queries those filters use: `term`,
//!   `terms`, `match` (operator `or`), `match_phrase` (no slop), `wildcard`
//!   (with `case_insensitive`), `prefix`, `range`, `exists`, `bool` (every
//!   clause kind and `minimum_should_match`), `nested`, `constant_score`,
//!   `dis_max`, `boosting`, `match_all`, `match_none`, and `query_string`
//!   through the Lucene subset of [`crate::kql::lucene`];
//! - [`Local::Unsupported`] with the reason for queries the cluster runs but
//!   detectd cannot decide offline (`script`, `regexp`, `fuzzy`, geo
//!   queries, `match` with `operator: and`, options that change analysis,
//!   queries on metadata fields such as `_id`...): evaluating them is an
//!   error, never a guess;
//! - [`DslError`] for what is not a query the cluster would accept: unknown
//!   query types or parameters, wrong shapes. These are load-time errors.
//!
//! Scores are ignored (`boost`, `_name`, `score_mode`, `rewrite` have no
//! effect on which documents match).

mod bool_query;
pub mod error;
mod leaf;
mod reader;

pub use error::{DslError, Pointer};

use serde_json::Value;

use crate::filter::Local;

/// The local meaning of a query; `at` is where the query sits, for errors.
pub fn read(query: &Value, at: &Pointer) -> Result<Local, DslError> {
    let mut r = reader::Reader::default();
    let tree = r.query(query, at)?;
    Ok(match r.unsupported {
        Some(why) => Local::Unsupported(why),
        None => Local::Tree(Box::new(tree)),
    })
}

#[cfg(test)]
mod tests;
