//! Typed access to one table's values (a TOML table, or an exported rule's
//! JSON object read into the same shape): each getter checks the type,
//! records an error (with the value's span) when it is wrong, and returns
//! `None` or an empty default so validation can go on and find the rest.

use toml::{Spanned, Value};

use super::error::{RuleError, RuleErrorKind};
use super::raw::{span_of, RawTable};
use crate::eql::Span;

/// The notation a table was written in: what error messages call its
/// types, and how a string value is decoded (for spans inside the query).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// A detection-rules TOML file.
    Toml,
    /// A line of a Kibana rules export (NDJSON).
    Json,
}

/// Typed access to one table's fields; every problem becomes an error.
pub(super) struct Fields<'a> {
    pub(super) table: &'a RawTable,
    /// Where missing-field errors point: the `[rule]` header line, or the
    /// opening `{` of an exported rule.
    pub(super) header: Span,
    /// How messages name the table: `[rule]`, `[metadata]`, `the exported rule`.
    pub(super) place: &'static str,
    pub(super) format: Format,
    pub(super) text: &'a str,
    /// The `threat` entries each with its own span, when the reader could
    /// tell them apart (an array of tables / objects).
    pub(super) threat_entries: Option<Vec<Spanned<Value>>>,
    pub(super) errors: Vec<RuleError>,
}

impl<'a> Fields<'a> {
    pub(super) fn error(&mut self, kind: RuleErrorKind, span: Span, message: String) {
        self.errors.push(RuleError::new(kind, span, message));
    }

    pub(super) fn get(&self, key: &str) -> Option<(&'a Value, Span)> {
        self.table.get(key).map(|v| (v.get_ref(), span_of(v)))
    }

    /// A value's type in the words of the file's notation (a JSON object is
    /// read as a TOML table, but the person wrote an object).
    pub(super) fn type_name(&self, value: &Value) -> &'static str {
        match (self.format, value) {
            (Format::Json, Value::Table(_)) => "object",
            _ => value.type_str(),
        }
    }

    pub(super) fn wrong_type(&mut self, key: &str, expected: &str, found: &Value, span: Span) {
        let found = self.type_name(found);
        self.error(
            RuleErrorKind::Type,
            span,
            format!("expected {expected} for `{key}`, found {found}"),
        );
    }

    pub(super) fn missing(&mut self, key: &str) {
        let place = self.place;
        self.error(
            RuleErrorKind::Missing,
            self.header,
            format!("missing required field `{key}` in {place}"),
        );
    }

    pub(super) fn string_spanned(&mut self, key: &str) -> Option<(String, Span)> {
        let (value, span) = self.get(key)?;
        match value {
            Value::String(s) => Some((s.clone(), span)),
            other => {
                self.wrong_type(key, "a string", other, span);
                None
            }
        }
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        self.string_spanned(key).map(|(s, _)| s)
    }

    /// An optional string that, when present, must not be blank.
    pub(super) fn non_empty_string(&mut self, key: &str) -> Option<String> {
        let (s, span) = self.string_spanned(key)?;
        if s.trim().is_empty() {
            self.error(
                RuleErrorKind::Value,
                span,
                format!("expected a non-empty `{key}`, found an empty string"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn required_string(&mut self, key: &str) -> Option<String> {
        if !self.table.contains_key(key) {
            self.missing(key);
            return None;
        }
        self.non_empty_string(key)
    }

    pub(super) fn bool(&mut self, key: &str) -> Option<bool> {
        let (value, span) = self.get(key)?;
        match value {
            Value::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(key, "a boolean", other, span);
                None
            }
        }
    }

    pub(super) fn integer(&mut self, key: &str) -> Option<(i64, Span)> {
        let (value, span) = self.get(key)?;
        match value {
            Value::Integer(i) => Some((*i, span)),
            other => {
                self.wrong_type(key, "an integer", other, span);
                None
            }
        }
    }

    /// An array of strings; absent means empty. A wrong element is reported
    /// at the array (the toml crate keeps no spans inside a `Value`).
    pub(super) fn string_list(&mut self, key: &str) -> Vec<String> {
        let Some((value, span)) = self.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.wrong_type(key, "an array of strings", value, span);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => {
                    let message = format!(
                        "expected strings in `{key}`, found {} at position {}",
                        self.type_name(other),
                        i + 1
                    );
                    self.error(RuleErrorKind::Type, span, message);
                }
            }
        }
        out
    }
}
