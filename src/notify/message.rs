//! The message a template renders: what a notification says about an alert
//! group (or a window's groups, for a summary), taken from the alert
//! documents the run wrote, so it says what Kibana shows.
//!
//! ```text
//! idempotency_key, key   the route and the alert group id (see `outbox`)
//! route, mode            the route's name, "group" or "summary"
//! rule                   id, name, type, severity, risk_score, tags, description
//! alert                  the (first) group: id, reason, severity, risk_score,
//!                        timestamp, host, user, url (Kibana), events
//! alerts, count          every group shown (a summary shows at most 50) and how many
//! kibana_url             the first group's link to Kibana, when kibana.public_base_url is set
//! ```
//!
//! Each event of `alert.events` is one building block of a sequence (in
//! order) or the event of an event alert: timestamp, category, action,
//! host, user, process, command_line, source_ip, destination_ip.

use serde_json::{json, Map, Value};

use crate::rule::Rule;

/// Groups listed in one summary message; `count` says how many there were.
pub const SUMMARY_LIMIT: usize = 50;

/// One alert group as written: the head alert (the event alert, or a
/// sequence's shell) then its building blocks.
#[derive(Clone, Debug)]
pub struct Group<'a> {
    /// The head alert's id: the group id.
    pub id: &'a str,
    pub alerts: Vec<&'a Value>,
}

/// A field of an alert document, whose keys may be dotted (`host.name`),
/// nested (`host: {name}`) or a mix (`kibana.alert.original_event: {...}`).
pub fn field<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    // The longest dotted prefix present as a key, then the rest below it.
    let mut cut = path.len();
    while let Some(i) = path[..cut].rfind('.') {
        if let Some(inner) = doc.get(&path[..i]) {
            if let Some(v) = field(inner, &path[i + 1..]) {
                return Some(v);
            }
        }
        cut = i;
    }
    None
}

/// A field as display text: a string as is, a number or bool printed, the
/// first of an array; `None` when absent or null.
pub fn text(doc: &Value, path: &str) -> Option<String> {
    match field(doc, path)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.iter().find(|v| !v.is_null()).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

fn first_text(doc: &Value, paths: &[&str]) -> Value {
    paths
        .iter()
        .find_map(|p| text(doc, p))
        .map_or(Value::Null, Value::String)
}

/// One event of a group, from its building block (or event alert).
fn event_view(doc: &Value) -> Value {
    json!({
        "timestamp": first_text(doc, &["kibana.alert.original_time", "@timestamp"]),
        "category": first_text(doc, &["kibana.alert.original_event.category", "event.category"]),
        "action": first_text(doc, &["kibana.alert.original_event.action", "event.action"]),
        "host": first_text(doc, &["host.name", "host.hostname", "host.id"]),
        "user": first_text(doc, &["user.name", "user.id"]),
        "process": first_text(doc, &["process.name", "process.executable"]),
        "command_line": first_text(doc, &["process.command_line"]),
        "source_ip": first_text(doc, &["source.ip"]),
        "destination_ip": first_text(doc, &["destination.ip", "destination.address"]),
    })
}

/// What a message says of one group.
pub fn alert_view(group: &Group<'_>) -> Value {
    let Some(head) = group.alerts.first() else {
        return json!({ "id": group.id, "events": [] });
    };
    // A sequence's events are its building blocks in order; an event
    // rule's, the alert itself.
    let mut blocks: Vec<&Value> = group.alerts[1..].to_vec();
    blocks.sort_by_key(|b| {
        field(b, "kibana.alert.group.index")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX)
    });
    let events: Vec<Value> = if blocks.is_empty() {
        vec![event_view(head)]
    } else {
        blocks.iter().map(|b| event_view(b)).collect()
    };
    // A shell carries only what its events share: fall back to the first
    // event's host and user.
    let from_events = |k: &str| {
        events
            .iter()
            .find_map(|e| e.get(k).filter(|v| !v.is_null()).cloned())
    };
    let host = match first_text(head, &["host.name", "host.hostname", "host.id"]) {
        Value::Null => from_events("host").unwrap_or(Value::Null),
        v => v,
    };
    let user = match first_text(head, &["user.name", "user.id"]) {
        Value::Null => from_events("user").unwrap_or(Value::Null),
        v => v,
    };
    json!({
        "id": group.id,
        "reason": first_text(head, &["kibana.alert.reason"]),
        "severity": first_text(head, &["kibana.alert.severity", "kibana.alert.rule.severity"]),
        "risk_score": field(head, "kibana.alert.risk_score")
            .or_else(|| field(head, "kibana.alert.rule.risk_score"))
            .cloned()
            .unwrap_or(Value::Null),
        "timestamp": first_text(head, &["@timestamp"]),
        "host": host,
        "user": user,
        "url": first_text(head, &["kibana.alert.url"]),
        "events": events,
    })
}

