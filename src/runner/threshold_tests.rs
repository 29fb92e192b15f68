//! Threshold rules run over memory, with hand-counted expectations: a
//! group alerts at exactly `value` events and not one below, several
//! fields, cardinality, events missing a field, catch-up over three
//! intervals (one alert each), and overlapping windows that never count an
//! event twice. The same against a cluster: `integration-tests/tests/threshold.rs`.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::schedule::window::Window;
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::{Checkpoint, MemoryStateStore, StateStore};

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    (t0() + Duration::minutes(minute)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Failed logons, `from = now-9m` every 5m (the corpus' usual schedule).
fn threshold_rule(threshold: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"t-1\"\nname = \"Many failures\"\ndescription = \"d\"\n\
         type = \"threshold\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"medium\"\nrisk_score = 47\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         query = 'event.outcome:failure'\n\n[rule.threshold]\n{threshold}"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn logon(id: &str, minute: i64, user: Option<&str>, host: &str, outcome: &str) -> Document {
    let mut source = json!({
        "@timestamp": at(minute),
        "event": {"category": ["authentication"], "outcome": outcome},
        "host": {"name": host},
        "source": {"ip": "10.0.0.1"},
    });
    if let Some(user) = user {
        source["user"] = json!({"name": user});
    }
    Document {
        index: "logs-auth".into(),
        id: id.into(),
        source,
    }
}

fn failure(id: &str, minute: i64, user: &str) -> Document {
    logon(id, minute, Some(user), "ws-1", "failure")
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

/// The alerts, oldest last counted event first.
fn alerts<S: crate::source::EventSource>(
    r: &Runner<S, MemorySink, MemoryStateStore>,
) -> Vec<Value> {
    let mut all: Vec<Value> = r.sink().alerts(ALERTS).into_values().collect();
    all.sort_by_key(|a| a["kibana.alert.original_time"].as_str().map(String::from));
    all
}

fn result(a: &Value) -> &Value {
    &a["kibana.alert.threshold_result"]
}

#[tokio::test]
async fn a_group_alerts_at_exactly_the_value_and_not_one_below() {
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 3\n");
    let r = runner(vec![
        failure("a1", 1, "admin"),
        failure("a2", 2, "admin"),
        failure("a3", 3, "admin"),
        failure("b1", 1, "alice"),
        failure("b2", 2, "alice"),
        // not a failure: not counted
        logon("b3", 3, Some("alice"), "ws-1", "success"),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.alerts_created, 1, "{run:?}");
    let all = alerts(&r);
    let a = &all[0];
    assert_eq!(
        result(a),
        &json!({"count": 3, "from": at(1), "terms": [{"field": "user.name", "value": "admin"}]})
    );
    assert_eq!(a["kibana.alert.original_time"], json!(at(3)));
    assert_eq!(a["user.name"], json!("admin"));
    assert_eq!(
        a["kibana.alert.rule.rule_type_id"],
        json!("siem.thresholdRule")
    );
    assert_eq!(a["kibana.alert.rule.category"], json!("Threshold Rule"));
    assert_eq!(a["kibana.alert.rule.type"], json!("threshold"));
    assert_eq!(
        a["kibana.alert.rule.parameters"]["threshold"],
        json!({"field": ["user.name"], "value": 3})
    );
    // Kibana's common reason over the made-up hit: its terms are fields
    assert_eq!(
        a["kibana.alert.reason"],
        json!("event by admin created medium alert Many failures.")
    );
    // The made-up hit is the alert's only ancestor, in the rule's indices.
    assert_eq!(a["kibana.alert.ancestors"][0]["index"], json!("logs-*"));
}

#[tokio::test]
async fn several_fields_group_by_every_value() {
    let rule = threshold_rule("field = [\"user.name\", \"host.name\"]\nvalue = 2\n");
    let r = runner(vec![
        logon("a1", 1, Some("admin"), "ws-1", "failure"),
        logon("a2", 2, Some("admin"), "ws-1", "failure"),
        logon("a3", 3, Some("admin"), "ws-2", "failure"),
        logon("b1", 3, Some("alice"), "ws-2", "failure"),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.alerts_created, 1, "{run:?}");
    let all = alerts(&r);
    assert_eq!(
        result(&all[0])["terms"],
        json!([{"field": "user.name", "value": "admin"}, {"field": "host.name", "value": "ws-1"}])
    );
    assert_eq!(result(&all[0])["count"], json!(2));
    assert_eq!(
        all[0]["kibana.alert.reason"],
        json!("event by admin on ws-1 created medium alert Many failures.")
    );
}

#[tokio::test]
async fn cardinality_must_reach_its_value_too() {
    let rule = threshold_rule(
        "field = [\"host.name\"]\nvalue = 3\n\n[[rule.threshold.cardinality]]\n\
         field = \"user.name\"\nvalue = 3\n",
    );
    let r = runner(vec![
        // ws-1: 3 events, 3 users -> alerts
        logon("a1", 1, Some("u1"), "ws-1", "failure"),
        logon("a2", 2, Some("u2"), "ws-1", "failure"),
        logon("a3", 3, Some("u3"), "ws-1", "failure"),
        // ws-2: 4 events, 2 users -> no alert
        logon("b1", 1, Some("u1"), "ws-2", "failure"),
        logon("b2", 2, Some("u1"), "ws-2", "failure"),
        logon("b3", 3, Some("u2"), "ws-2", "failure"),
        logon("b4", 4, Some("u2"), "ws-2", "failure"),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.alerts_created, 1, "{run:?}");
    let all = alerts(&r);
    assert_eq!(
        result(&all[0]),
        &json!({
            "cardinality": [{"field": "user.name", "value": 3}],
            "count": 3,
            "from": at(1),
            "terms": [{"field": "host.name", "value": "ws-1"}],
        })
    );
}

#[tokio::test]
async fn events_missing_a_field_are_in_no_group() {
    // Kibana's composite aggregation has no `missing_bucket`: 2 events with
    // a user and 2 without do not make 3.
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 3\n");
    let r = runner(vec![
        failure("a1", 1, "admin"),
        failure("a2", 2, "admin"),
        logon("n1", 3, None, "ws-1", "failure"),
        logon("n2", 4, None, "ws-1", "failure"),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!((run.alerts_created, run.events_skipped), (0, 2), "{run:?}");
}

#[tokio::test]
async fn no_field_is_one_group_of_every_event() {
    let rule = threshold_rule("value = 4\n");
    let r = runner(vec![
        failure("a1", 1, "admin"),
        failure("a2", 2, "alice"),
        logon("n1", 3, None, "ws-1", "failure"),
        failure("a3", 4, "bob"),
    ]);
    let run = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(run.alerts_created, 1, "{run:?}");
    let all = alerts(&r);
    assert_eq!(
        result(&all[0]),
        &json!({"count": 4, "from": at(1), "terms": []})
    );
}

#[tokio::test]
async fn catch_up_evaluates_every_interval_and_counts_each_event_once() {
    // Checkpoint at t0, run at t0+15m: windows end at +5, +10, +15, each
    // 9 minutes wide, so each overlaps the one before by 4 minutes. Three
    // failures of admin in each interval: three alerts of 3 events, not
    // 3, 6 and 6 (events counted again) nor one (windows skipped, as
    // Kibana does when late, kibana#285154).
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 3\n");
    let docs: Vec<Document> = [1, 2, 3, 6, 7, 8, 11, 12, 13]
        .iter()
        .map(|m| failure(&format!("e{m}"), *m, "admin"))
        .collect();
    let r = runner(docs);
    r.state().set(Checkpoint {
        rule_id: "t-1".into(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
        threshold_history: Vec::new(),
    });
    let run = r.execute(&rule, t0() + Duration::minutes(15)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.windows.len(), 3, "{run:?}");
    assert_eq!(run.alerts_created, 3, "{run:?}");
    let all = alerts(&r);
    let seen: Vec<(Value, Value, Value)> = all
        .iter()
        .map(|a| {
            (
                result(a)["count"].clone(),
                result(a)["from"].clone(),
                a["kibana.alert.original_time"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!(3), json!(at(1)), json!(at(3))),
            (json!(3), json!(at(6)), json!(at(8))),
            (json!(3), json!(at(11)), json!(at(13))),
        ]
    );
    // Three different ids: one per window.
    let ids: std::collections::HashSet<_> = r.sink().alerts(ALERTS).into_keys().collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn overlapping_windows_do_not_alert_the_same_events_again() {
    // Run at +5 (window -4..+5): admin's failures at 1, 2, 3 alert. Run at
    // +10 (window +1..+10) holds them again plus 7 and 8: 5 events, but
    // only 7 and 8 are after the alerted ones: 2 < 3, no alert. One more at
    // +12: the run at +15 (window +6..+15) counts 7, 8, 12 and alerts.
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 3\n");
    let r = runner(
        [1, 2, 3, 7, 8, 12]
            .iter()
            .map(|m| failure(&format!("e{m}"), *m, "admin"))
            .collect(),
    );
    let first = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(first.alerts_created, 1, "{first:?}");
    let checkpoint = r.state().checkpoint("t-1").await.unwrap().unwrap();
    assert_eq!(checkpoint.threshold_history.len(), 1);
    assert_eq!(
        checkpoint.threshold_history[0].last,
        (t0() + Duration::minutes(3)).timestamp_millis()
    );
    let second = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!(
        (second.alerts_created, second.alerts_duplicate),
        (0, 0),
        "{second:?}"
    );
    let third = r.execute(&rule, t0() + Duration::minutes(15)).await;
    assert_eq!(third.alerts_created, 1, "{third:?}");
    let all = alerts(&r);
    assert_eq!(result(&all[1])["count"], json!(3));
    assert_eq!(result(&all[1])["from"], json!(at(7)));
    // Entries older than the last window's start (+6) are dropped.
    let checkpoint = r.state().checkpoint("t-1").await.unwrap().unwrap();
    assert_eq!(
        checkpoint.threshold_history[0].last,
        (t0() + Duration::minutes(12)).timestamp_millis()
    );
}

#[tokio::test]
async fn the_same_window_searched_again_makes_the_same_alert() {
    // A range run (`hunt`) twice over the same range: the ids hash the
    // window, not the run, so the second run only finds duplicates.
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 2\n");
    let r = runner(vec![failure("a1", 1, "admin"), failure("a2", 2, "admin")]);
    let window = Window {
        start: t0(),
        end: t0() + Duration::minutes(10),
    };
    let one = r
        .run_range(&rule, window, t0() + Duration::minutes(20))
        .await;
    let two = r
        .run_range(&rule, window, t0() + Duration::minutes(30))
        .await;
    assert_eq!(one.alerts_created, 1, "{one:?}");
    assert_eq!(
        (two.alerts_created, two.alerts_duplicate),
        (0, 1),
        "{two:?}"
    );
}

#[tokio::test]
async fn a_hunt_counts_in_the_schedules_windows_not_over_all_time() {
    // Over all time admin has 9 failures; in any 9-minute window only the
    // two bursts (0, 1, 2 and 100, 101, 102) reach 3: two alerts, as the
    // scheduled rule would have made, not one alert of 9.
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 3\n");
    let r = runner(
        [0, 1, 2, 20, 40, 60, 100, 101, 102]
            .iter()
            .map(|m| failure(&format!("e{m}"), *m, "admin"))
            .collect(),
    );
    let run = r
        .run_range(&rule, Window::ALL, t0() + Duration::hours(5))
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.alerts_created, 2, "{run:?}");
    let got: Vec<(Value, Value)> = alerts(&r)
        .iter()
        .map(|a| (result(a)["count"].clone(), result(a)["from"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![(json!(3), json!(at(0))), (json!(3), json!(at(100)))]
    );
}

/// A source that says it aggregates: every group it is asked for comes
/// back with a count of 1000 (so an alert shows where the count came
/// from), and it remembers how many exclusions it was asked with.
struct Aggregating {
    inner: MemorySource,
    asked: std::sync::Mutex<Vec<usize>>,
}

impl crate::source::EventSource for Aggregating {
    async fn fetch(
        &self,
        request: crate::source::FetchRequest,
    ) -> Result<crate::source::EventStream, crate::source::SourceError> {
        self.inner.fetch(request).await
    }

    async fn fetch_sources(
        &self,
        refs: &[crate::source::DocRef],
    ) -> Result<Vec<Document>, crate::source::SourceError> {
        self.inner.fetch_sources(refs).await
    }

    async fn count_groups(
        &self,
        _request: &crate::source::FetchRequest,
        count: &crate::source::GroupCount,
    ) -> Result<Option<crate::source::Groups>, crate::source::SourceError> {
        self.asked.lock().unwrap().push(count.exclude.len());
        Ok(Some(crate::source::Groups {
            groups: vec![crate::source::Group {
                terms: vec![("user.name".into(), json!("admin"))],
                count: 1000,
                min_ts: Some((t0() + Duration::minutes(1)).timestamp_millis()),
                max_ts: Some((t0() + Duration::minutes(2)).timestamp_millis()),
                distinct: None,
            }],
            warnings: Vec::new(),
        }))
    }
}

#[tokio::test]
async fn a_source_that_aggregates_counts_unless_the_history_is_too_long() {
    let rule = threshold_rule("field = [\"user.name\"]\nvalue = 3\n");
    let docs = vec![
        failure("a1", 6, "admin"),
        failure("a2", 7, "admin"),
        failure("a3", 8, "admin"),
    ];
    let r = Runner::new(
        Aggregating {
            inner: MemorySource::new(docs),
            asked: Default::default(),
        },
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let history = |n: usize| -> Vec<crate::state::ThresholdMark> {
        (0..n)
            .map(|i| crate::state::ThresholdMark {
                key: format!("k{i}"),
                terms: vec![crate::state::ThresholdTerm {
                    field: "user.name".into(),
                    value: format!("\"u{i}\""),
                }],
                last: (t0() + Duration::minutes(4)).timestamp_millis(),
            })
            .collect()
    };
    let checkpoint = |n: usize| Checkpoint {
        rule_id: "t-1".into(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
        threshold_history: history(n),
    };
    // 1,000 alerted groups: still asked of the source, which counts 1000
    r.state().set(checkpoint(1000));
    let one = r.execute(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!((one.alerts_created, one.events_fetched), (1, 0), "{one:?}");
    // 1,001: counted from the events instead (3 of them)
    r.state().set(checkpoint(1001));
    let two = r.execute(&rule, t0() + Duration::minutes(10)).await;
    assert_eq!((two.alerts_created, two.events_fetched), (1, 3), "{two:?}");
    assert_eq!(*r.source().asked.lock().unwrap(), vec![1000]);
    let counts: Vec<Value> = alerts(&r)
        .iter()
        .map(|a| result(a)["count"].clone())
        .collect();
    assert_eq!(counts, vec![json!(1000), json!(3)]);
}
