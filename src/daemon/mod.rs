//! `detectd run`: the daemon around rule runs. It loads the rules, fires
//! each on its interval (see [`scheduler`]), reloads them on SIGHUP, keeps
//! the health and metrics `/healthz` and `/metrics` show, logs one
//! structured line per run, and on SIGTERM / SIGINT stops scheduling and
//! waits for runs in flight (their alert writes and checkpoints) before
//! returning.
//!
//! What one run does is behind [`RuleExecutor`]; the clock, the shutdown
//! signal and the cluster probe are injected, so the whole daemon is tested
//! with a fake executor on tokio's paused clock. Start-up with real parts
//! (serving the endpoints, waiting for the cluster) is [`start`].

pub mod connect;
pub mod health;
pub mod http;
pub mod log;
pub mod metrics;
pub mod outage;
pub mod rule_table;
pub mod rules;
pub mod scheduler;
pub mod start;
mod tails;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{FirstRun, Settings};
use crate::rule::Rule;
use crate::runner::{ExecutionRecord, RuleExecutor, RunStatus};
pub use health::{BoxFuture, ClusterProbe, Health, Probe};
pub use metrics::Metrics;
pub use rule_table::RuleTable;
use rules::{LoadReport, RuleSet};
use scheduler::Scheduler;

/// Wall-clock time as the runs see it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that moves with tokio's clock: `wall` at creation plus the
/// tokio time elapsed since. Under `tokio::time::pause()` it moves only when
/// a test advances time, so runs see exact, reproducible times.
pub struct TokioClock {
    wall: DateTime<Utc>,
    at: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(wall: DateTime<Utc>) -> TokioClock {
        TokioClock {
            wall,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.at.elapsed()).unwrap_or_default();
        self.wall + elapsed
    }
}

/// What the daemon needs from the settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonOptions {
    pub rules: Vec<PathBuf>,
    /// Exception list files or folders the rules' lists are found in.
    pub exceptions: Vec<PathBuf>,
    pub concurrency: usize,
    pub first_run: FirstRun,
    pub health_check_interval: Duration,
    /// The configured notification outputs, which rule actions may name.
    pub outputs: std::collections::BTreeSet<String>,
    /// `[[schedule.cron]]`: cron schedules given to rules by id or tag.
    pub cron: crate::config::cron::CronOverrides,
    /// What the cluster is, when known: rules it cannot run (ES|QL, ML on
    /// OpenSearch) are reported at load and not scheduled.
    pub server: Option<crate::cluster::ServerInfo>,
    /// `[realtime]`: the rules that also tail new events (`None`: off).
    pub realtime: Option<crate::config::RealtimeSettings>,
}

impl DaemonOptions {
    pub fn from_settings(s: &Settings) -> DaemonOptions {
        DaemonOptions {
            rules: s.rules.clone(),
            exceptions: s.exceptions.clone(),
            concurrency: s.concurrency,
            first_run: s.first_run,
            health_check_interval: s.health_check_interval,
            outputs: s.notify.outputs.iter().map(|o| o.name.clone()).collect(),
            cron: s.cron.clone(),
            server: None,
            realtime: s.realtime.clone(),
        }
    }
}

/// Run forever (until shut down) or every rule once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Once,
}

/// The signals the daemon reacts to: shutdown (SIGTERM / SIGINT) and
/// reload (SIGHUP).
pub struct Signals {
    pub shutdown: BoxFuture<'static, ()>,
    pub reload: mpsc::Receiver<()>,
}

impl Signals {
    /// Signals driven by hand (tests): `shutdown` ends the daemon, a send
    /// on the returned sender reloads the rules.
    pub fn new(shutdown: impl Future<Output = ()> + Send + 'static) -> (Signals, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel(4);
        (
            Signals {
                shutdown: Box::pin(shutdown),
                reload: rx,
            },
            tx,
        )
    }

    /// The process signals: SIGTERM and SIGINT shut down, SIGHUP reloads.
    #[cfg(unix)]
    pub fn os() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (signals, tx) = Signals::new(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down: finishing runs in flight"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down: finishing runs in flight"),
            }
        });
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(signal = "SIGHUP", "reloading rules");
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        Ok(signals)
    }
}

/// What a daemon's life amounted to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Runs that finished (any status).
    pub runs: u64,
    /// Runs with status `failed`.
    pub failed_runs: u64,
    /// Rule files with errors at the last (re)load.
    pub rule_files_failed: usize,
    /// `--once` only: rules that had not started when shutdown came.
    pub not_started: u64,
}

