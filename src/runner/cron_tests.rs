//! Windows of cron rules: the same checkpoint and catch-up as interval
//! rules, where the quiet time between two fires (a night, a weekend) is
//! caught up by the next run and is not a gap; downtime beyond that is,
//! past the catch-up horizon, as for any rule.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::tests::{attack, load, shells, MemRunner, ALERTS, FOUNDING};
use super::*;
use crate::rule::Rule;
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::state::{Checkpoint, MemoryStateStore};

/// The founding rule (`from = "now-9m"`) on business hours.
fn business_hours() -> Rule {
    let text = FOUNDING.replace("interval = \"5m\"", "cron = \"*/5 9-17 * * MON-FRI\"");
    assert_ne!(text, FOUNDING);
    load(&text)
}

/// 2024-05-03 is a Friday, 2024-05-06 the Monday after.
fn may(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, day, h, m, 0).unwrap()
}

/// A one-hour catch-up horizon: a weekend is far beyond it.
fn runner_at(checkpoint: DateTime<Utc>, rule: &Rule) -> MemRunner {
    let r = Runner::new(
        // the attack is on Saturday night, when the rule does not run
        MemorySource::new(attack("weekend", may(4, 3, 0), Duration::seconds(2))),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings {
            catch_up_horizon: std::time::Duration::from_secs(3600),
            ..RunnerSettings::default()
        },
    );
    r.state().set(Checkpoint {
        threshold_history: Vec::new(),
        rule_id: rule.rule_id.clone(),
        covered_until: checkpoint,
        updated_at: checkpoint,
        pending: None,
    });
    r
}

#[tokio::test]
async fn monday_mornings_run_covers_the_weekend_without_a_gap() {
    let rule = business_hours();
    // Friday 17:55 was the last fire; Monday 09:00 the next
    let r = runner_at(may(3, 17, 55), &rule);
    let now = may(6, 9, 0);
    let rec = r.execute(&rule, now).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.gap, None);
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    // window by window, 5 minutes (the shortest gap between fires) apart
    assert_eq!(rec.windows.len(), (63 * 60 + 5) / 5);
    assert!(rec.windows[0].start <= may(3, 17, 55));
    assert_eq!(rec.windows.last().unwrap().end, now);
    assert_eq!(rec.alerts_created, 3, "Saturday's attack is found");
    let all: Vec<_> = r.sink().alerts(ALERTS).into_values().collect();
    assert_eq!(shells(&all).len(), 1);
    // Kibana's field says how often the rule runs: its shortest gap
    assert!(
        all.iter().all(|a| a["kibana.alert.rule.interval"] == "5m"),
        "{all:?}"
    );
    assert_eq!(r.state().get(&rule.rule_id).unwrap().covered_until, now);
}

#[tokio::test]
async fn downtime_before_the_last_fire_is_still_a_gap_past_the_horizon() {
    let rule = business_hours();
    // the daemon was down all Friday: the checkpoint is Thursday 17:55
    let r = runner_at(may(2, 17, 55), &rule);
    let now = may(6, 9, 0);
    let rec = r.execute(&rule, now).await;
    assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:?}");
    // covered back to the fire before this one (Friday 17:55) plus the
    // one-hour horizon; the rest of the downtime is a gap
    assert_eq!(
        rec.gap,
        Some(WindowRange {
            start: may(2, 17, 55),
            end: may(3, 16, 55),
        })
    );
    assert_eq!(rec.windows[0].end, may(3, 17, 0));
    assert_eq!(rec.alerts_created, 3, "the weekend is still covered");
}

#[tokio::test]
async fn the_same_rule_on_an_interval_calls_the_weekend_a_gap() {
    let rule = load(FOUNDING);
    assert_eq!(rule.schedule.cron, None);
    let r = runner_at(may(3, 17, 55), &rule);
    let rec = r.execute(&rule, may(6, 9, 0)).await;
    assert_eq!(
        rec.gap.map(|g| g.end),
        Some(may(6, 8, 0)),
        "an interval rule that did not run was down"
    );
    assert_eq!(rec.alerts_created, 0);
}
