//! Writing dead letters again: `detectd dead-letters replay`.
//!
//! Each kept alert is written again under its own id into the alias it was
//! meant for. Written, or already there (a conflict: the alert was written
//! since, e.g. by a later run whose window still held its events), it
//! leaves the dead letters; refused again as invalid, it stays with the new
//! reason and one more attempt; any other failure (the cluster busy,
//! waiting for Kibana's alerts index) leaves it as it was for a later try.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::alert::Alert;
use crate::sink::{AlertSink, ItemFailure, SinkError};
use crate::state::{DeadLetter, StateError, StateStore};

/// What a replay did, per alert id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayReport {
    pub written: Vec<String>,
    /// Already in the alerts index: removed from the dead letters too.
    pub duplicates: Vec<String>,
    /// Refused as invalid again: kept, with the new reason.
    pub refused: Vec<ItemFailure>,
    /// Not written for another reason: kept unchanged.
    pub failed: Vec<ItemFailure>,
}

impl ReplayReport {
    /// How many dead letters remain from this replay.
    pub fn remaining(&self) -> usize {
        self.refused.len() + self.failed.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading or updating the dead letters: {0}")]
    State(#[from] StateError),
}

/// Writes every dead letter again (see the module doc).
pub async fn replay_dead_letters<K: AlertSink, T: StateStore>(
    sink: &K,
    state: &T,
    now: DateTime<Utc>,
) -> Result<ReplayReport, ReplayError> {
    let letters = state.dead_letters().await?;
    let mut by_index: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
    for letter in letters {
        by_index
            .entry(letter.index.clone())
            .or_default()
            .push(letter);
    }
    let mut report = ReplayReport::default();
    for (index, letters) in by_index {
        let alerts: Vec<Alert> = letters
            .iter()
            .map(|l| Alert {
                id: l.alert_id.clone(),
                source: l.alert.clone(),
            })
            .collect();
        let written = match sink.prepare(&index).await {
            Ok(()) => sink.write(&index, &alerts).await,
            Err(e) => Err(e),
        };
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                report.failed.extend(letters.iter().map(|l| failure(l, &e)));
                continue;
            }
        };
        let done: Vec<String> = written
            .created
            .iter()
            .chain(&written.duplicates)
            .cloned()
            .collect();
        state.remove_dead_letters(&done).await?;
        report.written.extend(written.created);
        report.duplicates.extend(written.duplicates);
        let (refused, failed): (Vec<ItemFailure>, Vec<ItemFailure>) = written
            .failed
            .into_iter()
            .partition(ItemFailure::is_invalid_document);
        let again: Vec<DeadLetter> = refused
            .iter()
            .filter_map(|f| {
                let mut letter = letters.iter().find(|l| l.alert_id == f.id)?.clone();
                letter.refused_at = now;
                letter.status = f.status;
                letter.reason = f.reason.clone();
                letter.attempts = letter.attempts.saturating_add(1);
                Some(letter)
            })
            .collect();
        state.save_dead_letters(&again).await?;
        report.refused.extend(refused);
        report.failed.extend(failed);
    }
    Ok(report)
}

fn failure(letter: &DeadLetter, e: &SinkError) -> ItemFailure {
    ItemFailure {
        index: letter.index.clone(),
        id: letter.alert_id.clone(),
        status: 0,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::MemorySink;
    use crate::state::MemoryStateStore;
    use serde_json::json;

    fn letter(id: &str, index: &str) -> DeadLetter {
        DeadLetter {
            alert_id: id.into(),
            index: index.into(),
            rule_id: "r1".into(),
            execution_id: "e1".into(),
            refused_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            status: 400,
            reason: "mapper_parsing_exception".into(),
            attempts: 1,
            alert: json!({"kibana.alert.uuid": id}),
        }
    }

    #[tokio::test]
    async fn written_and_existing_alerts_leave_the_dead_letters() {
        let sink = MemorySink::new();
        let state = MemoryStateStore::new();
        let index = ".alerts-security.alerts-default";
        // b was written since (a later run): a duplicate now
        sink.write(
            index,
            &[Alert {
                id: "b".into(),
                source: json!({}),
            }],
        )
        .await
        .unwrap();
        state
            .save_dead_letters(&[letter("a", index), letter("b", index)])
            .await
            .unwrap();
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let report = replay_dead_letters(&sink, &state, now).await.unwrap();
        assert_eq!(report.written, vec!["a"]);
        assert_eq!(report.duplicates, vec!["b"]);
        assert_eq!(report.remaining(), 0);
        assert!(state.dead_letters().await.unwrap().is_empty());
        let stored = sink.alerts(index);
        assert_eq!(stored.len(), 2);
        assert_eq!(stored["a"], json!({"kibana.alert.uuid": "a"}));
        // nothing left: a second replay does nothing
        let again = replay_dead_letters(&sink, &state, now).await.unwrap();
        assert_eq!(again, ReplayReport::default());
    }
}