impl Outcome {
    /// The `run --once` exit code: 0 when no run failed, else 1. Broken
    /// rule files are reported but do not change it (like Kibana, which
    /// never schedules an invalid rule; `detectd check` is the gate for them).
    pub fn once_exit_code(&self) -> u8 {
        u8::from(self.failed_runs > 0)
    }
}

/// What every rule task shares.
pub struct Shared<E, C> {
    executor: Arc<E>,
    clock: C,
    limit: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    rules: Arc<RuleTable>,
    runs: AtomicU64,
    failed: AtomicU64,
    /// Where runs execute: a runtime of their own in production, so a run
    /// busy matching events on a CPU never holds up the scheduler, signals
    /// or `/healthz`; `None` runs them beside the scheduler (tests).
    runs_on: Option<tokio::runtime::Handle>,
    /// Several instances over the cluster: a rule runs only where it is
    /// assigned and its lease is held (see `coord`); `None` runs them all.
    coord: Option<Arc<crate::coord::Coordinator>>,
    /// The pairing of tokio's clock with wall time behind
    /// [`Shared::grid_wall`].
    grid_origin: std::sync::OnceLock<(tokio::time::Instant, DateTime<Utc>)>,
}

impl<E, C> Shared<E, C>
where
    E: RuleExecutor + 'static,
    C: Clock,
{
    /// One run on its own task (a panic in it becomes a failed record, not
    /// a dead rule loop), then its metrics and log line. `due` is when the
    /// schedule wanted the run to start.
    async fn execute(
        &self,
        tracker: &TaskTracker,
        rule: Arc<Rule>,
        (due, tick): (tokio::time::Instant, Option<DateTime<Utc>>),
    ) -> ExecutionRecord {
        let started = tokio::time::Instant::now();
        let delay = started.saturating_duration_since(due);
        // A rule sharing scans runs at its fire, the same `now` as the rest
        // of its cohort; otherwise at the time it starts.
        let began = self.clock.now();
        let now = match tick {
            Some(tick) if self.executor.shares_scans() => tick,
            _ => began,
        };
        tracing::debug!(
            rule_id = %rule.rule_id,
            now = %now.to_rfc3339(),
            start_delay_ms = delay.as_millis() as u64,
            "rule run started"
        );
        self.metrics.observe_start_delay(delay);
        self.rules.started(&rule, now);
        let executor = self.executor.clone();
        let task_rule = rule.clone();
        let run = async move { executor.execute_begun(&task_rule, now, began).await };
        let record = match self.spawn_run(tracker, run).await {
            Ok(record) => record,
            Err(e) => panicked_record(&rule, began, self.clock.now(), &e.to_string()),
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        if record.status == RunStatus::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let took = started.elapsed();
        self.metrics.observe(&record, took);
        self.health.observe(&record);
        self.rules.finished(&record, took);
        log::run_finished(
            &record,
            log::RunTiming {
                start_delay: delay,
                took,
            },
        );
        record
    }

    /// `work` (a run, a tail) on its own task, on the runs' runtime when
    /// there is one.
    fn spawn_run<F>(&self, tracker: &TaskTracker, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runs_on {
            Some(runtime) => tracker.spawn_on(work, runtime),
            None => tracker.spawn(work),
        }
    }

    /// Several instances: whether `rule_id` may run here now — `Ok` with
    /// the lease to hold while it runs (none without coordination), `Err`
    /// where it is not this instance's rule (the tick passes: the owner's
    /// checkpoint says what is covered, so a skipped tick loses no window).
    fn lease(&self, rule_id: &str) -> Result<Option<crate::coord::RunPermit>, ()> {
        let Some(coord) = &self.coord else {
            return Ok(None);
        };
        match coord.may_run(rule_id) {
            Some(permit) => Ok(Some(permit)),
            None => {
                tracing::debug!(rule_id = %rule_id, owner = ?coord.owner(rule_id), "not this instance's rule now");
                Err(())
            }
        }
    }

    /// The wall-clock time of a grid point, the same for every rule that
    /// fires at it (unlike [`Shared::wall_time`], which reads both clocks
    /// each time): the daemon's clocks are paired once, at the first ask,
    /// and whole milliseconds kept.
    fn grid_wall(&self, at: tokio::time::Instant) -> DateTime<Utc> {
        let (origin, wall) = *self
            .grid_origin
            .get_or_init(|| (tokio::time::Instant::now(), self.clock.now()));
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let offset = if at >= origin {
            ms(at - origin)
        } else {
            -ms(origin - at)
        };
        let wall = DateTime::from_timestamp_millis(wall.timestamp_millis()).unwrap_or(wall);
        wall + chrono::TimeDelta::milliseconds(offset)
    }

    /// The wall-clock time of a point on tokio's clock (the scheduler's
    /// grid), for people to read.
    fn wall_time(&self, at: tokio::time::Instant) -> DateTime<Utc> {
        let now = tokio::time::Instant::now();
        let ahead =
            chrono::Duration::from_std(at.saturating_duration_since(now)).unwrap_or_default();
        let behind =
            chrono::Duration::from_std(now.saturating_duration_since(at)).unwrap_or_default();
        self.clock.now() + ahead - behind
    }

    /// The point on tokio's clock of the wall time `at` (a cron fire), by
    /// the daemon's clock; at most [`scheduler::FAR_AHEAD`] away.
    fn instant_of(&self, at: DateTime<Utc>) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let ahead = at - self.clock.now();
        match ahead.to_std() {
            Ok(ahead) => now + ahead.min(scheduler::FAR_AHEAD),
            Err(_) => {
                let behind = (-ahead).to_std().unwrap_or_default();
                now.checked_sub(behind).unwrap_or(now)
            }
        }
    }
}

