//! The schedule when scans are shared: the rules of one interval fire at
//! one grid point (spread by the interval, not by rule) and run with the
//! same `now`, which is what lets their windows be one scan
//! (`runner::share`); the executor is told the cohorts. Without sharing,
//! rules keep their own offsets (`tests::first_runs_spread_over_the_first_interval`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::tests::{options, start, wait, write_rule, Fake};
use super::Mode;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn rules_of_one_interval_fire_together_with_one_now() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        write_rule(dir.path(), &format!("five{i}"), "5m");
    }
    for i in 0..3 {
        write_rule(dir.path(), &format!("one{i}"), "1m");
    }
    let fake = Fake::new(&[]);
    fake.sharing.store(true, Ordering::SeqCst);
    let (stop, _reload, task, _) = start(options(dir.path(), 50, true), &fake, Mode::Daemon);
    wait(10 * MIN + Duration::from_secs(1)).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    assert_eq!(
        *fake.cohorts.lock().unwrap(),
        vec![
            vec!["five0", "five1", "five2", "five3", "five4", "five5"],
            vec!["one0", "one1", "one2"],
        ],
        "one cohort per interval"
    );
    let calls = fake.calls();
    for prefix in ["five", "one"] {
        let mut ticks: Vec<(Duration, chrono::DateTime<chrono::Utc>)> = calls
            .iter()
            .filter(|c| c.rule_id.starts_with(prefix))
            .map(|c| (c.start, c.now))
            .collect();
        ticks.sort();
        ticks.dedup();
        let per_tick = calls
            .iter()
            .filter(|c| c.rule_id.starts_with(prefix))
            .count()
            / ticks.len();
        assert_eq!(
            per_tick,
            if prefix == "five" { 6 } else { 3 },
            "every rule of the {prefix} cohort ran at each of its ticks, with one now: {ticks:?}"
        );
        // consecutive ticks one interval apart, in both clocks
        let interval = if prefix == "five" { 5 * MIN } else { MIN };
        for pair in ticks.windows(2) {
            assert_eq!(pair[1].0 - pair[0].0, interval);
            assert_eq!(
                (pair[1].1 - pair[0].1).to_std().unwrap(),
                interval,
                "the nows are the grid's wall times"
            );
        }
    }
}

/// A run sharing scans keeps its fire as `now` however long it waited for
/// a permit, but says when it began: the records of two runs queued one
/// behind the other (or of one rule on two instances) must not overlap.
#[tokio::test(start_paused = true)]
async fn a_run_queued_past_its_fire_keeps_the_fire_as_now_and_begins_when_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["a", "b"] {
        write_rule(dir.path(), id, "5m");
    }
    let took = Duration::from_secs(40);
    let fake = Fake::new(&[("a", took), ("b", took)]);
    fake.sharing.store(true, Ordering::SeqCst);
    let (stop, _reload, task, _) = start(options(dir.path(), 1, true), &fake, Mode::Daemon);
    wait(6 * MIN).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    let mut calls = fake.calls();
    calls.sort_by_key(|c| c.start);
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (first, second) = (&calls[0], &calls[1]);
    assert_eq!(first.now, second.now, "one fire, one now");
    assert_eq!(first.began, first.now, "the first runs at its fire");
    assert_eq!(
        (second.began - second.now).to_std().unwrap(),
        took,
        "the second began when the permit came free: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn once_runs_every_rule_with_one_now_when_sharing() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write_rule(
            dir.path(),
            &format!("r{i}"),
            if i % 2 == 0 { "5m" } else { "1m" },
        );
    }
    // one at a time: later runs start later, but keep the run's `now`
    let fake = Fake::new(&[]);
    fake.sharing.store(true, Ordering::SeqCst);
    let (_stop, _reload, task, _) = start(options(dir.path(), 1, false), &fake, Mode::Once);
    let outcome = task.await.unwrap();
    assert_eq!(outcome.runs, 5);
    let calls = fake.calls();
    assert!(calls.iter().all(|c| c.now == calls[0].now), "{calls:?}");
    assert!(calls.iter().any(|c| c.start >= Duration::from_secs(4)));
    assert_eq!(fake.cohorts.lock().unwrap().len(), 1, "one cohort");
}

#[tokio::test(start_paused = true)]
async fn rules_tail_together_every_few_seconds_with_one_now() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["a", "b", "no-c"] {
        write_rule(dir.path(), id, "5m");
    }
    let fake = Fake::new(&[]);
    let mut opts = options(dir.path(), 4, false);
    opts.realtime = Some(crate::config::RealtimeSettings {
        every: Duration::from_secs(5),
        lag: Duration::from_secs(15),
        rule_ids: Vec::new(),
        tags: Vec::new(),
    });
    let (stop, _reload, task, metrics) = start(opts, &fake, Mode::Daemon);
    wait(Duration::from_secs(22)).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    let tails = fake.tails.lock().unwrap().clone();
    let at =
        |id: &str| -> Vec<Duration> { tails.iter().filter(|t| t.0 == id).map(|t| t.1).collect() };
    let grid: Vec<Duration> = (0..5).map(|k| k * Duration::from_secs(5)).collect();
    assert_eq!(at("a"), grid, "a tail every 5 s from the start");
    assert_eq!(at("b"), grid);
    assert!(at("no-c").is_empty(), "a rule that cannot tail does not");
    // one now per tick, the grid's wall time
    for tick in &grid {
        let nows: Vec<_> = tails.iter().filter(|t| t.1 == *tick).map(|t| t.2).collect();
        assert!(nows.windows(2).all(|w| w[0] == w[1]), "{nows:?}");
    }
    let text = metrics.encode();
    assert!(
        text.contains("detectd_tails_total{status=\"succeeded\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("detectd_tail_alerts_created_total 10"),
        "{text}"
    );
}
