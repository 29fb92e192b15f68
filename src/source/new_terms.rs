//! Finding a window's new terms at the source (new_terms rules): what is
//! asked and what comes back. A source that cannot aggregate answers
//! `None` and the detector works on the events it fetches instead, with
//! the same meaning (`runner::detect::new_terms`).
//!
//! The meaning, Kibana's (`rule_types/new_terms/*.ts`): a tuple is the
//! values of the fields of one document, one tuple per combination when a
//! field holds several values (a composite aggregation's `terms` sources),
//! none when a field is missing (no `missing_bucket`). A tuple seen in the
//! window is new when its first time since `history_from` is after the
//! window's start (`first_seen > from`, `buildNewTermsAgg`'s
//! `bucket_selector`): so the history is `[history_from, window start]`,
//! both ends included, and a tuple whose only documents sit exactly at the
//! window's start is not new. Its alert is on its earliest document in the
//! window (`top_hits` sorted by time, size 1).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::DocRef;

/// New tuples of `fields` in the window of a request (its time range),
/// against the history from `history_from` to the window's start.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTermsAsk {
    pub fields: Vec<String>,
    pub history_from: DateTime<Utc>,
}

/// One new tuple and its first document in the window.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTerm {
    /// The tuple's value of each field, in the order asked.
    pub values: Vec<Value>,
    pub doc: DocRef,
    /// Epoch ms of that document.
    pub ts: i64,
}

/// The new tuples of a window, with the source's warnings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTerms {
    pub terms: Vec<NewTerm>,
    pub warnings: Vec<String>,
}
