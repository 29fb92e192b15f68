//! Kibana exports: rule lines validated like TOML rules (with positions in
//! the export), identity, Kibana params, the lines that are not rules, and
//! `[metadata] kibana_rule_id` for TOML rules.

use serde_json::{json, Value};

use super::*;
use crate::eql::span::line_col;

const FIXTURE: &str = include_str!("../../tests/fixtures/kibana_export.ndjson");
const FOUNDING_TOML: &str = include_str!("../../rules/execution_scheduled_task_powershell.toml");
const ID: &str = "0b5a8f9e-6a43-4b8e-9c1e-2f3d4c5b6a79";

/// An exported EQL rule as Kibana's API returns it.
fn rule_json() -> Value {
    json!({
        "id": ID,
        "updated_at": "2024-05-02T08:00:00.000Z",
        "updated_by": "bob",
        "created_at": "2024-05-01T10:00:00.000Z",
        "created_by": "alice",
        "name": "Export test rule",
        "tags": ["Test"],
        "interval": "5m",
        "enabled": true,
        "revision": 3,
        "description": "A rule from an export",
        "risk_score": 21,
        "severity": "low",
        "output_index": "",
        "meta": {"from": "1m", "gone": null},
        "author": ["Elastic"],
        "false_positives": [],
        "from": "now-6m",
        "rule_id": "export-0001",
        "max_signals": 100,
        "risk_score_mapping": [],
        "severity_mapping": [],
        "threat": [],
        "to": "now",
        "references": [],
        "version": 1,
        "exceptions_list": [],
        "immutable": false,
        "rule_source": {"type": "internal"},
        "related_integrations": [],
        "required_fields": [],
        "setup": "",
        "type": "eql",
        "language": "eql",
        "index": ["logs-*"],
        "query": "process where process.name == \"cmd.exe\"",
        "filters": [],
        "actions": [],
        "throttle": "no_actions",
    })
}

/// `rule_json()` with `changes` applied (`null` removes a key).
fn with(changes: Value) -> Value {
    let mut rule = rule_json();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            rule.as_object_mut().unwrap().remove(k);
        } else {
            rule[k] = v.clone();
        }
    }
    rule
}

fn export(lines: &[&Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn single(text: &str) -> LoadOutcome {
    let mut entries = load_export_str(text);
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.remove(0).outcome
}

fn loaded(rule: &Value) -> Rule {
    match single(&export(&[rule])) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            *rule
        }
        other => panic!("expected a loaded rule, got {other:?}"),
    }
}

/// (line, col, kind, message) of every error of the only outcome.
fn errors(text: &str) -> Vec<(usize, usize, RuleErrorKind, String)> {
    match single(text) {
        LoadOutcome::Failed(errors) => errors
            .into_iter()
            .map(|e| {
                let lc = line_col(text, e.span.start as usize);
                (lc.line, lc.col, e.kind, e.message)
            })
            .collect(),
        other => panic!("expected errors, got {other:?}"),
    }
}

/// 1-based column of the first `needle` after `"key":` on line 1 of `text`.
fn col_of(text: &str, key: &str, needle: &str) -> usize {
    let at = text.find(&format!("\"{key}\":")).unwrap();
    let i = at + text[at..].find(needle).unwrap();
    text[..i].chars().count() + 1
}

#[test]
fn an_exported_rule_loads_with_its_kibana_identity() {
    let rule = loaded(&rule_json());
    assert_eq!(rule.rule_id, "export-0001");
    assert_eq!(rule.kibana_id.as_deref(), Some(ID));
    assert_eq!(rule.uuid(), ID);
    assert_eq!(rule.revision, 3);
    assert_eq!(rule.created_at.as_deref(), Some("2024-05-01T10:00:00.000Z"));
    assert_eq!(rule.created_by.as_deref(), Some("alice"));
    assert_eq!(rule.updated_at.as_deref(), Some("2024-05-02T08:00:00.000Z"));
    assert_eq!(rule.updated_by.as_deref(), Some("bob"));
    assert!(rule.enabled);
    assert_eq!(rule.tags, vec!["Test"]);
    assert_eq!(rule.max_signals, 100);
    assert_eq!(
        rule.query_text(),
        "process where process.name == \"cmd.exe\""
    );

    // Kibana's params only: not the rule object's own attributes
    let keys: Vec<&str> = rule.parameters.keys().map(String::as_str).collect();
    for absent in [
        "id",
        "name",
        "tags",
        "interval",
        "enabled",
        "revision",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "actions",
        "throttle",
        "output_index",
    ] {
        assert!(!keys.contains(&absent), "{absent} in {keys:?}");
    }
    for present in [
        "rule_id",
        "query",
        "from",
        "to",
        "max_signals",
        "immutable",
        "rule_source",
        "meta",
        "setup",
        "related_integrations",
    ] {
        assert!(keys.contains(&present), "{present} not in {keys:?}");
    }
    assert!(keys.iter().all(|k| KIBANA_PARAMS.contains(k)), "{keys:?}");
    // a null inside a value is left out (TOML has no null)
    let meta = rule.parameters["meta"].as_table().unwrap();
    assert_eq!(meta.get("from").and_then(|v| v.as_str()), Some("1m"));
    assert!(!meta.contains_key("gone"));
}

