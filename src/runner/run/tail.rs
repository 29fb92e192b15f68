//! Near-real-time tails: between its scheduled runs, a rule may read the
//! last few seconds again and again (`[realtime]`), so an attack alerts
//! seconds after its last event arrives rather than at the next run.
//!
//! A tail is a range run over `[now - lag - every, now - lag]`: the same
//! detector, a sequence's reach (`maxspan`) before the window, dedup
//! against the alerts index and the same deterministic alert ids as the
//! scheduled windows, and no checkpoint read or written. So the two modes
//! cannot disagree: what a tail alerted, the next scheduled window finds
//! again as duplicates, and what a tail missed (an event later than `lag`,
//! a tail skipped while the daemon was busy or down, a sequence over a
//! restart) the scheduled windows still find, as they do without tails.
//! Tails only ever make alerts earlier. The rules of one daemon tail
//! together, on one grid, so with shared scans each tail reads the new
//! events once for all of them (`runner::share`).
//!
//! What a tail does not do: carry a sequence matcher's state from one tail
//! to the next. It reads the sequence's `maxspan` again each time, so only
//! rules whose reach is at most [`MAX_TAIL_REACH`] tail (a sequence
//! without `maxspan` would read an hour every few seconds); the others keep
//! their scheduled runs. A quiet tail stores no execution record (one every
//! few seconds per rule would flood the executions index): only tails that
//! alert or fail do; warnings are left to the scheduled runs.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{delta, sub, RunError, Runner, RunnerSettings};
use crate::rule::Rule;
use crate::runner::detect::Detector;
use crate::runner::record::{ExecutionRecord, RunStatus};
use crate::schedule::window::Window;
use crate::sink::AlertSink;
use crate::source::EventSource;
use crate::state::StateStore;

/// The longest reach (a sequence's `maxspan`) of a rule that tails.
pub const MAX_TAIL_REACH: Duration = Duration::from_secs(10 * 60);

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

/// Whether `rule` can tail: an EQL or query rule whose reach is at most
/// [`MAX_TAIL_REACH`]; else why not.
pub fn tailable(rule: &Rule, settings: &RunnerSettings, now: DateTime<Utc>) -> Result<(), String> {
    let detector = Detector::new(rule, settings, now).map_err(|e| e.to_string())?;
    if !detector.reads_one_stream() {
        return Err("only EQL and query rules tail (the others aggregate their window)".into());
    }
    if detector.reach().before > delta(MAX_TAIL_REACH) {
        return Err(format!(
            "a sequence reaching back more than {} min (its maxspan, or none) would read that again \
             on every tail; its scheduled runs find it",
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
