//! Alert documents field by field against what Kibana's detection engine
//! writes for the same rule and events (read from `build_alert.ts`,
//! `transform_hit_to_alert.ts`, `build_alert_group_from_sequence.ts` and
//! the persistence wrapper; `reference/kibana-eql-rules.md` §3).

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

fn rule() -> AlertRule {
    let parameters = json!({
        "description": "d", "risk_score": 47, "severity": "medium",
        "author": ["Elastic"], "false_positives": [], "from": "now-9m", "rule_id": "r1",
        "max_signals": 100, "risk_score_mapping": [], "severity_mapping": [], "threat": [],
        "to": "now", "references": [], "version": 3, "exceptions_list": [], "immutable": false,
        "rule_source": {"type": "internal"}, "related_integrations": [], "required_fields": [],
        "setup": "", "type": "eql", "language": "eql", "index": ["logs-*"],
        "query": "any where true", "meta": {"from": "4m"}
    });
    AlertRule {
        uuid: "0b52a8f2-1c1a-4e67-8c39-6f3a5b7c9d10".into(),
        rule_id: "r1".into(),
        name: "Test rule".into(),
        severity: "medium".into(),
        risk_score: 47,
        building_block_type: None,
        indices: vec!["logs-*".into()],
        parameters: parameters.as_object().unwrap().clone(),
        revision: 2,
        enabled: true,
        tags: vec!["Tactic: Execution".into()],
        interval: "5m".into(),
        created_at: "2024-01-01T00:00:00.000Z".into(),
        created_by: "elastic".into(),
        updated_at: "2024-02-01T00:00:00.000Z".into(),
        updated_by: "elastic".into(),
        actions: Vec::new(),
        throttle: None,
        rule_type_id: "siem.eqlRule",
        category: "Event Correlation Rule",
        overrides: Overrides::default(),
    }
}

fn ctx() -> AlertContext {
    AlertContext {
        now: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
        space_id: "default".into(),
        execution_uuid: "exec-1".into(),
        kibana_version: "8.15.3".into(),
        public_base_url: Some("https://kibana.example.com".into()),
    }
}

fn ev(id: &str, ts: &str, category: &str, extra: Value) -> SourceEvent {
    let mut source = json!({"@timestamp": ts, "event": {"category": category, "kind": "event"},
        "host": {"id": "h1", "name": "ws-1"}, "process": {"name": "powershell.exe",
        "entity_id": "p1"}});
    for (k, v) in extra.as_object().unwrap() {
        source[k] = v.clone();
    }
    SourceEvent {
        index: format!("logs-{category}"),
        id: id.into(),
        source,
    }
}

const NOW: &str = "2024-05-01T10:00:00.000Z";

