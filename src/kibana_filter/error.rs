//! Errors of Kibana filter objects.

use crate::querydsl::DslError;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("at `{path}`: expected {expected}, found {found}")]
    Expected {
        path: String,
        expected: String,
        found: String,
    },
    #[error("at `{path}`: a filter needs a query: `query`, or a top-level query such as `exists`, `range` or `match_phrase`")]
    NoQuery { path: String },
    /// The filter's query is not one the cluster accepts.
    #[error(transparent)]
    Dsl(#[from] DslError),
    /// Kibana's `getConvertedValueForField` refuses the value of an old
    /// `match` phrase filter on a boolean field.
    #[error("at `{path}`: {value} is not a valid boolean value for boolean field `{field}`")]
    NotBoolean {
        path: String,
        field: String,
        value: String,
    },
}

impl FilterError {
    /// The JSON pointer the error is at, from the filter list's root.
    pub fn path(&self) -> &str {
        match self {
            FilterError::Expected { path, .. }
            | FilterError::NoQuery { path }
            | FilterError::NotBoolean { path, .. } => path,
            FilterError::Dsl(e) => e.path(),
        }
    }
}
