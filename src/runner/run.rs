//! [`Runner`]: the steps of one rule run (see the module doc of `runner`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tracing::Instrument;

use super::alerts::alert_rule;
use super::detect::{Detector, History, Reach};
use super::record::{ExecutionIds, ExecutionRecord, RunStatus, WindowRange};
use super::report::gap_warning;
use super::share::{ScanBoard, SharedFetch};
use super::suppress;
use super::RuleExecutor;
use crate::alert::{AlertContext, AlertRule};
use crate::eql::compile::PlanSetError;
use crate::eql::search::SearchError;
use crate::eql::sequence::Limits;
use crate::eql::EqlError;
use crate::rule::Rule;
use crate::schedule::window::{plan_windows, Timing, Window};
use crate::sink::{AlertSink, ItemFailure, SinkError};
use crate::source::{EventSource, FetchRequest, SourceError, TimeFilter, TimeRange};
use crate::state::{CapCut, Checkpoint, StateError, StateStore};

mod choose;
mod range;
pub(crate) mod tail;
mod threat;
mod threshold;
mod write;

/// How runs are carried out, the same for every rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerSettings {
    /// Where alerts go (Kibana's default space alias by default).
    pub alerts_index: String,
    /// Kibana space stamped on alerts and hashed into event alert ids.
    pub space_id: String,
    /// How far back catch-up after downtime may go; older time is a gap.
    pub catch_up_horizon: Duration,
    /// How far a window of a sequence without `maxspan` reaches back before
    /// its start, so such sequences are not cut at a run boundary.
    pub unbounded_sequence_lookback: Duration,
    /// Events per page of a window's search.
    pub page_size: usize,
    /// Matcher limits (partial sequences kept).
    pub limits: Limits,
    /// `kibana.version` stamped on alerts.
    pub kibana_version: String,
    /// Kibana's public URL, for `kibana.alert.url` (none: no link).
    pub public_base_url: Option<String>,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            alerts_index: ".alerts-security.alerts-default".to_string(),
            space_id: "default".to_string(),
            catch_up_horizon: Duration::from_secs(24 * 3600),
            unbounded_sequence_lookback: Duration::from_secs(3600),
            page_size: 1_000,
            limits: Limits::default(),
            kibana_version: crate::alert::MODELLED_KIBANA_VERSION.to_string(),
            public_base_url: None,
        }
    }
}

