//! Reading a rule's cron schedule: `cron` (an expression, see
//! `schedule::cron`) and `cron_timezone` (an IANA name, UTC when absent),
//! detectd's own keys (Kibana rules have only `interval`). What the
//! schedule means for runs and windows is `schedule::cron`'s and the
//! daemon scheduler's.

use super::datemath::DateMath;
use super::error::RuleErrorKind;
use super::fields::Fields;
use crate::eql::Span;
use crate::schedule::cron::{CronError, CronSchedule};

/// detectd's schedule keys of `[rule]`: known (no typo warning), and left
/// out of the parameters the alerts carry, since Kibana has no such params.
pub(super) const CRON_KEYS: [&str; 2] = ["cron", "cron_timezone"];

/// What `cron` said.
pub(super) enum CronField {
    Absent,
    /// Present but wrong: its error is recorded.
    Invalid,
    Valid(CronSchedule),
}

/// Kibana's default additional look-back (`from = "now-6m"` beside the
/// default `interval = "5m"`).
const DEFAULT_ADDITIONAL_LOOKBACK_MS: i64 = 60_000;

impl Fields<'_> {
    /// A cron rule's `from`: by default the shortest gap between fires
    /// plus Kibana's minute of additional look-back (`now-61m` for an
    /// hourly cron), since `now-6m` would leave most of each hour
    /// unsearched; a `from` as written must reach back at least that gap.
    pub(super) fn cron_from(
        &mut self,
        cron: &CronSchedule,
        from: DateMath,
        from_span: Option<Span>,
        to: DateMath,
    ) -> Option<DateMath> {
        let gap_ms = i64::try_from(cron.shortest_gap().as_millis()).unwrap_or(i64::MAX);
        let Some(span) = from_span else {
            let width = gap_ms.saturating_add(DEFAULT_ADDITIONAL_LOOKBACK_MS);
            return Some(DateMath::from_offset_ms(
                to.offset_ms().saturating_sub(width),
            ));
        };
        if to.offset_ms().saturating_sub(from.offset_ms()) < gap_ms {
            let gap = DateMath::from_offset_ms(-gap_ms);
            let gap = gap.to_string();
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "expected `from` to reach back at least the shortest time between two fires \
                     of `cron` ({}), found from = \"{from}\" and to = \"{to}\": each run would \
                     leave time unsearched",
                    gap.trim_start_matches("now-")
                ),
            );
            return None;
        }
        Some(from)
    }

    pub(super) fn cron(&mut self) -> CronField {
        let has_timezone = self.table.contains_key("cron_timezone");
        let timezone = self.string_spanned("cron_timezone");
        let Some((expression, span)) = self.string_spanned("cron") else {
            if self.table.contains_key("cron") {
                return CronField::Invalid;
            }
            if let Some((_, tz_span)) = &timezone {
                self.error(
                    RuleErrorKind::Value,
                    *tz_span,
                    "expected `cron` with `cron_timezone`, found no `cron`".to_string(),
                );
            }
            return if has_timezone {
                CronField::Invalid
            } else {
                CronField::Absent
            };
        };
        if has_timezone && timezone.is_none() {
            return CronField::Invalid;
        }
        match CronSchedule::parse(&expression, timezone.as_ref().map(|(t, _)| t.as_str())) {
            Ok(c) => CronField::Valid(c),
            Err(e @ CronError::Timezone(_)) => {
                let tz_span = timezone.map_or(span, |(_, s)| s);
                self.error(
                    RuleErrorKind::Value,
                    tz_span,
                    format!("invalid `cron_timezone`: {e}"),
                );
                CronField::Invalid
            }
            Err(e) => {
                self.error(RuleErrorKind::Value, span, format!("invalid `cron`: {e}"));
                CronField::Invalid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::rule::{load_str, LoadOutcome, Rule};

    fn rule_text(schedule: &str) -> String {
        format!(
            "[rule]\nrule_id = \"x\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
             index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n{schedule}\
             query = '''process where true'''\n"
        )
    }

    fn loaded(schedule: &str) -> Rule {
        match load_str(&rule_text(schedule)) {
            LoadOutcome::Loaded { rule, warnings } => {
                assert!(warnings.is_empty(), "{warnings:?}");
                *rule
            }
            other => panic!("{other:?}"),
        }
    }

    fn errors(schedule: &str) -> Vec<String> {
        match load_str(&rule_text(schedule)) {
            LoadOutcome::Failed(errors) => errors.into_iter().map(|e| e.message).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cron_replaces_the_interval_by_its_shortest_gap() {
        let rule = loaded("cron = \"*/5 9-17 * * MON-FRI\"\ncron_timezone = \"Europe/Berlin\"\n");
        let cron = rule.schedule.cron.as_ref().unwrap();
        assert_eq!(cron.expression(), "*/5 9-17 * * MON-FRI");
        assert_eq!(cron.timezone(), chrono_tz::Tz::Europe__Berlin);
        assert_eq!(rule.schedule.interval, Duration::from_secs(300));
        // Kibana has no such params: alerts do not carry them
        assert!(!rule.parameters.contains_key("cron"));
        assert!(!rule.parameters.contains_key("cron_timezone"));
    }

    #[test]
    fn a_cron_rule_searches_its_gap_plus_a_minute_by_default() {
        let rule = loaded("cron = \"5 * * * *\"\n");
        assert_eq!(rule.schedule.from.to_string(), "now-61m");
        assert_eq!(rule.schedule.lookback(), Duration::from_secs(61 * 60));
        assert_eq!(rule.schedule.additional_lookback(), Duration::from_secs(60));
        // a `from` that reaches back far enough is kept
        let rule = loaded("cron = \"5 * * * *\"\nfrom = \"now-2h\"\n");
        assert_eq!(rule.schedule.from.to_string(), "now-2h");
    }

    #[test]
    fn a_from_shorter_than_the_gap_between_fires_is_an_error() {
        assert_eq!(
            errors("cron = \"5 * * * *\"\nfrom = \"now-6m\"\n"),
            vec![
                "expected `from` to reach back at least the shortest time between two fires of \
                 `cron` (1h), found from = \"now-6m\" and to = \"now\": each run would leave \
                 time unsearched"
            ]
        );
    }

    #[test]
    fn a_config_cron_keeps_the_rules_additional_look_back() {
        // the founding rule's shape: every 5m over now-9m, 4m of look-back
        let rule = loaded("interval = \"5m\"\nfrom = \"now-9m\"\n");
        let hourly = crate::schedule::cron::CronSchedule::parse("5 * * * *", None).unwrap();
        let s = rule.schedule.with_cron(hourly);
        assert_eq!(s.interval, Duration::from_secs(3600));
        assert_eq!(s.from.to_string(), "now-64m");
        assert_eq!(s.additional_lookback(), Duration::from_secs(4 * 60));
    }

    #[test]
    fn without_cron_the_interval_rules() {
        let rule = loaded("interval = \"10m\"\n");
        assert_eq!(rule.schedule.cron, None);
        assert_eq!(rule.schedule.interval, Duration::from_secs(600));
    }

    #[test]
    fn cron_beside_interval_is_an_error() {
        assert_eq!(
            errors("cron = \"5 * * * *\"\ninterval = \"5m\"\n"),
            vec!["expected either `interval` or `cron`, found both"]
        );
    }

    #[test]
    fn each_cron_problem_is_an_error_of_its_own_key() {
        let e = errors("cron = \"5 * * *\"\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("invalid `cron`: expected a cron expression"),
            "{e:?}"
        );
        assert_eq!(
            errors("cron = \"5 * * * *\"\ncron_timezone = \"Mars/Olympus\"\n"),
            vec![
                "invalid `cron_timezone`: expected an IANA timezone like `Europe/Berlin` or \
                 `UTC`, found `Mars/Olympus`"
            ]
        );
        assert_eq!(
            errors("cron_timezone = \"Europe/Berlin\"\n"),
            vec!["expected `cron` with `cron_timezone`, found no `cron`"]
        );
        assert_eq!(
            errors("cron = 5\n"),
            vec!["expected a string for `cron`, found integer"]
        );
    }
}
