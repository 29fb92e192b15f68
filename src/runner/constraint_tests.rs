//! Filters and exception lists in whole runs over memory: they narrow the
//! events of every rule kind; on an EQL sequence an excepted event is
//! removed before matching, as Kibana's EQL request `filter` removes it.
//! The same against a cluster: `integration-tests/tests/query_rules.rs`.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::exceptions::{ExceptionStore, ListRef};
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::MemoryStateStore;

const ALERTS: &str = ".alerts-security.alerts-default";
const FOUNDING: &str = include_str!("../../rules/execution_scheduled_task_powershell.toml");

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn load(text: &str) -> Rule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

/// `rule` with the exception lists of `ndjson` (a Kibana exception-list
/// export) resolved, as loading with `--exceptions` does.
fn with_lists(mut rule: Rule, ndjson: &str, list_ids: &[&str]) -> Rule {
    let (store, errors) =
        ExceptionStore::from_texts([(std::path::Path::new("lists.ndjson"), ndjson)]);
    assert!(errors.is_empty(), "{errors:?}");
    let refs: Vec<ListRef> = list_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            ListRef::from_json(&json!({"list_id": id, "namespace_type": "single"}), i).unwrap()
        })
        .collect();
    rule.common.exceptions = Arc::new(store.resolve(&refs).unwrap());
    rule
}

/// An exception list with one item of `entries`, expiring at `expire`.
fn list(list_id: &str, entries: Value, expire: Option<&str>) -> String {
    let list = json!({"list_id": list_id, "namespace_type": "single", "type": "detection",
        "name": list_id, "description": "d"});
    let item = json!({"item_id": format!("{list_id}-1"), "list_id": list_id,
        "namespace_type": "single", "type": "simple", "name": "i", "description": "d",
        "entries": entries, "expire_time": expire});
    format!("{list}\n{item}\n")
}

fn runner(docs: Vec<Document>) -> Runner<MemorySource, MemorySink, MemoryStateStore> {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

fn doc(index: &str, id: &str, source: Value) -> Document {
    Document {
        index: index.into(),
        id: id.into(),
        source,
    }
}

fn attack(host: &str, minute: i64) -> Vec<Document> {
    let at = t0() + Duration::minutes(minute);
    vec![
        doc(
            "logs-endpoint.events.library-default",
            &format!("{host}-lib"),
            crate::synth::founding_library(&iso(at), host, host, "powershell.exe"),
        ),
        doc(
            "logs-endpoint.events.network-default",
            &format!("{host}-net"),
            crate::synth::founding_network(
                &iso(at + Duration::seconds(2)),
                host,
                host,
                "powershell.exe",
                "10.0.0.5",
                135,
            ),
        ),
    ]
}

fn shell_hosts(r: &Runner<MemorySource, MemorySink, MemoryStateStore>) -> Vec<String> {
    let mut hosts: Vec<String> = r
        .sink()
        .alerts(ALERTS)
        .into_values()
        .filter(|a| a.get("kibana.alert.group.index").is_none())
        .map(|a| a["host"]["name"].as_str().unwrap_or("?").to_string())
        .collect();
    hosts.sort();
    hosts
}

/// The exception matches only the network half on `ws-h2`: without it the
/// sequence cannot complete, while `ws-h1` alerts as before.
#[tokio::test]
async fn an_exception_removes_a_sequence_event_before_matching() {
    let mut docs = attack("h1", 1);
    docs.extend(attack("h2", 2));
    let entries = json!([
        {"field": "host.name", "operator": "included", "type": "match", "value": "ws-h2"},
        {"field": "event.category", "operator": "included", "type": "match", "value": "network"}
    ]);
    let rule = with_lists(load(FOUNDING), &list("tuning", entries, None), &["tuning"]);
    let r = runner(docs.clone());
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(shell_hosts(&r), vec!["ws-h1"]);

    // Without the list both attacks alert.
    let r = runner(docs);
    r.execute(&load(FOUNDING), t0() + Duration::minutes(5))
        .await;
    assert_eq!(shell_hosts(&r), vec!["ws-h1", "ws-h2"]);
}

/// An item past its `expire_time` no longer applies (Kibana drops expired
/// items when it builds the exception filter).
#[tokio::test]
async fn an_expired_exception_no_longer_applies() {
    let entries = json!([
        {"field": "host.name", "operator": "included", "type": "match", "value": "ws-h1"}
    ]);
    let expired = list("old", entries.clone(), Some("2024-05-01T09:00:00.000Z"));
    let rule = with_lists(load(FOUNDING), &expired, &["old"]);
    let r = runner(attack("h1", 1));
    r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(shell_hosts(&r), vec!["ws-h1"]);

    let live = list("new", entries, Some("2024-06-01T00:00:00.000Z"));
    let rule = with_lists(load(FOUNDING), &live, &["new"]);
    let r = runner(attack("h1", 1));
    r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert!(shell_hosts(&r).is_empty());
}

fn logon(id: &str, minute: i64, user: &str, host: &str) -> Document {
    doc(
        "logs-system.auth-default",
        id,
        json!({"@timestamp": iso(t0() + Duration::minutes(minute)),
            "event": {"category": "authentication", "outcome": "success"},
            "user": {"name": user}, "host": {"name": host}}),
    )
}

fn query_rule(extra: &str) -> Rule {
    load(&format!(
        "[rule]\nrule_id = \"q-1\"\nname = \"Logons\"\ndescription = \"d\"\ntype = \"query\"\n\
         index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         query = 'event.category:authentication'\n{extra}"
    ))
}

/// Kibana filters (a phrase filter, a negated one, a disabled one) and an
/// exception list on a query rule.
#[tokio::test]
async fn filters_and_exceptions_narrow_a_query_rule() {
    let docs = vec![
        logon("e1", 1, "admin", "ws-1"),
        logon("e2", 2, "admin", "build-01"),
        logon("e3", 3, "alice", "ws-1"),
        logon("e4", 4, "admin", "ws-9"),
    ];
    let filters = r#"
[[rule.filters]]
[rule.filters.meta]
negate = false
disabled = false
[rule.filters.query.match_phrase]
"user.name" = "admin"

[[rule.filters]]
[rule.filters.meta]
negate = true
disabled = false
[rule.filters.query.match_phrase]
"host.name" = "ws-9"

[[rule.filters]]
[rule.filters.meta]
negate = false
disabled = true
[rule.filters.query.match_phrase]
"host.name" = "nowhere"
"#;
    let entries = json!([
        {"field": "host.name", "operator": "included", "type": "match", "value": "build-01"}
    ]);
    let rule = with_lists(
        query_rule(filters),
        &list("build-hosts", entries, None),
        &["build-hosts"],
    );
    let r = runner(docs);
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    let ids: Vec<String> = r
        .sink()
        .alerts(ALERTS)
        .into_values()
        .map(|a| {
            a["kibana.alert.ancestors"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec!["e1"], "{rec:?}");
}