/// Why a run stopped. Becomes the `error` of a `failed` record.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("query does not compile: {0}")]
    Compile(EqlError),
    /// The query is valid, but not for the type an index maps a field with
    /// (a literal that is no ip for an `ip` field): Elasticsearch fails
    /// such a search too.
    #[error("query does not compile {0}")]
    CompileForIndex(PlanSetError),
    #[error("query cannot run: {0}")]
    Search(#[from] SearchError),
    #[error("reading state: {0}")]
    State(#[from] StateError),
    #[error("fetching events: {0}")]
    Source(#[from] SourceError),
    #[error("writing alerts: {0}")]
    Sink(#[from] SinkError),
    #[error("the exception lists cannot be applied: {0}")]
    Exceptions(crate::exceptions::BuildError),
    #[error(
        "{failed} alerts could not be written (the window will be searched again), first: {first}"
    )]
    WriteIncomplete { failed: usize, first: ItemFailure },
}

/// Runs rules over an event source, writing alerts to a sink and
/// checkpoints and records to a state store.
#[derive(Debug)]
pub struct Runner<S, K, T> {
    source: S,
    sink: K,
    state: T,
    settings: RunnerSettings,
    execution_ids: ExecutionIds,
    /// Routes of notifications: new alert groups go to the state's outbox.
    router: Option<Arc<crate::notify::Router>>,
    /// Alerts about detectd itself, when a route takes them.
    watch: Option<Arc<crate::notify::Watch>>,
    /// Shared scans (`share`): `None` fetches every window alone.
    board: Option<Arc<ScanBoard>>,
    /// Near-real-time tails (`tail`): `None` does not tail.
    tailing: Option<tail::TailTiming>,
    /// What the tails of sequences carry from one tail to the next.
    tail_states: tail::TailStates,
    tail_budgets: tail::TailBudgets,
}

impl<S, K, T> Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    pub fn new(source: S, sink: K, state: T, settings: RunnerSettings) -> Self {
        Runner {
            source,
            sink,
            state,
            settings,
            execution_ids: ExecutionIds::default(),
            router: None,
            watch: None,
            board: None,
            tailing: None,
            tail_states: tail::TailStates::default(),
            tail_budgets: tail::TailBudgets::default(),
        }
    }

    /// The runner with shared scans: the windows of rules that run
    /// together are read in one scan per group (see `share`).
    pub fn with_sharing(mut self, board: Arc<ScanBoard>) -> Self {
        self.board = Some(board);
        self
    }

    /// The runner with notification routes: each window adds the messages
    /// of its new alert groups to the state store's outbox before writing
    /// them (see `notify::outbox`).
    pub fn with_router(mut self, router: Arc<crate::notify::Router>) -> Self {
        self.watch = crate::notify::Watch::new(router.clone()).map(Arc::new);
        self.router = Some(router).filter(|r| !r.is_empty());
        self
    }

    /// The runner with another way of making execution ids (random by
    /// default).
    pub fn with_execution_ids(mut self, ids: ExecutionIds) -> Self {
        self.execution_ids = ids;
        self
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn state(&self) -> &T {
        &self.state
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// The run behind [`RuleExecutor::execute`].
    pub async fn run(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        self.run_begun(rule, now, now).await
    }

    /// The run at `now` of [`RuleExecutor::execute_begun`]: its record
    /// says it started at `began` and finished that long after.
    pub async fn run_begun(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        began: DateTime<Utc>,
    ) -> ExecutionRecord {
        let clock = Instant::now();
        let mut record = self.started_record(rule, now);
        record.started_at = began;
        // The span ties what the sink and the cluster client log (bulk
        // requests, retries) to the rule whose run caused it.
        let outcome = self
            .run_windows(rule, now, &mut record)
            .instrument(tracing::debug_span!("rule_run", rule_id = %rule.rule_id))
            .await;
        self.finish(&mut record, outcome, now, clock).await;
        record
    }

    /// The record of a run (or range run, or tail) of `rule` at `now`,
    /// before anything happened.
    fn started_record(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        ExecutionRecord::started(
            &rule.rule_id,
            &rule.name,
            self.execution_ids.make(&rule.rule_id, now),
            now,
        )
    }

    /// Sets the status, error and end time (its start and `clock`'s time
    /// since) of a run's record from its outcome, and stores it.
    async fn finish(
        &self,
        record: &mut ExecutionRecord,
        outcome: Result<(), RunError>,
        now: DateTime<Utc>,
        clock: Instant,
    ) {
        record.status = match &outcome {
            Err(e) => {
                record.error = Some(e.to_string());
                RunStatus::Failed
            }
            Ok(()) if !record.warnings.is_empty() => RunStatus::PartialFailure,
            Ok(()) => RunStatus::Succeeded,
        };
        record.finished_at = add(
            record.started_at,
            TimeDelta::from_std(clock.elapsed()).unwrap_or_default(),
        );
        tracing::debug!(rule_id = %record.rule_id, "storing the execution record");
        if let Err(e) = self.state.record_execution(record).await {
            tracing::warn!(
                rule_id = %record.rule_id,
                execution_id = %record.execution_id,
                error = %e,
                "cannot store the execution record"
            );
        }
        if let Some(watch) = &self.watch {
            watch.observe(&self.state, record, now).await;
        }
        // The run's log line is written by its caller (the daemon's
        // `log::run_finished`), the one place that defines it.
    }

    async fn run_windows(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        record: &mut ExecutionRecord,
    ) -> Result<(), RunError> {
        let detector = Detector::new(rule, &self.settings, now)?;
        // Nothing is searched while alerts cannot be written (e.g. waiting
        // for Kibana to create the alerts index): the windows stay due.
        self.sink.prepare(&self.settings.alerts_index).await?;

        let timing = timing(rule, &self.settings, now);
        let anchor = anchor(rule, now);
        let checkpoint = self.state.checkpoint(&rule.rule_id).await?;
        let covered = checkpoint.as_ref().map(|c| c.covered_until);
        // A threshold rule's alerted groups (`Checkpoint::threshold_history`).
        let mut history = checkpoint
            .as_ref()
            .map(|c| threshold::loaded(&c.threshold_history))
            .unwrap_or_default();
        // A capped window the last run wrote but did not commit (it died).
        let mut pending = checkpoint.and_then(|c| c.pending);
        let windows = plan_windows(timing, covered, anchor);
        // Progress lines at debug level: after a crash (or in a slow run)
        // they tell how far the run got: searching, writing, committing.
        tracing::debug!(
            rule_id = %rule.rule_id,
            windows = windows.windows.len(),
            checkpoint = ?covered.map(|c| c.to_rfc3339()),
            "windows planned"
        );
        if let Some(gap) = windows.gap {
            record.gap = Some(WindowRange {
                start: gap.start,
                end: gap.end,
            });
            record.warnings.push(gap_warning(&gap, timing.horizon));
        }

        let reach = detector.reach();
        let scope = self.alert_scope(rule, &detector, now, record);
        let mut previous_end = covered;
        // Ids acknowledged by earlier windows of this run: catch-up windows
        // overlap, and a sink's search may not show its last writes yet.
        let mut acknowledged: HashSet<String> = HashSet::new();
        // Suppression's open alerts written by earlier windows of this run.
        let open = suppress::OpenAlerts::default();
        for window in windows.windows {
            tracing::debug!(
                rule_id = %rule.rule_id,
                window_start = %window.start.to_rfc3339(),
                window_end = %window.end.to_rfc3339(),
                "window started"
            );
            record.windows.push(WindowRange {
                start: window.start,
                end: window.end,
            });
            let WindowSearch {
                offer_from,
                request,
            } = window_search(rule, &self.settings, reach, window, previous_end);
            let request = detector.request(request);

            let search_clock = Instant::now();
            let source = SharedFetch {
                inner: &self.source,
                state: &self.state,
                tails: &self.tail_states,
                board: self.board.as_deref(),
                settings: &self.settings,
                rule,
                now,
                tail: false,
            };
            let matched = detector
                .matches(&source, request, window, offer_from, &history, record)
                .await;
            record.search_duration_ms += millis(search_clock.elapsed());
            let candidates = matched?;
            tracing::debug!(
                rule_id = %rule.rule_id,
                window_end = %window.end.to_rfc3339(),
                matches = candidates.len(),
                "window matched"
            );

            let retried = pending.take().filter(|p| p.window_end == window.end);
            let marks = threshold::marks(&candidates, &scope.alert_rule, &self.settings.space_id);
            let attempt = Attempt {
                window,
                covered: previous_end,
                retried_cut: retried.as_ref().map(|p| &p.cap_cut),
                history: &history,
                open: &open,
                cap: max_signals(rule),
            };
            let alerted = self
                .alert_window(&scope, candidates, &attempt, &mut acknowledged, record)
                .await?
                .heads;
            threshold::advance(&mut history, &marks, &alerted, window.start);
            tracing::debug!(
                rule_id = %rule.rule_id,
                window_end = %window.end.to_rfc3339(),
                alerts_created = record.alerts_created,
                "window alerts written"
            );
            self.state
                .save_checkpoint(&Checkpoint {
                    rule_id: rule.rule_id.clone(),
                    covered_until: window.end,
                    updated_at: now,
                    pending: None,
                    threshold_history: threshold::stored(&history),
                })
                .await?;
            tracing::debug!(
                rule_id = %rule.rule_id,
                covered_until = %window.end.to_rfc3339(),
                "checkpoint saved"
            );
            previous_end = Some(window.end);
        }
        Ok(())
    }

    /// What every alert of a run of `rule` at `now` is built from.
    fn alert_scope<'r>(
        &self,
        rule: &'r Rule,
        detector: &Detector<'_>,
        now: DateTime<Utc>,
        record: &ExecutionRecord,
    ) -> AlertScope<'r> {
        AlertScope {
            rule,
            alert_rule: alert_rule(rule, now),
            ctx: AlertContext {
                now,
                space_id: self.settings.space_id.clone(),
                execution_uuid: record.execution_id.clone(),
                kibana_version: self.settings.kibana_version.clone(),
                public_base_url: self.settings.public_base_url.clone(),
            },
            grouped: detector.grouped(),
        }
    }
}

