//! ES|QL rules against a mocked Elasticsearch (the test server has no
//! ES|QL): Kibana's request shape (`_query/async` with the limit, the
//! `filter` with the time range on `timestamp_override` and its fallback,
//! polling, the delete), alerts as the rows' documents with the columns
//! over them, made-up hits for aggregating rows whose ids hold across
//! overlapping windows, and OpenSearch refusing with the reason.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::cluster_mock::{start, State};
use super::*;
use crate::alert::ids::{event_alert_id, EventRef};
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::elasticsearch::ElasticsearchSource;
use crate::state::MemoryStateStore;

const ALERTS: &str = ".alerts-security.alerts-default";
const PROCESS: &str = "logs-endpoint.events.process-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    (t0() + Duration::minutes(minute)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rule(text: &str) -> Rule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn by_id_rule() -> Rule {
    rule(include_str!(
        "../../tests/fixtures/cluster_only/esql_by_id.toml"
    ))
}

fn stats_rule() -> Rule {
    rule(include_str!(
        "../../tests/fixtures/cluster_only/esql_stats.toml"
    ))
}

fn runner(
    source: ElasticsearchSource,
) -> Runner<ElasticsearchSource, MemorySink, MemoryStateStore> {
    Runner::new(
        source,
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

fn table(columns: &[&str], rows: Vec<Vec<Value>>) -> Value {
    json!({
        "columns": columns.iter().map(|c| json!({"name": c, "type": "keyword"})).collect::<Vec<_>>(),
        "values": rows,
    })
}

#[tokio::test]
async fn rows_with_an_id_alert_as_their_documents_with_kibanas_request() {
    let columns = [
        "process.name",
        "process.parent.name",
        "host.name",
        "_id",
        "_index",
        "_version",
    ];
    let row = |name: &str, id: &str| {
        vec![
            json!(name),
            json!("nginx"),
            json!("web-1"),
            json!(id),
            json!(PROCESS),
            json!(1),
        ]
    };
    let (_server, mock, source) = start(State {
        indices: vec![PROCESS.into()],
        docs: vec![(
            PROCESS.into(),
            "e1".into(),
            json!({
                "@timestamp": at(-3), "event": {"ingested": at(-2)},
                "process": {"name": "SH", "pid": 4, "parent": {"name": "nginx"}},
                "host": {"name": "web-1"}
            }),
        )],
        esql: [table(
            &columns,
            // e1 twice (an MV_EXPAND'ed document alerts once); e2 was
            // deleted before its source was read: the row alone.
            vec![row("sh", "e1"), row("sh", "e1"), row("bash", "e2")],
        )]
        .into(),
        ..State::default()
    })
    .await;
    let rule = by_id_rule();
    let r = runner(source);
    let record = r.run(&rule, t0()).await;
    assert_eq!(record.error, None, "{record:?}");
    assert_eq!(record.alerts_created, 2, "{record:?}");

    // Kibana's request: the query with `| limit`, the filter with the time
    // range on timestamp_override and its @timestamp fallback.
    let posts = mock.seen("POST", "/_query/async");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].query, "drop_null_columns=true");
    let q = posts[0].body["query"].as_str().unwrap();
    assert!(
        q.starts_with("from logs-endpoint.events.process-* metadata _id"),
        "{q}"
    );
    assert!(q.ends_with("\n| limit 301"), "3 x max_signals + 1: {q}");
    let filter = posts[0].body["filter"].to_string();
    assert!(filter.contains("event.ingested"), "{filter}");
    assert!(filter.contains("@timestamp"), "the fallback: {filter}");
    assert!(filter.contains(&at(-9)[..16]), "window start: {filter}");
    assert_eq!(mock.seen("GET", "/_query/async/Q1").len(), 1, "polled once");
    assert_eq!(mock.seen("DELETE", "/_query/async/Q1").len(), 1, "deleted");

    let alerts = r.sink().alerts(ALERTS);
    let id = |doc: &str| {
        event_alert_id(
            EventRef {
                index: PROCESS,
                id: doc,
            },
            "default",
            rule.uuid(),
        )
    };
    let e1 = &alerts[&id("e1")];
    assert_eq!(e1["kibana.alert.rule.rule_type_id"], "siem.esqlRule");
    assert_eq!(e1["kibana.alert.rule.category"], "ES|QL Rule");
    assert_eq!(e1["kibana.alert.rule.parameters"]["language"], "esql");
    assert!(e1["kibana.alert.rule.parameters"].get("index").is_none());
    // The column replaced the document's field; the rest of it is there.
    assert_eq!(e1["process.name"], "sh");
    assert!(e1["process"].get("name").is_none(), "{e1}");
    assert_eq!(e1["process"]["pid"], 4);
    assert_eq!(e1["kibana.alert.ancestors"][0]["id"], "e1");
    let e2 = &alerts[&id("e2")];
    assert_eq!(e2["process.name"], "bash");
    assert!(e2.get("_id").is_none() && e2.get("_version").is_none());

    // The next window returns the same rows: no new alert.
    mock.0.lock().unwrap().esql = [table(&columns, vec![row("sh", "e1")])].into();
    let record = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(
        (record.alerts_created, record.alerts_duplicate),
        (0, 1),
        "{record:?}"
    );
}

