//! The daemon on tokio's paused clock with a fake executor: jitter, the
//! interval grid, single flight, the concurrency limit, shutdown, `--once`
//! and SIGHUP reloads. No real sleeps: time only moves when a test waits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex as StdMutex;

use chrono::TimeZone;
use tokio::time::Instant;

use super::*;
use crate::runner::record::WindowRange;

pub(super) const MIN: Duration = Duration::from_secs(60);

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// One call of the fake executor.
#[derive(Clone, Debug)]
pub(super) struct Call {
    pub(super) rule_id: String,
    /// Offsets from the test's start on tokio's clock.
    pub(super) start: Duration,
    pub(super) end: Duration,
    /// The `now` the run was given.
    pub(super) now: DateTime<Utc>,
    /// When the daemon says the run began (wall time).
    pub(super) began: DateTime<Utc>,
}

/// Sleeps (on tokio's clock) for the rule's configured duration, notes the
/// call and checks that no rule runs twice at once.
pub(super) struct Fake {
    epoch: Instant,
    durations: HashMap<String, Duration>,
    failing: Vec<String>,
    calls: StdMutex<Vec<Call>>,
    running: StdMutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    pub(super) overlaps: AtomicUsize,
    /// Whether the fake says it shares scans, and the cohorts it was given.
    pub(super) sharing: std::sync::atomic::AtomicBool,
    pub(super) cohorts: StdMutex<Vec<Vec<String>>>,
    /// Tails asked: rule id, when (from the test's start), `now`.
    pub(super) tails: StdMutex<Vec<(String, Duration, DateTime<Utc>)>>,
}

impl Fake {
    pub(super) fn new(durations: &[(&str, Duration)]) -> Arc<Fake> {
        Arc::new(Fake {
            epoch: Instant::now(),
            durations: durations.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failing: Vec::new(),
            calls: StdMutex::new(Vec::new()),
            running: StdMutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            overlaps: AtomicUsize::new(0),
            sharing: Default::default(),
            cohorts: StdMutex::default(),
            tails: StdMutex::default(),
        })
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub(super) fn starts(&self, rule_id: &str) -> Vec<Duration> {
        self.calls()
            .into_iter()
            .filter(|c| c.rule_id == rule_id)
            .map(|c| c.start)
            .collect()
    }
}

/// The daemon owns its executor; tests keep a handle on the same fake.
pub(super) struct Handle(pub(super) Arc<Fake>);

impl RuleExecutor for Handle {
    fn shares_scans(&self) -> bool {
        self.0.sharing.load(Ordering::SeqCst)
    }

    fn fire_together(&self, cohorts: Vec<Vec<Arc<Rule>>>) {
        let mut ids: Vec<Vec<String>> = cohorts
            .iter()
            .map(|c| {
                let mut ids: Vec<String> = c.iter().map(|r| r.rule_id.clone()).collect();
                ids.sort();
                ids
            })
            .collect();
        ids.sort();
        *self.0.cohorts.lock().unwrap() = ids;
    }

    async fn tail(&self, rule: &Rule, now: DateTime<Utc>) -> Option<ExecutionRecord> {
        let f = &self.0;
        f.tails
            .lock()
            .unwrap()
            .push((rule.rule_id.clone(), f.epoch.elapsed(), now));
        let mut record = ExecutionRecord::started(&rule.rule_id, &rule.name, "t".into(), now);
        record.alerts_created = 1;
        Some(record)
    }

    fn tail_together(&self, rules: Vec<Arc<Rule>>) -> Vec<(String, String)> {
        // rules whose id starts with "no-" cannot tail
        let mut ids: Vec<String> = rules.iter().map(|r| r.rule_id.clone()).collect();
        ids.sort();
        *self.0.cohorts.lock().unwrap() = vec![ids];
        rules
            .iter()
            .filter(|r| r.rule_id.starts_with("no-"))
            .map(|r| (r.rule_id.clone(), "cannot".to_string()))
            .collect()
    }

