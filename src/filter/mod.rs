//! The language-neutral filter tree that KQL, Lucene, Kibana filters and
//! exception lists (and later EQL's pushdown) lower to, with its two
//! readers: [`dsl`] renders it as Elasticsearch query DSL for the cluster,
//! [`eval`] evaluates it over `_source` documents with the same semantics
//! for the indices' [`FieldTypes`].
//!
//! A leaf is an Elasticsearch query type on one field ([`Filter`]); which
//! query type a language construct becomes (a `term` on a keyword, a
//! `match` on text, a `range` on a date) is the front end's decision, made
//! once against the field types. This module does no I/O and knows no
//! query language.

pub mod analyzer;
pub mod date;
pub mod dsl;
pub mod eval;
pub mod fields;
pub mod pattern;
pub mod tree;

pub use dsl::{to_dsl, to_dsl_with, DslOptions};
pub use eval::{compile, EvalError, EvalOptions, Matcher, Unmapped};
pub use fields::{FieldInfo, FieldTypes, KibanaType};
pub use tree::{Bounds, Filter, Local, QueryString, Scalar, Verbatim};
