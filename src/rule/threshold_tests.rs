//! `[rule.threshold]` at load: fields as a string or an array, the value,
//! cardinality, and every mistake reported with where it is.

use super::*;

fn threshold_rule(threshold: &str) -> String {
    format!(
        "[rule]\nrule_id = \"t-1\"\nname = \"Many failures\"\ndescription = \"d\"\n\
         type = \"threshold\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\nquery = 'event.outcome:failure'\n\n\
         [rule.threshold]\n{threshold}"
    )
}

fn loaded(text: &str) -> ThresholdRule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(rule.rule_type(), "threshold");
            match rule.kind {
                RuleKind::Threshold(t) => t,
                other => panic!("expected a threshold rule, got {other:?}"),
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

#[test]
fn a_threshold_rule_loads_with_its_fields_value_and_cardinality() {
    let t = loaded(&threshold_rule(
        "field = [\"source.ip\", \"user.name\"]\nvalue = 25\n\n\
         [[rule.threshold.cardinality]]\nfield = \"destination.port\"\nvalue = 250\n",
    ));
    assert_eq!(t.fields, vec!["source.ip", "user.name"]);
    assert_eq!(t.value, 25);
    assert_eq!(
        t.cardinality,
        vec![ThresholdCardinality {
            field: "destination.port".into(),
            value: 250
        }]
    );
    assert!(matches!(t.query.language, QueryLanguage::Kql(_)));
    assert_eq!(t.query.text, "event.outcome:failure");
}

#[test]
fn a_single_field_string_and_no_field_are_accepted() {
    assert_eq!(
        loaded(&threshold_rule("field = \"host.name\"\nvalue = 1\n")).fields,
        vec!["host.name"]
    );
    // Kibana normalises "" and [] to no field: one group of every event.
    assert!(loaded(&threshold_rule("field = \"\"\nvalue = 10\n"))
        .fields
        .is_empty());
    assert!(loaded(&threshold_rule("field = []\nvalue = 10\n"))
        .fields
        .is_empty());
}

#[test]
fn a_value_below_one_is_an_error() {
    let e = errors(&threshold_rule("field = [\"host.name\"]\nvalue = 0\n"));
    assert_eq!(
        e,
        vec!["expected `threshold.value` of at least 1, found 0".to_string()]
    );
}

#[test]
fn four_fields_are_too_many() {
    let e = errors(&threshold_rule(
        "field = [\"a\", \"b\", \"c\", \"d\"]\nvalue = 2\n",
    ));
    assert_eq!(
        e,
        vec!["expected at most 3 fields in `threshold.field`, found 4".to_string()]
    );
}

#[test]
fn a_bad_cardinality_is_an_error() {
    let no_field = errors(&threshold_rule(
        "field = [\"host.name\"]\nvalue = 2\n\n[[rule.threshold.cardinality]]\nvalue = 3\n",
    ));
    assert_eq!(
        no_field,
        vec!["expected a field name as `field` of a `threshold.cardinality` entry".to_string()]
    );
    let negative = errors(&threshold_rule(
        "field = [\"host.name\"]\nvalue = 2\n\n[[rule.threshold.cardinality]]\n\
         field = \"user.name\"\nvalue = -1\n",
    ));
    assert_eq!(
        negative,
        vec![
            "expected a `value` of at least 0 in a `threshold.cardinality` entry, found -1"
                .to_string()
        ]
    );
    let two = errors(&threshold_rule(
        "field = [\"host.name\"]\nvalue = 2\n\n[[rule.threshold.cardinality]]\n\
         field = \"user.name\"\nvalue = 1\n\n[[rule.threshold.cardinality]]\n\
         field = \"process.name\"\nvalue = 1\n",
    ));
    assert_eq!(two.len(), 1, "{two:?}");
    assert!(two[0].starts_with("expected at most one entry"), "{two:?}");
}

#[test]
fn a_missing_threshold_table_or_value_is_an_error() {
    let text = threshold_rule("").replace("[rule.threshold]\n", "");
    assert_eq!(
        errors(&text),
        vec!["missing required field `threshold` in [rule]".to_string()]
    );
    assert_eq!(
        errors(&threshold_rule("field = \"host.name\"\n")),
        vec!["missing required field `value` in `threshold`".to_string()]
    );
}

#[test]
fn a_bad_query_and_a_bad_threshold_are_both_reported() {
    let text = threshold_rule("value = 0\n").replace("event.outcome:failure", "a:(b");
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("invalid KQL"), "{e:?}");
    assert!(e[1].contains("at least 1"), "{e:?}");
}
