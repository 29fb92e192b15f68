//! Alert documents in Kibana's alert schema (`reference/kibana-eql-rules.md`
//! §3–4): one alert per matched event; for a sequence one shell alert plus
//! one building-block alert per event. Ids are deterministic (see [`ids`]).
//!
//! This module only builds documents; it does not search, write or dedup.

pub mod doc;
pub mod fieldmap;
pub mod ids;
pub mod reason;
pub mod strip;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use ids::EventRef;

/// What an alert needs to know about its rule. `parameters` are all rule
/// parameters in snake_case, copied to `kibana.alert.rule.parameters`.
#[derive(Clone, Debug)]
pub struct AlertRule {
    pub rule_id: String,
    pub name: String,
    pub severity: String,
    pub risk_score: i64,
    pub building_block_type: Option<String>,
    /// The resolved index patterns the rule searched.
    pub indices: Vec<String>,
    pub parameters: Map<String, Value>,
}

/// Per-run facts stamped on every alert.
#[derive(Clone, Debug)]
pub struct AlertContext {
    pub now: DateTime<Utc>,
    pub space_id: String,
    pub execution_uuid: String,
}

/// One source event as fetched: where it lives and its full `_source`.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceEvent {
    pub index: String,
    pub id: String,
    pub source: Value,
}

impl SourceEvent {
    fn event_ref(&self) -> EventRef<'_> {
        EventRef {
            index: &self.index,
            id: &self.id,
        }
    }
}

/// An alert ready to index: its deterministic `_id` and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub id: String,
    pub source: Value,
}

/// Parameters copied from the rule to `kibana.alert.rule.<name>` (besides
/// the ones set explicitly).
const RULE_FIELDS: &[&str] = &[
    "author",
    "description",
    "false_positives",
    "from",
    "interval",
    "license",
    "max_signals",
    "note",
    "references",
    "tags",
    "threat",
    "timestamp_override",
    "to",
    "type",
    "version",
    "exceptions_list",
];

/// The alert for one event of an event query.
pub fn event_alert(rule: &AlertRule, ctx: &AlertContext, event: &SourceEvent) -> Alert {
    let id = ids::event_alert_id(event.event_ref(), &ctx.space_id, &rule.rule_id);
    let mut body = doc::clean_source(&event.source);
    let ancestors = vec![event_ancestor(event)];
    let reason = reason::reason(&event.source, &rule.severity, &rule.name);
    common_fields(rule, ctx, &id, &mut body);
    body.insert("kibana.alert.ancestors".into(), Value::Array(ancestors));
    body.insert("kibana.alert.depth".into(), json!(1));
    body.insert("kibana.alert.reason".into(), json!(reason));
    body.insert(
        "kibana.alert.original_time".into(),
        original_time(&event.source),
    );
    if let Some(bb) = &rule.building_block_type {
        body.insert("kibana.alert.building_block_type".into(), json!(bb));
    }
    Alert {
        id,
        source: Value::Object(body),
    }
}