fn rule_view(rule: &Rule) -> Value {
    json!({
        "id": rule.rule_id,
        "name": rule.name,
        "type": rule.rule_type(),
        "severity": rule.severity.as_str(),
        "risk_score": rule.risk_score,
        "tags": rule.tags,
        "description": rule.description,
    })
}

fn message(
    key: &str,
    route: &str,
    mode: &str,
    rule: Value,
    alerts: Vec<Value>,
    count: usize,
) -> Value {
    let first = alerts.first().cloned().unwrap_or(Value::Null);
    let kibana_url = first.get("url").cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("idempotency_key".into(), json!(key));
    m.insert("key".into(), json!(key));
    m.insert("route".into(), json!(route));
    m.insert("mode".into(), json!(mode));
    m.insert("rule".into(), rule);
    m.insert("alert".into(), first);
    m.insert("alerts".into(), Value::Array(alerts));
    m.insert("count".into(), json!(count));
    m.insert("kibana_url".into(), kibana_url);
    Value::Object(m)
}

/// The message of one group.
pub fn group_message(key: &str, route: &str, rule: &Rule, group: &Group<'_>) -> Value {
    message(
        key,
        route,
        "group",
        rule_view(rule),
        vec![alert_view(group)],
        1,
    )
}

/// The message of a window's groups.
pub fn summary_message(key: &str, route: &str, rule: &Rule, groups: &[Group<'_>]) -> Value {
    let shown = groups.iter().take(SUMMARY_LIMIT).map(alert_view).collect();
    message(key, route, "summary", rule_view(rule), shown, groups.len())
}

/// A made-up sequence alert: what `detectd notify test` sends and what
/// templates are checked against at load.
pub fn sample(key: &str) -> Value {
    let rule = json!({
        "id": "detectd-sample",
        "name": "detectd sample rule",
        "type": "eql",
        "severity": "high",
        "risk_score": 73,
        "tags": ["detectd", "test"],
        "description": "A sample message sent by `detectd notify test`",
    });
    let event = |at: &str, category: &str, action: &str| {
        json!({
            "timestamp": at, "category": category, "action": action, "host": "ws-1",
            "user": "alice", "process": "powershell.exe",
            "command_line": "powershell.exe -enc ...", "source_ip": "10.0.0.7",
            "destination_ip": "10.0.0.5",
        })
    };
    let alert = json!({
        "id": "sample-alert-group",
        "reason": "sample reason: sequence event on ws-1 created high alert detectd sample rule.",
        "severity": "high",
        "risk_score": 73,
        "timestamp": "2024-05-01T10:00:00Z",
        "host": "ws-1",
        "user": "alice",
        "url": "https://kibana.example/app/security/alerts/redirect/sample-alert-group",
        "events": [
            event("2024-05-01T09:55:00Z", "library", "load"),
            event("2024-05-01T09:55:02Z", "network", "connection_attempted"),
        ],
    });
    message(key, "test", "group", rule, vec![alert], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_dotted_nested_and_mixed() {
        let doc = json!({
            "host.name": "flat",
            "user": {"name": "nested"},
            "kibana.alert.original_event": {"action": "mixed"},
            "process": {"name": null},
        });
        assert_eq!(text(&doc, "host.name").as_deref(), Some("flat"));
        assert_eq!(text(&doc, "user.name").as_deref(), Some("nested"));
        assert_eq!(
            text(&doc, "kibana.alert.original_event.action").as_deref(),
            Some("mixed")
        );
        assert_eq!(text(&doc, "process.name"), None);
        assert_eq!(text(&doc, "nope.x"), None);
    }

    #[test]
    fn a_sequence_lists_its_building_blocks_in_order_and_takes_the_host_from_them() {
        let shell = json!({"kibana.alert.reason": "r", "kibana.alert.severity": "high",
            "kibana.alert.risk_score": 73});
        let b0 = json!({"kibana.alert.group.index": 0, "host": {"name": "h1"},
            "kibana.alert.original_time": "t0", "kibana.alert.original_event": {"action": "load"}});
        let b1 = json!({"kibana.alert.group.index": 1, "host": {"name": "h1"},
            "kibana.alert.original_time": "t1", "kibana.alert.original_event": {"action": "connect"}});
        let g = Group {
            id: "shell",
            alerts: vec![&shell, &b1, &b0],
        };
        let v = alert_view(&g);
        assert_eq!(v["host"], "h1");
        assert_eq!(v["events"][0]["action"], "load");
        assert_eq!(v["events"][1]["timestamp"], "t1");
        assert_eq!(v["risk_score"], 73);
    }
}
