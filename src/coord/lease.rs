//! The leases this instance holds, and what to write about leases at a
//! heartbeat: pure logic over tokio's clock, so expiry and hand-over are
//! tested with `tokio::time::pause()`.
//!
//! A lease is valid here until the time its last write was *sent* plus the
//! lease time: never later than the others, who count it from the expiry
//! written in the document (the time of the write, by their clocks), may
//! take it. When clocks disagree the fence still holds: whoever takes the
//! lease changes the document, and the old owner's checkpoint, conditional
//! on the version it saw, is refused.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::state::{LeaseDoc, LeaseWrite, StoredLease, Versioned};

/// A lease this instance holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub lease: LeaseDoc,
    /// The state document's version after this instance's last write.
    pub version: Versioned,
    /// On tokio's clock: when the lease stops being valid here.
    pub valid_until: Instant,
    /// A run of the rule is in flight: the lease is not released under it.
    pub running: bool,
}

/// The leases held, by rule id.
#[derive(Debug)]
pub struct LeaseTable {
    me: String,
    length: Duration,
    held: HashMap<String, Held>,
}

impl LeaseTable {
    pub fn new(me: &str, length: Duration) -> LeaseTable {
        LeaseTable {
            me: me.to_string(),
            length,
            held: HashMap::new(),
        }
    }

    pub fn length(&self) -> Duration {
        self.length
    }

    pub fn get(&self, rule_id: &str) -> Option<&Held> {
        self.held.get(rule_id)
    }

    /// Holds the lease of `rule_id` and it has not run out at `now`.
    pub fn is_valid(&self, rule_id: &str, now: Instant) -> bool {
        self.held.get(rule_id).is_some_and(|h| h.valid_until > now)
    }

    /// A write of `lease` sent at `sent` came back as `version`.
    pub fn written(&mut self, rule_id: &str, lease: LeaseDoc, version: Versioned, sent: Instant) {
        let running = self.held.get(rule_id).is_some_and(|h| h.running);
        self.held.insert(
            rule_id.to_string(),
            Held {
                lease,
                version,
                valid_until: sent + self.length,
                running,
            },
        );
    }

    /// The lease is gone (taken by another instance, or released).
    pub fn drop_lease(&mut self, rule_id: &str) -> Option<Held> {
        self.held.remove(rule_id)
    }

    pub fn set_running(&mut self, rule_id: &str, running: bool) {
        if let Some(h) = self.held.get_mut(rule_id) {
            h.running = running;
        }
    }

    /// Leases held, valid or not.
    pub fn held(&self) -> impl Iterator<Item = (&String, &Held)> {
        self.held.iter()
    }

    /// Leases valid at `now`.
    pub fn valid_count(&self, now: Instant) -> usize {
        self.held.values().filter(|h| h.valid_until > now).count()
    }

    /// The lease this instance writes for `rule_id` at `wall`: its own,
    /// running for another lease time.
    fn extended(&self, held: &Held, wall: DateTime<Utc>) -> LeaseDoc {
        LeaseDoc {
            owner: self.me.clone(),
            epoch: held.lease.epoch,
            expires_at: wall + chrono::Duration::from_std(self.length).unwrap_or_default(),
        }
    }

