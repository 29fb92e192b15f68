//! `[[rule.actions]]`: notifications a rule asks for itself, next to the
//! `[[routes]]` of `detectd.toml` (which match rules by id, tag, type).
//!
//! ```toml
//! [[rule.actions]]
//! outputs = ["soc-slack"]      # names of [[outputs]] in detectd.toml
//! mode = "group"               # or "summary" (one message per window)
//! throttle = "1h"              # at most one message per hour...
//! group_by = ["host.name"]     # ...per host
//! min_severity = "high"        # only groups at least this severe
//! ```
//!
//! Each action is a route of its own that takes only this rule's alert
//! groups (`notify::route`). Whether its outputs exist is checked where the
//! outputs are known: the daemon refuses the rule at load otherwise.
//!
//! A Kibana export's actions (`id`, `action_type_id`, `params`) name
//! Kibana connectors, which detectd cannot call: they are noted with a
//! warning, and the rule runs.

use std::time::Duration;

use serde::Deserialize;
use toml::Value;

use super::error::RuleErrorKind;
use super::fields::{Fields, Format};
use super::rule::Severity;
use crate::eql::Span;

/// One `[[rule.actions]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleAction {
    pub outputs: Vec<String>,
    /// `mode = "summary"`: one message per committed window.
    pub summary: bool,
    pub throttle: Option<Duration>,
    pub group_by: Vec<String>,
    pub min_severity: Option<Severity>,
    pub min_risk_score: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    outputs: Vec<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    throttle: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    min_severity: Option<String>,
    #[serde(default)]
    min_risk_score: Option<i64>,
}

impl RawAction {
    fn check(self) -> Result<RuleAction, String> {
        if self.outputs.is_empty() {
            return Err("`outputs` is empty: expected at least one output name".into());
        }
        let summary = match self.mode.as_deref() {
            None | Some("group") => false,
            Some("summary") => true,
            Some(other) => {
                return Err(format!(
                    "invalid mode {other:?}: expected \"group\" or \"summary\""
                ))
            }
        };
        let throttle = self
            .throttle
            .map(|t| super::parse_duration(&t))
            .transpose()
            .map_err(|e| format!("invalid throttle: {e} (expected e.g. \"10m\", \"1h\")"))?;
        let min_severity = self
            .min_severity
            .map(|s| {
                Severity::parse(&s).ok_or_else(|| {
                    format!(
                        "invalid min_severity {s:?}: expected \"low\", \"medium\", \"high\" or \"critical\""
                    )
                })
            })
            .transpose()?;
        let min_risk_score = self
            .min_risk_score
            .map(|r| match u8::try_from(r) {
                Ok(v) if v <= 100 => Ok(v),
                _ => Err(format!("invalid min_risk_score {r}: expected 0 to 100")),
            })
            .transpose()?;
        Ok(RuleAction {
            outputs: self.outputs,
            summary,
            throttle,
            group_by: self.group_by,
            min_severity,
            min_risk_score,
        })
    }
}

