//! When rules run: one task per rule firing on its interval or its cron
//! schedule, start-up jitter, a global concurrency limit, single flight per
//! rule.
//!
//! A plain tokio loop rather than `tokio-cron-scheduler`, also for cron
//! rules. Its 0.15 source shows why it cannot be the timer here:
//! - its ticker sleeps 500 ms at a time and compares each job's next tick
//!   with `chrono::Utc::now()` (`scheduler.rs`), the system clock, which
//!   `tokio::time::pause()` / `advance()` do not move: a paused-clock test
//!   would never see a cron job fire (or see it at real time), and fires
//!   are up to half a second late;
//! - every activation is `tokio::spawn`ed on its own (`job/runner.rs`)
//!   without waiting for the job's previous run: no single flight, and a
//!   lock taken inside the job would queue missed fires (a pile-up) rather
//!   than collapse them;
//! - a timezone is turned into a fixed UTC offset when the job is created
//!   (`Job::new_tz`), so `9-17` in `Europe/Berlin` slips an hour at the next
//!   daylight-saving change;
//! - its spawned tasks sit outside the daemon's task tracker, so shutdown
//!   could not wait for a run it started.
//!
//! So cron rules use the parser it is built on (`croner`, in
//! `schedule::cron`) for the next fire time, computed from the daemon's
//! [`Clock`], and wait for it with `tokio::time::sleep_until` in the same
//! loop as interval rules: it runs on tokio's clock, so tests drive it with
//! `tokio::time::pause()` / `advance()`; single flight falls out of
//! awaiting the run inside the loop; and shutdown is one cancellation token
//! plus a task tracker, with runs already started left to finish.
//!
//! An interval rule fires on a grid `epoch + offset + k * interval`, where
//! the offset is derived from the rule id (so the same on every start and
//! spread evenly over the interval; zero with `schedule.first_run = "now"`)
//! and `epoch` is the daemon's start. A cron rule fires at its cron times
//! exactly, neither spread nor run at start (`first_run` is about interval
//! rules; the first cron run's catch-up covers the time since the
//! checkpoint). Every fire time the scheduler picks is written, in wall
//! time, to the [`RuleTable`](super::RuleTable). A run that overruns its
//! interval, or the next cron fire, is followed by the next one right after
//! it ends; missed ticks or fires are not queued, so runs never pile up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Clock, Shared};
use crate::config::FirstRun;
use crate::rule::Rule;
use crate::runner::{ExecutionRecord, RuleExecutor};
use crate::schedule::cron::CronSchedule;

/// Where in its interval a rule fires: a stable hash of the rule id modulo
/// the interval, so 1000 rules spread evenly rather than firing at once.
pub fn jitter_offset(rule_id: &str, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    let digest = Sha256::digest(rule_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_be_bytes(first) % ms)
}

/// The first grid point `epoch + offset + k * interval` (k >= 0) at or
/// after `now`.
pub fn next_fire(epoch: Instant, now: Instant, offset: Duration, interval: Duration) -> Instant {
    let first = epoch + offset;
    if now <= first || interval.is_zero() {
        return first.max(now);
    }
    let behind = now - first;
    let steps = behind.as_nanos().div_ceil(interval.as_nanos());
    let steps = u32::try_from(steps).unwrap_or(u32::MAX);
    first + interval.saturating_mul(steps)
}

/// How far ahead a cron fire is waited for at most: about 30 years, far
/// less than tokio's `Instant` can add (a fire at `DateTime::MAX_UTC`, a
/// schedule that never fires again, would overflow it).
pub(super) const FAR_AHEAD: Duration = Duration::from_secs(30 * 365 * 86_400);

struct Scheduled {
    rule: Arc<Rule>,
    cancel: CancellationToken,
}

