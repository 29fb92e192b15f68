//! Black-box `detectd check`: exit codes, diagnostics and the summary line.

use std::path::Path;
use std::process::Command;

fn detectd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn shipped_rules_check_clean() {
    let out = detectd().args(["check", "rules"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.ends_with(" rules ok, 0 failed\n"), "{stdout}");
}

#[test]
fn default_folder_is_rules() {
    let out = detectd().arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.ends_with(" rules ok, 0 failed\n"), "{stdout}");
}

#[test]
fn broken_rule_exits_1_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[rule]\nrule_id = \"x\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
         index = [\"logs-*\"]\ninterval = \"5x\"\nseverity = \"medium\"\nrisk_score = 470\n\
         query = '''process where true'''\n",
    )
    .unwrap();
    let out = detectd().arg("check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let p = path.display();
    assert!(
        stdout.contains(&format!("{p}:7:12: error: invalid `interval`")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{p}:9:14: error: expected `risk_score` between 0 and 100, found 470"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("9 | risk_score = 470\n  |              ^^^\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 rules ok, 1 failed\n"), "{stdout}");
}

#[test]
fn missing_path_fails() {
    let missing = Path::new("/nonexistent/detectd-rules");
    let out = detectd().arg("check").arg(missing).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("/nonexistent/detectd-rules: error: cannot read rule file"),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 rules ok, 1 failed\n"), "{stdout}");
}

/// The hand-written Kibana export (`tests/fixtures/kibana_export.ndjson`):
/// the founding rule, two custom EQL rules (one disabled), a KQL rule with
/// an exception list and a Slack action, the list, its item, the connector
/// and the export summary.
fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kibana_export.ndjson")
}

/// One line of the fixture as it is in the file.
fn fixture_line(n: usize) -> String {
    std::fs::read_to_string(fixture())
        .unwrap()
        .lines()
        .nth(n - 1)
        .unwrap()
        .to_string()
}

#[test]
fn a_kibana_export_checks_rule_by_rule_with_notes_at_their_lines() {
    let out = detectd()
        .args(["check", "tests/fixtures/kibana_export.ndjson"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // the rule with a Slack connector action is told its action will not run
    let (warning, rest) = stdout
        .split_once("\ntests/fixtures/kibana_export.ndjson:5:")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        warning.starts_with(
            "tests/fixtures/kibana_export.ndjson:4:955: warning: 1 Kibana connector action(s): \
             detectd cannot call Kibana's connectors"
        ),
        "{warning}"
    );
    assert_eq!(
        rest,
        " note: skipped: 1 exception list and 1 exception \
         list item of a Kibana export: not rules: the exception lists the rules' \
         `exceptions_list` can name\n\
         tests/fixtures/kibana_export.ndjson:7: note: skipped: 1 action connector of a Kibana \
         export: detectd runs no Kibana rule actions\n\
         4 rules ok, 0 failed, 2 skipped\n"
    );
}

/// A folder is walked for `*.ndjson` exports beside `*.toml` rules.
#[test]
fn folders_hold_exports_beside_toml_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(), dir.path().join("export.ndjson")).unwrap();
    std::fs::write(
        dir.path().join("other.toml"),
        "[rule]\nrule_id = \"other\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
         index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 1\nquery = 'any where true'\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.json"), "not a rule file").unwrap();
    let out = detectd().arg("check").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.ends_with("\n5 rules ok, 0 failed, 2 skipped\n"),
        "{stdout}"
    );
}

