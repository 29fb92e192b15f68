//! Rule validation: defaults, every validation error with its position, and
//! all errors of a file reported at once.

use std::time::Duration;

use super::*;
use crate::eql::span::line_col;

const QUERY: &str = "process where process.name == \"cmd.exe\"";

/// A valid minimal rule with `extra` lines appended to `[rule]`, minus any
/// line starting with one of `drop`'s keys.
fn rule_text(extra: &str, drop: &[&str]) -> String {
    let base = format!(
        "[metadata]\ncreation_date = \"2020/12/15\"\n\n[rule]\n\
         rule_id = \"abc-123\"\nname = \"Test rule\"\ndescription = \"A test\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\nquery = '''\n{QUERY}\n'''\n"
    );
    let mut out: String = base
        .lines()
        .filter(|l| !drop.iter().any(|k| l.starts_with(&format!("{k} ="))))
        .map(|l| format!("{l}\n"))
        .collect();
    // A dropped `query = '''` leaves its body and closing line behind.
    if drop.contains(&"query") {
        out = out.replace(&format!("{QUERY}\n'''\n"), "");
    }
    out.push_str(extra);
    out
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

/// (line, col, kind, message) of every error.
fn errors(text: &str) -> Vec<(usize, usize, RuleErrorKind, String)> {
    match load_str(text) {
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

fn one_error(text: &str) -> (usize, usize, RuleErrorKind, String) {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
}

#[test]
fn minimal_rule_gets_kibana_defaults() {
    let rule = loaded(&rule_text("", &[]));
    assert_eq!(rule.rule_id, "abc-123");
    assert!(rule.enabled);
    assert_eq!(rule.query_text(), format!("{QUERY}\n"));
    assert_eq!(rule.schedule.interval, Duration::from_secs(300));
    assert_eq!(rule.schedule.from, DateMath::parse("now-6m").unwrap());
    assert_eq!(rule.schedule.to, DateMath::NOW);
    assert_eq!(rule.schedule.lookback(), Duration::from_secs(360));
    assert_eq!(rule.schedule.additional_lookback(), Duration::from_secs(60));
    assert_eq!(rule.max_signals, 100);
    assert_eq!(rule.severity, Severity::Low);
    assert_eq!(rule.risk_score, 21);
    assert_eq!(rule.index, vec!["logs-*"]);
    assert_eq!(rule.timestamp_override, None);
    assert_eq!(rule.version, None);
    assert_eq!(rule.metadata.creation_date.as_deref(), Some("2020/12/15"));
    assert_eq!(rule.parameters["rule_id"].as_str(), Some("abc-123"));
}

#[test]
fn scheduling_and_optional_fields_are_typed() {
    let rule = loaded(&rule_text(
        "from = \"now-7205m\"\ninterval = \"1h\"\nmax_signals = 1000\n\
         timestamp_override = \"event.ingested\"\nevent_category_override = \"event.type\"\n\
         tiebreaker_field = \"event.sequence\"\nbuilding_block_type = \"default\"\n\
         tags = [\"a\", \"b\"]\nauthor = [\"Elastic\"]\nversion = 4\nenabled = false\n\
         [[rule.threat]]\nframework = \"MITRE ATT&CK\"\n\
         [rule.threat.tactic]\nid = \"TA0002\"\nname = \"Execution\"\nreference = \"https://attack.mitre.org/tactics/TA0002/\"\n",
        &[],
    ));
    assert_eq!(rule.schedule.lookback(), Duration::from_secs(7205 * 60));
    assert_eq!(rule.schedule.interval, Duration::from_secs(3600));
    assert_eq!(rule.max_signals, 1000);
    assert_eq!(rule.timestamp_override.as_deref(), Some("event.ingested"));
    assert_eq!(
        rule.eql().unwrap().event_category_override.as_deref(),
        Some("event.type")
    );
    assert_eq!(
        rule.eql().unwrap().tiebreaker_field.as_deref(),
        Some("event.sequence")
    );
    assert_eq!(rule.building_block_type, Some(BuildingBlockType::Default));
    assert_eq!(rule.tags, vec!["a", "b"]);
    assert_eq!(rule.version, Some(4));
    assert!(!rule.enabled);
    assert_eq!(rule.threat.len(), 1);
    assert_eq!(rule.threat[0].tactic.id, "TA0002");
    assert!(rule.threat[0].technique.is_empty());
}

#[test]
fn every_kibana_rule_type_is_one_detectd_runs() {
    for t in [
        "eql",
        "query",
        "saved_query",
        "threshold",
        "threat_match",
        "new_terms",
        "esql",
        "machine_learning",
    ] {
        let text = rule_text(&format!("type = \"{t}\"\n"), &["type"]);
        // Loaded, or refused for what its type needs: never skipped.
        assert!(
            !matches!(load_str(&text), LoadOutcome::Skipped { .. }),
            "{t}"
        );
    }
}

#[test]
fn missing_required_fields_point_at_the_rule_header() {
    let text = rule_text("", &["rule_id", "name", "query"]);
    let header = line_of(&text, "[rule]");
    let e = errors(&text);
    let messages: Vec<&str> = e.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "missing required field `rule_id` in [rule]",
            "missing required field `name` in [rule]",
            "missing required field `query` in [rule]",
        ]
    );
    assert!(e
        .iter()
        .all(|e| (e.0, e.1, e.2) == (header, 1, RuleErrorKind::Missing)));
}

#[test]
fn missing_rule_table() {
    let e = one_error("[metadata]\nmaturity = \"production\"\n");
    assert_eq!((e.0, e.1, e.2), (1, 1, RuleErrorKind::Missing));
    assert_eq!(e.3, "missing table [rule]");
}

#[test]
fn empty_values_are_errors_at_the_value() {
    let text = rule_text("name = \"  \"\n", &["name"]);
    let e = one_error(&text);
    assert_eq!(
        (e.0, e.1, e.2),
        (line_of(&text, "name ="), 8, RuleErrorKind::Value)
    );
    assert_eq!(e.3, "expected a non-empty `name`, found an empty string");

    let text = rule_text("query = \"\"\n", &["query"]);
    let e = one_error(&text);
    assert_eq!(e.3, "expected an EQL query, found an empty string");

    let text = rule_text("index = []\n", &["index"]);
    let e = one_error(&text);
    assert_eq!(
        e.3,
        "expected at least one index pattern in `index`, found none"
    );
}

#[test]
fn wrong_types_say_expected_and_found() {
    let text = rule_text("risk_score = \"47\"\n", &["risk_score"]);
    let e = one_error(&text);
    assert_eq!(
        (e.0, e.1, e.2),
        (line_of(&text, "risk_score"), 14, RuleErrorKind::Type)
    );
    assert_eq!(e.3, "expected an integer for `risk_score`, found string");

    let e = one_error(&rule_text("tags = \"a\"\n", &[]));
    assert_eq!(e.3, "expected an array of strings for `tags`, found string");
    let e = one_error(&rule_text("tags = [\"a\", 2]\n", &[]));
    assert_eq!(
        e.3,
        "expected strings in `tags`, found integer at position 2"
    );
    let e = one_error(&rule_text("index = \"logs-*\"\n", &["index"]));
    assert_eq!(
        e.3,
        "expected an array of strings for `index`, found string"
    );
}

#[test]
fn bad_schedule_values() {
    let e = one_error(&rule_text("from = \"9m\"\n", &[]));
    assert_eq!(
        e.3,
        "invalid `from`: expected date math like `now-9m`, found `9m`"
    );
    let e = one_error(&rule_text("from = \"now-1M\"\n", &[]));
    assert!(
        e.3.starts_with("invalid `from`: unsupported unit `M`"),
        "{}",
        e.3
    );
    let e = one_error(&rule_text("interval = \"5 minutes\"\n", &[]));
    assert!(
        e.3.starts_with("invalid `interval`: expected a duration like `5m`"),
        "{}",
        e.3
    );
    let e = one_error(&rule_text("interval = \"0s\"\n", &[]));
    assert_eq!(
        e.3,
        "invalid `interval`: expected a positive duration, found `0s`"
    );
    let text = rule_text("from = \"now\"\n", &[]);
    let e = one_error(&text);
    assert_eq!((e.0, e.1), (line_of(&text, "from"), 8));
    assert_eq!(
        e.3,
        "expected `from` before `to`, found from = \"now\" and to = \"now\""
    );
}

#[test]
fn max_signals_bounds() {
    for bad in ["0", "-1", "1001", "10000000"] {
        let text = rule_text(&format!("max_signals = {bad}\n"), &[]);
        let e = one_error(&text);
        assert_eq!(
            (e.0, e.1, e.2),
            (line_of(&text, "max_signals"), 15, RuleErrorKind::Value)
        );
        assert_eq!(
            e.3,
            format!("expected `max_signals` between 1 and 1000, found {bad}")
        );
    }
    assert_eq!(loaded(&rule_text("max_signals = 1\n", &[])).max_signals, 1);
}

#[test]
fn severity_risk_score_and_friends() {
    let e = one_error(&rule_text("severity = \"urgent\"\n", &["severity"]));
    assert_eq!(
        e.3,
        "expected severity \"low\", \"medium\", \"high\" or \"critical\", found \"urgent\""
    );
    for bad in ["101", "-1"] {
        let e = one_error(&rule_text(
            &format!("risk_score = {bad}\n"),
            &["risk_score"],
        ));
        assert_eq!(
            e.3,
            format!("expected `risk_score` between 0 and 100, found {bad}")
        );
    }
    let e = one_error(&rule_text("language = \"kuery\"\n", &["language"]));
    assert_eq!(
        e.3,
        "expected language \"eql\" for an eql rule, found \"kuery\""
    );
    let e = one_error(&rule_text("building_block_type = \"other\"\n", &[]));
    assert_eq!(
        e.3,
        "expected `building_block_type` \"default\", found \"other\""
    );
    let e = one_error(&rule_text("version = 0\n", &[]));
    assert_eq!(e.3, "expected a positive `version`, found 0");
    let e = one_error(&rule_text(
        "filters = [{meta = {negate = \"yes\"}, query = {match_all = {}}}]\n",
        &[],
    ));
    assert_eq!(e.2, RuleErrorKind::Value);
    assert!(
        e.3.starts_with("invalid `filters`: at `/0/meta/negate`"),
        "{}",
        e.3
    );
}

#[test]
fn malformed_threat_is_reported_at_its_entry() {
    let tactic = "[rule.threat.tactic]\nid = \"TA0002\"\nname = \"Execution\"\nreference = \"r\"\n";
    let text = rule_text(
        &format!(
            "[[rule.threat]]\nframework = \"MITRE ATT&CK\"\n{tactic}\
             [[rule.threat]]\nframework = \"MITRE ATT&CK\"\n\
             [[rule.threat.technique]]\nid = \"T1\"\nname = \"n\"\n"
        ),
        &[],
    );
    let e = errors(&text);
    let second = text.match_indices("[[rule.threat]]").nth(1).unwrap().0;
    let line = text[..second].lines().count() + 1;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].2), (line, RuleErrorKind::Type), "{e:?}");
    assert!(
        e[0].3
            .starts_with("invalid `threat` entry 2 (MITRE ATT&CK mapping): "),
        "{}",
        e[0].3
    );

    let e = one_error(&rule_text("threat = \"T1053\"\n", &[]));
    assert!(
        e.3 == "expected an array of tables ([[rule.threat]]) for `threat`, found string",
        "{}",
        e.3
    );
}