impl<S, K, T> RuleExecutor for Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    async fn execute(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        self.run(rule, now).await
    }

    async fn execute_begun(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        began: DateTime<Utc>,
    ) -> ExecutionRecord {
        self.run_begun(rule, now, began).await
    }

    fn fire_together(&self, cohorts: Vec<Vec<Arc<Rule>>>) {
        if let Some(board) = &self.board {
            board.set_cohorts(cohorts);
        }
    }

    fn shares_scans(&self) -> bool {
        self.board.is_some()
    }

    async fn tail(&self, rule: &Rule, now: DateTime<Utc>) -> Option<ExecutionRecord> {
        Runner::tail(self, rule, now).await
    }

    fn tail_together(&self, rules: Vec<Arc<Rule>>) -> Vec<(String, String)> {
        let now = chrono::Utc::now();
        let mut refused = Vec::new();
        let mut tailing = Vec::new();
        for rule in rules {
            match tail::tailable(&rule, &self.settings, now) {
                Ok(()) => tailing.push(rule),
                Err(why) => refused.push((rule.rule_id.clone(), why)),
            }
        }
        self.tail_states.retain(&tailing);
        self.tail_budgets.retain(&tailing);
        if let (Some(board), Some(timing)) = (&self.board, self.tailing) {
            board.set_tail_cohort(tailing, timing);
        }
        refused
    }
}

