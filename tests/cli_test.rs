//! `detectd test` as a black box: the shipped rule's cases pass, a failing
//! case shows its diff, broken tests files are errors with their position,
//! query rules' cases, rules without tests, tests files without a rule.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

fn detectd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .output()
        .expect("detectd runs")
}

fn test(paths: &[&Path], extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["test".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    detectd(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SEED: &str = "execution_scheduled_task_powershell";

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// A folder with a copy of the founding rule (no tests).
fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        rules_dir().join(format!("{SEED}.toml")),
        dir.path().join(format!("{SEED}.toml")),
    )
    .unwrap();
    dir
}

fn lib(host: &str, ts: &str) -> String {
    json!({"@timestamp": ts, "event": {"category": "library"}, "host": {"id": host},
           "process": {"entity_id": host, "name": "powershell.exe"},
           "dll": {"name": "taskschd.dll"}})
    .to_string()
}

fn net(host: &str, ts: &str, port: u16) -> String {
    json!({"@timestamp": ts, "event": {"category": "network"}, "host": {"id": host},
           "process": {"entity_id": host, "name": "powershell.exe"},
           "destination": {"address": "10.0.0.5", "port": port}})
    .to_string()
}

#[test]
fn the_shipped_rules_pass_their_cases() {
    let out = test(&[&rules_dir()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let cases = text.lines().filter(|l| l.ends_with(" ... ok")).count();
    assert!(cases >= 10, "{text}");
    for name in [
        "the attack: powershell.exe loads taskschd.dll, then calls RPC 2 s later ... ok",
        "too far apart: 6 s ... ok",
        "wrong dll ... ok",
        "wrong port: SMB, not the RPC endpoint mapper ... ok",
        "wrong process: cmd.exe ... ok",
    ] {
        assert!(text.contains(name), "{name}: {text}");
    }
    assert!(
        text.ends_with(&format!("\n{cases} cases passed, 0 failed\n")),
        "{text}"
    );
    assert!(!text.contains("no tests"), "{text}");
    // the tests file given alone stands for its rule
    let one = test(&[&rules_dir().join(format!("{SEED}.tests.toml"))], &[]);
    assert_eq!(one.status.code(), Some(0));
    assert!(stdout(&one).ends_with(&format!("{cases} cases passed, 0 failed\n")));
}

#[test]
fn a_failing_case_shows_what_was_expected_and_what_alerted() {
    let dir = seed_dir();
    let tests = format!(
        "now = \"2024-05-01T10:00:00Z\"\n\n\
         [[case]]\nname = \"passes\"\nevents = '''\n{}\n{}\n'''\nalerts = [[1, 2]]\n\n\
         [[case]]\nname = \"wrongly negative\"\nevents = '''\n{}\n{}\n{}\n{}\n'''\n\
         alerts = [[3, 4]]\nnot_alerting = [1]\n",
        lib("h1", "2024-05-01T09:55:00Z"),
        net("h1", "2024-05-01T09:55:02Z", 135),
        lib("h2", "2024-05-01T09:55:00Z"),
        net("h2", "2024-05-01T09:55:02Z", 135),
        lib("h3", "2024-05-01T09:55:00Z"),
        net("h3", "2024-05-01T09:55:02Z", 445),
    );
    let tests_path = dir.path().join(format!("{SEED}.tests.toml"));
    std::fs::write(&tests_path, tests).unwrap();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let shown = tests_path.display();
    let want = format!(
        "{shown}:3: passes ... ok\n\
         {shown}:11: wrongly negative ... FAILED\n    \
         expected: [3, 4]; none of lines 1 alerting\n    \
         got:      [1, 2]\n    \
         - not alerted, expected: lines 3, 4\n    \
         + alerted, not expected: lines 1, 2\n    \
         ! line 1 must not alert, but is in the alert of lines 1, 2\n    \
         events:\n      \
         1: {}\n      \
         2: {}\n      \
         3: {}\n      \
         4: {}\n\
         \n\
         1 cases passed, 1 failed\n",
        excerpt(&lib("h2", "2024-05-01T09:55:00Z")),
        excerpt(&net("h2", "2024-05-01T09:55:02Z", 135)),
        excerpt(&lib("h3", "2024-05-01T09:55:00Z")),
        excerpt(&net("h3", "2024-05-01T09:55:02Z", 445)),
    );
    assert_eq!(text, want);
}

/// The excerpt `detectd test` shows of an event line.
fn excerpt(line: &str) -> String {
    if line.chars().count() <= 160 {
        return line.to_string();
    }
    format!("{}…", line.chars().take(160).collect::<String>())
}

#[test]
fn a_broken_tests_file_is_an_error_with_its_position_and_others_still_run() {
    let dir = seed_dir();
    std::fs::write(
        dir.path().join(format!("{SEED}.tests.toml")),
        "[[case]]\nname = \"typo\"\nevents = \"{}\"\nalerts_count = 1\n",
    )
    .unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    query_rule(&other, "q", "event.outcome:failure");
    std::fs::write(
        other.join("q.tests.toml"),
        format!(
            "[[case]]\nname = \"fails\"\nevents = '''\n{}\n'''\nalerts = [1]\n",
            json!({"@timestamp": "2024-05-01T09:00:00Z", "event": {"outcome": "failure"}})
        ),
    )
    .unwrap();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "{}:4:1: error: unknown field `alerts_count`, expected one of",
            dir.path().join(format!("{SEED}.tests.toml")).display()
        )),
        "{text}"
    );
    assert!(
        text.contains("4 | alerts_count = 1\n  | ^^^^^^^^^^^^"),
        "{text}"
    );
    assert!(text.contains(": fails ... ok\n"), "{text}");
    assert!(
        text.ends_with("1 cases passed, 0 failed, 1 errors\n"),
        "{text}"
    );

    // not TOML at all
    std::fs::write(
        dir.path().join(format!("{SEED}.tests.toml")),
        "[[case]\nname = 1\n",
    )
    .unwrap();
    let out = test(&[&dir.path().join(format!("{SEED}.toml"))], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("{SEED}.tests.toml:1:")),
        "{}",
        stdout(&out)
    );
}

