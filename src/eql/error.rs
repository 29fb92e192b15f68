//! Structured EQL errors: a kind, a span into the query text, and a message.
//!
//! Messages are lower-case, without a trailing period, and say what was
//! expected and what was found. Rendering with line, column and a caret
//! happens at the edge (the CLI and rule loading), never here.

use super::span::Span;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EqlError {
    pub kind: ErrorKind,
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A character or token the lexer cannot read (unterminated string, bad escape).
    Lex,
    /// The tokens do not form a query (expected X, found Y).
    Syntax,
    /// Valid EQL that Elasticsearch does not run (`| filter`, `join`, ...).
    Unsupported,
    /// Nesting deeper than the parser's recursion limit.
    TooDeep,
    /// Parsed, but wrong: unknown function, wrong arity, bad sequence shape, bad types.
    Semantic,
}

impl EqlError {
    pub fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> Self {
        EqlError {
            kind,
            span,
            message: message.into(),
        }
    }
}