#[test]
fn metadata_integration_may_be_a_bare_string() {
    let text =
        rule_text("", &[]).replace("[metadata]\n", "[metadata]\nintegration = \"endpoint\"\n");
    assert_eq!(loaded(&text).metadata.integration, vec!["endpoint"]);
    let text = rule_text("", &[]).replace("[metadata]\n", "[metadata]\nintegration = 3\n");
    let e = one_error(&text);
    assert_eq!(
        e.3,
        "expected an array of strings for `integration`, found integer"
    );
}

#[test]
fn unknown_fields_warn_with_a_hint() {
    let text = rule_text("max_signal = 5\nsetup = \"s\"\nfoo = 1\n", &[]);
    let LoadOutcome::Loaded { rule, warnings } = load_str(&text) else {
        panic!("expected a loaded rule");
    };
    assert_eq!(rule.max_signals, 100);
    let got: Vec<(usize, usize, &str)> = warnings
        .iter()
        .map(|w| {
            let lc = line_col(&text, w.span.start as usize);
            (lc.line, lc.col, w.message.as_str())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                line_of(&text, "max_signal ="),
                14,
                "unknown field `max_signal` in [rule] is ignored (did you mean `max_signals`?)"
            ),
            (
                line_of(&text, "foo ="),
                7,
                "unknown field `foo` in [rule] is ignored"
            ),
        ]
    );
    assert!(warnings.iter().all(RuleError::is_warning));

    // with a real error too, the warning comes along in file order
    let text = rule_text("max_signal = 5\nseverity = \"x\"\n", &["severity"]);
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].2, RuleErrorKind::UnknownField);
    assert_eq!(e[1].2, RuleErrorKind::Value);
}