#[test]
fn without_an_id_the_uuid_is_the_rule_id() {
    let rule = loaded(&with(
        json!({"id": null, "revision": null, "created_at": null}),
    ));
    assert_eq!(rule.kibana_id, None);
    assert_eq!(rule.uuid(), "export-0001");
    assert_eq!(rule.revision, 0);
    assert_eq!(rule.created_at, None);
}

/// The founding rule in the fixture export and in `rules/` are one rule:
/// the same validation gives the same typed rule, only identity and
/// parameters differ.
#[test]
fn the_founding_rule_from_an_export_equals_its_toml() {
    let from_toml = match load_str(FOUNDING_TOML) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("{other:?}"),
    };
    let entries = load_export_str(FIXTURE);
    let LoadOutcome::Loaded { rule, warnings } = &entries[0].outcome else {
        panic!("{:?}", entries[0]);
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(entries[0].line, 1);
    let mut from_export = (**rule).clone();
    assert_eq!(from_export.uuid(), "9a1f3e52-7c4b-4d0e-8f26-3b5c7d9e1a04");
    assert_eq!(from_toml.uuid(), from_toml.rule_id);
    assert_eq!(from_export.revision, 0);
    assert_eq!(from_export.created_by.as_deref(), Some("elastic"));
    // the export's params are the TOML [rule] minus the rule attributes,
    // plus what Kibana adds
    for (k, v) in &from_export.parameters {
        if let Some(t) = from_toml.parameters.get(k) {
            assert_eq!(t, v, "{k}");
        }
    }
    for k in ["name", "tags", "interval"] {
        assert!(from_toml.parameters.contains_key(k));
        assert!(!from_export.parameters.contains_key(k));
    }
    // Kibana always writes `setup` (`params.setup ?? ''`)
    assert_eq!(from_export.setup.as_deref(), Some(""));
    from_export.setup = None;
    from_export.kibana_id = None;
    from_export.created_at = None;
    from_export.created_by = None;
    from_export.updated_at = None;
    from_export.updated_by = None;
    from_export.parameters = from_toml.parameters.clone();
    from_export.metadata = from_toml.metadata.clone();
    assert_eq!(from_export, from_toml);
}

#[test]
fn the_fixture_export_has_four_rules_and_two_notes() {
    let entries = load_export_str(FIXTURE);
    let got: Vec<(usize, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.line,
                match &e.outcome {
                    LoadOutcome::Loaded { .. } => "loaded",
                    LoadOutcome::Skipped { .. } => "skipped",
                    LoadOutcome::Failed(_) => "failed",
                },
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "loaded"),
            (2, "loaded"),
            (3, "loaded"),
            (4, "loaded"),
            (5, "skipped"),
            (7, "skipped"),
        ]
    );
    let LoadOutcome::Loaded { rule, .. } = &entries[2].outcome else {
        unreachable!()
    };
    assert!(!rule.enabled, "line 3 is a disabled rule");
    assert_eq!(rule.revision, 5);
    // A KQL query rule with an exception list (resolved when the rules
    // are loaded with their lists, see `lists`).
    let LoadOutcome::Loaded { rule, .. } = &entries[3].outcome else {
        unreachable!()
    };
    assert_eq!(rule.rule_id, "soc-admin-logon");
    assert_eq!(rule.name, "Admin Logon Outside Office Hours");
    assert_eq!(rule.rule_type(), "query");
    assert_eq!(rule.exceptions_list.len(), 1);
    assert_eq!(rule.exceptions_list[0].key.list_id, "soc-build-hosts");
}

