//! Alert suppression over memory, with hand-counted expectations: one
//! alert per group per run without a duration, an open alert extended in
//! place with one, overlapping windows and catch-up never counting a match
//! twice, a new run (what a restart is to suppression: its state is the
//! alerts index) continuing the open alert, the missing-fields strategies,
//! and a threshold rule's groups.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::MemoryStateStore;

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    (t0() + Duration::minutes(minute)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Failed logons, `from = now-9m` every 5m, suppressed by host.
fn rule(kind: &str, suppression: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"s-1\"\nname = \"Failures\"\ndescription = \"d\"\n\
         {kind}\nindex = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         from = \"now-9m\"\ninterval = \"5m\"\nquery = 'event.outcome:failure'\n\n\
         [rule.alert_suppression]\n{suppression}"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            *rule
        }
        other => panic!("rule does not load: {other:?}"),
    }
}

const QUERY: &str = "type = \"query\"\nlanguage = \"kuery\"";

fn failure(id: &str, minute: i64, host: Option<&str>) -> Document {
    let mut source = json!({
        "@timestamp": at(minute),
        "event": {"category": ["authentication"], "outcome": "failure"},
        "user": {"name": "alice"},
    });
    if let Some(host) = host {
        source["host"] = json!({"name": host});
    }
    Document {
        index: "logs-auth".into(),
        id: id.into(),
        source,
    }
}

