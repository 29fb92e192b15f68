//! threat_match rules at load: indicators, threat query and filters, the
//! mappings, defaults, and every mistake reported with what it is.

use super::*;

const HEAD: &str =
    "[rule]\nrule_id = \"tm-1\"\nname = \"IP indicator match\"\ndescription = \"d\"\n\
     type = \"threat_match\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
     severity = \"high\"\nrisk_score = 73\nquery = 'source.ip:* or destination.ip:*'\n";

fn rule(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

const GOOD: &str = "threat_index = [\"logs-ti_*\"]\n\
     threat_query = '@timestamp >= \"now-30d/d\" and event.module:(threatintel or ti_*)'\n\
     [[rule.threat_filters]]\n[rule.threat_filters.meta]\nnegate = false\ndisabled = false\n\
     [rule.threat_filters.query.match_phrase]\n\"event.category\" = \"threat\"\n\
     [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"source.ip\"\n\
     type = \"mapping\"\nvalue = \"threat.indicator.ip\"\n\
     [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"host.name\"\n\
     type = \"mapping\"\nvalue = \"threat.indicator.host\"\n\
     [[rule.threat_mapping.entries]]\nfield = \"user.name\"\ntype = \"mapping\"\n\
     value = \"threat.indicator.user\"\n";

fn loaded(text: &str) -> ThreatMatchRule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(rule.rule_type(), "threat_match");
            match rule.kind {
                RuleKind::ThreatMatch(t) => t,
                other => panic!("expected a threat_match rule, got {other:?}"),
            }
        }
        other => panic!("expected a loaded rule, got {other:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match load_str(text) {
        LoadOutcome::Failed(errors) => errors.into_iter().map(|e| e.message).collect(),
        other => panic!("expected errors, got {other:?}"),
    }
}

fn entry(field: &str, value: &str) -> ThreatMappingEntry {
    ThreatMappingEntry {
        field: field.into(),
        value: value.into(),
    }
}

#[test]
fn a_threat_match_rule_loads_with_its_indicators_and_mappings() {
    let t = loaded(&rule(GOOD));
    assert_eq!(t.threat_index, vec!["logs-ti_*"]);
    assert!(matches!(t.threat_query.language, QueryLanguage::Kql(_)));
    assert!(t
        .threat_query
        .text
        .starts_with("@timestamp >= \"now-30d/d\""));
    assert_eq!(t.threat_filters.len(), 1);
    assert_eq!(t.indicator_path, "threat.indicator");
    assert_eq!(
        t.threat_mapping,
        vec![
            ThreatMapping {
                entries: vec![entry("source.ip", "threat.indicator.ip")]
            },
            ThreatMapping {
                entries: vec![
                    entry("host.name", "threat.indicator.host"),
                    entry("user.name", "threat.indicator.user")
                ]
            },
        ]
    );
    assert_eq!(t.query.text, "source.ip:* or destination.ip:*");
}

#[test]
fn lucene_threat_language_and_a_custom_indicator_path() {
    let text = rule(&GOOD.replace(
        "threat_index",
        "threat_language = \"lucene\"\nthreat_indicator_path = \"rapid7.tc.vulnerability\"\nthreat_index",
    ));
    let t = loaded(&text);
    assert_eq!(t.threat_query.language, QueryLanguage::Lucene);
    assert_eq!(t.indicator_path, "rapid7.tc.vulnerability");
}

#[test]
fn an_empty_threat_mapping_is_a_clear_error() {
    let text = rule("threat_index = [\"ti\"]\nthreat_query = '*:*'\nthreat_mapping = []\n");
    assert_eq!(
        errors(&text),
        ["expected at least one mapping in `threat_mapping`, found none"]
    );
    let text = rule(
        "threat_index = [\"ti\"]\nthreat_query = '*:*'\n[[rule.threat_mapping]]\nentries = []\n",
    );
    assert_eq!(
        errors(&text),
        ["expected at least one entry in mapping 1 of `threat_mapping`, found none"]
    );
}

#[test]
fn an_entry_without_field_or_with_another_type_is_a_clear_error() {
    let text = rule(
        "threat_index = [\"ti\"]\nthreat_query = '*:*'\n[[rule.threat_mapping]]\n\
         [[rule.threat_mapping.entries]]\ntype = \"mapping\"\nvalue = \"threat.indicator.ip\"\n\
         [[rule.threat_mapping.entries]]\nfield = \"a\"\ntype = \"match\"\nvalue = \"b\"\n",
    );
    assert_eq!(
        errors(&text),
        [
            "expected a field name as `field` of entry 1 of mapping 1 of `threat_mapping`",
            "expected `type = \"mapping\"` in entry 2 of mapping 1 of `threat_mapping`, found \"match\"",
        ]
    );
}

#[test]
fn a_negated_entry_is_refused_rather_than_run_as_a_match() {
    let text = rule(&GOOD.replace(
        "value = \"threat.indicator.ip\"\n",
        "value = \"threat.indicator.ip\"\nnegate = true\n",
    ));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("negated"), "{errs:?}");
}

#[test]
fn missing_keys_and_bad_languages_are_reported_together() {
    let errs = errors(&rule("threat_language = \"eql\"\n"));
    assert_eq!(
        errs,
        [
            "missing required field `threat_index` in [rule]",
            "missing required field `threat_mapping` in [rule]",
            "expected `threat_language` \"kuery\" or \"lucene\", found \"eql\"",
        ]
    );
    let errs = errors(&rule(
        &GOOD.replace("event.module:(threatintel", "event.module:(("),
    ));
    assert!(
        errs[0].starts_with("invalid KQL in `threat_query`"),
        "{errs:?}"
    );
}
