//! Cron rules in the daemon, on tokio's paused clock with the fake
//! executor of `tests`: fires at their wall times (in their timezone), no
//! spreading, single flight and no pile-up when a run overruns fires, a
//! reload keeps an unchanged schedule, and `[[schedule.cron]]` from the
//! config schedules a rule by tag.

use chrono::TimeZone;

use super::tests::{
    capture_logs, iso, options, rule_toml, start_with_table, wait, write_rule, Fake, MIN,
};
use super::*;

/// A rule file with `cron` (and `extra`, e.g. `cron_timezone`) instead of
/// `interval`.
fn write_cron_rule(dir: &std::path::Path, id: &str, cron: &str, extra: &str) {
    let text =
        rule_toml(id, "5m", extra).replace("interval = \"5m\"\n", &format!("cron = \"{cron}\"\n"));
    assert!(text.contains("cron = "), "{text}");
    std::fs::write(dir.join(format!("{id}.toml")), text).unwrap();
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    // t0 is Wednesday 2024-05-01 10:00 UTC
    Utc.with_ymd_and_hms(2024, 5, 1, h, m, 0).unwrap()
}

fn nows(fake: &Fake, id: &str) -> Vec<DateTime<Utc>> {
    fake.calls()
        .into_iter()
        .filter(|c| c.rule_id == id)
        .map(|c| c.now)
        .collect()
}

fn secs(fake: &Fake, id: &str) -> Vec<u64> {
    fake.starts(id).iter().map(|d| d.as_secs()).collect()
}

