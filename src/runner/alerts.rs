//! From the rule and the matches to alert ids and [`AlertRule`]: what the
//! run computes before any alert document is built.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::run::Candidate;
use crate::alert::{ids, AlertRule};
use crate::rule::Rule;

/// The alert ids of a match, its head (event alert or shell) first: the
/// same recipes `alert` uses to build the documents, computed without the
/// sources so dedup and cap come before reading them. Every event is taken
/// for an event here; one that turns out to be an alert (a rule reading an
/// alerts index) has its own ancestors in its ids, which the documents
/// built from the sources then carry.
pub(super) fn group_ids(c: &Candidate, grouped: bool, space: &str, rule_uuid: &str) -> Vec<String> {
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
        return vec![ids::event_alert_id(present[0], space, rule_uuid)];
    }
    let ancestors: Vec<Vec<ids::EventRef<'_>>> = present.iter().map(|e| vec![*e]).collect();
    let blocks = ids::building_block_ids(&ancestors, rule_uuid);
    let shell = ids::shell_alert_id(&ancestors, &blocks, rule_uuid);
    let mut out = Vec::with_capacity(blocks.len() + 1);
    out.push(shell);
    out.extend(blocks);
    out
}

/// What alerts carry of the rule. `now` stands in for the creation and
/// update times of a rule that has none (no Kibana export, no
/// `[metadata]` dates).
pub fn alert_rule(rule: &Rule, now: DateTime<Utc>) -> AlertRule {
    let table: Map<String, Value> = rule
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), toml_to_json(v)))
        .collect();
    let date = |d: Option<&String>| {
        d.and_then(|d| metadata_date(d))
            .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Millis, true))
    };
    AlertRule {
        uuid: rule.rule_id.clone(),
        rule_id: rule.rule_id.clone(),
        name: rule.name.clone(),
        severity: rule.severity.as_str().to_string(),
        risk_score: i64::from(rule.risk_score),
        building_block_type: rule.building_block_type.map(|_| "default".to_string()),
        indices: rule.index.clone(),
        parameters: kibana_parameters(rule, &table),
        revision: 0,
        enabled: rule.enabled,
        tags: rule.tags.clone(),
        interval: table
            .get("interval")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}s", rule.schedule.interval.as_secs())),
        created_at: date(rule.metadata.creation_date.as_ref()),
        created_by: CREATED_BY.to_string(),
        updated_at: date(rule.metadata.updated_date.as_ref()),
        updated_by: CREATED_BY.to_string(),
        actions: Vec::new(),
        throttle: None,
        rule_type_id: "siem.eqlRule",
        category: "Event Correlation Rule",
    }
}

/// Who created and updated a rule Kibana never saw.
const CREATED_BY: &str = "detectd";

/// `kibana.alert.rule.parameters` as Kibana writes them for an EQL rule:
/// the common parameters (`commonParamsCamelToSnake` in Kibana's
/// `rule_management/normalization/rule_converters/common_params_camel_to_snake.ts`)
/// then the EQL ones (`typeSpecificCamelToSnake`), in that order, with the
/// rule schema's defaults for what the file leaves out; keys Kibana does
/// not keep in parameters (`name`, `tags`, `interval`, `enabled`, ...) are
/// not among them.
fn kibana_parameters(rule: &Rule, table: &Map<String, Value>) -> Map<String, Value> {
    let mut p = Map::new();
    let mut put = |key: &str, default: Option<Value>| {
        if let Some(v) = table.get(key).cloned().or(default) {
            p.insert(key.to_string(), v);
        }
    };
    put("description", Some(json!(rule.description)));
    put("risk_score", Some(json!(rule.risk_score)));
    put("severity", Some(json!(rule.severity.as_str())));
    for key in [
        "building_block_type",
        "namespace",
        "note",
        "license",
        "timeline_id",
        "timeline_title",
        "meta",
        "rule_name_override",
        "timestamp_override",
        "timestamp_override_fallback_disabled",
        "investigation_fields",
    ] {
        put(key, None);
    }
    put("author", Some(json!([])));
    put("false_positives", Some(json!([])));
    put("from", Some(json!(crate::rule::rule::DEFAULT_FROM)));
    put("rule_id", Some(json!(rule.rule_id)));
    put("max_signals", Some(json!(rule.max_signals)));
    put("risk_score_mapping", Some(json!([])));
    put("severity_mapping", Some(json!([])));
    put("threat", Some(json!([])));
    put("to", Some(json!(crate::rule::rule::DEFAULT_TO)));
    put("references", Some(json!([])));
    put("version", Some(json!(1)));
    put("exceptions_list", Some(json!([])));
    put("immutable", Some(json!(false)));
    put("rule_source", Some(json!({"type": "internal"})));
    put("related_integrations", Some(json!([])));
    put("required_fields", Some(json!([])));
    put("response_actions", None);
    put("setup", Some(json!("")));
    put("type", Some(json!("eql")));
    put("language", Some(json!("eql")));
    put("index", Some(json!(rule.index)));
    put("data_view_id", None);
    put("query", Some(json!(rule.query_text)));
    for key in [
        "filters",
        "event_category_override",
        "timestamp_field",
        "tiebreaker_field",
        "alert_suppression",
    ] {
        put(key, None);
    }
    p
}

/// A detection-rules `[metadata]` date (`2020/12/15`) as an ISO timestamp.
fn metadata_date(text: &str) -> Option<String> {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y/%m/%d").ok()?;
    Some(
        d.and_hms_opt(0, 0, 0)?
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    )
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
