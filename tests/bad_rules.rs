//! The bad-rule matrix: every field the rule loader reads, each given wrong
//! values in turn (wrong TOML type, empty, out of range, unparsable), and
//! whole files that are wrong (empty, not UTF-8, not TOML, huge, a
//! duplicate `rule_id`). A second matrix does the same to a rule line of a
//! Kibana export (`*.ndjson`): its identity fields (`id`, `revision`,
//! `created_*`, `updated_*`) and a sample of the fields it shares with TOML,
//! which go through the same validation.
//!
//! Each case runs the real `detectd check` on a folder holding the broken
//! rule *and* a good one, and asserts: exit code 1; an error at
//! `file:line:col` pointing at the offending value (or at the `[rule]`
//! header for a missing field) whose message names the field and says what
//! was expected and what was found; the good rule checks clean; the summary
//! line counts one ok and one failed. A last test runs `detectd run --once`
//! over several broken rules and a good one against the cluster at
//! `ELASTICSEARCH_URL`: the good rule runs, the broken ones are logged with
//! their position, and the exit code is the documented 0.

#[path = "common/process.rs"]
mod process;

use process::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A valid rule setting every `[rule]` key the loader reads, one per line,
/// so a case can replace exactly one of them.
const BASE: &str = r#"[metadata]
creation_date = "2024/01/01"
integration = ["endpoint"]
maturity = "production"
updated_date = "2024/01/02"

[rule]
author = ["Elastic"]
building_block_type = "default"
description = "A rule for the bad-input matrix"
enabled = true
event_category_override = "event.category"
false_positives = ["none"]
from = "now-9m"
index = ["logs-endpoint.events.*"]
interval = "5m"
language = "eql"
license = "Elastic License v2"
max_signals = 100
name = "Bad input rule"
note = "A note"
references = ["https://example.com"]
risk_score = 21
rule_id = "bad-input-0001"
setup = "Nothing to set up"
severity = "low"
tags = ["Test"]
tiebreaker_field = "event.sequence"
timestamp_field = "@timestamp"
timestamp_override = "event.ingested"
timestamp_override_fallback_disabled = false
to = "now"
type = "eql"
version = 1
query = '''
process where process.name == "cmd.exe"
'''

[[rule.threat]]
framework = "MITRE ATT&CK"

[rule.threat.tactic]
id = "TA0002"
name = "Execution"
reference = "https://attack.mitre.org/tactics/TA0002/"
"#;

/// The rule every case places next to the broken one.
const GOOD: &str = r#"[rule]
rule_id = "good-rule-0001"
name = "Good rule"
description = "Checks clean"
type = "eql"
language = "eql"
index = ["logs-*"]
severity = "low"
risk_score = 21
query = '''
process where process.name == "cmd.exe"
'''
"#;

