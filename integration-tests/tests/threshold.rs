//! Threshold rules end to end against a live cluster (`ELASTICSEARCH_URL`):
//! the query sent as query DSL for the index's types, the window's events
//! counted per group, alerts written in Kibana's threshold shape with
//! deterministic ids, the per-group history stored in the cluster's state
//! index with the checkpoint. The same runs over memory, with more cases,
//! are in `src/runner/threshold_tests.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::alert::threshold::ThresholdBucket;
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{alert_rule, ExecutionRecord, RunStatus, Runner};
use detectd::sink::elasticsearch::ElasticsearchSink;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::{Checkpoint, ClusterStateStore, StateStore};
use detectd_integration_tests::*;
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
    space: RunSpace,
    events: String,
}

impl Fixture {
    async fn new(test: &str, docs: Vec<Value>) -> Option<Fixture> {
        let space = RunSpace::new(test, "thr").await?;
        let cluster = space.cluster.clone();
        let prefix = space.prefix.clone();
        let events = format!("{prefix}-ev-auth");
        create_index(&cluster, &events, auth_mapping()).await;
        let docs: Vec<(String, Value)> = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("e{}", i + 1), d))
            .collect();
        index_docs(&cluster, &events, &docs).await;
        Some(Fixture { space, events })
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
        self.runner_with(true)
    }

    /// A runner whose threshold counts are aggregations on the cluster
    /// (`aggregate`), or counted from the fetched events.
    fn runner_with(
        &self,
        aggregate: bool,
    ) -> Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore> {
        self.space.runner(
            ElasticsearchSource::new(self.space.cluster.clone()).with_aggregations(aggregate),
        )
    }

    /// The alerts (`_id`, `_source`), oldest last counted event first.
    async fn alerts(&self) -> Vec<(String, Value)> {
        self.space
            .alert_hits(&json!({"size": 100, "sort": [{"kibana.alert.original_time": "asc"}]}))
            .await
            .into_iter()
            .map(|h| {
                (
                    h["_id"].as_str().unwrap_or("").to_string(),
                    h["_source"].clone(),
                )
            })
            .collect()
    }

    /// Alerts and state gone, templates back: as before the first run.
    async fn reset(&self) {
        self.space.reset().await;
    }

    async fn cleanup(&self) {
        self.space.cleanup(&[&self.events]).await;
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
    // Counted by the cluster: no event was fetched.
    assert_eq!(rec.events_fetched, 0, "{rec:#?}");
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
        bucket.alert_id(&alert_rule(&rule, now), fx.space.alerts.space())
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

/// The aggregation on the cluster and the count of fetched events agree:
/// the same alerts (ids, results, times) over two fields, an event with two
/// users (one group per value), events without a field, a cardinality, a
/// time from `timestamp_override` with `@timestamp` as fallback, and a
/// second, overlapping run that must exclude what the first alerted.
#[tokio::test]
async fn the_pushed_down_count_and_the_local_count_agree() {
    let mut docs: Vec<Value> = Vec::new();
    for (m, user, ip) in [
        (1, json!("u1"), "10.0.0.1"),
        (2, json!("u2"), "10.0.0.1"),
        (3, json!(["u1", "u3"]), "10.0.0.1"),
        (4, json!("u1"), "10.0.0.2"),
        (6, json!("u4"), "10.0.0.1"),
        (7, json!("u5"), "10.0.0.1"),
        (8, json!("u1"), "10.0.0.1"),
        (9, json!("u1"), "10.0.0.2"),
    ] {
        let mut d = logon(m, "x", ip, "failure");
        d["user"]["name"] = user;
        // Half the events carry `event.ingested` a minute after the event.
        if m % 2 == 0 {
            d["event"]["ingested"] = json!(at(m + 1));
        }
        docs.push(d);
    }
    docs.push(
        json!({"@timestamp": at(2), "event": {"outcome": "failure"}, "source": {"ip": "10.0.0.1"}}),
    );
    let Some(fx) = Fixture::new("threshold_pushdown_agrees", docs).await else {
        return;
    };
    let mut rule = fx.rule(
        "field = [\"source.ip\", \"host.name\"]\nvalue = 2\n\n\
         [[rule.threshold.cardinality]]\nfield = \"user.name\"\nvalue = 2\n",
    );
    rule.common.timestamp_override = Some("event.ingested".into());
    let mut seen = Vec::new();
    for aggregate in [true, false] {
        fx.reset().await;
        let runner = fx.runner_with(aggregate);
        let one = runner.run(&rule, t0() + Duration::minutes(5)).await;
        let two = runner.run(&rule, t0() + Duration::minutes(10)).await;
        assert_ok(&one);
        assert_ok(&two);
        assert_eq!(one.events_fetched == 0, aggregate, "{one:#?}");
        let alerts: Vec<(String, Value, Value)> = fx
            .alerts()
            .await
            .into_iter()
            .map(|(id, a)| {
                (
                    id,
                    a["kibana.alert.threshold_result"].clone(),
                    a["kibana.alert.original_time"].clone(),
                )
            })
            .collect();
        seen.push(alerts);
    }
    // Hand-counted: 10.0.0.1/ws-1 has events at 1, 2 (ingested 3), 3 and,
    // without a host, one at 2 (in no group). First run (window -4..+5):
    // 3 events, users u1, u2, u3 (the event at 3 has two). Second run
    // (window +1..+10): only events after +3 count: 6 (ingested 7), 7,
    // 8 (ingested 9): 3 events, users u4, u5, u1. 10.0.0.2 has two events
    // of one user: below the cardinality each time.
    let expected = vec![
        (
            json!({"cardinality": [{"field": "user.name", "value": 3}], "count": 3,
                   "from": at(1), "terms": [{"field": "source.ip", "value": "10.0.0.1"},
                                            {"field": "host.name", "value": "ws-1"}]}),
            json!(at(3)),
        ),
        (
            json!({"cardinality": [{"field": "user.name", "value": 3}], "count": 3,
                   "from": at(7), "terms": [{"field": "source.ip", "value": "10.0.0.1"},
                                            {"field": "host.name", "value": "ws-1"}]}),
            json!(at(9)),
        ),
    ];
    let got: Vec<(Value, Value)> = seen[0]
        .iter()
        .map(|(_, r, t)| (r.clone(), t.clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(seen[0], seen[1], "pushed down vs local");
    fx.cleanup().await;
}
