//! [`Coordinator`]: this instance among several. One task calls
//! [`Coordinator::tick`] every heartbeat: write the heartbeat, read the
//! live instances, assign the rules (`assign`), then one `_mget` of the
//! leases to take and one `_bulk` that takes, renews and releases leases,
//! each item conditional on the version last seen. The rule loops ask
//! [`Coordinator::may_run`] before each run, answered from memory; a
//! checkpoint is written under the lease ([`CheckpointFence`]).
//!
//! A failed request (429, 5xx, unreachable) is a warning: the view and the
//! leases stay as they were, and leases that are not renewed run out here
//! after the lease time, so an instance cut off from the cluster stops
//! running rules another instance may have taken.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::assign::{assign, fingerprint, rules_hash, Candidate, RuleFingerprints};
use super::backend::{Backend, ClusterBackend};
use super::lease::LeaseTable;
use super::membership::{live, millis, Heartbeat};
use crate::rule::Rule;
use crate::state::{
    Checkpoint, CheckpointFence, ClusterStateStore, LeaseOutcome, LeaseWrite, StateError,
};

/// Wall-clock time for lease documents and heartbeats.
pub type WallClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Lease timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    pub lease: Duration,
}

/// What `/healthz`, `/metrics` and the logs show of coordination.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CoordView {
    pub instance_id: String,
    pub live_instances: Vec<String>,
    /// Rules assigned to this instance by the last view.
    pub rules_assigned: usize,
    /// Leases held and valid now.
    pub leases_valid: usize,
    /// The rules of those leases.
    pub leases: Vec<String>,
    /// Leases lost to another instance (a 409) since start.
    pub leases_lost: u64,
    /// Cluster requests spent on coordination since start.
    pub requests: u64,
    /// Seconds since the last heartbeat that reached the cluster.
    pub last_heartbeat_age_secs: Option<f64>,
}

/// This instance's rules, as published.
struct RuleSetInfo {
    rules: Arc<RuleFingerprints>,
    hash: String,
    loaded_at: DateTime<Utc>,
    published: bool,
}

struct Inner {
    rules: RuleSetInfo,
    live: Vec<Heartbeat>,
    rule_sets: HashMap<String, Arc<RuleFingerprints>>,
    owners: HashMap<String, String>,
    table: LeaseTable,
    last_beat: Option<Instant>,
}

pub struct Coordinator {
    me: String,
    version: String,
    started_at: DateTime<Utc>,
    timing: Timing,
    backend: Arc<dyn Backend>,
    wall: WallClock,
    inner: Mutex<Inner>,
    /// One lock per rule: a checkpoint write and a lease write of the
    /// same rule never cross (each is conditional on the other's version).
    writes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    requests: AtomicU64,
    lost: AtomicU64,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("me", &self.me).finish()
    }
}

/// Held while a rule runs: its lease is not released under the run.
pub struct RunPermit {
    coord: Arc<Coordinator>,
    rule_id: String,
}

impl Drop for RunPermit {
    fn drop(&mut self) {
        self.coord.inner().table.set_running(&self.rule_id, false);
    }
}

impl Coordinator {
    /// Over the cluster state of `store` (its indices).
    pub fn new(
        me: String,
        timing: Timing,
        store: ClusterStateStore,
        wall: WallClock,
    ) -> Coordinator {
        Coordinator::with_backend(me, timing, Arc::new(ClusterBackend::new(&store)), wall)
    }

