//! Whole rule runs against a live cluster (`ELASTICSEARCH_URL`; osmem in
//! `scripts/test.sh`): the Elasticsearch source (point in time, pushdown,
//! projection), the bulk sink (with `refresh=wait_for`), and the cluster
//! state store, driven by `Runner` with an injected clock.
//!
//! Every test has its own event, alerts, state and executions indices. The
//! founding rule is loaded from `rules/` unchanged except for its index
//! patterns, which point at the test's own event indices so tests running
//! in parallel do not see each other's events.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::alert::Alert;
use detectd::cluster::Cluster;
use detectd::rule::Rule;
use detectd::runner::{
    ExecutionRecord, RuleExecutor, RunStatus, Runner, RunnerSettings, WindowRange,
    MAX_SIGNALS_WARNING,
};
use detectd::sink::alerts_index::BootstrapMode;
use detectd::sink::elasticsearch::{
    install_templates, BulkSettings, ElasticsearchSink, IndexNames,
};
use detectd::sink::{AlertSink, ItemFailure, SinkError, WriteReport};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::{Checkpoint, ClusterStateStore, StateStore};
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// One test event: which of the test's event indices, id, source.
struct Ev {
    kind: &'static str,
    id: String,
    source: Value,
}

fn library(id: &str, at: DateTime<Utc>, host: &str, entity: &str, process: &str) -> Ev {
    Ev {
        kind: "library",
        id: id.into(),
        source: detectd::synth::founding_library(&iso(at), host, entity, process),
    }
}

fn network(
    id: &str,
    at: DateTime<Utc>,
    host: &str,
    entity: &str,
    process: &str,
    address: &str,
    port: u16,
) -> Ev {
    Ev {
        kind: "network",
        id: id.into(),
        source: detectd::synth::founding_network(&iso(at), host, entity, process, address, port),
    }
}

/// The attack: a PowerShell process loads taskschd.dll, then `gap` later
/// connects to 10.0.0.5:135.
fn attack_as(tag: &str, process: &str, at: DateTime<Utc>, gap: Duration) -> Vec<Ev> {
    vec![
        library(&format!("{tag}-lib"), at, tag, tag, process),
        network(
            &format!("{tag}-net"),
            at + gap,
            tag,
            tag,
            process,
            "10.0.0.5",
            135,
        ),
    ]
}

fn attack(tag: &str, at: DateTime<Utc>, gap: Duration) -> Vec<Ev> {
    attack_as(tag, "powershell.exe", at, gap)
}

type EsRunner<K> = Runner<ElasticsearchSource, K, ClusterStateStore>;

/// A test's own indices on the cluster.
struct Fixture {
    cluster: Cluster,
    prefix: String,
    names: IndexNames,
    /// The alerts alias of the test's own Kibana space.
    alerts: AlertsSpace,
}

impl Fixture {
    async fn new(test: &str) -> Option<Fixture> {
        let cluster = connect_or_skip(test).await?;
        let prefix = unique_index("runner");
        let names = IndexNames {
            state: format!("{prefix}-state"),
            executions: format!("{prefix}-executions"),
            dead_letters: format!("{prefix}-dead-letters"),
        };
        install_templates(&cluster, &names)
            .await
            .expect("install templates");
        for kind in ["library", "network"] {
            create_index(&cluster, &format!("{prefix}-ev-{kind}"), ecs_mapping()).await;
        }
        Some(Fixture {
            cluster,
            prefix,
            names,
            alerts: AlertsSpace::new("runner"),
        })
    }

    /// The rule, searching this test's event indices.
    fn rule(&self, mut rule: Rule) -> Rule {
        rule.index = vec![format!("{}-ev-*", self.prefix)];
        rule
    }