/// What every alert of a run is built from.
struct AlertScope<'r> {
    rule: &'r Rule,
    alert_rule: AlertRule,
    ctx: AlertContext,
    /// Sequences and samples give a shell plus building blocks.
    grouped: bool,
}

/// The window being alerted, and what the state says about it.
struct Attempt<'a> {
    window: Window,
    /// The checkpoint before this window (`None` on a rule's first run).
    covered: Option<DateTime<Utc>>,
    /// Where an earlier attempt at this same window, which died between
    /// its bulk write and its checkpoint, cut its matches.
    retried_cut: Option<&'a CapCut>,
    /// The threshold history before this window (kept in a capped
    /// window's pending checkpoint).
    history: &'a History,
    /// This run's open suppression alerts (see `suppress`).
    open: &'a suppress::OpenAlerts,
    /// How many new matches the window may alert: the rule's
    /// `max_signals`, or what its tails have left of it (`tail`).
    cap: usize,
}

/// The matches a window alerted (see [`Runner::alert_window`]).
#[derive(Default)]
struct Alerted {
    /// The head ids of the matches alerted, now or before; those the cap
    /// left out are not among them.
    heads: Vec<String>,
    /// How many of them were new (what counts against the cap).
    new: usize,
}

/// `rule.max_signals` as a cap on new matches.
fn max_signals(rule: &Rule) -> usize {
    usize::try_from(rule.max_signals).unwrap_or(usize::MAX)
}

