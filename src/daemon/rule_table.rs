//! The scheduled rules as `GET /rules` lists them and the start-up lines
//! announce them: each rule's next run, whether it is running, its last
//! run (when, status, duration, events, alerts) and its last error.
//!
//! The scheduler writes next runs (when a rule is scheduled and after each
//! run), the daemon's run wrapper writes starts and finishes. Nothing here
//! decides when a rule runs: that is the scheduler's grid; this only keeps
//! what it decided, in wall-clock time, for people to read.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::log::status_text;
use crate::rule::Rule;
use crate::runner::{ExecutionRecord, RunStatus};

/// One scheduled rule, as `/rules` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleRow {
    pub rule_id: String,
    pub name: String,
    /// The rule's `interval`, as `5m`, `90s`, `1h` (a cron rule's shortest
    /// gap between fires).
    pub interval: String,
    /// A cron rule's schedule (`*/5 9-17 * * MON-FRI Europe/Berlin`): it
    /// runs at these times rather than every `interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `scheduled` (not run yet), `running`, or the last run's status
    /// (`succeeded`, `partial failure`, `failed`).
    pub status: String,
    /// When the next run is due; `None` while a run is going (the next one
    /// is planned when it ends).
    #[serde(serialize_with = "opt_time")]
    pub next_run: Option<DateTime<Utc>>,
    #[serde(serialize_with = "opt_time")]
    pub running_since: Option<DateTime<Utc>>,
    pub last_run: Option<LastRun>,
    /// The most recent failed run, kept after later runs succeed so a
    /// flapping rule is visible.
    pub last_error: Option<LastError>,
}

/// The last finished run of a rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastRun {
    #[serde(serialize_with = "time")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "time")]
    pub finished_at: DateTime<Utc>,
    pub status: String,
    pub duration_ms: u64,
    pub events_fetched: u64,
    pub alerts_created: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastError {
    #[serde(serialize_with = "time")]
    pub at: DateTime<Utc>,
    pub error: String,
}

/// Every scheduled rule by `rule_id`.
#[derive(Debug, Default)]
pub struct RuleTable {
    rows: Mutex<BTreeMap<String, RuleRow>>,
}

impl RuleTable {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, RuleRow>) -> T) -> T {
        f(&mut self.rows.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A rule is scheduled (at start, or added or changed by a reload) with
    /// its first run at `next_run`. A changed rule keeps its history.
    pub fn schedule(&self, rule: &Rule, next_run: DateTime<Utc>) {
        self.with(|rows| {
            let row = rows
                .entry(rule.rule_id.clone())
                .or_insert_with(|| new_row(rule));
            row.name = rule.name.clone();
            row.interval = duration_text(rule.schedule.interval);
            row.cron = cron_text(rule);
            row.next_run = Some(next_run);
        });
    }

    /// The rule's next run, planned after a run ended.
    pub fn set_next_run(&self, rule_id: &str, next_run: DateTime<Utc>) {
        self.with(|rows| {
            if let Some(row) = rows.get_mut(rule_id) {
                row.next_run = Some(next_run);
            }
        });
    }

    /// A run started at `at` (wall time).
    pub fn started(&self, rule: &Rule, at: DateTime<Utc>) {
        self.with(|rows| {
            let row = rows
                .entry(rule.rule_id.clone())
                .or_insert_with(|| new_row(rule));
            row.status = "running".to_string();
            row.running_since = Some(at);
            row.next_run = None;
        });
    }

    /// A run ended with `record`, after `took` as the daemon measured it.
    pub fn finished(&self, record: &ExecutionRecord, took: Duration) {
        self.with(|rows| {
            let Some(row) = rows.get_mut(&record.rule_id) else {
                return;
            };
            let status = status_text(record.status).to_string();
            row.status = status.clone();
            row.running_since = None;
            row.last_run = Some(LastRun {
                started_at: record.started_at,
                finished_at: record.finished_at,
                status,
                duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                events_fetched: record.events_fetched,
                alerts_created: record.alerts_created,
                error: record.error.clone(),
            });
            if record.status == RunStatus::Failed {
                row.last_error = Some(LastError {
                    at: record.finished_at,
                    error: record.error.clone().unwrap_or_else(|| "failed".into()),
                });
            }
        });
    }

    /// A rule that is no longer loaded.
    pub fn forget(&self, rule_id: &str) {
        self.with(|rows| rows.remove(rule_id));
    }

    /// Every rule, the soonest next run first (running rules last), then
    /// by `rule_id`.
    pub fn rows(&self) -> Vec<RuleRow> {
        let mut rows: Vec<RuleRow> = self.with(|rows| rows.values().cloned().collect());
        rows.sort_by(|a, b| {
            let key = |r: &RuleRow| (r.next_run.is_none(), r.next_run);
            key(a).cmp(&key(b)).then_with(|| a.rule_id.cmp(&b.rule_id))
        });
        rows
    }

    pub fn len(&self) -> usize {
        self.with(|rows| rows.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON body of `/rules`.
    pub fn report(&self) -> Value {
        let rows = self.rows();
        json!({ "count": rows.len(), "rules": rows })
    }
}

fn new_row(rule: &Rule) -> RuleRow {
    RuleRow {
        rule_id: rule.rule_id.clone(),
        name: rule.name.clone(),
        interval: duration_text(rule.schedule.interval),
        cron: cron_text(rule),
        status: "scheduled".to_string(),
        next_run: None,
        running_since: None,
        last_run: None,
        last_error: None,
    }
}

fn cron_text(rule: &Rule) -> Option<String> {
    rule.schedule.cron.as_ref().map(|c| c.to_string())
}

/// `5m`, `90s`, `1h`, `1d`, `1500ms`: the largest unit that divides it, as
/// rule files write intervals.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// How long until a run, for people: `2m13s`, `45s`, `1h5m`, `now`.
pub fn until_text(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds();
    if s <= 0 {
        return "now".to_string();
    }
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 && h == 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// RFC 3339 with milliseconds, as the rest of detectd's JSON writes times.
pub fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time_text(t))
}

fn opt_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&time_text(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_rule_files_write_them() {
        let s = Duration::from_secs;
        assert_eq!(duration_text(s(300)), "5m");
        assert_eq!(duration_text(s(90)), "90s");
        assert_eq!(duration_text(s(3600)), "1h");
        assert_eq!(duration_text(s(86_400)), "1d");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        let d = chrono::TimeDelta::seconds;
        assert_eq!(until_text(d(133)), "2m13s");
        assert_eq!(until_text(d(45)), "45s");
        assert_eq!(until_text(d(3900)), "1h5m");
        assert_eq!(until_text(d(0)), "now");
    }
}