fn query_rule(dir: &Path, id: &str, query: &str) {
    std::fs::write(
        dir.join(format!("{id}.toml")),
        format!(
            "[rule]\nrule_id = \"{id}\"\nname = \"Rule {id}\"\ndescription = \"d\"\n\
             type = \"query\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
             severity = \"low\"\nrisk_score = 21\nquery = '''{query}'''\n"
        ),
    )
    .unwrap();
}

#[test]
fn query_rules_have_cases_too() {
    let dir = tempfile::tempdir().unwrap();
    query_rule(
        dir.path(),
        "admin_logon",
        "event.category:authentication and user.name:admin* and not event.outcome:success",
    );
    let logon = |minute: u32, user: &str, outcome: &str| {
        json!({"@timestamp": format!("2024-05-01T09:{minute:02}:00Z"),
               "event": {"category": "authentication", "outcome": outcome},
               "user": {"name": user}})
        .to_string()
    };
    let events = [
        logon(1, "admin", "failure"),
        logon(2, "alice", "failure"),
        logon(3, "administrator", "success"),
        logon(4, "Admin2", "failure"),
        logon(5, "admin2", "failure"),
    ]
    .join("\n");
    // among the rules, events files are named *.tests.ndjson (not exports)
    std::fs::write(
        dir.path().join("logons.tests.ndjson"),
        format!("{events}\n"),
    )
    .unwrap();
    // without a mapping `user.name` is dynamic text: `admin*` matches
    // `Admin2` (analysed to lower case), as on a cluster without mapping
    std::fs::write(
        dir.path().join("admin_logon.tests.toml"),
        "[[case]]\nname = \"failed admin logons alert, others do not\"\n\
         events_file = \"logons.tests.ndjson\"\nalerts = [1, 4, 5]\nnot_alerting = [2, 3]\n\
         [[case]]\nname = \"counted\"\nevents_file = \"logons.tests.ndjson\"\nalert_count = 3\n",
    )
    .unwrap();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("failed admin logons alert, others do not ... ok"),
        "{text}"
    );
    assert!(text.ends_with("2 cases passed, 0 failed\n"), "{text}");

    // a wrong expectation about a query rule fails with the lines named
    std::fs::write(
        dir.path().join("admin_logon.tests.toml"),
        "[[case]]\nname = \"case-sensitive\"\nevents_file = \"logons.tests.ndjson\"\n\
         alerts = [1, 5, 3]\n",
    )
    .unwrap();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("    expected: [1], [3], [5]\n    got:      [1], [4], [5]\n"),
        "{text}"
    );
    assert!(text.contains("- not alerted, expected: line 3\n"), "{text}");
    assert!(text.contains("+ alerted, not expected: line 4\n"), "{text}");
    assert!(
        text.contains("\n      4: {\"@timestamp\":\"2024-05-01T09:04:00Z\""),
        "{text}"
    );
}