impl Fields<'_> {
    /// The rule's own notification actions; absent means none.
    pub(super) fn actions(&mut self) -> Vec<RuleAction> {
        let Some((value, span)) = self.get("actions") else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            let expected = match self.format {
                Format::Toml => "an array of tables ([[rule.actions]])",
                Format::Json => "an array of objects",
            };
            self.wrong_type("actions", expected, value, span);
            return Vec::new();
        };
        let mut actions = Vec::new();
        let mut kibana = 0;
        for (i, item) in items.iter().enumerate() {
            let Value::Table(table) = item else {
                let found = self.type_name(item);
                self.error(
                    RuleErrorKind::Type,
                    span,
                    format!(
                        "expected a table for `actions` entry {}, found {found}",
                        i + 1
                    ),
                );
                continue;
            };
            if !table.contains_key("outputs") && table.contains_key("action_type_id") {
                kibana += 1;
                continue;
            }
            match item.clone().try_into::<RawAction>() {
                Ok(raw) => match raw.check() {
                    Ok(action) => actions.push(action),
                    Err(why) => self.action_error(span, i, &why),
                },
                Err(e) => {
                    let why = e.message().trim().replace('\n', ": ");
                    self.action_error(span, i, &why);
                }
            }
        }
        if kibana > 0 {
            self.error(
                RuleErrorKind::NotApplied,
                span,
                format!(
                    "{kibana} Kibana connector action(s): detectd cannot call Kibana's connectors; \
                     name detectd outputs instead (`[[rule.actions]] outputs = [...]`)"
                ),
            );
        }
        actions
    }

    fn action_error(&mut self, span: Span, i: usize, why: &str) {
        self.error(
            RuleErrorKind::Value,
            span,
            format!("invalid `actions` entry {}: {why}", i + 1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{load_str, LoadOutcome};

    const RULE: &str = include_str!("../../rules/execution_scheduled_task_powershell.toml");

    /// The founding rule with `extra` appended to its `[rule]` table.
    fn with(extra: &str) -> LoadOutcome {
        let at = RULE.find("[rule]").unwrap();
        let end = RULE[at..].find("\n[").map_or(RULE.len(), |i| at + i + 1);
        let mut text = RULE.to_string();
        text.insert_str(end, &format!("{extra}\n"));
        load_str(&text)
    }

    #[test]
    fn actions_are_read_with_their_settings_and_kept_out_of_the_parameters() {
        let out = with(
            "[[rule.actions]]\noutputs = [\"slack\"]\nthrottle = \"1h\"\ngroup_by = [\"host.name\"]\nmin_severity = \"high\"\n\
             [[rule.actions]]\noutputs = [\"file\", \"hook\"]\nmode = \"summary\"\nmin_risk_score = 40\n",
        );
        let LoadOutcome::Loaded { rule, warnings } = out else {
            panic!("{out:?}")
        };
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            rule.actions,
            vec![
                RuleAction {
                    outputs: vec!["slack".into()],
                    summary: false,
                    throttle: Some(Duration::from_secs(3600)),
                    group_by: vec!["host.name".into()],
                    min_severity: Some(Severity::High),
                    min_risk_score: None,
                },
                RuleAction {
                    outputs: vec!["file".into(), "hook".into()],
                    summary: true,
                    throttle: None,
                    group_by: vec![],
                    min_severity: None,
                    min_risk_score: Some(40),
                },
            ]
        );
        assert!(!rule.parameters.contains_key("actions"));
        assert!(rule.parameters.contains_key("query"));
    }

    #[test]
    fn a_bad_action_is_an_error_with_what_is_wrong() {
        for (extra, expected) in [
            ("[[rule.actions]]\noutputs = []\n", "`outputs` is empty"),
            (
                "[[rule.actions]]\nmode = \"group\"\n",
                "missing field `outputs`",
            ),
            (
                "[[rule.actions]]\noutputs = [\"a\"]\nmode = \"each\"\n",
                "invalid mode \"each\"",
            ),
            (
                "[[rule.actions]]\noutputs = [\"a\"]\nthrottle = \"soon\"\n",
                "invalid throttle",
            ),
            (
                "[[rule.actions]]\noutputs = [\"a\"]\nmin_risk_score = 101\n",
                "expected 0 to 100",
            ),
            (
                "[[rule.actions]]\noutputs = [\"a\"]\nchannel = \"#soc\"\n",
                "unknown field `channel`",
            ),
            ("actions = \"slack\"\n", "expected an array of tables"),
        ] {
            let LoadOutcome::Failed(errors) = with(extra) else {
                panic!("{extra}: loaded")
            };
            assert!(
                errors.iter().any(|e| e.message.contains(expected)),
                "{extra}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_kibana_connector_action_is_a_warning_and_the_rule_runs() {
        let out = with(
            "[[rule.actions]]\ngroup = \"default\"\nid = \"0b1f\"\naction_type_id = \".slack\"\nparams = { message = \"hi\" }\n",
        );
        let LoadOutcome::Loaded { rule, warnings } = out else {
            panic!("{out:?}")
        };
        assert!(rule.actions.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].message.contains("Kibana connector"),
            "{warnings:?}"
        );
    }
}
