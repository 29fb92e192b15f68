//! Alerts on a live cluster with Kibana's alerts index: an odd event's
//! alert does not make later alerts unwritable (the regression of issue
//! "Kibana parity": a `host` string once fixed `host` as a keyword and every
//! founding-rule alert after it was refused and dropped), and an alert the
//! cluster still refuses is kept as a dead letter, then written by a replay
//! once the cause is fixed.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::cluster::Cluster;
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{replay_dead_letters, RunStatus, Runner, RunnerSettings};
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

fn event_rule(rule_id: &str, index: &str, query: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"{rule_id}\"\nname = \"Odd events\"\ndescription = \"d\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"{index}\"]\nseverity = \"low\"\n\
         risk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\nquery = '''\n{query}\n'''\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

struct Fx {
    cluster: Cluster,
    events: String,
    names: IndexNames,
    space: AlertsSpace,
}

impl Fx {
    async fn new(test: &str) -> Option<Fx> {
        let cluster = connect_or_skip(test).await?;
        let prefix = unique_index("docs");
        let names = IndexNames {
            state: format!("{prefix}-state"),
            executions: format!("{prefix}-executions"),
            dead_letters: format!("{prefix}-dead-letters"),
        };
        install_templates(&cluster, &names).await.unwrap();
        let events = format!("{prefix}-events");
        create_index(&cluster, &events, ecs_mapping()).await;
        Some(Fx {
            cluster,
            events,
            names,
            space: AlertsSpace::new("docs"),
        })
    }

    fn state(&self) -> ClusterStateStore {
        ClusterStateStore::new(self.cluster.clone(), &self.names)
    }

    fn sink(&self) -> ElasticsearchSink {
        ElasticsearchSink::new(
            self.cluster.clone(),
            BulkSettings {
                refresh: Some("true".into()),
                ..BulkSettings::default()
            },
            self.space.spec(&self.cluster, BootstrapMode::Create),
        )
    }

    fn runner(&self) -> Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore> {
        Runner::new(
            ElasticsearchSource::new(self.cluster.clone()),
            self.sink(),
            self.state(),
            RunnerSettings {
                alerts_index: self.space.alias(),
                space_id: self.space.space().to_string(),
                ..RunnerSettings::default()
            },
        )
    }

    async fn start_at(&self, rule: &Rule, at: DateTime<Utc>) {
        self.state()
            .save_checkpoint(&Checkpoint {
                threshold_history: Vec::new(),
                rule_id: rule.rule_id.clone(),
                covered_until: at,
                updated_at: at,
                pending: None,
            })
            .await
            .unwrap();
    }

    async fn alerts(&self) -> Vec<Value> {
        refresh(&self.cluster, &self.space.alias()).await;
        let v = self
            .cluster
            .request_json(
                Method::Post,
                &format!("/{}/_search", self.space.alias()),
                &[],
                Some(&json!({"size": 100, "query": {"match_all": {}}})),
            )
            .await
            .unwrap();
        v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_source"].clone())
            .collect()
    }

    async fn cleanup(&self) {
        delete_indices(&self.cluster, &[&self.events]).await;
        delete_detectd_indices(&self.cluster, &self.names).await;
        self.space.delete(&self.cluster).await;
    }
}

/// Regression: an alert on an event whose `host` is a string, then the
/// founding rule's alerts (ECS `host` objects) into the same alerts index:
/// every alert is written, the odd values are left out of the first.
#[tokio::test]
async fn an_odd_event_does_not_make_later_alerts_unwritable() {
    let Some(fx) = Fx::new("odd_event_regression").await else {
        return;
    };
    let at = t0() + Duration::minutes(1);
    // the odd event lives in an index of its own, mapped as its data came
    let odd_index = format!("{}-odd", fx.events);
    create_index(&fx.cluster, &odd_index, ecs_mapping()).await;
    index_docs(
        &fx.cluster,
        &odd_index,
        &[(
            "odd".into(),
            json!({"@timestamp": iso(at), "event": {"category": "process"},
                   "host": "ws-1", "process": {"name": "odd.exe", "pid": "not-a-number"}}),
        )],
    )
    .await;
    index_docs(
        &fx.cluster,
        &fx.events,
        &[
            (
                "lib".into(),
                detectd::synth::founding_library(&iso(at), "h1", "h1", "powershell.exe"),
            ),
            (
                "net".into(),
                detectd::synth::founding_network(
                    &iso(at + Duration::seconds(2)),
                    "h1",
                    "h1",
                    "powershell.exe",
                    "10.0.0.5",
                    135,
                ),
            ),
        ],
    )
    .await;
    let odd = event_rule(
        "odd-events",
        &odd_index,
        r#"process where process.name == "odd.exe""#,
    );
    let mut founding = founding_rule();
    founding.index = vec![fx.events.clone()];
    fx.start_at(&odd, t0()).await;
    fx.start_at(&founding, t0()).await;
    let runner = fx.runner();
    let now = t0() + Duration::minutes(5);

    let first = runner.run(&odd, now).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    assert_eq!(first.alerts_created, 1);
    let second = runner.run(&founding, now).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:#?}");
    assert_eq!(
        (
            second.alerts_created,
            second.alerts_failed,
            second.alerts_dead_lettered
        ),
        (3, 0, 0),
        "{second:#?}"
    );

    let alerts = fx.alerts().await;
    assert_eq!(alerts.len(), 4);
    let odd_alert = alerts
        .iter()
        .find(|a| a["kibana.alert.rule.rule_id"] == "odd-events")
        .unwrap();
    assert!(odd_alert.get("host").is_none(), "{odd_alert}");
    assert_eq!(odd_alert["process"], json!({"name": "odd.exe"}));
    for a in alerts
        .iter()
        .filter(|a| a["kibana.alert.rule.rule_id"] != "odd-events")
    {
        assert_eq!(a["host"]["id"], "h1", "{a}");
    }
    delete_indices(&fx.cluster, &[&odd_index]).await;
    fx.cleanup().await;
}

/// An alert the cluster refuses although it fits ECS (here a custom
/// mapping on the alerts index makes `custom` an object) is kept as a dead
/// letter and the window moves on; after the cause is fixed (a rollover to
/// an index without that mapping) a replay writes it and empties the dead
/// letters.
#[tokio::test]
async fn a_refused_alert_is_kept_then_written_by_a_replay() {
    let Some(fx) = Fx::new("dead_letter_replay").await else {
        return;
    };
    let layout = &fx.space.layout;
    // the layout, with an extra mapping someone added
    detectd::sink::alerts_index::ensure(
        &fx.cluster,
        layout,
        &fx.space.spec(&fx.cluster, BootstrapMode::Create),
    )
    .await
    .unwrap();
    fx.cluster
        .request_json(
            Method::Put,
            &format!("/{}/_mapping", layout.first_index()),
            &[],
            Some(&json!({"properties": {"custom": {"properties": {"a": {"type": "keyword"}}}}})),
        )
        .await
        .unwrap();
    let at = t0() + Duration::minutes(1);
    index_docs(
        &fx.cluster,
        &fx.events,
        &[(
            "e1".into(),
            json!({"@timestamp": iso(at), "event": {"category": "process"},
                   "process": {"name": "odd.exe"}, "custom": "a string"}),
        )],
    )
    .await;
    let rule = event_rule(
        "custom-field",
        &fx.events,
        r#"process where process.name == "odd.exe""#,
    );
    fx.start_at(&rule, t0()).await;
    let now = t0() + Duration::minutes(5);
    let rec = fx.runner().run(&rule, now).await;
    assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:#?}");
    assert_eq!((rec.alerts_failed, rec.alerts_dead_lettered), (1, 1));
    assert_eq!(
        fx.state()
            .checkpoint(&rule.rule_id)
            .await
            .unwrap()
            .unwrap()
            .covered_until,
        now,
        "the window moved on"
    );
    let letters = fx.state().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].status, 400);
    assert_eq!(letters[0].alert["custom"], "a string");
    assert!(fx.alerts().await.is_empty());

    // The fix: a new write index without that mapping.
    let next = format!(".internal.alerts-security.alerts-{}-000002", layout.space());
    fx.cluster
        .request_json(
            Method::Put,
            &format!("/{next}"),
            &[],
            Some(&json!({"settings": {"index.hidden": true},
                         "mappings": {"dynamic": false}})),
        )
        .await
        .unwrap();
    fx.cluster
        .request_json(
            Method::Post,
            "/_aliases",
            &[],
            Some(&json!({"actions": [
                {"add": {"index": layout.first_index(), "alias": layout.alias(), "is_write_index": false}},
                {"add": {"index": next, "alias": layout.alias(), "is_write_index": true}}
            ]})),
        )
        .await
        .unwrap();
    let report = replay_dead_letters(&fx.sink(), &fx.state(), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        report.written,
        vec![letters[0].alert_id.clone()],
        "{report:?}"
    );
    assert_eq!(report.remaining(), 0);
    assert!(fx.state().dead_letters().await.unwrap().is_empty());
    let alerts = fx.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["kibana.alert.uuid"], json!(letters[0].alert_id));
    fx.cleanup().await;
}