#[test]
fn rules_without_tests_are_listed_and_fail_only_when_required() {
    let dir = seed_dir();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let rule = dir.path().join(format!("{SEED}.toml"));
    assert!(
        text.contains(&format!("{}: no tests\n", rule.display())),
        "{text}"
    );
    assert!(
        text.ends_with("0 cases passed, 0 failed; 1 rules without tests\n"),
        "{text}"
    );
    let out = test(&[dir.path()], &["--require-tests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "{}: error: no tests (--require-tests)",
            rule.display()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_tests_file_without_its_rule_is_an_error() {
    let dir = seed_dir();
    let orphan = dir.path().join("gone.tests.toml");
    std::fs::write(
        &orphan,
        "[[case]]\nname = \"x\"\nevents = \"{}\"\nalerts = []\n",
    )
    .unwrap();
    let out = test(&[dir.path()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "{}: error: no rule file beside it (expected {})",
            orphan.display(),
            dir.path().join("gone.toml").display()
        )),
        "{}",
        stdout(&out)
    );
}

/// Tests files sit among the rules: `check`, `hunt` and `run` never take
/// them for rules.
#[test]
fn check_and_hunt_leave_tests_files_alone() {
    let out = detectd(&["check", &rules_dir().display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stdout(&out).contains("tests.toml"), "{}", stdout(&out));
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("e.ndjson");
    std::fs::write(&events, format!("{}\n", lib("h1", "2024-05-01T09:55:00Z"))).unwrap();
    let out = detectd(&[
        "hunt",
        "--rules",
        &rules_dir().display().to_string(),
        &events.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr)
        .ends_with("1 rules run, 0 alerts, 0 failed, 0 skipped\n"));
}

/// A case's mapping decides what matches, as `hunt --mapping` does.
#[test]
fn a_case_may_give_its_events_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dataset.toml"),
        "[rule]\nrule_id = \"ds\"\nname = \"Dataset\"\ndescription = \"d\"\ntype = \"eql\"\n\
         language = \"eql\"\nindex = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         query = '''\nprocess where data_stream.dataset == \"endpoint.events.process\"\n'''\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mapping.json"),
        r#"{"properties": {"data_stream": {"properties": {
            "dataset": {"type": "constant_keyword", "value": "endpoint.events.process"}}}}}"#,
    )
    .unwrap();
    let event = json!({"@timestamp": "2024-05-01T09:55:00Z", "event": {"category": "process"}});
    std::fs::write(
        dir.path().join("dataset.tests.toml"),
        format!(
            "[[case]]\nname = \"mapped\"\nmapping = \"mapping.json\"\n\
             events = '''\n{event}\n'''\nalerts = [1]\n\
             [[case]]\nname = \"unmapped\"\nevents = '''\n{event}\n'''\nalerts = []\n"
        ),
    )
    .unwrap();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.ends_with("2 cases passed, 0 failed\n"), "{text}");
}