fn runner(docs: Vec<Document>) -> Runner<MemorySource, MemorySink, MemoryStateStore> {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

/// (host term, docs_count, start, end) of every alert, by start.
fn groups(
    r: &Runner<MemorySource, MemorySink, MemoryStateStore>,
) -> Vec<(Value, u64, String, String)> {
    let mut out: Vec<(Value, u64, String, String)> = r
        .sink()
        .alerts(ALERTS)
        .values()
        .map(|a| {
            (
                a["kibana.alert.suppression.terms"][0]["value"].clone(),
                a["kibana.alert.suppression.docs_count"]
                    .as_u64()
                    .unwrap_or(u64::MAX),
                a["kibana.alert.suppression.start"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                a["kibana.alert.suppression.end"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.2, a.0.to_string()).cmp(&(&b.2, b.0.to_string())));
    out
}

#[tokio::test]
async fn without_a_duration_each_run_makes_one_alert_per_group() {
    let r = runner(vec![
        failure("a1", -8, Some("ws-1")),
        failure("a2", -6, Some("ws-1")),
        failure("a3", -2, Some("ws-1")),
        failure("b1", -3, Some("ws-2")),
        // The next window (-4 .. +5) sees a3 again and a new a4.
        failure("a4", 3, Some("ws-1")),
    ]);
    let rule = rule(QUERY, "group_by = [\"host.name\"]");
    let first = r.run(&rule, t0()).await;
    assert_eq!(first.error, None);
    assert_eq!((first.alerts_created, first.alerts_suppressed), (2, 2));
    assert_eq!(
        groups(&r),
        [
            (json!("ws-1"), 2, at(-8), at(-2)),
            (json!("ws-2"), 0, at(-3), at(-3)),
        ]
    );
    let a = r.sink().alerts(ALERTS).into_values().next().unwrap();
    assert_eq!(
        a["kibana.alert.suppression.terms"],
        json!([{"field": "host.name", "value": "ws-1"}])
    );
    assert!(a["kibana.alert.instance.id"]
        .as_str()
        .is_some_and(|s| s.len() == 64));

    // Overlapping window: a3 was counted (at or before its alert's end),
    // a4 is new and, per run, a new alert of its own.
    let second = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(second.error, None);
    assert_eq!(second.alerts_created, 1, "{second:?}");
    assert_eq!(
        groups(&r).last().unwrap(),
        &(json!("ws-1"), 0, at(3), at(3))
    );
}

#[tokio::test]
async fn with_a_duration_the_open_alert_is_extended_in_place_across_runs() {
    let r = runner(vec![
        failure("a1", -8, Some("ws-1")),
        failure("a2", -2, Some("ws-1")),
        failure("a3", 3, Some("ws-1")),
        failure("a4", 8, Some("ws-1")),
        failure("a5", 9, Some("ws-1")),
    ]);
    let rule = rule(
        QUERY,
        "group_by = [\"host.name\"]\nduration = {value = 1, unit = \"h\"}",
    );
    let first = r.run(&rule, t0()).await;
    assert_eq!((first.alerts_created, first.alerts_suppressed), (1, 1));
    // Each run is a new start for suppression (its state is the alerts
    // index): the second finds the open alert and extends it.
    let second = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(second.error, None);
    assert_eq!(
        (second.alerts_created, second.alerts_suppressed),
        (0, 1),
        "{second:?}"
    );
    let third = r.run(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(
        (third.alerts_created, third.alerts_suppressed),
        (0, 2),
        "{third:?}"
    );
    let alerts = r.sink().alerts(ALERTS);
    assert_eq!(alerts.len(), 1);
    let a = alerts.values().next().unwrap();
    // a1 alerted; a2..a5 suppressed into it, each counted once although
    // every event was in two windows.
    assert_eq!(a["kibana.alert.suppression.docs_count"], 4);
    assert_eq!(a["kibana.alert.suppression.start"], at(-8));
    assert_eq!(a["kibana.alert.suppression.end"], at(9));
    assert_eq!(
        a["kibana.alert.last_detected"],
        (t0() + Duration::minutes(10)).to_rfc3339_opts(SecondsFormat::Millis, true)
    );
}

#[tokio::test]
async fn a_catch_up_over_three_windows_counts_each_match_once() {
    let r = runner(vec![
        failure("a1", -3, Some("ws-1")),
        failure("a2", 2, Some("ws-1")),
        failure("a3", 7, Some("ws-1")),
        failure("a4", 12, Some("ws-1")),
    ]);
    let rule = rule(
        QUERY,
        "group_by = [\"host.name\"]\nduration = {value = 1, unit = \"h\"}",
    );
    assert_eq!(r.run(&rule, t0()).await.alerts_created, 1);
    // Down for 15 minutes: one run searches three overlapping windows.
    let late = r.run(&rule, t0() + Duration::minutes(15)).await;
    assert_eq!(late.error, None);
    assert_eq!(late.windows.len(), 3, "{late:?}");
    assert_eq!(
        (late.alerts_created, late.alerts_suppressed),
        (0, 3),
        "{late:?}"
    );
    let a = r.sink().alerts(ALERTS).into_values().next().unwrap();
    assert_eq!(a["kibana.alert.suppression.docs_count"], 3);
    assert_eq!(a["kibana.alert.suppression.end"], at(12));
}

#[tokio::test]
async fn missing_fields_are_suppressed_together_or_alert_one_by_one() {
    let docs = || {
        vec![
            failure("n1", -5, None),
            failure("n2", -4, None),
            failure("a1", -3, Some("ws-1")),
        ]
    };
    let r = runner(docs());
    let together = rule(QUERY, "group_by = [\"host.name\"]");
    assert_eq!(r.run(&together, t0()).await.alerts_created, 2);
    assert_eq!(
        groups(&r),
        [
            (Value::Null, 1, at(-5), at(-4)),
            (json!("ws-1"), 0, at(-3), at(-3))
        ]
    );

    let r = runner(docs());
    let apart = rule(
        QUERY,
        "group_by = [\"host.name\"]\nmissing_fields_strategy = \"doNotSuppress\"",
    );
    assert_eq!(r.run(&apart, t0()).await.alerts_created, 3);
    let unsuppressed = r
        .sink()
        .alerts(ALERTS)
        .values()
        .filter(|a| a.get("kibana.alert.suppression.docs_count").is_none())
        .count();
    assert_eq!(unsuppressed, 2);
}

#[tokio::test]
async fn a_threshold_rule_suppresses_by_its_threshold_fields() {
    let r = runner(vec![
        failure("a1", -4, Some("ws-1")),
        failure("a2", -3, Some("ws-1")),
        failure("a3", 2, Some("ws-1")),
        failure("a4", 3, Some("ws-1")),
    ]);
    let rule = rule(
        "type = \"threshold\"\nlanguage = \"kuery\"",
        "duration = {value = 30, unit = \"m\"}\n\n[rule.threshold]\nfield = [\"host.name\"]\nvalue = 2",
    );
    let first = r.run(&rule, t0()).await;
    assert_eq!(first.alerts_created, 1, "{first:?}");
    // The next window counts a3, a4 (a1, a2 are in the threshold history):
    // the group crosses again, and extends the open alert.
    let second = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(second.error, None);
    assert_eq!(
        (second.alerts_created, second.alerts_suppressed),
        (0, 1),
        "{second:?}"
    );
    let a = r.sink().alerts(ALERTS).into_values().next().unwrap();
    assert_eq!(a["kibana.alert.suppression.docs_count"], 1);
    assert_eq!(
        a["kibana.alert.suppression.terms"],
        json!([{"field": "host.name", "value": "ws-1"}])
    );
}

#[test]
fn bad_suppression_settings_are_errors() {
    let bad = |kind: &str, s: &str| match load_str(&format!(
        "[rule]\nrule_id = \"s\"\nname = \"n\"\ndescription = \"d\"\n{kind}\nindex = [\"l\"]\n\
         severity = \"low\"\nrisk_score = 1\nquery = 'a:b'\n\n[rule.alert_suppression]\n{s}"
    )) {
        LoadOutcome::Failed(e) => e
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; "),
        other => panic!("expected errors for {s:?}, got {other:?}"),
    };
    assert!(bad(QUERY, "group_by = []").contains("1 to 3 fields"));
    assert!(bad(QUERY, "group_by = [\"a\", \"b\", \"c\", \"d\"]").contains("1 to 3 fields"));
    assert!(bad(
        QUERY,
        "group_by = [\"a\"]\nduration = {value = 0, unit = \"m\"}"
    )
    .contains("duration"));
    assert!(bad(
        QUERY,
        "group_by = [\"a\"]\nduration = {value = 5, unit = \"d\"}"
    )
    .contains("duration"));
    assert!(bad(
        QUERY,
        "group_by = [\"a\"]\nmissing_fields_strategy = \"skip\""
    )
    .contains("missing_fields_strategy"));
    let threshold = "type = \"threshold\"\nlanguage = \"kuery\"";
    let with_table = |s: &str| format!("{s}\n\n[rule.threshold]\nfield = [\"h\"]\nvalue = 2");
    assert!(bad(
        threshold,
        &with_table("group_by = [\"a\"]\nduration = {value = 5, unit = \"m\"}")
    )
    .contains("threshold fields"));
    assert!(bad(
        threshold,
        &with_table("missing_fields_strategy = \"suppress\"")
    )
    .contains("needs a `duration`"));
}