/// The alerts of one sequence: the shell first, then one building block per
/// event in stage order. `None` entries are missing-event placeholders
/// (`![...]` stages); they get no building block and stay out of the shell.
pub fn sequence_alerts(
    rule: &AlertRule,
    ctx: &AlertContext,
    events: &[Option<&SourceEvent>],
) -> Vec<Alert> {
    let present: Vec<&SourceEvent> = events.iter().flatten().copied().collect();
    if present.is_empty() {
        return Vec::new();
    }
    let refs: Vec<EventRef<'_>> = present.iter().map(|e| e.event_ref()).collect();
    let block_ids = ids::building_block_ids(&refs, &rule.rule_id);
    let shell_id = ids::shell_alert_id(&refs, &block_ids, &rule.rule_id);

    let mut blocks = Vec::with_capacity(present.len());
    for (i, (event, block_id)) in present.iter().zip(&block_ids).enumerate() {
        let mut body = doc::clean_source(&event.source);
        common_fields(rule, ctx, block_id, &mut body);
        body.insert(
            "kibana.alert.ancestors".into(),
            Value::Array(vec![event_ancestor(event)]),
        );
        body.insert("kibana.alert.depth".into(), json!(1));
        body.insert(
            "kibana.alert.reason".into(),
            json!(reason::reason(&event.source, &rule.severity, &rule.name)),
        );
        body.insert(
            "kibana.alert.original_time".into(),
            original_time(&event.source),
        );
        body.insert("kibana.alert.building_block_type".into(), json!("default"));
        body.insert("kibana.alert.group.id".into(), json!(shell_id));
        body.insert("kibana.alert.group.index".into(), json!(i));
        blocks.push(Alert {
            id: block_id.clone(),
            source: Value::Object(body),
        });
    }

    let cleaned: Vec<Value> = present
        .iter()
        .map(|e| Value::Object(doc::clean_source(&e.source)))
        .collect();
    let merged_sources: Vec<&Value> = present.iter().map(|e| &e.source).collect();
    let common = doc::intersect(&cleaned.iter().collect::<Vec<_>>());
    let mut shell = match common {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    common_fields(rule, ctx, &shell_id, &mut shell);
    let mut ancestors: Vec<Value> = present.iter().map(|e| event_ancestor(e)).collect();
    ancestors.extend(block_ids.iter().map(
        |b| json!({"id": b, "index": "", "type": "signal", "depth": 1, "rule": rule.rule_id}),
    ));
    shell.insert("kibana.alert.ancestors".into(), Value::Array(ancestors));
    shell.insert("kibana.alert.depth".into(), json!(2));
    shell.insert("kibana.alert.group.id".into(), json!(shell_id));
    let intersected = doc::intersect(&merged_sources);
    shell.insert(
        "kibana.alert.reason".into(),
        json!(reason::reason(&intersected, &rule.severity, &rule.name)),
    );
    // The first event's time: when the sequence began. (Kibana takes the
    // first building block's @timestamp, which is about the creation time.)
    shell.insert(
        "kibana.alert.original_time".into(),
        original_time(&present[0].source),
    );
    if let Some(bb) = &rule.building_block_type {
        shell.insert("kibana.alert.building_block_type".into(), json!(bb));
    }

    let mut out = Vec::with_capacity(blocks.len() + 1);
    out.push(Alert {
        id: shell_id,
        source: Value::Object(shell),
    });
    out.extend(blocks);
    out
}

fn event_ancestor(event: &SourceEvent) -> Value {
    json!({"id": event.id, "index": event.index, "type": "event", "depth": 0})
}

fn original_time(source: &Value) -> Value {
    match doc::get_path(source, "@timestamp") {
        Some(Value::Array(v)) => v.first().cloned().unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// Fields every alert carries: time, kind, status, rule copy.
fn common_fields(rule: &AlertRule, ctx: &AlertContext, id: &str, body: &mut Map<String, Value>) {
    let now = ctx.now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut set = |k: &str, v: Value| {
        body.insert(k.to_string(), v);
    };
    set("@timestamp", json!(now));
    set("event.kind", json!("signal"));
    set("kibana.space_ids", json!([ctx.space_id]));
    set("kibana.alert.uuid", json!(id));
    set("kibana.alert.status", json!("active"));
    set("kibana.alert.workflow_status", json!("open"));
    set("kibana.alert.workflow_tags", json!([]));
    set("kibana.alert.workflow_assignee_ids", json!([]));
    set("kibana.alert.severity", json!(rule.severity));
    set("kibana.alert.risk_score", json!(rule.risk_score));
    set("kibana.alert.start", json!(now));
    set("kibana.alert.last_detected", json!(now));
    set("kibana.alert.intended_timestamp", json!(now));
    set("kibana.alert.rule.execution.timestamp", json!(now));
    set(
        "kibana.alert.rule.execution.uuid",
        json!(ctx.execution_uuid),
    );
    set("kibana.alert.rule.execution.type", json!("scheduled"));
    set("kibana.alert.rule.uuid", json!(rule.rule_id));
    set("kibana.alert.rule.rule_id", json!(rule.rule_id));
    set("kibana.alert.rule.name", json!(rule.name));
    set("kibana.alert.rule.severity", json!(rule.severity));
    set("kibana.alert.rule.risk_score", json!(rule.risk_score));
    set("kibana.alert.rule.indices", json!(rule.indices));
    set("kibana.alert.rule.consumer", json!("siem"));
    set("kibana.alert.rule.producer", json!("siem"));
    set("kibana.alert.rule.rule_type_id", json!("siem.eqlRule"));
    set(
        "kibana.alert.rule.category",
        json!("Event Correlation Rule"),
    );
    set("kibana.alert.rule.enabled", json!(true));
    set("kibana.alert.rule.immutable", json!(false));
    set(
        "kibana.alert.rule.parameters",
        Value::Object(rule.parameters.clone()),
    );
    for field in RULE_FIELDS {
        if let Some(v) = rule.parameters.get(*field) {
            set(&format!("kibana.alert.rule.{field}"), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AlertRule {
        let params = json!({"rule_id": "r1", "name": "Test rule", "severity": "medium",
            "risk_score": 47, "type": "eql", "from": "now-9m", "interval": "5m",
            "max_signals": 100, "tags": ["Tactic: Execution"], "query": "any where true"});
        AlertRule {
            rule_id: "r1".into(),
            name: "Test rule".into(),
            severity: "medium".into(),
            risk_score: 47,
            building_block_type: None,
            indices: vec!["logs-*".into()],
            parameters: params.as_object().unwrap().clone(),
        }
    }

    fn ctx() -> AlertContext {
        AlertContext {
            now: DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            space_id: "default".into(),
            execution_uuid: "exec-1".into(),
        }
    }

    fn ev(id: &str, ts: &str, category: &str) -> SourceEvent {
        SourceEvent {
            index: "logs-1".into(),
            id: id.into(),
            source: json!({"@timestamp": ts, "event": {"category": category, "kind": "event"},
                "host": {"id": "h1", "name": "ws-1"}, "process": {"name": "powershell.exe",
                "entity_id": "p1"}}),
        }
    }

    #[test]
    fn event_alert_has_kibana_fields() {
        let e = ev("1", "2024-05-01T09:58:00.000Z", "process");
        let a = event_alert(&rule(), &ctx(), &e);
        let s = &a.source;
        assert_eq!(a.id, ids::event_alert_id(e.event_ref(), "default", "r1"));
        assert_eq!(s["kibana.alert.uuid"], json!(a.id));
        assert_eq!(s["event.kind"], "signal");
        assert_eq!(s["event"], json!({"category": "process"}));
        assert_eq!(s["kibana.alert.original_event.kind"], "event");
        assert_eq!(s["kibana.alert.original_time"], "2024-05-01T09:58:00.000Z");
        assert_eq!(s["kibana.alert.depth"], 1);
        assert_eq!(
            s["kibana.alert.ancestors"],
            json!([{"id": "1", "index": "logs-1", "type": "event", "depth": 0}])
        );
        assert_eq!(s["kibana.alert.rule.from"], "now-9m");
        assert_eq!(s["kibana.alert.rule.parameters"]["query"], "any where true");
        assert_eq!(s["kibana.alert.workflow_status"], "open");
        assert_eq!(s["@timestamp"], "2024-05-01T10:00:00.000Z");
        assert_eq!(
            s["kibana.alert.reason"],
            "process event with process powershell.exe on ws-1 created medium alert Test rule."
        );
    }

    #[test]
    fn sequence_gives_shell_then_building_blocks() {
        let a = ev("1", "2024-05-01T09:58:00.000Z", "library");
        let b = ev("2", "2024-05-01T09:58:02.000Z", "network");
        let alerts = sequence_alerts(&rule(), &ctx(), &[Some(&a), None, Some(&b)]);
        assert_eq!(
            alerts.len(),
            3,
            "missing placeholder gets no building block"
        );
        let shell = &alerts[0].source;
        assert_eq!(shell["kibana.alert.group.id"], json!(alerts[0].id));
        assert_eq!(shell["kibana.alert.depth"], 2);
        assert!(shell.get("kibana.alert.group.index").is_none());
        assert!(shell.get("kibana.alert.building_block_type").is_none());
        assert_eq!(shell["host"], json!({"id": "h1", "name": "ws-1"}));
        assert!(
            shell["event"].get("category").is_none(),
            "categories differ"
        );
        assert_eq!(shell["kibana.alert.ancestors"].as_array().unwrap().len(), 4);
        assert_eq!(
            shell["kibana.alert.original_time"],
            "2024-05-01T09:58:00.000Z"
        );
        for (i, bb) in alerts[1..].iter().enumerate() {
            assert_eq!(bb.source["kibana.alert.group.id"], json!(alerts[0].id));
            assert_eq!(bb.source["kibana.alert.group.index"], json!(i));
            assert_eq!(bb.source["kibana.alert.building_block_type"], "default");
        }
        // deterministic
        let again = sequence_alerts(&rule(), &ctx(), &[Some(&a), None, Some(&b)]);
        let ids: Vec<_> = alerts.iter().map(|a| &a.id).collect();
        let ids2: Vec<_> = again.iter().map(|a| &a.id).collect();
        assert_eq!(ids, ids2);
    }
}