/// A Kibana export holds several rules: a case names its rule by
/// `rule_id` (or the file gives one for all), and a rule of the export
/// without a case is listed.
#[test]
fn cases_of_an_export_name_their_rule() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.ndjson");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kibana_export.ndjson"),
        &export,
    )
    .unwrap();
    let attack = format!(
        "{}\n{}\n",
        lib("h1", "2024-05-01T09:55:00Z"),
        net("h1", "2024-05-01T09:55:02Z", 135)
    );
    std::fs::write(
        dir.path().join("export.tests.toml"),
        format!(
            "[[case]]\nname = \"which rule?\"\nevents = '''\n{attack}'''\nalerts = [[1, 2]]\n\
             [[case]]\nname = \"founding\"\nrule_id = \"5cd55388-a19c-47c7-8ec4-f41656c2fded\"\n\
             events = '''\n{attack}'''\nalerts = [[1, 2]]\n\
             [[case]]\nname = \"unknown\"\nrule_id = \"nope\"\nevents = '''\n{attack}'''\n\
             alerts = []\n"
        ),
    )
    .unwrap();
    let out = test(&[dir.path()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            ": which rule? ... FAILED\n    the rule file holds 4 rules: say which with `rule_id`\n"
        ),
        "{text}"
    );
    assert!(text.contains(": founding ... ok\n"), "{text}");
    assert!(
        text.contains(
            ": unknown ... FAILED\n    no rule with rule_id \"nope\" loads from the rule file\n"
        ),
        "{text}"
    );
    // the export's rules without a case, at their lines
    assert!(
        text.contains(&format!("{}:2: no tests\n", export.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}:3: no tests\n", export.display())),
        "{text}"
    );
    // line 4, a query rule whose exception list the export carries
    assert!(
        text.contains(&format!("{}:4: no tests\n", export.display())),
        "{text}"
    );
    assert!(
        text.ends_with("\n1 cases passed, 2 failed; 3 rules without tests\n"),
        "{text}"
    );
}

/// `detectd test --exceptions` resolves the rules' exception lists as
/// `run` does, so a case can check that an excepted event does not alert.
#[test]
fn cases_see_the_rules_exception_lists() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    query_rule(&rules, "logons", "event.category:authentication");
    let rule = rules.join("logons.toml");
    let text = std::fs::read_to_string(&rule).unwrap()
        + "[[rule.exceptions_list]]\nid = \"x\"\nlist_id = \"svc\"\n\
           namespace_type = \"single\"\ntype = \"detection\"\n";
    std::fs::write(&rule, text).unwrap();
    let lists = dir.path().join("exceptions");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("svc.toml"),
        "[metadata]\ncreation_date = \"2024/07/10\"\nlist_name = \"Svc\"\n\
         rule_ids = [\"logons\"]\nrule_names = [\"Rule logons\"]\nupdated_date = \"2024/07/10\"\n\
         [[exceptions]]\n[exceptions.container]\ndescription = \"d\"\nlist_id = \"svc\"\n\
         name = \"Svc\"\nnamespace_type = \"single\"\ntags = []\ntype = \"detection\"\n\
         [[exceptions.items]]\ncomments = []\ndescription = \"d\"\nlist_id = \"svc\"\n\
         item_id = \"svc\"\nname = \"svc\"\nnamespace_type = \"single\"\ntags = []\n\
         type = \"simple\"\n[[exceptions.items.entries]]\nfield = \"user.name\"\n\
         type = \"match_any\"\noperator = \"included\"\nvalue = [\"svc-backup\", \"svc-scan\"]\n",
    )
    .unwrap();
    let logon = |minute: u32, user: &str| {
        json!({"@timestamp": format!("2024-05-01T09:{minute:02}:00Z"),
               "event": {"category": "authentication"}, "user": {"name": user}})
        .to_string()
    };
    std::fs::write(
        rules.join("logons.tests.toml"),
        format!(
            "[[case]]\nname = \"service accounts are excepted\"\nevents = '''\n{}\n{}\n{}\n'''\n\
             alerts = [2]\nnot_alerting = [1, 3]\n",
            logon(1, "svc-backup"),
            logon(2, "alice"),
            logon(3, "svc-scan")
        ),
    )
    .unwrap();
    let lists_arg = lists.display().to_string();
    let out = test(&[&rules], &["--exceptions", &lists_arg]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.ends_with("1 cases passed, 0 failed\n"), "{text}");
    // without the lists the rule does not load: an error, not a pass
    let out = test(&[&rules], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("svc"), "{text}");
}
