//! `detectd hunt` runs every rule type through the runner: query rules
//! (KQL, Lucene) offline, their overrides, a query a file's mapping refuses,
//! bad lines reported once for all rules, files that cannot be told apart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

const NOW: &str = "2024-05-01T10:00:00Z";

fn detectd(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .output()
        .expect("detectd runs")
}

fn hunt(rules: &Path, extra: &[String], files: &[&Path]) -> Output {
    let mut args = vec![
        "hunt".to_string(),
        "--rules".into(),
        rules.display().to_string(),
        "--now".into(),
        NOW.into(),
    ];
    args.extend(extra.iter().cloned());
    args.extend(files.iter().map(|f| f.display().to_string()));
    detectd(&args)
}

fn docs(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The events line each event alert was made from (its `_id`), in output
/// order.
fn alerted_lines(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            let ancestors = d["_source"]["kibana.alert.ancestors"].as_array().unwrap();
            ancestors.last().unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn query_rule(dir: &Path, file: &str, id: &str, language: &str, query: &str, extra: &str) {
    std::fs::write(
        dir.join(file),
        format!(
            "[rule]\nrule_id = \"{id}\"\nname = \"Logon of {id}\"\ndescription = \"d\"\n\
             type = \"query\"\nlanguage = \"{language}\"\nindex = [\"logs-system.auth-*\"]\n\
             severity = \"medium\"\nrisk_score = 47\nquery = '''{query}'''\n{extra}"
        ),
    )
    .unwrap();
}

fn logon(minute: u32, user: &str, outcome: &str) -> String {
    json!({
        "@timestamp": format!("2024-05-01T09:{minute:02}:00.000Z"),
        "event": {"category": ["authentication"], "outcome": outcome},
        "user": {"name": user},
        "host": {"name": "ws-1"},
        "message": format!("logon by {user}"),
    })
    .to_string()
}

/// Events file `name` in `dir` with these lines.
fn events(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let file = events(
        dir.path(),
        "auth.ndjson",
        &[
            logon(1, "admin", "success"),
            logon(2, "alice", "success"),
            logon(3, "administrator", "failure"),
            logon(4, "admin", "failure"),
        ],
    );
    (dir, rules, file)
}

#[test]
fn a_kql_query_rule_alerts_each_matching_event() {
    let (_dir, rules, file) = setup();
    query_rule(
        &rules,
        "kql.toml",
        "kql",
        "kuery",
        "event.category:authentication and user.name:admin*",
        "",
    );
    let out = hunt(&rules, &[], &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = docs(&out);
    assert_eq!(alerted_lines(&docs), ["1", "3", "4"], "{}", stderr(&out));
    for d in &docs {
        let s = &d["_source"];
        assert_eq!(s["kibana.alert.rule.type"], "query");
        assert_eq!(s["kibana.alert.rule.rule_id"], "kql");
        assert_eq!(d["_id"], s["kibana.alert.uuid"]);
        assert_eq!(s["kibana.alert.ancestors"][0]["index"], "auth.ndjson");
        assert_eq!(s["@timestamp"], "2024-05-01T10:00:00.000Z");
    }
    assert!(stderr(&out).ends_with("1 rules run, 3 alerts, 0 failed, 0 skipped\n"));
    // the same --now, the same bytes
    assert_eq!(hunt(&rules, &[], &[&file]).stdout, out.stdout);
}

#[test]
fn a_lucene_query_rule_alerts_each_matching_event() {
    let (_dir, rules, file) = setup();
    query_rule(
        &rules,
        "lucene.toml",
        "lucene",
        "lucene",
        "user.name:admin* AND NOT event.outcome:success",
        "",
    );
    let out = hunt(&rules, &[], &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = docs(&out);
    assert_eq!(alerted_lines(&docs), ["3", "4"]);
    assert_eq!(
        docs[0]["_source"]["kibana.alert.rule.parameters"]["language"],
        "lucene"
    );
}

#[test]
fn overrides_shape_each_alert_from_its_event() {
    let (_dir, rules, file) = setup();
    query_rule(
        &rules,
        "overrides.toml",
        "ovr",
        "kuery",
        "event.category:authentication",
        "rule_name_override = \"message\"\n\
         [[rule.severity_mapping]]\nfield = \"event.outcome\"\noperator = \"equals\"\n\
         severity = \"high\"\nvalue = \"failure\"\n\
         [[rule.risk_score_mapping]]\nfield = \"risk\"\noperator = \"equals\"\nvalue = \"\"\n",
    );
    let out = hunt(&rules, &[], &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<(String, String)> = docs(&out)
        .iter()
        .map(|d| {
            let s = &d["_source"];
            (
                s["kibana.alert.rule.name"].as_str().unwrap().to_string(),
                s["kibana.alert.severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("logon by admin", "medium"),
        ("logon by alice", "medium"),
        ("logon by administrator", "high"),
        ("logon by admin", "high"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}

/// With `--mapping` the query is translated for the file's field types:
/// `user` nested there makes `user.name:admin` a query Kibana refuses. The
/// rule's run fails (exit 1) with the reason; the other rule still runs.
#[test]
fn a_query_the_mapping_refuses_fails_its_rule_only() {
    let (dir, rules, file) = setup();
    query_rule(
        &rules,
        "a_flat.toml",
        "flat",
        "kuery",
        "user.name:admin",
        "",
    );
    query_rule(
        &rules,
        "b_nested.toml",
        "nested",
        "kuery",
        "user:{ name:admin }",
        "",
    );
    let mapping = dir.path().join("mapping.json");
    std::fs::write(
        &mapping,
        json!({"properties": {
            "@timestamp": {"type": "date"},
            "user": {"type": "nested", "properties": {"name": {"type": "keyword"}}}
        }})
        .to_string(),
    )
    .unwrap();
    let extra = ["--mapping".to_string(), mapping.display().to_string()];
    let out = hunt(&rules, &extra, &[&file]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: error: fetching events: the query cannot run: ",
            rules.join("a_flat.toml").display()
        )) && err.contains("is a nested field"),
        "{err}"
    );
    let docs = docs(&out);
    assert_eq!(alerted_lines(&docs), ["1", "4"]);
    assert!(docs
        .iter()
        .all(|d| d["_source"]["kibana.alert.rule.rule_id"] == "nested"));
    // without the mapping both queries run, typed from the JSON
    let out = hunt(&rules, &[], &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Unreadable lines are the same for every rule: each is reported once per
/// hunt, and beyond 20 they are counted once.
#[test]
fn bad_lines_are_reported_once_for_all_rules() {
    let (dir, rules, _) = setup();
    for (file, id) in [("a.toml", "a"), ("b.toml", "b"), ("c.toml", "c")] {
        query_rule(&rules, file, id, "kuery", "user.name:admin", "");
    }
    let mut lines = vec![logon(1, "admin", "success")];
    lines.extend((0..25).map(|i| format!("not json {i}")));
    lines.push("[1, 2]".into());
    let file = events(dir.path(), "bad.ndjson", &lines);
    let out = hunt(&rules, &[], &[&file]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("warning: bad.ndjson:2: skipped: invalid JSON")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches(": skipped: ").count(), 20, "{err}");
    assert_eq!(
        err.matches("warning: 6 more lines skipped").count(),
        1,
        "{err}"
    );
    assert_eq!(docs(&out).len(), 3, "each rule alerts line 1");

    // a line that is JSON but not an object says what it found
    let few = events(dir.path(), "few.ndjson", &["[1, 2]".to_string()]);
    let out = hunt(&rules, &[], &[&few]);
    assert!(
        stderr(&out)
            .contains("warning: few.ndjson:1: skipped: expected a JSON object, found an array"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_files_with_the_same_name_are_an_error() {
    let (dir, rules, _) = setup();
    query_rule(&rules, "a.toml", "a", "kuery", "user.name:admin", "");
    for sub in ["x", "y"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        events(
            &dir.path().join(sub),
            "auth.ndjson",
            &[logon(1, "admin", "success")],
        );
    }
    let (x, y) = (
        dir.path().join("x/auth.ndjson"),
        dir.path().join("y/auth.ndjson"),
    );
    let out = hunt(&rules, &[], &[&x, &y]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains(&format!(
            "two events files are named `auth.ndjson`: {} and {}",
            x.display(),
            y.display()
        )),
        "{}",
        stderr(&out)
    );
}

/// A hunt is a rule run: the founding rule and a query rule over the same
/// file each alert as they would online, and the events far from `--now`
/// (a month before) are searched too: a hunt covers all time.
#[test]
fn rules_of_both_types_run_side_by_side_over_all_time() {
    let (dir, rules, _) = setup();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("rules/execution_scheduled_task_powershell.toml"),
        rules.join("seed.toml"),
    )
    .unwrap();
    query_rule(&rules, "q.toml", "q", "kuery", "dll.name:taskschd.dll", "");
    let lib = json!({"@timestamp": "2024-04-01T09:55:00.000Z", "event": {"category": "library"},
        "host": {"id": "h1"}, "process": {"entity_id": "p1", "name": "powershell.exe"},
        "dll": {"name": "taskschd.dll"}});
    let net = json!({"@timestamp": "2024-04-01T09:55:02.000Z", "event": {"category": "network"},
        "host": {"id": "h1"}, "process": {"entity_id": "p1", "name": "powershell.exe"},
        "destination": {"address": "10.0.0.5", "port": 135}});
    let file = events(dir.path(), "e.ndjson", &[lib.to_string(), net.to_string()]);
    let out = hunt(&rules, &[], &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let by_rule = |id: &str| -> usize {
        docs(&out)
            .iter()
            .filter(|d| d["_source"]["kibana.alert.rule.rule_id"] == id)
            .count()
    };
    assert_eq!(by_rule("q"), 1);
    assert_eq!(by_rule("5cd55388-a19c-47c7-8ec4-f41656c2fded"), 3);
}

/// An exception list in the detection-rules TOML format that excepts
/// `user.name: administrator`.
fn exception_list(dir: &Path) -> PathBuf {
    let lists = dir.join("exceptions");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("admins.toml"),
        "[metadata]\ncreation_date = \"2024/07/10\"\nlist_name = \"Admins\"\n\
         rule_ids = [\"kql\"]\nrule_names = [\"Logon of kql\"]\nupdated_date = \"2024/07/10\"\n\
         [[exceptions]]\n[exceptions.container]\ndescription = \"d\"\nlist_id = \"admins-ok\"\n\
         name = \"Admins\"\nnamespace_type = \"single\"\ntags = []\ntype = \"detection\"\n\
         [[exceptions.items]]\ncomments = []\ndescription = \"d\"\nlist_id = \"admins-ok\"\n\
         item_id = \"administrator\"\nname = \"administrator\"\nnamespace_type = \"single\"\n\
         tags = []\ntype = \"simple\"\n\
         [[exceptions.items.entries]]\nfield = \"user.name\"\ntype = \"match\"\n\
         operator = \"included\"\nvalue = \"administrator\"\n",
    )
    .unwrap();
    lists
}

/// `hunt --exceptions` resolves a rule's exception lists as `run` does:
/// without the folder the rule fails with a hint and the others run; with
/// it the excepted event does not alert; a broken exception file is
/// reported and fails the hunt.
#[test]
fn hunt_applies_exception_lists_from_the_folder_given() {
    let (dir, rules, file) = setup();
    let reference = "[[rule.exceptions_list]]\nid = \"x\"\nlist_id = \"admins-ok\"\n\
                     namespace_type = \"single\"\ntype = \"detection\"\n";
    query_rule(
        &rules,
        "kql.toml",
        "kql",
        "kuery",
        "event.category:authentication and user.name:admin*",
        reference,
    );
    query_rule(
        &rules,
        "plain.toml",
        "plain",
        "kuery",
        "user.name:alice",
        "",
    );

    let out = hunt(&rules, &[], &[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("admins-ok"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--exceptions"),
        "the hint: {}",
        stderr(&out)
    );
    assert_eq!(alerted_lines(&docs(&out)), ["2"], "the other rule runs");

    let lists = exception_list(dir.path());
    let flag = ["--exceptions".to_string(), lists.display().to_string()];
    let out = hunt(&rules, &flag, &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut lines = alerted_lines(&docs(&out));
    lines.sort();
    // line 3 (administrator) is excepted; 1 and 4 (admin) alert, 2 by the other rule
    assert_eq!(lines, ["1", "2", "4"], "{}", stderr(&out));

    std::fs::write(lists.join("broken.toml"), "[[exceptions]\n").unwrap();
    let out = hunt(&rules, &flag, &[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("broken.toml"), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .ends_with("2 rules run, 3 alerts, 0 failed, 0 skipped, 1 exception file errors\n"),
        "{}",
        stderr(&out)
    );
}

/// A threshold rule offline: the same files and `--now` give the same
/// bytes, and the alert is Kibana's threshold alert of the one group that
/// reaches the value within one of the schedule's windows.
#[test]
fn hunt_runs_a_threshold_rule_in_its_schedules_windows() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("spray.toml"),
        "[rule]\nrule_id = \"spray\"\nname = \"Password spraying\"\ndescription = \"d\"\n\
         type = \"threshold\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         query = 'event.outcome:failure'\n\
         [rule.threshold]\nfield = [\"source.ip\"]\nvalue = 3\n",
    )
    .unwrap();
    // 10.0.0.1: three failures within two minutes; 10.0.0.2: three an
    // hour apart (never 3 in one 9-minute window); a success does not count
    let mut lines = String::new();
    for (minute, ip, outcome) in [
        (0, "10.0.0.1", "failure"),
        (1, "10.0.0.1", "failure"),
        (2, "10.0.0.1", "failure"),
        (3, "10.0.0.2", "success"),
        (0, "10.0.0.2", "failure"),
        (60, "10.0.0.2", "failure"),
        (120, "10.0.0.2", "failure"),
    ] {
        let at = format!("2024-05-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60);
        lines.push_str(
            &json!({"@timestamp": at, "event": {"outcome": outcome}, "source": {"ip": ip}})
                .to_string(),
        );
        lines.push('\n');
    }
    let events = dir.path().join("auth.ndjson");
    std::fs::write(&events, lines).unwrap();
    let one = hunt(&rules, &[], &[&events]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let two = hunt(&rules, &[], &[&events]);
    assert_eq!(one.stdout, two.stdout, "same files, same --now: same bytes");
    let docs = docs(&one);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    let a = &docs[0]["_source"];
    assert_eq!(
        a["kibana.alert.rule.rule_type_id"],
        json!("siem.thresholdRule")
    );
    assert_eq!(
        a["kibana.alert.threshold_result"],
        json!({"count": 3, "from": "2024-05-01T08:00:00.000Z",
               "terms": [{"field": "source.ip", "value": "10.0.0.1"}]})
    );
    assert_eq!(
        a["kibana.alert.original_time"],
        json!("2024-05-01T08:02:00.000Z")
    );
}

#[test]
fn hunt_skips_esql_and_ml_rules_saying_they_need_a_cluster() {
    let (dir, rules, _) = setup();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster_only");
    for name in ["esql_stats.toml", "ml.toml"] {
        std::fs::copy(fixtures.join(name), rules.join(name)).unwrap();
    }
    query_rule(&rules, "q.toml", "q", "kuery", "event.outcome:failure", "");
    let file = events(dir.path(), "e.ndjson", &[logon(1, "alice", "failure")]);
    let out = hunt(&rules, &[], &[&file]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "esql_stats.toml: note: skipped: needs a cluster (Elasticsearch 8.11 or later (ES|QL))"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "ml.toml: note: skipped: needs a cluster (Elasticsearch with machine learning"
        ),
        "{err}"
    );
    assert!(err.contains("2 skipped"), "{err}");
    // The query rule beside them still runs.
    assert_eq!(docs(&out).len(), 1, "{err}");
}

fn ip_match_rule(rules: &Path) {
    std::fs::write(
        rules.join("ip_match.toml"),
        "[rule]\nrule_id = \"ip-match\"\nname = \"IP indicator match\"\ndescription = \"d\"\n\
         type = \"threat_match\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"high\"\nrisk_score = 73\nquery = 'destination.ip:*'\n\
         threat_index = [\"logs-ti_*\"]\nthreat_query = 'threat.indicator.type:ipv4-addr'\n\
         [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"destination.ip\"\n\
         type = \"mapping\"\nvalue = \"threat.indicator.ip\"\n",
    )
    .unwrap();
}

#[test]
fn hunt_runs_a_threat_match_rule_with_an_indicators_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    ip_match_rule(&rules);
    let flow = |minute: u32, ip: &str| {
        json!({"@timestamp": format!("2024-05-01T09:{minute:02}:00.000Z"),
               "event": {"category": ["network"]}, "destination": {"ip": ip}})
        .to_string()
    };
    let events = events(
        dir.path(),
        "flows.ndjson",
        &[
            flow(1, "203.0.113.9"),
            flow(2, "10.0.0.1"),
            flow(3, "198.51.100.7"),
        ],
    );
    let ind = |ip: &str, kind: &str| {
        json!({"threat": {"indicator": {"ip": ip, "type": kind},
                          "feed": {"name": "AbuseCH"}}})
        .to_string()
    };
    let indicators = self::events(
        dir.path(),
        "ti.ndjson",
        &[
            ind("203.0.113.9", "ipv4-addr"),
            // left out by threat_query
            ind("198.51.100.7", "url"),
            "not json".to_string(),
        ],
    );
    let args = vec!["--indicators".to_string(), indicators.display().to_string()];
    let out = hunt(&rules, &args, &[&events]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: indicators:"),
        "{}",
        stderr(&out)
    );
    let docs = docs(&out);
    assert_eq!(alerted_lines(&docs), ["1"], "{docs:#?}");
    let a = &docs[0]["_source"];
    assert_eq!(
        a["kibana.alert.rule.rule_type_id"],
        json!("siem.indicatorRule")
    );
    assert_eq!(
        a["threat"]["enrichments"],
        json!([{"indicator": {"ip": "203.0.113.9", "type": "ipv4-addr"},
                "feed": {"name": "AbuseCH"},
                "matched": {"atomic": "203.0.113.9", "field": "destination.ip", "id": "1",
                            "index": "ti.ndjson", "type": "indicator_match_rule"}}])
    );

    // without indicators the rule runs, finds none, and says why
    let out = hunt(&rules, &[], &[&events]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(docs_empty(&out));
    assert!(stderr(&out).contains("--indicators"), "{}", stderr(&out));
}

fn docs_empty(out: &Output) -> bool {
    out.stdout.is_empty()
}

/// A new_terms rule offline with its history in the files: the first
/// `history_window_start` of the files is history only, a tuple seen there
/// does not alert later, a tuple never seen alerts on its first event, one
/// last seen longer ago than the history alerts again; byte-identical
/// twice.
#[test]
fn hunt_runs_a_new_terms_rule_with_its_history_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("new_parent.toml"),
        "[rule]\nrule_id = \"new-parent\"\nname = \"New parent\"\ndescription = \"d\"\n\
         type = \"new_terms\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         query = 'event.category:process'\n\
         [rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"host.id\", \"process.parent.name\"]\n\
         [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\n\
         value = \"now-1h\"\n",
    )
    .unwrap();
    // minutes after 08:00; the first hour is history only
    let mut lines = String::new();
    for (minute, id, host, parent) in [
        (0, "e1", "h1", "explorer.exe"),
        (20, "e2", "h1", "services.exe"),
        // seen at 20: in the history of the window ending at 77 (from
        // 17), the latest of the windows holding 70
        (70, "e3", "h1", "services.exe"),
        // never seen on h1 (only on h2): new, on its first event
        (20, "e4", "h2", "winword.exe"),
        (80, "e5", "h1", "winword.exe"),
        (82, "e6", "h1", "winword.exe"),
        // last seen at 00, more than an hour before 75: new again
        (75, "e7", "h1", "explorer.exe"),
    ] {
        let at = format!("2024-05-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60);
        lines.push_str(
            &json!({"@timestamp": at, "event": {"category": "process"},
                    "host": {"id": host}, "process": {"parent": {"name": parent}},
                    "id": id})
            .to_string(),
        );
        lines.push('\n');
    }
    let events = dir.path().join("proc.ndjson");
    std::fs::write(&events, lines).unwrap();
    let one = hunt(&rules, &[], &[&events]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let two = hunt(&rules, &[], &[&events]);
    assert_eq!(one.stdout, two.stdout, "same files, same --now: same bytes");
    let docs = docs(&one);
    let mut found: Vec<(Value, Value)> = docs
        .iter()
        .map(|d| {
            (
                d["_source"]["kibana.alert.new_terms"].clone(),
                d["_source"]["id"].clone(),
            )
        })
        .collect();
    found.sort_by_key(|(_, id)| id.to_string());
    assert_eq!(
        found,
        [
            (json!(["h1", "winword.exe"]), json!("e5")),
            (json!(["h1", "explorer.exe"]), json!("e7")),
        ],
        "{docs:#?}"
    );
    assert_eq!(
        docs[0]["_source"]["kibana.alert.rule.rule_type_id"],
        json!("siem.newTermsRule")
    );
}
