//! A run over a time range given by the caller instead of the rule's
//! schedule: `detectd hunt` and `detectd test` over the whole time of their
//! files, later a manual run or a backfill over a chosen range.
//!
//! It is a scheduled run's window without the schedule: one window, no
//! checkpoint read or written (nothing is committed, so a range run never
//! moves a rule's schedule), the same detector, reach before the window for
//! sequences, dedup against the sink, `max_signals` cap, alert documents and
//! write; the execution record is stored as for any run. A sequence is
//! offered when its last event is in the range, a trailing missing-event
//! stage is decided at the range's end, as in a scheduled window.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{sub, Attempt, RunError, Runner};
use crate::rule::Rule;
use crate::runner::detect::Detector;
use crate::runner::record::{ExecutionRecord, WindowRange};
use crate::schedule::window::Window;
use crate::sink::AlertSink;
use crate::source::{EventSource, TimeRange};
use crate::state::StateStore;

impl<S, K, T> Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    /// Runs `rule` once over `window`, alerts stamped with `now`. Like
    /// [`Runner::run`] it never fails: a failure is a `failed` record.
    /// [`Window::ALL`] covers every event whatever its time.
    pub async fn run_range(
        &self,
        rule: &Rule,
        window: Window,
        now: DateTime<Utc>,
    ) -> ExecutionRecord {
        let clock = Instant::now();
        let mut record = ExecutionRecord::started(
            &rule.rule_id,
            &rule.name,
            self.execution_ids.make(&rule.rule_id, now),
            now,
        );
        let outcome = self
            .range_window(rule, window, now, &mut record)
            .instrument(tracing::debug_span!("rule_run", rule_id = %rule.rule_id))
            .await;
        self.finish(&mut record, outcome, now, clock).await;
        record
    }

    async fn range_window(
        &self,
        rule: &Rule,
        window: Window,
        now: DateTime<Utc>,
        record: &mut ExecutionRecord,
    ) -> Result<(), RunError> {
        let detector = Detector::new(rule, &self.settings)?;
        self.sink.prepare(&self.settings.alerts_index).await?;
        let scope = self.alert_scope(rule, &detector, now, record);
        record.windows.push(WindowRange {
            start: window.start,
            end: window.end,
        });
        // `sub` saturates: a range from the earliest time stays there.
        let request = self.window_request(
            rule,
            &detector,
            TimeRange {
                from: sub(window.start, detector.reach().before),
                to: window.end,
            },
        );
        let search_clock = Instant::now();
        let matched = detector
            .matches(&self.source, request, window, window.start, record)
            .await;
        record.search_duration_ms += super::millis(search_clock.elapsed());
        let candidates = matched?;
        let attempt = Attempt {
            window,
            covered: None,
            retried_cut: None,
        };
        self.alert_window(&scope, candidates, &attempt, &mut HashSet::new(), record)
            .await
    }
}