#[test]
fn toml_syntax_error_has_position() {
    let text = "[rule]\nname = \"x\"\nrisk_score = = 3\n";
    let e = one_error(text);
    assert_eq!((e.0, e.1, e.2), (3, 14, RuleErrorKind::Toml));
    assert!(e.3.starts_with("invalid TOML: "), "{}", e.3);
    assert!(!e.3.contains('\n'));
}

#[test]
fn eql_error_is_mapped_into_the_file() {
    // The lexer rejects `~`; `é` before it checks columns count characters.
    let text = rule_text(
        "query = '''\nprocess where process.name == \"é\" and ~x\n'''\n",
        &["query"],
    );
    let e = one_error(&text);
    assert!(matches!(e.2, RuleErrorKind::Eql(_)), "{e:?}");
    let line = line_of(&text, "process where");
    let col = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .chars()
        .position(|c| c == '~')
        .unwrap()
        + 1;
    assert_eq!((e.0, e.1), (line, col));

    // the same through a basic string with escapes before the error
    let text = rule_text(
        "query = \"process where a == \\\"\\u00e9\\\" and ~x\"\n",
        &["query"],
    );
    let e = one_error(&text);
    let line = line_of(&text, "query =");
    let col = text.lines().nth(line - 1).unwrap().find('~').unwrap() + 1;
    assert_eq!((e.0, e.1), (line, col));
}