#[test]
fn identity_errors_come_with_every_other_error() {
    let rule = with(json!({
        "id": "rule-1",
        "revision": -1,
        "created_at": "yesterday",
        "updated_by": 5,
        "max_signals": 0,
    }));
    let text = export(&[&rule]);
    let got = errors(&text);
    let want = vec![
        (
            1,
            col_of(&text, "id", "\"rule-1\""),
            RuleErrorKind::Value,
            "expected a UUID for `id` (a Kibana rule's saved-object id, like \
             \"8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11\"), found \"rule-1\""
                .to_string(),
        ),
        (
            1,
            col_of(&text, "updated_by", "5"),
            RuleErrorKind::Type,
            "expected a string for `updated_by`, found integer".to_string(),
        ),
        (
            1,
            col_of(&text, "created_at", "\"yesterday\""),
            RuleErrorKind::Value,
            "expected an RFC 3339 timestamp for `created_at` (like \
             \"2024-05-01T10:00:00.000Z\"), found \"yesterday\""
                .to_string(),
        ),
        (
            1,
            col_of(&text, "revision", "-1"),
            RuleErrorKind::Value,
            "expected a `revision` of 0 or more, found -1".to_string(),
        ),
        (
            1,
            col_of(&text, "max_signals", "0"),
            RuleErrorKind::Value,
            "expected `max_signals` between 1 and 1000, found 0".to_string(),
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_missing_field_points_at_the_opening_brace() {
    let rule = with(json!({"query": null, "name": null}));
    let text = format!("\n{}", export(&[&rule]));
    let got = errors(&text);
    assert_eq!(
        got,
        vec![
            (
                2,
                1,
                RuleErrorKind::Missing,
                "missing required field `name` in the exported rule".to_string()
            ),
            (
                2,
                1,
                RuleErrorKind::Missing,
                "missing required field `query` in the exported rule".to_string()
            ),
        ]
    );
    // a top-level null is an absent key
    let mut rule = rule_json();
    rule["description"] = Value::Null;
    let got = errors(&export(&[&rule]));
    assert_eq!(
        got[0].3,
        "missing required field `description` in the exported rule"
    );
}

#[test]
fn query_errors_point_inside_the_json_string() {
    // `é`, `\"` and `\n` before the error shift columns in the file
    let rule = with(json!({"query": "any where a == \"é\" and\n  b === 1"}));
    let text = export(&[&rule]);
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(got[0].2, RuleErrorKind::Eql(_)), "{got:?}");
    let at = text.find("b === 1").unwrap() + "b ==".len();
    assert_eq!((got[0].0, got[0].1), (1, text[..at].chars().count() + 1));
    assert_eq!(got[0].3, "expected an expression, found [=]");
}

#[test]
fn types_are_named_in_json_words() {
    let text = export(&[&with(json!({"name": {"a": 1}, "threat": "T1053"}))]);
    let got: Vec<String> = errors(&text).into_iter().map(|e| e.3).collect();
    assert_eq!(
        got,
        vec![
            "expected a string for `name`, found object",
            "expected an array of objects for `threat`, found string",
        ]
    );
}

#[test]
fn a_bad_threat_entry_is_reported_at_the_entry() {
    let good = json!({"framework": "MITRE ATT&CK", "tactic":
        {"id": "TA0002", "name": "Execution", "reference": "r"}});
    let bad = json!({"framework": "MITRE ATT&CK"});
    let text = export(&[&with(json!({"threat": [good, bad]}))]);
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    let at = text.find("{\"framework\":\"MITRE ATT&CK\"}").unwrap();
    assert_eq!((got[0].0, got[0].1), (1, at + 1));
    assert!(
        got[0]
            .3
            .starts_with("invalid `threat` entry 2 (MITRE ATT&CK mapping): missing field `tactic`"),
        "{}",
        got[0].3
    );
}

#[test]
fn export_keys_are_known_and_typos_still_warn() {
    let rule = with(json!({
        "execution_summary": {"last_execution": {"status": "succeeded"}},
        "outcome": "exactMatch",
        "max_signal": 5,
    }));
    let LoadOutcome::Loaded { warnings, .. } = single(&export(&[&rule])) else {
        panic!("expected a loaded rule");
    };
    let got: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        got,
        vec!["unknown field `max_signal` in the exported rule is ignored (did you mean `max_signals`?)"]
    );
}

#[test]
fn refused_settings_and_other_types_as_in_toml() {
    let got = errors(&export(&[&with(
        json!({"data_view_id": "security-solution-default"}),
    )]));
    assert_eq!(
        (got[0].2, got[0].3.as_str()),
        (
            RuleErrorKind::Unsupported,
            "`data_view_id` is not supported by detectd"
        )
    );
    let list = json!([{"id": "x", "list_id": "y", "type": "detection"}]);
    let got = errors(&export(&[&with(json!({"exceptions_list": list}))]));
    assert_eq!(
        got[0].3,
        "invalid exceptions_list[0]: expected `namespace_type`, found none"
    );
    let got = errors(&export(&[&with(json!({"type": "threat_match"}))]));
    assert!(
        got.iter().any(|e| e.3.contains("threat_mapping")),
        "a threat_match rule without its mapping: {got:?}"
    );
    let got = errors(&export(&[&with(json!({"type": "eqll"}))]));
    assert!(got[0].3.contains("found \"eqll\""), "{got:?}");
}

#[test]
fn lines_that_are_not_rules() {
    let list =
        json!({"list_id": "l", "name": "L", "type": "detection", "namespace_type": "single"});
    let item = json!({"item_id": "i", "list_id": "l", "entries": [], "type": "simple"});
    let connector = json!({"id": "c", "type": "action", "attributes": {"actionTypeId": ".slack"}});
    let summary = json!({"exported_count": 6, "exported_rules_count": 1});
    let text = format!(
        "{}\n   \n{list}\n{item}\r\n{item}\n{connector}\n{summary}",
        rule_json()
    );
    let entries = load_export_str(&text);
    let got: Vec<(usize, String)> = entries
        .iter()
        .map(|e| match &e.outcome {
            LoadOutcome::Skipped { reason, .. } => (e.line, reason.clone()),
            LoadOutcome::Loaded { .. } => (e.line, "rule".into()),
            LoadOutcome::Failed(errors) => (e.line, format!("{errors:?}")),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "rule".into()),
            (
                3,
                "1 exception list and 2 exception list items of a Kibana export: not rules: \
                 the exception lists the rules' `exceptions_list` can name"
                    .into()
            ),
            (
                6,
                "1 action connector of a Kibana export: detectd runs no Kibana rule actions".into()
            ),
        ]
    );
}