    async fn load(&self, events: &[Ev]) {
        for kind in ["library", "network"] {
            let docs: Vec<(String, Value)> = events
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| (e.id.clone(), e.source.clone()))
                .collect();
            if !docs.is_empty() {
                index_docs(&self.cluster, &format!("{}-ev-{kind}", self.prefix), &docs).await;
            }
        }
    }

    fn settings(&self) -> RunnerSettings {
        RunnerSettings {
            alerts_index: self.alerts.alias(),
            space_id: self.alerts.space().to_string(),
            ..RunnerSettings::default()
        }
    }

    fn sink(&self) -> ElasticsearchSink {
        ElasticsearchSink::new(
            self.cluster.clone(),
            BulkSettings {
                // Kibana writes alerts with refresh; the next run's dedup
                // searches them.
                refresh: Some("wait_for".into()),
                ..BulkSettings::default()
            },
            self.alerts.spec(&self.cluster, BootstrapMode::Create),
        )
    }

    fn runner_with<K: AlertSink>(&self, sink: K, settings: RunnerSettings) -> EsRunner<K> {
        Runner::new(
            ElasticsearchSource::new(self.cluster.clone()),
            sink,
            ClusterStateStore::new(self.cluster.clone(), &self.names),
            settings,
        )
    }

    fn runner(&self) -> EsRunner<ElasticsearchSink> {
        self.runner_with(self.sink(), self.settings())
    }

    async fn search(&self, index: &str) -> Vec<Value> {
        refresh(&self.cluster, index).await;
        let v = self
            .cluster
            .request_json(
                Method::Post,
                &format!("/{index}/_search"),
                &[],
                Some(&json!({"size": 2000, "query": {"match_all": {}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("search {index}: {e}"));
        v["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|h| h["_source"].clone())
            .collect()
    }

    async fn alerts(&self) -> Vec<Value> {
        self.search(&self.alerts.alias()).await
    }

    async fn alert_count(&self) -> u64 {
        refresh(&self.cluster, &self.alerts.alias()).await;
        count(&self.cluster, &self.alerts.alias()).await
    }

    async fn cleanup(&self) {
        let library = format!("{}-ev-library", self.prefix);
        let network = format!("{}-ev-network", self.prefix);
        delete_indices(&self.cluster, &[&library, &network]).await;
        delete_detectd_indices(&self.cluster, &self.names).await;
        self.alerts.delete(&self.cluster).await;
    }
}

fn shells(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a.get("kibana.alert.group.index").is_none())
        .collect()
}

fn assert_ok(rec: &ExecutionRecord) {
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
}

#[tokio::test]
async fn founding_rule_end_to_end_positive_and_negative_cases() {
    let Some(fx) = Fixture::new("founding_rule_end_to_end_positive_and_negative_cases").await
    else {
        return;
    };
    let at = t0() + Duration::minutes(1);
    let s2 = Duration::seconds(2);
    let mut events = attack("h1", at, s2);
    events.extend(attack_as("upper", "PowerShell.EXE", at, s2));
    events.extend(attack_as("pwsh", "pwsh.exe", at, s2));
    // Negative cases of reference/seed-rule.md, each on its own host.
    events.extend(attack("late", at, Duration::seconds(6)));
    for (tag, addr) in [("lo4", "127.0.0.1"), ("lo6", "::1")] {
        events.push(library(
            &format!("{tag}-lib"),
            at,
            tag,
            tag,
            "powershell.exe",
        ));
        events.push(network(
            &format!("{tag}-net"),
            at + s2,
            tag,
            tag,
            "powershell.exe",
            addr,
            135,
        ));
    }
    events.push(library("ent-lib", at, "ent", "p1", "powershell.exe"));
    events.push(network(
        "ent-net",
        at + s2,
        "ent",
        "p2",
        "powershell.exe",
        "10.0.0.5",
        135,
    ));
    events.push(network(
        "rev-net",
        at,
        "rev",
        "rev",
        "powershell.exe",
        "10.0.0.5",
        135,
    ));
    events.push(library("rev-lib", at + s2, "rev", "rev", "powershell.exe"));
    events.push(library("smb-lib", at, "smb", "smb", "powershell.exe"));
    events.push(network(
        "smb-net",
        at + s2,
        "smb",
        "smb",
        "powershell.exe",
        "10.0.0.5",
        445,
    ));
    fx.load(&events).await;

    let rule = fx.rule(founding_rule());
    let runner = fx.runner();
    let now = t0() + Duration::minutes(5);
    let rec = runner.execute(&rule, now).await;
    assert_ok(&rec);
    assert_eq!(rec.alerts_created, 9, "{rec:#?}");

    let all = fx.alerts().await;
    assert_eq!(all.len(), 9);
    let shell_hosts: HashSet<&str> = shells(&all)
        .iter()
        .map(|s| s["host"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(shell_hosts, HashSet::from(["h1", "upper", "pwsh"]));

    // The founding case: exactly one shell and its two building blocks.
    let h1_shells: Vec<&Value> = shells(&all)
        .into_iter()
        .filter(|s| s["host"]["id"] == "h1")
        .collect();
    assert_eq!(h1_shells.len(), 1);
    let shell = h1_shells[0];
    let shell_id = shell["kibana.alert.uuid"].as_str().unwrap();
    let h1: Vec<&Value> = all
        .iter()
        .filter(|a| a["kibana.alert.group.id"] == shell_id)
        .collect();
    assert_eq!(h1.len(), 3, "the shell and two building blocks");
    for field in [
        "kibana.alert.rule.rule_id",
        "kibana.alert.group.id",
        "kibana.alert.ancestors",
        "kibana.alert.depth",
        "kibana.alert.original_time",
        "kibana.alert.reason",
        "kibana.alert.severity",
        "kibana.alert.risk_score",
        "kibana.alert.status",
        "kibana.alert.workflow_status",
        "kibana.alert.rule.parameters",
    ] {
        assert!(shell.get(field).is_some(), "shell lacks {field}: {shell}");
    }
    assert_eq!(
        shell["kibana.alert.rule.rule_id"],
        "5cd55388-a19c-47c7-8ec4-f41656c2fded"
    );
    assert_eq!(shell["kibana.alert.group.id"], shell_id);
    assert_eq!(shell["kibana.alert.depth"], 2);
    // the first building block's creation time, as Kibana reads it
    assert_eq!(shell["kibana.alert.original_time"], iso(now));
    assert_eq!(shell["kibana.alert.severity"], "medium");
    assert_eq!(shell["kibana.alert.risk_score"], 47);
    assert_eq!(shell["kibana.alert.status"], "active");
    assert_eq!(shell["kibana.alert.workflow_status"], "open");
    assert_eq!(
        shell["kibana.alert.rule.parameters"]["query"]
            .as_str()
            .map(|q| q.contains("taskschd.dll")),
        Some(true)
    );
    assert_eq!(shell["kibana.alert.ancestors"].as_array().unwrap().len(), 4);
    let mut positions = Vec::new();
    for bb in h1
        .iter()
        .filter(|a| a.get("kibana.alert.group.index").is_some())
    {
        assert_eq!(bb["kibana.alert.group.id"], shell_id);
        assert_eq!(bb["kibana.alert.building_block_type"], "default");
        assert_eq!(bb["kibana.alert.depth"], 1);
        assert_eq!(bb["kibana.alert.original_event.kind"], "event");
        assert!(bb["kibana.alert.original_event.category"].is_string());
        assert!(bb["kibana.alert.reason"]
            .as_str()
            .unwrap()
            .ends_with("created medium alert Outbound Scheduled Task Activity via PowerShell."));
        positions.push(bb["kibana.alert.group.index"].as_u64().unwrap());
    }
    positions.sort();
    assert_eq!(positions, [0, 1]);

    // Checkpoint and execution record are in the cluster.
    let state = ClusterStateStore::new(fx.cluster.clone(), &fx.names);
    assert_eq!(
        state
            .checkpoint(&rule.rule_id)
            .await
            .unwrap()
            .unwrap()
            .covered_until,
        now
    );
    let execs = fx.search(&fx.names.executions).await;
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0]["status"], "succeeded");
    assert_eq!(execs[0]["alerts"]["created"], 9);
    assert_eq!(execs[0]["execution_id"], rec.execution_id.as_str());
    fx.cleanup().await;
}

#[tokio::test]
async fn three_overlapping_runs_write_no_duplicates() {
    let Some(fx) = Fixture::new("three_overlapping_runs_write_no_duplicates").await else {
        return;
    };
    let mut events = Vec::new();
    for (i, m) in [1i64, 4, 6, 9, 12].iter().enumerate() {
        events.extend(attack(
            &format!("a{i}"),
            t0() + Duration::minutes(*m),
            Duration::seconds(2),
        ));
    }
    fx.load(&events).await;
    let rule = fx.rule(founding_rule());
    let runner = fx.runner();
    let mut duplicates = 0;
    for k in 1..=3 {
        let rec = runner.execute(&rule, t0() + Duration::minutes(5 * k)).await;
        assert_ok(&rec);
        duplicates += rec.alerts_duplicate;
    }
    assert!(duplicates >= 9, "overlaps re-found sequences: {duplicates}");
    assert_eq!(fx.alert_count().await, 15, "5 shells + 10 building blocks");
    let ids: HashSet<String> = fx
        .alerts()
        .await
        .iter()
        .map(|a| a["kibana.alert.uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 15);
    fx.cleanup().await;
}

#[tokio::test]
async fn one_hundred_fifty_sequences_are_capped_at_one_hundred_then_completed() {
    let Some(fx) =
        Fixture::new("one_hundred_fifty_sequences_are_capped_at_one_hundred_then_completed").await
    else {
        return;
    };
    let start = t0() + Duration::minutes(1);
    let events: Vec<Ev> = (0..150)
        .flat_map(|i| {
            attack(
                &format!("m{i:03}"),
                start + Duration::seconds(i),
                Duration::seconds(1),
            )
        })
        .collect();
    fx.load(&events).await;
    let rule = fx.rule(founding_rule());
    let runner = fx.runner();
    let rec = runner.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:#?}");
    assert_eq!(rec.alerts_capped, 50);
    assert_eq!(rec.alerts_created, 300);
    assert!(rec.warnings.iter().any(|w| w == MAX_SIGNALS_WARNING));
    assert_eq!(fx.alert_count().await, 300);
    let all = fx.alerts().await;
    let hosts: HashSet<&str> = shells(&all)
        .iter()
        .map(|s| s["host"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 100);
    assert!(hosts.contains("m000") && hosts.contains("m099") && !hosts.contains("m100"));
    let execs = fx.search(&fx.names.executions).await;
    assert_eq!(execs[0]["status"], "partial failure");
    assert_eq!(execs[0]["alerts"]["capped"], 50);

    // The remaining 50 are still inside the next window.
    let rec = runner.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_ok(&rec);
    assert_eq!((rec.alerts_created, rec.alerts_capped), (150, 0));
    assert_eq!(fx.alert_count().await, 450);
    fx.cleanup().await;
}

#[tokio::test]
async fn downtime_is_caught_up_and_beyond_the_horizon_is_a_gap() {
    let Some(fx) = Fixture::new("downtime_is_caught_up_and_beyond_the_horizon_is_a_gap").await
    else {
        return;
    };
    fx.load(&attack(
        "down",
        t0() + Duration::minutes(12),
        Duration::seconds(2),
    ))
    .await;
    let rule = fx.rule(founding_rule());
    let state = ClusterStateStore::new(fx.cluster.clone(), &fx.names);
    state
        .save_checkpoint(&Checkpoint {
            threshold_history: Vec::new(),
            rule_id: rule.rule_id.clone(),
            covered_until: t0(),
            updated_at: t0(),
            pending: None,
        })
        .await
        .unwrap();
    let now = t0() + Duration::minutes(30);
    let runner = fx.runner();
    let rec = runner.execute(&rule, now).await;
    assert_ok(&rec);
    assert_eq!(rec.windows.len(), 6);
    assert_eq!(rec.gap, None);
    assert_eq!(rec.alerts_created, 3);
    assert_eq!(
        state
            .checkpoint(&rule.rule_id)
            .await
            .unwrap()
            .unwrap()
            .covered_until,
        now
    );

    // Three hours later with a one-hour horizon: two hours are a gap.
    let runner = fx.runner_with(
        fx.sink(),
        RunnerSettings {
            catch_up_horizon: std::time::Duration::from_secs(3600),
            ..fx.settings()
        },
    );
    let later = now + Duration::hours(3);
    let rec = runner.execute(&rule, later).await;
    assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:#?}");
    assert_eq!(
        rec.gap,
        Some(WindowRange {
            start: now,
            end: later - Duration::hours(1)
        })
    );
    assert!(rec.warnings[0].contains("were not queried"), "{rec:#?}");
    let execs = fx.search(&fx.names.executions).await;
    let gap = execs
        .iter()
        .find(|e| !e["gap"].is_null())
        .expect("an execution with a gap");
    assert_eq!(gap["gap"]["from"], json!(now));
    fx.cleanup().await;
}

#[tokio::test]
async fn a_sequence_straddling_two_runs_is_alerted_once() {
    let Some(fx) = Fixture::new("a_sequence_straddling_two_runs_is_alerted_once").await else {
        return;
    };
    // No look-back overlap (`from = now-5m` on a 5m interval): without the
    // maxspan reach the boundary would cut this sequence in two.
    let mut rule = fx.rule(founding_rule());
    rule.schedule.from = detectd::rule::DateMath::parse("now-5m").unwrap();
    let boundary = t0() + Duration::minutes(5);
    fx.load(&attack(
        "cut",
        boundary - Duration::seconds(1),
        Duration::seconds(2),
    ))
    .await;
    let runner = fx.runner();
    let first = runner.execute(&rule, boundary).await;
    assert_ok(&first);
    assert_eq!(first.alerts_created, 0);
    let second = runner.execute(&rule, boundary + Duration::minutes(5)).await;
    assert_ok(&second);
    assert_eq!(second.alerts_created, 3);
    let third = runner
        .execute(&rule, boundary + Duration::minutes(10))
        .await;
    assert_eq!(third.alerts_created, 0);
    assert_eq!(fx.alert_count().await, 3);
    fx.cleanup().await;
}

/// The cluster sink, but the first `fail` alerts of the next write fail.
struct FlakySink {
    inner: ElasticsearchSink,
    fail: usize,
    armed: AtomicUsize,
    /// The status and reason of the injected item failures.
    status: u16,
    reason: &'static str,
}

impl AlertSink for FlakySink {
    async fn write(&self, index: &str, alerts: &[Alert]) -> Result<WriteReport, SinkError> {
        if self.armed.load(Ordering::SeqCst) == 0 {
            return self.inner.write(index, alerts).await;
        }
        self.armed.fetch_sub(1, Ordering::SeqCst);
        let n = self.fail.min(alerts.len());
        let mut report = self.inner.write(index, &alerts[n..]).await?;
        report.failed = alerts[..n]
            .iter()
            .map(|a| ItemFailure {
                index: index.to_string(),
                id: a.id.clone(),
                status: self.status,
                reason: self.reason.into(),
            })
            .collect();
        Ok(report)
    }

    async fn existing_ids(
        &self,
        index: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, SinkError> {
        self.inner.existing_ids(index, ids).await
    }
}

#[tokio::test]
async fn a_partly_failed_bulk_write_is_completed_by_the_next_run() {
    let Some(fx) = Fixture::new("a_partly_failed_bulk_write_is_completed_by_the_next_run").await
    else {
        return;
    };
    let mut events = attack("x1", t0() + Duration::minutes(1), Duration::seconds(2));
    events.extend(attack(
        "x2",
        t0() + Duration::minutes(2),
        Duration::seconds(2),
    ));
    fx.load(&events).await;
    let rule = fx.rule(founding_rule());
    let runner = fx.runner_with(
        FlakySink {
            inner: fx.sink(),
            fail: 2,
            armed: AtomicUsize::new(1),
            status: 429,
            reason: "es_rejected_execution_exception: injected",
        },
        fx.settings(),
    );
    let first = runner.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(first.status, RunStatus::Failed, "{first:#?}");
    assert_eq!((first.alerts_created, first.alerts_failed), (4, 2));
    let state = ClusterStateStore::new(fx.cluster.clone(), &fx.names);
    assert_eq!(state.checkpoint(&rule.rule_id).await.unwrap(), None);
    assert_eq!(fx.alert_count().await, 4);

    let second = runner.execute(&rule, t0() + Duration::minutes(6)).await;
    assert_ok(&second);
    assert_eq!((second.alerts_created, second.alerts_duplicate), (2, 4));
    assert_eq!(fx.alert_count().await, 6);
    let ids: HashSet<String> = fx
        .alerts()
        .await
        .iter()
        .map(|a| a["kibana.alert.uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 6);
    assert!(state.checkpoint(&rule.rule_id).await.unwrap().is_some());
    fx.cleanup().await;
}

#[tokio::test]
async fn event_rule_filters_on_timestamp_override_with_fallback() {
    let Some(fx) = Fixture::new("event_rule_filters_on_timestamp_override_with_fallback").await
    else {
        return;
    };
    let mut rule = fx.rule(founding_rule());
    let eql = rule.eql_mut().unwrap();
    eql.text = r#"library where dll.name : "taskschd.dll""#.to_string();
    eql.query = detectd::eql::parse(&eql.text).unwrap();
    rule.timestamp_override = Some("event.ingested".into());
    let now = t0() + Duration::minutes(5);
    let with_ingested = |id: &str, at: DateTime<Utc>, ingested: DateTime<Utc>| {
        let mut e = library(id, at, "h", "p", "powershell.exe");
        e.source["event"]["ingested"] = json!(iso(ingested));
        e
    };
    fx.load(&[
        // Happened before the window but ingested inside it: Kibana alerts.
        with_ingested(
            "late",
            t0() - Duration::hours(1),
            t0() + Duration::minutes(1),
        ),
        // No event.ingested: falls back to @timestamp.
        library(
            "plain",
            t0() + Duration::minutes(2),
            "h",
            "p",
            "powershell.exe",
        ),
        // Ingested after the window end: not yet.
        with_ingested(
            "future",
            t0() + Duration::minutes(3),
            now + Duration::minutes(1),
        ),
    ])
    .await;
    let rec = fx.runner().execute(&rule, now).await;
    assert_ok(&rec);
    let ids: HashSet<String> = fx
        .alerts()
        .await
        .iter()
        .map(|a| {
            a["kibana.alert.ancestors"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        HashSet::from(["late".to_string(), "plain".to_string()])
    );
    let late = fx
        .alerts()
        .await
        .into_iter()
        .find(|a| a["kibana.alert.ancestors"][0]["id"] == "late")
        .unwrap();
    // original_time is always the event's @timestamp, never the override.
    assert_eq!(
        late["kibana.alert.original_time"],
        iso(t0() - Duration::hours(1))
    );
    assert_eq!(late["kibana.alert.depth"], 1);
    fx.cleanup().await;
}

#[tokio::test]
async fn a_corrupt_checkpoint_fails_the_run_without_writing() {
    let Some(fx) = Fixture::new("a_corrupt_checkpoint_fails_the_run_without_writing").await else {
        return;
    };
    fx.load(&attack(
        "c1",
        t0() + Duration::minutes(1),
        Duration::seconds(2),
    ))
    .await;
    let rule = fx.rule(founding_rule());
    fx.cluster
        .request_json(
            Method::Put,
            &format!("/{}/_doc/{}", fx.names.state, rule.rule_id),
            &[("refresh", "wait_for")],
            Some(&json!({"rule_id": rule.rule_id, "written_by": "someone else"})),
        )
        .await
        .unwrap();
    let rec = fx
        .runner()
        .execute(&rule, t0() + Duration::minutes(5))
        .await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:#?}");
    assert!(
        rec.error
            .as_deref()
            .unwrap()
            .contains("expected a checkpoint document"),
        "{rec:#?}"
    );
    assert_eq!(rec.windows.len(), 0);
    let execs = fx.search(&fx.names.executions).await;
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0]["status"], "failed");
    fx.cleanup().await;
}
