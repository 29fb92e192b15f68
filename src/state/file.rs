//! State in a local directory: `checkpoints.json` (all rules' checkpoints,
//! rewritten whole through a temporary file, fsynced, then renamed over the
//! old one, so a crash leaves either the old or the new file, never half of
//! one), `executions.ndjson` (one record per line, appended and fsynced)
//! `dead-letters.json` (refused alerts by alert id, rewritten whole like
//! the checkpoints), `outbox.json` (notification messages by id) and
//! `throttle.json` (throttle marks by key) and `tail-budgets.json` (what
//! each rule's near-real-time tails alerted in its current interval, by
//! rule id), rewritten whole the same way
//! (settled outbox entries are dropped a week after, see `OUTBOX_RETENTION`).
//! The outcome of each delivery attempt is appended to
//! `outbox.journal.ndjson` (fsynced), read over `outbox.json` and folded
//! into it at the next rewrite, so recording a message just sent costs one
//! short append rather than a rewrite of every message.
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
    StateError, StateStore, TailSpend, ThrottleMark, OUTBOX_RETENTION,
};
use crate::runner::ExecutionRecord;

const CHECKPOINTS: &str = "checkpoints.json";
const EXECUTIONS: &str = "executions.ndjson";
const DEAD_LETTERS: &str = "dead-letters.json";
const OUTBOX: &str = "outbox.json";
const THROTTLE: &str = "throttle.json";
const TAIL_BUDGETS: &str = "tail-budgets.json";
const OUTBOX_JOURNAL: &str = "outbox.journal.ndjson";
/// A journal past this size is folded into `outbox.json` at the next record.
const JOURNAL_FOLD_BYTES: u64 = 1 << 20;

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
    /// `outbox.json` with the journal's later versions of its entries.
    fn read_outbox(&self) -> Result<BTreeMap<String, OutboxEntry>, StateError> {
        let mut all: BTreeMap<String, OutboxEntry> =
            self.read_map(OUTBOX, "outbox entries by id")?;
        for e in self.read_journal()? {
            all.insert(e.id.clone(), e);
        }
        Ok(all)
    }

    /// The journal's entries in the order appended. A last line cut short
    /// (a crash during its append) was never acknowledged and is ignored;
    /// any other bad line is an error.
    fn read_journal(&self) -> Result<Vec<OutboxEntry>, StateError> {
        let path = self.dir.join(OUTBOX_JOURNAL);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_error(&path, e)),
        };
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes[..complete]
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(n, line)| {
                serde_json::from_slice(line).map_err(|e| {
                    file_error(
                        &path,
                        format!("line {}: expected an outbox entry: {e}", n + 1),
                    )
                })
            })
            .collect()
    }

    /// Appends entries to the journal, fsynced; returns its size after.
    fn append_journal(&self, entries: &[OutboxEntry]) -> Result<u64, StateError> {
        let path = self.dir.join(OUTBOX_JOURNAL);
        let mut lines = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut lines, e).map_err(|e| file_error(&path, e))?;
            lines.push(b'\n');
        }
        let append = || -> std::io::Result<u64> {
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(&lines)?;
            f.sync_data()?;
            Ok(f.metadata()?.len())
        };
        append().map_err(|e| file_error(&path, e))
    }

    /// Rewrites `outbox.json` whole (settled entries past retention
    /// dropped), then empties the journal it now contains. A crash in
    /// between leaves a journal whose entries are already in the file:
    /// read again, they change nothing.
    fn write_outbox(&self, all: &mut BTreeMap<String, OutboxEntry>) -> Result<(), StateError> {
        prune_outbox(all);
        self.write_map(OUTBOX, all)?;
        let path = self.dir.join(OUTBOX_JOURNAL);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error(&path, e)),
        }
    }
}

/// Drops settled entries created `OUTBOX_RETENTION` before the newest
/// time the outbox knows (a send or an addition: the clock of the runs and
/// the worker, not this store's; the file is rewritten whole and would
/// otherwise grow with every message).
fn prune_outbox(all: &mut BTreeMap<String, OutboxEntry>) {
    let Some(newest) = all
        .values()
        .map(|e| e.sent_at.unwrap_or(e.created_at))
        .max()
    else {
        return;
    };
    let cutoff = newest - OUTBOX_RETENTION;
    all.retain(|_, e| !e.settled_before(cutoff));
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
            self.write_outbox(&mut all)?;
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
        self.write_outbox(&mut all)
    }

    async fn outbox_record(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self.append_journal(entries)? > JOURNAL_FOLD_BYTES {
            let mut all = self.read_outbox()?;
            self.write_outbox(&mut all)?;
        }
        Ok(())
    }

    async fn outbox_prune(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_outbox()?;
        let n = all.len();
        all.retain(|_, e| !e.settled_before(before));
        let dropped = (n - all.len()) as u64;
        if dropped > 0 {
            self.write_outbox(&mut all)?;
        }
        Ok(dropped)
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

    async fn tail_spend(&self, rule_id: &str) -> Result<Option<TailSpend>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: BTreeMap<String, TailSpend> =
            self.read_map(TAIL_BUDGETS, "tail budgets by rule id")?;
        Ok(all.remove(rule_id))
    }

    async fn save_tail_spend(&self, spend: &TailSpend) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: BTreeMap<String, TailSpend> =
            self.read_map(TAIL_BUDGETS, "tail budgets by rule id")?;
        all.insert(spend.rule_id.clone(), spend.clone());
        self.write_map(TAIL_BUDGETS, &all)
    }
}
