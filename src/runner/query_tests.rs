//! Query rules (KQL, Lucene) run over memory: every event the query finds
//! in the window is an alert, with the same windows, dedup and cap as EQL
//! rules and the query rule's identity on the alerts. The same runs against
//! a cluster are in `integration-tests/tests/query_rules.rs`.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::MemoryStateStore;

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn query_rule(language: &str, query: &str, extra: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"q-1\"\nname = \"Admin logon\"\ndescription = \"d\"\n\
         type = \"query\"\nlanguage = \"{language}\"\nindex = [\"logs-*\"]\n\
         severity = \"medium\"\nrisk_score = 47\nfrom = \"now-6m\"\ninterval = \"5m\"\n\
         query = '''{query}'''\n{extra}"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn logon(id: &str, minute: i64, user: &str, outcome: &str) -> Document {
    let at = (t0() + Duration::minutes(minute)).to_rfc3339_opts(SecondsFormat::Millis, true);
    Document {
        index: "logs-system.auth-default".into(),
        id: id.into(),
        source: json!({
            "@timestamp": at,
            "event": {"category": ["authentication"], "outcome": outcome},
            "user": {"name": user},
            "host": {"name": "ws-1"},
            "message": format!("logon by {user}"),
        }),
    }
}

type MemRunner = Runner<MemorySource, MemorySink, MemoryStateStore>;

fn runner(docs: Vec<Document>) -> MemRunner {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

fn alerts(r: &MemRunner) -> Vec<Value> {
    let mut all: Vec<Value> = r.sink().alerts(ALERTS).into_values().collect();
    all.sort_by_key(|a| a["kibana.alert.original_time"].as_str().map(String::from));
    all
}

fn users(all: &[Value]) -> Vec<&str> {
    all.iter()
        .map(|a| a["user"]["name"].as_str().unwrap_or("?"))
        .collect()
}

fn events() -> Vec<Document> {
    vec![
        logon("e1", 1, "admin", "success"),
        logon("e2", 2, "alice", "success"),
        logon("e3", 3, "administrator", "failure"),
        logon("e4", 4, "admin", "failure"),
        logon("e5", 7, "admin-backup", "success"),
    ]
}

#[tokio::test]
async fn a_kql_rule_alerts_once_per_matching_event() {
    let rule = query_rule(
        "kuery",
        "event.category:authentication and user.name:admin* and not event.outcome:failure",
        "",
    );
    let r = runner(events());
    let one = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(one.status, RunStatus::Succeeded, "{one:?}");
    assert_eq!(one.alerts_created, 1, "{one:?}");
    let two = r.execute(&rule, t0() + Duration::minutes(10)).await;
    // The 10-minute run's window (now-6m) reaches back over minute 4..10:
    // e5 is new, nothing before it matches again.
    assert_eq!((two.alerts_created, two.alerts_duplicate), (1, 0), "{two:?}");
    let all = alerts(&r);
    assert_eq!(users(&all), vec!["admin", "admin-backup"]);
    let a = &all[0];
    assert_eq!(a["kibana.alert.rule.rule_type_id"], json!("siem.queryRule"));
    assert_eq!(a["kibana.alert.rule.category"], json!("Custom Query Rule"));
    assert_eq!(a["kibana.alert.rule.type"], json!("query"));
    assert_eq!(a["kibana.alert.rule.parameters"]["language"], json!("kuery"));
    assert_eq!(a["kibana.alert.depth"], json!(1));
    assert!(a.get("kibana.alert.group.id").is_none());
    assert_eq!(
        a["kibana.alert.ancestors"][0]["id"],
        json!("e1"),
        "the alert's parent is the event"
    );
}

#[tokio::test]
async fn overlapping_windows_dedup_query_alerts() {
    let rule = query_rule("kuery", "event.category:authentication", "");
    let r = runner(events());
    let one = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(one.alerts_created, 4, "{one:?}");
    // The next window starts at minute 4: e4 again (a duplicate), e5 new.
    let two = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!((two.alerts_created, two.alerts_duplicate), (1, 1), "{two:?}");
    assert_eq!(alerts(&r).len(), 5);
}

#[tokio::test]
async fn a_lucene_rule_uses_query_string_semantics() {
    let rule = query_rule(
        "lucene",
        "user.name:admin* AND NOT event.outcome:failure",
        "",
    );
    let r = runner(events());
    let rec = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    let all = alerts(&r);
    assert_eq!(users(&all), vec!["admin-backup"], "{rec:?}");
    assert_eq!(all[0]["kibana.alert.rule.parameters"]["language"], json!("lucene"));
}

#[tokio::test]
async fn max_signals_keeps_the_oldest_matches() {
    let rule = query_rule("kuery", "user.name:*", "max_signals = 2\n");
    let r = runner(events());
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.alerts_created, 2, "{rec:?}");
    assert_eq!(users(&alerts(&r)), vec!["admin", "alice"]);
}

#[tokio::test]
async fn overrides_shape_each_alert_from_its_event() {
    let rule = query_rule(
        "kuery",
        "event.category:authentication",
        "rule_name_override = \"message\"\n\
         [[rule.severity_mapping]]\nfield = \"event.outcome\"\noperator = \"equals\"\n\
         severity = \"high\"\nvalue = \"failure\"\n",
    );
    let r = runner(events());
    r.execute(&rule, t0() + Duration::minutes(5)).await;
    let all = alerts(&r);
    let got: Vec<(&str, &str)> = all
        .iter()
        .map(|a| {
            (
                a["kibana.alert.rule.name"].as_str().unwrap(),
                a["kibana.alert.severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("logon by admin", "medium"),
            ("logon by alice", "medium"),
            ("logon by administrator", "high"),
            ("logon by admin", "high"),
        ]
    );
}

#[tokio::test]
async fn a_query_the_mapping_refuses_fails_the_run_and_keeps_the_window() {
    // `user` is nested in this index: Kibana refuses `user.name:admin`
    // outside a nested group (`user:{ name:admin }`), and so does detectd.
    let mapping = json!({"properties": {
        "@timestamp": {"type": "date"},
        "user": {"type": "nested", "properties": {"name": {"type": "keyword"}}}
    }});
    let mappings =
        crate::source::mappings::Mappings::from_json(&[("logs-system.auth-default", mapping)])
            .unwrap();
    let r = Runner::new(
        MemorySource::new(events()).with_mappings(mappings),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let bad = query_rule("kuery", "user.name:admin", "");
    let rec = r.execute(&bad, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    let error = rec.error.clone().unwrap_or_default();
    assert!(error.contains("is a nested field"), "{error}");
    assert_eq!(rec.alerts_created, 0);

    // The same rule id fixed: the failed run moved no checkpoint, so the
    // same window is searched again and finds both events.
    let good = query_rule("kuery", "user:{ name:admin }", "");
    let rec = r.execute(&good, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.alerts_created, 2, "{rec:?}");
}
