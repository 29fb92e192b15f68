//! From the rule and the matches to alert ids and [`AlertRule`]: what the
//! run computes before any alert document is built.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::detect::Candidate;
use crate::alert::{ids, AlertRule};
use crate::rule::keys::KIBANA_PARAMS;
use crate::rule::raw::toml_to_json;
use crate::rule::{NewTermsRule, QueryLanguage, QueryRule, Rule, RuleKind, ThresholdRule};

/// The alert ids of a match, its head (event alert or shell) first: the
/// same recipes `alert` uses to build the documents, computed without the
/// sources so dedup and cap come before reading them. Every event is taken
/// for an event here; one that turns out to be an alert (a rule reading an
/// alerts index) has its own ancestors in its ids, which the documents
/// built from the sources then carry.
pub(super) fn group_ids(c: &Candidate, grouped: bool, space: &str, rule_uuid: &str) -> Vec<String> {
    let present: Vec<ids::EventRef<'_>> = c
        .events
        .iter()
        .flatten()
        .map(|h| ids::EventRef {
            index: &h.index,
            id: &h.id,
        })
        .collect();
    match_ids(&present, grouped, space, rule_uuid)
}

/// The alert ids of a match of these events (the missing events of a
/// sequence left out), its head first: one event alert, or a shell and one
/// building block per event when `grouped` (sequences and samples).
pub(crate) fn match_ids(
    present: &[ids::EventRef<'_>],
    grouped: bool,
    space: &str,
    rule_uuid: &str,
) -> Vec<String> {
    if present.is_empty() {
        return Vec::new();
    }
    if !grouped {
        return vec![ids::event_alert_id(present[0], space, rule_uuid)];
    }
    let ancestors: Vec<Vec<ids::EventRef<'_>>> = present.iter().map(|e| vec![*e]).collect();
    let blocks = ids::building_block_ids(&ancestors, rule_uuid);
    let shell = ids::shell_alert_id(&ancestors, &blocks, rule_uuid);
    let mut out = Vec::with_capacity(blocks.len() + 1);
    out.push(shell);
    out.extend(blocks);
    out
}

/// What alerts carry of the rule. A rule exported from Kibana brings its
/// identity (saved-object id, revision, created and updated at and by);
/// for one Kibana never saw, the uuid is its `rule_id`, the revision 0, the
/// times its `[metadata]` dates (`now` without them) and the user
/// `detectd`.
pub fn alert_rule(rule: &Rule, now: DateTime<Utc>) -> AlertRule {
    let table: Map<String, Value> = rule
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), toml_to_json(v)))
        .collect();
    let date = |exported: Option<&String>, metadata: Option<&String>| {
        exported
            .cloned()
            .or_else(|| metadata.and_then(|d| metadata_date(d)))
            .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Millis, true))
    };
    let by = |who: Option<&String>| who.cloned().unwrap_or_else(|| CREATED_BY.to_string());
    let type_ids = type_ids(rule);
    AlertRule {
        uuid: rule.uuid().to_string(),
        rule_id: rule.rule_id.clone(),
        name: rule.name.clone(),
        severity: rule.severity.as_str().to_string(),
        risk_score: i64::from(rule.risk_score),
        building_block_type: rule.building_block_type.map(|_| "default".to_string()),
        indices: rule.index.clone(),
        parameters: kibana_parameters(rule, &table),
        revision: rule.revision,
        enabled: rule.enabled,
        tags: rule.tags.clone(),
        interval: interval_text(rule.schedule.interval),
        created_at: date(
            rule.created_at.as_ref(),
            rule.metadata.creation_date.as_ref(),
        ),
        created_by: by(rule.created_by.as_ref()),
        updated_at: date(
            rule.updated_at.as_ref(),
            rule.metadata.updated_date.as_ref(),
        ),
        updated_by: by(rule.updated_by.as_ref()),
        actions: Vec::new(),
        throttle: None,
        rule_type_id: type_ids.0,
        category: type_ids.1,
        overrides: rule.overrides.clone(),
    }
}

