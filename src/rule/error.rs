//! Errors found while loading a rule file (TOML, or a line of a Kibana
//! export), each with a byte span into the file so it can be shown with
//! line, column and a caret.

use crate::eql::{ErrorKind, Span};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub kind: RuleErrorKind,
    /// Byte span into the rule file (not into the query).
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleErrorKind {
    /// The path cannot be read (missing, unreadable).
    Io,
    /// The file is not valid TOML (or not UTF-8, which TOML requires).
    Toml,
    /// A line of a Kibana export (NDJSON) is not valid JSON.
    Json,
    /// A required table or field is absent.
    Missing,
    /// A field has the wrong TOML type (string expected, integer found, ...).
    Type,
    /// A field has the right type but a value Kibana would refuse.
    Value,
    /// A Kibana rule setting that detectd cannot honour, so running the rule
    /// would silently give different results.
    Unsupported,
    /// The EQL query does not parse or verify.
    Eql(ErrorKind),
    /// The KQL query does not parse.
    Kql,
    /// The rule's exception lists cannot be found or applied.
    Exceptions,
    /// A `[rule]` key that no Kibana rule parameter has (often a typo such
    /// as `max_signal`): a warning, since the setting is silently ignored.
    UnknownField,
    /// A Kibana setting detectd reads but does not apply yet
    /// (`alert_suppression`): a warning, the rule runs without it.
    NotApplied,
}

impl RuleError {
    pub fn new(kind: RuleErrorKind, span: Span, message: impl Into<String>) -> Self {
        RuleError {
            kind,
            span,
            message: message.into(),
        }
    }

    /// Warnings are shown but do not make a rule file fail.
    pub fn is_warning(&self) -> bool {
        matches!(
            self.kind,
            RuleErrorKind::UnknownField | RuleErrorKind::NotApplied
        )
    }
}
