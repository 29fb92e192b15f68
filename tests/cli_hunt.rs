//! `detectd hunt` as a black box: the founding rule over generated events
//! and over the seed-rule cases, output shape, determinism, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn detectd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .output()
        .expect("detectd runs")
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn docs(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

const NOW: &str = "2024-05-01T10:00:00Z";

fn hunt(rules: &Path, files: &[&Path], now: &str) -> Output {
    let mut args = vec![
        "hunt".to_string(),
        "--rules".into(),
        rules.display().to_string(),
        "--now".into(),
        now.into(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    detectd(&args)
}

#[test]
fn founding_rule_over_generated_events_alerts_each_attack_once() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let gen = detectd(&["generate", "--count", "20000", "--attacks-per-10k", "10"]);
    assert!(gen.status.success());
    std::fs::write(&events, &gen.stdout).unwrap();
    // ground truth: the generator's attack halves go to 10.0.0.5:135
    let attacks = String::from_utf8(gen.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            e["event"]["category"] == "network"
                && e["destination"]["port"] == 135
                && e["destination"]["address"] == "10.0.0.5"
        })
        .count();
    assert!(attacks > 5, "the generator made {attacks} attacks");

    let out = hunt(&rules_dir(), &[&events], NOW);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = docs(&out);
    let shells: Vec<&Value> = docs
        .iter()
        .filter(|d| d["_source"]["kibana.alert.depth"] == 2)
        .collect();
    assert_eq!(shells.len(), attacks);
    assert_eq!(
        docs.len(),
        3 * attacks,
        "one shell and two building blocks each"
    );
    let mut ids: Vec<&str> = docs.iter().map(|d| d["_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), docs.len(), "ids are unique");
    for d in &docs {
        assert_eq!(d["_index"], ".alerts-security.alerts-default");
        assert_eq!(d["_id"], d["_source"]["kibana.alert.uuid"]);
        assert_eq!(
            d["_source"]["kibana.alert.rule.rule_id"],
            "5cd55388-a19c-47c7-8ec4-f41656c2fded"
        );
        assert_eq!(d["_source"]["@timestamp"], "2024-05-01T10:00:00.000Z");
    }
    // blocks follow their shell: library then network
    for (i, d) in docs.iter().enumerate() {
        if d["_source"]["kibana.alert.depth"] == 2 {
            let (lib, net) = (&docs[i + 1]["_source"], &docs[i + 2]["_source"]);
            assert_eq!(lib["kibana.alert.group.id"], d["_id"]);
            assert_eq!(lib["kibana.alert.group.index"], 0);
            assert_eq!(net["kibana.alert.group.index"], 1);
            assert_eq!(lib["dll"]["name"], "taskschd.dll");
            assert_eq!(net["destination"]["port"], 135);
        }
    }

    // deterministic: the same input and --now give the same bytes; another
    // --now changes the times but not one id
    let again = hunt(&rules_dir(), &[&events], NOW);
    assert_eq!(again.stdout, out.stdout);
    let later = hunt(&rules_dir(), &[&events], "2024-06-01T00:00:00Z");
    let later_ids: Vec<Value> = docs_ids(&later);
    assert_eq!(later_ids, docs_ids(&out));
    assert_ne!(later.stdout, out.stdout);
}

fn docs_ids(out: &Output) -> Vec<Value> {
    docs(out).into_iter().map(|d| d["_id"].clone()).collect()
}

fn lib(host: &str, entity: &str, ts: &str, name: &str) -> Value {
    json!({"@timestamp": ts, "event": {"category": "library"},
           "host": {"id": host}, "process": {"entity_id": entity, "name": name},
           "dll": {"name": "taskschd.dll"}})
}

fn net(host: &str, entity: &str, ts: &str, addr: &str, port: u16) -> Value {
    json!({"@timestamp": ts, "event": {"category": "network"},
           "host": {"id": host}, "process": {"entity_id": entity, "name": "powershell.exe"},
           "destination": {"address": addr, "port": port}})
}

#[test]
fn seed_rule_cases_alert_exactly_where_they_must() {
    let mut events = vec![
        // alerts
        lib("h1", "p1", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("h1", "p1", "2024-05-01T09:55:02.000Z", "10.0.0.5", 135),
        lib("h2", "p2", "2024-05-01T09:55:00.000Z", "PowerShell.EXE"),
        net("h2", "p2", "2024-05-01T09:55:02.000Z", "10.0.0.5", 135),
        lib("h3", "p3", "2024-05-01T09:55:00.000Z", "pwsh.exe"),
        net("h3", "p3", "2024-05-01T09:55:05.000Z", "10.0.0.5", 135),
        // no alerts: 6 s later, loopback, other process, wrong order, port 445
        lib("n1", "q1", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("n1", "q1", "2024-05-01T09:55:06.000Z", "10.0.0.5", 135),
        lib("n2", "q2", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("n2", "q2", "2024-05-01T09:55:02.000Z", "127.0.0.1", 135),
        lib("n3", "q3", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("n3", "q3", "2024-05-01T09:55:02.000Z", "::1", 135),
        lib("n4", "q4", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("n4", "other", "2024-05-01T09:55:02.000Z", "10.0.0.5", 135),
        net("n5", "q5", "2024-05-01T09:55:00.000Z", "10.0.0.5", 135),
        lib("n5", "q5", "2024-05-01T09:55:02.000Z", "powershell.exe"),
        lib("n6", "q6", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("n6", "q6", "2024-05-01T09:55:02.000Z", "10.0.0.5", 445),
    ];
    events.sort_by(|a, b| a["@timestamp"].as_str().cmp(&b["@timestamp"].as_str()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.ndjson");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&file, text).unwrap();

    let out = hunt(&rules_dir(), &[&file], NOW);
    assert!(out.status.success());
    let docs = docs(&out);
    let mut hosts: Vec<&str> = docs
        .iter()
        .filter(|d| d["_source"]["kibana.alert.depth"] == 2)
        .map(|d| d["_source"]["host"]["id"].as_str().unwrap())
        .collect();
    hosts.sort();
    assert_eq!(hosts, vec!["h1", "h2", "h3"]);
    assert_eq!(docs.len(), 9);
    let shell = &docs[0]["_source"];
    assert_eq!(shell["kibana.alert.severity"], "medium");
    assert_eq!(shell["kibana.alert.risk_score"], 47);
    assert_eq!(shell["kibana.alert.rule.parameters"]["from"], "now-9m");
    assert_eq!(
        shell["kibana.alert.rule.threat"][0]["tactic"]["id"],
        "TA0002"
    );
}

#[test]
fn a_broken_rule_is_reported_with_its_position_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy(
        rules_dir().join("execution_scheduled_task_powershell.toml"),
        rules.join("seed.toml"),
    )
    .unwrap();
    std::fs::write(
        rules.join("broken.toml"),
        "[rule]\nrule_id = \"b\"\nname = \"B\"\ntype = \"eql\"\nquery = 'process where'\n",
    )
    .unwrap();
    let events = dir.path().join("e.ndjson");
    let text = format!(
        "{}\n{}\n",
        lib("h1", "p1", "2024-05-01T09:55:00.000Z", "powershell.exe"),
        net("h1", "p1", "2024-05-01T09:55:02.000Z", "10.0.0.5", 135)
    );
    std::fs::write(&events, text).unwrap();
    let out = hunt(&rules, &[&events], NOW);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broken.toml:"), "{stderr}");
    assert!(stderr.contains(": error:"), "{stderr}");
    assert_eq!(docs(&out).len(), 3, "the good rule still alerted");
}

#[test]
fn unreadable_events_are_exit_code_2() {
    let out = hunt(
        &rules_dir(),
        &[Path::new("/nonexistent/events.ndjson")],
        NOW,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/events.ndjson"));
}

/// The founding rule exported from Kibana (`tests/fixtures/kibana_export.ndjson`,
/// line 1) finds exactly the attacks its TOML file finds; the export's other
/// rules run beside it, the disabled one is noted at its line.
#[test]
fn the_founding_rule_from_a_kibana_export_alerts_like_its_toml() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let gen = detectd(&["generate", "--count", "5000", "--attacks-per-10k", "20"]);
    assert!(gen.status.success());
    std::fs::write(&events, &gen.stdout).unwrap();
    let export = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kibana_export.ndjson");

    let shells = |out: &Output| -> Vec<Value> {
        docs(out)
            .into_iter()
            .filter(|d| d["_source"]["kibana.alert.depth"] == 2)
            // the events of each sequence (a shell's original time is its
            // creation time, the same for all)
            .map(|d| {
                let events: Vec<Value> = d["_source"]["kibana.alert.ancestors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["type"] == "event")
                    .map(|a| a["id"].clone())
                    .collect();
                Value::Array(events)
            })
            .collect()
    };
    let from_toml = hunt(&rules_dir(), &[&events], NOW);
    let from_export = hunt(&export, &[&events], NOW);
    assert!(from_export.status.success());
    let stderr = String::from_utf8_lossy(&from_export.stderr);
    assert!(
        stderr.contains(&format!("{}:3: note: skipped: disabled", export.display())),
        "{stderr}"
    );
    let want = shells(&from_toml);
    assert!(want.len() > 2, "the generator made {} attacks", want.len());
    assert_eq!(shells(&from_export), want);
    for d in docs(&from_export) {
        assert_eq!(
            d["_source"]["kibana.alert.rule.rule_id"], "5cd55388-a19c-47c7-8ec4-f41656c2fded",
            "only the founding rule matches generated events"
        );
    }
}

/// A rule over a field that exists only as a `constant_keyword` in the
/// mapping: with `--mapping` every event of the file matches, without it
/// none does; a malformed mapping is an error naming the file (exit 2).
#[test]
fn mappings_decide_what_a_rule_matches() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("dataset.toml"),
        "[rule]\nrule_id = \"ds\"\nname = \"Dataset\"\ndescription = \"d\"\ntype = \"eql\"\n\
         language = \"eql\"\nindex = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         query = '''\nprocess where data_stream.dataset == \"endpoint.events.process\"\n'''\n",
    )
    .unwrap();
    let events = dir.path().join("logs-endpoint");
    std::fs::write(
        &events,
        "{\"@timestamp\": \"2024-05-01T09:55:00.000Z\", \"event\": {\"category\": \"process\"}}\n\
         {\"@timestamp\": \"2024-05-01T09:56:00.000Z\", \"event\": {\"category\": \"process\"}}\n",
    )
    .unwrap();
    let mapping = dir.path().join("mapping.json");
    std::fs::write(
        &mapping,
        r#"{"logs-endpoint": {"mappings": {"properties": {"data_stream": {"properties": {
            "dataset": {"type": "constant_keyword", "value": "endpoint.events.process"}}}}}}}"#,
    )
    .unwrap();
    let run = |extra: &[String]| {
        let mut args = vec![
            "hunt".to_string(),
            "--rules".into(),
            rules.display().to_string(),
            "--now".into(),
            NOW.into(),
        ];
        args.extend(extra.iter().cloned());
        args.push(events.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        detectd(&args)
    };
    let with = run(&[
        "--mapping".into(),
        format!("logs-endpoint={}", mapping.display()),
    ]);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(docs(&with).len(), 2);
    let without = run(&[]);
    assert!(without.status.success());
    assert!(docs(&without).is_empty());

    std::fs::write(&mapping, "{\"properties\": ").unwrap();
    let bad = run(&["--mapping".into(), mapping.display().to_string()]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: invalid mapping: EOF while parsing",
            mapping.display()
        )),
        "{stderr}"
    );
}