/// Kibana's rule type id and name of the rule's type (the ids its alerts
/// carry and the Alerts page filters on).
fn type_ids(rule: &Rule) -> (&'static str, &'static str) {
    match rule.rule_type() {
        "query" => ("siem.queryRule", "Custom Query Rule"),
        "saved_query" => ("siem.savedQueryRule", "Saved Query Rule"),
        "threshold" => ("siem.thresholdRule", "Threshold Rule"),
        "esql" => ("siem.esqlRule", "ES|QL Rule"),
        "machine_learning" => ("siem.mlRule", "Machine Learning Rule"),
        // `INDICATOR_RULE_TYPE_ID` and the rule type's name
        // (`indicator_match/create_indicator_match_alert_type.ts`)
        "threat_match" => ("siem.indicatorRule", "Indicator Match Rule"),
        // `NEW_TERMS_RULE_TYPE_ID` and the type's name in
        // `rule_types/new_terms/create_new_terms_alert_type.ts`
        "new_terms" => ("siem.newTermsRule", "New Terms Rule"),
        _ => ("siem.eqlRule", "Event Correlation Rule"),
    }
}

/// Kibana's `language` parameter of the rule.
fn language(rule: &Rule) -> Option<&'static str> {
    Some(match &rule.kind {
        RuleKind::Eql(_) => "eql",
        RuleKind::Esql(_) => "esql",
        // Kibana's ML rule schema has no `language` (nor `index`, `query`).
        RuleKind::MachineLearning(_) => return None,
        RuleKind::Query(QueryRule { language, .. })
        | RuleKind::Threshold(ThresholdRule {
            query: QueryRule { language, .. },
            ..
        })
        | RuleKind::ThreatMatch(crate::rule::ThreatMatchRule {
            query: QueryRule { language, .. },
            ..
        })
        | RuleKind::NewTerms(NewTermsRule {
            query: QueryRule { language, .. },
            ..
        }) => match language {
            QueryLanguage::Kql(_) => "kuery",
            QueryLanguage::Lucene => "lucene",
        },
    })
}

/// Who created and updated a rule Kibana never saw.
const CREATED_BY: &str = "detectd";

/// `kibana.alert.rule.parameters` as Kibana writes them for the rule's type:
/// the keys Kibana keeps in params ([`KIBANA_PARAMS`], in its order), with
/// the rule schema's defaults for what the file leaves out; keys Kibana
/// does not keep in parameters (`name`, `tags`, `interval`, `enabled`, ...)
/// are not among them.
fn kibana_parameters(rule: &Rule, table: &Map<String, Value>) -> Map<String, Value> {
    let default = |key: &str| -> Option<Value> {
        Some(match key {
            "description" => json!(rule.description),
            "risk_score" => json!(rule.risk_score),
            "severity" => json!(rule.severity.as_str()),
            "from" => json!(crate::rule::rule::DEFAULT_FROM),
            "to" => json!(crate::rule::rule::DEFAULT_TO),
            "rule_id" => json!(rule.rule_id),
            "max_signals" => json!(rule.max_signals),
            "version" => json!(1),
            "immutable" => json!(false),
            "rule_source" => json!({"type": "internal"}),
            "setup" => json!(""),
            "type" => json!(rule.rule_type()),
            "language" => json!(language(rule)?),
            // An ES|QL rule's indices are in its query.
            "index" if !matches!(rule.kind, RuleKind::Esql(_) | RuleKind::MachineLearning(_)) => {
                json!(rule.index)
            }
            "query" if !matches!(rule.kind, RuleKind::MachineLearning(_)) => {
                json!(rule.query_text())
            }
            // a TOML file writes them as `[rule.new_terms]`, Kibana's
            // params are flat (`typeSpecificCamelToSnake`, `new_terms`)
            "new_terms_fields" | "history_window_start" => match &rule.kind {
                RuleKind::NewTerms(n) if key == "new_terms_fields" => json!(n.fields),
                RuleKind::NewTerms(n) => json!(n.history_window_start.to_string()),
                _ => return None,
            },
            "author"
            | "false_positives"
            | "risk_score_mapping"
            | "severity_mapping"
            | "threat"
            | "references"
            | "exceptions_list"
            | "related_integrations"
            | "required_fields" => {
                json!([])
            }
            _ => return None,
        })
    };
    KIBANA_PARAMS
        .iter()
        .filter_map(|key| {
            // A cron rule's `from` may not be the file's (`rule::cron`,
            // `Schedule::with_cron`): say what the run searched.
            if *key == "from" && rule.schedule.cron.is_some() {
                return Some((key.to_string(), json!(rule.schedule.from.to_string())));
            }
            let v = table.get(*key).cloned().or_else(|| default(key))?;
            Some((key.to_string(), v))
        })
        .collect()
}

