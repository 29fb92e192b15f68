//! Alert suppression against a live cluster (`ELASTICSEARCH_URL`): the
//! open alert found in Kibana's alerts alias by its instance id and
//! extended in place with a `_bulk` `update`, across runs, a restart (a
//! new runner: suppression's state is the alerts index) and a catch-up
//! over several windows, each match counted once. The same over memory,
//! with more cases: `src/runner/suppression_tests.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ExecutionRecord, RunStatus};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    iso(t0() + Duration::minutes(minute))
}

fn failure(minute: i64, host: &str) -> Value {
    json!({
        "@timestamp": at(minute),
        "event": {"outcome": "failure"},
        "user": {"name": "alice"},
        "host": {"name": host},
    })
}

struct Fixture {
    space: RunSpace,
    events: String,
}

impl Fixture {
    async fn new(test: &str, docs: Vec<Value>) -> Option<Fixture> {
        let space = RunSpace::new(test, "sup").await?;
        let events = format!("{}-ev-auth", space.prefix);
        create_index(
            &space.cluster,
            &events,
            json!({"properties": {
                "@timestamp": {"type": "date"},
                "event": {"properties": {"outcome": {"type": "keyword"}}},
                "user": {"properties": {"name": {"type": "keyword"}}},
                "host": {"properties": {"name": {"type": "keyword"}}}
            }}),
        )
        .await;
        let docs: Vec<(String, Value)> = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("e{}", i + 1), d))
            .collect();
        index_docs(&space.cluster, &events, &docs).await;
        Some(Fixture { space, events })
    }

    fn rule(&self, suppression: &str) -> Rule {
        let text = format!(
            "[rule]\nrule_id = \"s-it\"\nname = \"Failures\"\ndescription = \"d\"\n\
             type = \"query\"\nlanguage = \"kuery\"\nindex = [\"{}\"]\n\
             severity = \"low\"\nrisk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
             query = 'event.outcome:failure'\n\n[rule.alert_suppression]\n{suppression}",
            self.events
        );
        match load_str(&text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("rule does not load: {other:?}"),
        }
    }

    /// A new runner each time: what a restarted daemon has.
    fn runner(&self) -> ClusterRunner {
        self.space
            .runner(ElasticsearchSource::new(self.space.cluster.clone()))
    }

    /// The alerts' sources, by suppression start.
    async fn alerts(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .space
            .alert_hits(&json!({"size": 100}))
            .await
            .into_iter()
            .map(|h| h["_source"].clone())
            .collect();
        out.sort_by_key(|a| {
            a["kibana.alert.suppression.start"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        out
    }

    async fn cleanup(&self) {
        self.space.cleanup(&[&self.events]).await;
    }
}

fn assert_ok(rec: &ExecutionRecord) {
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
}

/// With a duration: the first run alerts (two matches: docs_count 1), the
/// next run — a restart — extends that alert in place, and a catch-up over
/// three windows extends it once per new match; every event lies in two
/// windows and is counted once.
#[tokio::test]
async fn the_open_alert_is_extended_in_place_across_runs_a_restart_and_a_catch_up() {
    let docs = vec![
        failure(-8, "ws-1"),
        failure(-2, "ws-1"),
        failure(3, "ws-1"),
        failure(8, "ws-1"),
        failure(13, "ws-1"),
        failure(18, "ws-1"),
        failure(-1, "ws-2"),
    ];
    let Some(fx) = Fixture::new("suppression_in_place", docs).await else {
        return;
    };
    let rule = fx.rule("group_by = [\"host.name\"]\nduration = {value = 1, unit = \"h\"}");
    let rec = fx.runner().run(&rule, t0()).await;
    assert_ok(&rec);
    assert_eq!(
        (rec.alerts_created, rec.alerts_suppressed),
        (2, 1),
        "{rec:#?}"
    );

    let rec = fx.runner().run(&rule, t0() + Duration::minutes(5)).await;
    assert_ok(&rec);
    assert_eq!(
        (rec.alerts_created, rec.alerts_suppressed),
        (0, 1),
        "{rec:#?}"
    );

    let rec = fx.runner().run(&rule, t0() + Duration::minutes(20)).await;
    assert_ok(&rec);
    assert_eq!(rec.windows.len(), 3, "{rec:#?}");
    assert_eq!(
        (rec.alerts_created, rec.alerts_suppressed),
        (0, 3),
        "{rec:#?}"
    );

    let alerts = fx.alerts().await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let ws1 = &alerts[0];
    assert_eq!(
        ws1["kibana.alert.suppression.terms"],
        json!([{"field": "host.name", "value": "ws-1"}])
    );
    assert_eq!(ws1["kibana.alert.suppression.start"], at(-8));
    assert_eq!(ws1["kibana.alert.suppression.end"], at(18));
    assert_eq!(ws1["kibana.alert.suppression.docs_count"], 5);
    assert_eq!(alerts[1]["kibana.alert.suppression.docs_count"], 0);
    fx.cleanup().await;
}

/// Without a duration, per run: the overlapping window's matches already
/// in the first alert are not counted again; a new match is a new alert.
#[tokio::test]
async fn per_run_suppression_makes_one_alert_per_group_and_run() {
    let docs = vec![failure(-8, "ws-1"), failure(-2, "ws-1"), failure(3, "ws-1")];
    let Some(fx) = Fixture::new("suppression_per_run", docs).await else {
        return;
    };
    let rule = fx.rule("group_by = [\"host.name\"]");
    let rec = fx.runner().run(&rule, t0()).await;
    assert_ok(&rec);
    assert_eq!(rec.alerts_created, 1);
    let rec = fx.runner().run(&rule, t0() + Duration::minutes(5)).await;
    assert_ok(&rec);
    assert_eq!(rec.alerts_created, 1, "{rec:#?}");
    let alerts = fx.alerts().await;
    let counts: Vec<&Value> = alerts
        .iter()
        .map(|a| &a["kibana.alert.suppression.docs_count"])
        .collect();
    assert_eq!(counts, [&json!(1), &json!(0)]);
    assert_eq!(alerts[1]["kibana.alert.suppression.start"], at(3));
    fx.cleanup().await;
}
