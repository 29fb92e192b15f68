//! Reading a rule's alert overrides (`severity_mapping`,
//! `risk_score_mapping`, `rule_name_override`) with Kibana's schema
//! (`SeverityMappingItem`: `field`, `operator = "equals"`, `value`,
//! `severity`; `RiskScoreMappingItem`: `field`, `operator`, `value`,
//! optional `risk_score`; `RuleNameOverride`: a field name). What they do
//! to an alert is `alert::overrides`'.

use toml::Value;

use super::error::RuleErrorKind;
use super::fields::Fields;
use crate::alert::overrides::{Overrides, SeverityMapping};

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

impl Fields<'_> {
    pub(super) fn overrides(&mut self) -> Overrides {
        let severity_mapping = self
            .mapping_entries("severity_mapping", true)
            .into_iter()
            .filter_map(|(field, value, severity)| {
                Some(SeverityMapping {
                    field,
                    value,
                    severity: severity?,
                })
            })
            .collect();
        let risk_score_field = self
            .mapping_entries("risk_score_mapping", false)
            .into_iter()
            .next()
            .map(|(field, ..)| field);
        // An empty override is Kibana's "none" (the rule form writes "").
        let rule_name_field = self
            .string("rule_name_override")
            .filter(|f| !f.is_empty());
        Overrides {
            severity_mapping,
            risk_score_field,
            rule_name_field,
        }
    }

    /// The `(field, value, severity)` of each entry of a mapping list; an
    /// entry with an error is left out (its error recorded).
    fn mapping_entries(
        &mut self,
        key: &str,
        with_severity: bool,
    ) -> Vec<(String, String, Option<String>)> {
        let Some((value, span)) = self.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            let expected = "an array of mappings ({ field, operator, value })";
            self.wrong_type(key, expected, value, span);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match mapping_entry(item, with_severity) {
                Ok(entry) => out.push(entry),
                Err(problem) => self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("invalid `{key}` entry {}: {problem}", i + 1),
                ),
            }
        }
        out
    }
}

fn mapping_entry(
    item: &Value,
    with_severity: bool,
) -> Result<(String, String, Option<String>), String> {
    let Value::Table(t) = item else {
        return Err(format!("expected a table, found {}", item.type_str()));
    };
    let string = |k: &str| -> Result<String, String> {
        match t.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("expected `{k}` a string, found {}", other.type_str())),
            None => Err(format!("missing `{k}`")),
        }
    };
    let field = string("field")?;
    if field.is_empty() {
        return Err("expected a field name, found \"\"".into());
    }
    let operator = string("operator")?;
    if operator != "equals" {
        return Err(format!(
            "expected `operator` \"equals\", found {operator:?}"
        ));
    }
    let value = string("value")?;
    let severity = if with_severity {
        let s = string("severity")?;
        if !SEVERITIES.contains(&s.as_str()) {
            return Err(format!(
                "expected `severity` \"low\", \"medium\", \"high\" or \"critical\", found {s:?}"
            ));
        }
        Some(s)
    } else {
        None
    };
    Ok((field, value, severity))
}
