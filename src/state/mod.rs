//! Per-rule checkpoints and execution records: what a rule run must find
//! again after a restart.
//!
//! A [`Checkpoint`] is the end of the last window whose alerts were all
//! acknowledged by the sink (`covered_until`); the next run searches from
//! there (see `schedule::window`). Sequences that straddle a run boundary
//! need no state of their own: each window reaches back by the sequence's
//! `maxspan` (see `runner`), so the checkpoint is all there is. Its
//! `pending` part says which matches a capped window chose while its
//! alerts are being written, so that a window searched again after a crash
//! writes the same ones.
//!
//! Alerts the cluster refused are kept here too, as [`DeadLetter`]s, so
//! that no alert is ever dropped (see `dead_letter`).
//!
//! Three stores: the cluster (detectd's state and executions indices, for
//! the daemon), a local directory (for `hunt` and users who cannot write to
//! the cluster) and memory (tests). Every write is durable before it
//! returns: `refresh=wait_for` on the cluster, write-temp-then-rename with
//! fsync for files.

pub mod backend;
pub mod cluster;
pub mod dead_letter;
pub mod file;
#[cfg(test)]
mod file_tests;
pub mod lease;
pub mod memory;
pub mod outbox;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runner::ExecutionRecord;

pub use backend::AnyStateStore;
pub use cluster::ClusterStateStore;
pub use dead_letter::DeadLetter;
pub use file::FileStateStore;
pub use lease::{LeaseDoc, LeaseOutcome, LeaseWrite, StoredLease, Versioned};
pub use memory::MemoryStateStore;
pub use outbox::{OutboxEntry, OutboxStatus, ThrottleMark, OUTBOX_RETENTION};

/// Where a rule stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub rule_id: String,
    /// End of the last window whose alerts were all acknowledged. Stored as
    /// `checkpoint` (the date field of the state index template).
    #[serde(rename = "checkpoint")]
    pub covered_until: DateTime<Utc>,
    /// When the checkpoint was written (the run's clock).
    pub updated_at: DateTime<Utc>,
    /// A capped window after `covered_until` whose alerts are being
    /// written: saved just before its bulk write, cleared by its checkpoint.
    /// If the run dies in between, the next run searches that window again
    /// and writes what this attempt chose, not `max_signals` more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingWindow>,
    /// A threshold rule's alerted groups: for each, the time of the last
    /// event an alert counted (Kibana's signal history,
    /// `rule_types/threshold/get_threshold_signal_history.ts`). Later
    /// windows count only a group's events after it, so overlapping
    /// windows never alert the same events twice. Saved with
    /// `covered_until`, in the same write: the two cannot disagree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threshold_history: Vec<ThresholdMark>,
}

/// One alerted group of a threshold rule (see
/// [`Checkpoint::threshold_history`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdMark {
    /// SHA-256 of the group's terms (field and value, in field order).
    pub key: String,
    /// The group's terms: a search excludes the group's counted events by
    /// them (Kibana's history keeps them for the same reason).
    pub terms: Vec<ThresholdTerm>,
    /// Epoch milliseconds of the last event the group's alert counted.
    pub last: i64,
}

/// One field of a group. The value is kept as JSON text: a string in every
/// state document whatever the field's type, so a dynamically mapped state
/// index never sees one field with two types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdTerm {
    pub field: String,
    pub value: String,
}

/// What a rule's near-real-time tails alerted in one interval of the rule
/// (`runner::run::tail::TailBudgets`), kept with the state so that an
/// instance taking the rule over in the middle of an interval goes on from
/// it rather than from nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailSpend {
    pub rule_id: String,
    /// The interval: its number on the wall clock's grid of the rule's
    /// interval.
    pub slot: i64,
    /// New matches the tails alerted in it.
    pub alerted: u64,
}

/// A window whose matches `max_signals` cut, written but not committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWindow {
    pub window_end: DateTime<Utc>,
    /// The first match the cap left out.
    pub cap_cut: CapCut,
}