fn panicked_record(
    rule: &Rule,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    why: &str,
) -> ExecutionRecord {
    ExecutionRecord {
        status: RunStatus::Failed,
        finished_at: finished,
        error: Some(format!("the run panicked (a bug in detectd): {why}")),
        ..ExecutionRecord::started(&rule.rule_id, &rule.name, String::new(), started)
    }
}

/// The daemon, built from its parts; [`Daemon::run`] runs it.
pub struct Daemon<E, C> {
    options: DaemonOptions,
    shared: Arc<Shared<E, C>>,
    probe: Arc<dyn Probe>,
    health: Arc<Health>,
}

impl<E, C> Daemon<E, C>
where
    E: RuleExecutor + 'static,
    C: Clock,
{
    pub fn new(options: DaemonOptions, executor: E, probe: impl Probe + 'static, clock: C) -> Self {
        let limit = Arc::new(Semaphore::new(options.concurrency.max(1)));
        let health = Arc::new(Health::default());
        Daemon {
            options,
            shared: Arc::new(Shared {
                executor: Arc::new(executor),
                clock,
                limit,
                metrics: Arc::new(Metrics::new()),
                health: health.clone(),
                rules: Arc::new(RuleTable::default()),
                runs: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                runs_on: None,
                coord: None,
                grid_origin: std::sync::OnceLock::new(),
            }),
            probe: Arc::new(probe),
            health,
        }
    }

    /// Executes runs on `runtime` instead of the daemon's own. Call before
    /// [`Daemon::run`].
    pub fn with_runs_on(mut self, runtime: tokio::runtime::Handle) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.runs_on = Some(runtime);
        }
        self
    }

    /// Runs each rule only while `coord` says this instance owns it, and
    /// keeps its heartbeat going. Call before [`Daemon::run`].
    pub fn with_coordinator(mut self, coord: Arc<crate::coord::Coordinator>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.coord = Some(coord);
        }
        self
    }

    /// Keeps health, metrics and the rule table in those of `endpoints`
    /// (already served on `/healthz`, `/metrics` and `/rules` since before
    /// the cluster was reachable). Call before [`Daemon::run`].
    pub fn with_endpoints(mut self, endpoints: &http::Endpoints) -> Self {
        self.health = endpoints.health.clone();
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.metrics = endpoints.metrics.clone();
            shared.health = endpoints.health.clone();
            shared.rules = endpoints.rules.clone();
        }
        self
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// The scheduled rules with their next and last runs (`/rules`).
    pub fn rule_table(&self) -> Arc<RuleTable> {
        self.shared.rules.clone()
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs until `signals.shutdown` (daemon) or until every rule ran once.
    pub async fn run(self, mode: Mode, signals: Signals) -> Outcome {
        match mode {
            Mode::Daemon => self.run_daemon(signals).await,
            Mode::Once => self.run_once(signals).await,
        }
    }

    async fn load(&self, previous: &RuleSet) -> (RuleSet, LoadReport) {
        // Reading and parsing a thousand rule files is CPU work: off the
        // reactor, so /healthz and running rules are not held up.
        let paths = self.options.rules.clone();
        let exceptions = self.options.exceptions.clone();
        let outputs = self.options.outputs.clone();
        let previous = previous.clone();
        let cron = self.options.cron.clone();
        let load = move || RuleSet::load(&paths, &exceptions, &cron, &outputs, &previous);
        let (mut set, mut report) = match tokio::task::spawn_blocking(load).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "loading rules panicked");
                (RuleSet::default(), LoadReport::default())
            }
        };
        if let Some(server) = &self.options.server {
            report.not_runnable_here = set.drop_unrunnable(server);
        }
        let scheduled = set.enabled().count();
        tracing::info!(
            loaded = report.loaded,
            skipped = report.skipped,
            not_supported_yet = %report.not_supported,
            failed = report.failed,
            not_runnable_here = report.not_runnable_here,
            kept_previous = report.kept_previous,
            exception_lists = report.exception_lists,
            exception_file_errors = report.exception_file_errors,
            scheduled,
            "rules loaded"
        );
        self.health.set_rules_loaded(scheduled);
        self.shared.metrics.set_rules_loaded(scheduled);
        (set, report)
    }

    async fn run_daemon(self, mut signals: Signals) -> Outcome {
        let aux = CancellationToken::new();
        let probing = tokio::spawn(probe_loop(
            self.probe.clone(),
            self.health.clone(),
            self.options.health_check_interval,
            aux.clone(),
        ));

        let tracker = TaskTracker::new();
        let (mut set, mut report) = self.load(&RuleSet::default()).await;
        // The first heartbeat before the first runs, so that leases are
        // there when they are due.
        if let Some(coord) = &self.shared.coord {
            coord.set_rules(set.enabled());
            coord.tick().await;
            let view = coord.view();
            self.shared.metrics.observe_instance(&view);
            self.health.set_instance(view);
        }
        let heartbeat = self.shared.coord.clone().map(|coord| {
            tokio::spawn(coordinate(
                coord,
                self.health.clone(),
                self.shared.metrics.clone(),
                aux.clone(),
            ))
        });
        let mut scheduler =
            Scheduler::new(self.shared.clone(), self.options.first_run, tracker.clone());
        scheduler.apply(set.enabled());
        self.announce_schedule(&scheduler);
        let (tail_rules, tailing) = tokio::sync::watch::channel(self.tailing(&set));
        let stop_tails = CancellationToken::new();
        let tail_task = self.options.realtime.as_ref().map(|r| {
            tokio::spawn(tails::tail_loop(
                self.shared.clone(),
                tracker.clone(),
                tailing,
                r.every,
                stop_tails.clone(),
            ))
        });
        loop {
            tokio::select! {
                _ = &mut signals.shutdown => break,
                Some(()) = signals.reload.recv() => {
                    (set, report) = self.load(&set).await;
                    if let Some(coord) = &self.shared.coord {
                        coord.set_rules(set.enabled());
                    }
                    let _ = tail_rules.send(self.tailing(&set));
                    for gone in scheduler.apply(set.enabled()) {
                        self.shared.metrics.forget_rule(&gone);
                        self.health.forget_rule(&gone);
                        self.shared.rules.forget(&gone);
                    }
                    self.announce_schedule(&scheduler);
                }
            }
        }
        scheduler.stop();
        stop_tails.cancel();
        if let Some(task) = tail_task {
            let _ = task.await;
        }
        tracker.close();
        tracker.wait().await;
        aux.cancel();
        let _ = probing.await;
        if let (Some(coord), Some(task)) = (&self.shared.coord, heartbeat) {
            let _ = task.await;
            coord.leave().await;
        }
        let outcome = self.outcome(report, 0);
        tracing::info!(
            runs = outcome.runs,
            failed_runs = outcome.failed_runs,
            "stopped"
        );
        outcome
    }

    /// The rules of `set` that tail (`[realtime]`), told to the executor;
    /// those selected that cannot tail are logged once with why.
    fn tailing(&self, set: &RuleSet) -> Vec<Arc<Rule>> {
        let Some(realtime) = &self.options.realtime else {
            return Vec::new();
        };
        let selected: Vec<Arc<Rule>> = set
            .enabled()
            .filter(|r| realtime.selects(r))
            .cloned()
            .collect();
        let refused = self.shared.executor.tail_together(selected.clone());
        for (rule_id, why) in &refused {
            tracing::info!(rule_id = %rule_id, reason = %why, "rule does not tail: its scheduled runs alone find its alerts");
        }
        let tailing: Vec<Arc<Rule>> = selected
            .into_iter()
            .filter(|r| !refused.iter().any(|(id, _)| *id == r.rule_id))
            .collect();
        tracing::info!(
            rules = tailing.len(),
            every_ms = realtime.every.as_millis() as u64,
            lag_ms = realtime.lag.as_millis() as u64,
            "near-real-time tails"
        );
        tailing
    }

    /// Says when each rule runs next (or, for many rules, when the first
    /// and the last of them do), at start and after a reload.
    ///
    /// A rule just (re)scheduled is announced with the first run the
    /// scheduler planned (with `first_run = "now"` it may be running
    /// already), any other with its next run, or as running now.
    fn announce_schedule(&self, scheduler: &Scheduler<E, C>) {
        let planned = scheduler.planned();
        let mut rows = self.shared.rules.rows();
        for row in &mut rows {
            row.next_run = planned
                .get(&row.rule_id)
                .copied()
                .or(row.next_run)
                .or(row.running_since);
        }
        rows.sort_by(|a, b| (a.next_run, &a.rule_id).cmp(&(b.next_run, &b.rule_id)));
        log::rules_scheduled(&rows, self.shared.clock.now(), self.options.first_run);
    }

    async fn run_once(self, mut signals: Signals) -> Outcome {
        let (set, report) = self.load(&RuleSet::default()).await;
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let mut scheduled = 0u64;
        // every rule is due now: the start delay says how long it queued
        let due = tokio::time::Instant::now();
        let tick = self.shared.grid_wall(due);
        if self.shared.executor.shares_scans() {
            // one cohort: every rule runs at `tick`
            self.shared
                .executor
                .fire_together(vec![set.enabled().cloned().collect()]);
        }
        for rule in set.enabled() {
            scheduled += 1;
            let (shared, tracker2, rule, cancel) = (
                self.shared.clone(),
                tracker.clone(),
                rule.clone(),
                cancel.clone(),
            );
            tracker.spawn(async move {
                let flight = Arc::new(Mutex::new(()));
                scheduler::run_guarded(
                    &shared,
                    &tracker2,
                    &rule,
                    &flight,
                    &cancel,
                    (due, Some(tick)),
                )
                .await
                .flatten()
            });
        }
        tracker.close();
        tokio::select! {
            _ = tracker.wait() => {}
            _ = &mut signals.shutdown => {
                cancel.cancel();
                tracker.wait().await;
            }
        }
        let mut outcome = self.outcome(report, 0);
        outcome.not_started = scheduled.saturating_sub(outcome.runs);
        tracing::info!(
            runs = outcome.runs,
            failed_runs = outcome.failed_runs,
            not_started = outcome.not_started,
            rule_files_failed = outcome.rule_files_failed,
            "every rule ran once"
        );
        outcome
    }

    fn outcome(&self, report: LoadReport, not_started: u64) -> Outcome {
        Outcome {
            runs: self.shared.runs.load(Ordering::Relaxed),
            failed_runs: self.shared.failed.load(Ordering::Relaxed),
            rule_files_failed: report.failed,
            not_started,
        }
    }
}

/// The heartbeat of this instance among several: one every heartbeat
/// period until cancelled, each shown on `/healthz` and `/metrics`.
async fn coordinate(
    coord: Arc<crate::coord::Coordinator>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    // A heartbeat period from the start of one tick to the next (not from
    // its end): a slow tick does not stretch the time between renewals.
    let mut every = tokio::time::interval(coord.timing().heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = coord.tick() => {}
        }
        let view = coord.view();
        metrics.observe_instance(&view);
        health.set_instance(view);
    }
}

/// Checks the cluster now and then every `every`, until cancelled.
async fn probe_loop(
    probe: Arc<dyn Probe>,
    health: Arc<Health>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut was_ok: Option<bool> = None;
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = probe.check() => r,
        };
        let ok = result.is_ok();
        if was_ok != Some(ok) {
            match &result {
                Ok(()) => tracing::info!("cluster reachable"),
                Err(e) => tracing::warn!(error = %e, "cluster unreachable"),
            }
        }
        was_ok = Some(ok);
        health.set_cluster(result);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod cron_tests;
#[cfg(test)]
mod instance_tests;
#[cfg(test)]
mod sharing_tests;
#[cfg(test)]
mod tests;