/// What to do to the base rule.
#[derive(Clone, Copy)]
enum Edit {
    /// Replace the `key = ...` line (or the whole `query = '''...'''`
    /// block) with `key = VALUE`.
    Set(&'static str, &'static str),
    /// Remove the key.
    Drop(&'static str),
    /// Add a line at the end of `[rule]` (before the first `[[rule.threat]]`).
    Add(&'static str),
    /// Drop the `[[rule.threat]]` tables and add a line to `[rule]` instead.
    NoThreat(&'static str),
    /// Replace the first occurrence of a text.
    Replace(&'static str, &'static str),
    /// The whole file.
    Whole(&'static str),
}

/// One row of the matrix.
struct Case {
    edit: Edit,
    /// Where the caret must point: the first occurrence of this text in the
    /// broken file (its first character). `"[rule]"` for missing fields.
    at: &'static str,
    /// Fragments the error message must contain (field name, expected,
    /// found).
    says: &'static [&'static str],
}

const fn case(edit: Edit, at: &'static str, says: &'static [&'static str]) -> Case {
    Case { edit, at, says }
}

use Edit::{Add, Drop, NoThreat, Replace, Set, Whole};

/// Every field the loader reads, with wrong values.
fn matrix() -> Vec<Case> {
    vec![
        // --- identity
        case(Drop("rule_id"), "[rule]", &["missing required field `rule_id`"]),
        case(Set("rule_id", "42"), "42", &["expected a string for `rule_id`, found integer"]),
        case(Set("rule_id", "\"\""), "\"\"", &["expected a non-empty `rule_id`, found an empty string"]),
        case(Set("rule_id", "\"   \""), "\"   \"", &["expected a non-empty `rule_id`, found an empty string"]),
        case(Drop("name"), "[rule]", &["missing required field `name`"]),
        case(Set("name", "[\"a\"]"), "[\"a\"]", &["expected a string for `name`, found array"]),
        case(Set("name", "\"\""), "\"\"", &["expected a non-empty `name`"]),
        case(Drop("description"), "[rule]", &["missing required field `description`"]),
        case(Set("description", "true"), "true", &["expected a string for `description`, found boolean"]),
        case(Set("description", "\"\""), "\"\"", &["expected a non-empty `description`, found an empty string"]),
        // --- type and language
        case(Drop("type"), "[rule]", &["missing required field `type`"]),
        case(Set("type", "1"), "1\n", &["expected a string for `type`, found integer"]),
        case(Set("type", "\"eqll\""), "\"eqll\"", &["`type`", "expected", "found \"eqll\""]),
        case(Set("type", "\"EQL\""), "\"EQL\"", &["`type`", "expected", "found \"EQL\""]),
        case(Set("type", "\"\""), "\"\"", &["expected a non-empty `type`"]),
        case(Set("language", "\"kuery\""), "\"kuery\"", &["expected language \"eql\"", "found \"kuery\""]),
        case(Set("language", "5"), "5\n", &["expected a string for `language`, found integer"]),
        // --- query
        case(Drop("query"), "[rule]", &["missing required field `query`"]),
        case(Set("query", "\"\""), "\"\"", &["expected an EQL query, found an empty string"]),
        case(Set("query", "7"), "7\n", &["expected a string for `query`, found integer"]),
        case(Set("query", "'''\nprocess where process.name == \"cmd.exe\n'''"), "\"cmd.exe", &["unterminated string", "expected a closing"]),
        case(Set("query", "'''\nprocess where process.name === \"cmd.exe\"\n'''"), "= \"cmd", &["expected an expression, found [=]"]),
        case(Set("query", "'''\nprocess where\n'''"), "\n'''", &["expected an expression, found end of query"]),
        case(Set("query", "'''\nprocess where nosuchfn(process.name)\n'''"), "nosuchfn", &["unknown function [nosuchfn]"]),
        case(Set("query", "'''\nsequence [process where true]\n'''"), "sequence", &["sequence requires a minimum of 2 queries, found [1]"]),
        case(Set("query", "'''\nprocess where process.pid > \"x\" + 1\n'''"), "\"x\" + 1", &["operand of [+] must be numeric, found [\"x\"] of type [string]"]),
        // --- index
        case(Drop("index"), "[rule]", &["missing required field `index`"]),
        case(Set("index", "\"logs-*\""), "\"logs-*\"", &["expected an array of strings for `index`, found string"]),
        case(Set("index", "[]"), "[]", &["expected at least one index pattern in `index`, found none"]),
        case(Set("index", "[\"\"]"), "[\"\"]", &["expected index patterns in `index`, found an empty string"]),
        case(Set("index", "[\"logs-*\", 5]"), "[\"logs-*\", 5]", &["expected strings in `index`, found integer at position 2"]),
        // --- schedule
        case(Set("from", "\"5 minutes\""), "\"5 minutes\"", &["invalid `from`", "expected date math like `now-9m`, found `5 minutes`"]),
        case(Set("from", "\"now-\""), "\"now-\"", &["invalid `from`", "expected date math", "found `now-`"]),
        case(Set("from", "\"now-0s\""), "\"now-0s\"", &["expected `from` before `to`", "found from = \"now\""]),
        case(Set("from", "\"now+5m\""), "\"now+5m\"", &["expected `from` before `to`", "found from = \"now+5m\""]),
        case(Set("from", "\"now-1M\""), "\"now-1M\"", &["invalid `from`", "unsupported unit `M`"]),
        case(Set("from", "\"now/d\""), "\"now/d\"", &["invalid `from`", "unsupported rounding"]),
        case(Set("from", "\"now-99999999999999999999m\""), "\"now-9999", &["invalid `from`", "too large"]),
        case(Set("from", "-540"), "-540", &["expected a string for `from`, found integer"]),
        case(Set("to", "0"), "0\n", &["expected a string for `to`, found integer"]),
        case(Set("to", "\"later\""), "\"later\"", &["invalid `to`", "expected date math", "found `later`"]),
        case(Set("to", "\"now-10m\""), "\"now-9m\"", &["expected `from` before `to`", "to = \"now-10m\""]),
        case(Set("interval", "\"5 minutes\""), "\"5 minutes\"", &["invalid `interval`", "expected a duration like `5m`", "found `5 minutes`"]),
        case(Set("interval", "\"0s\""), "\"0s\"", &["invalid `interval`", "expected a positive duration, found `0s`"]),
        case(Set("interval", "\"-5m\""), "\"-5m\"", &["invalid `interval`", "expected a duration", "found `-5m`"]),
        case(Set("interval", "\"5\""), "\"5\"", &["invalid `interval`", "expected a duration", "found `5`"]),
        case(Set("interval", "\"1w\""), "\"1w\"", &["invalid `interval`", "expected a duration", "found `1w`"]),
        case(Set("interval", "\"99999999999999999999s\""), "\"9999", &["invalid `interval`", "too large"]),
        case(Set("interval", "300"), "300", &["expected a string for `interval`, found integer"]),
        // --- limits and scores
        case(Set("max_signals", "0"), "0\n", &["expected `max_signals` between 1 and 1000, found 0"]),
        case(Set("max_signals", "10000000"), "10000000", &["expected `max_signals` between 1 and 1000, found 10000000"]),
        case(Set("max_signals", "-1"), "-1", &["expected `max_signals` between 1 and 1000, found -1"]),
        case(Set("max_signals", "\"100\""), "\"100\"", &["expected an integer for `max_signals`, found string"]),
        case(Set("max_signals", "1.5"), "1.5", &["expected an integer for `max_signals`, found float"]),
        case(Drop("risk_score"), "[rule]", &["missing required field `risk_score`"]),
        case(Set("risk_score", "101"), "101", &["expected `risk_score` between 0 and 100, found 101"]),
        case(Set("risk_score", "-1"), "-1", &["expected `risk_score` between 0 and 100, found -1"]),
        case(Set("risk_score", "\"21\""), "\"21\"", &["expected an integer for `risk_score`, found string"]),
        case(Drop("severity"), "[rule]", &["missing required field `severity`"]),
        case(Set("severity", "\"urgent\""), "\"urgent\"", &["expected severity \"low\", \"medium\", \"high\" or \"critical\", found \"urgent\""]),
        case(Set("severity", "3"), "3\n", &["expected a string for `severity`, found integer"]),
        case(Set("version", "0"), "0\n", &["expected a positive `version`, found 0"]),
        case(Set("version", "\"1\""), "\"1\"", &["expected an integer for `version`, found string"]),
        // --- flags and optional fields
        case(Set("enabled", "\"yes\""), "\"yes\"", &["expected a boolean for `enabled`, found string"]),
        case(Set("timestamp_override", "\"\""), "\"\"", &["expected a non-empty `timestamp_override`, found an empty string"]),
        case(Set("timestamp_override", "5"), "5\n", &["expected a string for `timestamp_override`, found integer"]),
        case(Set("timestamp_override_fallback_disabled", "\"no\""), "\"no\"", &["expected a boolean for `timestamp_override_fallback_disabled`, found string"]),
        case(Set("timestamp_field", "\"\""), "\"\"", &["expected a non-empty `timestamp_field`"]),
        case(Set("event_category_override", "[]"), "[]", &["expected a string for `event_category_override`, found array"]),
        case(Set("tiebreaker_field", "\" \""), "\" \"", &["expected a non-empty `tiebreaker_field`"]),
        case(Set("building_block_type", "\"custom\""), "\"custom\"", &["expected `building_block_type` \"default\", found \"custom\""]),
        case(Set("building_block_type", "true"), "true\n", &["expected a string for `building_block_type`, found boolean"]),
        case(Set("tags", "\"Test\""), "\"Test\"", &["expected an array of strings for `tags`, found string"]),
        case(Set("tags", "[1]"), "[1]", &["expected strings in `tags`, found integer at position 1"]),
        case(Set("author", "\"Elastic\""), "\"Elastic\"", &["expected an array of strings for `author`, found string"]),
        case(Set("references", "[{ url = \"x\" }]"), "[{ url", &["expected strings in `references`, found table at position 1"]),
        case(Set("false_positives", "5"), "5\n", &["expected an array of strings for `false_positives`, found integer"]),
        case(Set("license", "5"), "5\n", &["expected a string for `license`, found integer"]),
        case(Set("note", "[]"), "[]", &["expected a string for `note`, found array"]),
        case(Set("setup", "false"), "false", &["expected a string for `setup`, found boolean"]),
        // --- settings detectd refuses rather than ignores
        // --- filters and exception-list references (Kibana's shapes)
        case(Add("filters = { query = { match_all = {} } }"), "{ query", &["expected an array of Kibana filter objects for `filters`, found table"]),
        case(Add("filters = [{ meta = { negate = \"yes\" }, query = { match_all = {} } }]"), "[{ meta", &["invalid `filters`: at `/0/meta/negate`"]),
        case(Add("filters = [{ query = { no_such_query = {} } }]"), "[{ query", &["invalid `filters`", "no_such_query"]),
        case(Add("filters = [{ meta = {} }]"), "[{ meta", &["invalid `filters`", "a filter needs a query"]),
        case(Add("exceptions_list = [{ id = \"x\", list_id = \"y\", type = \"detection\" }]"), "[{ id", &["invalid exceptions_list[0]: expected `namespace_type`, found none"]),
        case(Add("exceptions_list = [{ id = \"x\", list_id = \"y\", namespace_type = \"global\" }]"), "[{ id", &["invalid exceptions_list[0]: expected \"single\" or \"agnostic\" for `namespace_type`, found \"global\""]),
        case(Add("exceptions_list = \"y\""), "\"y\"", &["expected an array of list references ({ id, list_id, namespace_type, type }) for `exceptions_list`, found string"]),
        case(Add("data_view_id = \"security-solution-default\""), "\"security-solution-default\"", &["`data_view_id` is not supported by detectd"]),
        // --- overrides (Kibana's SeverityMappingItem / RiskScoreMappingItem)
        case(Add("risk_score_mapping = \"event.risk_score\""), "\"event.risk_score\"", &["expected an array of mappings ({ field, operator, value }) for `risk_score_mapping`, found string"]),
        case(Add("risk_score_mapping = [{ field = \"x\", value = \"\" }]"), "[{ field", &["invalid `risk_score_mapping` entry 1: missing `operator`"]),
        case(Add("severity_mapping = [{ field = \"x\", operator = \"equals\", value = \"a\", severity = \"urgent\" }]"), "[{ field", &["invalid `severity_mapping` entry 1: expected `severity` \"low\", \"medium\", \"high\" or \"critical\", found \"urgent\""]),
        case(Add("severity_mapping = [{ field = \"x\", operator = \"equals\", value = 3, severity = \"low\" }]"), "[{ field", &["invalid `severity_mapping` entry 1: expected `value` a string, found integer"]),
        case(Add("rule_name_override = 5"), "5\n", &["expected a string for `rule_name_override`, found integer"]),
        // --- threat (MITRE mapping)
        case(Replace("framework = \"MITRE ATT&CK\"\n", ""), "[[rule.threat]]", &["invalid `threat` entry 1", "missing field `framework`"]),
        case(Replace("id = \"TA0002\"", "id = 2"), "[[rule.threat]]", &["invalid `threat` entry 1", "expected a string"]),
        case(NoThreat("threat = \"execution\""), "\"execution\"", &["expected an array of tables ([[rule.threat]]) for `threat`, found string"]),
        case(NoThreat("threat = [\"execution\"]"), "\"execution\"", &["invalid `threat` entry 1", "string \"execution\"", "expected struct Threat"]),
        // --- [metadata]
        case(Replace("creation_date = \"2024/01/01\"", "creation_date = 2024-01-01"), "2024-01-01", &["expected a string for `creation_date`, found datetime"]),
        case(Replace("maturity = \"production\"", "maturity = []"), "[]", &["expected a string for `maturity`, found array"]),
        case(Replace("integration = [\"endpoint\"]", "integration = 5"), "5\n", &["expected an array of strings for `integration`, found integer"]),
        case(Replace("updated_date = \"2024/01/02\"", "updated_date = 20240102"), "20240102", &["expected a string for `updated_date`, found integer"]),
        case(Replace("maturity = \"production\"", "min_stack_version = 8.3"), "8.3", &["expected a string for `min_stack_version`, found float"]),
        case(Replace("maturity = \"production\"", "deprecation_date = false"), "false", &["expected a string for `deprecation_date`, found boolean"]),
        case(Replace("maturity = \"production\"", "kibana_rule_id = \"not-a-uuid\""), "\"not-a-uuid\"", &["expected a UUID for `kibana_rule_id`", "saved-object id", "found \"not-a-uuid\""]),
        case(Replace("maturity = \"production\"", "kibana_rule_id = \"\""), "\"\"", &["expected a UUID for `kibana_rule_id`", "found \"\""]),
        case(Replace("maturity = \"production\"", "kibana_rule_id = \"{8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11}\""), "\"{8f2c", &["expected a UUID for `kibana_rule_id`"]),
        case(Replace("maturity = \"production\"", "kibana_rule_id = \"8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a1\""), "\"8f2c", &["expected a UUID for `kibana_rule_id`", "found \"8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a1\""]),
        case(Replace("maturity = \"production\"", "kibana_rule_id = 42"), "42", &["expected a string for `kibana_rule_id`, found integer"]),
        case(Replace("maturity = \"production\"", "kibana_rule_id = [\"8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11\"]"), "[\"8f2c", &["expected a string for `kibana_rule_id`, found array"]),
        // --- the file as a whole
        case(Whole(""), "", &["missing table [rule]"]),
        case(Whole("[metadata]\ncreation_date = \"2024/01/01\"\n"), "", &["missing table [rule]"]),
        case(Whole("rule = 5\n"), "5", &["expected a table for `rule`, found integer"]),
        case(Whole("metadata = [1]\n[rule]\n"), "[1]", &["expected a table for `metadata`, found array"]),
        case(Replace("name = \"Bad input rule\"", "name = \"Bad input rule"), "\n", &["invalid TOML", "string"]),
        case(Replace("severity = \"low\"", "severity = \"low\"\nseverity = \"high\""), "severity = \"high\"", &["invalid TOML", "duplicate key"]),
        case(Replace("[rule]\n", "[rule\n"), "\n", &["invalid TOML"]),
    ]
}

fn edit(base: &str, e: Edit) -> String {
    let key_line = |key: &str| {
        let start = base
            .find(&format!("\n{key} = "))
            .unwrap_or_else(|| panic!("base has no {key}"))
            + 1;
        let end = if key == "query" {
            let body = start + "query = '''".len();
            body + base[body..].find("'''").expect("query block ends") + 3
        } else {
            start + base[start..].find('\n').expect("line ends")
        };
        (start, end)
    };
    match e {
        Set(key, value) => {
            let (a, b) = key_line(key);
            format!("{}{key} = {value}{}", &base[..a], &base[b..])
        }
        Drop(key) => {
            let (a, b) = key_line(key);
            format!("{}{}", &base[..a], &base[b + 1..])
        }
        Add(line) => base.replacen(
            "\n[[rule.threat]]",
            &format!("{line}\n\n[[rule.threat]]"),
            1,
        ),
        NoThreat(line) => {
            let cut = base.find("\n[[rule.threat]]").expect("base has threat");
            format!("{}{line}\n", &base[..cut])
        }
        Replace(from, to) => {
            assert!(base.contains(from), "base has no {from:?}");
            base.replacen(from, to, 1)
        }
        Whole(text) => text.to_string(),
    }
}

/// Where `at` is in the edited text: its first occurrence from the edit on
/// (so a short value like `1` is found on the edited line, not earlier),
/// else from the start.
fn locate(text: &str, e: Edit, at: &str) -> Option<usize> {
    if at.is_empty() {
        return Some(0);
    }
    let anchor = match e {
        Set(key, _) => text.find(&format!("\n{key} = ")),
        Add(line) | NoThreat(line) => text.find(line),
        Replace(_, to) if !to.is_empty() => text.find(to),
        _ => None,
    }
    .unwrap_or(0);
    text[anchor..]
        .find(at)
        .map(|i| anchor + i)
        .or_else(|| text.find(at))
}

/// 1-based line and character column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

fn detectd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
}

/// `detectd check DIR` over the broken text (as `broken.toml`) and the good
/// rule (as `good.toml`).
fn check_with_good(broken: &[u8]) -> (tempfile::TempDir, PathBuf, Output) {
    check_with_good_named("broken.toml", broken)
}

/// [`check_with_good`] with the broken file named `name`.
fn check_with_good_named(name: &str, broken: &[u8]) -> (tempfile::TempDir, PathBuf, Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, broken).unwrap();
    std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
    let out = detectd().arg("check").arg(dir.path()).output().unwrap();
    (dir, path, out)
}

/// The assertions every broken file must pass: exit 1, the good rule clean,
/// the summary, and an error at `line:col` containing every fragment.
fn rejected(
    label: &str,
    path: &Path,
    out: &Output,
    line: usize,
    col: usize,
    says: &[&str],
) -> Result<(), String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fail = |what: String| Err(format!("{label}: {what}\n{stdout}{stderr}"));
    if out.status.code() != Some(1) {
        return fail(format!(
            "expected exit code 1, found {:?}",
            out.status.code()
        ));
    }
    if !stderr.is_empty() {
        return fail("expected nothing on stderr".into());
    }
    if !stdout.ends_with("1 rules ok, 1 failed\n") {
        return fail("expected the good rule ok and the broken one failed".into());
    }
    if stdout.contains("good.toml") {
        return fail("expected nothing reported against the good rule".into());
    }
    let prefix = format!("{}:{line}:{col}: error: ", path.display());
    let Some(at) = stdout.find(&prefix) else {
        return fail(format!("expected an error at {line}:{col}"));
    };
    let message = stdout[at + prefix.len()..].lines().next().unwrap_or("");
    for s in says {
        if !message.contains(s) {
            return fail(format!("message lacks {s:?}"));
        }
    }
    Ok(())
}

fn assert_rejected(label: &str, path: &Path, out: &Output, line: usize, col: usize, says: &[&str]) {
    if let Err(e) = rejected(label, path, out, line, col, says) {
        panic!("{e}");
    }
}

/// Every row of the matrix: `detectd check` fails the broken rule at the
/// offending value with a message naming the field, what was expected and
/// what was found, and still checks the good rule next to it clean.
#[test]
fn every_wrong_field_is_an_error_at_its_value_and_the_good_rule_stays_ok() {
    let base_check = check_with_good(BASE.as_bytes());
    assert_eq!(
        base_check.2.status.code(),
        Some(0),
        "the base rule itself is valid: {}",
        String::from_utf8_lossy(&base_check.2.stdout)
    );
    let cases = matrix();
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let text = edit(BASE, c.edit);
        let label = format!(
            "case {i} ({})",
            match c.edit {
                Set(k, v) => format!("{k} = {v}"),
                Drop(k) => format!("no {k}"),
                Add(l) | NoThreat(l) => l.to_string(),
                Replace(a, b) => format!("{a:?} -> {b:?}"),
                Whole(t) => format!("file {t:?}"),
            }
        );
        let offset = locate(&text, c.edit, c.at)
            .unwrap_or_else(|| panic!("{label}: {:?} not in\n{text}", c.at));
        let (line, col) = line_col(&text, offset);
        let (_dir, path, out) = check_with_good(text.as_bytes());
        if let Err(e) = rejected(&label, &path, &out, line, col, c.says) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} broken-rule cases rejected at their value", cases.len());
}