#[tokio::test]
async fn an_aggregating_row_is_one_alert_across_overlapping_windows_and_new_after_a_gap() {
    let columns = ["failures", "user.name", "host.name"];
    let row = |n: i64| vec![json!(n), json!("alice"), json!("ws-1")];
    let (_server, mock, source) = start(State {
        indices: vec!["logs-system.auth-default".into()],
        esql: [
            table(&columns, vec![row(6)]),
            // The next window (overlapping: 9m every 5m) sees the same row.
            table(&columns, vec![row(6)]),
            // Then the count grows: a new alert.
            table(&columns, vec![row(9)]),
        ]
        .into(),
        ..State::default()
    })
    .await;
    let rule = stats_rule();
    let r = runner(source);
    for minute in [0, 5, 10] {
        let record = r.run(&rule, t0() + Duration::minutes(minute)).await;
        assert_eq!(record.error, None, "{record:?}");
    }
    let alerts = r.sink().alerts(ALERTS);
    assert_eq!(alerts.len(), 2, "{:?}", alerts.keys());
    let counts: Vec<i64> = {
        let mut c: Vec<i64> = alerts
            .values()
            .map(|a| a["failures"].as_i64().unwrap())
            .collect();
        c.sort();
        c
    };
    assert_eq!(counts, [6, 9]);
    let a = alerts.values().next().unwrap();
    assert_eq!(a["kibana.alert.rule.rule_type_id"], "siem.esqlRule");
    assert_eq!(
        a["user"]["name"].as_str().or(a["user.name"].as_str()),
        Some("alice")
    );

    // A window without the row, then the same row again in a window that
    // does not overlap the last one that returned it: a new alert.
    mock.0.lock().unwrap().esql = [table(&columns, vec![])].into();
    let record = r.run(&rule, t0() + Duration::minutes(15)).await;
    assert_eq!((record.error, record.alerts_created), (None, 0));
    mock.0.lock().unwrap().esql = [table(&columns, vec![row(9)])].into();
    let record = r.run(&rule, t0() + Duration::minutes(20)).await;
    assert_eq!(
        (record.error.clone(), record.alerts_created),
        (None, 1),
        "{record:?}"
    );
    assert_eq!(r.sink().alerts(ALERTS).len(), 3);
}

#[tokio::test]
async fn on_opensearch_an_esql_rule_fails_with_the_reason_and_sends_nothing() {
    let (_server, mock, source) = start(State {
        opensearch: true,
        indices: vec![PROCESS.into()],
        ..State::default()
    })
    .await;
    let r = runner(source);
    let record = r.run(&by_id_rule(), t0()).await;
    let error = record.error.expect("an error");
    assert!(
        error.contains("OpenSearch") && error.contains("ES|QL"),
        "{error}"
    );
    assert!(mock.seen("POST", "/_query").is_empty());
}
