//! Whole rule runs over memory: source, sink and state without a cluster,
//! the clock injected. The same scenarios run against a live cluster in
//! `integration-tests/tests/runner.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::alert::Alert;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::sink::{AlertSink, ItemFailure, SinkError, WriteReport};
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::{Checkpoint, MemoryStateStore, StateError, StateStore};

pub(super) const FOUNDING: &str =
    include_str!("../../rules/execution_scheduled_task_powershell.toml");
pub(super) const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn load(text: &str) -> Rule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn founding() -> Rule {
    load(FOUNDING)
}

/// The founding rule's file with another query, `from` or `max_signals`.
fn variant(query: Option<&str>, from: Option<&str>, max_signals: Option<u32>) -> Rule {
    let mut text = FOUNDING.to_string();
    if let Some(q) = query {
        let start = text.find("query = '''").unwrap();
        let end = text[start + 11..].find("'''").unwrap() + start + 14;
        text.replace_range(start..end, &format!("query = '''\n{q}\n'''"));
    }
    if let Some(f) = from {
        text = text.replace("from = \"now-9m\"", &format!("from = \"{f}\""));
    }
    if let Some(m) = max_signals {
        text = text.replace("max_signals = 100", &format!("max_signals = {m}"));
    }
    load(&text)
}

fn library(id: &str, at: DateTime<Utc>, host: &str, entity: &str, process: &str) -> Document {
    Document {
        index: "logs-endpoint.events.library-default".into(),
        id: id.into(),
        source: crate::synth::founding_library(&iso(at), host, entity, process),
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
) -> Document {
    Document {
        index: "logs-endpoint.events.network-default".into(),
        id: id.into(),
        source: crate::synth::founding_network(&iso(at), host, entity, process, address, port),
    }
}

/// A library load then, `gap` later, the RPC connection: the attack.
pub(super) fn attack(tag: &str, at: DateTime<Utc>, gap: Duration) -> Vec<Document> {
    vec![
        library(&format!("{tag}-lib"), at, tag, tag, "powershell.exe"),
        network(
            &format!("{tag}-net"),
            at + gap,
            tag,
            tag,
            "powershell.exe",
            "10.0.0.5",
            135,
        ),
    ]
}

pub(super) type MemRunner = Runner<MemorySource, MemorySink, MemoryStateStore>;

fn runner(docs: Vec<Document>) -> MemRunner {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

fn alerts(
    r: &Runner<MemorySource, impl AlertSink, MemoryStateStore>,
    sink: &MemorySink,
) -> Vec<Value> {
    let _ = r;
    sink.alerts(ALERTS).into_values().collect()
}

pub(super) fn shells(all: &[Value]) -> Vec<&Value> {
    all.iter()
        .filter(|a| a.get("kibana.alert.group.index").is_none())
        .collect()
}

/// A run that began after its `now` (queued past its fire) searches up to
/// `now` but records when it ran.
#[tokio::test]
async fn a_run_begun_late_searches_to_its_now_and_records_when_it_ran() {
    let at = t0() + Duration::minutes(1);
    let r = runner(attack("h1", at, Duration::seconds(2)));
    let now = t0() + Duration::minutes(5);
    let began = now + Duration::seconds(7);
    let rec = r.execute_begun(&founding(), now, began).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.windows.last().unwrap().end, now);
    assert_eq!(rec.started_at, began);
    assert!(rec.finished_at >= began, "{rec:?}");
    assert_eq!(r.state().executions(), vec![rec]);
}

#[tokio::test]
async fn founding_rule_alerts_once_with_kibana_fields() {
    let at = t0() + Duration::minutes(1);
    let r = runner(attack("h1", at, Duration::seconds(2)));
    let rec = r.execute(&founding(), t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.alerts_created, 3);
    let all = alerts(&r, r.sink());
    assert_eq!(all.len(), 3);
    let shell = shells(&all);
    assert_eq!(shell.len(), 1);
    let shell = shell[0];
    let shell_id = shell["kibana.alert.uuid"].as_str().unwrap();
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
        "kibana.alert.rule.execution.uuid",
    ] {
        assert!(shell.get(field).is_some(), "shell lacks {field}");
    }
    assert_eq!(
        shell["kibana.alert.rule.rule_id"],
        "5cd55388-a19c-47c7-8ec4-f41656c2fded"
    );
    assert_eq!(shell["kibana.alert.depth"], 2);
    assert_eq!(shell["kibana.alert.severity"], "medium");
    assert_eq!(shell["kibana.alert.risk_score"], 47);
    assert_eq!(shell["kibana.alert.status"], "active");
    assert_eq!(shell["kibana.alert.workflow_status"], "open");
    // Kibana takes the shell's original time from its first parent, a
    // building block: its creation time, not the first event's.
    assert_eq!(
        shell["kibana.alert.original_time"],
        iso(t0() + Duration::minutes(5))
    );
    assert_eq!(shell["kibana.alert.rule.execution.uuid"], rec.execution_id);
    assert_eq!(shell["kibana.alert.rule.parameters"]["max_signals"], 100);
    assert_eq!(shell["kibana.alert.rule.parameters"]["from"], "now-9m");
    assert_eq!(shell["host"]["id"], "h1");
    let mut indexes = Vec::new();
    for bb in all
        .iter()
        .filter(|a| a.get("kibana.alert.group.index").is_some())
    {
        assert_eq!(bb["kibana.alert.group.id"], shell_id);
        assert_eq!(bb["kibana.alert.building_block_type"], "default");
        assert_eq!(bb["kibana.alert.depth"], 1);
        assert!(bb["kibana.alert.reason"]
            .as_str()
            .unwrap()
            .contains("created medium alert Outbound Scheduled Task Activity via PowerShell"));
        assert_eq!(bb["kibana.alert.original_event.kind"], "event");
        indexes.push(bb["kibana.alert.group.index"].as_u64().unwrap());
    }
    indexes.sort();
    assert_eq!(indexes, [0, 1]);
    let ancestors = shell["kibana.alert.ancestors"].as_array().unwrap();
    assert_eq!(ancestors.len(), 4, "two events, two building blocks");
    // interleaved as Kibana's buildAncestors gives them: [ev0, bb0, ev1, bb1]
    assert_eq!(ancestors[0]["id"], "h1-lib");
    assert_eq!(ancestors[1]["type"], "signal");
    assert_eq!(ancestors[2]["id"], "h1-net");
    assert_eq!(ancestors[3]["type"], "signal");
    assert_eq!(
        r.state().get(&founding().rule_id).unwrap().covered_until,
        t0() + Duration::minutes(5)
    );
}

