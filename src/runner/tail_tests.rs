//! Near-real-time tails over memory: a tail alerts a sequence seconds after
//! its last event, with the id the scheduled run then finds as a
//! duplicate; a quiet tail leaves no record and no checkpoint; what a tail
//! cannot see yet (an event inside the lag) the next tail or the scheduled
//! run finds; rules that cannot tail say why; tails share a scan.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::runner::run::tail;
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::{MemoryStateStore, StateStore};

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

const TIMING: TailTiming = TailTiming {
    every: StdDuration::from_secs(5),
    lag: StdDuration::from_secs(10),
};

fn rule(id: &str, query: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"{id}\"\nname = \"{id}\"\ndescription = \"d\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\ninterval = \"5m\"\nfrom = \"now-9m\"\n\
         query = '''{query}'''\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule {id} does not load: {other:?}"),
    }
}

const SEQUENCE: &str = r#"sequence by host.id with maxspan = 30s
 [process where process.name == "a.exe"]
 [network where destination.port == 445]"#;

/// An event `ms` milliseconds after `t0()`.
fn event(id: &str, ms: i64, category: &str, extra: serde_json::Value) -> Document {
    let mut source = json!({
        "@timestamp": (t0() + Duration::milliseconds(ms)).to_rfc3339_opts(SecondsFormat::Millis, true),
        "event": {"category": category},
        "host": {"id": "h1"},
    });
    if let (Some(s), Some(e)) = (source.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    Document {
        index: "logs-x".into(),
        id: id.into(),
        source,
    }
}

type MemRunner = Runner<MemorySource, MemorySink, MemoryStateStore>;

fn runner(docs: Vec<Document>) -> MemRunner {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
    .with_tailing(TIMING)
}

/// The sequence's first event at t0 + 1 s, its last at t0 + 20 s.
fn attack() -> Vec<Document> {
    vec![
        event(
            "p1",
            1_000,
            "process",
            json!({"process": {"name": "a.exe"}}),
        ),
        event(
            "n1",
            20_000,
            "network",
            json!({"destination": {"port": 445}}),
        ),
    ]
}

#[test]
fn the_tail_window_is_the_last_every_before_the_lag() {
    let now = t0() + Duration::seconds(30);
    let w = tail_window(TIMING, now);
    assert_eq!(w.end, t0() + Duration::seconds(20));
    assert_eq!(w.start, t0() + Duration::seconds(15));
    // consecutive tails tile time
    assert_eq!(tail_window(TIMING, now + Duration::seconds(5)).start, w.end);
}

#[tokio::test]
async fn a_tail_alerts_a_sequence_seconds_after_its_last_event_and_the_run_sees_a_duplicate() {
    let r = runner(attack());
    let rule = rule("seq", SEQUENCE);
    // at t0 + 25 s the last event (t0 + 20 s) is still inside the lag
    let early = r.tail(&rule, t0() + Duration::seconds(25)).await.unwrap();
    assert_eq!(early.alerts_created, 0);
    assert!(
        r.state().executions().is_empty(),
        "a quiet tail leaves no record"
    );
    // at t0 + 30 s its window [15 s, 20 s] holds the last event; the first
    // (1 s) is read through the sequence's maxspan
    let tail = r.tail(&rule, t0() + Duration::seconds(30)).await.unwrap();
    assert!(tail.error.is_none(), "{:?}", tail.error);
    assert_eq!(tail.alerts_created, 3, "a shell and two building blocks");
    assert_eq!(
        r.state().executions().len(),
        1,
        "a tail that alerted is recorded"
    );
    assert!(
        r.state().checkpoint("seq").await.unwrap().is_none(),
        "tails never move the checkpoint"
    );
    let after_tail = r.sink().alerts(ALERTS);
    // the next tail does not offer it again; the scheduled run finds the
    // same ids as duplicates
    let next = r.tail(&rule, t0() + Duration::seconds(35)).await.unwrap();
    assert_eq!(next.alerts_created, 0);
    let run = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.alerts_created, 0);
    assert_eq!(run.alerts_duplicate, 3);
    let ids = |m: &std::collections::BTreeMap<String, serde_json::Value>| {
        m.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(ids(&r.sink().alerts(ALERTS)), ids(&after_tail));

    // without tails the scheduled run writes exactly those ids
    let plain = Runner::new(
        MemorySource::new(attack()),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    assert!(
        plain.tail(&rule, t0()).await.is_none(),
        "no [realtime]: no tail"
    );
    let run = plain.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.alerts_created, 3);
    assert_eq!(ids(&plain.sink().alerts(ALERTS)), ids(&after_tail));
}

#[test]
fn only_rules_reading_a_short_reach_tail() {
    let settings = RunnerSettings::default();
    assert!(tail::tailable(&rule("seq", SEQUENCE), &settings, t0()).is_ok());
    assert!(tail::tailable(&rule("ev", "process where true"), &settings, t0()).is_ok());
    let unbounded = rule(
        "open",
        r#"sequence by host.id [process where true] [network where true]"#,
    );
    let why = tail::tailable(&unbounded, &settings, t0()).unwrap_err();
    assert!(why.contains("without maxspan"), "{why}");
    let long = rule(
        "long",
        r#"sequence by host.id with maxspan = 2h [process where true] [network where true]"#,
    );
    let why = tail::tailable(&long, &settings, t0()).unwrap_err();
    assert!(why.contains("more than 60 min"), "{why}");
}

/// Tails of `rule` at `t0()` plus each of `seconds`: (events fetched,
/// alerts created) of each.
async fn tails(r: &MemRunner, rule: &Rule, seconds: &[i64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for s in seconds {
        let record = r.tail(rule, t0() + Duration::seconds(*s)).await.unwrap();
        assert!(record.error.is_none(), "{:?}", record.error);
        out.push((record.events_fetched, record.alerts_created));
    }
    out
}

#[tokio::test]
async fn a_sequence_tail_carries_its_matcher_and_reads_only_its_window() {
    let r = runner(attack());
    let rule = rule("seq", SEQUENCE);
    // windows [0, 5], [5, 10], [10, 15], [15, 20] s: the first starts a
    // matcher (reading 30 s back: nothing before t0) and feeds it the first
    // event; the last reads only the second event, and completes the
    // sequence from the matcher it was carried
    let got = tails(&r, &rule, &[15, 20, 25, 30]).await;
    assert_eq!(got, [(1, 0), (0, 0), (0, 0), (1, 3)]);
    let carried = r.sink().alerts(ALERTS);
    // the scheduled run finds the same alerts as duplicates
    let run = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!((run.alerts_created, run.alerts_duplicate), (0, 3));
    assert_eq!(r.sink().alerts(ALERTS), carried);

    // a tail skipped (the daemon was busy): the next starts afresh, reading
    // back by maxspan, and offers only what ends in its window
    let r = runner(attack());
    let got = tails(&r, &rule, &[15, 30]).await;
    assert_eq!(got, [(1, 0), (2, 3)]);
    // (the next reads the last event again, at the instant both windows
    // share, and does not feed it twice)
    assert_eq!(tails(&r, &rule, &[35]).await, [(1, 0)]);
    // a changed rule starts afresh too
    let mut changed = rule.clone();
    changed.name = "changed".into();
    let r = runner(attack());
    tails(&r, &rule, &[15, 20, 25]).await;
    assert_eq!(tails(&r, &changed, &[30]).await, [(2, 3)]);
}

#[tokio::test]
async fn an_event_at_the_instant_two_tails_share_is_fed_once() {
    // both stages match the same event: fed twice, it would pair with itself
    let twice = rule(
        "twice",
        r#"sequence by host.id with maxspan = 30s
 [process where process.name == "a.exe"]
 [process where process.name == "a.exe"]"#,
    );
    // at 20 s: the end of [15, 20] and the start of [20, 25]
    let docs = vec![event(
        "p1",
        20_000,
        "process",
        json!({"process": {"name": "a.exe"}}),
    )];
    let r = runner(docs);
    let got = tails(&r, &twice, &[25, 30, 35, 40]).await;
    assert_eq!(got, [(0, 0), (1, 0), (1, 0), (0, 0)]);
    assert!(r.sink().alerts(ALERTS).is_empty());
}

#[tokio::test]
async fn tails_of_several_rules_share_one_scan() {
    let mut docs = attack();
    docs.push(event(
        "p2",
        18_000,
        "process",
        json!({"process": {"name": "b.exe"}}),
    ));
    let rules: Vec<Arc<Rule>> = vec![
        Arc::new(rule("seq", SEQUENCE)),
        Arc::new(rule("b", r#"process where process.name == "b.exe""#)),
        Arc::new(rule("any-process", "process where true")),
    ];
    let stats = Arc::new(ScanStats::default());
    let board = Arc::new(ScanBoard::new(1_000, stats.clone()));
    let r = runner(docs).with_sharing(board);
    assert!(RuleExecutor::tail_together(&r, rules.clone()).is_empty());
    let now = t0() + Duration::seconds(30);
    let mut created = 0;
    for rule in &rules {
        created += r.tail(rule, now).await.unwrap().alerts_created;
    }
    // the sequence (3), b.exe (1), and every process event in reach of the
    // window: p2 at 18 s (1)
    assert_eq!(created, 5);
    assert_eq!(stats.scans.get(), 1);
    assert_eq!(stats.served.get(), 3);
}

#[tokio::test]
async fn tails_alert_at_most_max_signals_in_each_interval_and_runs_keep_their_own_cap() {
    let mut capped = rule("ev", "process where true");
    capped.max_signals = 3;
    // two process events in each of the windows [0, 5] .. [20, 25] s, and
    // two more five minutes later
    let mut docs = Vec::new();
    for (i, ms) in [1, 2, 6, 7, 11, 12, 16, 17, 21, 22, 301, 302]
        .iter()
        .map(|s| s * 1_000)
        .enumerate()
    {
        docs.push(event(&format!("p{i}"), ms, "process", json!({})));
    }
    let r = runner(docs);
    let mut created = Vec::new();
    let mut capped_count = 0;
    for s in [15, 20, 25, 30, 35] {
        let record = r.tail(&capped, t0() + Duration::seconds(s)).await.unwrap();
        assert!(record.error.is_none(), "{:?}", record.error);
        created.push(record.alerts_created);
        capped_count += record.alerts_capped;
    }
    // the interval's budget of 3 runs out in the second tail; what it
    // leaves out is counted as capped
    assert_eq!(created, [2, 1, 0, 0, 0]);
    assert_eq!(capped_count, 7);
    assert_eq!(r.sink().alerts(ALERTS).len(), 3);

    // the scheduled run has its own max_signals: 3 more, as a run without
    // tails would alert
    let run = r.run(&capped, t0() + Duration::minutes(5)).await;
    assert_eq!(run.alerts_created, 3);
    assert_eq!(r.sink().alerts(ALERTS).len(), 6);

    // the next interval's tails have a fresh budget
    let next = r
        .tail(&capped, t0() + Duration::seconds(315))
        .await
        .unwrap();
    assert_eq!(next.alerts_created, 2);
}

#[tokio::test]
async fn an_instance_taking_a_rule_over_goes_on_from_the_stored_tail_budget() {
    let mut capped = rule("ev", "process where true");
    capped.max_signals = 3;
    // two process events in each of the windows [0, 5], [5, 10], [10, 15] s
    let docs: Vec<Document> = [1, 2, 6, 7, 11, 12]
        .iter()
        .enumerate()
        .map(|(i, s)| event(&format!("p{i}"), s * 1_000, "process", json!({})))
        .collect();
    // two instances with the state (and so the budgets) in common
    let state = Arc::new(MemoryStateStore::new());
    let instance = || {
        Runner::new(
            MemorySource::new(docs.clone()),
            MemorySink::new(),
            state.clone(),
            RunnerSettings::default(),
        )
        .with_tailing(TIMING)
    };
    let (a, b) = (instance(), instance());
    let at = |s: i64| t0() + Duration::seconds(s);
    // a alerts 2 of the interval's 3; b, taking the rule over, may alert
    // only 1 more (alone it would alert both of its window's events)
    assert_eq!(a.tail(&capped, at(15)).await.unwrap().alerts_created, 2);
    let by_b = b.tail(&capped, at(20)).await.unwrap();
    assert_eq!((by_b.alerts_created, by_b.alerts_capped), (1, 1));
    // and a, taking it back, finds the budget spent
    let by_a = a.tail(&capped, at(25)).await.unwrap();
    assert_eq!((by_a.alerts_created, by_a.alerts_capped), (0, 2));
    let stored = state.tail_spend("ev").await.unwrap().unwrap();
    assert_eq!(stored.alerted, 3);
}