/// One file with many problems: every one is reported, in file order, at
/// its own line and column.
#[test]
fn broken_file_reports_every_error_at_once() {
    let text = "\
[metadata]
integration = 5

[rule]
name = \"\"
description = \"d\"
type = \"eql\"
index = [\"logs-*\"]
from = \"now-9x\"
interval = \"5\"
max_signals = 10000000
severity = \"urgent\"
risk_score = 470
query = '''
sequence by host.id
  [process where name == \"é\" and ~]
'''
";
    let e = errors(text);
    let got: Vec<(usize, usize)> = e.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        got,
        vec![
            (2, 15),  // integration
            (4, 1),   // missing rule_id at [rule]
            (5, 8),   // empty name
            (9, 8),   // from
            (10, 12), // interval
            (11, 15), // max_signals
            (12, 12), // severity
            (13, 14), // risk_score
            (16, 34), // `~` in the query
        ],
        "{e:#?}"
    );
    assert_eq!(e[1].3, "missing required field `rule_id` in [rule]");
}

mod no_panics {
    use super::*;
    use crate::diagnostic::render;
    use proptest::prelude::*;

    const SEED: &str = include_str!("../../rules/execution_scheduled_task_powershell.toml");

    fn assert_well_formed(text: &str) {
        if let LoadOutcome::Failed(errors) = load_str(text) {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.span.start <= e.span.end, "{e:?}");
                assert!((e.span.end as usize) <= text.len(), "{e:?}");
                let out = render("f.toml", text, e.span, &e.message);
                assert!(out.starts_with("f.toml:"));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Cutting a piece out of a valid rule file never panics, and every
        /// error it causes has a span inside the file.
        #[test]
        fn cut_rule_files_load_or_fail_cleanly(a in 0usize..4000, len in 0usize..40) {
            let chars: Vec<char> = SEED.chars().collect();
            let a = a.min(chars.len());
            let b = (a + len).min(chars.len());
            let text: String = chars[..a].iter().chain(&chars[b..]).collect();
            assert_well_formed(&text);
        }

        /// Inserting arbitrary text (quotes, escapes, multi-byte characters)
        /// into a valid rule file never panics.
        #[test]
        fn spliced_rule_files_load_or_fail_cleanly(a in 0usize..4000, junk in "[\"'\\\\=\\[\\]\\n é~0-9a-z]{0,12}") {
            let chars: Vec<char> = SEED.chars().collect();
            let a = a.min(chars.len());
            let text: String = chars[..a].iter().collect::<String>() + &junk + &chars[a..].iter().collect::<String>();
            assert_well_formed(&text);
        }
    }
}
