//! `[[schedule.cron]]`: cron schedules given to rules by the operator, by
//! rule id or by tag, so rules shipped unchanged (the detection-rules
//! corpus, a Kibana export) can run on business hours or at :05 without
//! editing their files. An entry replaces the rule's `interval` (and a
//! `cron` of its own): the config is the operator's last word.
//!
//! ```toml
//! [[schedule.cron]]
//! tags = ["Use Case: Business Hours"]
//! rule_ids = ["a61809f3-fb5b-465c-8bff-23a8a068ac60"]
//! expression = "*/5 9-17 * * MON-FRI"
//! timezone = "Europe/Berlin"
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::file::span;
use super::ConfigError;
use crate::rule::Rule;
use crate::schedule::cron::CronSchedule;

/// One `[[schedule.cron]]` entry as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCron {
    #[serde(default)]
    pub rule_ids: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub expression: Spanned<String>,
    /// An IANA timezone (`Europe/Berlin`); UTC when absent.
    pub timezone: Option<Spanned<String>>,
}

/// The validated entries, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CronOverrides {
    entries: Vec<CronOverride>,
}

#[derive(Clone, Debug, PartialEq)]
struct CronOverride {
    rule_ids: Vec<String>,
    tags: Vec<String>,
    schedule: CronSchedule,
}

impl CronOverrides {
    /// The schedule for a rule: the first entry naming its rule id, else
    /// the first entry with one of its tags (an id is the more deliberate
    /// choice), else none.
    pub fn for_rule(&self, rule: &Rule) -> Option<&CronSchedule> {
        let by_id = self
            .entries
            .iter()
            .find(|e| e.rule_ids.contains(&rule.rule_id));
        let by_tag = || {
            self.entries
                .iter()
                .find(|e| e.tags.iter().any(|t| rule.tags.contains(t)))
        };
        by_id.or_else(by_tag).map(|e| &e.schedule)
    }

    /// `rule` with the cron schedule an entry gives it, if any.
    pub fn apply(&self, rule: &mut Rule) {
        if let Some(cron) = self.for_rule(rule) {
            rule.schedule = rule.schedule.with_cron(cron.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Validates every entry; each problem becomes an error at its value.
pub(super) fn validate(raw: Vec<Spanned<RawCron>>, errors: &mut Vec<ConfigError>) -> CronOverrides {
    let mut entries = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let entry_span = span(&entry);
        let entry = entry.into_inner();
        let n = i + 1;
        if entry.rule_ids.is_empty() && entry.tags.is_empty() {
            errors.push(ConfigError::at(
                entry_span,
                format!(
                    "schedule.cron entry {n}: expected `rule_ids` or `tags` to say which rules \
                     it schedules, found neither"
                ),
            ));
            continue;
        }
        let timezone = entry.timezone.as_ref();
        match CronSchedule::parse(
            entry.expression.get_ref(),
            timezone.map(|t| t.get_ref().as_str()),
        ) {
            Ok(schedule) => entries.push(CronOverride {
                rule_ids: entry.rule_ids,
                tags: entry.tags,
                schedule,
            }),
            Err(e) => {
                let at = match (&e, timezone) {
                    (crate::schedule::cron::CronError::Timezone(_), Some(tz)) => span(tz),
                    _ => span(&entry.expression),
                };
                errors.push(ConfigError::at(
                    at,
                    format!("invalid schedule.cron entry {n}: {e}"),
                ));
            }
        }
    }
    CronOverrides { entries }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigErrors, Overrides, Settings};
    use crate::rule::{load_str, LoadOutcome, Rule};

    fn settings(text: &str) -> Result<Settings, ConfigErrors> {
        Settings::from_layers(
            Some(("detectd.toml".into(), text.to_string())),
            Default::default(),
            Overrides::default(),
        )
    }

    fn rule(id: &str, tags: &[&str]) -> Rule {
        let text = format!(
            "[rule]\nrule_id = \"{id}\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
             index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\ninterval = \"5m\"\n\
             tags = {tags:?}\nquery = '''process where true'''\n"
        );
        match load_str(&text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("{other:?}"),
        }
    }

    const TWO: &str = "\
[[schedule.cron]]
tags = [\"Business Hours\"]
expression = \"*/5 9-17 * * MON-FRI\"
timezone = \"Europe/Berlin\"

[[schedule.cron]]
rule_ids = [\"hourly\"]
expression = \"5 * * * *\"
";

    #[test]
    fn an_entry_by_rule_id_wins_over_one_by_tag() {
        let s = settings(TWO).unwrap();
        let mut r = rule("hourly", &["Business Hours"]);
        s.cron.apply(&mut r);
        let cron = r.schedule.cron.as_ref().unwrap();
        assert_eq!(cron.expression(), "5 * * * *");
        assert_eq!(r.schedule.interval, std::time::Duration::from_secs(3600));

        let mut r = rule("other", &["Domain: Endpoint", "Business Hours"]);
        s.cron.apply(&mut r);
        assert_eq!(
            r.schedule.cron.as_ref().unwrap().to_string(),
            "*/5 9-17 * * MON-FRI Europe/Berlin"
        );

        let mut r = rule("untouched", &["Domain: Endpoint"]);
        s.cron.apply(&mut r);
        assert_eq!(r.schedule.cron, None);
        assert_eq!(r.schedule.interval, std::time::Duration::from_secs(300));
    }

    /// The example file's commented entry, uncommented, is valid.
    #[test]
    fn the_example_files_entry_loads() {
        let example = include_str!("../../detectd.example.toml");
        let start = example.find("# [[schedule.cron]]").unwrap();
        let block: String = example[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(block.contains("expression"), "{block}");
        let s = settings(&block).unwrap();
        let mut r = rule("any", &["Use Case: Business Hours"]);
        s.cron.apply(&mut r);
        assert_eq!(
            r.schedule.cron.as_ref().unwrap().to_string(),
            "*/5 9-17 * * MON-FRI Europe/Berlin"
        );
    }

    #[test]
    fn no_entries_by_default() {
        assert!(Settings::defaults().cron.is_empty());
    }

    #[test]
    fn every_bad_entry_is_an_error_at_its_value() {
        let text = "\
[[schedule.cron]]
expression = \"5 * * * *\"

[[schedule.cron]]
tags = [\"a\"]
expression = \"5 * * *\"

[[schedule.cron]]
tags = [\"a\"]
expression = \"5 * * * *\"
timezone = \"Nowhere\"
";
        let errors = settings(text).unwrap_err().errors;
        let messages: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.span.unwrap().start as usize, e.message.as_str()))
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0]
            .1
            .starts_with("schedule.cron entry 1: expected `rule_ids` or `tags`"));
        assert!(messages[1]
            .1
            .starts_with("invalid schedule.cron entry 2: expected a cron expression"));
        assert_eq!(&text[messages[1].0..messages[1].0 + 9], "\"5 * * *\"");
        assert!(messages[2].1.contains("found `Nowhere`"), "{messages:?}");
        assert_eq!(&text[messages[2].0..messages[2].0 + 9], "\"Nowhere\"");
    }

    #[test]
    fn an_unknown_key_in_an_entry_is_an_error() {
        let e =
            settings("[[schedule.cron]]\ntags = [\"a\"]\nexpresion = \"5 * * * *\"\n").unwrap_err();
        assert!(e.errors[0].message.contains("expresion"), "{e}");
    }
}
