//! [`AlertRule`] from a loaded [`Rule`]: what alerts copy from their rule.
//!
//! `kibana.alert.rule.parameters` holds the `[rule]` table as written
//! (TOML converted to JSON, datetimes as their text), plus Kibana's
//! defaults for the scheduling fields the file leaves out, since Kibana
//! stores those defaults in the saved rule and so in every alert.

use serde_json::{json, Map, Value};

use super::AlertRule;
use crate::rule::rule::{DEFAULT_FROM, DEFAULT_TO};
use crate::rule::{BuildingBlockType, Rule, DEFAULT_MAX_SIGNALS};

impl AlertRule {
    pub fn from_rule(rule: &Rule) -> AlertRule {
        let mut parameters = match toml_to_json(&toml::Value::Table(rule.parameters.clone())) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let defaults = [
            ("from", json!(DEFAULT_FROM)),
            ("to", json!(DEFAULT_TO)),
            ("interval", json!(format_interval(rule.schedule.interval))),
            ("max_signals", json!(DEFAULT_MAX_SIGNALS)),
        ];
        for (key, value) in defaults {
            parameters.entry(key).or_insert(value);
        }
        AlertRule {
            rule_id: rule.rule_id.clone(),
            name: rule.name.clone(),
            severity: rule.severity.as_str().to_string(),
            risk_score: i64::from(rule.risk_score),
            building_block_type: rule.building_block_type.map(|b| match b {
                BuildingBlockType::Default => "default".to_string(),
            }),
            indices: rule.index.clone(),
            parameters,
        }
    }
}

/// An interval as Kibana writes it: the largest whole unit (`5m`, `90s`).
fn format_interval(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s > 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s > 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else if d.subsec_millis() == 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{load_str, LoadOutcome};

    #[test]
    fn the_founding_rule_becomes_an_alert_rule() {
        let text = include_str!("../../rules/execution_scheduled_task_powershell.toml");
        let LoadOutcome::Loaded { rule, .. } = load_str(text) else {
            panic!("the founding rule loads");
        };
        let a = AlertRule::from_rule(&rule);
        assert_eq!(a.rule_id, rule.rule_id);
        assert_eq!(a.severity, "medium");
        assert_eq!(a.risk_score, 47);
        assert_eq!(a.parameters["from"], "now-9m");
        assert_eq!(a.parameters["interval"], "5m");
        assert_eq!(a.parameters["max_signals"], 100);
        assert_eq!(a.parameters["to"], "now", "Kibana's default filled in");
        assert_eq!(a.parameters["type"], "eql");
        assert!(a.parameters["threat"].is_array());
        assert!(a.indices.contains(&"logs-endpoint.events.*".to_string()));
    }

    #[test]
    fn intervals_print_in_the_largest_unit() {
        use std::time::Duration;
        assert_eq!(format_interval(Duration::from_secs(300)), "5m");
        assert_eq!(format_interval(Duration::from_secs(90)), "90s");
        assert_eq!(format_interval(Duration::from_secs(7200)), "2h");
        assert_eq!(format_interval(Duration::from_secs(86400)), "1d");
    }
}
