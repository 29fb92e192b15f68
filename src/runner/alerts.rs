//! From the rule and the matches to alert ids and [`AlertRule`]: what the
//! run computes before any alert document is built.

use serde_json::{Map, Value};

use super::run::Candidate;
use crate::alert::{ids, AlertRule};
use crate::rule::Rule;

/// The alert ids of a match, its head (event alert or shell) first: the
/// same recipes `alert` uses to build the documents, computed without the
/// sources so dedup and cap come before reading them.
pub(super) fn group_ids(c: &Candidate, grouped: bool, space: &str, rule_id: &str) -> Vec<String> {
    let present: Vec<ids::EventRef<'_>> = c
        .events
        .iter()
        .flatten()
        .map(|h| ids::EventRef {
            index: &h.index,
            id: &h.id,
        })
        .collect();
    if present.is_empty() {
        return Vec::new();
    }
    if !grouped {
        return vec![ids::event_alert_id(present[0], space, rule_id)];
    }
    let blocks = ids::building_block_ids(&present, rule_id);
    let shell = ids::shell_alert_id(&present, &blocks, rule_id);
    let mut out = Vec::with_capacity(blocks.len() + 1);
    out.push(shell);
    out.extend(blocks);
    out
}

/// What alerts carry of the rule: the `[rule]` table as JSON for
/// `kibana.alert.rule.parameters` (detection-rules keys are already Kibana's
/// snake_case parameter names), plus the typed values.
pub fn alert_rule(rule: &Rule) -> AlertRule {
    let mut parameters = Map::new();
    for (k, v) in &rule.parameters {
        parameters.insert(k.clone(), toml_to_json(v));
    }
    // Kibana's parameters always hold these; a rule file may leave them to
    // the defaults.
    parameters
        .entry("max_signals")
        .or_insert_with(|| Value::from(rule.max_signals));
    parameters
        .entry("rule_id")
        .or_insert_with(|| Value::from(rule.rule_id.clone()));
    AlertRule {
        rule_id: rule.rule_id.clone(),
        name: rule.name.clone(),
        severity: rule.severity.as_str().to_string(),
        risk_score: i64::from(rule.risk_score),
        building_block_type: rule.building_block_type.map(|_| "default".to_string()),
        indices: rule.index.clone(),
        parameters,
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
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
