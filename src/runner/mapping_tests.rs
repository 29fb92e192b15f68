//! Rule runs over memory with index mappings: every event is evaluated with
//! the mapping of the index it came from, and a query that one index's
//! mapping cannot take fails the run without moving the checkpoint.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::{Document, Mappings};
use crate::state::{MemoryStateStore, StateStore};

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn rule(query: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"mapped\"\nname = \"Mapped\"\ndescription = \"d\"\ntype = \"eql\"\n\
         language = \"eql\"\nindex = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         from = \"now-9m\"\ninterval = \"5m\"\nquery = '''\n{query}\n'''\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

/// A document `minute` minutes after t0, as epoch milliseconds.
fn doc(index: &str, id: &str, minute: i64, mut source: Value) -> Document {
    let at = t0() + Duration::minutes(minute);
    source["@timestamp"] = json!(at.timestamp_millis());
    Document {
        index: index.into(),
        id: id.into(),
        source,
    }
}

/// The `_id`s of the source events the alerts were raised for.
fn alerted(sink: &MemorySink) -> Vec<String> {
    let mut ids: Vec<String> = sink
        .alerts(ALERTS)
        .into_values()
        .map(|a| {
            a["kibana.alert.ancestors"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

fn mappings() -> Mappings {
    Mappings::from_json(&[
        (
            "logs-a",
            json!({"properties": {
                "data_stream": {"properties": {"dataset": {"type": "constant_keyword", "value": "a"}}},
                "destination": {"properties": {"ip": {"type": "ip"}}},
                "host": {"properties": {"hostname": {"type": "keyword"},
                    "name": {"type": "alias", "path": "host.hostname"}}},
                "code": {"type": "long"}
            }}),
        ),
        (
            "logs-b",
            json!({"properties": {
                "data_stream": {"properties": {"dataset": {"type": "constant_keyword", "value": "b"}}},
                "destination": {"properties": {"ip": {"type": "keyword"}}},
                "code": {"type": "keyword"}
            }}),
        ),
    ])
    .unwrap()
}

fn runner(docs: Vec<Document>) -> Runner<MemorySource, MemorySink, MemoryStateStore> {
    Runner::new(
        MemorySource::new(docs).with_mappings(mappings()),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

#[tokio::test]
async fn each_event_is_evaluated_with_its_index_mapping() {
    let docs = vec![
        doc(
            "logs-a",
            "a1",
            1,
            json!({"destination": {"ip": "10.0.0.1"}, "code": 10}),
        ),
        doc(
            "logs-b",
            "b1",
            2,
            json!({"destination": {"ip": "10.0.0.1"}, "code": "10"}),
        ),
        doc(
            "logs-a",
            "a2",
            3,
            json!({"host": {"hostname": "ws-1"}, "code": 5}),
        ),
    ];
    let now = t0() + Duration::minutes(5);
    for (query, want) in [
        // the constant is in no `_source`
        (r#"any where data_stream.dataset == "b""#, vec!["b1"]),
        // ip in logs-a, keyword in logs-b
        (
            r#"any where destination.ip == "::ffff:10.0.0.1""#,
            vec!["a1"],
        ),
        // long in logs-a (10 < 9 is false), keyword in logs-b ("10" < "9")
        (r#"any where code < 9"#, vec!["a2", "b1"]),
        // an alias only logs-a has
        (r#"any where host.name == "ws-1""#, vec!["a2"]),
    ] {
        let r = runner(docs.clone());
        let rec = r.execute(&rule(query), now).await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{query}: {rec:?}");
        assert_eq!(alerted(r.sink()), want, "{query}");
    }
}

#[tokio::test]
async fn a_query_an_index_mapping_cannot_take_fails_the_run_and_keeps_the_window() {
    let docs = vec![doc(
        "logs-a",
        "a1",
        1,
        json!({"destination": {"ip": "10.0.0.1"}}),
    )];
    let r = runner(docs);
    let rec = r
        .execute(
            &rule(r#"any where destination.ip == "not-an-ip""#),
            t0() + Duration::minutes(5),
        )
        .await;
    assert_eq!(rec.status, RunStatus::Failed);
    let error = rec.error.unwrap_or_default();
    assert!(
        error.starts_with("query does not compile with the mapping of `logs-a`: "),
        "{error}"
    );
    assert!(r.state().checkpoint("mapped").await.unwrap().is_none());
}
