//! State in a local directory: `checkpoints.json` (all rules' checkpoints,
//! rewritten whole through a temporary file, fsynced, then renamed over the
//! old one, so a crash leaves either the old or the new file, never half of
//! one), `executions.ndjson` (one record per line, appended and fsynced)
//! `dead-letters.json` (refused alerts by alert id, rewritten whole like
//! the checkpoints), `outbox.json` (notification messages by id) and
//! `throttle.json` (throttle marks by key), rewritten whole the same way
//! (settled outbox entries are dropped a week after, see `OUTBOX_RETENTION`).
//!
//! For `detectd hunt` and for users without write access to the cluster.
//! One process per directory: the store serialises its own writes but does
//! not lock the directory against other processes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::outbox::sort_entries;
use super::{
    execution_document, sort_dead_letters, Checkpoint, DeadLetter, OutboxEntry, OutboxStatus,
    StateError, StateStore, ThrottleMark,
};
use crate::runner::ExecutionRecord;

const CHECKPOINTS: &str = "checkpoints.json";
const EXECUTIONS: &str = "executions.ndjson";
const DEAD_LETTERS: &str = "dead-letters.json";
const OUTBOX: &str = "outbox.json";
const THROTTLE: &str = "throttle.json";

#[derive(Debug)]
pub struct FileStateStore {
    dir: PathBuf,
    /// Serialises read-modify-write of the checkpoints file.
    lock: Mutex<()>,
}

fn file_error(path: &Path, reason: impl ToString) -> StateError {
    StateError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl FileStateStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStateStore, StateError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| file_error(&dir, e))?;
        Ok(FileStateStore {
            dir,
            lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_all(&self) -> Result<BTreeMap<String, Checkpoint>, StateError> {
        self.read_map(CHECKPOINTS, "checkpoints by rule id")
    }

    fn write_all(&self, all: &BTreeMap<String, Checkpoint>) -> Result<(), StateError> {
        self.write_map(CHECKPOINTS, all)
    }

    /// A json object file of the directory; a missing file is empty.
    fn read_map<T: DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<BTreeMap<String, T>, StateError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| file_error(&path, format!("expected a json object of {what}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(file_error(&path, e)),
        }
    }

    /// Replaces a file of the directory whole: temporary file, fsync, rename.
    fn write_map<T: Serialize>(
        &self,
        name: &str,
        all: &BTreeMap<String, T>,
    ) -> Result<(), StateError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let bytes = serde_json::to_vec_pretty(all).map_err(|e| file_error(&path, e))?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename itself is durable once the directory is synced.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| file_error(&path, e))
    }

    fn read_dead_letters(&self) -> Result<BTreeMap<String, DeadLetter>, StateError> {
        self.read_map(DEAD_LETTERS, "dead letters by alert id")
    }
}

impl FileStateStore {
    fn read_outbox(&self) -> Result<BTreeMap<String, OutboxEntry>, StateError> {
        self.read_map(OUTBOX, "outbox entries by id")
    }
}

/// How long settled outbox entries (sent, given up, throttled) are kept:
/// far longer than any window is searched again, so a window retried after
/// a crash still finds its entries and adds no second message.
pub const OUTBOX_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Drops settled entries created `OUTBOX_RETENTION` before the newest of
/// `updated` (the worker's clock, not this store's: the file is rewritten
/// whole on every update and would otherwise grow with every message).
fn prune_outbox(all: &mut BTreeMap<String, OutboxEntry>, updated: &[OutboxEntry]) {
    let Some(newest) = updated
        .iter()
        .map(|e| e.sent_at.unwrap_or(e.created_at))
        .max()
    else {
        return;
    };
    let cutoff = newest - OUTBOX_RETENTION;
    all.retain(|_, e| e.status == OutboxStatus::Pending || e.created_at >= cutoff);
}