/// The running rule tasks, updated when the rule set changes.
pub struct Scheduler<E, C> {
    shared: Arc<Shared<E, C>>,
    /// The grid's origin: the first `apply` (so the time spent loading rules
    /// before it does not push the first runs back a whole interval).
    epoch: Option<Instant>,
    first_run: FirstRun,
    root: CancellationToken,
    tracker: TaskTracker,
    tasks: HashMap<String, Scheduled>,
    /// One lock per rule id, kept across reloads so that a replaced rule's
    /// new task cannot start while the old task's run is still going.
    flights: HashMap<String, Arc<Mutex<()>>>,
    /// The first runs the last `apply` planned (wall time), by rule id.
    planned: HashMap<String, chrono::DateTime<chrono::Utc>>,
}

impl<E, C> Scheduler<E, C>
where
    E: RuleExecutor + 'static,
    C: Clock,
{
    pub fn new(shared: Arc<Shared<E, C>>, first_run: FirstRun, tracker: TaskTracker) -> Self {
        Scheduler {
            shared,
            epoch: None,
            first_run,
            root: CancellationToken::new(),
            tracker,
            tasks: HashMap::new(),
            flights: HashMap::new(),
            planned: HashMap::new(),
        }
    }

    /// When the rules the last [`Scheduler::apply`] started run first:
    /// what the start-up lines announce (the rule table may already show a
    /// run in flight by then).
    pub fn planned(&self) -> &HashMap<String, chrono::DateTime<chrono::Utc>> {
        &self.planned
    }

    /// Makes the running tasks match `rules`: new rules start, removed ones
    /// stop, changed ones are replaced (on the same grid). Returns the ids
    /// of rules no longer scheduled.
    pub fn apply<'a>(&mut self, rules: impl Iterator<Item = &'a Arc<Rule>>) -> Vec<String> {
        let wanted: HashMap<String, Arc<Rule>> =
            rules.map(|r| (r.rule_id.clone(), r.clone())).collect();
        let mut removed = Vec::new();
        self.tasks.retain(|id, task| {
            let keep = wanted.get(id).is_some_and(|r| **r == *task.rule);
            if !keep {
                task.cancel.cancel();
                if !wanted.contains_key(id) {
                    removed.push(id.clone());
                }
            }
            keep
        });
        for id in &removed {
            self.flights.remove(id);
        }
        let mut new: Vec<&Arc<Rule>> = wanted
            .iter()
            .filter(|(id, _)| !self.tasks.contains_key(*id))
            .map(|(_, r)| r)
            .collect();
        new.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        self.planned.clear();
        let now = Instant::now();
        let epoch = *self.epoch.get_or_insert(now);
        let sharing = self.shared.executor.shares_scans();
        if sharing {
            self.shared
                .executor
                .fire_together(cohorts(wanted.values().cloned()));
        }
        for rule in new {
            let (first, first_wall) = match &rule.schedule.cron {
                Some(cron) => {
                    let wall = cron
                        .next_after(self.shared.clock.now())
                        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
                    (self.shared.instant_of(wall), wall)
                }
                None => {
                    let interval = rule.schedule.interval;
                    let offset = match self.first_run {
                        FirstRun::Spread => jitter_offset(&spread_key(rule, sharing), interval),
                        FirstRun::Now => Duration::ZERO,
                    };
                    let first = next_fire(epoch, now, offset, interval);
                    (first, self.shared.wall_time(first))
                }
            };
            self.shared.rules.schedule(rule, first_wall);
            self.planned.insert(rule.rule_id.clone(), first_wall);
            let cancel = self.root.child_token();
            let flight = self
                .flights
                .entry(rule.rule_id.clone())
                .or_default()
                .clone();
            tracing::debug!(rule_id = %rule.rule_id, first_run_in_ms = (first - now).as_millis() as u64, "rule scheduled");
            self.tracker.spawn(rule_loop(
                self.shared.clone(),
                self.tracker.clone(),
                rule.clone(),
                flight,
                (first, first_wall),
                cancel.clone(),
            ));
            self.tasks.insert(
                rule.rule_id.clone(),
                Scheduled {
                    rule: rule.clone(),
                    cancel,
                },
            );
        }
        removed
    }

    /// Stops scheduling: no run starts after this; runs in flight go on.
    pub fn stop(&self) {
        self.root.cancel();
    }
}