#[test]
fn the_summary_must_count_the_rule_lines() {
    let summary = json!({"exported_count": 3, "exported_rules_count": 2});
    // a rule line, a broken line (it counts: it may have been a rule), the summary
    let text = format!("{}\n{{\"name\":\n{summary}\n", rule_json());
    assert_eq!(load_export_str(&text).len(), 2);

    let text = format!("{}\n{summary}\n", rule_json());
    let entries = load_export_str(&text);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].line, 2);
    let LoadOutcome::Failed(errors) = &entries[1].outcome else {
        panic!("{entries:?}");
    };
    assert_eq!(
        errors[0].message,
        "expected 2 rule lines before the export summary (its `exported_rules_count`), \
         found 1: the export was cut or edited"
    );
    let lc = line_col(&text, errors[0].span.start as usize);
    assert_eq!((lc.line, lc.col), (2, 44));

    // no summary (exclude_export_details) and a summary without the count: fine
    assert_eq!(load_export_str(&format!("{}\n", rule_json())).len(), 1);
    let text = format!("{}\n{}\n", rule_json(), json!({"exported_count": 1}));
    assert_eq!(load_export_str(&text).len(), 1);
    // an empty export, with or without its summary
    assert!(load_export_str("").is_empty());
    assert!(load_export_str("{\"exported_count\":0,\"exported_rules_count\":0}\n").is_empty());
}

#[test]
fn lines_that_are_not_json_objects_are_errors_at_their_position() {
    let text = "{\"name\": \"x\",, \"a\": 1}\n";
    let got = errors(text);
    assert_eq!(
        got,
        vec![(
            1,
            14,
            RuleErrorKind::Json,
            "invalid JSON: key must be a string".to_string()
        )]
    );
    let got = errors("\n  [1, 2]\n");
    assert_eq!(
        got,
        vec![(
            2,
            3,
            RuleErrorKind::Type,
            "expected a JSON object (one rule per line), found an array".to_string()
        )]
    );
    // a lone surrogate is invalid JSON for serde_json (and not a rule)
    let got = errors("{\"name\": \"\\ud800\"}\n");
    assert_eq!(got[0].2, RuleErrorKind::Json);
}

