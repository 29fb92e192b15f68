//! KQL errors: syntax errors with what was expected where (the same
//! expectations Kibana's parser reports), and translation errors.
//!
//! Messages follow the house style (`expected ..., found ...`); the
//! [`ParseError::kibana_message`] text is Kibana's own wording, for tests
//! against Kibana's expectations and for users who compare with Kibana.

use std::fmt;

use crate::eql::Span;

/// One thing the parser would have accepted at the error position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expected {
    /// A literal piece of syntax, such as `(` or `:`.
    Literal(&'static str),
    /// A grammar rule by its name (`fieldName`, `value`, `literal`,
    /// `whitespace`, `OR`, `AND`, `NOT`).
    Rule(&'static str),
    /// A character class (never surfaces with Kibana's grammar).
    Class(&'static str),
    AnyChar,
    EndOfInput,
}

impl Expected {
    /// The text Kibana shows for it.
    pub fn kibana_text(&self) -> String {
        match self {
            Expected::Literal(s) => format!("\"{s}\""),
            Expected::Rule("fieldName") => "field name".into(),
            Expected::Rule(name) => (*name).into(),
            Expected::Class(c) => (*c).into(),
            Expected::AnyChar => "any character".into(),
            Expected::EndOfInput => "end of input".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("expected {}, found {}", expectation_list(.expected), found_text(.found))]
    Syntax {
        expected: Vec<Expected>,
        /// The character at the error, `None` at the end of the query.
        found: Option<char>,
        span: Span,
    },
    #[error("the query nests deeper than {limit} levels of parentheses or braces")]
    TooDeep { limit: usize, span: Span },
    #[error("leading wildcards are disabled (allow_leading_wildcards is off)")]
    LeadingWildcard { span: Span },
}

impl ParseError {
    pub fn span(&self) -> Span {
        match self {
            ParseError::Syntax { span, .. }
            | ParseError::TooDeep { span, .. }
            | ParseError::LeadingWildcard { span } => *span,
        }
    }

    /// Kibana's `KQLSyntaxError` message: the expectations, the query, and
    /// a caret line (offsets in characters).
    pub fn kibana_message(&self, query: &str) -> String {
        let short = match self {
            ParseError::Syntax {
                expected, found, ..
            } => format!(
                "Expected {} but {} found.",
                expectation_list(expected),
                match found {
                    Some(c) => format!("\"{c}\""),
                    None => "end of input".into(),
                }
            ),
            ParseError::LeadingWildcard { .. } => {
                "Leading wildcards are disabled. See query:allowLeadingWildcards in Advanced Settings."
                    .into()
            }
            other => other.to_string(),
        };
        let start = self.span().start as usize;
        let chars = query
            .get(..start.min(query.len()))
            .map_or(0, |s| s.chars().count());
        format!("{short}\n{query}\n{}^", "-".repeat(chars))
    }
}

/// Kibana's list: texts deduplicated and sorted (JavaScript's default sort,
/// UTF-16 order).
fn expectation_list(expected: &[Expected]) -> String {
    let mut texts: Vec<String> = expected.iter().map(Expected::kibana_text).collect();
    texts.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    texts.dedup();
    texts.join(", ")
}

fn found_text(found: &Option<char>) -> String {
    match found {
        Some(c) => format!("`{c}`"),
        None => "end of input".into(),
    }
}

/// Why a parsed query cannot be translated (Kibana throws the same).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    #[error("`{field}` is not a nested field but is in nested group `{group}`")]
    NotNested {
        field: String,
        group: String,
        span: Span,
    },
    #[error("`{field}` is a nested field (path `{path}`) but is not in a nested group")]
    NestedOutsideGroup {
        field: String,
        path: String,
        span: Span,
    },
    #[error("nested field `{field}` is queried with path `{group}`, expected `{path}`")]
    WrongNestedPath {
        field: String,
        group: String,
        path: String,
        span: Span,
    },
}

impl LowerError {
    pub fn span(&self) -> Span {
        match self {
            LowerError::NotNested { span, .. }
            | LowerError::NestedOutsideGroup { span, .. }
            | LowerError::WrongNestedPath { span, .. } => *span,
        }
    }
}

/// A query error of either stage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KqlError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Lower(#[from] LowerError),
}

impl KqlError {
    pub fn span(&self) -> Span {
        match self {
            KqlError::Parse(e) => e.span(),
            KqlError::Lower(e) => e.span(),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kibana_text())
    }
}
