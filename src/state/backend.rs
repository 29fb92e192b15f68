//! The store the settings choose (`state.backend`): the cluster's indices
//! or a local directory, as one type so the runner and the commands need
//! not be generic over it.

use super::{
    Checkpoint, ClusterStateStore, DeadLetter, FileStateStore, OutboxEntry, StateError, StateStore,
    TailSpend, ThrottleMark,
};
use crate::runner::ExecutionRecord;

#[derive(Debug)]
pub enum AnyStateStore {
    // Boxed: the cluster store is several times the size of the file one.
    Cluster(Box<ClusterStateStore>),
    File(FileStateStore),
}

impl StateStore for AnyStateStore {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.checkpoint(rule_id).await,
            AnyStateStore::File(s) => s.checkpoint(rule_id).await,
        }
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.save_checkpoint(checkpoint).await,
            AnyStateStore::File(s) => s.save_checkpoint(checkpoint).await,
        }
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.record_execution(record).await,
            AnyStateStore::File(s) => s.record_execution(record).await,
        }
    }

    async fn save_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.save_dead_letters(letters).await,
            AnyStateStore::File(s) => s.save_dead_letters(letters).await,
        }
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.dead_letters().await,
            AnyStateStore::File(s) => s.dead_letters().await,
        }
    }

    async fn remove_dead_letters(&self, alert_ids: &[String]) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.remove_dead_letters(alert_ids).await,
            AnyStateStore::File(s) => s.remove_dead_letters(alert_ids).await,
        }
    }

    async fn outbox_add(&self, entries: &[OutboxEntry]) -> Result<Vec<String>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.outbox_add(entries).await,
            AnyStateStore::File(s) => s.outbox_add(entries).await,
        }
    }

    async fn outbox_get(&self, ids: &[String]) -> Result<Vec<OutboxEntry>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.outbox_get(ids).await,
            AnyStateStore::File(s) => s.outbox_get(ids).await,
        }
    }

    async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.outbox_pending().await,
            AnyStateStore::File(s) => s.outbox_pending().await,
        }
    }

    async fn outbox_update(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.outbox_update(entries).await,
            AnyStateStore::File(s) => s.outbox_update(entries).await,
        }
    }

    async fn outbox_record(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.outbox_record(entries).await,
            AnyStateStore::File(s) => s.outbox_record(entries).await,
        }
    }

    async fn outbox_prune(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.outbox_prune(before).await,
            AnyStateStore::File(s) => s.outbox_prune(before).await,
        }
    }

    async fn throttle_marks(&self, keys: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.throttle_marks(keys).await,
            AnyStateStore::File(s) => s.throttle_marks(keys).await,
        }
    }

    async fn save_throttle_marks(&self, marks: &[ThrottleMark]) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.save_throttle_marks(marks).await,
            AnyStateStore::File(s) => s.save_throttle_marks(marks).await,
        }
    }

    async fn tail_spend(&self, rule_id: &str) -> Result<Option<TailSpend>, StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.tail_spend(rule_id).await,
            AnyStateStore::File(s) => s.tail_spend(rule_id).await,
        }
    }

    async fn save_tail_spend(&self, spend: &TailSpend) -> Result<(), StateError> {
        match self {
            AnyStateStore::Cluster(s) => s.save_tail_spend(spend).await,
            AnyStateStore::File(s) => s.save_tail_spend(spend).await,
        }
    }
}
