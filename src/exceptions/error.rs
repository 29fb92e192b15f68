//! Errors of loading exception files, resolving a rule's lists and
//! building the exception filter.

use std::path::PathBuf;

use super::model::ListKey;

/// A problem in an exception file, at its line when known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {kind}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub kind: LoadErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid TOML: {0}")]
    Toml(String),
    /// An object that is not what an exception file holds, or a field with
    /// the wrong shape (the message says where in the object).
    #[error("{0}")]
    Invalid(String),
    #[error("exception list {key} is also defined at {first}")]
    DuplicateList { key: ListKey, first: String },
    #[error("exception item {item} belongs to list {key}, which no exception file defines")]
    ItemWithoutList { item: String, key: ListKey },
}

/// A rule's `exceptions_list` that cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("exceptions_list[{index}]: {message}")]
    Reference { index: usize, message: String },
    #[error("exception {} not found in the exception lists folder: {}", if .0.len() == 1 { "list" } else { "lists" }, .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Missing(Vec<ListKey>),
    #[error("exception list {0} did not load (see the errors of its file)")]
    Broken(ListKey),
}

/// An exception item detectd cannot turn into a filter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("exception item {item} of list {key}: value-list entries are not supported yet (`{field}` in value list `{value_list}`)")]
    ValueList {
        key: ListKey,
        item: String,
        field: String,
        value_list: String,
    },
}