/// An error in an exported rule is shown like a TOML one: `file:line:col`,
/// the line (cut to a window around the value) and a caret under it; an
/// error in the query points inside the JSON string.
#[test]
fn an_error_in_an_exported_rule_has_line_col_and_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.ndjson");
    let second = fixture_line(2)
        .replace("\"risk_score\":73", "\"risk_score\":730")
        .replace(
            "process.name : \\\"certutil.exe\\\"",
            "process.name :: \\\"certutil.exe\\\"",
        );
    std::fs::write(&path, format!("{}\n{second}\n", fixture_line(1))).unwrap();
    let out = detectd().arg("check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let p = path.display();
    let col = |needle: &str| second[..second.find(needle).unwrap()].chars().count() + 1;
    let risk = col("730");
    assert!(
        stdout.contains(&format!(
            "{p}:2:{risk}: error: expected `risk_score` between 0 and 100, found 730\n"
        )),
        "{stdout}"
    );
    let colon = col(":: \\\"certutil") + 1;
    assert!(
        stdout.contains(&format!("{p}:2:{colon}: error: ")),
        "the query error points at the second `:` inside the JSON string: {stdout}"
    );
    assert!(
        stdout.contains("\"risk_score\":730,") && stdout.contains("  | "),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 rules ok, 1 failed\n"), "{stdout}");
}

/// The founding rule in `rules/` and in an export is the same `rule_id`:
/// the later one (in walk order) fails at its `rule_id`, naming the first.
#[test]
fn the_same_rule_in_toml_and_in_an_export_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("founding.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("rules/execution_scheduled_task_powershell.toml"),
        &toml,
    )
    .unwrap();
    let export = dir.path().join("kibana.ndjson");
    std::fs::write(&export, format!("{}\n", fixture_line(1))).unwrap();
    let out = detectd().arg("check").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let col = fixture_line(1).find("\"5cd55388").unwrap() + 1;
    assert!(
        stdout.contains(&format!(
            "{}:1:{col}: error: duplicate rule_id \"5cd55388-a19c-47c7-8ec4-f41656c2fded\": \
             already used by {}\n",
            export.display(),
            toml.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 rules ok, 1 failed\n"), "{stdout}");
}

/// Two rules claiming the same Kibana rule (a TOML `kibana_rule_id` and an
/// export's `id`) would write alerts with the same ids: the later fails.
#[test]
fn two_rules_with_one_kibana_id_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = "c2d7e0b4-1f8a-4e6c-b3d5-7a9f0e2c4b61"; // line 2 of the fixture
    let toml = dir.path().join("a.toml");
    std::fs::write(
        &toml,
        format!(
            "[metadata]\nkibana_rule_id = \"{id}\"\n\n[rule]\nrule_id = \"other\"\nname = \"n\"\n\
             description = \"d\"\ntype = \"eql\"\nindex = [\"logs-*\"]\nseverity = \"low\"\n\
             risk_score = 1\nquery = 'any where true'\n"
        ),
    )
    .unwrap();
    let export = dir.path().join("b.ndjson");
    std::fs::copy(fixture(), &export).unwrap();
    let out = detectd().arg("check").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:2:7: error: duplicate Kibana rule id \"{id}\": already used by {} \
             (alert ids would collide)\n",
            export.display(),
            toml.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("4 rules ok, 1 failed, 2 skipped\n"),
        "{stdout}"
    );
}

/// An export that is not UTF-8 fails as a whole, at the first bad byte.
#[test]
fn a_non_utf8_export_fails_at_the_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.ndjson");
    let mut bytes = format!("{}\n{{\"name\":\"", fixture_line(1)).into_bytes();
    bytes.extend([0xff, b'"', b'}', b'\n']);
    std::fs::write(&path, bytes).unwrap();
    let out = detectd().arg("check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:2:10: error: expected UTF-8 text (JSON files must be UTF-8), found invalid byte 0xff\n",
            path.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 rules ok, 1 failed\n"), "{stdout}");
}

fn query_rule(rule_id: &str, query: &str, extra: &str) -> String {
    format!(
        "[rule]\nrule_id = \"{rule_id}\"\nname = \"n\"\ndescription = \"d\"\ntype = \"query\"\n\
         index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\nquery = '{query}'\n{extra}"
    )
}

/// A KQL error is shown like an EQL one: file, line, column, the line and
/// a caret under the place in the query.
#[test]
fn a_bad_kql_query_is_an_error_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, query_rule("bad", "user.name:(admin or", "")).unwrap();
    let out = detectd()
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("{}:9:29: error: invalid KQL:", path.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("9 | query = 'user.name:(admin or'\n  |                             ^"),
        "{stdout}"
    );
}

/// `--exceptions`: each rule's lists are found in the folder; a missing
/// list fails its rule only, at its `exceptions_list`.
#[test]
fn exceptions_are_resolved_against_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let reference = |list_id: &str| {
        format!(
            "[[rule.exceptions_list]]\nid = \"x\"\nlist_id = \"{list_id}\"\n\
             namespace_type = \"single\"\ntype = \"detection\"\n"
        )
    };
    std::fs::write(
        dir.path().join("a_found.toml"),
        query_rule("found", "a:b", &reference("admin-tools")),
    )
    .unwrap();
    let missing = dir.path().join("b_missing.toml");
    std::fs::write(
        &missing,
        query_rule("missing", "a:b", &reference("nowhere")),
    )
    .unwrap();
    let lists = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exceptions");
    let out = detectd()
        .args(["check", "--exceptions", lists.to_str().unwrap()])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:10:1: error: exception list not found in the exception lists folder: `nowhere` (single)",
            missing.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 rules ok, 1 failed\n"), "{stdout}");

    // Without --exceptions the references are checked in shape only.
    let out = detectd().arg("check").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("2 rules ok, 0 failed\n"), "{stdout}");
}

/// A broken exception file is an error of its own (exit 1), with its line.
#[test]
fn a_broken_exception_file_fails_check() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("r.toml"), query_rule("r", "a:b", "")).unwrap();
    let lists = tempfile::tempdir().unwrap();
    let broken = lists.path().join("broken.ndjson");
    std::fs::write(
        &broken,
        "{\"list_id\": \"x\", \"namespace_type\": \"single\"\nnot json\n",
    )
    .unwrap();
    let out = detectd()
        .args(["check", "--exceptions"])
        .arg(lists.path())
        .arg(rules.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("{}:1: error: ", broken.display())),
        "{stdout}"
    );
    assert!(stdout.contains("exception file errors"), "{stdout}");
}
