//! Threshold rules end to end against a live cluster (`ELASTICSEARCH_URL`):
//! the query sent as query DSL for the index's types, the window's events
//! counted per group, alerts written in Kibana's threshold shape with
//! deterministic ids, the per-group history stored in the cluster's state
//! index with the checkpoint. The same runs over memory, with more cases,
//! are in `src/runner/threshold_tests.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::alert::threshold::ThresholdBucket;
use detectd::cluster::Cluster;
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{alert_rule, ExecutionRecord, RunStatus, Runner, RunnerSettings};
use detectd::sink::alerts_index::BootstrapMode;
use detectd::sink::elasticsearch::{
    install_templates, BulkSettings, ElasticsearchSink, IndexNames,
};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::{Checkpoint, ClusterStateStore, StateStore};
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    iso(t0() + Duration::minutes(minute))
}

fn auth_mapping() -> Value {
    json!({"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"outcome": {"type": "keyword"}}},
        "user": {"properties": {"name": {"type": "keyword"}}},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "source": {"properties": {"ip": {"type": "ip"}}}
    }})
}

fn logon(minute: i64, user: &str, ip: &str, outcome: &str) -> Value {
    json!({
        "@timestamp": at(minute),
        "event": {"outcome": outcome},
        "user": {"name": user},
        "host": {"name": "ws-1"},
        "source": {"ip": ip},
    })
}

struct Fixture {
    cluster: Cluster,
    events: String,
    names: IndexNames,
    alerts: AlertsSpace,
}

impl Fixture {
    async fn new(test: &str, docs: Vec<Value>) -> Option<Fixture> {
        let cluster = connect_or_skip(test).await?;
        let prefix = unique_index("thr");
        let names = IndexNames {
            state: format!("{prefix}-state"),
            executions: format!("{prefix}-executions"),
            dead_letters: format!("{prefix}-dead-letters"),
        };
        install_templates(&cluster, &names)
            .await
            .expect("install templates");
        let events = format!("{prefix}-ev-auth");
        create_index(&cluster, &events, auth_mapping()).await;
        let docs: Vec<(String, Value)> = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("e{}", i + 1), d))
            .collect();
        index_docs(&cluster, &events, &docs).await;
        Some(Fixture {
            cluster,
            events,
            names,
            alerts: AlertsSpace::new("thr"),
        })
    }

    fn rule(&self, threshold: &str) -> Rule {
        let text = format!(
            "[rule]\nrule_id = \"t-it\"\nname = \"Password spraying\"\ndescription = \"d\"\n\
             type = \"threshold\"\nlanguage = \"kuery\"\nindex = [\"{}\"]\n\
             severity = \"medium\"\nrisk_score = 47\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
             query = 'event.outcome:failure'\n\n[rule.threshold]\n{threshold}",
            self.events
        );
        match load_str(&text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("rule does not load: {other:?}"),
        }
    }

    fn runner(&self) -> Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore> {
        Runner::new(
            ElasticsearchSource::new(self.cluster.clone()),
            ElasticsearchSink::new(
                self.cluster.clone(),
                BulkSettings {
                    refresh: Some("wait_for".into()),
                    ..BulkSettings::default()
                },
                self.alerts.spec(&self.cluster, BootstrapMode::Create),
            ),
            ClusterStateStore::new(self.cluster.clone(), &self.names),
            RunnerSettings {
                alerts_index: self.alerts.alias(),
                space_id: self.alerts.space().to_string(),
                ..RunnerSettings::default()
            },
        )
    }

    /// The alerts (`_id`, `_source`), oldest last counted event first.
    async fn alerts(&self) -> Vec<(String, Value)> {
        refresh(&self.cluster, &self.alerts.alias()).await;
        let v = self
            .cluster
            .request_json(
                Method::Post,
                &format!("/{}/_search", self.alerts.alias()),
                &[],
                Some(&json!({"size": 100, "sort": [{"kibana.alert.original_time": "asc"}]})),
            )
            .await
            .expect("search alerts");
        v["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                (
                    h["_id"].as_str().unwrap_or("").to_string(),
                    h["_source"].clone(),
                )
            })
            .collect()
    }

    async fn cleanup(&self) {
        delete_indices(&self.cluster, &[&self.events]).await;
        delete_detectd_indices(&self.cluster, &self.names).await;
        self.alerts.delete(&self.cluster).await;
    }
}

fn assert_ok(rec: &ExecutionRecord) {
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
}

