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
        // how the daemon reads it: a shared scan selects it locally, and
        // its tails carry partial sequences
        "selected locally: the scan reads each event of its indices and time range once",
        "near-real-time can tail with `[realtime]` on: every 5s, 15s behind the clock",
        "reads back 5s (its maxspan)",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    golden("founding", &text);
}

#[test]
fn explain_follows_the_config_files_sharing_and_realtime() {
    let dir = tempfile::tempdir().unwrap();
    let explain_with = |config: &str| {
        let path = dir.path().join("detectd.toml");
        std::fs::write(&path, config).unwrap();
        let path = path.to_str().unwrap();
        let out = detectd(&["explain", FOUNDING, "--now", NOW, "--config", path]);
        assert!(out.status.success(), "{out:?}");
        (stdout(&out), path.to_string())
    };
    let (text, file) = explain_with("[realtime]\nenabled = true\nevery = \"3s\"\nlag = \"7s\"\n");
    for part in [
        format!("(`[sharing]`, on in {file})"),
        format!("(`sharing.select_locally`, on in {file})"),
        format!("near-real-time tails every 3s, 7s behind the clock (`[realtime]` in {file})"),
        "reads back 5s (its maxspan)".to_string(),
    ] {
        assert!(text.contains(&part), "missing {part:?} in:\n{text}");
    }
    let (text, file) = explain_with(
        "[sharing]\nenabled = false\n[realtime]\nenabled = true\nrule_ids = [\"other\"]\n",
    );
    for part in [
        format!("shared scans   none: `[sharing]` is off in {file}"),
        format!("near-real-time does not tail: `[realtime]` in {file} names other rules"),
    ] {
        assert!(text.contains(&part), "missing {part:?} in:\n{text}");
    }
    let (text, file) = explain_with("[sharing]\nselect_locally = false\n");
    for part in [
        format!("a clause of its own in the scan: `sharing.select_locally` is off in {file}"),
        format!("near-real-time could tail, but `[realtime]` is off in {file}"),
    ] {
        assert!(text.contains(&part), "missing {part:?} in:\n{text}");
    }
    // the config's space: the alerts alias follows it, and --space-id
    // over it
    let (text, _) = explain_with("space_id = \"soc\"\n");
    assert!(
        text.contains("written to       .alerts-security.alerts-soc "),
        "{text}"
    );
    let path = dir.path().join("detectd.toml");
    let path = path.to_str().unwrap();
    let args = ["explain", FOUNDING, "--now", NOW, "--config", path];
    let over = stdout(&detectd(&[&args[..], &["--space-id", "lab"]].concat()));
    assert!(
        over.contains("written to       .alerts-security.alerts-lab "),
        "{over}"
    );
    // a config that does not load is a configuration error
    let path = dir.path().join("detectd.toml");
    std::fs::write(&path, "[realtime]\nenabled = true\nevery = \"soon\"\n").unwrap();
    let out = detectd(&["explain", FOUNDING, "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("realtime.every"),
        "{out:?}"
    );
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

/// A query rule is explained as a run would search for it: its query,
/// filters and exception lists in the header, the KQL translated into the
/// search's `query` (offline for ECS's field types), the event alert id
/// recipe; with `--event`, which events the query, filters and exceptions
/// select, with their alert ids.
#[test]
fn explain_a_query_rule_with_filters_and_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("logons.toml");
    std::fs::write(
        &rule,
        "[rule]\nrule_id = \"failed-admin-logons\"\nname = \"Failed admin logons\"\n\
         description = \"d\"\ntype = \"query\"\nlanguage = \"kuery\"\n\
         index = [\"logs-system.auth-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         query = 'event.category:authentication and user.name:admin*'\n\
         [[rule.filters]]\n[rule.filters.meta]\nnegate = false\ndisabled = false\n\
         [rule.filters.query.match_phrase]\n\"event.outcome\" = \"failure\"\n\
         [[rule.exceptions_list]]\nid = \"x\"\nlist_id = \"svc\"\n\
         namespace_type = \"single\"\ntype = \"detection\"\n",
    )
    .unwrap();
    let lists = dir.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("svc.ndjson"),
        serde_json::json!({"list_id": "svc", "id": "svc", "name": "Service accounts",
                           "description": "d", "namespace_type": "single", "type": "detection",
                           "os_types": [], "tags": []})
        .to_string()
            + "\n"
            + &serde_json::json!({"item_id": "adminsvc", "list_id": "svc", "name": "adminsvc",
                                  "description": "d", "namespace_type": "single", "type": "simple",
                                  "os_types": [], "tags": [], "comments": [],
                                  "entries": [{"field": "user.name", "operator": "included",
                                               "type": "match", "value": "admin-svc"}]})
            .to_string()
            + "\n",
    )
    .unwrap();
    // without its list the rule does not load, as in `run`: the error
    // names the list and the flag
    let out = detectd(&["explain", rule.to_str().unwrap(), "--now", NOW]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("svc") && text.contains("--exceptions"),
        "{text}"
    );

    let lists_arg = lists.to_str().unwrap();
    let rule_arg = rule.to_str().unwrap();
    let out = detectd(&["explain", rule_arg, "--now", NOW, "--exceptions", lists_arg]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "  type         query, KQL, translated for the indices' field types as Kibana does: one alert per matching event\n",
        "  query        event.category:authentication and user.name:admin*\n",
        "  filters      1 Kibana filter, placed as Kibana's buildQueryFromFilters places them",
        "  exceptions   `svc` (single) (1 item): an event an item describes does not alert\n",
        "  pushdown     none: the query is the search's own filter",
        // in a shared scan the cluster evaluates its query as its own clause
        "a clause of its own in the scan: its search holds more than its time range and pushdown",
        // the KQL for ECS's types: `user.name` is a keyword, a wildcard query
        "\"wildcard\":{\"user.name\":{\"value\":\"admin*\"}}",
        // the filter and the exception, in the same search
        "\"match_phrase\":{\"event.outcome\":\"failure\"}",
        "\"admin-svc\"",
        "  event alert      sha256(_index ‖ _id ‖ \"undefined\" ‖ \"default:failed-admin-logons\")\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let events = dir.path().join("events.ndjson");
    let logon = |user: &str, outcome: &str| {
        serde_json::json!({"@timestamp": "2024-05-01T09:58:00Z",
                           "event": {"category": "authentication", "outcome": outcome},
                           "user": {"name": user}})
        .to_string()
    };
    std::fs::write(
        &events,
        [
            logon("admin", "failure"),
            logon("admin", "success"),
            logon("admin-svc", "failure"),
            logon("alice", "failure"),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    let events_arg = events.to_str().unwrap();
    let out = detectd(&[
        "explain",
        rule_arg,
        "--now",
        NOW,
        "--exceptions",
        lists_arg,
        "--event",
        events_arg,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let verdicts: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Events (4"))
        .skip(1)
        .take(4)
        .collect();
    assert_eq!(verdicts.len(), 4, "{text}");
    assert!(verdicts[0].contains(", matches: alert "), "{text}");
    for v in &verdicts[1..] {
        assert!(v.contains(", no match: "), "{text}");
    }
    assert!(text.contains("1 of 4 events alert"), "{text}");
    // the id is the one `hunt` gives the same event
    let id = verdicts[0].rsplit("alert ").next().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::copy(&rule, rules_dir.join("logons.toml")).unwrap();
    let hunt = detectd(&[
        "hunt",
        "--rules",
        rules_dir.to_str().unwrap(),
        "--exceptions",
        lists_arg,
        "--now",
        NOW,
        events_arg,
    ]);
    let hunted = String::from_utf8_lossy(&hunt.stdout);
    assert_eq!(hunted.lines().count(), 1, "{hunted}");
    assert!(
        hunted.contains(&format!("\"_id\":\"{id}\"")),
        "{id} vs {hunted}"
    );
}

/// An EQL rule's filters and exceptions in `--event`: each event is kept
/// or removed before any stage, and what is removed does not alert.
#[test]
fn explain_event_shows_what_an_eql_rules_filters_remove() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("cmd.toml");
    std::fs::write(
        &rule,
        "[rule]\nrule_id = \"cmd\"\nname = \"cmd\"\ndescription = \"d\"\ntype = \"eql\"\n\
         language = \"eql\"\nindex = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
         query = 'process where process.name == \"cmd.exe\"'\n\
         [[rule.filters]]\n[rule.filters.meta]\nnegate = true\ndisabled = false\n\
         [rule.filters.query.match_phrase]\n\"host.name\" = \"build-01\"\n",
    )
    .unwrap();
    let events = dir.path().join("events.ndjson");
    let cmd = |host: &str| {
        serde_json::json!({"@timestamp": "2024-05-01T09:58:00Z", "event": {"category": "process"},
                           "process": {"name": "cmd.exe"}, "host": {"name": host}})
        .to_string()
    };
    std::fs::write(&events, format!("{}\n{}\n", cmd("ws-1"), cmd("build-01"))).unwrap();
    let out = detectd(&[
        "explain",
        rule.to_str().unwrap(),
        "--now",
        NOW,
        "--event",
        events.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("  filters      1 Kibana filter"), "{text}");
    let constraints: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("constraints"))
        .collect();
    assert_eq!(constraints.len(), 2, "{text}");
    assert!(constraints[0].contains("kept"), "{text}");
    assert!(constraints[1].contains("removed"), "{text}");
    // the search carries the negated filter
    assert!(
        text.contains("\"must_not\"") && text.contains("build-01"),
        "{text}"
    );
    // what the filter removed is not among the alerts shown
    let alerts: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("alert "))
        .collect();
    assert_eq!(alerts.len(), 1, "{text}");
    assert!(alerts[0].contains("events.ndjson:1 "), "{text}");
}

#[test]
fn explain_a_cron_rule_names_its_schedule_and_next_fire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("business_hours.toml");
    let text = std::fs::read_to_string(root().join(FOUNDING))
        .unwrap()
        .replace(
            "interval = \"5m\"",
            "cron = \"*/5 9-17 * * MON-FRI\"\ncron_timezone = \"Europe/Berlin\"",
        );
    std::fs::write(&path, text).unwrap();
    // Wednesday 2024-05-01 10:00 UTC is 12:00 in Berlin: on time, the
    // previous fire was 5 minutes before
    let out = detectd(&["explain", path.to_str().unwrap(), "--now", NOW]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for part in [
        "Next run: at 2024-05-01T10:00:00.000Z (on time: the previous run was 5m earlier)",
        "schedule     cron `*/5 9-17 * * MON-FRI` in Europe/Berlin: runs at its fires (next after \
         2024-05-01T10:00:00.000Z: 2024-05-01T10:05:00.000Z)",
        "catch-up     each run covers the time since the checkpoint, one window per 5m: the time \
         between two fires is caught up, not a gap",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert!(!text.contains("first run"), "{text}");
}

/// A threshold rule: its groups and value in the header, the count in the
/// search section, the threshold id recipe, and `--event` naming the group
/// an event is counted in (or why it is in none).
#[test]
fn explain_a_threshold_rule_names_its_groups() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("spray.toml");
    std::fs::write(
        &rule,
        "[rule]\nrule_id = \"spray\"\nname = \"Password spraying\"\ndescription = \"d\"\n\
         type = \"threshold\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\nquery = 'event.outcome:failure'\n\
         [rule.threshold]\nfield = [\"source.ip\"]\nvalue = 25\n",
    )
    .unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        "{\"@timestamp\": \"2024-05-01T10:00:00Z\", \"event\": {\"outcome\": \"failure\"}, \"source\": {\"ip\": \"10.0.0.1\"}}\n\
         {\"@timestamp\": \"2024-05-01T10:01:00Z\", \"event\": {\"outcome\": \"failure\"}}\n",
    )
    .unwrap();
    let out = detectd(&[
        "explain",
        rule.to_str().unwrap(),
        "--now",
        NOW,
        "--event",
        events.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "  type         threshold, KQL, translated for the indices' field types as Kibana does: one alert per value of source.ip reached by at least 25 matching events\n",
        "  pushdown     none: the query is the search's own filter (the last clause of `query`); the matching events are counted per group of source.ip",
        "  threshold alert  sha256(indices joined by \",\" ‖ group ‖ \"undefined\" ‖ \"default:spray\")\n",
        "matches: counted in group source.ip=\"10.0.0.1\"\n",
        "matches the query, but is in no group (no source.ip)\n",
        "1 of 2 events are counted; a group alerts at 25 in one window\n",
        "  shared scans   none: a threshold rule asks the cluster its own questions\n",
        "  near-real-time does not tail: only EQL and query rules tail",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn explain_esql_and_ml_rules_shows_what_elasticsearch_is_sent() {
    let fixture = |name: &str| {
        root()
            .join("tests/fixtures/cluster_only")
            .join(name)
            .display()
            .to_string()
    };
    let out = detectd(&["explain", &fixture("esql_stats.toml"), "--now", NOW]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for part in [
        "type         esql, run by Elasticsearch (needs Elasticsearch 8.11 or later (ES|QL)): aggregating (STATS by user.name, host.name)",
        "request (the next window)",
        "\"POST /_query/async?drop_null_columns=true\"",
        "| limit 301\"",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    let out = detectd(&["explain", &fixture("ml.toml"), "--now", NOW]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for part in [
        "anomaly records of v3_rare_process_by_host, v3_rare_parent with record_score >= 75",
        "\"POST /.ml-anomalies-*/_search\"",
        "\"query\": \"job_id:v3_rare_process_by_host OR job_id:v3_rare_parent\"",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

/// A threat_match rule: its indicators, mappings, join and enrichments.
#[test]
fn explain_a_threat_match_rule_says_how_it_joins() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("tm.toml");
    std::fs::write(
        &rule,
        "[rule]\nrule_id = \"tm\"\nname = \"Indicator match\"\ndescription = \"d\"\n\
         type = \"threat_match\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"high\"\nrisk_score = 73\nquery = 'destination.ip:*'\n\
         threat_index = [\"logs-ti_*\"]\nthreat_query = 'event.kind:enrichment'\n\
         [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"destination.ip\"\n\
         type = \"mapping\"\nvalue = \"threat.indicator.ip\"\n\
         [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"host.name\"\n\
         type = \"mapping\"\nvalue = \"threat.indicator.host\"\n\
         [[rule.threat_mapping.entries]]\nfield = \"user.name\"\ntype = \"mapping\"\n\
         value = \"threat.indicator.user\"\n",
    )
    .unwrap();
    let out = detectd(&["explain", rule.to_str().unwrap(), "--now", NOW]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "  type         threat_match, KQL, translated for the indices' field types as Kibana does: one alert per event that matches an indicator, with threat.enrichments\n",
        "  indicators   logs-ti_*\n",
        "  threat_query event.kind:enrichment (KQL)\n",
        "  mapping      (event.destination.ip == indicator.threat.indicator.ip) or (event.host.name == indicator.threat.indicator.host and event.user.name == indicator.threat.indicator.user)\n",
        "  join         a local hash join",
        "  ind. search  no time range",
        "looked up in the run's indicators",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

/// A new_terms rule: its fields and history start in the header, the
/// window and its history as the search range, the pushdown, the id
/// recipe, and `--event` naming an event's tuple (or why it has none).
#[test]
fn explain_a_new_terms_rule_names_its_fields_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("new_parent.toml");
    std::fs::write(
        &rule,
        "[rule]\nrule_id = \"new-parent\"\nname = \"New parent\"\ndescription = \"d\"\n\
         type = \"new_terms\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"low\"\nrisk_score = 21\nfrom = \"now-9m\"\nquery = 'event.category:process'\n\
         [rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"host.id\", \"process.parent.name\"]\n\
         [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-7d\"\n",
    )
    .unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        "{\"@timestamp\": \"2024-05-01T10:00:00Z\", \"event\": {\"category\": \"process\"}, \"host\": {\"id\": \"h1\"}, \"process\": {\"parent\": {\"name\": [\"a\", \"b\"]}}}\n\
         {\"@timestamp\": \"2024-05-01T10:01:00Z\", \"event\": {\"category\": \"process\"}, \"host\": {\"id\": \"h1\"}}\n",
    )
    .unwrap();
    let out = detectd(&[
        "explain",
        rule.to_str().unwrap(),
        "--now",
        NOW,
        "--event",
        events.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "  type         new_terms, KQL, translated for the indices' field types as Kibana does: one alert per tuple of host.id, process.parent.name first seen in the window (none since history_window_start = now-7d, relative to the window's end), on its first event there\n",
        "(the window, and its history from history_window_start",
        "on a cluster composite aggregations over host.id, process.parent.name",
        "  new_terms alert  sha256(_index ‖ _id ‖ \"undefined\" ‖ \"default:new-parent\" ‖ the tuple as a JSON array)",
        "matches: tuple [\"h1\",\"a\"], [\"h1\",\"b\"]; it alerts if",
        "matches the query, but lacks one of host.id, process.parent.name: it has no tuple",
        "1 of 2 events have a tuple; a tuple alerts once, on its first event in a window, when its history does not hold it\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