    /// The lease a checkpoint of `rule_id` is written under at `wall`
    /// (extended: a commit renews the lease); `None` if not held and valid.
    pub fn for_commit(
        &self,
        rule_id: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<(LeaseDoc, Versioned)> {
        let held = self.held.get(rule_id).filter(|h| h.valid_until > now)?;
        Some((self.extended(held, wall), held.version))
    }

    /// What to write at a heartbeat for the leases held: renewals of those
    /// still `mine` or in use by a run, releases (expiry now) of the others. Rules in `busy` (a checkpoint is being written) are left for
    /// the next heartbeat.
    pub fn plan_renewals(
        &self,
        mine: &HashSet<String>,
        busy: &HashSet<String>,
        wall: DateTime<Utc>,
    ) -> Renewals {
        let mut out = Renewals::default();
        let mut ids: Vec<&String> = self.held.keys().collect();
        ids.sort();
        for id in ids {
            let held = &self.held[id];
            if busy.contains(id) {
                continue;
            }
            // A rule no longer assigned here keeps its lease while its run
            // is in flight (the run commits under it), then lets it go.
            if mine.contains(id) || held.running {
                out.renew.push(LeaseWrite {
                    rule_id: id.clone(),
                    lease: self.extended(held, wall),
                    version: Some(held.version),
                });
            } else if !held.running {
                out.release.push(LeaseWrite {
                    rule_id: id.clone(),
                    lease: LeaseDoc {
                        expires_at: wall,
                        ..held.lease.clone()
                    },
                    version: Some(held.version),
                });
            }
        }
        out
    }

    /// The rules of `mine` this instance holds no lease of: to be read
    /// (`_mget`) and then taken with [`plan_takes`].
    pub fn wanted(&self, mine: &HashSet<String>) -> Vec<String> {
        let mut ids: Vec<String> = mine
            .iter()
            .filter(|id| !self.held.contains_key(*id))
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// The takes of the stored leases that are free at `wall`: no
    /// document, no lease, a lease past its expiry, or this instance's own
    /// (from before a restart with the same `instance.id`). A lease another
    /// instance holds and has not let run out is waited for.
    pub fn plan_takes(&self, stored: &[StoredLease], wall: DateTime<Utc>) -> Vec<LeaseWrite> {
        let expires_at = wall + chrono::Duration::from_std(self.length).unwrap_or_default();
        stored
            .iter()
            .filter_map(|s| {
                let epoch = match &s.lease {
                    None => 1,
                    Some(l) if l.owner == self.me || l.expires_at <= wall => l.epoch + 1,
                    Some(_) => return None,
                };
                Some(LeaseWrite {
                    rule_id: s.rule_id.clone(),
                    lease: LeaseDoc {
                        owner: self.me.clone(),
                        epoch,
                        expires_at,
                    },
                    version: s.version,
                })
            })
            .collect()
    }
}

/// The lease writes of one heartbeat for leases already held.
#[derive(Debug, Default)]
pub struct Renewals {
    pub renew: Vec<LeaseWrite>,
    pub release: Vec<LeaseWrite>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    fn wall(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn v(seq_no: u64) -> Versioned {
        Versioned {
            seq_no,
            primary_term: 1,
        }
    }

    fn lease(owner: &str, epoch: u64, expires: i64) -> LeaseDoc {
        LeaseDoc {
            owner: owner.into(),
            epoch,
            expires_at: wall(expires),
        }
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_runs_out_a_lease_time_after_its_last_write_was_sent() {
        let mut t = LeaseTable::new("me", LEASE);
        let sent = Instant::now();
        t.written("r", lease("me", 1, 30), v(3), sent);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(t.is_valid("r", Instant::now()));
        assert!(t.for_commit("r", Instant::now(), wall(29)).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!t.is_valid("r", Instant::now()));
        // an expired lease commits nothing
        assert_eq!(t.for_commit("r", Instant::now(), wall(30)), None);
        assert_eq!(t.valid_count(Instant::now()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_extends_the_lease_from_the_time_it_was_sent() {
        let mut t = LeaseTable::new("me", LEASE);
        t.written("r", lease("me", 1, 30), v(3), Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        let plan = t.plan_renewals(&set(&["r"]), &HashSet::new(), wall(10));
        assert_eq!(plan.renew.len(), 1);
        let w = &plan.renew[0];
        // the same epoch, a new expiry, conditional on the last version
        assert_eq!(w.lease, lease("me", 1, 40));
        assert_eq!(w.version, Some(v(3)));
        t.written("r", w.lease.clone(), v(4), Instant::now());
        // valid until 10 + 30 s, past the first write's 30 s
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(t.is_valid("r", Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!t.is_valid("r", Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rule_no_longer_assigned_is_released_only_once_its_run_is_over() {
        let mut t = LeaseTable::new("me", LEASE);
        t.written("r", lease("me", 4, 30), v(8), Instant::now());
        t.set_running("r", true);
        // kept (renewed) under the run, so the run can commit
        let plan = t.plan_renewals(&HashSet::new(), &HashSet::new(), wall(5));
        assert!(plan.release.is_empty());
        assert_eq!(plan.renew.len(), 1);
        t.set_running("r", false);
        let plan = t.plan_renewals(&HashSet::new(), &HashSet::new(), wall(5));
        assert_eq!(plan.release.len(), 1);
        // released: expired now, same epoch (the taker adds one)
        assert_eq!(plan.release[0].lease, lease("me", 4, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_being_committed_is_left_to_the_next_heartbeat() {
        let mut t = LeaseTable::new("me", LEASE);
        t.written("r", lease("me", 1, 30), v(1), Instant::now());
        let plan = t.plan_renewals(&set(&["r"]), &set(&["r"]), wall(1));
        assert!(plan.renew.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn free_leases_are_taken_with_the_next_epoch_and_live_ones_waited_for() {
        let t = LeaseTable::new("me", LEASE);
        let stored = [
            StoredLease {
                rule_id: "new".into(),
                version: None,
                lease: None,
            },
            StoredLease {
                rule_id: "old".into(),
                version: Some(v(7)),
                lease: None,
            },
            StoredLease {
                rule_id: "expired".into(),
                version: Some(v(9)),
                lease: Some(lease("other", 5, 99)),
            },
            StoredLease {
                rule_id: "held".into(),
                version: Some(v(2)),
                lease: Some(lease("other", 2, 101)),
            },
            StoredLease {
                rule_id: "mine-before-restart".into(),
                version: Some(v(3)),
                lease: Some(lease("me", 6, 200)),
            },
        ];
        let takes = t.plan_takes(&stored, wall(100));
        let got: Vec<(&str, u64, Option<Versioned>)> = takes
            .iter()
            .map(|w| (w.rule_id.as_str(), w.lease.epoch, w.version))
            .collect();
        assert_eq!(
            got,
            [
                ("new", 1, None),
                ("old", 1, Some(v(7))),
                ("expired", 6, Some(v(9))),
                ("mine-before-restart", 7, Some(v(3))),
            ]
        );
        assert!(takes.iter().all(|w| w.lease.expires_at == wall(130)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_owners_lease_is_taken_once_it_has_run_out() {
        // the dead owner renewed at 0; the others see its expiry at 30
        let t = LeaseTable::new("me", LEASE);
        let stored = [StoredLease {
            rule_id: "r".into(),
            version: Some(v(5)),
            lease: Some(lease("dead", 3, 30)),
        }];
        assert!(t.plan_takes(&stored, wall(29)).is_empty());
        assert_eq!(t.plan_takes(&stored, wall(30)).len(), 1);
        assert_eq!(t.wanted(&set(&["r"])), ["r"]);
    }
}
