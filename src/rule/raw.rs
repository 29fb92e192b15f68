//! A rule file as written: the `[metadata]` and `[rule]` tables of a
//! detection-rules TOML file, every value kept with its span.
//!
//! Values stay untyped (`toml::Value`) on purpose: a typed serde struct
//! stops at the first wrong field, and `detectd check` must report every
//! error of a file at once. Typing happens in [`super::validate`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::error::{RuleError, RuleErrorKind};
use crate::eql::Span;

/// A table's keys with the span of each value.
pub type RawTable = BTreeMap<String, Spanned<toml::Value>>;

/// The tables detectd reads; other top-level tables (`[transform]`, used by
/// the Kibana investigation guide) are ignored.
#[derive(Debug, Deserialize)]
pub struct RawRuleFile {
    pub metadata: Option<Spanned<RawTable>>,
    pub rule: Option<Spanned<RawTable>>,
}

impl RawRuleFile {
    /// Parses TOML; a syntax error (or a `[rule]` that is not a table)
    /// becomes one error at the toml crate's span.
    pub fn parse(text: &str) -> Result<RawRuleFile, RuleError> {
        toml::from_str(text).map_err(|e| {
            if let Some(wrong) = not_a_table(text) {
                return wrong;
            }
            let span = e
                .span()
                .map_or(Span::new(0, 0), |r| Span::new(r.start, r.end));
            // The toml crate's message can span lines ("invalid string\nexpected ...");
            // a diagnostic has one line of message.
            let message = e.message().trim().replace('\n', ": ");
            RuleError::new(
                RuleErrorKind::Toml,
                span,
                format!("invalid TOML: {message}"),
            )
        })
    }
}

/// `rule = 5` is valid TOML but not a rule file; the toml crate's message
/// for it ("invalid type: integer `5`, expected a map") names neither the
/// key nor a table, so say it in our words.
fn not_a_table(text: &str) -> Option<RuleError> {
    #[derive(Deserialize)]
    struct Loose {
        metadata: Option<Spanned<toml::Value>>,
        rule: Option<Spanned<toml::Value>>,
    }
    let loose: Loose = toml::from_str(text).ok()?;
    [("metadata", loose.metadata), ("rule", loose.rule)]
        .into_iter()
        .find_map(|(key, value)| {
            let value = value?;
            (!value.get_ref().is_table()).then(|| {
                RuleError::new(
                    RuleErrorKind::Type,
                    span_of(&value),
                    format!(
                        "expected a table for `{key}`, found {}",
                        value.get_ref().type_str()
                    ),
                )
            })
        })
}

/// The span of a `Spanned` value as a [`Span`].
pub fn span_of<T>(v: &Spanned<T>) -> Span {
    let r = v.span();
    Span::new(r.start, r.end)
}

/// The `threat` entries of `[rule]`, each with its own span, so an error in
/// the third `[[rule.threat]]` points there rather than at the first.
/// `None` if `threat` is absent or not an array of tables (the caller then
/// reports against the whole value).
pub fn threat_entries(text: &str) -> Option<Vec<Spanned<toml::Value>>> {
    #[derive(Deserialize)]
    struct File {
        rule: Option<RuleThreat>,
    }
    #[derive(Deserialize)]
    struct RuleThreat {
        threat: Option<Vec<Spanned<toml::Value>>>,
    }
    toml::from_str::<File>(text).ok()?.rule?.threat
}

/// A TOML value as JSON (dates as their TOML text, a NaN float as null):
/// how Kibana-shaped settings written in TOML reach the JSON readers.
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
