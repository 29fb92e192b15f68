//! The execution record of one rule run: what it searched, found, wrote and
//! skipped. Written to the executions index and logged as a structured line.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a run's `execution_id` (also the alerts' `kibana.alert.rule.execution.uuid`)
/// is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecutionIds {
    /// A random UUID per run, as Kibana makes them: the daemon.
    #[default]
    Random,
    /// A UUID-shaped hash of the rule id and the run's `now`, so the same
    /// run over the same events gives the same bytes (`hunt`, `test`).
    Derived,
}

impl ExecutionIds {
    /// The execution id of a run of `rule_id` at `now`.
    pub fn make(self, rule_id: &str, now: DateTime<Utc>) -> String {
        match self {
            ExecutionIds::Random => uuid::Uuid::new_v4().to_string(),
            ExecutionIds::Derived => {
                let mut h = Sha256::new();
                h.update(rule_id.as_bytes());
                h.update(now.to_rfc3339().as_bytes());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&h.finalize()[..16]);
                // the hex of the hash's first 16 bytes in UUID groups
                uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
            }
        }
    }
}

/// Kibana's run statuses (`reference/kibana-eql-rules.md` §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    #[serde(rename = "succeeded")]
    Succeeded,
    /// Finished with warnings (alerts capped, missing indices, ...).
    #[serde(rename = "partial failure")]
    PartialFailure,
    /// Did not finish; the checkpoint did not advance.
    #[serde(rename = "failed")]
    Failed,
}

/// A searched window, `[start, end]` inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub rule_id: String,
    pub rule_name: String,
    pub execution_id: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Windows searched, oldest first.
    pub windows: Vec<WindowRange>,
    pub events_fetched: u64,
    /// Fetched events the query could not use: events without a usable
    /// timestamp, which a sequence cannot order (each also a warning).
    #[serde(default)]
    pub events_skipped: u64,
    /// Alert documents created (shells and building blocks alike).
    pub alerts_created: u64,
    /// Alert documents that already existed (found by the id lookup or as
    /// a `create` conflict).
    pub alerts_duplicate: u64,
    /// New alerts not written because of `max_signals` (left for the next
    /// overlapping run), counted as the cap counts them: one per event
    /// alert, one per sequence (its shell; building blocks ride along).
    pub alerts_capped: u64,
    /// Alert documents the sink could not write: those refused as invalid
    /// went to the dead letters (`alerts_dead_lettered`), for the others
    /// the window is searched again.
    pub alerts_failed: u64,
    /// Alert documents the cluster refused as invalid and that were kept as
    /// dead letters instead (`detectd dead-letters replay` writes them).
    #[serde(default)]
    pub alerts_dead_lettered: u64,
    /// Matches that alert suppression folded into another alert (a new
    /// one's `docs_count`, or an open one updated in place).
    #[serde(default)]
    pub alerts_suppressed: u64,
    pub search_duration_ms: u64,
    pub index_duration_ms: u64,
    pub warnings: Vec<String>,
    /// Time not searched (beyond the catch-up horizon), if any.
    pub gap: Option<WindowRange>,
    /// Why the run failed (status `failed`), secrets redacted.
    pub error: Option<String>,
}

impl ExecutionRecord {
    /// A record of a run that has done nothing yet: status `succeeded`, all
    /// counts zero, finished when it started.
    pub fn started(
        rule_id: &str,
        rule_name: &str,
        execution_id: String,
        started_at: DateTime<Utc>,
    ) -> Self {
        ExecutionRecord {
            rule_id: rule_id.to_string(),
            rule_name: rule_name.to_string(),
            execution_id,
            status: RunStatus::Succeeded,
            started_at,
            finished_at: started_at,
            windows: Vec::new(),
            events_fetched: 0,
            events_skipped: 0,
            alerts_created: 0,
            alerts_duplicate: 0,
            alerts_capped: 0,
            alerts_failed: 0,
            alerts_dead_lettered: 0,
            alerts_suppressed: 0,
            search_duration_ms: 0,
            index_duration_ms: 0,
            warnings: Vec::new(),
            gap: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_per_rule_and_time_and_random_ones_are_not() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = t("2024-05-01T10:00:00Z");
        let a = ExecutionIds::Derived.make("r1", now);
        assert_eq!(a, ExecutionIds::Derived.make("r1", now));
        assert_ne!(a, ExecutionIds::Derived.make("r2", now));
        assert_ne!(
            a,
            ExecutionIds::Derived.make("r1", t("2024-05-01T10:00:01Z"))
        );
        assert_eq!(
            uuid::Uuid::parse_str(&a).unwrap().hyphenated().to_string(),
            a
        );
        assert_ne!(
            ExecutionIds::Random.make("r1", now),
            ExecutionIds::Random.make("r1", now)
        );
    }
}
