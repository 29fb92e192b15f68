//! An in-memory [`Backend`] for tests: the cluster's heartbeats, rule sets
//! and state documents in a map, versioned like Elasticsearch's `_seq_no`,
//! shared by every instance of a test; each instance's link can be cut.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::assign::RuleFingerprints;
use super::backend::{Backend, BoxFuture};
use super::membership::Heartbeat;
use super::{Coordinator, Timing};
use crate::cluster::ClusterError;
use crate::rule::Rule;
use crate::state::{
    Checkpoint, LeaseDoc, LeaseOutcome, LeaseWrite, StateError, StoredLease, Versioned,
};

pub(crate) struct Doc {
    pub version: Versioned,
    pub lease: Option<LeaseDoc>,
    pub checkpoint: Option<DateTime<Utc>>,
}

/// The cluster's documents, shared by every instance.
#[derive(Default)]
pub(crate) struct Cluster {
    beats: HashMap<String, Heartbeat>,
    rule_sets: HashMap<String, Arc<RuleFingerprints>>,
    pub docs: HashMap<String, Doc>,
    seq_no: u64,
}

impl Cluster {
    fn next(&mut self) -> Versioned {
        self.seq_no += 1;
        Versioned {
            seq_no: self.seq_no,
            primary_term: 1,
        }
    }
}

/// One instance's connection: `down` makes every request fail with a 503.
#[derive(Clone)]
struct Link {
    cluster: Arc<Mutex<Cluster>>,
    down: Arc<AtomicBool>,
}

fn unavailable() -> ClusterError {
    ClusterError::Status {
        method: "POST",
        path: "/".into(),
        status: 503,
        reason: "unavailable".into(),
    }
}

impl Link {
    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> Result<T, ClusterError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        Ok(f(&mut self.cluster.lock().unwrap()))
    }
}

impl Backend for Link {
    fn publish_rules<'a>(
        &'a self,
        hash: &'a str,
        rules: &'a RuleFingerprints,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        let r = self.with(|c| {
            c.rule_sets
                .insert(hash.to_string(), Arc::new(rules.clone()));
        });
        Box::pin(async move { r })
    }

    fn beat<'a>(&'a self, beat: &'a Heartbeat) -> BoxFuture<'a, Result<(), ClusterError>> {
        let r = self.with(|c| {
            c.beats.insert(beat.instance_id.clone(), beat.clone());
        });
        Box::pin(async move { r })
    }

    fn leave<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        let r = self.with(|c| {
            c.beats.remove(instance_id);
        });
        Box::pin(async move { r })
    }

    fn heartbeats(&self) -> BoxFuture<'_, Result<Vec<Heartbeat>, ClusterError>> {
        let r = self.with(|c| c.beats.values().cloned().collect());
        Box::pin(async move { r })
    }

    fn rule_sets<'a>(
        &'a self,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Arc<RuleFingerprints>>, ClusterError>> {
        let r = self.with(|c| {
            hashes
                .iter()
                .filter_map(|h| c.rule_sets.get(h).map(|r| (h.clone(), r.clone())))
                .collect()
        });
        Box::pin(async move { r })
    }

    fn leases<'a>(
        &'a self,
        rule_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<StoredLease>, StateError>> {
        let r = self
            .with(|c| {
                rule_ids
                    .iter()
                    .map(|id| StoredLease {
                        rule_id: id.clone(),
                        version: c.docs.get(id).map(|d| d.version),
                        lease: c.docs.get(id).and_then(|d| d.lease.clone()),
                    })
                    .collect()
            })
            .map_err(StateError::from);
        Box::pin(async move { r })
    }

    fn write_leases<'a>(
        &'a self,
        writes: &'a [LeaseWrite],
    ) -> BoxFuture<'a, Result<Vec<LeaseOutcome>, StateError>> {
        let r = self
            .with(|c| {
                writes
                    .iter()
                    .map(|w| {
                        let current = c.docs.get(&w.rule_id).map(|d| d.version);
                        if current != w.version {
                            return LeaseOutcome::Conflict;
                        }
                        let version = c.next();
                        let doc = c.docs.entry(w.rule_id.clone()).or_insert(Doc {
                            version,
                            lease: None,
                            checkpoint: None,
                        });
                        doc.version = version;
                        doc.lease = Some(w.lease.clone());
                        LeaseOutcome::Written(version)
                    })
                    .collect()
            })
            .map_err(StateError::from);
        Box::pin(async move { r })
    }

    fn save_checkpoint<'a>(
        &'a self,
        checkpoint: &'a Checkpoint,
        lease: &'a LeaseDoc,
        version: Versioned,
    ) -> BoxFuture<'a, Result<Versioned, StateError>> {
        let r = self.with(|c| {
            let current = c.docs.get(&checkpoint.rule_id).map(|d| d.version);
            if current != Some(version) {
                return Err(StateError::LeaseLost {
                    rule_id: checkpoint.rule_id.clone(),
                    why: "version conflict".into(),
                });
            }
            let v = c.next();
            let doc = c.docs.get_mut(&checkpoint.rule_id).expect("checked above");
            doc.version = v;
            doc.lease = Some(lease.clone());
            doc.checkpoint = Some(checkpoint.covered_until);
            Ok(v)
        });
        Box::pin(async move { r.map_err(StateError::from).and_then(|r| r) })
    }
}

pub(crate) struct World {
    pub cluster: Arc<Mutex<Cluster>>,
    start: tokio::time::Instant,
    pub base: DateTime<Utc>,
}

impl World {
    pub fn new() -> World {
        World {
            cluster: Arc::default(),
            start: tokio::time::Instant::now(),
            base: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    /// An instance over the shared documents, on tokio's clock, and the
    /// switch that cuts it off.
    pub fn instance(
        &self,
        id: &str,
        timing: Timing,
        rules: &[Arc<Rule>],
    ) -> (Arc<Coordinator>, Arc<AtomicBool>) {
        let down = Arc::new(AtomicBool::new(false));
        let link = Link {
            cluster: self.cluster.clone(),
            down: down.clone(),
        };
        let (start, base) = (self.start, self.base);
        let wall = Arc::new(move || {
            base + chrono::Duration::from_std(start.elapsed()).unwrap_or_default()
        });
        let c = Arc::new(Coordinator::with_backend(
            id.to_string(),
            timing,
            Arc::new(link),
            wall,
        ));
        c.set_rules(rules.iter());
        (c, down)
    }
}
