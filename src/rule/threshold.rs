//! A threshold rule's `[rule.threshold]`: the fields events are grouped by
//! (0–3; none = one group of every event), the count a group must reach,
//! and an optional distinct-value count (`cardinality`). As in Kibana's
//! rule schema, `field` is a string or an array of at most 3 strings and
//! `value` an integer of at least 1 (`""` and `[]` mean no field, as
//! Kibana's `normalizeThresholdField` has it). `cardinality` is a list of
//! `{field, value}` in Kibana, but its aggregation reads only the first
//! (`rule_types/threshold/build_threshold_aggregation.ts`): detectd
//! refuses a second rather than ignore it. The query itself is a query
//! rule's (KQL or Lucene), parsed by `validate`.

use toml::Value;

use super::error::RuleErrorKind;
use super::fields::Fields;
use super::rule::{QueryRule, ThresholdCardinality, ThresholdRule};

/// Kibana's limit on `threshold.field`.
pub const MAX_THRESHOLD_FIELDS: usize = 3;

impl Fields<'_> {
    /// The `threshold` table of a threshold rule, every problem reported.
    pub(super) fn threshold(&mut self, query: QueryRule) -> Option<ThresholdRule> {
        let Some((value, span)) = self.get("threshold") else {
            self.missing("threshold");
            return None;
        };
        let Value::Table(table) = value else {
            self.wrong_type("threshold", "a table", value, span);
            return None;
        };
        let mut ok = true;
        let fields: Vec<String> = match table.get("field") {
            None => Vec::new(),
            Some(Value::String(s)) if s.is_empty() => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                        other => {
                            ok = false;
                            let found = self.describe(other);
                            self.error(
                                RuleErrorKind::Type,
                                span,
                                format!("expected field names in `threshold.field`, found {found}"),
                            );
                        }
                    }
                }
                out
            }
            Some(other) => {
                self.wrong_type("threshold.field", "a string or an array", other, span);
                return None;
            }
        };
        if fields.len() > MAX_THRESHOLD_FIELDS {
            ok = false;
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "expected at most {MAX_THRESHOLD_FIELDS} fields in `threshold.field`, found {}",
                    fields.len()
                ),
            );
        }
        let value = match table.get("value") {
            None => {
                ok = false;
                self.error(
                    RuleErrorKind::Missing,
                    span,
                    "missing required field `value` in `threshold`".to_string(),
                );
                0
            }
            Some(Value::Integer(v)) if *v >= 1 => *v as u64,
            Some(Value::Integer(v)) => {
                ok = false;
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected `threshold.value` of at least 1, found {v}"),
                );
                0
            }
            Some(other) => {
                self.wrong_type("threshold.value", "an integer", other, span);
                return None;
            }
        };
        let cardinality = match table.get("cardinality") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match self.cardinality(item, span) {
                        Some(c) => out.push(c),
                        None => ok = false,
                    }
                }
                if out.len() > 1 {
                    ok = false;
                    self.error(
                        RuleErrorKind::Value,
                        span,
                        format!(
                            "expected at most one entry in `threshold.cardinality` (Kibana counts \
                             only one field), found {}",
                            out.len()
                        ),
                    );
                }
                out
            }
            Some(other) => {
                self.wrong_type("threshold.cardinality", "an array", other, span);
                return None;
            }
        };
        for key in table.keys() {
            if !["field", "value", "cardinality"].contains(&key.as_str()) {
                self.error(
                    RuleErrorKind::UnknownField,
                    span,
                    format!("unknown field `{key}` in `threshold` is ignored"),
                );
            }
        }
        ok.then_some(ThresholdRule {
            query,
            fields,
            value,
            cardinality,
        })
    }

    fn cardinality(
        &mut self,
        item: &Value,
        span: crate::eql::Span,
    ) -> Option<ThresholdCardinality> {
        let Value::Table(t) = item else {
            let found = self.describe(item);
            self.error(
                RuleErrorKind::Type,
                span,
                format!(
                    "expected `{{field, value}}` entries in `threshold.cardinality`, found {found}"
                ),
            );
            return None;
        };
        let field = match t.get("field") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    "expected a field name as `field` of a `threshold.cardinality` entry"
                        .to_string(),
                );
                return None;
            }
        };
        let value = match t.get("value") {
            Some(Value::Integer(v)) if *v >= 0 => *v as u64,
            found => {
                let found = found.map_or("nothing".to_string(), |v| v.to_string());
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!(
                        "expected a `value` of at least 0 in a `threshold.cardinality` entry, \
                         found {found}"
                    ),
                );
                return None;
            }
        };
        Some(ThresholdCardinality { field, value })
    }

    pub(super) fn describe(&self, value: &Value) -> String {
        match value {
            Value::String(s) => format!("{s:?}"),
            other => self.type_name(other).to_string(),
        }
    }
}