/// What every alert of this rule carries, whatever it is built on.
fn rule_fields() -> Value {
    let common = json!({
        "@timestamp": NOW,
        "event.kind": "signal",
        "kibana.space_ids": ["default"],
        "kibana.version": "8.15.3",
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.workflow_tags": [],
        "kibana.alert.workflow_assignee_ids": [],
        "kibana.alert.severity": "medium",
        "kibana.alert.risk_score": 47,
        "kibana.alert.start": NOW,
        "kibana.alert.last_detected": NOW,
        "kibana.alert.intended_timestamp": NOW,
        "kibana.alert.rule.execution.timestamp": NOW,
        "kibana.alert.rule.execution.uuid": "exec-1",
        "kibana.alert.rule.execution.type": "scheduled",
        "kibana.alert.rule.parameters": rule().parameters,
        "kibana.alert.rule.actions": []
    });
    let rule_copy = json!({
        "kibana.alert.rule.author": ["Elastic"],
        "kibana.alert.rule.category": "Event Correlation Rule",
        "kibana.alert.rule.consumer": "siem",
        "kibana.alert.rule.created_at": "2024-01-01T00:00:00.000Z",
        "kibana.alert.rule.created_by": "elastic",
        "kibana.alert.rule.description": "d",
        "kibana.alert.rule.enabled": true,
        "kibana.alert.rule.exceptions_list": [],
        "kibana.alert.rule.false_positives": [],
        "kibana.alert.rule.from": "now-9m",
        "kibana.alert.rule.immutable": false,
        "kibana.alert.rule.indices": ["logs-*"],
        "kibana.alert.rule.interval": "5m",
        "kibana.alert.rule.max_signals": 100,
        "kibana.alert.rule.meta.from": "4m",
        "kibana.alert.rule.name": "Test rule",
        "kibana.alert.rule.producer": "siem",
        "kibana.alert.rule.references": [],
        "kibana.alert.rule.revision": 2,
        "kibana.alert.rule.risk_score": 47,
        "kibana.alert.rule.risk_score_mapping": [],
        "kibana.alert.rule.rule_id": "r1",
        "kibana.alert.rule.rule_type_id": "siem.eqlRule",
        "kibana.alert.rule.severity": "medium",
        "kibana.alert.rule.severity_mapping": [],
        "kibana.alert.rule.tags": ["Tactic: Execution"],
        "kibana.alert.rule.threat": [],
        "kibana.alert.rule.to": "now",
        "kibana.alert.rule.type": "eql",
        "kibana.alert.rule.updated_at": "2024-02-01T00:00:00.000Z",
        "kibana.alert.rule.updated_by": "elastic",
        "kibana.alert.rule.uuid": "0b52a8f2-1c1a-4e67-8c39-6f3a5b7c9d10",
        "kibana.alert.rule.version": 3
    });
    merged(common, rule_copy)
}

