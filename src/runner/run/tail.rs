//! Near-real-time tails: between its scheduled runs, a rule may read the
//! last few seconds again and again (`[realtime]`), so an attack alerts
//! seconds after its last event arrives rather than at the next run.
//!
//! A tail is a range run over `[now - lag - every, now - lag]`: the same
//! detector, dedup against the alerts index and the same deterministic
//! alert ids as the scheduled windows, and no checkpoint read or written.
//! So the two modes cannot disagree: what a tail alerted, the next
//! scheduled window finds again as duplicates, and what a tail missed (an
//! event later than `lag`, a tail skipped while the daemon was busy or
//! down) the scheduled windows still find, as they do without tails. Tails
//! only ever make alerts earlier. The rules of one daemon tail together,
//! on one grid, so with shared scans each tail reads the new events once
//! for all of them (`runner::share`).
//!
//! A sequence's tail carries its matcher to the next tail ([`TailStates`]):
//! partial sequences, those waiting for a trailing missing-event stage to
//! be decided, and the events of the window's last instant (consecutive
//! windows share it, both ends inclusive, so none is fed twice). A tail
//! that goes on from the one before reads its own few seconds only, and
//! offers every sequence decided in them; the first tail, and any after a
//! tail skipped, failed, or not yet finished, or a changed rule, starts a
//! matcher afresh: its search reaches back by `maxspan`, and it offers the
//! sequences ending in its window, as a scheduled window does. Only rules
//! whose `maxspan` is at most [`MAX_TAIL_REACH`] tail; a sequence without
//! `maxspan` does not (its scheduled windows forget a partial sequence
//! after `unbounded_sequence_lookback`, a carried matcher would not). The
//! matchers live in memory: a restart starts them afresh. A quiet tail
//! stores no execution record (one every few seconds per rule would flood
//! the executions index): only tails that alert or fail do; warnings are
//! left to the scheduled runs. Between them, a rule's tails alert at most
//! `max_signals` new matches in each interval of the rule ([`TailBudgets`],
//! kept with the state so that it holds across instances).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{delta, sub, RunError, Runner, RunnerSettings};
use crate::rule::Rule;
use crate::runner::detect::{Carried, Detector};
use crate::runner::record::{ExecutionRecord, RunStatus};
use crate::schedule::window::Window;
use crate::sink::AlertSink;
use crate::source::EventSource;
use crate::state::{StateError, StateStore, TailSpend};

/// The longest reach (a sequence's `maxspan`) of a rule that tails: its
/// first tail reads that far back.
pub const MAX_TAIL_REACH: Duration = Duration::from_secs(60 * 60);

/// How often tails run, and how far behind the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailTiming {
    pub every: Duration,
    pub lag: Duration,
}

/// The window of the tail at `now`: the `every` before `now - lag`.
/// Consecutive tails on a grid of `every` tile time without overlap.
pub fn tail_window(timing: TailTiming, now: DateTime<Utc>) -> Window {
    let end = sub(now, delta(timing.lag));
    Window {
        start: sub(end, delta(timing.every)),
        end,
    }
}

/// The sequence matchers tails carry, per rule: what a rule's last tail
/// left, to go on from at the next (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct TailStates {
    rules: Mutex<HashMap<String, TailState>>,
}

#[derive(Debug)]
struct TailState {
    /// The rule as it was: a changed rule starts afresh.
    rule: Rule,
    /// Where the last tail ended: the next goes on only from there.
    until: DateTime<Utc>,
    /// `None` while a tail has it.
    carried: Option<Carried>,
}

impl TailState {
    /// Whether `rule`'s tail of `window` goes on from this state: the last
    /// tail ended where it starts, and the rule is the same.
    fn goes_on_at(&self, rule: &Rule, window: Window) -> bool {
        self.until == window.start && self.rule == *rule
    }
}

impl TailStates {
    /// Whether `rule`'s tail of `window` goes on from a carried state (so
    /// its search starts at the window, not `maxspan` before).
    pub(crate) fn warm(&self, rule: &Rule, window: Window) -> bool {
        let rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules
            .get(&rule.rule_id)
            .is_some_and(|s| s.goes_on_at(rule, window))
    }

    /// The state `rule`'s tail of `window` goes on from: the last tail's,
    /// if it ended where this one starts and the rule is the same.
    pub(super) fn take(&self, rule: &Rule, window: Window) -> Option<Carried> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let state = rules.get_mut(&rule.rule_id)?;
        match state.goes_on_at(rule, window) {
            true => state.carried.take(),
            false => None,
        }
    }

    /// Keeps what `rule`'s tail up to `until` left (unless a later tail
    /// already did).
    pub(super) fn keep(&self, rule: &Rule, until: DateTime<Utc>, carried: Carried) {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        if rules.get(&rule.rule_id).is_some_and(|s| s.until > until) {
            return;
        }
        let state = TailState {
            rule: rule.clone(),
            until,
            carried: Some(carried),
        };
        rules.insert(rule.rule_id.clone(), state);
    }

    /// Forgets the states of rules that no longer tail (removed at a
    /// reload, or no longer tailable).
    pub(super) fn retain(&self, tailing: &[std::sync::Arc<Rule>]) {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.retain(|id, _| tailing.iter().any(|r| r.rule_id == *id));
    }

    /// Forgets `rule`'s state (its tail failed: the next starts afresh).
    pub(super) fn forget(&self, rule: &Rule) {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.remove(&rule.rule_id);
    }
}

