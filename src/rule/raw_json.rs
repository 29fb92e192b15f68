//! One line of a Kibana export as written: a JSON object whose top-level
//! values are kept with the span of their JSON text in the file, in the same
//! shape as a TOML table ([`RawTable`]), so the one rule validation reads
//! both.
//!
//! Values become `toml::Value`s. TOML has no null, so a `null` is left out:
//! at the top level the key counts as absent (Kibana's schema has no
//! required field that may be null), inside arrays and objects the element
//! or key is dropped. This module only reads; what a line *is* (rule,
//! export summary, exception list, connector) is decided in `export`.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use toml::{Spanned, Value};

use super::error::{RuleError, RuleErrorKind};
use super::raw::RawTable;
use crate::eql::Span;

/// A JSON object line: its keys, the span of its opening `{` (where
/// missing-field errors point) and the `threat` entries with their spans.
#[derive(Debug)]
pub struct RawJsonObject {
    pub table: RawTable,
    pub open: Span,
    pub threat_entries: Option<Vec<Spanned<Value>>>,
}

/// Reads `line` (without its newline), which starts at byte `line_start` of
/// the file. Errors: invalid JSON (at serde_json's position), or JSON that
/// is not an object.
pub fn parse_object(line: &str, line_start: usize) -> Result<RawJsonObject, RuleError> {
    let at = |offset: usize, len: usize| Span::new(line_start + offset, line_start + offset + len);
    let whole: &RawValue =
        serde_json::from_str(line).map_err(|e| json_error(line, line_start, &e))?;
    let text = whole.get();
    let open = offset_in(line, text).unwrap_or(0);
    if !text.starts_with('{') {
        return Err(RuleError::new(
            RuleErrorKind::Type,
            at(open, text.len()),
            format!(
                "expected a JSON object (one rule per line), found {}",
                json_type(text)
            ),
        ));
    }
    let members: BTreeMap<String, &RawValue> =
        serde_json::from_str(line).map_err(|e| json_error(line, line_start, &e))?;
    let mut table = RawTable::new();
    let mut threat_entries = None;
    for (key, raw) in members {
        let Some((span, value)) = spanned(line, line_start, raw)? else {
            continue;
        };
        if key == "threat" {
            threat_entries = entries(line, line_start, raw)?;
        }
        table.insert(key, Spanned::new(span.range(), value));
    }
    Ok(RawJsonObject {
        table,
        open: at(open, 1),
        threat_entries,
    })
}

/// A raw value's span in the file and its value; `None` for `null`.
fn spanned(
    line: &str,
    line_start: usize,
    raw: &RawValue,
) -> Result<Option<(Span, Value)>, RuleError> {
    let text = raw.get();
    let start = offset_in(line, text).unwrap_or(0);
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| json_error(text, line_start + start, &e))?;
    let span = Span::new(line_start + start, line_start + start + text.len());
    Ok(to_toml(json).map(|value| (span, value)))
}

/// The non-null elements of an array, each with its span; `None` if `raw`
/// is not an array.
fn entries(
    line: &str,
    line_start: usize,
    raw: &RawValue,
) -> Result<Option<Vec<Spanned<Value>>>, RuleError> {
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some((span, value)) = spanned(line, line_start, item)? {
            out.push(Spanned::new(span.range(), value));
        }
    }
    Ok(Some(out))
}

/// Where `inner` (a slice borrowed from `outer`, as serde_json's borrowed
/// `RawValue`s are) starts within `outer`.
fn offset_in(outer: &str, inner: &str) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start + inner.len() <= outer.len()).then_some(start)
}

/// JSON as TOML: integers that fit `i64` stay integers, other numbers are
/// floats, `null` is dropped (see the module docs).
fn to_toml(v: serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64()?),
        },
        J::String(s) => Value::String(s),
        J::Array(items) => Value::Array(items.into_iter().filter_map(to_toml).collect()),
        J::Object(members) => Value::Table(
            members
                .into_iter()
                .filter_map(|(k, v)| Some((k, to_toml(v)?)))
                .collect(),
        ),
    })
}

/// The kind of JSON value `text` holds, from its first character.
fn json_type(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// serde_json's error at its position in the line. Its message ends with
/// "at line L column C", which the diagnostic says better.
fn json_error(line: &str, line_start: usize, e: &serde_json::Error) -> RuleError {
    // One line of input: serde_json's column is the 1-based byte column
    // (0 when it failed before reading anything).
    let col = e.column().saturating_sub(1).min(line.len());
    let mut message = e.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    let end = (col + 1).min(line.len()).max(col);
    RuleError::new(
        RuleErrorKind::Json,
        Span::new(line_start + col, line_start + end),
        format!("invalid JSON: {message}"),
    )
}