async fn rule_loop<E, C>(
    shared: Arc<Shared<E, C>>,
    tracker: TaskTracker,
    rule: Arc<Rule>,
    flight: Arc<Mutex<()>>,
    (mut next, first_wall): (Instant, chrono::DateTime<chrono::Utc>),
    cancel: CancellationToken,
) where
    E: RuleExecutor + 'static,
    C: Clock,
{
    let interval = rule.schedule.interval;
    let cron = rule.schedule.cron.as_ref();
    // `due` is the grid point (or cron fire) the run belongs to; `next` when
    // it can start (later than `due` after an overrun). Their difference is
    // lateness. A cron rule also keeps its fire in wall time: the fire
    // itself, not one read back from `next` (two clock readings apart, it
    // could fall just before the fire and pick the same fire again).
    let mut due = next;
    let mut due_wall = first_wall;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        if cron.is_some() && shared.clock.now() < due_wall {
            // The wall clock was set back while we slept: the fire is a
            // wall time, so wait for it again.
            next = shared.instant_of(due_wall);
            continue;
        }
        // Rules that share scans run with their fire as `now` (the same
        // for every rule of the cohort; see `runner::share`), unless the
        // rule's previous run overran it: this run then starts later than
        // its fire, alone, and runs at the time it starts (its window
        // catches up to then; a `now` before the previous run's end would
        // make the two runs' records look overlapped, however short the
        // overrun: `next` is exactly `due` unless the run overran).
        let overran = next > due;
        let tick = match (overran, cron) {
            (true, _) => None,
            (false, Some(_)) => Some(due_wall),
            (false, None) => Some(shared.grid_wall(due)),
        };
        let Some(record) =
            run_guarded(&shared, &tracker, &rule, &flight, &cancel, (due, tick)).await
        else {
            return;
        };
        drop(record);
        let now = Instant::now();
        // When the next run is due in wall time, for the rule table.
        let next_wall = match cron {
            None => {
                due = grid_point_after(due, interval, next);
                next = due;
                if next < now {
                    // Overran: go again right away, once, rather than
                    // catching up every missed tick (the runner's catch-up
                    // covers the time). The run after that is back on the
                    // rule's grid, and so with its cohort again.
                    next = now;
                }
                shared.wall_time(next)
            }
            Some(cron) => {
                let wall = shared.clock.now();
                (due_wall, next) = next_cron_fire(cron, due_wall, wall, now);
                due = shared.instant_of(due_wall);
                // the fire itself, not a reading of `next` a tick off
                due_wall.max(wall)
            }
        };
        // A replaced rule's old task must not overwrite its successor's.
        if !cancel.is_cancelled() {
            shared.rules.set_next_run(&rule.rule_id, next_wall);
        }
    }
}

/// The first point of the grid `due + k × interval` after `started`
/// (`started` ≥ `due`): the fire the run after one that started at
/// `started` belongs to. On time, that is `due + interval`; a run that
/// started late (its previous one overran) leaves the grid points it
/// started after behind it.
fn grid_point_after(due: Instant, interval: Duration, started: Instant) -> Instant {
    next_fire(
        due,
        started + Duration::from_nanos(1),
        Duration::ZERO,
        interval,
    )
}

/// After a cron run that belonged to the fire `due` and ended at `wall`
/// (`now` on tokio's clock): the fire the next run belongs to, and when it
/// starts. Fires missed while the run overran collapse into one run right
/// away, which belongs to the last of them (the runner's catch-up covers
/// the time); otherwise the next fire, at its time.
fn next_cron_fire(
    cron: &CronSchedule,
    due: chrono::DateTime<chrono::Utc>,
    wall: chrono::DateTime<chrono::Utc>,
    now: Instant,
) -> (chrono::DateTime<chrono::Utc>, Instant) {
    let never = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    let following = cron.next_after(due).unwrap_or(never);
    if following > wall {
        let ahead = (following - wall).to_std().unwrap_or_default();
        let ahead = ahead.min(FAR_AHEAD);
        return (following, now + ahead);
    }
    let last_missed = cron
        .previous_before(wall + chrono::TimeDelta::nanoseconds(1))
        .unwrap_or(following);
    (last_missed, now)
}

