//! A new_terms rule's `[rule.new_terms]`: the fields whose value tuples
//! are watched (1–3) and where the history starts. The detection-rules
//! TOML writes them as two `{field, value}` entries:
//!
//! ```toml
//! [rule.new_terms]
//! field = "new_terms_fields"
//! value = ["host.id", "process.command_line"]
//! [[rule.new_terms.history_window_start]]
//! field = "history_window_start"
//! value = "now-14d"
//! ```
//!
//! A Kibana export has the same as the params `new_terms_fields` and
//! `history_window_start`. Kibana's schema (`NewTermsFields`: 1 to 3
//! strings) and `validateHistoryWindowStart`
//! (`rule_types/new_terms/utils.ts`: the history must start before `from`)
//! are checked here; the query itself is a query rule's (KQL or Lucene),
//! parsed by `validate`.

use toml::Value;

use super::datemath::DateMath;
use super::error::RuleErrorKind;
use super::fields::{Fields, Format};
use super::rule::{NewTermsRule, QueryRule};
use crate::eql::Span;

/// Kibana's limit on `new_terms_fields`.
pub const MAX_NEW_TERMS_FIELDS: usize = 3;

impl Fields<'_> {
    /// The new-terms part of a new_terms rule, every problem reported.
    pub(super) fn new_terms(&mut self, query: QueryRule) -> Option<NewTermsRule> {
        let (fields, history) = match (self.get("new_terms"), self.format) {
            (Some((value, span)), _) => self.new_terms_table(value, span)?,
            (None, Format::Json) => self.new_terms_params()?,
            (None, Format::Toml) => {
                self.missing("new_terms");
                return None;
            }
        };
        Some(NewTermsRule {
            query,
            fields,
            history_window_start: history,
        })
    }

    /// `[rule.new_terms]` as the detection-rules TOML writes it.
    fn new_terms_table(&mut self, value: &Value, span: Span) -> Option<(Vec<String>, DateMath)> {
        let Value::Table(table) = value else {
            self.wrong_type("new_terms", "a table", value, span);
            return None;
        };
        let mut ok = true;
        match table.get("field") {
            Some(Value::String(s)) if s == "new_terms_fields" => {}
            found => {
                ok = false;
                let found = found.map_or("nothing".to_string(), |v| v.to_string());
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!(
                        "expected `field = \"new_terms_fields\"` in `new_terms`, found {found}"
                    ),
                );
            }
        }
        let fields = self.new_terms_fields(table.get("value"), "new_terms.value", span);
        let history = match table.get("history_window_start") {
            Some(Value::Array(items)) if items.len() == 1 => match &items[0] {
                Value::Table(t) => {
                    match t.get("field") {
                        Some(Value::String(s)) if s == "history_window_start" => {}
                        found => {
                            ok = false;
                            let found = found.map_or("nothing".to_string(), |v| v.to_string());
                            self.error(
                                RuleErrorKind::Value,
                                span,
                                format!(
                                    "expected `field = \"history_window_start\"` in \
                                     `new_terms.history_window_start`, found {found}"
                                ),
                            );
                        }
                    }
                    self.history_window_start(
                        t.get("value"),
                        "new_terms.history_window_start.value",
                        span,
                    )
                }
                other => {
                    self.wrong_type("new_terms.history_window_start", "a table", other, span);
                    None
                }
            },
            Some(Value::Array(items)) => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!(
                        "expected one `[[rule.new_terms.history_window_start]]` entry, found {}",
                        items.len()
                    ),
                );
                None
            }
            Some(other) => {
                self.wrong_type("new_terms.history_window_start", "an array", other, span);
                None
            }
            None => {
                self.error(
                    RuleErrorKind::Missing,
                    span,
                    "missing required field `history_window_start` in `new_terms`".to_string(),
                );
                None
            }
        };
        for key in table.keys() {
            if !["field", "value", "history_window_start"].contains(&key.as_str()) {
                self.error(
                    RuleErrorKind::UnknownField,
                    span,
                    format!("unknown field `{key}` in `new_terms` is ignored"),
                );
            }
        }
        let (fields, history) = (fields?, history?);
        ok.then_some((fields, history))
    }

    /// `new_terms_fields` and `history_window_start` as a Kibana export
    /// has them.
    fn new_terms_params(&mut self) -> Option<(Vec<String>, DateMath)> {
        let fields = match self.get("new_terms_fields") {
            Some((value, span)) => self.new_terms_fields(Some(value), "new_terms_fields", span),
            None => {
                self.missing("new_terms_fields");
                None
            }
        };
        let history = match self.get("history_window_start") {
            Some((value, span)) => {
                self.history_window_start(Some(value), "history_window_start", span)
            }
            None => {
                self.missing("history_window_start");
                None
            }
        };
        Some((fields?, history?))
    }

    fn new_terms_fields(
        &mut self,
        value: Option<&Value>,
        key: &str,
        span: Span,
    ) -> Option<Vec<String>> {
        let items = match value {
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.wrong_type(key, "an array of field names", other, span);
                return None;
            }
            None => {
                self.error(
                    RuleErrorKind::Missing,
                    span,
                    format!("missing required field `{key}`"),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            match item {
                Value::String(s) if !s.trim().is_empty() => {
                    if out.contains(s) {
                        self.error(
                            RuleErrorKind::Value,
                            span,
                            format!("field `{s}` is twice in `{key}`"),
                        );
                        return None;
                    }
                    out.push(s.clone());
                }
                other => {
                    let found = match other {
                        Value::String(s) => format!("{s:?}"),
                        v => self.type_name(v).to_string(),
                    };
                    self.error(
                        RuleErrorKind::Type,
                        span,
                        format!("expected field names in `{key}`, found {found}"),
                    );
                    return None;
                }
            }
        }
        if out.is_empty() || out.len() > MAX_NEW_TERMS_FIELDS {
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "expected 1 to {MAX_NEW_TERMS_FIELDS} fields in `{key}`, found {}",
                    out.len()
                ),
            );
            return None;
        }
        Some(out)
    }

    fn history_window_start(
        &mut self,
        value: Option<&Value>,
        key: &str,
        span: Span,
    ) -> Option<DateMath> {
        match value {
            Some(Value::String(s)) => match DateMath::parse(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.error(RuleErrorKind::Value, span, format!("in `{key}`: {e}"));
                    None
                }
            },
            Some(other) => {
                self.wrong_type(key, "date math like `now-7d`", other, span);
                None
            }
            None => {
                self.error(
                    RuleErrorKind::Missing,
                    span,
                    format!("missing required field `{key}`"),
                );
                None
            }
        }
    }

    /// Kibana's `validateHistoryWindowStart`: the history must start before
    /// the window (`from`), else nothing could ever be in it.
    pub(super) fn check_history_before_from(&mut self, rule: &NewTermsRule, from: DateMath) {
        if rule.history_window_start.offset_ms() >= from.offset_ms() {
            let span = self
                .get("new_terms")
                .or_else(|| self.get("history_window_start"))
                .map_or(self.header, |(_, s)| s);
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "history_window_start {} must be earlier than from {from} (Kibana: the \
                     history window is smaller than the rule's interval plus its look-back)",
                    rule.history_window_start
                ),
            );
        }
    }
}
