//! Shared scans over memory: the rules of a cohort run at one `now` write
//! exactly the alerts they write fetching alone, over two overlapping
//! ticks; windows that were not planned (a catch-up, a changed rule) are
//! fetched alone. The same comparison against a cluster is in
//! `integration-tests/tests/shared_scans.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use prometheus_client::metrics::counter::Counter;

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::MemoryStateStore;
use crate::synth::{Synth, SynthConfig};

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// 9,000 events over the 15 minutes before `t0() + 5m`, each in the
/// endpoint data stream of its category.
fn events() -> Vec<Document> {
    let start = t0() - Duration::minutes(10);
    Synth::new(SynthConfig {
        start_ms: start.timestamp_millis(),
        mean_gap_ms: 100,
        attacks_per_10k: 60,
        ..SynthConfig::default()
    })
    .take(9_000)
    .enumerate()
    .map(|(i, source)| {
        let category = source["event"]["category"]
            .as_str()
            .unwrap_or("other")
            .to_string();
        Document {
            index: format!("logs-endpoint.events.{category}-default"),
            id: format!("e{i}"),
            source,
        }
    })
    .collect()
}

fn rule(id: &str, body: &str) -> Arc<Rule> {
    let text = format!(
        "[rule]\nrule_id = \"{id}\"\nname = \"{id}\"\ndescription = \"d\"\n\
         severity = \"low\"\nrisk_score = 21\ninterval = \"5m\"\n{body}"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => Arc::new(*rule),
        other => panic!("rule {id} does not load: {other:?}"),
    }
}