#[tokio::test]
async fn founding_rule_negative_cases_give_nothing() {
    let at = t0() + Duration::minutes(1);
    let s2 = Duration::seconds(2);
    let mut docs = Vec::new();
    // 6 s apart: beyond maxspan = 5s.
    docs.extend(attack("late", at, Duration::seconds(6)));
    for (tag, addr) in [("lo4", "127.0.0.1"), ("lo6", "::1")] {
        docs.push(library(
            &format!("{tag}-lib"),
            at,
            tag,
            tag,
            "powershell.exe",
        ));
        docs.push(network(
            &format!("{tag}-net"),
            at + s2,
            tag,
            tag,
            "powershell.exe",
            addr,
            135,
        ));
    }
    docs.push(library("ent-lib", at, "ent", "p1", "powershell.exe"));
    docs.push(network(
        "ent-net",
        at + s2,
        "ent",
        "p2",
        "powershell.exe",
        "10.0.0.5",
        135,
    ));
    docs.push(network(
        "rev-net",
        at,
        "rev",
        "rev",
        "powershell.exe",
        "10.0.0.5",
        135,
    ));
    docs.push(library("rev-lib", at + s2, "rev", "rev", "powershell.exe"));
    docs.push(library("smb-lib", at, "smb", "smb", "powershell.exe"));
    docs.push(network(
        "smb-net",
        at + s2,
        "smb",
        "smb",
        "powershell.exe",
        "10.0.0.5",
        445,
    ));
    let r = runner(docs);
    let rec = r.execute(&founding(), t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert!(rec.events_fetched >= 8, "{rec:?}");
    assert_eq!(rec.alerts_created, 0);
    assert!(r.sink().alerts(ALERTS).is_empty());

    // Exactly 5 s apart still alerts (maxspan is inclusive), and the process
    // name matches whatever its case, or as pwsh.exe.
    let mut docs = attack("edge", at, Duration::seconds(5));
    for (tag, name) in [("upper", "PowerShell.EXE"), ("pwsh", "pwsh.exe")] {
        docs.push(library(&format!("{tag}-lib"), at, tag, tag, name));
        docs.push(network(
            &format!("{tag}-net"),
            at + s2,
            tag,
            tag,
            name,
            "10.0.0.5",
            135,
        ));
    }
    let r = runner(docs);
    let rec = r.execute(&founding(), t0() + Duration::minutes(5)).await;
    assert_eq!(rec.alerts_created, 9, "{rec:?}");
    let all = alerts(&r, r.sink());
    let hosts: HashSet<&str> = shells(&all)
        .iter()
        .map(|s| s["host"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, HashSet::from(["edge", "upper", "pwsh"]));
}

#[tokio::test]
async fn overlapping_runs_write_no_duplicates() {
    let mut docs = Vec::new();
    for (i, m) in [1i64, 4, 6, 9, 12].iter().enumerate() {
        docs.extend(attack(
            &format!("a{i}"),
            t0() + Duration::minutes(*m),
            Duration::seconds(2),
        ));
    }
    let r = runner(docs);
    let rule = founding();
    let mut created = 0;
    let mut duplicates = 0;
    for k in 1..=3 {
        let rec = r.execute(&rule, t0() + Duration::minutes(5 * k)).await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
        assert_eq!(rec.windows.len(), 1);
        created += rec.alerts_created;
        duplicates += rec.alerts_duplicate;
    }
    // Five attacks, each seen by two or three overlapping windows.
    assert_eq!(created, 15);
    assert!(
        duplicates >= 9,
        "re-detections are duplicates: {duplicates}"
    );
    assert_eq!(r.sink().alerts(ALERTS).len(), 15);
    assert_eq!(r.state().executions().len(), 3);
}

fn many_attacks(n: usize, from: DateTime<Utc>) -> Vec<Document> {
    (0..n)
        .flat_map(|i| {
            attack(
                &format!("m{i:03}"),
                from + Duration::seconds(i as i64),
                Duration::seconds(1),
            )
        })
        .collect()
}

#[tokio::test]
async fn max_signals_caps_new_shells_oldest_first_and_the_next_run_continues() {
    let r = runner(many_attacks(150, t0() + Duration::minutes(1)));
    let rule = founding();
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::PartialFailure);
    assert_eq!(rec.alerts_capped, 50);
    assert_eq!(rec.alerts_created, 300, "100 shells + 200 building blocks");
    assert_eq!(rec.warnings, vec![MAX_SIGNALS_WARNING.to_string()]);
    let all = alerts(&r, r.sink());
    let hosts: HashSet<String> = shells(&all)
        .iter()
        .map(|s| s["host"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 100);
    assert!(hosts.contains("m000") && hosts.contains("m099") && !hosts.contains("m100"));
    // The checkpoint moved on: capping is not a failure.
    assert_eq!(
        r.state().get(&rule.rule_id).unwrap().covered_until,
        t0() + Duration::minutes(5)
    );

    let rec = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.alerts_created, 150);
    assert_eq!(rec.alerts_duplicate, 300);
    assert_eq!(rec.alerts_capped, 0);
    assert_eq!(shells(&alerts(&r, r.sink())).len(), 150);
}

/// A state store whose next `armed` window commits (checkpoints without a
/// pending window) fail: the run stops between a window's bulk write and
/// its checkpoint, as when the process is killed there.
struct CrashAtCheckpoint {
    inner: MemoryStateStore,
    armed: AtomicUsize,
}

impl crate::state::StateStore for CrashAtCheckpoint {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        self.inner.checkpoint(rule_id).await
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        if checkpoint.pending.is_none() && self.armed.load(Ordering::SeqCst) > 0 {
            self.armed.fetch_sub(1, Ordering::SeqCst);
            return Err(StateError::File {
                path: "checkpoints.json".into(),
                reason: "killed before the checkpoint".into(),
            });
        }
        self.inner.save_checkpoint(checkpoint).await
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        self.inner.record_execution(record).await
    }

    async fn save_dead_letters(
        &self,
        letters: &[crate::state::DeadLetter],
    ) -> Result<(), StateError> {
        self.inner.save_dead_letters(letters).await
    }

    async fn dead_letters(&self) -> Result<Vec<crate::state::DeadLetter>, StateError> {
        self.inner.dead_letters().await
    }

    async fn remove_dead_letters(&self, alert_ids: &[String]) -> Result<(), StateError> {
        self.inner.remove_dead_letters(alert_ids).await
    }
}

