//! Tier 3: every EQL rule of the detection-rules corpus loads, and the rules
//! shipped in `rules/` check clean.

use std::path::{Path, PathBuf};

use detectd::rule::{check_paths, load_file, CheckSummary, LoadOutcome, Severity};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn detection_rules_corpus_loads() {
    // The corpus lives beside the repo in `shared/` (CI clones main with
    // shared/ next to it).
    let corpus = manifest_dir()
        .parent()
        .map(|p| p.join("shared").join("detection-rules-eql"))
        .unwrap_or_default();
    if !corpus.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("detection-rules corpus missing at {}", corpus.display());
        }
        eprintln!(
            "notice: skipping corpus test, {} not found",
            corpus.display()
        );
        return;
    }
    let mut out = Vec::new();
    let summary = check_paths(&[corpus], &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        summary,
        CheckSummary {
            ok: 1081,
            ..CheckSummary::default()
        },
        "{out}"
    );
    assert_eq!(out, "1081 rules ok, 0 failed\n");
}

/// The other half of the public corpus: every rule of every type loads —
/// query (KQL and Lucene, with their filters, exception-list references,
/// overrides), threshold, new_terms, threat_match, ES|QL and ML — and the
/// ES|QL and ML rules say the cluster they need.
#[test]
fn detection_rules_other_corpus_query_rules_load() {
    let corpus = manifest_dir()
        .parent()
        .map(|p| p.join("shared").join("detection-rules-other"))
        .unwrap_or_default();
    if !corpus.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("detection-rules corpus missing at {}", corpus.display());
        }
        eprintln!(
            "notice: skipping corpus test, {} not found",
            corpus.display()
        );
        return;
    }
    let mut out = Vec::new();
    let summary = check_paths(&[corpus], &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!((summary.ok, summary.failed), (1111, 0), "{out}");
    assert_eq!(summary.skipped, 0, "{out}");
    for (t, n) in [("new_terms", 0), ("threat_match", 0)] {
        assert_eq!(summary.not_supported.get(t), n, "{t}");
    }
    // ES|QL and ML rules load, each with a note of the cluster it needs.
    for (t, n) in [("esql", 212), ("machine_learning", 106)] {
        assert_eq!(summary.need_elasticsearch.get(t), n, "{t}");
    }
    let needs = out
        .lines()
        .filter(|l| l.contains(": note: needs Elasticsearch"))
        .count();
    assert_eq!(needs, 318, "{out}");
    assert!(
        out.ends_with(
            "1111 rules ok, 0 failed; Elasticsearch only: esql 212, machine_learning 106\n"
        ),
        "{}",
        out.lines().last().unwrap_or_default()
    );
    // No warnings: alert_suppression (23 rules) is applied.
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains(": warning: ")).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    // The 9 threat_match rules load (no longer skipped).
    assert_eq!(summary.not_supported.get("threat_match"), 0);
}

