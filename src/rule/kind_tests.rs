//! Rule kinds at load: query and saved_query rules (KQL, Lucene), what
//! each type refuses, and the overrides every event alert may take.

use super::*;
use crate::alert::overrides::{Overrides, SeverityMapping};
use crate::eql::span::line_col;

fn query_rule(extra: &str) -> String {
    format!(
        "[rule]\nrule_id = \"q-1\"\nname = \"Query rule\"\ndescription = \"d\"\n\
         index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n{extra}"
    )
}

fn loaded(text: &str) -> Rule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            *rule
        }
        other => panic!("expected a loaded rule, got {other:?}"),
    }
}

fn failed(text: &str) -> Vec<(usize, usize, String)> {
    match load_str(text) {
        LoadOutcome::Failed(errors) => errors
            .into_iter()
            .map(|e| {
                let lc = line_col(text, e.span.start as usize);
                (lc.line, lc.col, e.message)
            })
            .collect(),
        other => panic!("expected errors, got {other:?}"),
    }
}

#[test]
fn a_kql_query_rule_loads_with_kuery_the_default() {
    let rule = loaded(&query_rule(
        "type = \"query\"\nquery = 'event.category:process and process.name:(\"cmd.exe\" or pwsh*)'\n",
    ));
    assert_eq!(rule.rule_type(), "query");
    assert!(rule.eql().is_none());
    let RuleKind::Query(q) = &rule.kind else {
        panic!("expected a query rule");
    };
    assert!(matches!(q.language, QueryLanguage::Kql(_)));
    assert_eq!(q.saved_id, None);
    assert_eq!(
        rule.query_text(),
        "event.category:process and process.name:(\"cmd.exe\" or pwsh*)"
    );
}

#[test]
fn a_lucene_query_rule_keeps_its_text() {
    let rule = loaded(&query_rule(
        "type = \"query\"\nlanguage = \"lucene\"\nquery = 'process.name:cmd.exe AND NOT user.name:SYSTEM'\n",
    ));
    let RuleKind::Query(q) = &rule.kind else {
        panic!("expected a query rule");
    };
    assert_eq!(q.language, QueryLanguage::Lucene);
}

#[test]
fn a_saved_query_rule_runs_the_query_it_carries() {
    let rule = loaded(&query_rule(
        "type = \"saved_query\"\nsaved_id = \"saved-1\"\nquery = 'host.name:ws-1'\n",
    ));
    assert_eq!(rule.rule_type(), "saved_query");
    let RuleKind::Query(q) = &rule.kind else {
        panic!("expected a query rule");
    };
    assert_eq!(q.saved_id.as_deref(), Some("saved-1"));

    let e = failed(&query_rule("type = \"saved_query\"\nsaved_id = \"saved-1\"\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].2.contains("cannot read the saved query"), "{e:?}");
    let e = failed(&query_rule("type = \"saved_query\"\nquery = 'a:b'\n"));
    assert!(e[0].2.contains("`saved_id`"), "{e:?}");
}

#[test]
fn a_kql_error_points_into_the_query() {
    let text = query_rule("type = \"query\"\nquery = 'process.name:(cmd.exe or'\n");
    let e = failed(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    let (line, col, message) = &e[0];
    assert_eq!(*line, 9);
    // At the end of the query, inside the quotes.
    assert_eq!(*col, "query = 'process.name:(cmd.exe or".len() + 1);
    assert!(message.starts_with("invalid KQL:"), "{message}");
}

#[test]
fn languages_belong_to_their_types() {
    let e = failed(&query_rule("type = \"query\"\nlanguage = \"eql\"\nquery = 'a:b'\n"));
    assert!(
        e[0].2
            .contains("expected language \"kuery\" or \"lucene\" for a query rule, found \"eql\""),
        "{e:?}"
    );
    let e = failed(&query_rule(
        "type = \"eql\"\nlanguage = \"kuery\"\nquery = 'any where true'\n",
    ));
    assert!(e[0].2.contains("for an eql rule"), "{e:?}");
}

#[test]
fn overrides_are_read_as_kibana_writes_them() {
    let rule = loaded(&query_rule(
        "type = \"query\"\nquery = 'a:b'\nrule_name_override = \"message\"\n\
         [[rule.severity_mapping]]\nfield = \"event.severity\"\noperator = \"equals\"\nseverity = \"high\"\nvalue = \"73\"\n\
         [[rule.risk_score_mapping]]\nfield = \"event.risk_score\"\noperator = \"equals\"\nvalue = \"\"\n",
    ));
    assert_eq!(
        rule.overrides,
        Overrides {
            severity_mapping: vec![SeverityMapping {
                field: "event.severity".into(),
                value: "73".into(),
                severity: "high".into(),
            }],
            risk_score_field: Some("event.risk_score".into()),
            rule_name_field: Some("message".into()),
        }
    );
    // Kibana's form writes an empty override for none.
    let rule = loaded(&query_rule(
        "type = \"query\"\nquery = 'a:b'\nrule_name_override = \"\"\nseverity_mapping = []\n",
    ));
    assert!(rule.overrides.is_empty());
}

#[test]
fn a_bad_override_is_an_error_naming_the_entry() {
    let e = failed(&query_rule(
        "type = \"query\"\nquery = 'a:b'\n\
         [[rule.severity_mapping]]\nfield = \"x\"\noperator = \"equals\"\nseverity = \"urgent\"\nvalue = \"1\"\n\
         [[rule.severity_mapping]]\nfield = \"y\"\noperator = \"contains\"\nseverity = \"low\"\nvalue = \"1\"\n",
    ));
    let messages: Vec<&str> = e.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "invalid `severity_mapping` entry 1: expected `severity` \"low\", \"medium\", \"high\" or \"critical\", found \"urgent\"",
            "invalid `severity_mapping` entry 2: expected `operator` \"equals\", found \"contains\"",
        ]
    );
    let e = failed(&query_rule(
        "type = \"query\"\nquery = 'a:b'\nrisk_score_mapping = \"event.risk_score\"\n",
    ));
    assert!(e[0].2.contains("expected an array of mappings"), "{e:?}");
}