/// Three failures from one ip against three users alert (count and
/// cardinality exactly at 3); two failures from another ip do not (one
/// below). The alert is Kibana's threshold alert, its id the recipe's.
#[tokio::test]
async fn a_group_at_the_value_alerts_in_kibanas_shape_and_one_below_does_not() {
    let docs = vec![
        logon(1, "u1", "10.0.0.1", "failure"),
        logon(2, "u2", "10.0.0.1", "failure"),
        logon(3, "u3", "10.0.0.1", "failure"),
        logon(1, "u1", "10.0.0.2", "failure"),
        logon(2, "u2", "10.0.0.2", "failure"),
        logon(3, "u3", "10.0.0.2", "success"),
    ];
    let Some(fx) = Fixture::new("threshold_at_and_below", docs).await else {
        return;
    };
    let rule = fx.rule(
        "field = [\"source.ip\"]\nvalue = 3\n\n[[rule.threshold.cardinality]]\n\
         field = \"user.name\"\nvalue = 3\n",
    );
    let now = t0() + Duration::minutes(5);
    let rec = fx.runner().run(&rule, now).await;
    assert_ok(&rec);
    assert_eq!(rec.alerts_created, 1, "{rec:#?}");
    let alerts = fx.alerts().await;
    assert_eq!(alerts.len(), 1);
    let (id, a) = &alerts[0];
    assert_eq!(
        a["kibana.alert.threshold_result"],
        json!({
            "cardinality": [{"field": "user.name", "value": 3}],
            "count": 3,
            "from": at(1),
            "terms": [{"field": "source.ip", "value": "10.0.0.1"}],
        })
    );
    assert_eq!(
        a["kibana.alert.rule.rule_type_id"],
        json!("siem.thresholdRule")
    );
    assert_eq!(a["kibana.alert.rule.category"], json!("Threshold Rule"));
    assert_eq!(a["kibana.alert.original_time"], json!(at(3)));
    assert_eq!(
        a["kibana.alert.rule.parameters"]["threshold"]["value"],
        json!(3)
    );
    // The id: the event alert id of the made-up hit of this group and window.
    let bucket = ThresholdBucket {
        terms: vec![("source.ip".into(), json!("10.0.0.1"))],
        count: 3,
        min_ts: (t0() + Duration::minutes(1)).timestamp_millis(),
        max_ts: (t0() + Duration::minutes(3)).timestamp_millis(),
        cardinality: Some(("user.name".into(), 3)),
        window_end: now,
    };
    assert_eq!(
        *id,
        bucket.alert_id(&alert_rule(&rule, now), fx.alerts.space())
    );
    fx.cleanup().await;
}

/// Downtime: the checkpoint is 15 minutes old. The run evaluates the three
/// windows (+5, +10, +15; each 9 minutes wide), the threshold crossed in
/// each: three alerts of 3 events, each event in exactly one. The next run
/// (window +11..+20) holds the last three events again and alerts nothing.
#[tokio::test]
async fn catch_up_alerts_once_per_interval_and_never_twice() {
    let docs: Vec<Value> = [1, 2, 3, 6, 7, 8, 11, 12, 13]
        .iter()
        .map(|m| logon(*m, "admin", "10.0.0.9", "failure"))
        .collect();
    let Some(fx) = Fixture::new("threshold_catch_up", docs).await else {
        return;
    };
    let rule = fx.rule("field = \"user.name\"\nvalue = 3\n");
    let runner = fx.runner();
    runner
        .state()
        .save_checkpoint(&Checkpoint {
            rule_id: rule.rule_id.clone(),
            covered_until: t0(),
            updated_at: t0(),
            pending: None,
            threshold_history: Vec::new(),
        })
        .await
        .expect("checkpoint");
    let rec = runner.run(&rule, t0() + Duration::minutes(15)).await;
    assert_ok(&rec);
    assert_eq!((rec.windows.len(), rec.alerts_created), (3, 3), "{rec:#?}");
    let got: Vec<(Value, Value)> = fx
        .alerts()
        .await
        .iter()
        .map(|(_, a)| {
            (
                a["kibana.alert.threshold_result"]["count"].clone(),
                a["kibana.alert.threshold_result"]["from"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!(3), json!(at(1))),
            (json!(3), json!(at(6))),
            (json!(3), json!(at(11))),
        ]
    );
    // The history is in the cluster's state document, with the checkpoint.
    let checkpoint = runner
        .state()
        .checkpoint(&rule.rule_id)
        .await
        .expect("read checkpoint")
        .expect("a checkpoint");
    assert_eq!(checkpoint.covered_until, t0() + Duration::minutes(15));
    assert_eq!(checkpoint.threshold_history.len(), 1);
    assert_eq!(
        checkpoint.threshold_history[0].last,
        (t0() + Duration::minutes(13)).timestamp_millis()
    );
    let again = runner.run(&rule, t0() + Duration::minutes(20)).await;
    assert_ok(&again);
    assert_eq!(
        (again.alerts_created, again.alerts_duplicate),
        (0, 0),
        "{again:#?}"
    );
    fx.cleanup().await;
}