#[test]
fn shipped_rules_check_clean() {
    let mut out = Vec::new();
    let summary = check_paths(&[manifest_dir().join("rules")], &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(summary.failed, 0, "{out}");
    assert_eq!(summary.skipped, 0, "{out}");
    assert!(summary.ok >= 1, "{out}");
}

/// The founding rule as published in version 4 (see reference/seed-rule.md).
#[test]
fn founding_rule_is_version_4() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rules/execution_scheduled_task_powershell.toml");
    let file = load_file(&path);
    let LoadOutcome::Loaded { rule, warnings } = file.outcome else {
        panic!("founding rule does not load: {:?}", file.outcome);
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(rule.rule_id, "5cd55388-a19c-47c7-8ec4-f41656c2fded");
    assert_eq!(rule.name, "Outbound Scheduled Task Activity via PowerShell");
    assert_eq!(rule.version, Some(4));
    assert_eq!(
        rule.index,
        vec!["winlogbeat-*", "logs-endpoint.events.*", "logs-windows.*"]
    );
    assert_eq!(rule.schedule.interval.as_secs(), 300);
    assert_eq!(rule.schedule.lookback().as_secs(), 540);
    assert_eq!(rule.schedule.additional_lookback().as_secs(), 240);
    assert_eq!(rule.max_signals, 100);
    assert_eq!((rule.severity, rule.risk_score), (Severity::Medium, 47));
    assert_eq!(
        rule.tags,
        vec![
            "Elastic",
            "Host",
            "Windows",
            "Threat Detection",
            "Execution"
        ]
    );
    assert_eq!(rule.timestamp_override, None);
    assert!(rule
        .query_text()
        .starts_with("sequence by host.id, process.entity_id with maxspan = 5s\n"));
    assert!(rule
        .query_text()
        .contains("[library where dll.name : \"taskschd.dll\""));
    assert!(rule.query_text().contains("\"powershell_ise.exe\")]"));
    assert!(rule
        .query_text()
        .contains("not destination.address in (\"127.0.0.1\", \"::1\")]"));
    assert_eq!(rule.threat.len(), 1);
    let threat = &rule.threat[0];
    assert_eq!(threat.framework, "MITRE ATT&CK");
    assert_eq!(
        (threat.tactic.id.as_str(), threat.tactic.name.as_str()),
        ("TA0002", "Execution")
    );
    assert_eq!(threat.technique.len(), 1);
    assert_eq!(threat.technique[0].id, "T1053");
    assert_eq!(threat.technique[0].subtechnique[0].id, "T1053.005");
    assert_eq!(rule.author, vec!["Elastic"]);
    assert_eq!(rule.license.as_deref(), Some("Elastic License v2"));
}

/// A folder with a broken file and a good one: all errors of
/// the broken file are printed with path:line:col and a caret, then the
/// summary.
#[test]
fn check_reports_all_errors_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(
        manifest_dir().join("rules/execution_scheduled_task_powershell.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("a_good.toml"), &good).unwrap();
    std::fs::write(
        dir.path().join("b_broken.toml"),
        "[rule]\nrule_id = \"x\"\nname = \"\"\ndescription = \"d\"\ntype = \"eql\"\n\
         index = [\"logs-*\"]\nfrom = \"now-9\"\nmax_signals = 0\nseverity = \"medium\"\n\
         risk_score = 47\nquery = '''\nprocess where ~\n'''\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "not a rule").unwrap();
    let missing = dir.path().join("nope");

    let mut out = Vec::new();
    let summary = check_paths(&[dir.path().to_path_buf(), missing.clone()], &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        summary,
        CheckSummary {
            ok: 1,
            failed: 2,
            ..CheckSummary::default()
        },
        "{out}"
    );
    let broken = dir.path().join("b_broken.toml").display().to_string();
    let headers: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(": error: ") || l.contains(": note: "))
        .collect();
    assert_eq!(
        headers,
        vec![
            format!("{broken}:3:8: error: expected a non-empty `name`, found an empty string"),
            format!("{broken}:7:8: error: invalid `from`: expected date math like `now-9m`, found `now-9`"),
            format!("{broken}:8:15: error: expected `max_signals` between 1 and 1000, found 0"),
            format!("{broken}:12:15: error: {}", headers[3].rsplit(": error: ").next().unwrap()),
            format!("{}: error: {}", missing.display(), headers[4].rsplit(": error: ").next().unwrap()),
        ],
        "{out}"
    );
    assert!(headers[4].contains("cannot read rule file"), "{out}");
    assert!(
        out.contains("8 | max_signals = 0\n  |               ^\n"),
        "{out}"
    );
    assert!(
        out.contains("12 | process where ~\n   |               ^\n"),
        "{out}"
    );
    assert!(out.ends_with("1 rules ok, 2 failed\n"), "{out}");
}

#[test]
fn duplicate_rule_ids_fail_the_later_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(
        manifest_dir().join("rules/execution_scheduled_task_powershell.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("a.toml"), &good).unwrap();
    std::fs::write(dir.path().join("b.toml"), &good).unwrap();
    let mut out = Vec::new();
    let summary = check_paths(&[dir.path().to_path_buf()], &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!((summary.ok, summary.failed), (1, 1), "{out}");
    let line = good.lines().position(|l| l.starts_with("rule_id")).unwrap() + 1;
    assert!(
        out.contains(&format!("b.toml:{line}:11: error: duplicate rule_id \"5cd55388-a19c-47c7-8ec4-f41656c2fded\": already used by ")),
        "{out}"
    );
}

#[test]
fn unknown_fields_are_warnings_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(
        manifest_dir().join("rules/execution_scheduled_task_powershell.toml"),
    )
    .unwrap();
    let text = good.replace("max_signals = 100", "max_signal = 100");
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, &text).unwrap();
    let mut out = Vec::new();
    let summary = check_paths(std::slice::from_ref(&path), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!((summary.ok, summary.failed), (1, 0), "{out}");
    let line = text
        .lines()
        .position(|l| l.starts_with("max_signal ="))
        .unwrap()
        + 1;
    assert!(
        out.starts_with(&format!(
            "{}:{line}:14: warning: unknown field `max_signal` in [rule] is ignored (did you mean `max_signals`?)\n",
            path.display()
        )),
        "{out}"
    );
    assert!(out.ends_with("1 rules ok, 0 failed\n"), "{out}");
}
