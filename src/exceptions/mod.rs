//! Exception lists: loaded from a folder, resolved for a rule's
//! `exceptions_list`, and turned into the one negated filter Kibana adds to
//! every rule's search, for the cluster and for local evaluation.
//!
//! - Loading ([`ExceptionStore::load_dir`]): Kibana's exception-list export
//!   NDJSON (`POST /api/exception_lists/_export`: a list object, its items,
//!   the export summary; several lists, and rules exports carrying lists,
//!   read too) and detection-rules' exceptions TOML (`[[exceptions]]` with
//!   a `container` and `items`). Every error is reported with file, line
//!   and what was expected; the rest loads, and a list with an error cannot
//!   be used.
//! - Resolving ([`ExceptionStore::resolve_json`]): a rule's
//!   `exceptions_list` entries (`{id, list_id, namespace_type, type}`),
//!   found by `list_id` and `namespace_type` as Kibana finds them. A missing
//!   list is an error (Kibana silently runs the rule without exceptions).
//! - Building ([`RuleExceptions::build`], [`build_exception_filter`]): the
//!   items not expired at `now`, as Kibana's `buildExceptionFilter` writes
//!   them ([`build`]), as a [`crate::filter::Filter`] (`NOT` of a
//!   [`crate::filter::Verbatim`] whose DSL is Kibana's), as a Kibana filter
//!   object to place after the rule's `filters`, and as a per-event test
//!   ([`ExceptionMatcher`]) for sequences.
//!
//! Entries: `match`, `match_any`, `wildcard`, `exists`, `nested`, each
//! `included` or `excluded`; `os_types`; `expire_time`. Value-list entries
//! (`list`) load but are an error when built ("not supported yet").

pub mod build;
mod error;
mod filter;
mod json;
mod model;
mod ndjson;
mod store;
mod toml_file;

pub use error::{BuildError, LoadError, LoadErrorKind, ResolveError};
pub use filter::{build_exception_filter, ExceptionFilter, ExceptionMatcher};
pub use model::{Entry, ExceptionItem, ExceptionList, ListKey, NamespaceType, Operator, Origin};
pub use store::{ExceptionStore, ListRef, RuleExceptions};

/// What one file holds, before lists and items are joined.
#[derive(Default)]
struct Parsed {
    lists: Vec<ExceptionList>,
    items: Vec<ExceptionItem>,
    errors: Vec<LoadError>,
    broken: Vec<ListKey>,
}

#[cfg(test)]
mod tests;
