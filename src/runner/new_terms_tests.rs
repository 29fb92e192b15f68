//! New-terms rules run over memory (the local detector), with hand-made
//! expectations: a tuple in the history does not alert, one absent from
//! it alerts on its first document in the window; the boundaries (a
//! document exactly at the history start is history, a tuple whose first
//! document is exactly at the window's start is not new, as Kibana's
//! `first_seen > from`); several fields with arrays; the next, overlapping
//! window makes the same ids (duplicates, nothing new); a range run over
//! all time keeps the first history length as history. The same against a
//! cluster, pushed down and local: `integration-tests/tests/new_terms.rs`.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::schedule::window::Window;
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

/// Every 5m over `now-9m`, history from `now-1h`.
fn new_terms_rule(fields: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"n-1\"\nname = \"New process\"\ndescription = \"d\"\n\
         type = \"new_terms\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"medium\"\nrisk_score = 47\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         query = 'event.category:process'\n\n[rule.new_terms]\nfield = \"new_terms_fields\"\n\
         value = {fields}\n\n[[rule.new_terms.history_window_start]]\n\
         field = \"history_window_start\"\nvalue = \"now-1h\"\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn process(id: &str, minute: i64, name: Option<&str>) -> Document {
    let mut source = json!({
        "@timestamp": at(minute),
        "event": {"category": ["process"]},
        "host": {"id": "h1", "name": "ws-1"},
    });
    if let Some(name) = name {
        source["process"] = json!({"name": name});
    }
    Document {
        index: "logs-proc".into(),
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
}

/// (new terms, source event id) of every alert, oldest first.
fn alerted(r: &MemRunner) -> Vec<(Value, String)> {
    let mut all: Vec<Value> = r.sink().alerts(ALERTS).into_values().collect();
    all.sort_by_key(|a| a["kibana.alert.original_time"].as_str().map(String::from));
    all.iter()
        .map(|a| {
            (
                a["kibana.alert.new_terms"].clone(),
                a["kibana.alert.ancestors"][0]["id"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
        })
        .collect()
}

/// The run at minute 60: window [51, 60], history [0, 51].
fn boundary_docs() -> Vec<Document> {
    vec![
        // in the history and the window: not new
        process("old-h", 10, Some("old")),
        process("old-w", 55, Some("old")),
        // only in the window: alerts on its first document
        process("new-1", 53, Some("new")),
        process("new-2", 57, Some("new")),
        // exactly at the history start: history
        process("edge-h", 0, Some("edge")),
        process("edge-w", 56, Some("edge")),
        // before the history start: not history
        process("gone-h", -1, Some("gone")),
        process("gone-w", 58, Some("gone")),
        // first seen exactly at the window's start: not new (Kibana keeps
        // `first_seen > from`), not even with a later document
        process("start-1", 51, Some("start")),
        process("start-2", 54, Some("start")),
        // exactly at the window's end: in the window
        process("end-1", 60, Some("end")),
        // no process.name: no tuple
        process("none", 55, None),
        // not a process event
        Document {
            index: "logs-proc".into(),
            id: "net".into(),
            source: json!({"@timestamp": at(55), "event": {"category": ["network"]},
                           "process": {"name": "net"}}),
        },
    ]
}

#[tokio::test]
async fn history_absent_alerts_on_the_first_window_document_and_boundaries_hold() {
    let rule = new_terms_rule("[\"process.name\"]");
    let r = runner(boundary_docs());
    let run = r.execute(&rule, t0() + Duration::minutes(60)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        alerted(&r),
        [
            (json!(["new"]), "new-1".to_string()),
            (json!(["gone"]), "gone-w".to_string()),
            (json!(["end"]), "end-1".to_string()),
        ]
    );
    let all: Vec<Value> = r.sink().alerts(ALERTS).into_values().collect();
    let a = all
        .iter()
        .find(|a| a["kibana.alert.new_terms"] == json!(["new"]))
        .unwrap();
    assert_eq!(
        a["kibana.alert.rule.rule_type_id"],
        json!("siem.newTermsRule")
    );
    assert_eq!(a["kibana.alert.rule.category"], json!("New Terms Rule"));
    assert_eq!(a["kibana.alert.rule.producer"], json!("siem"));
    assert_eq!(a["kibana.alert.rule.type"], json!("new_terms"));
    assert_eq!(a["kibana.alert.original_time"], json!(at(53)));
    assert_eq!(
        a["kibana.alert.rule.parameters"]["new_terms_fields"],
        json!(["process.name"])
    );
    assert_eq!(
        a["kibana.alert.rule.parameters"]["history_window_start"],
        json!("now-1h")
    );
    assert_eq!(
        a["kibana.alert.rule.parameters"]["language"],
        json!("kuery")
    );
    assert_eq!(a["process"]["name"], json!("new"));
    let id = crate::alert::new_terms::new_terms_alert_id(
        "logs-proc",
        "new-1",
        &[json!("new")],
        "default",
        &rule.rule_id,
    );
    assert_eq!(a["kibana.alert.uuid"], json!(id));
}

#[tokio::test]
async fn the_next_overlapping_window_repeats_ids_and_finds_nothing_new() {
    let rule = new_terms_rule("[\"process.name\"]");
    let r = runner(boundary_docs());
    let first = r.execute(&rule, t0() + Duration::minutes(60)).await;
    assert_eq!(first.alerts_created, 3, "{first:?}");
    // window [56, 65], history [5, 56]: `new` (53) is history now; `gone`
    // (58) and `end` (60) have the same first document, so the same ids
    let second = r.execute(&rule, t0() + Duration::minutes(65)).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(second.alerts_created, 0, "{second:?}");
    assert_eq!(second.alerts_duplicate, 2, "{second:?}");
    assert_eq!(r.sink().alerts(ALERTS).len(), 3);
}

#[tokio::test]
async fn several_fields_take_every_combination_of_array_values() {
    let rule = new_terms_rule("[\"host.id\", \"user.name\"]");
    let doc = |id: &str, minute: i64, host: Option<&str>, users: Value| Document {
        index: "logs-proc".into(),
        id: id.into(),
        source: json!({"@timestamp": at(minute), "event": {"category": "process"},
                       "host": {"id": host}, "user": {"name": users}}),
    };
    let r = runner(vec![
        doc("hist", 20, Some("h1"), json!(["a", "b"])),
        // (h1, b) is history; (h1, c) is new
        doc("w1", 55, Some("h1"), json!(["b", "c"])),
        // (h1, c) again: not its first document
        doc("w2", 56, Some("h1"), json!("c")),
        // (h2, a) is new: a is history only with h1
        doc("w3", 57, Some("h2"), json!("a")),
        // no host: no tuple
        doc("w4", 58, None, json!("z")),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(60)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        alerted(&r),
        [
            (json!(["h1", "c"]), "w1".to_string()),
            (json!(["h2", "a"]), "w3".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_range_run_over_all_time_keeps_the_first_history_length_as_history() {
    let rule = new_terms_rule("[\"process.name\"]");
    // events from minute 0 to 130: windows end every 5m back from 130
    // down to 60 (the first hour is history only)
    let r = runner(vec![
        process("a0", 0, Some("a")),
        process("a10", 10, Some("a")),
        process("b30", 30, Some("b")),
        // `a` was seen at 0 and 10: history of the windows ending at 60
        // (from 0) and at 65 (from 5), the two that hold 58
        process("a58", 58, Some("a")),
        // `c` first seen here: new in the window (91, 100]
        process("c95", 95, Some("c")),
        process("c99", 99, Some("c")),
        // `b` last seen at 30, more than an hour before: new again
        process("b125", 125, Some("b")),
        process("z130", 130, Some("z")),
    ]);
    let run = r
        .run_range(&rule, Window::ALL, t0() + Duration::days(1))
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        alerted(&r),
        [
            (json!(["c"]), "c95".to_string()),
            (json!(["b"]), "b125".to_string()),
            (json!(["z"]), "z130".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_range_run_shorter_than_the_history_finds_nothing_and_says_why() {
    let rule = new_terms_rule("[\"process.name\"]");
    let r = runner(vec![
        process("a", 0, Some("a")),
        process("b", 30, Some("b")),
    ]);
    let run = r
        .run_range(&rule, Window::ALL, t0() + Duration::days(1))
        .await;
    // a warning: the run could not look at anything
    assert_eq!(run.status, RunStatus::PartialFailure, "{run:?}");
    assert_eq!(run.alerts_created, 0);
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("span less than history_window_start (now-1h)")),
        "{:?}",
        run.warnings
    );
}

/// With `timestamp_override` and the `@timestamp` fallback, events without
/// the override come last from the source (sorted by it, missing last):
/// the walk sees one out of order, starts again over the sorted events,
/// and the history seen by its fallback time still counts.
#[tokio::test]
async fn events_on_the_fallback_time_out_of_order_still_count_as_history() {
    let mut rule = new_terms_rule("[\"process.name\"]");
    rule.timestamp_override = Some("event.ingested".into());
    let ingested = |id: &str, minute: i64, name: &str| {
        let mut d = process(id, minute, Some(name));
        d.source["event"]["ingested"] = json!(at(minute));
        d
    };
    let r = runner(vec![
        // history on @timestamp only (no event.ingested)
        process("old-h", 10, Some("old")),
        ingested("old-w", 55, "old"),
        ingested("new-w", 56, "new"),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(60)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(alerted(&r), [(json!(["new"]), "new-w".to_string())]);
}