/// A rule's timing for [`plan_windows`] of a run at `now`: its interval,
/// the width of its windows (`to - from`) and the catch-up horizon.
///
/// A cron rule's quiet time is not downtime: a business-hours rule
/// (`*/5 9-17 * * MON-FRI`) last ran on Friday at 17:55, and its first run
/// on Monday covers the weekend from its checkpoint, window by window as
/// any catch-up, with no gap. So its horizon reaches back to the fire
/// before this run's, plus the configured horizon for downtime before
/// that. (Kibana has no cron schedules; for its interval rules a missed
/// run is a gap.)
pub(crate) fn timing(rule: &Rule, settings: &RunnerSettings, now: DateTime<Utc>) -> Timing {
    let mut horizon = delta(settings.catch_up_horizon);
    if let Some(cron) = &rule.schedule.cron {
        // `now` is this run's fire or just after it: the fire before that
        // is where the previous run's checkpoint is, when it ran on time.
        let this_fire = cron
            .previous_before(now + TimeDelta::nanoseconds(1))
            .unwrap_or(now);
        if let Some(previous) = cron.previous_before(this_fire) {
            horizon += (now - previous).max(TimeDelta::zero());
        }
    }
    Timing {
        interval: delta(rule.schedule.interval),
        width: delta(rule.schedule.lookback()),
        horizon,
    }
}

/// Where a run at `now` ends its last window: `now`, shifted by a `to`
/// other than `now` (e.g. `now-1m` shifts every window).
pub(crate) fn anchor(rule: &Rule, now: DateTime<Utc>) -> DateTime<Utc> {
    add(now, TimeDelta::milliseconds(rule.schedule.to.offset_ms()))
}

/// What one window fetches: the search, and from when matches are offered.
#[derive(Clone, Debug)]
pub(crate) struct WindowSearch {
    /// Matches (events, or sequences by their last event) from here on are
    /// offered; earlier ones were offered by an earlier window.
    pub(crate) offer_from: DateTime<Utc>,
    pub(crate) request: FetchRequest,
}

/// The search of `window`, after `previous_end` (the end of what is
/// already acknowledged; `None` on a rule's first run), before the rule's
/// detector narrows it ([`Detector::request`]).
pub(crate) fn window_search(
    rule: &Rule,
    settings: &RunnerSettings,
    reach: Reach,
    window: Window,
    previous_end: Option<DateTime<Utc>>,
) -> WindowSearch {
    // The part of the window after what is already acknowledged.
    let new_start = previous_end.map_or(window.start, |p| p.clamp(window.start, window.end));
    // Matches ending in the window are offered, and, for a trailing
    // missing-event stage, those the previous window could not decide yet
    // (ending within `maxspan` before its end).
    let offer_from = window.start.min(sub(new_start, reach.undecided));
    let fetch_from = sub(offer_from, reach.before);
    WindowSearch {
        offer_from,
        request: base_request(
            rule,
            settings,
            TimeRange {
                from: fetch_from,
                to: window.end,
            },
        ),
    }
}

/// The search of `range` over the rule's indices, before its detector
/// narrows it: Kibana's time filter, the page size.
pub(super) fn base_request(
    rule: &Rule,
    settings: &RunnerSettings,
    range: TimeRange,
) -> FetchRequest {
    let mut request = FetchRequest::new(rule.index.clone(), range);
    request.time_filter = TimeFilter::kibana(
        rule.timestamp_override.as_deref(),
        rule.timestamp_override_fallback_disabled,
    );
    request.page_size = settings.page_size;
    request
}

/// The search of a window given by the caller (a range run, a tail),
/// before the detector narrows it: the window and the reach before it
/// (`sub` saturates: a range from the earliest time stays there).
pub(super) fn range_request(
    rule: &Rule,
    settings: &RunnerSettings,
    window: Window,
    reach: Reach,
) -> FetchRequest {
    base_request(
        rule,
        settings,
        TimeRange {
            from: sub(window.start, reach.before),
            to: window.end,
        },
    )
}

/// Ten years: longer spans are clamped (keeps date arithmetic in range).
pub(super) const MAX_REACH_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

pub(super) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d)
        .unwrap_or(TimeDelta::MAX)
        .min(TimeDelta::milliseconds(MAX_REACH_MS))
}

fn add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn sub(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
