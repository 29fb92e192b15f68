//! State in memory, for tests and one-shot runs that keep nothing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::outbox::sort_entries;
use super::{
    sort_dead_letters, Checkpoint, DeadLetter, OutboxEntry, OutboxStatus, StateError, StateStore,
    TailSpend, ThrottleMark,
};
use crate::runner::ExecutionRecord;

#[derive(Debug, Default)]
pub struct MemoryStateStore {
    checkpoints: Mutex<HashMap<String, Checkpoint>>,
    executions: Mutex<Vec<ExecutionRecord>>,
    dead_letters: Mutex<HashMap<String, DeadLetter>>,
    outbox: Mutex<HashMap<String, OutboxEntry>>,
    throttle: Mutex<HashMap<String, ThrottleMark>>,
    tail_spends: Mutex<HashMap<String, TailSpend>>,
}

impl MemoryStateStore {
    pub fn new() -> MemoryStateStore {
        MemoryStateStore::default()
    }

    /// Every record written so far, oldest first.
    pub fn executions(&self) -> Vec<ExecutionRecord> {
        self.executions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The checkpoint now stored for `rule_id`.
    pub fn get(&self, rule_id: &str) -> Option<Checkpoint> {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(rule_id)
            .cloned()
    }

    /// Sets a checkpoint directly (tests simulate downtime with it).
    pub fn set(&self, checkpoint: Checkpoint) {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(checkpoint.rule_id.clone(), checkpoint);
    }
}

impl MemoryStateStore {
    /// Every outbox entry in any status, oldest first (tests look at them).
    pub fn outbox(&self) -> Vec<OutboxEntry> {
        let mut out: Vec<OutboxEntry> = self
            .outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        sort_entries(&mut out);
        out
    }
}

impl StateStore for MemoryStateStore {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        Ok(self.get(rule_id))
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        self.set(checkpoint.clone());
        Ok(())
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        self.executions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record.clone());
        Ok(())
    }

    async fn save_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        let mut all = self
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for l in letters {
            all.insert(l.alert_id.clone(), l.clone());
        }
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        let mut out: Vec<DeadLetter> = self
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        sort_dead_letters(&mut out);
        Ok(out)
    }

    async fn remove_dead_letters(&self, alert_ids: &[String]) -> Result<(), StateError> {
        let mut all = self
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for id in alert_ids {
            all.remove(id);
        }
        Ok(())
    }

    async fn outbox_add(&self, entries: &[OutboxEntry]) -> Result<Vec<String>, StateError> {
        let mut all = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        for e in entries {
            if !all.contains_key(&e.id) {
                all.insert(e.id.clone(), e.clone());
                added.push(e.id.clone());
            }
        }
        Ok(added)
    }

    async fn outbox_get(&self, ids: &[String]) -> Result<Vec<OutboxEntry>, StateError> {
        let all = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(ids.iter().filter_map(|id| all.get(id).cloned()).collect())
    }

    async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        let mut out: Vec<OutboxEntry> = self
            .outbox()
            .into_iter()
            .filter(|e| e.status == OutboxStatus::Pending)
            .collect();
        sort_entries(&mut out);
        Ok(out)
    }

    async fn outbox_update(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        let mut all = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        for e in entries {
            all.insert(e.id.clone(), e.clone());
        }
        Ok(())
    }

    async fn outbox_prune(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StateError> {
        let mut all = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let n = all.len();
        all.retain(|_, e| !e.settled_before(before));
        Ok((n - all.len()) as u64)
    }

    async fn throttle_marks(&self, keys: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        let all = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys.iter().filter_map(|k| all.get(k).cloned()).collect())
    }

    async fn save_throttle_marks(&self, marks: &[ThrottleMark]) -> Result<(), StateError> {
        let mut all = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        for m in marks {
            all.insert(m.key.clone(), m.clone());
        }
        Ok(())
    }

    async fn tail_spend(&self, rule_id: &str) -> Result<Option<TailSpend>, StateError> {
        let all = self
            .tail_spends
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(all.get(rule_id).cloned())
    }

    async fn save_tail_spend(&self, spend: &TailSpend) -> Result<(), StateError> {
        let mut all = self
            .tail_spends
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.insert(spend.rule_id.clone(), spend.clone());
        Ok(())
    }
}
