//! Near-real-time tails against a live cluster (`ELASTICSEARCH_URL`): tails
//! every 5 s over ten minutes of generated events, sharing one scan per
//! tick and carrying each sequence's matcher from tail to tail, write the
//! alerts one scheduled run over the same time writes, while reading each
//! event about once (a tail reads its own seconds, not `maxspan` again).
//! The cluster's range bounds are inclusive at both ends, so consecutive
//! tails both return an event at their shared instant: the matcher must be
//! fed it once. The same over memory is in `src/runner/tail_tests.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ScanBoard, ScanStats, TailTiming};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::synth::{Synth, SynthConfig};
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn rule(id: &str, index: &str, query: &str) -> Arc<Rule> {
    let text = format!(
        "[rule]\nrule_id = \"{id}\"\nname = \"{id}\"\ndescription = \"d\"\n\
         severity = \"low\"\nrisk_score = 21\ninterval = \"5m\"\nindex = [{index}]\n\
         type = \"eql\"\nlanguage = \"eql\"\nfrom = \"now-15m\"\nmax_signals = 1000\n\
         query = '''{query}'''\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => Arc::new(*rule),
        other => panic!("rule {id} does not load: {other:?}"),
    }
}

/// Tails sharing scans of named clauses: each gets exactly its own
/// search's events, so what they read can be counted against the run.
#[tokio::test]
async fn tails_carrying_their_matchers_write_what_a_scheduled_run_writes() {
    tails_against_a_run(false).await;
}

/// Tails sharing a scan that selects them locally (each gets a superset
/// where its filter was widened: the count says nothing there).
#[tokio::test]
async fn tails_selected_locally_write_what_a_scheduled_run_writes() {
    tails_against_a_run(true).await;
}

async fn tails_against_a_run(select_locally: bool) {
    let (t_name, s_name) = match select_locally {
        false => ("tailed", "scheduled"),
        true => ("local-tailed", "local-scheduled"),
    };
    let Some(tailed) = RunSpace::new("carried_tails", t_name).await else {
        return;
    };
    let scheduled = RunSpace::new("carried_tails", s_name)
        .await
        .expect("the cluster answered a moment ago");
    let cluster = tailed.cluster.clone();
    let index = format!("{}-ev", tailed.prefix);
    create_index(&cluster, &index, ecs_mapping()).await;
    // 6,000 events about 100 ms apart over [t0 - 5m, t0 + 5m]; every 25th
    // moved back to the last multiple of 5 s: the instant two tails share
    let start = t0() - Duration::minutes(5);
    let docs: Vec<(String, Value)> = Synth::new(SynthConfig {
        start_ms: start.timestamp_millis(),
        mean_gap_ms: 100,
        attacks_per_10k: 80,
        ..SynthConfig::default()
    })
    .take(6_000)
    .enumerate()
    .map(|(i, mut source)| {
        if i % 25 == 0 {
            let at: DateTime<Utc> = source["@timestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("generated events have a timestamp");
            let ms = at.timestamp_millis();
            let boundary = DateTime::from_timestamp_millis(ms - ms.rem_euclid(5_000)).unwrap();
            source["@timestamp"] = json!(iso(boundary));
        }
        (format!("e{i}"), source)
    })
    .collect();
    index_docs(&cluster, &index, &docs).await;

    let quoted = format!("\"{index}\"");
    let rules = vec![
        rule(
            "taskschd-rpc",
            &quoted,
            r#"sequence by host.id, process.entity_id with maxspan = 5s
 [library where dll.name : "taskschd.dll"]
 [network where destination.port == 135]"#,
        ),
        rule(
            "two-processes",
            &quoted,
            r#"sequence by host.id with maxspan = 20s
 [process where process.name : "cmd.exe"]
 [process where process.name : "powershell.exe"]"#,
        ),
        // an event at a shared instant fed twice would pair with itself
        rule(
            "cmd-twice",
            &quoted,
            r#"sequence by host.id with maxspan = 10s
 [process where process.name : "cmd.exe"]
 [process where process.name : "cmd.exe"]"#,
        ),
        rule(
            "cmd-then-quiet",
            &quoted,
            r#"sequence by host.id with maxspan = 3s
 [process where process.name : "cmd.exe"]
 ![network where true]"#,
        ),
        rule(
            "rdp",
            &quoted,
            r#"network where destination.port == 3389 and process.name : "cmd.exe""#,
        ),
    ];

    let timing = TailTiming {
        every: StdDuration::from_secs(5),
        lag: StdDuration::ZERO,
    };
    let stats = Arc::new(ScanStats::default());
    let board =
        Arc::new(ScanBoard::new(1_000_000, stats.clone()).with_local_selection(select_locally));
    board.set_tail_cohort(rules.clone(), timing);
    let tails = tailed
        .runner(ElasticsearchSource::new(cluster.clone()))
        .with_tailing(timing)
        .with_sharing(board);
    // tails whose windows tile [t0 - 5m, t0 + 5m 10s]
    let mut fetched = 0u64;
    let mut tail_alerts = 0u64;
    let mut tick = start + Duration::seconds(5);
    while tick <= t0() + Duration::minutes(5) + Duration::seconds(10) {
        for rule in &rules {
            let record = tails.tail(rule, tick).await.expect("the runner tails");
            assert!(
                record.error.is_none(),
                "{} at {tick}: {:?}",
                rule.rule_id,
                record.error
            );
            fetched += record.events_fetched;
            tail_alerts += record.alerts_created;
        }
        tick += Duration::seconds(5);
    }

    let once = scheduled.runner(ElasticsearchSource::new(cluster.clone()));
    let now = t0() + Duration::minutes(5) + Duration::seconds(10);
    let mut fetched_once = 0u64;
    for rule in &rules {
        let record = once.run(rule, now).await;
        fetched_once += record.events_fetched;
        assert!(
            record.error.is_none(),
            "{}: {:?}",
            rule.rule_id,
            record.error
        );
    }

    let (by_tails, by_run) = (tailed.alert_set().await, scheduled.alert_set().await);
    assert!(tail_alerts > 0);
    let per_rule =
        |set: &BTreeSet<(String, String)>, id: &str| set.iter().filter(|(r, _)| r == id).count();
    for r in &rules {
        eprintln!(
            "{}: {} alerts by the run, {} by the tails",
            r.rule_id,
            per_rule(&by_run, &r.rule_id),
            per_rule(&by_tails, &r.rule_id)
        );
    }
    eprintln!("events fetched: {fetched} by the tails, {fetched_once} by the run");
    for r in &rules {
        assert!(
            per_rule(&by_run, &r.rule_id) > 0,
            "{} made no alert: the test data should make some",
            r.rule_id
        );
    }
    assert_eq!(by_tails, by_run, "the tails wrote what the run wrote");
    // the tails read about what the one run reads, each event once: the
    // sequences reach back by their maxspan only on their first tail, and
    // an event at a shared instant (one in 25) is read by two tails;
    // re-reading maxspan every tail would read the 20 s sequence's events
    // five times, the 10 s one's three times
    if !select_locally {
        assert!(
            fetched * 10 <= fetched_once * 11,
            "events fetched: {fetched} by the tails, {fetched_once} by the run"
        );
    }
    assert_eq!(stats.failed.get(), 0);
    assert!(stats.served.get() > 0, "the tails shared scans");

    tailed.cleanup(&[&index]).await;
    scheduled.cleanup(&[]).await;
}
