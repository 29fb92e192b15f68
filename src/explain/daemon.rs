//! How `detectd run` reads the rule beyond its own search: whether its
//! scheduled windows can be read in a shared scan with other rules
//! (`runner::share`), and whether it can tail new events every few seconds
//! (`runner::run::tail`). Nothing is decided here: sharing follows
//! `Detector::reads_one_stream` and the request's exact clause (the same
//! tests `runner::share::planned_request` and the local selection of
//! `source::elasticsearch::local` make), tailing `runner::tailable`.

use std::fmt::Write as _;

use super::text::duration;
use super::{ExplainOptions, NextRun};
use crate::config::{SharingSettings, DEFAULT_TAIL_EVERY, DEFAULT_TAIL_LAG};
use crate::rule::Rule;
use crate::runner::{tailable, Detector};

/// The section "In the daemon".
pub(super) fn section(
    out: &mut String,
    rule: &Rule,
    opts: &ExplainOptions,
    detector: &Detector<'_>,
    next: &NextRun,
) {
    let _ = writeln!(out, "\nIn the daemon (`detectd run`)");
    let cohort = match &rule.schedule.cron {
        Some(cron) => format!(
            "the other rules of its cron schedule `{}`",
            cron.expression()
        ),
        None => format!(
            "the other rules of its interval (every {}, on one grid)",
            duration(rule.schedule.interval)
        ),
    };
    let config = opts.daemon.as_ref();
    // what the settings are, and where they come from
    let (sharing, from) = match config {
        Some(c) => (c.sharing, format!("in {}", c.file)),
        None => (SharingSettings::default(), "by default".to_string()),
    };
    match detector.reads_one_stream() {
        true if !sharing.enabled => {
            let _ = writeln!(
                out,
                "  shared scans   none: `[sharing]` is off {from}; every window is read alone"
            );
        }
        true => {
            let _ = writeln!(
                out,
                "  shared scans   on time, its window is read in one scan with {cohort} that \
                 order events alike (`[sharing]`, on {from}); a catch-up window is read alone"
            );
            let how = match (next.search.request.exact.is_some(), sharing.select_locally) {
                (true, _) => "a clause of its own in the scan: its search holds more than its \
                     time range and pushdown (a query, filters or exceptions), which the cluster \
                     evaluates"
                    .to_string(),
                (false, true) => format!(
                    "selected locally: the scan reads each event of its indices and time range \
                     once, and its pushdown filter picks its own (`sharing.select_locally`, on \
                     {from})"
                ),
                (false, false) => format!(
                    "a clause of its own in the scan: `sharing.select_locally` is off {from}"
                ),
            };
            let _ = writeln!(out, "                 {how}");
        }
        false => {
            let _ = writeln!(
                out,
                "  shared scans   none: a {} rule asks the cluster its own questions",
                rule.rule_type()
            );
        }
    }
    match tailable(rule, &opts.runner, opts.now) {
        Ok(()) => {
            let reach = detector.reach().before;
            let first = match reach.to_std() {
                Ok(back) if !back.is_zero() => format!(
                    "; its first tail (and one after a tail skipped) reads back {} (its maxspan), \
                     the next go on from the partial sequences it carries",
                    duration(back)
                ),
                _ => String::new(),
            };
            let budget = "alerting at most max_signals between its tails in each interval";
            let _ = match config.map(|c| (c, c.realtime.as_ref())) {
                None => writeln!(
                    out,
                    "  near-real-time can tail with `[realtime]` on: every {}, {} behind the \
                     clock (the defaults), {budget}{first}",
                    duration(DEFAULT_TAIL_EVERY),
                    duration(DEFAULT_TAIL_LAG)
                ),
                Some((c, None)) => writeln!(
                    out,
                    "  near-real-time could tail, but `[realtime]` is off in {}",
                    c.file
                ),
                Some((c, Some(r))) if !r.selects(rule) => writeln!(
                    out,
                    "  near-real-time does not tail: `[realtime]` in {} names other rules \
                     (`rule_ids`, `tags`)",
                    c.file
                ),
                Some((c, Some(r))) => writeln!(
                    out,
                    "  near-real-time tails every {}, {} behind the clock (`[realtime]` in {}), \
                     {budget}{first}",
                    duration(r.every),
                    duration(r.lag),
                    c.file
                ),
            };
        }
        Err(why) => {
            let _ = writeln!(out, "  near-real-time does not tail: {why}");
        }
    }
}