fn merged(base: Value, more: Value) -> Value {
    let mut out = base;
    for (k, v) in more.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

fn url(id: &str) -> String {
    format!(
        "https://kibana.example.com/app/security/alerts/redirect/{id}?index=.alerts-security.alerts-default&timestamp={NOW}"
    )
}

#[test]
fn event_alert_is_kibanas_document() {
    let e = ev(
        "1",
        "2024-05-01T09:58:00Z",
        "process",
        json!({"data_stream": {"dataset": "endpoint.events.process"}}),
    );
    let a = event_alert(&rule(), &ctx(), &e).unwrap();
    let id = ids::event_alert_id(e.event_ref(), "default", &rule().uuid);
    assert_eq!(a.id, id);
    let expected = merged(
        rule_fields(),
        json!({
            // the source, made to fit ECS: event.* copied, its kind dropped
            "event": {"category": "process"},
            "host": {"id": "h1", "name": "ws-1"},
            "process": {"name": "powershell.exe", "entity_id": "p1"},
            "data_stream": {"dataset": "endpoint.events.process"},
            "kibana.alert.original_event.category": "process",
            "kibana.alert.original_event.kind": "event",
            "kibana.alert.original_data_stream.dataset": "endpoint.events.process",
            // the alert
            "kibana.alert.uuid": id,
            "kibana.alert.url": url(&id),
            // `toISOString()` of the event time, whatever its format
            "kibana.alert.original_time": "2024-05-01T09:58:00.000Z",
            "kibana.alert.ancestors": [{"id": "1", "type": "event", "index": "logs-process", "depth": 0}],
            "kibana.alert.depth": 1,
            "kibana.alert.reason": "process event with process powershell.exe, on ws-1 created medium alert Test rule."
        }),
    );
    assert_eq!(a.source, expected, "\n{:#}", a.source);
}

#[test]
fn original_time_is_an_iso_string_whatever_the_source_wrote() {
    for (ts, want) in [
        (json!(1714557480000_i64), Some("2024-05-01T09:58:00.000Z")),
        (json!("1714557480000"), Some("2024-05-01T09:58:00.000Z")),
        (
            json!("2024-05-01T11:58:00+02:00"),
            Some("2024-05-01T09:58:00.000Z"),
        ),
        (
            json!("2024-05-01T09:58:00.123456789Z"),
            Some("2024-05-01T09:58:00.123Z"),
        ),
        (json!(["2024-05-01"]), Some("2024-05-01T00:00:00.000Z")),
        (json!("yesterday"), None),
        (json!({"a": 1}), None),
    ] {
        let mut e = ev("1", "x", "process", json!({}));
        e.source["@timestamp"] = ts.clone();
        let a = event_alert(&rule(), &ctx(), &e).unwrap();
        assert_eq!(
            a.source
                .get("kibana.alert.original_time")
                .and_then(Value::as_str),
            want,
            "{ts}"
        );
    }
}

#[test]
fn sequence_alerts_are_kibanas_documents() {
    let a = ev(
        "1",
        "2024-05-01T09:58:00.000Z",
        "library",
        json!({"dll": {"name": "taskschd.dll"}}),
    );
    let b = ev(
        "2",
        "2024-05-01T09:58:02.000Z",
        "network",
        json!({"destination": {"ip": "10.0.0.5", "port": 135}}),
    );
    let alerts = sequence_alerts(&rule(), &ctx(), &[Some(&a), None, Some(&b)]);
    assert_eq!(
        alerts.len(),
        3,
        "missing placeholder gets no building block"
    );
    let uuid = rule().uuid;
    let refs = vec![vec![a.event_ref()], vec![b.event_ref()]];
    let block_ids = ids::building_block_ids(&refs, &uuid);
    let shell_id = ids::shell_alert_id(&refs, &block_ids, &uuid);
    assert_eq!(alerts[0].id, shell_id);
    assert_eq!(alerts[1].id, block_ids[0]);
    assert_eq!(alerts[2].id, block_ids[1]);

    let block = |i: usize, e: &SourceEvent, specific: Value, reason: &str| {
        merged(
            merged(rule_fields(), specific),
            json!({
                "host": {"id": "h1", "name": "ws-1"},
                "process": {"name": "powershell.exe", "entity_id": "p1"},
                "kibana.alert.original_event.kind": "event",
                "kibana.alert.uuid": block_ids[i],
                "kibana.alert.url": url(&block_ids[i]),
                "kibana.alert.original_time": e.source["@timestamp"],
                "kibana.alert.ancestors": [{"id": e.id, "type": "event", "index": e.index, "depth": 0}],
                "kibana.alert.depth": 1,
                "kibana.alert.reason": reason,
                "kibana.alert.building_block_type": "default",
                "kibana.alert.group.id": shell_id,
                "kibana.alert.group.index": i
            }),
        )
    };
    assert_eq!(
        alerts[1].source,
        block(
            0,
            &a,
            json!({"event": {"category": "library"}, "dll": {"name": "taskschd.dll"},
                   "kibana.alert.original_event.category": "library"}),
            "library event with process powershell.exe, on ws-1 created medium alert Test rule."
        ),
        "\n{:#}",
        alerts[1].source
    );
    assert_eq!(
        alerts[2].source,
        block(
            1,
            &b,
            json!({"event": {"category": "network"}, "destination": {"ip": "10.0.0.5", "port": 135},
                   "kibana.alert.original_event.category": "network"}),
            "network event with process powershell.exe, destination 10.0.0.5:135, on ws-1 created medium alert Test rule."
        ),
        "\n{:#}",
        alerts[2].source
    );

    // The shell: what both blocks share (with the arrays they share, empty
    // or not), then its own fields over the blocks as parents.
    let expected_shell = merged(
        rule_fields(),
        json!({
            "host": {"id": "h1", "name": "ws-1"},
            "process": {"name": "powershell.exe", "entity_id": "p1"},
            "kibana.alert.original_event.kind": "event",
            "kibana.alert.uuid": shell_id,
            "kibana.alert.group.id": shell_id,
            "kibana.alert.url": url(&shell_id),
            // the first block's creation time
            "kibana.alert.original_time": NOW,
            "kibana.alert.ancestors": [
                {"id": "1", "type": "event", "index": "logs-library", "depth": 0},
                {"id": block_ids[0], "type": "signal", "index": "", "depth": 1, "rule": uuid},
                {"id": "2", "type": "event", "index": "logs-network", "depth": 0},
                {"id": block_ids[1], "type": "signal", "index": "", "depth": 1, "rule": uuid}
            ],
            "kibana.alert.depth": 2,
            "kibana.alert.reason": "event with process powershell.exe, on ws-1 created medium alert Test rule."
        }),
    );
    assert_eq!(alerts[0].source, expected_shell, "\n{:#}", alerts[0].source);
    // deterministic
    let again = sequence_alerts(&rule(), &ctx(), &[Some(&a), None, Some(&b)]);
    assert_eq!(alerts, again);
}

#[test]
fn a_rule_never_alerts_on_its_own_alerts() {
    let own = SourceEvent {
        index: ".internal.alerts-security.alerts-default-000001".into(),
        id: "x".into(),
        source: json!({"@timestamp": "2024-05-01T09:00:00.000Z", "kibana.alert.uuid": "x",
            "kibana.alert.depth": 1, "kibana.alert.rule.uuid": rule().uuid,
            "kibana.alert.ancestors": [{"id": "e", "index": "logs", "type": "event", "depth": 0}]}),
    };
    assert_eq!(event_alert(&rule(), &ctx(), &own), None);
    let other = ev("1", "2024-05-01T09:58:00.000Z", "process", json!({}));
    assert!(sequence_alerts(&rule(), &ctx(), &[Some(&other), Some(&own)]).is_empty());
    // another rule's alert is alerted on, one level deeper
    let mut foreign = own.clone();
    foreign.source["kibana.alert.rule.uuid"] = json!("another-rule");
    let a = event_alert(&rule(), &ctx(), &foreign).unwrap();
    assert_eq!(a.source["kibana.alert.depth"], 2);
    assert_eq!(
        a.source["kibana.alert.ancestors"],
        json!([{"id": "e", "index": "logs", "type": "event", "depth": 0},
               {"id": "x", "index": ".internal.alerts-security.alerts-default-000001",
                "type": "signal", "depth": 1, "rule": "another-rule"}])
    );
}

#[test]
fn without_a_public_url_there_is_no_alert_url() {
    let mut c = ctx();
    c.public_base_url = None;
    let a = event_alert(
        &rule(),
        &c,
        &ev("1", "2024-05-01T09:58:00.000Z", "process", json!({})),
    )
    .unwrap();
    assert!(a.source.get("kibana.alert.url").is_none());
}

/// `applyOverrides`: an event alert takes its name, severity and risk
/// score (and so its reason) from the event; the alerts of a sequence keep
/// the rule's (`build_alert_group_from_sequence.ts` passes no overrides).
#[test]
fn overrides_apply_to_event_alerts_only() {
    let mut r = rule();
    r.overrides = Overrides {
        severity_mapping: vec![overrides::SeverityMapping {
            field: "process.name".into(),
            value: "powershell.exe".into(),
            severity: "critical".into(),
        }],
        risk_score_field: Some("event.risk".into()),
        rule_name_field: Some("threat.name".into()),
    };
    let e = ev(
        "e1",
        "2024-05-01T09:58:00.000Z",
        "process",
        json!({"threat": {"name": "Mimikatz"}, "event": {"category": "process", "risk": "93.5"}}),
    );
    let alert = event_alert(&r, &ctx(), &e).unwrap().source;
    assert_eq!(alert["kibana.alert.rule.name"], json!("Mimikatz"));
    assert_eq!(alert["kibana.alert.severity"], json!("critical"));
    assert_eq!(alert["kibana.alert.risk_score"], json!(93.5));
    // The rule's own values stay where Kibana keeps them.
    assert_eq!(alert["kibana.alert.rule.severity"], json!("medium"));
    assert_eq!(alert["kibana.alert.rule.risk_score"], json!(47));
    let reason = alert["kibana.alert.reason"].as_str().unwrap();
    assert!(
        reason.ends_with("created critical alert Mimikatz."),
        "{reason}"
    );

    let seq = sequence_alerts(&r, &ctx(), &[Some(&e), Some(&e)]);
    for a in &seq {
        assert_eq!(a.source["kibana.alert.rule.name"], json!("Test rule"));
        assert_eq!(a.source["kibana.alert.severity"], json!("medium"));
        assert_eq!(a.source["kibana.alert.risk_score"], json!(47));
    }
}