/// A match's place in the order `max_signals` follows, oldest first: the
/// time of its last event, then, for ties, the id of its head alert (the
/// event alert, or the shell), so a window searched again orders its
/// matches the same way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CapCut {
    /// Epoch milliseconds of the match's last event.
    pub last_event_ms: i64,
    pub alert_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("state file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("stored state for rule `{rule_id}`: expected a checkpoint document, found {found}")]
    BadDocument { rule_id: String, found: String },
    #[error("this state store keeps no notification outbox")]
    NoOutbox,
    #[error("this state store keeps no tail budgets")]
    NoTailSpend,
    #[error("lease of rule `{rule_id}` lost, checkpoint not written: {why}")]
    LeaseLost { rule_id: String, why: String },
}

/// Writes a rule's checkpoint under its lease, when several instances
/// share the cluster state (`coord` implements it): the store hands every
/// checkpoint to it instead of writing it unconditionally.
pub trait CheckpointFence: Send + Sync + std::fmt::Debug {
    /// Writes `checkpoint` with `store` (unfenced) only while this
    /// instance holds the rule's lease.
    fn save<'a>(
        &'a self,
        store: &'a ClusterStateStore,
        checkpoint: &'a Checkpoint,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), StateError>> + Send + 'a>>;
}

/// Checkpoints and execution records of rule runs.
pub trait StateStore: Send + Sync {
    /// The rule's checkpoint, `None` before its first acknowledged window.
    fn checkpoint(
        &self,
        rule_id: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StateError>> + Send;

    /// Stores the checkpoint; durable when this returns `Ok`.
    fn save_checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Appends one run's record.
    fn record_execution(
        &self,
        record: &ExecutionRecord,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Keeps refused alerts, one per alert id (the same id again replaces
    /// the earlier one); durable when this returns `Ok`.
    fn save_dead_letters(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Every dead letter, oldest refusal first.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<DeadLetter>, StateError>> + Send;

    /// Drops the dead letters of these alert ids (written since); unknown
    /// ids are ignored.
    fn remove_dead_letters(
        &self,
        alert_ids: &[String],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    // The notification outbox (see `outbox`). The defaults keep none, so a
    // store made for one test need not implement it; a run with routes
    // over such a store fails instead of losing its messages.

    /// Adds the entries whose ids are not stored yet (an entry already
    /// there, in any status, is kept as it is) and returns the ids added;
    /// durable when this returns `Ok`.
    fn outbox_add(
        &self,
        entries: &[OutboxEntry],
    ) -> impl Future<Output = Result<Vec<String>, StateError>> + Send {
        let _ = entries;
        async { Err(StateError::NoOutbox) }
    }

    /// The stored entries of these ids (unknown ids are left out).
    fn outbox_get(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StateError>> + Send {
        let _ = ids;
        async { Err(StateError::NoOutbox) }
    }

    /// Every `pending` entry, oldest first.
    fn outbox_pending(&self) -> impl Future<Output = Result<Vec<OutboxEntry>, StateError>> + Send {
        async { Err(StateError::NoOutbox) }
    }

    /// Replaces these entries (after an attempt); durable when this returns `Ok`.
    fn outbox_update(
        &self,
        entries: &[OutboxEntry],
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        let _ = entries;
        async { Err(StateError::NoOutbox) }
    }

    /// Records the outcome of one attempt as soon as it is known (a message
    /// just sent), so that a crash right after resends as little as it
    /// can: durable when this returns `Ok`, but a store may make it visible
    /// to [`StateStore::outbox_pending`] only at the next
    /// [`StateStore::outbox_update`] (the cluster skips the refresh here,
    /// the file store appends to a journal instead of rewriting).
    fn outbox_record(
        &self,
        entries: &[OutboxEntry],
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        self.outbox_update(entries)
    }

    /// Drops settled entries created before `before`; returns how many.
    /// Pending ones are never dropped. The default keeps everything (a
    /// store that prunes as it writes, or keeps nothing for long).
    fn outbox_prune(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StateError>> + Send {
        let _ = before;
        async { Ok(0) }
    }

    /// The throttle marks of these keys (unknown keys are left out).
    fn throttle_marks(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<ThrottleMark>, StateError>> + Send {
        let _ = keys;
        async { Err(StateError::NoOutbox) }
    }

    /// Stores throttle marks, replacing those of the same keys.
    fn save_throttle_marks(
        &self,
        marks: &[ThrottleMark],
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        let _ = marks;
        async { Err(StateError::NoOutbox) }
    }

    // Tail budgets. As with the outbox, a store made for one test need
    // not keep them: a tail with alerts over such a store fails (its
    // scheduled runs still alert).

    /// What the rule's tails last stored of their budget (`None`: nothing).
    fn tail_spend(
        &self,
        rule_id: &str,
    ) -> impl Future<Output = Result<Option<TailSpend>, StateError>> + Send {
        let _ = rule_id;
        async { Err(StateError::NoTailSpend) }
    }

    /// Stores a rule's tail budget, replacing the one before; durable when
    /// this returns `Ok`.
    fn save_tail_spend(
        &self,
        spend: &TailSpend,
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        let _ = spend;
        async { Err(StateError::NoTailSpend) }
    }
}

/// A store shared by the runner and the delivery worker.
impl<T: StateStore> StateStore for Arc<T> {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        (**self).checkpoint(rule_id).await
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        (**self).save_checkpoint(checkpoint).await
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        (**self).record_execution(record).await
    }

    async fn save_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        (**self).save_dead_letters(letters).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        (**self).dead_letters().await
    }

    async fn remove_dead_letters(&self, alert_ids: &[String]) -> Result<(), StateError> {
        (**self).remove_dead_letters(alert_ids).await
    }

    async fn outbox_add(&self, entries: &[OutboxEntry]) -> Result<Vec<String>, StateError> {
        (**self).outbox_add(entries).await
    }

    async fn outbox_get(&self, ids: &[String]) -> Result<Vec<OutboxEntry>, StateError> {
        (**self).outbox_get(ids).await
    }

    async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        (**self).outbox_pending().await
    }

    async fn outbox_update(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        (**self).outbox_update(entries).await
    }

    async fn outbox_record(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        (**self).outbox_record(entries).await
    }

    async fn outbox_prune(&self, before: DateTime<Utc>) -> Result<u64, StateError> {
        (**self).outbox_prune(before).await
    }

    async fn throttle_marks(&self, keys: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        (**self).throttle_marks(keys).await
    }

    async fn save_throttle_marks(&self, marks: &[ThrottleMark]) -> Result<(), StateError> {
        (**self).save_throttle_marks(marks).await
    }

    async fn tail_spend(&self, rule_id: &str) -> Result<Option<TailSpend>, StateError> {
        (**self).tail_spend(rule_id).await
    }

    async fn save_tail_spend(&self, spend: &TailSpend) -> Result<(), StateError> {
        (**self).save_tail_spend(spend).await
    }
}

/// Oldest refusal first, then by id: the order [`StateStore::dead_letters`] promises.
pub(crate) fn sort_dead_letters(letters: &mut [DeadLetter]) {
    letters.sort_by(|a, b| (a.refused_at, &a.alert_id).cmp(&(b.refused_at, &b.alert_id)));
}

/// The execution record as stored in the executions index: the fields its
/// template maps (`window`, `alerts.*`, `gap` as date ranges) plus the rest
/// of the record as is.
pub fn execution_document(record: &ExecutionRecord) -> serde_json::Value {
    let range =
        |from: DateTime<Utc>, to: DateTime<Utc>| serde_json::json!({ "from": from, "to": to });
    serde_json::json!({
        "@timestamp": record.started_at,
        "rule_id": record.rule_id,
        "rule_name": record.rule_name,
        "execution_id": record.execution_id,
        "status": record.status,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "window": match (record.windows.first(), record.windows.last()) {
            (Some(first), Some(last)) => range(first.start, last.end),
            _ => serde_json::Value::Null,
        },
        "windows": record.windows,
        "events_fetched": record.events_fetched,
        "events_skipped": record.events_skipped,
        "alerts": {
            "created": record.alerts_created,
            "duplicate": record.alerts_duplicate,
            "capped": record.alerts_capped,
            "failed": record.alerts_failed,
            "dead_lettered": record.alerts_dead_lettered,
        },
        "search_duration_ms": record.search_duration_ms,
        "index_duration_ms": record.index_duration_ms,
        "warnings": record.warnings,
        "gap": record.gap.map(|g| range(g.start, g.end)),
        "error": record.error,
    })
}
