//! One rule run, end to end: the contract of DESIGN.md "What one rule run
//! MUST do" (windows, fetch, match, alerts, dedup and cap, write, commit).
//!
//! [`RuleExecutor`] is the seam between the daemon (scheduling, shutdown,
//! health, metrics) and the run itself, so each side can be tested alone;
//! [`Runner`] is the implementation over an [`EventSource`](crate::source::EventSource), an
//! [`AlertSink`](crate::sink::AlertSink) and a [`StateStore`](crate::state::StateStore).
//!
//! # A run
//!
//! The checkpoint (end of the last window whose alerts were all
//! acknowledged) and the rule's `interval` / `from` / `to` give the windows
//! (`schedule::window`): one `[now - width, now]` on time, one per interval
//! oldest first after downtime, a gap beyond the catch-up horizon. Each
//! window is fetched (pushdown filter, projection), matched locally, turned
//! into alert ids, deduplicated against the alerts index, capped, read in
//! full for the alerts kept, written, and only then committed as the new
//! checkpoint. A window that fails stops the run there: the checkpoint
//! stays, the next run searches that window again, and the deterministic
//! ids turn whatever was already written into duplicates.
//!
//! # Sequences across run boundaries
//!
//! No matcher state is carried between runs. Instead each window's fetch
//! reaches back by the sequence's `maxspan` (or, for sequences without one,
//! [`RunnerSettings::unbounded_sequence_lookback`]), and a sequence is
//! offered by the window that contains its *last* event. A sequence whose
//! first event precedes the window start is therefore still found whole, by
//! the window in which it completes; one that completed earlier was offered
//! by an earlier window (which the checkpoint says was acknowledged) and, if
//! offered again because windows overlap, is a duplicate by id. Like
//! Kibana, every window offers everything ending in it, not only what ends
//! after the checkpoint: that is what lets a run continue where a capped
//! one stopped (`max_signals`), while dedup keeps repeats out.
//!
//! Missing-event stages at the end (`[a] ![b]`) are decided only once
//! `maxspan` has elapsed on the data clock, which is the window end: a
//! sequence still waiting is not alerted, and the windows of the next run
//! reach back far enough (last event up to `maxspan` before the
//! checkpoint) to decide it then. A leading one (`![x] [a] [b]`) needs no
//! more reach: Elasticsearch rules a sequence out only for an `x` within
//! `maxspan` of its *last* event, which the window's reach covers.
//!
//! # Dedup and cap
//!
//! Alerts are grouped per match (one event alert, or a shell plus its
//! building blocks), oldest first (by the match's last event). Ids already
//! in the alerts index are dropped; a group whose shell is new counts
//! against `max_signals` (building blocks ride along, as in Kibana) and
//! groups beyond it are not written: the record says exactly how many
//! (`alerts_capped`, counted in groups), the status is `partial failure`
//! with Kibana's text, and the next overlapping run writes them if they are
//! still in its window. The cap applies per window, like Kibana's per-tuple
//! `max_signals`.
//!
//! A capped window's choice is saved in the checkpoint (as `pending`:
//! the window's end and the first match left out, ordered by last-event
//! time, then head alert id) before its bulk write, and cleared by its
//! checkpoint. If the run dies in between (a crash), the next run searches
//! that window again and writes only the matches before the saved cut:
//! what the dead attempt wrote of them comes back as duplicates, and the
//! window never writes more than `max_signals` in all.

mod alerts;
mod detect;
mod plans;
pub mod record;
pub mod replay;
mod report;
mod run;
mod share;
mod suppress;

#[cfg(test)]
mod cluster_mock;
#[cfg(test)]
mod constraint_tests;
#[cfg(test)]
mod cron_tests;
#[cfg(test)]
mod esql_tests;
#[cfg(test)]
mod mapping_tests;
#[cfg(test)]
mod ml_tests;
#[cfg(test)]
mod new_terms_tests;
#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod share_tests;
#[cfg(test)]
mod suppression_tests;
#[cfg(test)]
mod tail_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod threat_tests;
#[cfg(test)]
mod threshold_tests;

use std::future::Future;

use chrono::{DateTime, Utc};

pub use alerts::alert_rule;
pub(crate) use alerts::match_ids;
pub(crate) use detect::new_terms_tuples;
pub(crate) use detect::Detector;
pub use record::{ExecutionIds, ExecutionRecord, RunStatus, WindowRange};
pub use replay::{replay_dead_letters, ReplayError, ReplayReport};
pub use report::MAX_SIGNALS_WARNING;
pub use run::tail::{tail_window, tailable, TailTiming, MAX_TAIL_REACH};
pub(crate) use run::{anchor, timing, window_search, WindowSearch};
pub use run::{RunError, Runner, RunnerSettings};
pub use share::{ScanBoard, ScanStats, DEFAULT_MAX_RULES};

use crate::rule::Rule;

/// Runs one rule at a point in time: every window due since its checkpoint,
/// oldest first, then commits. Never panics and never returns an error: a
/// failure is a `failed` [`ExecutionRecord`] whose windows are retried by
/// the next run (the checkpoint did not move).
pub trait RuleExecutor: Send + Sync {
    fn execute(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
    ) -> impl Future<Output = ExecutionRecord> + Send;

    /// [`RuleExecutor::execute`] for a run that began at `began` (wall
    /// time): later than `now` when a run sharing scans, whose `now` is its
    /// fire, waited past it for a permit. Its record then says when it
    /// really ran, so that two runs of a rule (on two instances, one after
    /// the other) never look overlapped; its windows still end at `now`.
    fn execute_begun(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        began: DateTime<Utc>,
    ) -> impl Future<Output = ExecutionRecord> + Send {
        let _ = began;
        self.execute(rule, now)
    }

    /// The rules that fire together (each inner list runs with one `now`),
    /// so that an executor sharing scans can plan them; ignored by others.
    fn fire_together(&self, cohorts: Vec<Vec<std::sync::Arc<Rule>>>) {
        let _ = cohorts;
    }

    /// Whether rules that fire together share scans: the scheduler then
    /// aligns them and gives them one `now`.
    fn shares_scans(&self) -> bool {
        false
    }

    /// One near-real-time tail of `rule` at `now` (`runner::run::tail`);
    /// `None` when this executor does not tail.
    fn tail(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Option<ExecutionRecord>> + Send {
        let _ = (rule, now);
        async { None }
    }

    /// The rules that tail together; returns those that cannot tail, with
    /// why (they keep their scheduled runs).
    fn tail_together(&self, rules: Vec<std::sync::Arc<Rule>>) -> Vec<(String, String)> {
        let _ = rules;
        Vec::new()
    }
}