/// Regression (issue 6, SIGKILL loop): a capped window whose alerts were
/// written but whose checkpoint was not is searched again by the next run,
/// which writes what the first attempt chose (the matches before its cut),
/// no more, and the window after it continues from there. Before the fix
/// the retry dropped the first attempt's alerts as duplicates and wrote
/// `max_signals` more.
#[tokio::test]
async fn a_capped_window_searched_again_after_a_crash_writes_no_more_than_max_signals() {
    let rule = founding();
    let r = Runner::new(
        MemorySource::new(many_attacks(150, t0() + Duration::minutes(1))),
        MemorySink::new(),
        CrashAtCheckpoint {
            inner: MemoryStateStore::new(),
            armed: AtomicUsize::new(1),
        },
        RunnerSettings::default(),
    );
    r.state().inner.set(Checkpoint {
        threshold_history: Vec::new(),
        rule_id: rule.rule_id.clone(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
    });
    let now = t0() + Duration::minutes(5);
    let crashed = r.execute(&rule, now).await;
    assert_eq!(crashed.status, RunStatus::Failed, "{crashed:?}");
    assert_eq!((crashed.alerts_created, crashed.alerts_capped), (300, 50));
    // the cut is the first attack left out: m100, whose network event
    // came 1 s after its library load
    let m100 = t0() + Duration::minutes(1) + Duration::seconds(101);
    let stored = r.state().inner.get(&rule.rule_id).unwrap();
    assert_eq!(stored.covered_until, t0(), "not committed");
    let pending = stored.pending.expect("the capped window is pending");
    assert_eq!(
        (pending.window_end, pending.cap_cut.last_event_ms),
        (now, m100.timestamp_millis())
    );

    // The same window again (the checkpoint did not move).
    let again = r.execute(&rule, now).await;
    assert_eq!(again.status, RunStatus::PartialFailure, "{again:?}");
    assert_eq!(
        (
            again.alerts_created,
            again.alerts_duplicate,
            again.alerts_capped
        ),
        (0, 300, 50)
    );
    let all = r.sink().alerts(ALERTS).into_values().collect::<Vec<_>>();
    let hosts: HashSet<String> = shells(&all)
        .iter()
        .map(|s| s["host"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 100);
    assert!(hosts.contains("m000") && hosts.contains("m099") && !hosts.contains("m100"));
    let checkpoint = r.state().inner.get(&rule.rule_id).unwrap();
    assert_eq!((checkpoint.covered_until, checkpoint.pending), (now, None));

    let next = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_eq!((next.alerts_created, next.alerts_capped), (150, 0));
    let all = r.sink().alerts(ALERTS).into_values().collect::<Vec<_>>();
    assert_eq!(shells(&all).len(), 150);
}

#[tokio::test]
async fn downtime_is_caught_up_and_older_time_is_a_gap() {
    let rule = founding();
    let r = runner(attack(
        "down",
        t0() + Duration::minutes(12),
        Duration::seconds(2),
    ));
    r.state().set(Checkpoint {
        threshold_history: Vec::new(),
        rule_id: rule.rule_id.clone(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
    });
    let now = t0() + Duration::minutes(30);
    let rec = r.execute(&rule, now).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.windows.len(), 6);
    assert_eq!(rec.windows[0].end, t0() + Duration::minutes(5));
    assert_eq!(rec.windows[5].end, now);
    assert_eq!(rec.alerts_created, 3);
    assert_eq!(rec.gap, None);
    assert_eq!(r.state().get(&rule.rule_id).unwrap().covered_until, now);

    // A checkpoint older than the horizon: the rest is a gap, with its range.
    let r = Runner::new(
        MemorySource::new(attack(
            "down",
            t0() + Duration::minutes(12),
            Duration::seconds(2),
        )),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings {
            catch_up_horizon: std::time::Duration::from_secs(3600),
            ..RunnerSettings::default()
        },
    );
    let now = t0() + Duration::hours(3);
    r.state().set(Checkpoint {
        threshold_history: Vec::new(),
        rule_id: rule.rule_id.clone(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
    });
    let rec = r.execute(&rule, now).await;
    assert_eq!(rec.status, RunStatus::PartialFailure);
    assert_eq!(
        rec.gap,
        Some(WindowRange {
            start: t0(),
            end: now - Duration::hours(1)
        })
    );
    assert_eq!(rec.windows.len(), 12);
    assert!(
        rec.warnings[0].starts_with("2 hours (7200000ms) were not queried between this rule execution and the last execution"),
        "{:?}",
        rec.warnings
    );
    assert_eq!(rec.alerts_created, 0, "the attack lies in the gap");
}

#[tokio::test]
async fn a_sequence_across_a_run_boundary_is_alerted_once() {
    // No look-back overlap: each window starts where the last one ended,
    // so only the maxspan reach finds a sequence cut by the boundary.
    let rule = variant(None, Some("now-5m"), None);
    let boundary = t0() + Duration::minutes(5);
    let r = runner(attack(
        "cut",
        boundary - Duration::seconds(1),
        Duration::seconds(2),
    ));
    let first = r.execute(&rule, boundary).await;
    assert_eq!(first.alerts_created, 0);
    let second = r.execute(&rule, boundary + Duration::minutes(5)).await;
    assert_eq!(second.alerts_created, 3, "{second:?}");
    let third = r.execute(&rule, boundary + Duration::minutes(10)).await;
    assert_eq!(third.alerts_created, 0);
    assert_eq!(shells(&alerts(&r, r.sink())).len(), 1);
}

#[tokio::test]
async fn trailing_missing_event_waits_for_maxspan_on_the_data_clock() {
    let query = r#"sequence by host.id with maxspan=1m
 [library where dll.name : "taskschd.dll"]
 ![network where destination.port == 135]"#;
    let rule = variant(Some(query), Some("now-5m"), None);
    let boundary = t0() + Duration::minutes(5);
    let near_end = boundary - Duration::seconds(10);
    let mut docs = vec![library(
        "quiet-lib",
        near_end,
        "quiet",
        "q",
        "powershell.exe",
    )];
    // The other host's "missing" event arrives after the boundary.
    docs.push(library("busy-lib", near_end, "busy", "b", "powershell.exe"));
    docs.push(network(
        "busy-net",
        boundary + Duration::seconds(20),
        "busy",
        "b",
        "powershell.exe",
        "10.0.0.5",
        135,
    ));
    let r = runner(docs);
    let first = r.execute(&rule, boundary).await;
    assert_eq!(
        first.alerts_created, 0,
        "maxspan has not elapsed at the window end"
    );
    let second = r.execute(&rule, boundary + Duration::minutes(5)).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let all = alerts(&r, r.sink());
    let hosts: Vec<&str> = shells(&all)
        .iter()
        .map(|s| s["host"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["quiet"]);
    assert_eq!(all.len(), 2, "a shell and one building block");
}

#[tokio::test]
async fn event_queries_alert_per_event_and_dedup_across_runs() {
    let rule = variant(
        Some(r#"library where dll.name : "taskschd.dll""#),
        None,
        None,
    );
    let docs: Vec<Document> = (0..4)
        .map(|i| {
            library(
                &format!("e{i}"),
                t0() + Duration::minutes(2 * i + 1),
                "h",
                "p",
                "powershell.exe",
            )
        })
        .collect();
    let r = runner(docs);
    // Events at 1, 3, 5 and 7 minutes; windows end at 5 (inclusive) and 10.
    let one = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(one.alerts_created, 3, "{one:?}");
    let two = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(
        (two.alerts_created, two.alerts_duplicate),
        (1, 3),
        "{two:?}"
    );
    let all = alerts(&r, r.sink());
    assert_eq!(all.len(), 4);
    assert!(all
        .iter()
        .all(|a| a["kibana.alert.depth"] == 1 && a.get("kibana.alert.group.id").is_none()));
    let expected = crate::alert::ids::event_alert_id(
        crate::alert::ids::EventRef {
            index: "logs-endpoint.events.library-default",
            id: "e0",
        },
        "default",
        &rule.rule_id,
    );
    assert!(r.sink().alerts(ALERTS).contains_key(&expected));
}

/// Fails the first `fail` alerts of every write while `armed`.
struct FlakySink {
    inner: MemorySink,
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
async fn a_partly_failed_write_keeps_the_checkpoint_and_the_next_run_completes_it() {
    let rule = founding();
    let mut docs = attack("x1", t0() + Duration::minutes(1), Duration::seconds(2));
    docs.extend(attack(
        "x2",
        t0() + Duration::minutes(2),
        Duration::seconds(2),
    ));
    let r = Runner::new(
        MemorySource::new(docs),
        FlakySink {
            inner: MemorySink::new(),
            fail: 2,
            armed: AtomicUsize::new(1),
            status: 429,
            reason: "es_rejected_execution_exception: injected",
        },
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let first = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(
        (first.alerts_created, first.alerts_failed),
        (4, 2),
        "{first:?}"
    );
    assert!(
        first.error.as_deref().unwrap().contains("injected"),
        "{first:?}"
    );
    assert_eq!(
        r.state().get(&rule.rule_id),
        None,
        "checkpoint not advanced"
    );

    let second = r.execute(&rule, t0() + Duration::minutes(6)).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!((second.alerts_created, second.alerts_duplicate), (2, 4));
    assert_eq!(r.sink().inner.alerts(ALERTS).len(), 6);
    assert!(r.state().get(&rule.rule_id).is_some());
}

/// Alerts the cluster refuses as invalid (400: a source field clashing
/// with the alerts mapping) would be refused on every retry: the run
/// reports them (partial failure, `alerts_failed`, a warning naming the
/// first) and the checkpoint moves on, so the rule is not stalled.
#[tokio::test]
async fn alerts_refused_as_invalid_are_reported_and_the_window_moves_on() {
    let rule = founding();
    let mut docs = attack("x1", t0() + Duration::minutes(1), Duration::seconds(2));
    docs.extend(attack(
        "x2",
        t0() + Duration::minutes(2),
        Duration::seconds(2),
    ));
    let r = Runner::new(
        MemorySource::new(docs),
        FlakySink {
            inner: MemorySink::new(),
            fail: 1,
            armed: AtomicUsize::new(1),
            status: 400,
            reason: "mapper_parsing_exception: failed to parse field [process.name]",
        },
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let first = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(first.status, RunStatus::PartialFailure, "{first:?}");
    assert_eq!((first.alerts_created, first.alerts_failed), (5, 1));
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w.contains("refused by the cluster as invalid") && w.contains("process.name")),
        "{first:?}"
    );
    let covered = r.state().get(&rule.rule_id).expect("checkpoint advanced");
    assert_eq!(covered.covered_until, t0() + Duration::minutes(5));
    // ... because the refused alert was kept, not dropped
    assert_eq!(first.alerts_dead_lettered, 1);
    let letters = r.state().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.rule_id, rule.rule_id);
    assert_eq!(letter.execution_id, first.execution_id);
    assert_eq!(letter.index, ALERTS);
    assert_eq!(letter.status, 400);
    assert!(letter.reason.contains("process.name"), "{letter:?}");
    assert_eq!(letter.alert["kibana.alert.uuid"], json!(letter.alert_id));

    // The next run goes on from there; the refused alert's events are still
    // inside its look-back overlap, so it is offered once more (and, the
    // cluster accepting it now, written) — a bounded retry, not a stall.
    let second = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!((second.alerts_created, second.alerts_failed), (1, 0));
    assert_eq!(r.sink().inner.alerts(ALERTS).len(), 6);
    let covered = r.state().get(&rule.rule_id).unwrap().covered_until;
    assert_eq!(covered, t0() + Duration::minutes(10));
}

/// A state store that cannot keep dead letters (the cluster refuses them
/// too, the disk is full).
struct NoDeadLetters(MemoryStateStore);

impl crate::state::StateStore for NoDeadLetters {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        self.0.checkpoint(rule_id).await
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        self.0.save_checkpoint(checkpoint).await
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        self.0.record_execution(record).await
    }

    async fn save_dead_letters(
        &self,
        _letters: &[crate::state::DeadLetter],
    ) -> Result<(), StateError> {
        Err(StateError::File {
            path: "dead-letters.json".into(),
            reason: "no space left on device".into(),
        })
    }

    async fn dead_letters(&self) -> Result<Vec<crate::state::DeadLetter>, StateError> {
        Ok(Vec::new())
    }

    async fn remove_dead_letters(&self, _alert_ids: &[String]) -> Result<(), StateError> {
        Ok(())
    }
}

/// A refused alert that cannot be kept as a dead letter is not dropped
/// either: the run fails and keeps the window, to be searched again.
#[tokio::test]
async fn an_alert_that_can_neither_be_written_nor_kept_keeps_the_window() {
    let rule = founding();
    let r = Runner::new(
        MemorySource::new(attack(
            "x1",
            t0() + Duration::minutes(1),
            Duration::seconds(2),
        )),
        FlakySink {
            inner: MemorySink::new(),
            fail: 1,
            armed: AtomicUsize::new(1),
            status: 400,
            reason: "mapper_parsing_exception: failed to parse",
        },
        NoDeadLetters(MemoryStateStore::new()),
        RunnerSettings::default(),
    );
    r.state().0.set(Checkpoint {
        threshold_history: Vec::new(),
        rule_id: rule.rule_id.clone(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
    });
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert!(
        rec.error
            .as_deref()
            .is_some_and(|e| e.contains("no space left on device")),
        "{rec:?}"
    );
    assert_eq!(
        r.state().0.get(&rule.rule_id).unwrap().covered_until,
        t0(),
        "the window is kept"
    );
}

#[tokio::test]
async fn missing_indices_are_a_warning_and_a_bad_query_a_failed_record() {
    let r = runner(Vec::new());
    let rec = r.execute(&founding(), t0()).await;
    assert_eq!(rec.status, RunStatus::PartialFailure);
    assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
    assert!(rec.warnings[0]
        .starts_with("This rule is attempting to query data from Elasticsearch indices"));
    assert!(rec.warnings[0].contains("winlogbeat-*"));
    assert!(r.state().get(&founding().rule_id).is_some());

    // runs=1000 is beyond what a sequence takes: a failed record, never a
    // panic.
    let mut rule = founding();
    if let crate::eql::ast::QueryBody::Sequence(s) = &mut rule.eql_mut().unwrap().query.body {
        s.stages[0].runs = Some(crate::eql::ast::Runs {
            count: 1000,
            span: crate::eql::Span::default(),
        });
    }
    let rec = r.execute(&rule, t0()).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert!(rec.error.is_some());
    assert_eq!(r.state().executions().len(), 2);
}

#[tokio::test]
async fn file_state_keeps_the_checkpoint_and_records_across_runners() {
    let dir = tempfile::tempdir().unwrap();
    let rule = founding();
    let docs = attack("f1", t0() + Duration::minutes(1), Duration::seconds(2));
    let open = || crate::state::FileStateStore::open(dir.path()).unwrap();
    let first = Runner::new(
        MemorySource::new(docs.clone()),
        MemorySink::new(),
        open(),
        RunnerSettings::default(),
    );
    let rec = first.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.alerts_created, 3);
    // A restarted process: 30 minutes later, catch-up starts at the stored
    // checkpoint.
    let second = Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        open(),
        RunnerSettings::default(),
    );
    let rec = second.execute(&rule, t0() + Duration::minutes(35)).await;
    assert_eq!(rec.windows.len(), 6, "{rec:?}");
    assert_eq!(rec.windows[0].end, t0() + Duration::minutes(10));
    let lines = std::fs::read_to_string(dir.path().join("executions.ndjson")).unwrap();
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["alerts"]["created"], 3);
    assert_eq!(
        records[1]["window"]["to"],
        json!(t0() + Duration::minutes(35))
    );
}

#[tokio::test]
async fn samples_become_groups_like_sequences() {
    let rule = variant(
        Some("sample by host.id [library where true] [network where true]"),
        None,
        None,
    );
    let r = runner(attack(
        "s1",
        t0() + Duration::minutes(1),
        Duration::seconds(30),
    ));
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.alerts_created, 3, "{rec:?}");
    let all = alerts(&r, r.sink());
    assert_eq!(shells(&all).len(), 1);
}

/// A sink whose id lookup is refused (no read privilege on the alias).
struct NoLookupSink(MemorySink);

impl AlertSink for NoLookupSink {
    async fn write(&self, index: &str, alerts: &[Alert]) -> Result<WriteReport, SinkError> {
        self.0.write(index, alerts).await
    }

    async fn existing_ids(&self, _: &str, _: &[String]) -> Result<HashSet<String>, SinkError> {
        Err(SinkError::BadIndex("refused".into()))
    }
}

#[tokio::test]
async fn a_refused_id_lookup_degrades_to_conflicts() {
    let rule = founding();
    let r = Runner::new(
        MemorySource::new(attack(
            "n1",
            t0() + Duration::minutes(1),
            Duration::seconds(2),
        )),
        NoLookupSink(MemorySink::new()),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let one = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(
        (one.status, one.alerts_created),
        (RunStatus::PartialFailure, 3)
    );
    let two = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!((two.alerts_created, two.alerts_duplicate), (0, 3));
    assert!(two.warnings[0].starts_with("cannot look up existing alerts"));
    assert_eq!(r.sink().0.alerts(ALERTS).len(), 3);
}

#[tokio::test]
async fn dropped_partial_sequences_are_reported_not_silent() {
    let rule = founding();
    let start = t0() + Duration::minutes(1);
    let mut docs: Vec<Document> = ["k1", "k2", "k3"]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            library(
                &format!("{k}-lib"),
                start + Duration::milliseconds(100 * i as i64),
                k,
                k,
                "powershell.exe",
            )
        })
        .collect();
    docs.push(network(
        "k1-net",
        start + Duration::seconds(1),
        "k1",
        "k1",
        "powershell.exe",
        "10.0.0.5",
        135,
    ));
    let settings = RunnerSettings {
        limits: crate::eql::sequence::Limits { max_pending: 1 },
        ..RunnerSettings::default()
    };
    let r = Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        settings,
    );
    let rec = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:?}");
    assert!(
        rec.warnings
            .iter()
            .any(|w| w.contains("partial sequences were dropped at the limit of 1 pending")),
        "{rec:?}"
    );
    assert_eq!(rec.alerts_created, 0, "k1's partial sequence was dropped");
}
