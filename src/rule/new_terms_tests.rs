//! `[rule.new_terms]` at load: the fields (1 to 3), the history start as
//! date math before `from`, an export's params, and every mistake reported.

use super::*;

fn new_terms_rule(fields: &str, history: &str) -> String {
    format!(
        "[rule]\nrule_id = \"n-1\"\nname = \"New parent\"\ndescription = \"d\"\n\
         type = \"new_terms\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\nfrom = \"now-9m\"\n\
         severity = \"low\"\nrisk_score = 21\nquery = 'event.category:process'\n\n\
         [rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = {fields}\n\n\
         [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\n\
         value = \"{history}\"\n"
    )
}

fn loaded(text: &str) -> NewTermsRule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(rule.rule_type(), "new_terms");
            match rule.kind {
                RuleKind::NewTerms(t) => t,
                other => panic!("expected a new_terms rule, got {other:?}"),
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
fn a_new_terms_rule_loads_its_fields_and_history_start() {
    let t = loaded(&new_terms_rule(
        "[\"host.id\", \"process.command_line\"]",
        "now-14d",
    ));
    assert_eq!(t.fields, vec!["host.id", "process.command_line"]);
    assert_eq!(t.history_window_start.offset_ms(), -14 * 86_400_000);
    assert!(matches!(t.query.language, QueryLanguage::Kql(_)));
    assert_eq!(t.query.text, "event.category:process");
}

#[test]
fn no_field_or_more_than_three_is_an_error() {
    assert_eq!(
        errors(&new_terms_rule("[]", "now-7d")),
        ["expected 1 to 3 fields in `new_terms.value`, found 0"]
    );
    assert_eq!(
        errors(&new_terms_rule("[\"a\", \"b\", \"c\", \"d\"]", "now-7d")),
        ["expected 1 to 3 fields in `new_terms.value`, found 4"]
    );
    assert_eq!(
        errors(&new_terms_rule("[\"a\", 3]", "now-7d")),
        ["expected field names in `new_terms.value`, found integer"]
    );
    assert_eq!(
        errors(&new_terms_rule("[\"a\", \"a\"]", "now-7d")),
        ["field `a` is twice in `new_terms.value`"]
    );
    assert_eq!(
        errors(&new_terms_rule("\"host.id\"", "now-7d")),
        ["expected an array of field names for `new_terms.value`, found string"]
    );
}

#[test]
fn a_bad_history_start_is_an_error_with_what_was_expected() {
    assert_eq!(
        errors(&new_terms_rule("[\"host.id\"]", "7 days ago")),
        ["in `new_terms.history_window_start.value`: expected date math like `now-9m`, found `7 days ago`"]
    );
    assert_eq!(
        errors(&new_terms_rule("[\"host.id\"]", "now-7d/d")),
        [
            "in `new_terms.history_window_start.value`: unsupported rounding `/d` in date math: \
          detectd needs a fixed offset from now"
        ]
    );
    // Kibana's validateHistoryWindowStart: before `from` (now-9m) or nothing
    // could ever be history.
    assert_eq!(
        errors(&new_terms_rule("[\"host.id\"]", "now-5m")),
        [
            "history_window_start now-5m must be earlier than from now-9m (Kibana: the history \
          window is smaller than the rule's interval plus its look-back)"
        ]
    );
    let text = new_terms_rule("[\"host.id\"]", "now-7d").replace(
        "field = \"history_window_start\"",
        "field = \"history_start\"",
    );
    assert_eq!(
        errors(&text),
        [
            "expected `field = \"history_window_start\"` in `new_terms.history_window_start`, \
          found \"history_start\""
        ]
    );
}

#[test]
fn a_missing_new_terms_table_is_an_error() {
    let text = new_terms_rule("[\"host.id\"]", "now-7d");
    let text = &text[..text.find("[rule.new_terms]").unwrap()];
    assert_eq!(
        errors(text),
        ["missing required field `new_terms` in [rule]"]
    );
}
