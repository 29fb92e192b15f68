//! Shared scans against a live cluster (`ELASTICSEARCH_URL`): the rules of
//! one cohort, run at one `now`, read their windows in one search (each
//! rule's whole query a named clause on its own indices) and write the same
//! alerts as the same rules fetching alone; the scan reads each event
//! once. The same comparison over memory is in `src/runner/share_tests.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ScanBoard, ScanStats};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::synth::{Synth, SynthConfig};
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn rule(id: &str, index: &str, body: &str) -> Arc<Rule> {
    let text = format!(
        "[rule]\nrule_id = \"{id}\"\nname = \"{id}\"\ndescription = \"d\"\n\
         severity = \"low\"\nrisk_score = 21\ninterval = \"5m\"\nindex = [{index}]\n{body}"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => Arc::new(*rule),
        other => panic!("rule {id} does not load: {other:?}"),
    }
}

fn eql(query: &str) -> String {
    format!("type = \"eql\"\nlanguage = \"eql\"\nfrom = \"now-9m\"\nquery = '''{query}'''\n")
}

/// Rules over the test's two indices: overlapping selections, one index
/// each or both, an EQL sequence, KQL and Lucene query rules, a longer
/// look-back, and a threshold rule (never shared).
fn rules(prefix: &str) -> Vec<Arc<Rule>> {
    let both = format!("\"{prefix}-ev-process\", \"{prefix}-ev-network\", \"{prefix}-ev-library\"");
    let net = format!("\"{prefix}-ev-net*\"");
    vec![
        rule(
            "shell",
            &both,
            &eql(
                r#"process where process.name : ("powershell.exe", "cmd.exe") and process.args == "-arg""#,
            ),
        ),
        rule(
            "cmd",
            &both,
            &eql(r#"any where process.name : "cmd.exe" and host.os.type == "windows""#),
        ),
        rule(
            "taskschd-rpc",
            &both,
            &eql(r#"sequence by host.id, process.entity_id with maxspan = 5s
 [library where dll.name : "taskschd.dll"]
 [network where destination.port == 135]"#),
        ),
        rule(
            "rdp",
            &net,
            &eql(r#"network where destination.port == 3389 and process.name : "cmd.exe""#),
        ),
        rule(
            "crypt32",
            &both,
            "type = \"query\"\nlanguage = \"kuery\"\nfrom = \"now-7m\"\n\
             query = 'event.category:library and dll.name:crypt32.dll and host.os.type:linux'\n",
        ),
        rule(
            "msedge-445",
            &net,
            "type = \"query\"\nlanguage = \"lucene\"\nfrom = \"now-15m\"\n\
             query = 'process.name:msedge.exe AND destination.port:445'\n",
        ),
        rule(
            "many-rdp",
            &both,
            "type = \"threshold\"\nlanguage = \"kuery\"\nfrom = \"now-9m\"\n\
             query = 'destination.port:3389'\n[rule.threshold]\nfield = [\"host.id\"]\nvalue = 8\n",
        ),
    ]
}

/// What identifies an alert across two spaces (ids hash the space): its
/// rule and the events it is made of.
async fn alert_set(space: &RunSpace) -> BTreeSet<(String, String)> {
    space
        .alert_hits(&json!({ "size": 10_000, "query": { "match_all": {} } }))
        .await
        .iter()
        .map(|h| {
            let s = &h["_source"];
            let rule = s["kibana.alert.rule.rule_id"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let events: Vec<&str> = s["kibana.alert.ancestors"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect())
                .unwrap_or_default();
            let threshold = s["kibana.alert.threshold_result"]["terms"].to_string();
            (rule, format!("{events:?} {threshold}"))
        })
        .collect()
}

#[tokio::test]
async fn rules_sharing_a_scan_write_the_alerts_they_write_alone() {
    let Some(alone) = RunSpace::new("shared_scans", "scan-alone").await else {
        return;
    };
    let shared = RunSpace::new("shared_scans", "scan-shared")
        .await
        .expect("the cluster answered a moment ago");
    let cluster = alone.cluster.clone();
    let prefix = alone.prefix.clone();
    let indices: Vec<String> = ["process", "network", "library", "file"]
        .iter()
        .map(|c| format!("{prefix}-ev-{c}"))
        .collect();
    for index in &indices {
        create_index(&cluster, index, ecs_mapping()).await;
    }
    // 6,000 events over the 10 minutes before the second tick
    let start = t0() - Duration::minutes(5);
    let mut per_index: Vec<Vec<(String, Value)>> = vec![Vec::new(); indices.len()];
    for (i, source) in Synth::new(SynthConfig {
        start_ms: start.timestamp_millis(),
        mean_gap_ms: 100,
        attacks_per_10k: 60,
        ..SynthConfig::default()
    })
    .take(6_000)
    .enumerate()
    {
        let at = match source["event"]["category"].as_str() {
            Some("process") => 0,
            Some("network") => 1,
            Some("library") => 2,
            _ => 3,
        };
        per_index[at].push((format!("e{i}"), source));
    }
    for (index, docs) in indices.iter().zip(&per_index) {
        index_docs(&cluster, index, docs).await;
    }

    let rules = rules(&prefix);
    let stats = Arc::new(ScanStats::default());
    let board = Arc::new(ScanBoard::new(1_000_000, stats.clone()));
    board.set_cohorts(vec![rules.clone()]);
    let by_itself = alone.runner(ElasticsearchSource::new(cluster.clone()));
    let together = shared
        .runner(ElasticsearchSource::new(cluster.clone()))
        .with_sharing(board);
    for now in [t0(), t0() + Duration::minutes(5)] {
        for rule in &rules {
            for (runner, how) in [(&by_itself, "alone"), (&together, "shared")] {
                let record = runner.run(rule, now).await;
                assert!(
                    record.error.is_none(),
                    "{} ({how}) failed: {:?}",
                    rule.rule_id,
                    record.error
                );
            }
        }
    }

    let (a, s) = (alert_set(&alone).await, alert_set(&shared).await);
    assert_eq!(a, s, "the same alerts with and without sharing");
    let rules_alerting: BTreeSet<&str> = a.iter().map(|(r, _)| r.as_str()).collect();
    for r in &rules {
        assert!(
            rules_alerting.contains(r.rule_id.as_str()),
            "{} made no alert: the test data should make some ({rules_alerting:?})",
            r.rule_id
        );
    }
    // per tick, one scan for the six rules that read their window's events
    // (the threshold rule aggregates on the cluster)
    assert_eq!(stats.scans.get(), 2);
    assert_eq!(stats.members.get(), 12);
    assert_eq!(stats.served.get(), 12);
    assert_eq!(stats.failed.get(), 0);
    let (read, wanted) = (stats.events_read.get(), stats.member_events.get());
    assert!(
        read < wanted,
        "the scan read each event once: {read} read, {wanted} for the rules"
    );

    let names: Vec<&str> = indices.iter().map(String::as_str).collect();
    alone.cleanup(&names).await;
    shared.cleanup(&[]).await;
}
