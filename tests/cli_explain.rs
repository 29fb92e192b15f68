//! `detectd explain` as a black box: golden outputs for the founding rule
//! and 20 corpus rules of different shapes, `--event` on the founding
//! rule's negative cases (each names its failing clause or the sequence
//! condition it breaks), and the exit codes.
//!
//! The golden files are `tests/golden/explain/<name>.txt`; after a
//! deliberate change of the output, `DETECTD_BLESS=1 cargo test --test
//! cli_explain` rewrites them (review the diff). The corpus rules come from
//! `../shared/detection-rules-eql` (skipped with a notice when it is absent,
//! required under `CI=true`).

#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: &str = "2024-05-01T10:00:00Z";
const FOUNDING: &str = "rules/execution_scheduled_task_powershell.toml";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs detectd from the repository root (paths in the output are the
/// arguments as given, so they are the same on every machine).
fn detectd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("detectd runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// Compares `actual` with the golden file `name`, or rewrites it under
/// `DETECTD_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = root()
        .join("tests/golden/explain")
        .join(format!("{name}.txt"));
    if std::env::var("DETECTD_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (DETECTD_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name}: the output differs from {} from line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             (DETECTD_BLESS=1 rewrites the golden file after a deliberate change)",
            path.display(),
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

/// The corpus folder, or `None` (with a notice) outside CI when it is absent.
fn corpus() -> Option<PathBuf> {
    let dir = root().join("../shared/detection-rules-eql");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("corpus missing at {} (required in CI)", dir.display());
    }
    eprintln!("notice: corpus not found at {}; skipping", dir.display());
    None
}

/// Corpus rules of different shapes, each with what its explanation must
/// say about that shape (beyond matching its golden file).
const CORPUS: &[(&str, &[&str])] = &[
    (
        "rules/windows/credential_access_adidns_wpad_record.toml",
        &["an event query", "  event        any where"],
    ),
    (
        "rules/linux/execution_process_started_from_process_id_file.toml",
        &["not pushed", "regular expressions are matched by detectd"],
    ),
    (
        "rules/windows/defense_evasion_suspicious_short_program_name.toml",
        &["not pushed", "regex"],
    ),
    (
        "rules/cross-platform/initial_access_ollama_api_external_access.toml",
        &[
            "not cidrmatch(source.ip",
            "a negated test is true where the field is missing",
        ],
    ),
    (
        "rules/windows/credential_access_adidns_wildcard.toml",
        &[
            "startsWith(winlog.event_data.ObjectDN",
            "which a wildcard query would read as a pattern",
        ],
    ),
    (
        "rules/macos/lateral_movement_credential_access_kerberos_bifrostconsole.toml",
        &["like~", "\"case_insensitive\":true"],
    ),
    (
        "rules/integrations/aws/exfiltration_s3_bucket_replicated_to_external_account.toml",
        &[
            "`event.type` is the category",
            "{\"term\":{\"event.type\":{\"value\":\"info\"}}}",
        ],
    ),
    (
        "rules/windows/credential_access_credential_dumping_msbuild.toml",
        &["no maxspan", "unbounded_sequence_lookback"],
    ),
    (
        "rules/integrations/okta/credential_access_okta_mfa_bombing_via_push_notifications.toml",
        &["with until", "  until        "],
    ),
    (
        "rules/macos/credential_access_high_volume_of_pbpaste.toml",
        &["(runs=5)"],
    ),
    (
        "rules/windows/command_and_control_dns_tunneling_nslookup.toml",
        &["(runs=", "maxspan"],
    ),
    (
        "rules/cross-platform/defense_evasion_missing_events_after_alert.toml",
        &[
            "1 missing-event stage",
            "a trailing missing-event stage is decided",
        ],
    ),
    (
        "rules/integrations/okta/persistence_mfa_deactivation_with_no_reactivation.toml",
        &["missing-event stage", "(missing)"],
    ),
    (
        "rules/linux/execution_netcon_from_rwx_mem_region_binary.toml",
        &["a sample of", "filter 1"],
    ),
    (
        "rules/windows/discovery_ad_explorer_execution.toml",
        &["?process.pe.original_file_name == \"AdExp\""],
    ),
    (
        "rules/windows/credential_access_mimikatz_memssp_default_logs.toml",
        &["an event query"],
    ),
    (
        "rules_building_block/execution_github_repo_created.toml",
        &["a building-block rule"],
    ),
    (
        "rules/_deprecated/persistence_creation_of_kernel_module.toml",
        &["an event query"],
    ),
    (
        "rules/windows/persistence_temp_scheduled_task.toml",
        &["a sequence of", "back by maxspan"],
    ),
    (
        "rules/windows/defense_evasion_injection_msbuild.toml",
        &["from = now-6m", "every 5m"],
    ),
];

#[test]
fn explain_the_founding_rule_offline() {
    let out = detectd(&["explain", FOUNDING, "--now", NOW]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    // what the issue asks of an explanation, for the founding rule
    for part in [
        "type         eql, a sequence of 2 stages",
        "by host.id, process.entity_id, maxspan 5s",
        "indices      winlogbeat-*, logs-endpoint.events.*, logs-windows.*",
        "window       2024-05-01T09:51:00.000Z .. 2024-05-01T10:00:00.000Z  (from = now-9m, to = now",
        "search range 2024-05-01T09:50:55.000Z .. 2024-05-01T10:00:00.000Z  (back by maxspan 5s",
        "not pushed     not destination.address in (\"127.0.0.1\", \"::1\"): a negated test",
        "\"gte\": \"2024-05-01T09:50:55.000Z\"",
        "{\"term\":{\"destination.port\":{\"value\":135}}}",
        "_source      {\"includes\":[\"@timestamp\",\"destination.address\",\"destination.port\",\"dll.name\",\"event.category\",\"host.id\",\"process.entity_id\",\"process.name\"]}",
        "shell            sha256(",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    golden("founding", &text);
}

#[test]
fn explain_corpus_rules_of_different_shapes() {
    let Some(dir) = corpus() else { return };
    assert_eq!(CORPUS.len(), 20);
    let mut names = std::collections::BTreeSet::new();
    for (file, must) in CORPUS {
        let path = dir.join(file);
        assert!(path.is_file(), "{} is in the corpus", path.display());
        let shown = format!("../shared/detection-rules-eql/{file}");
        let out = detectd(&["explain", &shown, "--now", NOW]);
        assert!(out.status.success(), "{file}: {out:?}");
        let text = stdout(&out);
        for part in *must {
            assert!(text.contains(part), "{file}: missing {part:?} in:\n{text}");
        }
        let name = Path::new(file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(names.insert(name.clone()), "{name} twice");
        golden(&name, &text);
    }
}

#[test]
fn explain_the_founding_rules_negative_cases_names_the_failing_clause() {
    let events = "tests/fixtures/explain/founding-negatives.ndjson";
    let out = detectd(&["explain", FOUNDING, "--now", NOW, "--event", events]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let section = text.split("\nEvents (").nth(1).expect("an events section");
    let at = |line: usize| -> String {
        // the lines of one event: its header and its stage verdicts
        let head = format!("  {events}:{line}  ");
        let start = section
            .find(&head)
            .unwrap_or_else(|| panic!("event {line}: {section}"));
        let rest = &section[start + head.len()..];
        let end = rest
            .find(&format!("\n  {events}:"))
            .or_else(|| rest.find("\n\n"))
            .unwrap_or(rest.len());
        rest[..end].to_string()
    };
    // loopback, IPv4 and IPv6: the exclusion of the network stage
    for line in [4, 5] {
        let e = at(line);
        assert!(
            e.contains("stage 2      fails on `not destination.address in (\"127.0.0.1\", \"::1\")` (destination.address = "),
            "event {line}: {e}"
        );
        assert!(
            e.contains("stage 1      fails: the category is not \"library\""),
            "{e}"
        );
    }
    // SMB instead of RPC
    let e = at(6);
    assert!(
        e.contains("fails on `destination.port == 135` (destination.port = 445)"),
        "{e}"
    );
    assert!(
        !e.contains("destination.address in"),
        "only the failing clause: {e}"
    );
    // another process
    let e = at(7);
    assert!(
        e.contains("fails on `process.name : (\"powershell.exe\", \"pwsh.exe\", \"powershell_ise.exe\")` (process.name = \"cmd.exe\")"),
        "{e}"
    );
    // another DLL
    let e = at(8);
    assert!(
        e.contains(
            "stage 1      fails on `dll.name : \"taskschd.dll\"` (dll.name = \"kernel32.dll\")"
        ),
        "{e}"
    );
    // matching stages, but 6 s apart: maxspan
    assert!(at(1).contains(
        "stage 1      matches, join key (host.id, process.entity_id) = (\"late\", \"p1\")"
    ));
    assert!(at(2).contains(
        "stage 2      matches, join key (host.id, process.entity_id) = (\"late\", \"p1\")"
    ));
    assert!(
        text.contains(&format!(
            "why          {events}:2 is 6s after {events}:1: beyond maxspan 5s"
        )),
        "{text}"
    );
    assert!(
        text.contains("no alert: no sequence of these events"),
        "{text}"
    );
    golden("founding-negatives", &text);
}

#[test]
fn explain_event_names_order_and_join_key_and_finds_the_attack() {
    let dir = tempfile::tempdir().unwrap();
    let lib = |host: &str, entity: &str, ts: &str| {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"category":"library"}},"host":{{"id":"{host}"}},"process":{{"entity_id":"{entity}","name":"powershell.exe"}},"dll":{{"name":"taskschd.dll"}}}}"#
        )
    };
    let net = |host: &str, entity: &str, ts: &str| {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"category":"network"}},"host":{{"id":"{host}"}},"process":{{"entity_id":"{entity}","name":"powershell.exe"}},"destination":{{"address":"10.0.0.5","port":135}}}}"#
        )
    };
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path.display().to_string()
    };
    // the network connection comes first
    let reversed = write(
        "reversed.ndjson",
        &[
            net("h", "p", "2024-05-01T09:55:00.000Z"),
            lib("h", "p", "2024-05-01T09:55:02.000Z"),
        ],
    );
    let text = stdout(&detectd(&[
        "explain", FOUNDING, "--now", NOW, "--event", &reversed,
    ]));
    assert!(
        text.contains(&format!("{reversed}:1 (stage 2) is not after {reversed}:2 (stage 1): stages match in time order")),
        "{text}"
    );
    // another process (entity) of the same host connects
    let entity = write(
        "entity.ndjson",
        &[
            lib("h", "p1", "2024-05-01T09:55:00.000Z"),
            net("h", "p2", "2024-05-01T09:55:02.000Z"),
        ],
    );
    let text = stdout(&detectd(&[
        "explain", FOUNDING, "--now", NOW, "--event", &entity,
    ]));
    assert!(
        text.contains(&format!(
            "no stage 2 event shares a join key with a stage 1 event: e.g. {entity}:1 has (\"h\", \"p1\") and {entity}:2 has (\"h\", \"p2\")"
        )),
        "{text}"
    );
    // the attack: found, with the ids `hunt` gives
    let attack = write(
        "attack.ndjson",
        &[
            lib("h", "p", "2024-05-01T09:55:00.000Z"),
            net("h", "p", "2024-05-01T09:55:02.000Z"),
        ],
    );
    let text = stdout(&detectd(&[
        "explain", FOUNDING, "--now", NOW, "--event", &attack,
    ]));
    assert!(text.contains("  sequence     "), "{text}");
    let hunted = detectd(&["hunt", "--rules", FOUNDING, "--now", NOW, &attack]);
    let ids: Vec<String> = String::from_utf8(hunted.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 3, "a shell and two building blocks");
    for id in &ids {
        assert!(
            text.contains(id.as_str()),
            "explain names alert id {id}:\n{text}"
        );
    }
    // a single event as a search hit (`_source`) is read as that hit
    let hit = write(
        "hit.json",
        &[format!(
            r#"{{"_index":"logs-endpoint.events.network-default","_id":"abc","_source":{}}}"#,
            net("h", "p", "2024-05-01T09:55:02.000Z")
        )],
    );
    let out = detectd(&["explain", FOUNDING, "--now", NOW, "--event", &hit]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("stage 2      matches"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[rule]\nrule_id = 3\n").unwrap();
    let out = detectd(&["explain", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains("error:"), "the diagnostics: {out:?}");
    let kql = dir.path().join("kql.toml");
    // A query rule loads but is not explained: a note naming its type.
    let text = "[rule]\nrule_id = \"q\"\nname = \"n\"\ndescription = \"d\"\ntype = \"query\"\n\
                index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
                query = 'process.name: \"cmd.exe\"'\n";
    std::fs::write(&kql, text).unwrap();
    let out = detectd(&["explain", kql.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("note: explain covers EQL rules; query rules are not explained yet"),
        "{out:?}"
    );
    let out = detectd(&["explain", FOUNDING, "--event", "/nonexistent/events.ndjson"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"a\":1}\n[1]\n").unwrap();
    let out = detectd(&["explain", FOUNDING, "--event", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.ndjson:2: expected a JSON object"),
        "{out:?}"
    );
}

/// With `--elasticsearch-url` the search is the source's own against the
/// cluster: the concrete indices, warnings for patterns that match
/// nothing, and the cluster's field types (a port mapped as keyword widens
/// the port's leaf, with the reason).
#[test]
fn explain_against_the_cluster_uses_its_indices_and_field_types() {
    use elasticsearch::http::Method;
    let Some(url) = process::cluster_url() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = detectd::config::cluster::ClusterSettings {
        urls: Some(vec![url.clone()]),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let cluster = rt
        .block_on(detectd::cluster::Cluster::connect(&settings))
        .unwrap();
    let index = format!("it-explain-{}-{}", std::process::id(), process::free_port());
    let mapping = serde_json::json!({"mappings": {"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"category": {"type": "keyword"}}},
        "process": {"properties": {"name": {"type": "keyword"}, "entity_id": {"type": "keyword"}}},
        "dll": {"properties": {"name": {"type": "keyword"}}},
        "host": {"properties": {"id": {"type": "keyword"}}},
        "destination": {"properties": {"port": {"type": "keyword"}, "address": {"type": "keyword"}}}
    }}});
    let created = rt
        .block_on(cluster.send_raw(
            Method::Put,
            &format!("/{index}"),
            &[],
            Some(serde_json::to_vec(&mapping).unwrap()),
            None,
        ))
        .unwrap();
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );

    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("rule.toml");
    let text = std::fs::read_to_string(root().join(FOUNDING))
        .unwrap()
        .replace(
            r#"index = ["winlogbeat-*", "logs-endpoint.events.*", "logs-windows.*"]"#,
            &format!(r#"index = ["{index}", "it-explain-nothing-{index}-*"]"#),
        );
    std::fs::write(&rule, text).unwrap();
    // a search hit of the index: evaluated with the cluster's mapping of it
    let hit = dir.path().join("hit.json");
    std::fs::write(
        &hit,
        format!(
            r#"{{"_index":"{index}","_id":"x1","_source":{{"@timestamp":"2024-05-01T09:55:02.000Z","event":{{"category":"network"}},"host":{{"id":"h"}},"process":{{"entity_id":"p","name":"powershell.exe"}},"destination":{{"address":"10.0.0.5","port":"135"}}}}}}"#
        ),
    )
    .unwrap();
    let out = detectd(&[
        "explain",
        rule.to_str().unwrap(),
        "--now",
        NOW,
        "--elasticsearch-url",
        &url,
        "--event",
        hit.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    rt.block_on(cluster.send_raw(Method::Delete, &format!("/{index}"), &[], None, None))
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for part in [
        "Search (field types and indices from the cluster: ".to_string(),
        format!("  indices      {index}  (a point in time over these"),
        format!("  warning      index pattern `it-explain-nothing-{index}-*` matches no index"),
        "    widened        {\"term\":{\"destination.port\":{\"value\":135}}}: `destination.port` is mapped as keyword: the term 135 would not compare as detectd does".to_string(),
        "{\"term\":{\"dll.name\":{\"value\":\"taskschd.dll\",\"case_insensitive\":true}}}".to_string(),
        format!("(the mapping of `{index}`)"),
        "stage 2      matches".to_string(),
    ] {
        assert!(text.contains(&part), "missing {part:?} in:\n{text}");
    }
}

/// `--event` evaluates with the mapping of the event's index, as the run
/// does: `0:0:0:0:0:0:0:1` is `::1` for an `ip` field, not for a keyword.
#[test]
fn explain_event_uses_the_mapping_given() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("v6.ndjson");
    std::fs::write(
        &events,
        r#"{"@timestamp":"2024-05-01T09:55:02.000Z","event":{"category":"network"},"host":{"id":"h"},"process":{"entity_id":"p","name":"powershell.exe"},"destination":{"address":"0:0:0:0:0:0:0:1","port":135}}
{"@timestamp":"2024-05-01T09:55:03.000Z","event":{"category":"network"},"host":{"id":"h"},"process":{"entity_id":"p","name":"powershell.exe"},"destination":{"address":"10.0.0.5","port":135}}
"#,
    )
    .unwrap();
    let mapping = dir.path().join("mapping.json");
    std::fs::write(
        &mapping,
        r#"{"mappings":{"properties":{"destination":{"properties":{"address":{"type":"ip"}}}}}}"#,
    )
    .unwrap();
    let events = events.display().to_string();
    let typed_from_json = stdout(&detectd(&[
        "explain", FOUNDING, "--now", NOW, "--event", &events,
    ]));
    let first = |text: &str| {
        let start = text.find(&format!("  {events}:1  ")).expect("event 1");
        let end = text.find(&format!("  {events}:2  ")).expect("event 2");
        text[start..end].to_string()
    };
    assert!(
        first(&typed_from_json).contains("stage 2      matches"),
        "{typed_from_json}"
    );
    let with_mapping = stdout(&detectd(&[
        "explain",
        FOUNDING,
        "--now",
        NOW,
        "--event",
        &events,
        "--mapping",
        mapping.to_str().unwrap(),
    ]));
    let e = first(&with_mapping);
    assert!(e.contains("(the mapping of `v6.ndjson`)"), "{e}");
    assert!(
        e.contains("stage 2      fails on `not destination.address in (\"127.0.0.1\", \"::1\")` (destination.address = \"0:0:0:0:0:0:0:1\")"),
        "{e}"
    );
    // NAME= must name an events index
    let out = detectd(&[
        "explain",
        FOUNDING,
        "--event",
        &events,
        "--mapping",
        &format!("nope={}", mapping.display()),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no events file is named `nope`"),
        "{out:?}"
    );
}