    pub fn with_backend(
        me: String,
        timing: Timing,
        backend: Arc<dyn Backend>,
        wall: WallClock,
    ) -> Coordinator {
        let now = wall();
        let empty = Arc::new(RuleFingerprints::new());
        Coordinator {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now,
            timing,
            backend,
            wall,
            inner: Mutex::new(Inner {
                rules: RuleSetInfo {
                    hash: rules_hash(&empty),
                    rules: empty,
                    loaded_at: now,
                    published: false,
                },
                live: Vec::new(),
                rule_sets: HashMap::new(),
                owners: HashMap::new(),
                table: LeaseTable::new(&me, timing.lease),
                last_beat: None,
            }),
            me,
            writes: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.me
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self, rule_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(rule_id.to_string()).or_default().clone()
    }

    fn count(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    /// The rules this instance has loaded (at start and after a reload).
    pub fn set_rules<'a>(&self, rules: impl Iterator<Item = &'a Arc<Rule>>) {
        let fps: RuleFingerprints = rules.map(|r| (r.rule_id.clone(), fingerprint(r))).collect();
        let hash = rules_hash(&fps);
        let mut inner = self.inner();
        if inner.rules.hash == hash && inner.rules.published {
            return;
        }
        let rules = Arc::new(fps);
        inner.rule_sets.insert(hash.clone(), rules.clone());
        inner.rules = RuleSetInfo {
            rules,
            hash,
            loaded_at: (self.wall)(),
            published: false,
        };
    }

    /// Whether this instance may run `rule_id` now: it is assigned here
    /// and its lease is held and valid. The permit keeps the lease from
    /// being released until the run is over.
    pub fn may_run(self: &Arc<Self>, rule_id: &str) -> Option<RunPermit> {
        let mut inner = self.inner();
        let mine = inner.owners.get(rule_id).is_some_and(|o| *o == self.me);
        if !mine || !inner.table.is_valid(rule_id, Instant::now()) {
            return None;
        }
        inner.table.set_running(rule_id, true);
        Some(RunPermit {
            coord: self.clone(),
            rule_id: rule_id.to_string(),
        })
    }

    /// Whether [`Coordinator::may_run`] would let `rule_id` run now.
    pub fn holds(&self, rule_id: &str) -> bool {
        let inner = self.inner();
        inner.owners.get(rule_id).is_some_and(|o| *o == self.me)
            && inner.table.is_valid(rule_id, Instant::now())
    }

    /// Holds a valid lease of `rule_id` (assigned here or not).
    pub fn lease_valid(&self, rule_id: &str) -> bool {
        self.inner().table.is_valid(rule_id, Instant::now())
    }

    /// Whether this instance is first (by id) among the live ones by the
    /// last view: the one that does what belongs to no rule (alerts about
    /// detectd itself, messages of rules no instance runs any more).
    pub fn is_leader(&self) -> bool {
        let inner = self.inner();
        inner
            .live
            .iter()
            .map(|b| b.instance_id.as_str())
            .chain(std::iter::once(self.me.as_str()))
            .min()
            == Some(self.me.as_str())
    }

    /// The owner of `rule_id` by the last view (`None`: nobody runs it).
    pub fn owner(&self, rule_id: &str) -> Option<String> {
        self.inner().owners.get(rule_id).cloned()
    }

    pub fn view(&self) -> CoordView {
        let inner = self.inner();
        let now = Instant::now();
        CoordView {
            instance_id: self.me.clone(),
            live_instances: inner.live.iter().map(|b| b.instance_id.clone()).collect(),
            rules_assigned: inner.owners.values().filter(|o| **o == self.me).count(),
            leases_valid: inner.table.valid_count(now),
            leases: {
                let mut ids: Vec<String> = inner
                    .table
                    .held()
                    .filter(|(_, h)| h.valid_until > now)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.sort();
                ids
            },
            leases_lost: self.lost.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            last_heartbeat_age_secs: inner
                .last_beat
                .map(|t| now.saturating_duration_since(t).as_secs_f64()),
        }
    }

    /// One heartbeat's work (see the module doc). Failures are logged.
    pub async fn tick(&self) {
        let wall = (self.wall)();
        if let Err(e) = self.refresh_view(wall).await {
            tracing::warn!(instance_id = %self.me, error = %e, "instances not read, keeping the last view");
        }
        // The leases' expiry is counted from when their write is sent, not
        // from the start of the tick: the view may have taken a while.
        if let Err(e) = self.work_leases().await {
            tracing::warn!(instance_id = %self.me, error = %e, "leases not written; unrenewed leases run out");
        }
    }

    async fn refresh_view(&self, wall: DateTime<Utc>) -> Result<(), crate::cluster::ClusterError> {
        let (publish, beat) = {
            let inner = self.inner();
            let publish = (!inner.rules.published)
                .then(|| (inner.rules.hash.clone(), inner.rules.rules.clone()));
            let beat = Heartbeat {
                instance_id: self.me.clone(),
                version: self.version.clone(),
                rules_hash: inner.rules.hash.clone(),
                rules_count: inner.rules.rules.len(),
                rules_loaded_at: inner.rules.loaded_at,
                started_at: self.started_at,
                last_seen: wall,
                lease_ms: millis(self.timing.lease),
            };
            (publish, beat)
        };
        if let Some((hash, rules)) = publish {
            self.count(1);
            self.backend.publish_rules(&hash, &rules).await?;
            let mut inner = self.inner();
            if inner.rules.hash == hash {
                inner.rules.published = true;
            }
        }
        let sent = Instant::now();
        self.count(1);
        self.backend.beat(&beat).await?;
        self.inner().last_beat = Some(sent);
        self.count(1);
        let mut beats = self.backend.heartbeats().await?;
        // This instance is live whether or not the index shows its
        // heartbeat yet (it is refreshed about once a second).
        beats.retain(|b| b.instance_id != self.me);
        beats.push(beat);
        let beats = live(beats, wall);
        let unknown: Vec<String> = {
            let inner = self.inner();
            let mut u: Vec<String> = beats
                .iter()
                .map(|b| b.rules_hash.clone())
                .filter(|h| !inner.rule_sets.contains_key(h))
                .collect();
            u.sort();
            u.dedup();
            u
        };
        let fetched = if unknown.is_empty() {
            HashMap::new()
        } else {
            self.count(1);
            self.backend.rule_sets(&unknown).await?
        };
        let mut inner = self.inner();
        inner.rule_sets.extend(fetched);
        let candidates: Vec<Candidate> = beats
            .iter()
            .map(|b| Candidate {
                id: b.instance_id.clone(),
                rules_loaded_at: b.rules_loaded_at,
                rules: inner.rule_sets.get(&b.rules_hash).cloned(),
            })
            .collect();
        let owners = assign(&candidates);
        let before = inner.owners.values().filter(|o| **o == self.me).count();
        let after = owners.values().filter(|o| **o == self.me).count();
        let members: Vec<&str> = beats.iter().map(|b| b.instance_id.as_str()).collect();
        if before != after || inner.live.len() != beats.len() {
            tracing::info!(
                instance_id = %self.me,
                live_instances = ?members,
                rules_assigned = after,
                "rules assigned"
            );
        }
        inner.owners = owners;
        inner.live = beats;
        Ok(())
    }

    async fn work_leases(&self) -> Result<(), StateError> {
        let (mine, wanted) = {
            let inner = self.inner();
            let mine: HashSet<String> = inner
                .owners
                .iter()
                .filter(|(_, o)| **o == self.me)
                .map(|(r, _)| r.clone())
                .collect();
            let wanted = inner.table.wanted(&mine);
            (mine, wanted)
        };
        let stored = if wanted.is_empty() {
            Vec::new()
        } else {
            self.count(1);
            self.backend.leases(&wanted).await?
        };
        // The write locks of every lease held and not being committed now:
        // held across the bulk, so no checkpoint write crosses it.
        let held: Vec<String> = self
            .inner()
            .table
            .held()
            .map(|(id, _)| id.clone())
            .collect();
        let mut guards = Vec::new();
        let mut busy = HashSet::new();
        for id in held {
            match self.write_lock(&id).try_lock_owned() {
                Ok(g) => guards.push(g),
                Err(_) => {
                    busy.insert(id);
                }
            }
        }
        // Taken after the reads: what is written expires a lease time after
        // `wall`, and is valid here until `sent` plus a lease time.
        let sent = Instant::now();
        let wall = (self.wall)();
        let (renewals, takes) = {
            let inner = self.inner();
            (
                inner.table.plan_renewals(&mine, &busy, wall),
                inner.table.plan_takes(&stored, wall),
            )
        };
        let released: HashSet<String> =
            renewals.release.iter().map(|w| w.rule_id.clone()).collect();
        let writes: Vec<LeaseWrite> = renewals
            .renew
            .into_iter()
            .chain(renewals.release)
            .chain(takes)
            .collect();
        if writes.is_empty() {
            return Ok(());
        }
        self.count(1);
        let outcomes = self.backend.write_leases(&writes).await;
        let mut inner = self.inner();
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => {
                // Released or not, a rule no longer ours is not run here.
                for id in &released {
                    inner.table.drop_lease(id);
                }
                return Err(e);
            }
        };
        let (mut taken, mut lost) = (0usize, 0usize);
        for (w, outcome) in writes.into_iter().zip(outcomes) {
            if released.contains(&w.rule_id) {
                inner.table.drop_lease(&w.rule_id);
                continue;
            }
            match outcome {
                LeaseOutcome::Written(v) => {
                    if inner.table.get(&w.rule_id).is_none() {
                        taken += 1;
                    }
                    inner.table.written(&w.rule_id, w.lease, v, sent);
                }
                LeaseOutcome::Conflict => {
                    if inner.table.drop_lease(&w.rule_id).is_some() {
                        lost += 1;
                        self.lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                LeaseOutcome::Failed(why) => {
                    tracing::warn!(rule_id = %w.rule_id, reason = %why, "lease not written")
                }
            }
        }
        drop(guards);
        if taken > 0 || lost > 0 || !released.is_empty() {
            tracing::info!(
                instance_id = %self.me,
                taken,
                lost,
                released = released.len(),
                held = inner.table.held().count(),
                "leases changed"
            );
        }
        Ok(())
    }

    /// A clean shutdown: releases every lease (no run is left) and removes
    /// the heartbeat, so the others take over at their next heartbeat.
    pub async fn leave(&self) {
        let wall = (self.wall)();
        let writes: Vec<LeaseWrite> = {
            let inner = self.inner();
            inner
                .table
                .plan_renewals(&HashSet::new(), &HashSet::new(), wall)
                .release
        };
        if !writes.is_empty() {
            self.count(1);
            if let Err(e) = self.backend.write_leases(&writes).await {
                tracing::warn!(error = %e, "leases not released; they run out after the lease time");
            }
        }
        self.count(1);
        if let Err(e) = self.backend.leave(&self.me).await {
            tracing::warn!(error = %e, "heartbeat not removed");
        }
        tracing::info!(instance_id = %self.me, released = writes.len(), "left the instances");
    }

    /// Writes `checkpoint` only while this instance holds the rule's
    /// lease, and only if nobody wrote the rule's document since; the
    /// commit renews the lease.
    pub async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        let rule_id = &checkpoint.rule_id;
        let lock = self.write_lock(rule_id);
        let _guard = lock.lock().await;
        let sent = Instant::now();
        let Some((lease, version)) = self.inner().table.for_commit(rule_id, sent, (self.wall)())
        else {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(StateError::LeaseLost {
                rule_id: rule_id.clone(),
                why: "this instance's lease ran out or was released".to_string(),
            });
        };
        match self
            .backend
            .save_checkpoint(checkpoint, &lease, version)
            .await
        {
            Ok(v) => {
                self.inner().table.written(rule_id, lease, v, sent);
                Ok(())
            }
            Err(e @ StateError::LeaseLost { .. }) => {
                self.inner().table.drop_lease(rule_id);
                self.lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule_id = %rule_id, instance_id = %self.me, "checkpoint refused: the lease was taken by another instance");
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

impl CheckpointFence for Coordinator {
    fn save<'a>(
        &'a self,
        store: &'a ClusterStateStore,
        checkpoint: &'a Checkpoint,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StateError>> + Send + 'a>>
    {
        // The backend writes to the same state index as `store`.
        let _ = store;
        Box::pin(Coordinator::save_checkpoint(self, checkpoint))
    }
}
