//! Machine-learning rules against a mocked Elasticsearch (the test server
//! has no ML): Kibana's anomaly search body, exactly; alerts from the
//! records with the influencers as ECS fields and stable ids; a job that
//! is missing or not started is a warning of the run.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::cluster_mock::{start, State};
use super::*;
use crate::alert::ids::{event_alert_id, EventRef};
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::state::MemoryStateStore;

const ALERTS: &str = ".alerts-security.alerts-default";
const RESULTS: &str = ".ml-anomalies-shared";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn ml_rule() -> Rule {
    match load_str(include_str!("../../tests/fixtures/cluster_only/ml.toml")) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn record(id: &str, minute: i64, score: f64) -> Value {
    json!({
        "_index": RESULTS, "_id": id,
        "_source": {
            "job_id": "v3_rare_process_by_host", "result_type": "record",
            "record_score": score, "is_interim": false,
            "timestamp": (t0() + Duration::minutes(minute)).timestamp_millis(),
            "by_field_name": "process.name", "by_field_value": "evil.exe",
            "influencers": [
                {"influencer_field_name": "host.name", "influencer_field_values": ["ws-7"]}
            ]
        }
    })
}

#[tokio::test]
async fn anomaly_records_alert_with_kibanas_search_and_job_warnings() {
    let (_server, mock, source) = start(State {
        jobs: json!({"jobs": [
            {"job_id": "v3_rare_process_by_host", "state": "opened"},
            {"job_id": "v3_rare_parent", "state": "closed"}
        ]}),
        feeds: json!({"datafeeds": [
            {"datafeed_id": "datafeed-v3_rare_process_by_host", "job_id": "v3_rare_process_by_host"},
            {"datafeed_id": "datafeed-v3_rare_parent", "job_id": "v3_rare_parent"}
        ]}),
        feed_stats: json!({"datafeeds": [
            {"datafeed_id": "datafeed-v3_rare_process_by_host", "state": "started"},
            {"datafeed_id": "datafeed-v3_rare_parent", "state": "stopped"}
        ]}),
        records: vec![record("r1", -20, 92.0), record("r2", -10, 80.5)],
        ..State::default()
    })
    .await;
    let rule = ml_rule();
    let r = Runner::new(
        source,
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let record = r.run(&rule, t0()).await;
    assert_eq!(record.error, None, "{record:?}");
    assert_eq!(record.alerts_created, 2);
    assert!(
        record
            .warnings
            .iter()
            .any(|w| w.contains("ML jobs are not started")
                && w.contains("\"v3_rare_parent\"")
                && w.contains("closed")
                && !w.contains("\"v3_rare_process_by_host\"")),
        "{:?}",
        record.warnings
    );

    // Kibana's `buildAnomalyQuery`, over the window in epoch ms.
    let searches = mock.seen("POST", "/.ml-anomalies-*/_search");
    assert_eq!(searches.len(), 1);
    let window_start = (t0() - Duration::minutes(45)).timestamp_millis();
    assert_eq!(
        searches[0].body,
        json!({
            "size": 100,
            "query": {"bool": {"filter": [
                {"query_string": {"query": "result_type:record", "analyze_wildcard": false}},
                {"term": {"is_interim": false}},
                {"bool": {"must": [
                    {"range": {"timestamp": {"gte": window_start, "lte": t0().timestamp_millis(), "format": "epoch_millis"}}},
                    {"range": {"record_score": {"gte": 75}}},
                    {"query_string": {"analyze_wildcard": false, "query": "job_id:v3_rare_process_by_host OR job_id:v3_rare_parent"}}
                ]}}
            ]}},
            "fields": [{"field": "*", "include_unmapped": true}],
            "sort": [{"record_score": {"order": "desc"}}]
        })
    );

    let alerts = r.sink().alerts(ALERTS);
    let id = event_alert_id(
        EventRef {
            index: RESULTS,
            id: "r1",
        },
        "default",
        rule.uuid(),
    );
    let a = &alerts[&id];
    assert_eq!(a["kibana.alert.rule.rule_type_id"], "siem.mlRule");
    assert_eq!(a["kibana.alert.rule.category"], "Machine Learning Rule");
    assert_eq!(a["host"]["name"], json!(["ws-7"]));
    assert_eq!(a["process"]["name"], json!(["evil.exe"]));
    assert_eq!(a["record_score"], 92.0);
    assert_eq!(
        a["kibana.alert.original_time"],
        (t0() - Duration::minutes(20)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let params = &a["kibana.alert.rule.parameters"];
    assert_eq!(params["anomaly_threshold"], 75);
    assert!(params.get("index").is_none() && params.get("language").is_none());

    // The next, overlapping window finds the same records: no new alert.
    let record = r.run(&rule, t0() + Duration::minutes(15)).await;
    assert_eq!(
        (record.alerts_created, record.alerts_duplicate),
        (0, 2),
        "{record:?}"
    );
}

#[tokio::test]
async fn on_opensearch_an_ml_rule_fails_with_the_reason() {
    let (_server, mock, source) = start(State {
        opensearch: true,
        ..State::default()
    })
    .await;
    let r = Runner::new(
        source,
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let record = r.run(&ml_rule(), t0()).await;
    let error = record.error.expect("an error");
    assert!(
        error.contains("OpenSearch") && error.contains("machine learning"),
        "{error}"
    );
    assert!(mock.seen("POST", "/.ml-anomalies").is_empty());
}