/// What each rule's tails alerted in the current interval. A scheduled run
/// alerts at most `max_signals` new matches; a rule's tails, every few
/// seconds, alert at most that many between them in each interval of the
/// rule (on the wall clock's grid of the interval, the same for every
/// instance): a flood alerts no faster with tails than without. What the
/// budget leaves out is capped as in a run (`alerts_capped`, Kibana's
/// warning) and left to the scheduled runs, which have their own
/// `max_signals`. The budget is kept with the state ([`TailSpend`]) each
/// time a tail alerts, and read from it before a tail with matches
/// alerts, so an instance that takes a rule over in the middle of an
/// interval goes on from what the other instance's tails alerted.
#[derive(Debug, Default)]
pub(crate) struct TailBudgets {
    /// Per rule: the interval (its number on the grid) and the new matches
    /// this instance knows its tails alerted in it.
    spent: Mutex<HashMap<String, (i64, u64)>>,
}

impl TailBudgets {
    /// The number of `rule`'s interval holding `now`.
    fn slot(rule: &Rule, now: DateTime<Utc>) -> i64 {
        let interval = i64::try_from(rule.schedule.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        now.timestamp_millis().div_euclid(interval)
    }

    /// What this instance knows `rule`'s tails alerted in `slot`.
    fn known(&self, rule: &Rule, slot: i64) -> u64 {
        let spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        match spent.get(&rule.rule_id) {
            Some(&(s, used)) if s == slot => used,
            _ => 0,
        }
    }

    /// What `rule`'s tail at `now` may alert: what the tails of this
    /// interval left, as this instance knows it or as stored (by another
    /// instance that held the rule before), whichever is less.
    pub(super) async fn left(
        &self,
        state: &impl StateStore,
        rule: &Rule,
        now: DateTime<Utc>,
    ) -> Result<Budget, StateError> {
        let slot = Self::slot(rule, now);
        let stored = match state.tail_spend(&rule.rule_id).await? {
            Some(spend) if spend.slot == slot => spend.alerted,
            _ => 0,
        };
        let used = self.known(rule, slot).max(stored);
        Ok(Budget {
            slot,
            used,
            left: super::max_signals(rule)
                .saturating_sub(usize::try_from(used).unwrap_or(usize::MAX)),
        })
    }

    /// Counts `new` matches alerted by `rule`'s tail out of `budget`, and
    /// stores the interval's count when it grew.
    pub(super) async fn spend(
        &self,
        state: &impl StateStore,
        rule: &Rule,
        budget: &Budget,
        new: usize,
    ) -> Result<(), StateError> {
        if new == 0 {
            return Ok(());
        }
        let alerted = budget.used.saturating_add(new as u64);
        {
            let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
            let entry = spent
                .entry(rule.rule_id.clone())
                .or_insert((budget.slot, 0));
            if entry.0 != budget.slot || entry.1 < alerted {
                *entry = (budget.slot, alerted);
            }
        }
        let spend = TailSpend {
            rule_id: rule.rule_id.clone(),
            slot: budget.slot,
            alerted,
        };
        state.save_tail_spend(&spend).await
    }

    /// Forgets the rules that no longer tail.
    pub(super) fn retain(&self, tailing: &[std::sync::Arc<Rule>]) {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.retain(|id, _| tailing.iter().any(|r| r.rule_id == *id));
    }
}

/// What one tail of a rule may alert ([`TailBudgets::left`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    slot: i64,
    /// Alerted in the interval before this tail.
    used: u64,
    /// New matches this tail may alert.
    pub(super) left: usize,
}

/// Whether `rule` can tail: an EQL or query rule whose reach is at most
/// [`MAX_TAIL_REACH`]; else why not.
pub fn tailable(rule: &Rule, settings: &RunnerSettings, now: DateTime<Utc>) -> Result<(), String> {
    let detector = Detector::new(rule, settings, now).map_err(|e| e.to_string())?;
    if !detector.reads_one_stream() {
        return Err("only EQL and query rules tail (the others aggregate their window)".into());
    }
    if detector.unbounded_sequence() {
        return Err(
            "a sequence without maxspan: a matcher carried from tail to tail would keep its partial \
             sequences longer than the scheduled windows reach back; its scheduled runs find it"
                .into(),
        );
    }
    if detector.reach().before > delta(MAX_TAIL_REACH) {
        return Err(format!(
            "a sequence reaching back more than {} min (its maxspan): its first tail would read \
             that far; its scheduled runs find it",
            MAX_TAIL_REACH.as_secs() / 60
        ));
    }
    Ok(())
}

impl<S, K, T> Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    /// One tail of `rule` at `now` (see the module doc): `None` when this
    /// runner does not tail. A tail that alerted or failed is stored as an
    /// execution record, like a run; others are not (their warnings, such as
    /// indices that match nothing, are the scheduled runs' to report).
    pub async fn tail(&self, rule: &Rule, now: DateTime<Utc>) -> Option<ExecutionRecord> {
        let timing = self.tailing?;
        let window = tail_window(timing, now);
        let clock = Instant::now();
        let mut record = self.started_record(rule, now);
        let outcome: Result<(), RunError> = self
            .range_window(rule, window, now, &mut record, true)
            .instrument(tracing::debug_span!("rule_tail", rule_id = %rule.rule_id))
            .await;
        if outcome.is_err() || record.alerts_created > 0 {
            self.finish(&mut record, outcome, now, clock).await;
        } else {
            record.status = RunStatus::Succeeded;
            record.finished_at = now;
        }
        Some(record)
    }

    /// The runner with tails every `timing.every`, `timing.lag` behind.
    pub fn with_tailing(mut self, timing: TailTiming) -> Self {
        self.tailing = Some(timing);
        self
    }
}