#[test]
fn toml_names_its_kibana_rule_with_metadata_kibana_rule_id() {
    let id = "8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11";
    let text = FOUNDING_TOML.replace(
        "[metadata]\n",
        &format!("[metadata]\nkibana_rule_id = \"{id}\"\n"),
    );
    let LoadOutcome::Loaded { rule, .. } = load_str(&text) else {
        panic!("expected a loaded rule");
    };
    assert_eq!(rule.kibana_id.as_deref(), Some(id));
    assert_eq!(rule.uuid(), id);
    assert_eq!(rule.revision, 0);
    assert_eq!(rule.created_at, None);
    // [metadata] is not a Kibana param
    assert!(!rule.parameters.contains_key("kibana_rule_id"));

    for (value, message) in [
        (
            "\"5cd55388\"",
            "expected a UUID for `kibana_rule_id` (a Kibana rule's saved-object id, like \
             \"8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11\"), found \"5cd55388\"",
        ),
        (
            "42",
            "expected a string for `kibana_rule_id`, found integer",
        ),
    ] {
        let text = FOUNDING_TOML.replace(
            "[metadata]\n",
            &format!("[metadata]\nkibana_rule_id = {value}\n"),
        );
        let LoadOutcome::Failed(errors) = load_str(&text) else {
            panic!("expected an error for {value}");
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].message, message);
        let lc = line_col(&text, errors[0].span.start as usize);
        assert_eq!((lc.line, lc.col), (2, 18));
    }

    // in [rule] it is a warning that says where it goes
    let text = FOUNDING_TOML.replace("[rule]\n", &format!("[rule]\nid = \"{id}\"\n"));
    let LoadOutcome::Loaded { rule, warnings } = load_str(&text) else {
        panic!("expected a loaded rule");
    };
    assert_eq!(rule.kibana_id, None);
    assert_eq!(
        warnings[0].message,
        "unknown field `id` in [rule] is ignored (a Kibana rule's saved-object id goes \
         in [metadata] as `kibana_rule_id`)"
    );
}

mod no_panics {
    use super::*;
    use crate::diagnostic::render;
    use proptest::prelude::*;

    fn assert_well_formed(text: &str) {
        for entry in load_export_str(text) {
            if let LoadOutcome::Failed(errors) = entry.outcome {
                assert!(!errors.is_empty());
                for e in errors {
                    assert!(e.span.start <= e.span.end, "{e:?}");
                    assert!((e.span.end as usize) <= text.len(), "{e:?}");
                    let lc = line_col(text, e.span.start as usize);
                    assert_eq!(lc.line, entry.line, "{e:?}");
                    let out = render("f.ndjson", text, e.span, &e.message);
                    assert!(out.starts_with("f.ndjson:"));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Cutting a piece out of the fixture export never panics, and every
        /// error points into the line its outcome is about.
        #[test]
        fn cut_exports_load_or_fail_cleanly(a in 0usize..9000, len in 0usize..40) {
            let chars: Vec<char> = FIXTURE.chars().collect();
            let a = a.min(chars.len());
            let b = (a + len).min(chars.len());
            let text: String = chars[..a].iter().chain(&chars[b..]).collect();
            assert_well_formed(&text);
        }

        /// Inserting JSON-ish junk (quotes, escapes, brackets, newlines,
        /// multi-byte characters) never panics.
        #[test]
        fn spliced_exports_load_or_fail_cleanly(a in 0usize..9000, junk in "[\"\\\\u{}\\[\\]:,\\n é~0-9a-fn]{0,12}") {
            let chars: Vec<char> = FIXTURE.chars().collect();
            let a = a.min(chars.len());
            let text: String = chars[..a].iter().collect::<String>() + &junk + &chars[a..].iter().collect::<String>();
            assert_well_formed(&text);
        }
    }
}

/// A new_terms rule as Kibana exports it: `new_terms_fields` and
/// `history_window_start` are params, not a `new_terms` table.
#[test]
fn an_exported_new_terms_rule_loads_its_params() {
    let rule = loaded(&with(json!({
        "type": "new_terms",
        "language": "kuery",
        "query": "event.category:process",
        "new_terms_fields": ["host.id", "process.executable"],
        "history_window_start": "now-7d",
    })));
    let RuleKind::NewTerms(n) = &rule.kind else {
        panic!("expected a new_terms rule, got {:?}", rule.kind);
    };
    assert_eq!(n.fields, ["host.id", "process.executable"]);
    assert_eq!(n.history_window_start.offset_ms(), -7 * 86_400_000);
    let got = errors(&export(&[&with(json!({
        "type": "new_terms",
        "language": "kuery",
        "query": "event.category:process",
        "new_terms_fields": [],
        "history_window_start": "now-7d",
    }))]));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].3,
        "expected 1 to 3 fields in `new_terms_fields`, found 0"
    );
}