fn rules() -> Vec<Arc<Rule>> {
    let eql = |q: &str| format!("type = \"eql\"\nlanguage = \"eql\"\nquery = '''{q}'''\n");
    vec![
        rule(
            "shell",
            &format!(
                "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-9m\"\n{}",
                eql(r#"process where process.name : ("powershell.exe", "cmd.exe") and process.args == "-arg""#)
            ),
        ),
        rule(
            "taskschd-rpc",
            &format!(
                "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-9m\"\n{}",
                eql(r#"sequence by host.id, process.entity_id with maxspan = 5s
 [library where dll.name : "taskschd.dll"]
 [network where destination.port == 135]"#)
            ),
        ),
        // overlaps the two rules around it
        rule(
            "cmd",
            &format!(
                "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-9m\"\n{}",
                eql("any where process.name : \"cmd.exe\" and host.os.type == \"windows\"")
            ),
        ),
        // its own indices only: the network stream
        rule(
            "rdp",
            &format!(
                "index = [\"logs-endpoint.events.network-*\"]\nfrom = \"now-6m\"\n{}",
                eql("network where destination.port == 3389 and process.name : \"cmd.exe\"")
            ),
        ),
        // a KQL query rule, and a time filter of its own
        rule(
            "crypt32",
            "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-7m\"\ntype = \"query\"\n\
             language = \"kuery\"\nquery = 'event.category:library and dll.name:crypt32.dll and host.os.type:linux'\n\
             timestamp_override = \"event.ingested\"\n",
        ),
        // a longer look-back than the rest
        rule(
            "bash-deletion",
            &format!(
                "index = [\"logs-endpoint.events.process-*\"]\nfrom = \"now-15m\"\n{}",
                eql("process where process.name == \"bash\" and event.action == \"deletion\"")
            ),
        ),
        // ordered by a tiebreaker too: a scan of its own (alone)
        rule(
            "tiebreak",
            &format!(
                "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-9m\"\ntiebreaker_field = \"event.sequence\"\n{}",
                eql("file where process.name : \"cmd.exe\"")
            ),
        ),
        // a trailing missing-event stage: its first run offers sequences
        // ending up to `maxspan` before its window (later runs: before the
        // checkpoint), and is planned so
        rule(
            "cmd-not-deleted",
            &format!(
                "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-9m\"\n{}",
                eql(r#"sequence by host.id with maxspan = 5m
 [process where process.name : "cmd.exe"]
 ![file where event.action == "deletion"]"#)
            ),
        ),
        // an aggregation: never shared
        rule(
            "many-rdp",
            "index = [\"logs-endpoint.events.*\"]\nfrom = \"now-9m\"\ntype = \"threshold\"\n\
             language = \"kuery\"\nquery = 'destination.port:3389'\n\
             [rule.threshold]\nfield = [\"host.id\"]\nvalue = 8\n",
        ),
    ]
}

type MemRunner = Runner<MemorySource, MemorySink, MemoryStateStore>;

fn runner() -> MemRunner {
    Runner::new(
        MemorySource::new(events()),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
    .with_execution_ids(ExecutionIds::Derived)
}

/// Alert ids per rule, with what identifies each alert's events.
fn alerts(r: &MemRunner) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (id, a) in r.sink().alerts(ALERTS) {
        let rule = a["kibana.alert.rule.rule_id"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let original = a["kibana.alert.original_time"]
            .as_str()
            .unwrap_or("")
            .to_string();
        out.entry(rule).or_default().push((id, original));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

async fn tick(r: &MemRunner, rules: &[Arc<Rule>], now: DateTime<Utc>) {
    for rule in rules {
        let record = r.run(rule, now).await;
        assert!(
            record.error.is_none(),
            "{} failed: {:?}",
            rule.rule_id,
            record.error
        );
    }
}

fn count(c: &Counter) -> u64 {
    c.get()
}

#[tokio::test]
async fn a_cohort_sharing_scans_writes_the_alerts_it_writes_alone() {
    let rules = rules();
    let alone = runner();
    let stats = Arc::new(ScanStats::default());
    let board = Arc::new(ScanBoard::new(1_000_000, stats.clone()));
    board.set_cohorts(vec![rules.clone()]);
    let shared = runner().with_sharing(board);
    for now in [t0(), t0() + Duration::minutes(5)] {
        tick(&alone, &rules, now).await;
        tick(&shared, &rules, now).await;
    }
    let (a, s) = (alerts(&alone), alerts(&shared));
    assert_eq!(a, s);
    // every kind of rule found something, so the comparison means something
    for r in &rules {
        assert!(
            a.get(&r.rule_id).is_some_and(|v| !v.is_empty()),
            "{} made no alert: the test data should make some",
            r.rule_id
        );
    }
    // two ticks, one scan each of the six rules ordered by `@timestamp`
    // (the first a first run); the tiebreaker rule and the query rule
    // ordered by its override each order differently (alone), and the
    // threshold rule aggregates
    assert_eq!(count(&stats.scans), 2);
    assert_eq!(count(&stats.members), 12);
    assert_eq!(count(&stats.served), 12);
    assert_eq!(count(&stats.failed), 0);
    let (read, wanted) = (count(&stats.events_read), count(&stats.member_events));
    assert!(
        read < wanted,
        "a scan reads each event once: {read} read for {wanted} wanted"
    );
}

#[tokio::test]
async fn a_window_not_planned_is_fetched_alone() {
    let rules = rules();
    let stats = Arc::new(ScanStats::default());
    let board = Arc::new(ScanBoard::new(1_000_000, stats.clone()));
    board.set_cohorts(vec![rules.clone()]);
    let shared = runner().with_sharing(board.clone());
    let alone = runner();
    // a first tick, then a run 25 minutes later: catch-up windows, of which
    // only the last is the one planned
    tick(&shared, &rules, t0() - Duration::minutes(20)).await;
    tick(&alone, &rules, t0() - Duration::minutes(20)).await;
    tick(&shared, &rules, t0() + Duration::minutes(5)).await;
    tick(&alone, &rules, t0() + Duration::minutes(5)).await;
    assert_eq!(alerts(&alone), alerts(&shared));
    // a changed rule is not the one planned: it fetches alone
    let before = count(&stats.served);
    let mut changed = (*rules[0]).clone();
    changed.name = "changed".into();
    let record = shared.run(&changed, t0() + Duration::minutes(10)).await;
    assert!(record.error.is_none());
    assert_eq!(
        count(&stats.served),
        before,
        "the changed rule's window was not served from the scan"
    );
    // a scan too large for its limit gives up: every rule fetches alone,
    // with the same alerts
    let small = Arc::new(ScanStats::default());
    let board = Arc::new(ScanBoard::new(100, small.clone()));
    board.set_cohorts(vec![rules.clone()]);
    let limited = runner().with_sharing(board);
    tick(&limited, &rules, t0()).await;
    let reference = runner();
    tick(&reference, &rules, t0()).await;
    assert_eq!(alerts(&reference), alerts(&limited));
    assert_eq!(count(&small.failed), 1);
    assert_eq!(count(&small.served), 0);
}

#[tokio::test]
async fn a_rule_that_cannot_share_fetches_alone_and_the_others_share_without_it() {
    let rules = rules();
    let stats = Arc::new(ScanStats::default());
    let board = Arc::new(ScanBoard::new(1_000_000, stats.clone()));
    board.set_cohorts(vec![rules.clone()]);
    // the rdp rule's index cannot be shared (as one read through an alias
    // that routes searches cannot)
    let source = MemorySource::new(events()).with_unshareable("logs-endpoint.events.network-*");
    let shared = Runner::new(
        source,
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
    .with_execution_ids(ExecutionIds::Derived)
    .with_sharing(board);
    let alone = runner();
    for k in 0..3 {
        let now = t0() + Duration::minutes(5 * k);
        tick(&shared, &rules, now).await;
        tick(&alone, &rules, now).await;
    }
    assert_eq!(alerts(&alone), alerts(&shared));
    assert!(alerts(&alone).get("rdp").is_some_and(|a| !a.is_empty()));
    // the first scan gave up (everyone fetched alone); the next two were
    // read without the rdp rule, by the five others
    assert_eq!(count(&stats.failed), 1);
    assert_eq!(count(&stats.scans), 2);
    assert_eq!(count(&stats.members), 10);
    assert_eq!(count(&stats.served), 10);
}
