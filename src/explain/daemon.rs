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
use crate::config::{DEFAULT_TAIL_EVERY, DEFAULT_TAIL_LAG};
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
    match detector.reads_one_stream() {
        true => {
            let _ = writeln!(
                out,
                "  shared scans   on time, its window is read in one scan with {cohort} that \
                 order events alike (`[sharing]`, on by default); a catch-up window is read alone"
            );
            let how = match next.search.request.exact.is_some() {
                true => {
                    "a clause of its own in the scan: its search holds more than its time \
                         range and pushdown (a query, filters or exceptions), which the cluster \
                         evaluates"
                }
                false => {
                    "selected locally: the scan reads each event of its indices and time \
                          range once, and its pushdown filter picks its own \
                          (`sharing.select_locally`, on by default)"
                }
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
            let _ = writeln!(
                out,
                "  near-real-time can tail with `[realtime]` on: every {}, {} behind the clock \
                 (the defaults), alerting at most max_signals between its tails in each \
                 interval{first}",
                duration(DEFAULT_TAIL_EVERY),
                duration(DEFAULT_TAIL_LAG)
            );
        }
        Err(why) => {
            let _ = writeln!(out, "  near-real-time does not tail: {why}");
        }
    }
}