impl StateStore for FileStateStore {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(self.read_all()?.remove(rule_id))
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_all()?;
        all.insert(checkpoint.rule_id.clone(), checkpoint.clone());
        self.write_all(&all)
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.dir.join(EXECUTIONS);
        let mut line =
            serde_json::to_vec(&execution_document(record)).map_err(|e| file_error(&path, e))?;
        line.push(b'\n');
        let append = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(&line)?;
            f.sync_data()
        };
        append().map_err(|e| file_error(&path, e))
    }

    async fn save_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_dead_letters()?;
        for l in letters {
            all.insert(l.alert_id.clone(), l.clone());
        }
        self.write_map(DEAD_LETTERS, &all)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<DeadLetter> = self.read_dead_letters()?.into_values().collect();
        sort_dead_letters(&mut out);
        Ok(out)
    }

    async fn remove_dead_letters(&self, alert_ids: &[String]) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_dead_letters()?;
        let before = all.len();
        for id in alert_ids {
            all.remove(id);
        }
        if all.len() == before {
            return Ok(());
        }
        self.write_map(DEAD_LETTERS, &all)
    }

    async fn outbox_add(&self, entries: &[OutboxEntry]) -> Result<Vec<String>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_outbox()?;
        let mut added = Vec::new();
        for e in entries {
            if !all.contains_key(&e.id) {
                all.insert(e.id.clone(), e.clone());
                added.push(e.id.clone());
            }
        }
        if !added.is_empty() {
            self.write_map(OUTBOX, &all)?;
        }
        Ok(added)
    }

    async fn outbox_get(&self, ids: &[String]) -> Result<Vec<OutboxEntry>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_outbox()?;
        Ok(ids.iter().filter_map(|id| all.remove(id)).collect())
    }

    async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<OutboxEntry> = self
            .read_outbox()?
            .into_values()
            .filter(|e| e.status == OutboxStatus::Pending)
            .collect();
        sort_entries(&mut out);
        Ok(out)
    }

    async fn outbox_update(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        // The worker calls this after every pass, most with nothing done:
        // no rewrite (and fsync) of the whole file for those.
        if entries.is_empty() {
            return Ok(());
        }
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_outbox()?;
        for e in entries {
            all.insert(e.id.clone(), e.clone());
        }
        prune_outbox(&mut all, entries);
        self.write_map(OUTBOX, &all)
    }

    async fn throttle_marks(&self, keys: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: BTreeMap<String, ThrottleMark> = self.read_map(THROTTLE, "throttle marks")?;
        Ok(keys.iter().filter_map(|k| all.remove(k)).collect())
    }

    async fn save_throttle_marks(&self, marks: &[ThrottleMark]) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: BTreeMap<String, ThrottleMark> = self.read_map(THROTTLE, "throttle marks")?;
        for m in marks {
            all.insert(m.key.clone(), m.clone());
        }
        self.write_map(THROTTLE, &all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[tokio::test]
    async fn checkpoints_survive_reopening_and_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::open(dir.path().join("state")).unwrap();
        assert_eq!(store.checkpoint("r1").await.unwrap(), None);
        for (rule, at) in [("r1", 10), ("r2", 20), ("r1", 30)] {
            store
                .save_checkpoint(&Checkpoint {
                    rule_id: rule.into(),
                    covered_until: t(at),
                    updated_at: t(at),
                    pending: None,
                })
                .await
                .unwrap();
        }
        let again = FileStateStore::open(dir.path().join("state")).unwrap();
        assert_eq!(
            again.checkpoint("r1").await.unwrap().unwrap().covered_until,
            t(30)
        );
        assert_eq!(
            again.checkpoint("r2").await.unwrap().unwrap().covered_until,
            t(20)
        );
        assert!(!dir.path().join("state/checkpoints.json.tmp").exists());
        let text = fs::read_to_string(dir.path().join("state/checkpoints.json")).unwrap();
        assert!(text.contains("\"checkpoint\""), "{text}");
    }

    #[tokio::test]
    async fn a_pending_window_is_kept_and_a_file_without_one_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        // as written before checkpoints could carry a pending window
        fs::write(
            dir.path().join(CHECKPOINTS),
            br#"{"r1": {"rule_id": "r1", "checkpoint": "2023-11-14T22:13:20Z", "updated_at": "2023-11-14T22:13:20Z"}}"#,
        )
        .unwrap();
        let store = FileStateStore::open(dir.path()).unwrap();
        let old = store.checkpoint("r1").await.unwrap().unwrap();
        assert_eq!((old.covered_until, old.pending.clone()), (t(0), None));
        let pending = super::super::PendingWindow {
            window_end: t(300),
            cap_cut: super::super::CapCut {
                last_event_ms: 1_700_000_000_123,
                alert_id: "abc".into(),
            },
        };
        store
            .save_checkpoint(&Checkpoint {
                pending: Some(pending.clone()),
                ..old
            })
            .await
            .unwrap();
        let again = FileStateStore::open(dir.path()).unwrap();
        let read = again.checkpoint("r1").await.unwrap().unwrap();
        assert_eq!(read.pending, Some(pending));
    }

    #[tokio::test]
    async fn dead_letters_are_kept_replaced_by_id_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::open(dir.path()).unwrap();
        assert!(store.dead_letters().await.unwrap().is_empty());
        let letter = |id: &str, at: i64, attempts: u32| DeadLetter {
            alert_id: id.into(),
            index: ".alerts-security.alerts-default".into(),
            rule_id: "r1".into(),
            execution_id: "e1".into(),
            refused_at: t(at),
            status: 400,
            reason: "mapper_parsing_exception: failed to parse".into(),
            attempts,
            alert: serde_json::json!({"host": "ws-1"}),
        };
        store
            .save_dead_letters(&[letter("b", 20, 1), letter("a", 10, 1)])
            .await
            .unwrap();
        store
            .save_dead_letters(&[letter("b", 30, 2)])
            .await
            .unwrap();
        let again = FileStateStore::open(dir.path()).unwrap();
        let all = again.dead_letters().await.unwrap();
        assert_eq!(all, vec![letter("a", 10, 1), letter("b", 30, 2)]);
        again
            .remove_dead_letters(&["a".into(), "unknown".into()])
            .await
            .unwrap();
        assert_eq!(
            again.dead_letters().await.unwrap(),
            vec![letter("b", 30, 2)]
        );
        assert!(!dir.path().join("dead-letters.json.tmp").exists());
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CHECKPOINTS), b"{not json").unwrap();
        let store = FileStateStore::open(dir.path()).unwrap();
        let err = store.checkpoint("r1").await.unwrap_err();
        assert!(err.to_string().contains("expected a json object"), "{err}");
    }

    #[tokio::test]
    async fn the_outbox_keeps_an_entry_added_twice_as_first_stored_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::open(dir.path()).unwrap();
        let entry = |status: OutboxStatus, attempts: u32| OutboxEntry {
            id: "r/g1@hook".into(),
            key: "r/g1".into(),
            route: "r".into(),
            output: "hook".into(),
            rule_id: "rule".into(),
            window_end: t(300),
            created_at: t(10),
            status,
            attempts,
            next_attempt_at: None,
            sent_at: None,
            last_error: None,
            message: "{}".into(),
            about_detectd: false,
        };
        let added = store
            .outbox_add(&[entry(OutboxStatus::Pending, 0)])
            .await
            .unwrap();
        assert_eq!(added, vec!["r/g1@hook".to_string()]);
        store
            .outbox_update(&[entry(OutboxStatus::Sent, 1)])
            .await
            .unwrap();
        // a window searched again adds the same id: the sent entry stays sent
        let again = FileStateStore::open(dir.path()).unwrap();
        assert!(again
            .outbox_add(&[entry(OutboxStatus::Pending, 0)])
            .await
            .unwrap()
            .is_empty());
        assert!(again.outbox_pending().await.unwrap().is_empty());
        let stored = again.outbox_get(&["r/g1@hook".into()]).await.unwrap();
        assert_eq!(stored, vec![entry(OutboxStatus::Sent, 1)]);
        let mark = ThrottleMark {
            key: "r/host-1".into(),
            at: t(5),
        };
        again
            .save_throttle_marks(std::slice::from_ref(&mark))
            .await
            .unwrap();
        assert_eq!(
            FileStateStore::open(dir.path())
                .unwrap()
                .throttle_marks(&["r/host-1".into(), "r/other".into()])
                .await
                .unwrap(),
            vec![mark]
        );
    }

    #[tokio::test]
    async fn settled_outbox_entries_are_dropped_a_week_after_and_pending_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::open(dir.path()).unwrap();
        let entry = |id: &str, status: OutboxStatus, created: i64| OutboxEntry {
            id: id.into(),
            key: id.into(),
            route: "r".into(),
            output: "o".into(),
            rule_id: "rule".into(),
            window_end: t(created),
            created_at: t(created),
            status,
            attempts: 0,
            next_attempt_at: None,
            sent_at: None,
            last_error: None,
            message: "{}".into(),
            about_detectd: false,
        };
        let week = 7 * 24 * 3600;
        store
            .outbox_add(&[
                entry("old-sent", OutboxStatus::Sent, 0),
                entry("old-pending", OutboxStatus::Pending, 0),
                entry("recent-sent", OutboxStatus::Sent, week),
            ])
            .await
            .unwrap();
        // an update a week and a second after the first entries
        store
            .outbox_update(&[entry("new", OutboxStatus::Sent, week + 1)])
            .await
            .unwrap();
        let ids = ["old-sent", "old-pending", "recent-sent", "new"].map(String::from);
        let kept: Vec<String> = store
            .outbox_get(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(kept, ["old-pending", "recent-sent", "new"]);
    }
}