/// Which rules fire together when scans are shared: interval rules by
/// interval (their grid offset is the interval's, not the rule's), cron
/// rules by schedule.
pub(super) fn cohorts(rules: impl Iterator<Item = Arc<Rule>>) -> Vec<Vec<Arc<Rule>>> {
    let mut by_key: std::collections::BTreeMap<String, Vec<Arc<Rule>>> = Default::default();
    for rule in rules {
        by_key
            .entry(spread_key(&rule, true))
            .or_default()
            .push(rule);
    }
    by_key.into_values().collect()
}

/// What spreads a rule's first fire over its interval: its id, or, when
/// scans are shared, its schedule, so the rules of one interval fire
/// together.
fn spread_key(rule: &Rule, sharing: bool) -> String {
    match (&rule.schedule.cron, sharing) {
        (Some(cron), _) => format!("cron {cron}"),
        (None, true) => format!("every {} ms", rule.schedule.interval.as_millis()),
        (None, false) => rule.rule_id.clone(),
    }
}

/// One run under the rule's flight lock and a concurrency permit (`tick`:
/// the `now` of a run that shares scans, see [`Shared::execute`]); `None`
/// if cancelled before it started, `Some(None)` if another instance owns
/// the rule now. Once started, the run finishes even if
/// the daemon shuts down meanwhile (its writes and checkpoint matter).
/// `due` is when the schedule wanted it to start: waiting for the lock or
/// a permit past it is the run's start delay.
pub(super) async fn run_guarded<E, C>(
    shared: &Arc<Shared<E, C>>,
    tracker: &TaskTracker,
    rule: &Arc<Rule>,
    flight: &Arc<Mutex<()>>,
    cancel: &CancellationToken,
    (due, tick): (Instant, Option<chrono::DateTime<chrono::Utc>>),
) -> Option<Option<ExecutionRecord>>
where
    E: RuleExecutor + 'static,
    C: Clock,
{
    let _flight = tokio::select! {
        biased;
        _ = cancel.cancelled() => return None,
        g = flight.clone().lock_owned() => g,
    };
    let _permit = tokio::select! {
        biased;
        _ = cancel.cancelled() => return None,
        p = acquire(&shared.limit) => p,
    };
    // Several instances: run only where the rule is assigned and its lease
    // held, asked once the run could start (a run queued for a permit must
    // not keep a lease from moving). Elsewhere the tick passes: the owner's
    // checkpoint says what is covered, so a skipped tick loses no window.
    let Ok(_lease) = shared.lease(&rule.rule_id) else {
        return Some(None);
    };
    Some(Some(
        shared.execute(tracker, rule.clone(), (due, tick)).await,
    ))
}

pub(super) async fn acquire(limit: &Arc<Semaphore>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    // The semaphore is never closed; `None` would only mean no limit.
    limit.clone().acquire_owned().await.ok()
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    #[test]
    fn the_fire_after_a_late_start_is_the_next_grid_point() {
        let due = Instant::now();
        let min = Duration::from_secs(60);
        // on time: one interval on
        assert_eq!(grid_point_after(due, min, due), due + min);
        // due at 60 s, started at 150 s: the grid point 120 s is behind
        // it, 180 s is next
        let late = due + Duration::from_secs(90);
        assert_eq!(grid_point_after(due, min, late), due + 2 * min);
        // started exactly on a later grid point: the one after it
        assert_eq!(grid_point_after(due, min, due + 2 * min), due + 3 * min);
    }
}