/// An interval as Kibana writes it: the largest whole unit (`5m`, `1h`,
/// `90s`).
fn interval_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    for (size, unit) in [(86_400, "d"), (3_600, "h"), (60, "m")] {
        if s >= size && s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// A detection-rules `[metadata]` date (`2020/12/15`) as an ISO timestamp.
fn metadata_date(text: &str) -> Option<String> {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y/%m/%d").ok()?;
    Some(
        d.and_hms_opt(0, 0, 0)?
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{load_str, LoadOutcome};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    }

    fn founding_toml() -> Rule {
        let text = include_str!("../../rules/execution_scheduled_task_powershell.toml");
        match load_str(text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_toml_rule_is_its_own_uuid_with_kibanas_parameters() {
        let rule = founding_toml();
        let a = alert_rule(&rule, now());
        assert_eq!(a.uuid, rule.rule_id, "no Kibana id: the rule_id");
        assert_eq!(a.revision, 0);
        assert_eq!(a.interval, "5m");
        assert_eq!(a.created_by, "detectd");
        // `[metadata] creation_date = "2020/12/15"`
        assert_eq!(a.created_at, "2020-12-15T00:00:00.000Z");
        let keys: Vec<&str> = a.parameters.keys().map(String::as_str).collect();
        // Kibana's order; rule-config keys (name, tags, interval, enabled) are not parameters
        for k in ["name", "tags", "interval", "enabled"] {
            assert!(!keys.contains(&k), "{k} in {keys:?}");
        }
        let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
        assert!(at("description") < at("author") && at("author") < at("rule_id"));
        assert!(at("setup") < at("type") && at("type") < at("query"));
        assert_eq!(a.parameters["risk_score_mapping"], json!([]));
        assert_eq!(a.parameters["exceptions_list"], json!([]));
        assert_eq!(a.parameters["immutable"], json!(false));
        assert_eq!(a.parameters["language"], json!("eql"));
        assert_eq!(a.parameters["max_signals"], json!(100));
        assert_eq!(a.parameters["from"], json!("now-9m"));
        assert_eq!(a.parameters["query"], json!(rule.query_text()));
    }

    #[test]
    fn a_cron_rule_says_its_shortest_gap_and_the_from_it_searches() {
        let mut rule = founding_toml();
        let hourly = crate::schedule::cron::CronSchedule::parse("5 * * * *", None).unwrap();
        rule.schedule = rule.schedule.with_cron(hourly);
        let a = alert_rule(&rule, now());
        assert_eq!(a.interval, "1h");
        // the rule's 4 minutes of additional look-back kept
        assert_eq!(a.parameters["from"], json!("now-64m"));
    }

    #[test]
    fn an_exported_rule_carries_its_kibana_identity() {
        let text = include_str!("../../tests/fixtures/kibana_export.ndjson");
        let rule = crate::rule::export::load_export_str(text)
            .into_iter()
            .find_map(|e| match e.outcome {
                LoadOutcome::Loaded { rule, .. } => Some(*rule),
                _ => None,
            })
            .expect("the export's first rule loads");
        let a = alert_rule(&rule, now());
        assert_eq!(a.uuid, "9a1f3e52-7c4b-4d0e-8f26-3b5c7d9e1a04");
        assert_eq!(a.rule_id, "5cd55388-a19c-47c7-8ec4-f41656c2fded");
        assert_eq!(a.created_at, "2024-03-04T09:15:27.512Z");
        assert_eq!(
            (a.created_by.as_str(), a.updated_by.as_str()),
            ("elastic", "elastic")
        );
        assert_eq!(a.parameters["version"], json!(4));
        assert_eq!(a.parameters["immutable"], json!(true));
        assert_eq!(a.parameters["rule_source"]["type"], json!("external"));
        assert_eq!(a.interval, "5m");
        assert!(a.tags.contains(&"Execution".to_string()));
    }

    #[test]
    fn intervals_print_in_their_largest_unit() {
        use std::time::Duration;
        assert_eq!(interval_text(Duration::from_secs(300)), "5m");
        assert_eq!(interval_text(Duration::from_secs(3600)), "1h");
        assert_eq!(interval_text(Duration::from_secs(90)), "90s");
        assert_eq!(interval_text(Duration::from_secs(86_400)), "1d");
    }
}