/// A misspelt key is a warning with a hint, not an error: the rule loads
/// (Kibana ignores unknown parameters too), and `check` still exits 0.
#[test]
fn a_misspelt_key_is_a_warning_with_a_hint() {
    let text = edit(BASE, Add("max_signal = 5"));
    let (_dir, path, out) = check_with_good(text.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let (line, col) = line_col(&text, text.find("5\n\n[[rule").unwrap());
    assert!(
        stdout.contains(&format!(
            "{}:{line}:{col}: warning: unknown field `max_signal` in [rule] is ignored (did you mean `max_signals`?)",
            path.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("2 rules ok, 0 failed\n"), "{stdout}");
}

/// `alert_suppression` is applied: a valid one loads without a word, a
/// broken one is an error at its table that says what is expected.
#[test]
fn alert_suppression_loads_and_a_broken_one_is_an_error_at_its_table() {
    let text = edit(
        BASE,
        Add("alert_suppression = { group_by = [\"host.name\"] }"),
    );
    let (_dir, _path, out) = check_with_good(text.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("2 rules ok, 0 failed\n"), "{stdout}");

    let text = edit(
        BASE,
        Add("alert_suppression = { group_by = [], duration = { value = 5, unit = \"d\" } }"),
    );
    let (_dir, path, out) = check_with_good(text.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let (line, col) = line_col(&text, text.find("{ group_by").unwrap());
    for message in [
        "error: expected 1 to 3 fields in `alert_suppression.group_by`, found 0",
        "error: expected `alert_suppression.duration` = {value = <at least 1>, unit = \"s\" | \"m\" | \"h\"}",
    ] {
        assert!(
            stdout.contains(&format!("{}:{line}:{col}: {message}", path.display())),
            "{message} in {stdout}"
        );
    }
    assert!(stdout.ends_with("1 rules ok, 1 failed\n"), "{stdout}");
}

/// Every type of Kibana's detection engine runs; any other `type` (a typo)
/// is an error that names them, never a rule silently skipped.
#[test]
fn an_unknown_type_is_an_error_naming_every_type() {
    let text = edit(BASE, Set("type", "\"indicator_match\""));
    let (_dir, path, out) = check_with_good(text.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let (line, col) = line_col(&text, text.find("\"indicator_match\"").unwrap());
    assert!(
        stdout.contains(&format!(
            "{}:{line}:{col}: error: expected `type` eql, query, saved_query, threshold, \
             threat_match, new_terms, esql, machine_learning, found \"indicator_match\"",
            path.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 rules ok, 1 failed\n"), "{stdout}");
}

/// Every error of a file is reported at once, each at its own line.
#[test]
fn all_errors_of_a_file_are_reported_together() {
    let mut text = edit(BASE, Set("interval", "\"0s\""));
    text = edit(&text, Set("max_signals", "0"));
    text = edit(&text, Set("severity", "\"urgent\""));
    let (_dir, path, out) = check_with_good(text.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for (at, says) in [
        ("\"0s\"", "invalid `interval`"),
        (
            "0\nname",
            "expected `max_signals` between 1 and 1000, found 0",
        ),
        ("\"urgent\"", "found \"urgent\""),
    ] {
        let (line, col) = line_col(&text, text.find(at).unwrap());
        assert!(
            stdout.contains(&format!("{}:{line}:{col}: error: ", path.display()))
                && stdout.contains(says),
            "{at}: {stdout}"
        );
    }
}

/// A rule file that is not UTF-8 is an error at the first invalid byte
/// (TOML files must be UTF-8), not a crash and not a silent skip.
#[test]
fn a_non_utf8_rule_file_is_an_error_at_the_bad_byte() {
    let mut bytes = edit(BASE, Set("name", "\"Bad \u{e9}input rule\"")).into_bytes();
    // Latin-1 é instead of UTF-8 C3 A9.
    let at = bytes.windows(2).position(|w| w == [0xC3, 0xA9]).unwrap();
    bytes.splice(at..at + 2, [0xE9]);
    let text_before = String::from_utf8(bytes[..at].to_vec()).unwrap();
    let (line, col) = line_col(&text_before, text_before.len());
    let (_dir, path, out) = check_with_good(&bytes);
    assert_rejected(
        "non-UTF-8",
        &path,
        &out,
        line,
        col,
        &["expected UTF-8", "found", "0xe9"],
    );
}

/// An empty file, and one of only whitespace and comments, lack `[rule]`.
#[test]
fn empty_rule_files_are_errors() {
    for text in ["", "\n\n   \n", "# just a comment\n"] {
        let (_dir, path, out) = check_with_good(text.as_bytes());
        assert_rejected(
            &format!("{text:?}"),
            &path,
            &out,
            1,
            1,
            &["missing table [rule]"],
        );
    }
}

/// Two files with the same `rule_id`: the second (in path order) fails at
/// its `rule_id`, naming the first; the first still loads.
#[test]
fn a_duplicate_rule_id_fails_the_second_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.toml");
    let second = dir.path().join("b.toml");
    std::fs::write(&first, BASE).unwrap();
    std::fs::write(
        &second,
        BASE.replace("name = \"Bad input rule\"", "name = \"Copy\""),
    )
    .unwrap();
    let out = detectd().arg("check").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let (line, col) = line_col(BASE, BASE.find("\"bad-input-0001\"").unwrap());
    assert!(
        stdout.contains(&format!(
            "{}:{line}:{col}: error: duplicate rule_id \"bad-input-0001\": already used by {}",
            second.display(),
            first.display()
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&format!("{}:", first.display())),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 rules ok, 1 failed\n"), "{stdout}");
}

/// A 10 MB rule file: valid (a huge `note`) it loads; with a bad value
/// after 200,000 lines the error points at the right line. Neither crashes, and the
/// diagnostic line is cut to a window, not printed whole.
#[test]
fn a_ten_megabyte_rule_file_loads_or_fails_at_the_right_line() {
    let big = "x".repeat(10 * 1024 * 1024);
    let valid = edit(BASE, Set("note", "\"BIG\"")).replace("BIG", &big);
    let (_dir, _path, out) = check_with_good(valid.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        &stdout[..stdout.len().min(500)]
    );
    assert!(stdout.ends_with("2 rules ok, 0 failed\n"));

    // 200,000 comment lines, then the rule with a bad value
    let lines: String = (0..200_000)
        .map(|i| format!("# filler line {i} ..........................................\n"))
        .collect();
    let text = format!("{lines}{}", edit(BASE, Set("max_signals", "0")));
    assert!(text.len() > 10_000_000);
    let (line, col) = line_col(&text, text.find("0\nname").unwrap());
    let (_dir, path, out) = check_with_good(text.as_bytes());
    assert!(line > 200_000, "{line}");
    assert_rejected("10 MB", &path, &out, line, col, &["found 0"]);
    assert!(
        out.stdout.len() < 10_000,
        "the output does not echo the file"
    );

    // one 10 MB line with the error at its end: the caret line is a window
    let text = edit(BASE, Set("note", "\"BIG\" + 1")).replace("BIG", &big);
    let (_dir, path, out) = check_with_good(text.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        &stdout[..stdout.len().min(500)]
    );
    assert!(
        stdout.contains(&format!("{}:", path.display())),
        "{}",
        &stdout[..stdout.len().min(500)]
    );
    assert!(
        out.stdout.len() < 10_000,
        "the long line is cut: {} bytes",
        out.stdout.len()
    );
}

/// `detectd run --once` over a folder with several broken rules and one
/// good rule: the good rule runs (a `rule run finished` line for its id,
/// and an execution record in the cluster), every broken file is logged
/// as invalid with its `file:line:col`, and the exit code is 0 as the
/// README documents (broken files do not count as failed runs; `detectd
/// check` is their gate).
#[test]
fn run_once_runs_the_good_rule_and_reports_the_broken_ones() {
    let Some(url) = cluster_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let tag = format!("{}-{}", std::process::id(), rand_tag());
    let good_id = format!("it-badrules-good-{tag}");
    std::fs::write(
        rules.join("good.toml"),
        GOOD.replace("good-rule-0001", &good_id),
    )
    .unwrap();
    let broken: Vec<(&str, String, &str)> = vec![
        (
            "bad_interval.toml",
            edit(BASE, Set("interval", "\"5 minutes\"")),
            "\"5 minutes\"",
        ),
        (
            "bad_max_signals.toml",
            edit(BASE, Set("max_signals", "10000000")),
            "10000000",
        ),
        (
            "bad_query.toml",
            edit(BASE, Set("query", "'''\nprocess where\n'''")),
            "\n'''",
        ),
        (
            "bad_type.toml",
            edit(BASE, Set("type", "\"eqll\"")),
            "\"eqll\"",
        ),
        ("empty.toml", String::new(), ""),
    ];
    for (name, text, _) in &broken {
        std::fs::write(rules.join(name), text).unwrap();
    }
    std::fs::write(rules.join("latin1.toml"), b"[rule]\nname = \"caf\xe9\"\n").unwrap();
    let space = AlertsSpace::new(format!("it-badrules-{tag}"));
    let (state, executions) = (
        format!("it-badrules-state-{tag}"),
        format!("it-badrules-exec-{tag}"),
    );
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
             [indices]\nstate = {state:?}\nexecutions = {executions:?}\n\
             [log]\nformat = \"json\"\n",
            rules = rules.display().to_string(),
            space = space.id,
        ),
    )
    .unwrap();
    let out = detectd()
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = json_lines_of(&stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let runs: Vec<&serde_json::Value> = log
        .iter()
        .filter(|l| l["message"] == "rule run finished")
        .collect();
    assert_eq!(runs.len(), 1, "only the good rule ran: {runs:?}");
    assert_eq!(runs[0]["rule_id"], good_id.as_str());
    assert_ne!(runs[0]["status"], "failed", "{}", runs[0]);

    let invalid: Vec<&serde_json::Value> = log
        .iter()
        .filter(|l| l["message"] == "rule file is invalid")
        .collect();
    assert_eq!(invalid.len(), broken.len() + 1, "{stderr}");
    for (name, text, at) in &broken {
        let path = rules.join(name);
        let (line, col) = line_col(text, locate(text, Whole(""), at).unwrap());
        let entry = invalid
            .iter()
            .find(|l| l["path"] == path.display().to_string().as_str())
            .unwrap_or_else(|| panic!("{name} not reported: {stderr}"));
        let diagnostics = entry["diagnostics"].as_str().unwrap_or("");
        assert!(
            diagnostics.contains(&format!("{}:{line}:{col}: error:", path.display())),
            "{name}: {diagnostics}"
        );
    }
    let latin1 = rules.join("latin1.toml").display().to_string();
    assert!(
        invalid.iter().any(|l| l["path"] == latin1.as_str()
            && l["diagnostics"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("{latin1}:2:12: error: expected UTF-8")))),
        "{stderr}"
    );

    // the run left its record in the cluster
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = detectd::config::cluster::ClusterSettings {
        urls: Some(vec![url.clone()]),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let c = rt
        .block_on(detectd::cluster::Cluster::connect(&settings))
        .unwrap();
    let send = |method, path: &str| {
        let raw = rt
            .block_on(c.send_raw(method, path, &[], None, None))
            .unwrap();
        String::from_utf8_lossy(&raw.body).into_owned()
    };
    use elasticsearch::http::Method;
    send(Method::Post, &format!("/{executions}/_refresh"));
    let records = send(Method::Get, &format!("/{executions}/_search"));
    assert!(
        records.contains(&good_id),
        "execution record stored: {records}"
    );
    for index in [&state, &executions] {
        send(Method::Delete, &format!("/{index}*"));
    }
    for path in space.cleanup_paths() {
        send(Method::Delete, &path);
    }
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0)
}

/// The base rule as a line of a Kibana export: each key with its JSON text,
/// so a case can replace exactly one value.
const BASE_JSON: &[(&str, &str)] = &[
    ("id", r#""0b5a8f9e-6a43-4b8e-9c1e-2f3d4c5b6a79""#),
    ("updated_at", r#""2024-01-02T08:00:00.000Z""#),
    ("updated_by", r#""bob""#),
    ("created_at", r#""2024-01-01T10:00:00.000Z""#),
    ("created_by", r#""alice""#),
    ("name", r#""Bad input rule""#),
    ("tags", r#"["Test"]"#),
    ("interval", r#""5m""#),
    ("enabled", "true"),
    ("revision", "3"),
    ("description", r#""A rule for the bad-input matrix""#),
    ("risk_score", "21"),
    ("severity", r#""low""#),
    ("output_index", r#""""#),
    ("author", r#"["Elastic"]"#),
    ("false_positives", "[]"),
    ("from", r#""now-9m""#),
    ("rule_id", r#""bad-input-json-0001""#),
    ("max_signals", "100"),
    ("risk_score_mapping", "[]"),
    ("severity_mapping", "[]"),
    (
        "threat",
        r#"[{"framework":"MITRE ATT&CK","tactic":{"id":"TA0002","name":"Execution","reference":"https://attack.mitre.org/tactics/TA0002/"},"technique":[]}]"#,
    ),
    ("to", r#""now""#),
    ("references", "[]"),
    ("version", "1"),
    ("exceptions_list", "[]"),
    ("immutable", "false"),
    ("rule_source", r#"{"type":"internal"}"#),
    ("related_integrations", "[]"),
    ("required_fields", "[]"),
    ("setup", r#""""#),
    ("type", r#""eql""#),
    ("language", r#""eql""#),
    ("index", r#"["logs-endpoint.events.*"]"#),
    ("query", r#""process where process.name == \"cmd.exe\"""#),
    ("filters", "[]"),
    ("actions", "[]"),
];

/// What to do to the base export line.
#[derive(Clone, Copy)]
enum JsonEdit {
    /// Replace the value of a key with this JSON text.
    SetKey(&'static str, &'static str),
    /// Remove the key.
    DropKey(&'static str),
    /// The whole line.
    Line(&'static str),
}

use JsonEdit::{DropKey, Line, SetKey};

fn json_line(e: JsonEdit) -> String {
    if let Line(line) = e {
        return line.to_string();
    }
    let members: Vec<String> = BASE_JSON
        .iter()
        .filter_map(|(k, v)| match e {
            DropKey(key) if key == *k => None,
            SetKey(key, value) if key == *k => Some(format!("\"{k}\":{value}")),
            _ => Some(format!("\"{k}\":{v}")),
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

/// Every identity field of an exported rule, and a sample of the fields it
/// shares with TOML, with wrong values: `detectd check` fails the rule at the
/// value in the export line (`export.ndjson:1:col`), with a message naming
/// the field, what was expected and what was found; the good TOML rule next
/// to it stays ok.
#[test]
fn every_wrong_field_of_an_exported_rule_is_an_error_at_its_value() {
    let base = format!("{}\n", json_line(SetKey("revision", "3")));
    let (_dir, _path, out) = check_with_good_named("broken.ndjson", base.as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "the base export line itself is valid: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cases: Vec<(JsonEdit, &str, &[&str])> = vec![
        // --- identity
        (
            SetKey("id", r#""rule-1""#),
            r#""rule-1""#,
            &[
                "expected a UUID for `id`",
                "saved-object id",
                r#"found "rule-1""#,
            ],
        ),
        (
            SetKey("id", r#""""#),
            r#""""#,
            &["expected a UUID for `id`", r#"found """#],
        ),
        (
            SetKey("id", r#""0b5a8f9e-6a43-4b8e-9c1e-2f3d4c5b6a7""#),
            r#""0b5a"#,
            &["expected a UUID for `id`"],
        ),
        (
            SetKey("id", "42"),
            "42",
            &["expected a string for `id`, found integer"],
        ),
        (
            SetKey("revision", "-1"),
            "-1",
            &["expected a `revision` of 0 or more, found -1"],
        ),
        (
            SetKey("revision", r#""3""#),
            r#""3""#,
            &["expected an integer for `revision`, found string"],
        ),
        (
            SetKey("revision", "1.5"),
            "1.5",
            &["expected an integer for `revision`, found float"],
        ),
        (
            SetKey("created_at", r#""yesterday""#),
            r#""yesterday""#,
            &[
                "expected an RFC 3339 timestamp for `created_at`",
                r#"found "yesterday""#,
            ],
        ),
        (
            SetKey("created_at", r#""2024-01-01""#),
            r#""2024-01-01""#,
            &["expected an RFC 3339 timestamp for `created_at`"],
        ),
        (
            SetKey("updated_at", "1714557600000"),
            "1714557600000",
            &["expected a string for `updated_at`, found integer"],
        ),
        (
            SetKey("created_by", r#"["alice"]"#),
            r#"["alice"]"#,
            &["expected a string for `created_by`, found array"],
        ),
        (
            SetKey("updated_by", "{}"),
            "{}",
            &["expected a string for `updated_by`, found object"],
        ),
        // --- shared with TOML, positions in the JSON line
        (
            DropKey("rule_id"),
            "{",
            &["missing required field `rule_id` in the exported rule"],
        ),
        (
            SetKey("rule_id", "42"),
            "42",
            &["expected a string for `rule_id`, found integer"],
        ),
        (
            SetKey("name", r#""""#),
            r#""""#,
            &["expected a non-empty `name`"],
        ),
        (
            SetKey("type", r#""eqll""#),
            r#""eqll""#,
            &["`type`", "expected", r#"found "eqll""#],
        ),
        (
            SetKey("language", r#""kuery""#),
            r#""kuery""#,
            &[r#"expected language "eql""#, r#"found "kuery""#],
        ),
        (
            SetKey("query", r#""""#),
            r#""""#,
            &["expected an EQL query, found an empty string"],
        ),
        (
            SetKey("query", r#""process where process.name === \"cmd.exe\"""#),
            r#"= \"cmd"#,
            &["expected an expression, found [=]"],
        ),
        (
            SetKey("query", r#""process where\n  nosuchfn(process.name)""#),
            "nosuchfn",
            &["unknown function [nosuchfn]"],
        ),
        (
            SetKey("index", "[]"),
            "[]",
            &["expected at least one index pattern in `index`, found none"],
        ),
        (
            SetKey("from", r#""now+5m""#),
            r#""now+5m""#,
            &["expected `from` before `to`"],
        ),
        (
            SetKey("interval", r#""0s""#),
            r#""0s""#,
            &[
                "invalid `interval`",
                "expected a positive duration, found `0s`",
            ],
        ),
        (
            SetKey("max_signals", "0"),
            "0",
            &["expected `max_signals` between 1 and 1000, found 0"],
        ),
        (
            SetKey("max_signals", "10000"),
            "10000",
            &["expected `max_signals` between 1 and 1000, found 10000"],
        ),
        (
            SetKey("risk_score", "101"),
            "101",
            &["expected `risk_score` between 0 and 100, found 101"],
        ),
        (
            SetKey("severity", r#""urgent""#),
            r#""urgent""#,
            &[r#"found "urgent""#],
        ),
        (
            SetKey("enabled", r#""yes""#),
            r#""yes""#,
            &["expected a boolean for `enabled`, found string"],
        ),
        (
            SetKey("tags", "[1]"),
            "[1]",
            &["expected strings in `tags`, found integer at position 1"],
        ),
        (
            SetKey("references", r#"[{"url":"x"}]"#),
            r#"[{"url""#,
            &["expected strings in `references`, found object at position 1"],
        ),
        (
            SetKey("version", "0"),
            "0",
            &["expected a positive `version`, found 0"],
        ),
        (
            SetKey("threat", r#""execution""#),
            r#""execution""#,
            &["expected an array of objects for `threat`, found string"],
        ),
        (
            SetKey("threat", r#"[{"framework":"MITRE ATT&CK"}]"#),
            r#"{"framework""#,
            &["invalid `threat` entry 1", "missing field `tactic`"],
        ),
        (
            SetKey("filters", r#"[{"query":{"no_such_query":{}}}]"#),
            r#"[{"query""#,
            &["invalid `filters`", "no_such_query"],
        ),
        (
            SetKey(
                "exceptions_list",
                r#"[{"id":"x","list_id":"","type":"detection","namespace_type":"single"}]"#,
            ),
            r#"[{"id""#,
            &["invalid exceptions_list[0]: expected a non-empty string for `list_id`"],
        ),
        // --- the line as a whole
        (
            Line(r#"{"rule_id": "x","#),
            ",",
            &["invalid JSON", "EOF while parsing"],
        ),
        (
            Line(r#"{"rule_id": "x" "name": "y"}"#),
            r#""name""#,
            &["invalid JSON", "expected `,` or `}`"],
        ),
        (
            Line("[1,2]"),
            "[1,2]",
            &["expected a JSON object (one rule per line), found an array"],
        ),
        (
            Line("{}"),
            "{",
            &["missing required field `type` in the exported rule"],
        ),
    ];
    let mut failures = Vec::new();
    for (i, (e, at, says)) in cases.iter().enumerate() {
        let line = json_line(*e);
        let label = format!(
            "case {i} ({})",
            match e {
                SetKey(k, v) => format!("{k}: {v}"),
                DropKey(k) => format!("no {k}"),
                Line(l) => format!("line {l}"),
            }
        );
        let anchor = match e {
            SetKey(k, _) => line.find(&format!("\"{k}\":")).unwrap(),
            _ => 0,
        };
        let Some(offset) = line[anchor..].find(at).map(|o| anchor + o) else {
            panic!("{label}: {at:?} not in {line}");
        };
        let col = line[..offset].chars().count() + 1;
        let (_dir, path, out) =
            check_with_good_named("broken.ndjson", format!("{line}\n").as_bytes());
        if let Err(e) = rejected(&label, &path, &out, 1, col, says) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} broken exported-rule cases rejected at their value",
        cases.len()
    );
}
