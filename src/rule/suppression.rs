//! `[rule.alert_suppression]`: Kibana's alert suppression (Platinum there),
//! for every rule type. `group_by` names 1 to 3 fields (a threshold rule
//! has none: its groups are its threshold fields), `duration` (`{value,
//! unit}`, unit `s`, `m` or `h`) suppresses into an open alert for that
//! long, without it per rule run, and `missing_fields_strategy` says
//! whether events lacking a field are suppressed together (`suppress`, the
//! default) or alert one by one (`doNotSuppress`). The rule schema:
//! `common/api/detection_engine/model/rule_schema/common_attributes.schema.yaml`
//! (`AlertSuppression`, `AlertSuppressionDuration`).

use std::time::Duration;

use toml::Value;

use super::error::RuleErrorKind;
use super::fields::Fields;

/// Kibana's limit on `group_by`.
pub const MAX_SUPPRESSION_FIELDS: usize = 3;

/// How a rule suppresses its alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// The fields whose values make a group (empty on a threshold rule:
    /// its threshold fields).
    pub group_by: Vec<String>,
    /// How long an open alert takes in its group's later matches; `None`:
    /// one alert per group per rule run.
    pub duration: Option<Duration>,
    /// Whether events missing a `group_by` field are suppressed together.
    pub suppress_missing: bool,
}

impl Fields<'_> {
    /// `[rule.alert_suppression]`, if the rule has one; `threshold` says
    /// whether the rule is a threshold rule (no `group_by`, a `duration`).
    pub(super) fn alert_suppression(&mut self, threshold: bool) -> Option<Suppression> {
        let (value, span) = self.get("alert_suppression")?;
        let Value::Table(table) = value else {
            self.wrong_type("alert_suppression", "a table", value, span);
            return None;
        };
        let mut errs: Vec<String> = Vec::new();
        let group_by: Vec<String> = match table.get("group_by") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            Some(other) => {
                let found = self.describe(other);
                errs.push(format!(
                    "expected field names in `alert_suppression.group_by`, found {found}"
                ));
                Vec::new()
            }
        };
        let listed = table
            .get("group_by")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if listed != group_by.len() {
            errs.push(
                "expected field names in `alert_suppression.group_by`, found an empty or \
                 non-string entry"
                    .to_string(),
            );
        }
        if threshold && !group_by.is_empty() {
            errs.push(
                "a threshold rule suppresses by its threshold fields: remove \
                 `alert_suppression.group_by`"
                    .to_string(),
            );
        } else if !threshold && (group_by.is_empty() || group_by.len() > MAX_SUPPRESSION_FIELDS) {
            errs.push(format!(
                    "expected 1 to {MAX_SUPPRESSION_FIELDS} fields in `alert_suppression.group_by`, found {}",
                    group_by.len()
                ),
            );
        }
        let duration = match table.get("duration") {
            None => None,
            Some(Value::Table(d)) => {
                let value = d.get("value").and_then(Value::as_integer);
                let unit = d.get("unit").and_then(Value::as_str);
                let seconds = match unit {
                    Some("s") => Some(1),
                    Some("m") => Some(60),
                    Some("h") => Some(3600),
                    _ => None,
                };
                match (value, seconds) {
                    (Some(v), Some(s)) if v >= 1 => {
                        Some(Duration::from_secs(u64::try_from(v).unwrap_or(0) * s))
                    }
                    _ => {
                        errs.push(
                            "expected `alert_suppression.duration` = {value = <at least 1>, \
                             unit = \"s\" | \"m\" | \"h\"}"
                                .to_string(),
                        );
                        None
                    }
                }
            }
            Some(other) => {
                let found = self.describe(other);
                errs.push(format!(
                    "expected a table in `alert_suppression.duration`, found {found}"
                ));
                None
            }
        };
        if threshold && duration.is_none() && errs.is_empty() {
            errs.push("a threshold rule's alert_suppression needs a `duration`".to_string());
        }
        let suppress_missing = match table.get("missing_fields_strategy") {
            None => true,
            Some(Value::String(s)) if s == "suppress" => true,
            Some(Value::String(s)) if s == "doNotSuppress" => false,
            Some(other) => {
                let found = self.describe(other);
                errs.push(format!(
                        "expected `missing_fields_strategy` \"suppress\" or \"doNotSuppress\", found {found}"
                    ),
                );
                true
            }
        };
        let ok = errs.is_empty();
        for message in errs {
            self.error(RuleErrorKind::Value, span, message);
        }
        ok.then_some(Suppression {
            group_by,
            duration,
            suppress_missing,
        })
    }
}