fn cron_rule(id: &str, cron: &str) -> Rule {
    let text =
        rule_toml(id, "5m", "").replace("interval = \"5m\"\n", &format!("cron = \"{cron}\"\n"));
    match crate::rule::load_str(&text) {
        crate::rule::LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_cron_rule_runs_at_its_fires_not_spread() {
    let dir = tempfile::tempdir().unwrap();
    write_cron_rule(dir.path(), "hourly", "5 * * * *", "");
    let fake = Fake::new(&[]);
    // first_run = "spread" is about interval rules: a cron rule is not spread
    let (stop, _reload, task, _, table) =
        start_with_table(options(dir.path(), 4, true), &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;
    let row = &table.rows()[0];
    assert_eq!(row.next_run, Some(at(10, 5)));
    assert_eq!(row.cron.as_deref(), Some("5 * * * *"));
    assert_eq!(row.interval, "1h", "the shortest gap between fires");

    wait(3 * 60 * MIN).await; // to 13:00
    assert_eq!(nows(&fake, "hourly"), vec![at(10, 5), at(11, 5), at(12, 5)]);
    assert_eq!(secs(&fake, "hourly"), vec![300, 3900, 7500]);
    assert_eq!(table.rows()[0].next_run, Some(at(13, 5)));
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// The start-up line is written from the rule table's rows; tested
/// without a daemon. Asserted inside a daemon test, the line went missing
/// from the capture in about one full `cargo test --lib` run of three
/// ("rules loaded" just before it was captured, the table had the row),
/// and here too until the interest cache is rebuilt right before the line:
/// `tracing` caches per callsite whether anyone listens, and the other
/// daemon tests hit this callsite on threads with no subscriber. That is
/// test plumbing, not the daemon.
#[test]
fn the_start_up_line_of_a_cron_rule_names_its_schedule_and_next_fire() {
    let (logs, _guard) = capture_logs();
    let table = RuleTable::default();
    table.schedule(&cron_rule("hourly", "5 * * * *"), at(10, 5));
    // see above: ask every callsite again, now this thread has a subscriber
    tracing::callsite::rebuild_interest_cache();
    log::rules_scheduled(&table.rows(), at(10, 0), FirstRun::Spread);
    let lines = logs.lines("rule scheduled");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["next_run"], iso(at(10, 5)));
    assert_eq!(lines[0]["next_run_in"], "5m");
    assert_eq!(lines[0]["cron"], "5 * * * *");
    assert_eq!(lines[0]["interval"], "1h");
    assert_eq!(table.report()["rules"][0]["cron"], "5 * * * *");
}

#[tokio::test(start_paused = true)]
async fn business_hours_in_a_timezone_skip_nights_and_the_weekend() {
    let dir = tempfile::tempdir().unwrap();
    // 09:00 and 17:00 in Berlin (UTC+2 in May), Monday to Friday
    write_cron_rule(
        dir.path(),
        "office",
        "0 9,17 * * MON-FRI",
        "cron_timezone = \"Europe/Berlin\"\n",
    );
    let fake = Fake::new(&[]);
    let (stop, _reload, task, _, table) =
        start_with_table(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(6 * 24 * 60 * MIN).await; // Wednesday 10:00 to Tuesday 10:00 UTC
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2024, 5, d, h, 0, 0).unwrap();
    assert_eq!(
        nows(&fake, "office"),
        vec![
            day(1, 15), // Wednesday 17:00 Berlin
            day(2, 7),
            day(2, 15),
            day(3, 7),
            day(3, 15), // Friday 17:00, then nothing until Monday
            day(6, 7),
            day(6, 15),
            day(7, 7),
        ]
    );
    assert_eq!(table.rows()[0].next_run, Some(day(7, 15)));
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Fires at :00, :01, :02, :03 of each hour; a run takes 2.5 minutes.
/// The fires it overruns collapse into one run right after it, never a
/// queue of runs, and no two runs of the rule overlap.
#[tokio::test(start_paused = true)]
async fn fires_missed_while_a_run_overruns_give_one_run_not_a_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    write_cron_rule(dir.path(), "burst", "0-3 * * * *", "");
    let fake = Fake::new(&[("burst", Duration::from_secs(150))]);
    let (stop, _reload, task, _, table) =
        start_with_table(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;
    wait(70 * MIN).await; // to 11:10
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
    // 10:01 (the first fire after start) runs to 10:03:30, past the 10:02
    // and 10:03 fires: one run at 10:03:30, then 11:00. At 11:00 the same,
    // but the run at 11:02:30 (for 11:02) ends at 11:05, past 11:03: one
    // more run at 11:05, then nothing until 12:00.
    assert_eq!(secs(&fake, "burst"), vec![60, 210, 3600, 3750, 3900]);
    assert_eq!(
        table.rows()[0].next_run,
        Some(Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap())
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_an_unchanged_cron_schedule_and_applies_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    write_cron_rule(dir.path(), "r", "*/10 * * * *", "");
    let fake = Fake::new(&[]);
    let (stop, reload, task, _, table) =
        start_with_table(options(dir.path(), 4, false), &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;
    wait(25 * MIN).await;
    reload.send(()).await.unwrap();
    wait(20 * MIN).await; // 10:45
    assert_eq!(secs(&fake, "r"), vec![600, 1200, 1800, 2400]);

    write_cron_rule(dir.path(), "r", "*/15 * * * *", "");
    reload.send(()).await.unwrap();
    wait(Duration::from_millis(1)).await;
    assert_eq!(table.rows()[0].cron.as_deref(), Some("*/15 * * * *"));
    wait(35 * MIN).await; // 11:20
    assert_eq!(
        secs(&fake, "r"),
        vec![600, 1200, 1800, 2400, 3600, 4500],
        "then 11:00 and 11:15"
    );
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_config_entry_gives_a_tagged_rule_a_cron_schedule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tagged.toml"),
        rule_toml("tagged", "5m", "tags = [\"Business Hours\"]\n"),
    )
    .unwrap();
    write_rule(dir.path(), "plain", "1h");
    let config = "[[schedule.cron]]\ntags = [\"Business Hours\"]\nexpression = \"30 10 * * *\"\n";
    let settings = crate::config::Settings::from_layers(
        Some(("detectd.toml".into(), config.to_string())),
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let mut opts = options(dir.path(), 4, false);
    opts.cron = settings.cron;
    let fake = Fake::new(&[]);
    let (stop, _reload, task, _, table) = start_with_table(opts, &fake, Mode::Daemon);
    wait(Duration::from_millis(1)).await;
    wait(2 * 60 * MIN).await; // to 12:00
    assert_eq!(
        nows(&fake, "tagged"),
        vec![at(10, 30)],
        "at 10:30, not every 5m"
    );
    assert_eq!(
        secs(&fake, "plain"),
        vec![0, 3600],
        "untagged: its interval"
    );
    let tagged = table
        .rows()
        .into_iter()
        .find(|r| r.rule_id == "tagged")
        .unwrap();
    assert_eq!(tagged.cron.as_deref(), Some("30 10 * * *"));
    assert_eq!(tagged.interval, "1d");
    stop.send(()).unwrap();
    task.await.unwrap();
}
