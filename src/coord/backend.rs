//! What the [`Coordinator`](super::Coordinator) asks of the cluster, as a
//! trait: the cluster's indices in production ([`ClusterBackend`]), a map
//! in memory in the paused-clock tests of several coordinators.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::assign::RuleFingerprints;
use super::membership::{Heartbeat, Registry};
use crate::cluster::ClusterError;
use crate::state::{
    Checkpoint, ClusterStateStore, LeaseDoc, LeaseOutcome, LeaseWrite, StateError, StoredLease,
    Versioned,
};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Heartbeats, rule sets and leases: where instances meet.
pub trait Backend: Send + Sync {
    /// Stores the rule set of `hash` (see `membership`).
    fn publish_rules<'a>(
        &'a self,
        hash: &'a str,
        rules: &'a RuleFingerprints,
    ) -> BoxFuture<'a, Result<(), ClusterError>>;
    fn beat<'a>(&'a self, beat: &'a Heartbeat) -> BoxFuture<'a, Result<(), ClusterError>>;
    fn leave<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// Every heartbeat, live or not.
    fn heartbeats(&self) -> BoxFuture<'_, Result<Vec<Heartbeat>, ClusterError>>;
    fn rule_sets<'a>(
        &'a self,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Arc<RuleFingerprints>>, ClusterError>>;
    /// The rules' leases with their documents' versions.
    fn leases<'a>(
        &'a self,
        rule_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<StoredLease>, StateError>>;
    /// Guarded lease writes, one outcome each.
    fn write_leases<'a>(
        &'a self,
        writes: &'a [LeaseWrite],
    ) -> BoxFuture<'a, Result<Vec<LeaseOutcome>, StateError>>;
    /// The checkpoint under `lease`, if the document is still at `version`.
    fn save_checkpoint<'a>(
        &'a self,
        checkpoint: &'a Checkpoint,
        lease: &'a LeaseDoc,
        version: Versioned,
    ) -> BoxFuture<'a, Result<Versioned, StateError>>;
}

/// The cluster: the state index (leases) and the instances index.
#[derive(Clone, Debug)]
pub struct ClusterBackend {
    store: ClusterStateStore,
    registry: Registry,
}

impl ClusterBackend {
    pub fn new(store: &ClusterStateStore) -> ClusterBackend {
        ClusterBackend {
            registry: Registry::new(store.cluster().clone(), store.state_index()),
            store: store.unfenced(),
        }
    }
}

impl Backend for ClusterBackend {
    fn publish_rules<'a>(
        &'a self,
        hash: &'a str,
        rules: &'a RuleFingerprints,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(self.registry.publish_rules(hash, rules))
    }

    fn beat<'a>(&'a self, beat: &'a Heartbeat) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(self.registry.beat(beat))
    }

    fn leave<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(self.registry.leave(instance_id))
    }

    fn heartbeats(&self) -> BoxFuture<'_, Result<Vec<Heartbeat>, ClusterError>> {
        Box::pin(self.registry.heartbeats())
    }

    fn rule_sets<'a>(
        &'a self,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Arc<RuleFingerprints>>, ClusterError>> {
        Box::pin(self.registry.rule_sets(hashes))
    }

    fn leases<'a>(
        &'a self,
        rule_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<StoredLease>, StateError>> {
        Box::pin(self.store.leases(rule_ids))
    }

    fn write_leases<'a>(
        &'a self,
        writes: &'a [LeaseWrite],
    ) -> BoxFuture<'a, Result<Vec<LeaseOutcome>, StateError>> {
        Box::pin(self.store.write_leases(writes))
    }

    fn save_checkpoint<'a>(
        &'a self,
        checkpoint: &'a Checkpoint,
        lease: &'a LeaseDoc,
        version: Versioned,
    ) -> BoxFuture<'a, Result<Versioned, StateError>> {
        Box::pin(
            self.store
                .save_checkpoint_fenced(checkpoint, lease, version),
        )
    }
}
