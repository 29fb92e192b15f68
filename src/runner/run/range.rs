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

use super::{range_request, Attempt, RunError, Runner};
use crate::rule::Rule;
use crate::runner::detect::{Detector, History, Reach};
use crate::runner::record::{ExecutionRecord, WindowRange};
use crate::runner::share::SharedFetch;
use crate::schedule::window::Window;
use crate::sink::AlertSink;
use crate::source::EventSource;
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
        let mut record = self.started_record(rule, now);
        let outcome = self
            .range_window(rule, window, now, &mut record, false)
            .instrument(tracing::debug_span!("rule_run", rule_id = %rule.rule_id))
            .await;
        self.finish(&mut record, outcome, now, clock).await;
        record
    }

    /// One window given by the caller; `tail`: a near-real-time tail, whose
    /// fetch may come from the tails' shared scan.
    pub(super) async fn range_window(
        &self,
        rule: &Rule,
        window: Window,
        now: DateTime<Utc>,
        record: &mut ExecutionRecord,
        tail: bool,
    ) -> Result<(), RunError> {
        let detector = Detector::new(rule, &self.settings, now)?.for_range(rule);
        self.sink.prepare(&self.settings.alerts_index).await?;
        let scope = self.alert_scope(rule, &detector, now, record);
        record.windows.push(WindowRange {
            start: window.start,
            end: window.end,
        });
        // A tail of a sequence goes on from the matcher the tail before
        // left, when it ended where this one starts: nothing before the
        // window is read again (see `tail`).
        let carrying = if tail { detector.carrying() } else { None };
        let carried = carrying.and_then(|_| self.tail_states.take(rule, window));
        let reach = match carried {
            Some(_) => Reach::NONE,
            None => detector.reach(),
        };
        let request = detector.request(range_request(rule, &self.settings, window, reach));
        // One window, nothing committed: no threshold history either.
        let history = History::new();
        let search_clock = Instant::now();
        let source = SharedFetch {
            inner: &self.source,
            state: &self.state,
            tails: &self.tail_states,
            board: self.board.as_deref().filter(|_| tail),
            settings: &self.settings,
            rule,
            now,
            tail,
        };
        let matched = match carrying {
            Some(sequence) => {
                sequence
                    .carried_matches(&source, request, window, carried, record)
                    .await
            }
            None => detector
                .matches(&source, request, window, window.start, &history, record)
                .await
                .map(|found| (found, None)),
        };
        record.search_duration_ms += super::millis(search_clock.elapsed());
        let (candidates, next) = match matched {
            Ok(found) => found,
            Err(e) => {
                self.tail_states.forget(rule);
                return Err(e);
            }
        };
        // A tail with matches alerts out of its rule's budget, read from
        // the state (another instance may have held the rule this interval).
        let budget = match tail && !candidates.is_empty() {
            true => match self.tail_budgets.left(&self.state, rule, now).await {
                Ok(budget) => Some(budget),
                Err(e) => {
                    self.tail_states.forget(rule);
                    return Err(e.into());
                }
            },
            false => None,
        };
        let attempt = Attempt {
            window,
            covered: None,
            retried_cut: None,
            history: &history,
            open: &super::suppress::OpenAlerts::default(),
            cap: budget.map_or(super::max_signals(rule), |b| b.left),
        };
        let written = self
            .alert_window(&scope, candidates, &attempt, &mut HashSet::new(), record)
            .await;
        if let (Ok(alerted), Some(budget)) = (&written, budget) {
            // The alerts are written: a budget not stored is a warning (an
            // instance taking the rule over this interval would not count
            // them), not a failed tail.
            let spent = self
                .tail_budgets
                .spend(&self.state, rule, &budget, alerted.new);
            if let Err(e) = spent.await {
                tracing::warn!(rule_id = %rule.rule_id, error = %e, "tail budget not stored");
                record
                    .warnings
                    .push(format!("this interval's tail budget was not stored: {e}"));
            }
        }
        // What the matcher holds goes on only once its alerts are written;
        // else the next tail starts afresh, and reads back for them.
        match (&written, next) {
            (Ok(_), Some(next)) => self.tail_states.keep(rule, window.end, next),
            (Err(_), _) if carrying.is_some() => self.tail_states.forget(rule),
            _ => {}
        }
        written.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, SecondsFormat, TimeZone};
    use serde_json::Value;

    use super::*;
    use crate::rule::{load_str, LoadOutcome};
    use crate::runner::{ExecutionIds, RunStatus, RunnerSettings};
    use crate::sink::memory::MemorySink;
    use crate::source::memory::MemorySource;
    use crate::source::Document;
    use crate::state::MemoryStateStore;

    const FOUNDING: &str = include_str!("../../../rules/execution_scheduled_task_powershell.toml");
    const ALERTS: &str = ".alerts-security.alerts-default";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    }

    fn founding(max_signals: u32) -> Rule {
        let text = FOUNDING.replace("max_signals = 100", &format!("max_signals = {max_signals}"));
        match load_str(&text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("rule does not load: {other:?}"),
        }
    }

    /// The attack on host `tag`: the library load at `at`, the RPC call 2 s
    /// later.
    fn attack(tag: &str, at: DateTime<Utc>) -> Vec<Document> {
        let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        vec![
            Document {
                index: "logs-endpoint.events.library-default".into(),
                id: format!("{tag}-lib"),
                source: crate::synth::founding_library(&iso(at), tag, tag, "powershell.exe"),
            },
            Document {
                index: "logs-endpoint.events.network-default".into(),
                id: format!("{tag}-net"),
                source: crate::synth::founding_network(
                    &iso(at + Duration::seconds(2)),
                    tag,
                    tag,
                    "powershell.exe",
                    "10.0.0.5",
                    135,
                ),
            },
        ]
    }

    type MemRunner = Runner<MemorySource, MemorySink, MemoryStateStore>;

    fn runner(docs: Vec<Document>) -> MemRunner {
        Runner::new(
            MemorySource::new(docs),
            MemorySink::new(),
            MemoryStateStore::new(),
            RunnerSettings::default(),
        )
    }

    /// The hosts of the sequences alerted (their shells), sorted.
    fn hosts(r: &MemRunner) -> Vec<String> {
        let mut out: Vec<String> = r
            .sink()
            .alerts(ALERTS)
            .values()
            .filter(|a| a.get("kibana.alert.group.index").is_none())
            .map(|a| a["host"]["id"].as_str().unwrap_or("?").to_string())
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn all_time_finds_every_attack_and_keeps_no_checkpoint() {
        // a year before `now`, and a day after it: far outside any window
        // of the rule's schedule
        let mut docs = attack("old", t0() - Duration::days(365));
        docs.extend(attack("future", t0() + Duration::days(1)));
        let r = runner(docs).with_execution_ids(ExecutionIds::Derived);
        let rule = founding(100);
        let rec = r.run_range(&rule, Window::ALL, t0()).await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
        assert_eq!(rec.alerts_created, 6);
        assert_eq!(hosts(&r), ["future", "old"]);
        assert_eq!(
            rec.windows,
            [WindowRange {
                start: Window::ALL.start,
                end: Window::ALL.end
            }]
        );
        assert_eq!(
            rec.execution_id,
            ExecutionIds::Derived.make(&rule.rule_id, t0())
        );
        assert!(r.state().get(&rule.rule_id).is_none(), "no checkpoint");
        assert_eq!(
            r.state().executions(),
            std::slice::from_ref(&rec),
            "the record is kept"
        );
        let all: Vec<Value> = r.sink().alerts(ALERTS).into_values().collect();
        assert!(all
            .iter()
            .all(|a| a["kibana.alert.rule.execution.uuid"] == rec.execution_id.as_str()));

        // the same range again: everything is a duplicate
        let again = r.run_range(&rule, Window::ALL, t0()).await;
        assert_eq!((again.alerts_created, again.alerts_duplicate), (0, 6));
    }

    #[tokio::test]
    async fn a_range_reaches_back_for_sequences_and_caps_like_a_window() {
        let start = t0() - Duration::hours(2);
        let end = t0() - Duration::hours(1);
        let mut docs = attack("before", start - Duration::minutes(1));
        // begins 1 s before the range, ends inside it: found whole
        docs.extend(attack("straddling", start - Duration::seconds(1)));
        docs.extend(attack("inside-1", start + Duration::minutes(10)));
        docs.extend(attack("inside-2", start + Duration::minutes(20)));
        docs.extend(attack("after", end + Duration::seconds(1)));
        let r = runner(docs);
        let rec = r
            .run_range(&founding(100), Window { start, end }, t0())
            .await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
        assert_eq!(hosts(&r), ["inside-1", "inside-2", "straddling"]);

        // max_signals cuts the range like a scheduled window: oldest first
        let r = runner(
            attack("a", start + Duration::minutes(1))
                .into_iter()
                .chain(attack("b", start + Duration::minutes(2)))
                .collect(),
        );
        let rec = r.run_range(&founding(1), Window { start, end }, t0()).await;
        assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:?}");
        assert_eq!(rec.alerts_capped, 1);
        assert_eq!(hosts(&r), ["a"]);
    }
}
