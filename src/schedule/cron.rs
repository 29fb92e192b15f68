//! Cron schedules: a rule that runs at the times of a cron expression
//! (`*/5 9-17 * * MON-FRI`, business hours; `5 * * * *`, every hour at :05)
//! instead of every `interval`. Kibana has no cron for detection rules (its
//! rules have only `interval`); this is detectd's own.
//!
//! Parsing and "when is the next fire" only, from a wall time given by the
//! caller; sleeping until then is the daemon scheduler's job, on its clock.
//! The parser is `croner`, the one `tokio-cron-scheduler` 0.15 is built on:
//! five fields (minute, hour, day of month, month, day of week) or six with
//! seconds first; names (`MON`, `JAN`), ranges, steps, lists, `L` and `#`.
//! When both day fields are restricted a time matches either, as in Vixie
//! cron (`crontab(5)`). A year field is refused: every schedule repeats, so
//! it has a shortest gap between fires (see [`CronSchedule::shortest_gap`]).
//!
//! Times are read in the schedule's IANA timezone (UTC unless given), so
//! `9-17` in `Europe/Berlin` is Berlin's business hours in summer and in
//! winter alike.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// How many fires [`CronSchedule::parse`] looks at for the shortest gap
/// (an hourly schedule's 400 fires span more than two weeks), and over how
/// long at most (a yearly one needs two fires). Each fire is a search in
/// croner: 400 keep a parse near a millisecond, for a thousand rules.
const GAP_SAMPLE_FIRES: usize = 400;
const GAP_SAMPLE_SPAN: chrono::TimeDelta = chrono::TimeDelta::days(400);

/// A validated cron schedule in its timezone. Shared, not copied, by the
/// clones of its rule.
#[derive(Clone, Debug)]
pub struct CronSchedule(Arc<Parsed>);

#[derive(Debug)]
struct Parsed {
    expression: String,
    timezone: Tz,
    cron: Cron,
    shortest_gap: Duration,
}

/// Why a cron schedule is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "expected a cron expression of 5 fields (minute hour day-of-month month day-of-week) \
         or 6 (seconds first), like `*/5 9-17 * * MON-FRI`, found `{expression}`: {reason}"
    )]
    Syntax { expression: String, reason: String },
    #[error("expected an IANA timezone like `Europe/Berlin` or `UTC`, found `{0}`")]
    Timezone(String),
    #[error("expected a cron expression that fires, found `{0}`, which matches no date")]
    NeverFires(String),
}

impl CronSchedule {
    /// Parses `expression` in `timezone` (an IANA name; `None` is UTC).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<CronSchedule, CronError> {
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| CronError::Timezone(name.to_string()))?,
        };
        let syntax = |reason: String| CronError::Syntax {
            expression: expression.to_string(),
            reason,
        };
        if expression.split_whitespace().count() > 6 {
            // croner would read a seventh field as a year: a schedule that
            // ends has no next fire one day, and no shortest gap.
            return Err(syntax("a year field is not supported".into()));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .build()
            .parse(expression)
            .map_err(|e| syntax(e.to_string().trim_end_matches('.').to_string()))?;
        let mut parsed = Parsed {
            expression: expression.to_string(),
            timezone,
            cron,
            shortest_gap: Duration::ZERO,
        };
        parsed.shortest_gap = parsed
            .sample_shortest_gap()
            .ok_or_else(|| CronError::NeverFires(expression.to_string()))?;
        Ok(CronSchedule(Arc::new(parsed)))
    }

    pub fn expression(&self) -> &str {
        &self.0.expression
    }

    pub fn timezone(&self) -> Tz {
        self.0.timezone
    }

    /// The first fire strictly after `after`; `None` only if the pattern
    /// matches no date within croner's search limit (refused at parse).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.next_after(after)
    }

    /// The last fire strictly before `before`.
    pub fn previous_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.previous_before(before)
    }

    /// The shortest time between two consecutive fires (5 minutes for
    /// `*/5 9-17 * * MON-FRI`): what an interval rule's `interval` is to
    /// its runs, so it serves where the interval does (the stride of
    /// catch-up windows, the additional look-back, the alert's
    /// `kibana.alert.rule.interval`).
    pub fn shortest_gap(&self) -> Duration {
        self.0.shortest_gap
    }
}

impl Parsed {
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fires are whole seconds, but croner keeps the fraction of the
        // time it starts from (11:03:00.5 would give 12:00:00.5): start
        // from the whole second, which no fire after `after` is at.
        let local = whole_second(after).with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    fn previous_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let second = whole_second(before);
        // 10:00:00 is before 10:00:00.5 but not before 10:00:00
        let inclusive = second < before;
        self.cron
            .find_previous_occurrence(&second.with_timezone(&self.timezone), inclusive)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Found over a fixed stretch of fires from a fixed date, so the same
    /// expression always gives the same figure (`detectd check` output does
    /// not change with the day it is run).
    fn sample_shortest_gap(&self) -> Option<Duration> {
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single()?;
        let mut previous = self.next_after(start)?;
        let mut shortest: Option<Duration> = None;
        for _ in 0..GAP_SAMPLE_FIRES {
            if shortest.is_some() && previous - start > GAP_SAMPLE_SPAN {
                break;
            }
            let Some(next) = self.next_after(previous) else {
                break;
            };
            let gap = (next - previous).to_std().ok()?;
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            previous = next;
        }
        shortest
    }
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Equal when written the same and read in the same timezone: a reload
/// that changes neither keeps the rule's task (and its timing).
impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.0.expression == other.0.expression && self.0.timezone == other.0.timezone
    }
}

impl Eq for CronSchedule {}