    async fn execute(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        self.execute_begun(rule, now, now).await
    }

    async fn execute_begun(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        began: DateTime<Utc>,
    ) -> ExecutionRecord {
        let f = &self.0;
        let start = f.epoch.elapsed();
        {
            let mut running = f.running.lock().unwrap();
            let n = running.entry(rule.rule_id.clone()).or_default();
            *n += 1;
            if *n > 1 {
                f.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        let now_running = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        f.max_in_flight.fetch_max(now_running, Ordering::SeqCst);
        let d = f
            .durations
            .get(&rule.rule_id)
            .copied()
            .unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(d).await;
        f.in_flight.fetch_sub(1, Ordering::SeqCst);
        *f.running
            .lock()
            .unwrap()
            .get_mut(&rule.rule_id)
            .expect("counted above") -= 1;
        f.calls.lock().unwrap().push(Call {
            rule_id: rule.rule_id.clone(),
            start,
            end: f.epoch.elapsed(),
            now,
            began,
        });
        let failed = f.failing.contains(&rule.rule_id);
        ExecutionRecord {
            rule_id: rule.rule_id.clone(),
            rule_name: rule.name.clone(),
            execution_id: "x".into(),
            status: if failed {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            },
            started_at: now,
            finished_at: now,
            windows: vec![WindowRange {
                start: now - chrono::Duration::minutes(6),
                end: now,
            }],
            events_fetched: 5,
            events_skipped: 0,
            alerts_created: 1,
            alerts_duplicate: 0,
            alerts_capped: 0,
            alerts_failed: 0,
            alerts_dead_lettered: 0,
            alerts_suppressed: 0,
            search_duration_ms: 0,
            index_duration_ms: 0,
            warnings: vec![],
            gap: None,
            error: failed.then(|| "search failed".to_string()),
        }
    }
}

pub(super) struct Reachable;

impl Probe for Reachable {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

pub(super) fn rule_toml(id: &str, interval: &str, extra: &str) -> String {
    format!(
        "[metadata]\ncreation_date = \"2020/12/15\"\n\n[rule]\n\
         rule_id = \"{id}\"\nname = \"Rule {id}\"\ndescription = \"A test\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\ninterval = \"{interval}\"\n{extra}\
         query = '''\nprocess where process.name == \"cmd.exe\"\n'''\n"
    )
}

pub(super) fn write_rule(dir: &Path, id: &str, interval: &str) {
    std::fs::write(dir.join(format!("{id}.toml")), rule_toml(id, interval, "")).unwrap();
}

/// `jitter`: `first_run = "spread"` (else `"now"`).
pub(super) fn options(dir: &Path, concurrency: usize, jitter: bool) -> DaemonOptions {
    DaemonOptions {
        rules: vec![dir.to_path_buf()],
        exceptions: Vec::new(),
        concurrency,
        first_run: if jitter {
            FirstRun::Spread
        } else {
            FirstRun::Now
        },
        health_check_interval: Duration::from_secs(30),
        outputs: Default::default(),
        cron: Default::default(),
        server: None,
        realtime: None,
    }
}

pub(super) type Started = (
    tokio::sync::oneshot::Sender<()>,
    mpsc::Sender<()>,
    tokio::task::JoinHandle<Outcome>,
    Arc<Metrics>,
);

/// Starts the daemon on its own task; returns the shutdown trigger, the
/// reload sender and the task.
pub(super) fn start(opts: DaemonOptions, fake: &Arc<Fake>, mode: Mode) -> Started {
    let (stop, reload, task, metrics, _) = start_with_table(opts, fake, mode);
    (stop, reload, task, metrics)
}

/// [`Started`] and the rule table `/rules` shows.
pub(super) type StartedWithTable = (
    tokio::sync::oneshot::Sender<()>,
    mpsc::Sender<()>,
    tokio::task::JoinHandle<Outcome>,
    Arc<Metrics>,
    Arc<RuleTable>,
);

/// [`start`], also giving the rule table `/rules` shows.
pub(super) fn start_with_table(
    opts: DaemonOptions,
    fake: &Arc<Fake>,
    mode: Mode,
) -> StartedWithTable {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (signals, reload) = Signals::new(async move {
        let _ = stop_rx.await;
    });
    let daemon = Daemon::new(
        opts,
        Handle(fake.clone()),
        Reachable,
        TokioClock::starting_at(t0()),
    );
    let metrics = daemon.metrics();
    let table = daemon.rule_table();
    let task = tokio::spawn(daemon.run(mode, signals));
    (stop_tx, reload, task, metrics, table)
}

pub(super) async fn wait(d: Duration) {
    tokio::time::sleep(d).await;
}

#[test]
fn jitter_offsets_are_stable_and_spread_over_the_interval() {
    let interval = 5 * MIN;
    let mut buckets = [0usize; 10];
    for i in 0..1000 {
        let id = format!("rule-{i}");
        let off = jitter_offset_of(&id, interval);
        assert!(off < interval);
        assert_eq!(off, jitter_offset_of(&id, interval), "stable");
        buckets[(off.as_millis() * 10 / interval.as_millis()) as usize] += 1;
    }
    // 100 expected per 30 s bucket; a hash that clumps fails this.
    for (i, n) in buckets.iter().enumerate() {
        assert!((60..=140).contains(n), "bucket {i} has {n}: {buckets:?}");
    }
}

fn jitter_offset_of(id: &str, interval: Duration) -> Duration {
    scheduler::jitter_offset(id, interval)
}

#[test]
fn next_fire_is_the_next_grid_point() {
    let epoch = Instant::now();
    let off = Duration::from_secs(10);
    assert_eq!(scheduler::next_fire(epoch, epoch, off, MIN), epoch + off);
    assert_eq!(
        scheduler::next_fire(epoch, epoch + Duration::from_secs(11), off, MIN),
        epoch + Duration::from_secs(70)
    );
    assert_eq!(
        scheduler::next_fire(epoch, epoch + Duration::from_secs(70), off, MIN),
        epoch + Duration::from_secs(70)
    );
}

#[tokio::test(start_paused = true)]
async fn first_runs_spread_over_the_first_interval() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write_rule(dir.path(), &format!("r{i:02}"), "5m");
    }
    let fake = Fake::new(&[]);
    let (stop, _reload, task, _) = start(options(dir.path(), 50, true), &fake, Mode::Daemon);
    wait(5 * MIN - Duration::from_millis(1)).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 20, "each rule ran once in its first interval");
    for c in &calls {
        assert_eq!(
            c.start,
            jitter_offset_of(&c.rule_id, 5 * MIN),
            "{} fired at its offset",
            c.rule_id
        );
    }
    let in_first_minute = calls.iter().filter(|c| c.start < MIN).count();
    assert!(
        in_first_minute < 10,
        "{in_first_minute} of 20 fired at once"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn runs_keep_the_interval_and_see_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "a", "5m");
    let fake = Fake::new(&[("a", Duration::from_secs(20))]);
    let (stop, _reload, task, metrics) = start(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(20 * MIN + Duration::from_secs(30)).await;
    let starts = fake.starts("a");
    let expected: Vec<Duration> = (0..5).map(|k| k * 5 * MIN).collect();
    assert_eq!(starts, expected, "a 20 s run does not push the grid back");
    let nows: Vec<DateTime<Utc>> = fake.calls().iter().map(|c| c.now).collect();
    assert_eq!(nows[1], t0() + chrono::Duration::minutes(5));
    stop.send(()).unwrap();
    let outcome = task.await.unwrap();
    assert_eq!(outcome.runs, 5);
    let text = metrics.encode();
    assert!(
        text.contains("detectd_rule_runs_total{rule_id=\"a\",status=\"succeeded\"} 5"),
        "{text}"
    );
    assert!(text.contains("detectd_rules_loaded 1"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_run_is_followed_right_after_and_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "slow", "1m");
    let fake = Fake::new(&[("slow", Duration::from_secs(150))]);
    let (stop, _reload, task, metrics) = start(options(dir.path(), 4, false), &fake, Mode::Daemon);
    // calls are noted when they end; the 4th ends at 600 s
    wait(10 * MIN + Duration::from_secs(1)).await;
    let calls = fake.calls();
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
    let starts: Vec<u64> = calls.iter().map(|c| c.start.as_secs()).collect();
    // each run starts when the previous one ends: no pile-up of missed ticks
    assert_eq!(starts, vec![0, 150, 300, 450]);
    // and each late run is counted late from the first grid point after
    // its predecessor started (due 60, started 150; due 180, started 300;
    // due 360, started 450; due 480, started 600): the rule stays on its
    // grid, the first run aside
    let text = metrics.encode();
    assert!(
        text.contains("detectd_run_start_delay_seconds_count 5"),
        "{text}"
    );
    assert!(
        text.contains("detectd_run_start_delay_seconds_sum 420.0"),
        "{text}"
    );
    for pair in calls.windows(2) {
        assert!(pair[1].start >= pair[0].end);
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut durations = Vec::new();
    for i in 0..10 {
        write_rule(dir.path(), &format!("r{i}"), "5m");
        durations.push((format!("r{i}"), Duration::from_secs(10)));
    }
    let d: Vec<(&str, Duration)> = durations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let fake = Fake::new(&d);
    let (stop, _reload, task, metrics) = start(options(dir.path(), 3, false), &fake, Mode::Daemon);
    wait(Duration::from_secs(45)).await;
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(fake.calls().len(), 10, "4 waves of at most 3 in 40 s");
    // all due at 0: waves start 0, 10, 20 and 30 s late (3*10 + 3*20 + 30)
    let text = metrics.encode();
    assert!(
        text.contains("detectd_run_start_delay_seconds_count 10"),
        "{text}"
    );
    assert!(
        text.contains("detectd_run_start_delay_seconds_sum 120.0"),
        "{text}"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_runs_in_flight_and_starts_no_more() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "long", "1m");
    write_rule(dir.path(), "waiting", "1m");
    let fake = Fake::new(&[
        ("long", Duration::from_secs(50)),
        ("waiting", Duration::from_secs(50)),
    ]);
    // concurrency 1: "waiting" queues behind "long"
    let (stop, _reload, task, _) = start(options(dir.path(), 1, false), &fake, Mode::Daemon);
    wait(Duration::from_secs(10)).await;
    assert!(fake.calls().is_empty());
    stop.send(()).unwrap();
    let shut_at = fake.epoch.elapsed();
    let outcome = task.await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "the queued run never started: {calls:?}");
    assert_eq!(calls[0].end, Duration::from_secs(50), "the run finished");
    assert!(fake.epoch.elapsed() >= Duration::from_secs(50) && shut_at < calls[0].end);
    assert_eq!(outcome.runs, 1);
}

#[tokio::test(start_paused = true)]
async fn once_runs_every_enabled_eql_rule_once() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["a", "b", "c"] {
        write_rule(dir.path(), id, "5m");
    }
    std::fs::write(
        dir.path().join("off.toml"),
        rule_toml("off", "5m", "enabled = false\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.toml"), "[rule]\nrule_id = 3\n").unwrap();
    let mut fake = Fake::new(&[]);
    Arc::get_mut(&mut fake).unwrap().failing = vec!["b".into()];
    let (_stop, _reload, task, _) = start(options(dir.path(), 2, true), &fake, Mode::Once);
    let outcome = task.await.unwrap();
    let mut ran: Vec<String> = fake.calls().into_iter().map(|c| c.rule_id).collect();
    ran.sort();
    assert_eq!(ran, vec!["a", "b", "c"]);
    assert_eq!(outcome.runs, 3);
    assert_eq!(outcome.failed_runs, 1);
    assert_eq!(outcome.rule_files_failed, 1);
    assert_eq!(outcome.once_exit_code(), 1);
    // once ignores the jitter: all start at once, up to the limit
    assert!(fake
        .calls()
        .iter()
        .all(|c| c.start < Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn once_with_no_failure_exits_zero_and_shutdown_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["a", "b", "c"] {
        write_rule(dir.path(), id, "5m");
    }
    let fake = Fake::new(&[
        ("a", Duration::from_secs(30)),
        ("b", Duration::from_secs(30)),
        ("c", Duration::from_secs(30)),
    ]);
    let (stop, _reload, task, _) = start(options(dir.path(), 1, false), &fake, Mode::Once);
    wait(Duration::from_secs(40)).await;
    stop.send(()).unwrap();
    let outcome = task.await.unwrap();
    assert_eq!(outcome.runs, 2, "the second run in flight finished");
    assert_eq!(outcome.not_started, 1);
    assert_eq!(outcome.once_exit_code(), 0);
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_a_broken_rules_previous_version_and_applies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "keep", "1m");
    write_rule(dir.path(), "gone", "1m");
    let fake = Fake::new(&[]);
    let (stop, reload, task, metrics) = start(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(Duration::from_secs(30)).await;
    assert_eq!(fake.calls().len(), 2);

    std::fs::write(dir.path().join("keep.toml"), "[rule]\nrule_id = \"keep\"\n").unwrap();
    std::fs::remove_file(dir.path().join("gone.toml")).unwrap();
    write_rule(dir.path(), "new", "1m");
    reload.send(()).await.unwrap();
    wait(3 * MIN).await;

    let after = |id: &str| {
        fake.starts(id)
            .into_iter()
            .filter(|s| *s > Duration::from_secs(30))
            .count()
    };
    assert_eq!(after("keep"), 3, "the old version of `keep` still runs");
    assert_eq!(after("gone"), 0, "a removed rule stops");
    assert!(after("new") >= 3, "a new rule starts");
    assert!(!metrics.encode().contains("rule_id=\"gone\""));
    assert!(metrics.encode().contains("detectd_rules_loaded 2"));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_changed_rule_is_replaced_without_overlapping_its_old_run() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "r", "1m");
    let fake = Fake::new(&[("r", Duration::from_secs(50))]);
    let (stop, reload, task, _) = start(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(Duration::from_secs(10)).await;
    // change the interval while the first run is in flight
    write_rule(dir.path(), "r", "2m");
    reload.send(()).await.unwrap();
    wait(5 * MIN).await;
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
    let starts: Vec<u64> = fake.starts("r").iter().map(|d| d.as_secs()).collect();
    assert_eq!(starts, vec![0, 120, 240], "the new 2m grid");
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Spins on a CPU (no await) until the daemon's own runtime sets `release`:
/// possible only if the run executes on other threads than the scheduler.
struct Spinner {
    started: Arc<std::sync::atomic::AtomicBool>,
    release: Arc<std::sync::atomic::AtomicBool>,
}

impl RuleExecutor for Spinner {
    async fn execute(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        self.started.store(true, Ordering::SeqCst);
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let mut released = false;
        while std::time::Instant::now() < give_up {
            if self.release.load(Ordering::SeqCst) {
                released = true;
                break;
            }
            std::hint::spin_loop();
        }
        let mut record = panicked_record(rule, now, now, "unused");
        record.error = None;
        record.status = if released {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        record
    }
}

#[tokio::test(flavor = "current_thread")]
async fn runs_execute_off_the_daemons_runtime() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "cpu", "5m");
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let daemon = Daemon::new(
        options(dir.path(), 1, false),
        Spinner {
            started: started.clone(),
            release: release.clone(),
        },
        Reachable,
        SystemClock,
    )
    .with_runs_on(runs.handle().clone());
    let (signals, _reload) = Signals::new(std::future::pending());
    // The daemon's runtime is this one thread: were the spinning run on it,
    // the releasing task below could never run and the run would fail.
    let releaser = {
        let (started, release) = (started.clone(), release.clone());
        tokio::spawn(async move {
            while !started.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
            release.store(true, Ordering::SeqCst);
        })
    };
    let outcome = daemon.run(Mode::Once, signals).await;
    releaser.await.unwrap();
    assert_eq!(outcome.runs, 1);
    assert_eq!(
        outcome.failed_runs, 0,
        "the run was released while spinning"
    );
    runs.shutdown_background();
}

/// Regression: the grid's origin was taken when the scheduler was built, so
/// the time spent loading rules before the first `apply` pushed every
/// first run back by a whole interval (found by the SIGTERM CLI test).
#[tokio::test(start_paused = true)]
async fn start_up_time_does_not_push_the_first_runs_back() {
    let fake = Fake::new(&[]);
    let shared = Arc::new(Shared {
        executor: Arc::new(Handle(fake.clone())),
        clock: TokioClock::starting_at(t0()),
        limit: Arc::new(Semaphore::new(1)),
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(Health::default()),
        rules: Arc::new(RuleTable::default()),
        runs: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        runs_on: None,
        coord: None,
        grid_origin: std::sync::OnceLock::new(),
    });
    let tracker = TaskTracker::new();
    let mut scheduler = Scheduler::new(shared, FirstRun::Now, tracker.clone());
    // loading the rules took 3 s
    tokio::time::advance(Duration::from_secs(3)).await;
    let crate::rule::LoadOutcome::Loaded { rule, .. } =
        crate::rule::load_str(&rule_toml("a", "5m", ""))
    else {
        panic!("the test rule loads")
    };
    let rules = [Arc::new(*rule)];
    scheduler.apply(rules.iter());
    wait(Duration::from_secs(2)).await;
    assert_eq!(fake.starts("a"), vec![Duration::from_secs(3)]);
    scheduler.stop();
    tracker.close();
    tracker.wait().await;
}

/// A log sink in memory, for the lines the daemon writes.
#[derive(Clone, Default)]
pub(super) struct Capture(Arc<StdMutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    /// The JSON lines with this message.
    pub(super) fn lines(&self, message: &str) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }
}

/// Captures the daemon's JSON log lines on this thread (the tests'
/// runtime is single-threaded, so the daemon's tasks log here too).
pub(super) fn capture_logs() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let sub = log::subscriber(
        crate::config::LogFormat::Json,
        tracing_subscriber::EnvFilter::new("info"),
        capture.clone(),
        false,
    );
    let guard = tracing::subscriber::set_default(sub);
    (capture, guard)
}

pub(super) fn iso(t: DateTime<Utc>) -> String {
    rule_table::time_text(&t)
}

#[tokio::test(start_paused = true)]
async fn start_up_says_when_each_rule_runs_next_and_the_table_follows_the_runs() {
    let (logs, _guard) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "a", "5m");
    write_rule(dir.path(), "b", "5m");
    let mut fake = Fake::new(&[("a", Duration::from_secs(2)), ("b", Duration::from_secs(2))]);
    Arc::get_mut(&mut fake).unwrap().failing = vec!["b".into()];
    let (stop, reload, task, _, table) =
        start_with_table(options(dir.path(), 4, true), &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;

    let offset = |id: &str| chrono::Duration::from_std(jitter_offset_of(id, 5 * MIN)).unwrap();
    // one line per rule with its next run, before any run
    let lines = logs.lines("rule scheduled");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let id = line["rule_id"].as_str().unwrap();
        assert_eq!(line["next_run"], iso(t0() + offset(id)), "{line}");
        assert_eq!(line["interval"], "5m");
        assert_eq!(line["first_run"], "spread");
        assert!(
            line["next_run_in"].as_str().unwrap().ends_with('s'),
            "{line}"
        );
    }
    let rows = table.rows();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.status, "scheduled");
        assert_eq!(row.next_run, Some(t0() + offset(&row.rule_id)));
        assert_eq!(row.last_run, None);
    }
    // sorted by next run
    assert!(rows[0].next_run <= rows[1].next_run);

    // after both first runs: last run, status, the next grid point, the error
    wait(5 * MIN).await;
    let by_id = |id: &str| table.rows().into_iter().find(|r| r.rule_id == id).unwrap();
    let a = by_id("a");
    assert_eq!(a.status, "succeeded");
    let last = a.last_run.clone().unwrap();
    assert_eq!(last.started_at, t0() + offset("a"));
    assert_eq!(last.duration_ms, 2000);
    assert_eq!(last.alerts_created, 1);
    assert_eq!(
        a.next_run,
        Some(t0() + offset("a") + chrono::Duration::minutes(5))
    );
    assert_eq!(a.last_error, None);
    let b = by_id("b");
    assert_eq!(b.status, "failed");
    assert_eq!(b.last_error.unwrap().error, "search failed");
    let json = table.report();
    assert_eq!(json["count"], 2);
    assert_eq!(json["rules"][0]["interval"], "5m");
    assert!(json["rules"][0]["next_run"].as_str().is_some(), "{json}");

    // a reload: the removed rule leaves the table, the new one is announced
    std::fs::remove_file(dir.path().join("b.toml")).unwrap();
    write_rule(dir.path(), "c", "1m");
    reload.send(()).await.unwrap();
    wait(Duration::from_millis(10)).await;
    let ids: Vec<String> = table.rows().into_iter().map(|r| r.rule_id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"a".to_string()) && ids.contains(&"c".to_string()));
    let after = logs.lines("rule scheduled");
    assert_eq!(after.len(), 4, "both rules announced again: {after:?}");
    assert!(after[2..].iter().any(|l| l["rule_id"] == "c"));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn many_rules_get_one_summary_line() {
    let (logs, _guard) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..(log::RULE_LINES_MAX + 5) {
        write_rule(dir.path(), &format!("r{i:02}"), "5m");
    }
    let fake = Fake::new(&[]);
    let (stop, _reload, task, _, table) =
        start_with_table(options(dir.path(), 4, true), &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;
    assert!(logs.lines("rule scheduled").is_empty());
    let summary = logs.lines("rules scheduled (GET /rules lists each rule's next run)");
    assert_eq!(summary.len(), 1);
    let rows = table.rows();
    assert_eq!(summary[0]["rules"], log::RULE_LINES_MAX + 5);
    assert_eq!(summary[0]["first_next_run"], iso(rows[0].next_run.unwrap()));
    assert_eq!(summary[0]["first_rule_id"], rows[0].rule_id.as_str());
    assert_eq!(
        summary[0]["last_next_run"],
        iso(rows.last().unwrap().next_run.unwrap())
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn first_run_now_runs_at_start_then_every_interval() {
    let (logs, _guard) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    write_rule(dir.path(), "a", "5m");
    write_rule(dir.path(), "b", "2m");
    let fake = Fake::new(&[]);
    let (stop, _reload, task, _, table) =
        start_with_table(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;
    for line in logs.lines("rule scheduled") {
        assert_eq!(line["next_run"], iso(t0()), "{line}");
        assert_eq!(line["next_run_in"], "now");
        assert_eq!(line["first_run"], "now");
    }
    wait(10 * MIN + Duration::from_secs(30)).await;
    let secs = |id: &str| -> Vec<u64> { fake.starts(id).iter().map(|d| d.as_secs()).collect() };
    assert_eq!(secs("a"), vec![0, 300, 600]);
    assert_eq!(secs("b"), vec![0, 120, 240, 360, 480, 600]);
    let b = table.rows().into_iter().find(|r| r.rule_id == "b").unwrap();
    assert_eq!(b.next_run, Some(t0() + chrono::Duration::minutes(12)));
    stop.send(()).unwrap();
    task.await.unwrap();
}