/// `*/5 9-17 * * MON-FRI` (UTC), or with its timezone:
/// `*/5 9-17 * * MON-FRI Europe/Berlin`.
impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.expression)?;
        if self.0.timezone != Tz::UTC {
            write!(f, " {}", self.0.timezone.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn business_hours_fire_every_five_minutes_on_weekdays_only() {
        let c = CronSchedule::parse("*/5 9-17 * * MON-FRI", None).unwrap();
        // Friday 2026-12-04 17:55 is the week's last fire; Monday 09:00 next
        assert_eq!(
            c.next_after(utc("2026-12-04T17:50:00Z")),
            Some(utc("2026-12-04T17:55:00Z"))
        );
        assert_eq!(
            c.next_after(utc("2026-12-04T17:55:00Z")),
            Some(utc("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            c.previous_before(utc("2026-12-07T09:00:00Z")),
            Some(utc("2026-12-04T17:55:00Z"))
        );
        assert_eq!(c.shortest_gap(), Duration::from_secs(300));
    }

    #[test]
    fn fires_are_whole_seconds_from_any_time() {
        let c = CronSchedule::parse("0-3 * * * *", None).unwrap();
        let t = utc("2026-12-02T11:03:00.001000001Z");
        assert_eq!(c.previous_before(t), Some(utc("2026-12-02T11:03:00Z")));
        assert_eq!(
            c.previous_before(utc("2026-12-02T11:03:00Z")),
            Some(utc("2026-12-02T11:02:00Z"))
        );
        assert_eq!(c.next_after(t), Some(utc("2026-12-02T12:00:00Z")));
        assert_eq!(
            c.next_after(utc("2026-12-02T11:01:59.999Z")),
            Some(utc("2026-12-02T11:02:00Z"))
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let c = CronSchedule::parse("30 5 * * * *", None).unwrap();
        assert_eq!(
            c.next_after(utc("2026-12-02T13:00:00Z")),
            Some(utc("2026-12-02T13:05:30Z"))
        );
        assert_eq!(c.shortest_gap(), Duration::from_secs(3600));
    }

    #[test]
    fn timezone_follows_daylight_saving_time() {
        let c = CronSchedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap();
        // 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC in summer
        assert_eq!(
            c.next_after(utc("2026-12-02T00:00:00Z")),
            Some(utc("2026-12-02T08:00:00Z"))
        );
        assert_eq!(
            c.next_after(utc("2026-07-01T00:00:00Z")),
            Some(utc("2026-07-01T07:00:00Z"))
        );
        assert_eq!(c.to_string(), "0 9 * * * Europe/Berlin");
    }

    /// What croner does on daylight-saving days, pinned: a time the
    /// spring change skips fires at the first time after it; a time the
    /// autumn change repeats fires once, in its first pass, and fires of
    /// the repeated hour's second pass are left out (the next run's
    /// catch-up covers that time, as any time between two fires).
    #[test]
    fn daylight_saving_days_in_berlin() {
        let daily = CronSchedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST
        assert_eq!(
            daily.next_after(utc("2026-03-28T12:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z")),
            "03:00 CEST, the first time after 02:30"
        );
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET
        assert_eq!(
            daily.next_after(utc("2026-10-24T12:00:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            daily.next_after(utc("2026-10-25T00:30:00Z")),
            Some(utc("2026-10-26T01:30:00Z")),
            "not again at 02:30 CET"
        );
        // the shortest gap is the spring day's (2025-03-30 in the sample)
        assert_eq!(daily.shortest_gap(), Duration::from_secs(23 * 3600 + 1800));
        let half_hourly = CronSchedule::parse("*/30 * * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            half_hourly.next_after(utc("2026-10-25T00:30:00Z")),
            Some(utc("2026-10-25T02:00:00Z")),
            "02:00 and 02:30 CET, the second pass, are left out"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_as_in_vixie_cron() {
        // the 1st of the month OR a Monday
        let c = CronSchedule::parse("0 0 1 * MON", None).unwrap();
        // Tuesday 2026-12-01 is the 1st; the next Monday is 2026-12-07
        assert_eq!(
            c.next_after(utc("2026-11-30T12:00:00Z")),
            Some(utc("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            c.next_after(utc("2026-12-01T00:00:00Z")),
            Some(utc("2026-12-07T00:00:00Z"))
        );
    }

    #[test]
    fn yearly_schedule_has_a_year_long_gap() {
        let c = CronSchedule::parse("0 0 1 1 *", None).unwrap();
        assert_eq!(c.shortest_gap(), Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in ["", "*/5 9-17 * *", "61 * * * *", "* * * * FOO", "not cron"] {
            let e = CronSchedule::parse(bad, None).unwrap_err();
            assert!(matches!(e, CronError::Syntax { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains(&format!("found `{bad}`")), "{e}");
        }
        let e = CronSchedule::parse("0 0 0 1 1 * 2030", None).unwrap_err();
        assert!(
            e.to_string().contains("a year field is not supported"),
            "{e}"
        );
    }

    #[test]
    fn a_date_that_does_not_exist_never_fires() {
        assert_eq!(
            CronSchedule::parse("0 0 30 2 *", None).unwrap_err(),
            CronError::NeverFires("0 0 30 2 *".into())
        );
    }

    #[test]
    fn unknown_timezone_is_refused() {
        assert_eq!(
            CronSchedule::parse("0 9 * * *", Some("Europe/Berln")).unwrap_err(),
            CronError::Timezone("Europe/Berln".into())
        );
    }

    #[test]
    fn same_text_and_timezone_are_the_same_schedule() {
        let a = CronSchedule::parse("0 9 * * *", None).unwrap();
        assert_eq!(a, CronSchedule::parse("0 9 * * *", Some("UTC")).unwrap());
        assert_ne!(
            a,
            CronSchedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap()
        );
    }
}
