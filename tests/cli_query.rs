//! Black-box `detectd query`: the EQL search API response shape, caret
//! diagnostics, and hostile queries that must be errors, not crashes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn detectd(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("detectd runs");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("detectd finishes")
}

const EVENTS: &str = r#"{"@timestamp": "2024-01-01T00:00:03Z", "event": {"category": "network"}, "host": {"id": "h1"}, "process": {"name": "powershell.exe"}, "destination": {"port": 135, "address": "10.0.0.5"}}
{"@timestamp": "2024-01-01T00:00:01Z", "event": {"category": "library"}, "host": {"id": "h1"}, "process": {"name": "PowerShell.EXE"}, "dll": {"name": "taskschd.dll"}}
not json
{"@timestamp": "2024-01-01T00:00:02Z", "event": {"category": "process"}, "host": {"id": "h1"}, "process": {"name": "cmd.exe"}}
"#;

fn events_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, EVENTS).unwrap();
    path.display().to_string()
}

fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn event_query_prints_hits_in_time_order_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = events_file(&dir);
    let out = detectd(
        &["query", "-e", &file, "any where process.name : \"*.exe\""],
        None,
    );
    let r = json_stdout(&out);
    assert_eq!(r["hits"]["total"]["value"], 3);
    let ids: Vec<&str> = r["hits"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "4", "1"], "ordered by @timestamp, _id = line");
    assert_eq!(r["hits"]["events"][0]["_index"], "events.ndjson");
    assert_eq!(
        r["hits"]["events"][0]["_source"]["dll"]["name"],
        "taskschd.dll"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("events.ndjson:3: skipped: invalid JSON"),
        "{stderr}"
    );
}

#[test]
fn size_and_result_position_pick_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = events_file(&dir);
    for (pos, want) in [("head", "2"), ("tail", "1")] {
        let out = detectd(
            &[
                "query",
                "-e",
                &file,
                "--size",
                "1",
                "--result-position",
                pos,
                "any where true",
            ],
            None,
        );
        let r = json_stdout(&out);
        assert_eq!(r["hits"]["events"][0]["_id"], want, "{pos}");
    }
}

#[test]
fn sequence_query_reads_stdin_and_prints_join_keys() {
    let out = detectd(
        &[
            "query",
            "sequence by host.id with maxspan=5s [library where dll.name : \"taskschd.dll\"] [network where destination.port == 135]",
        ],
        Some(EVENTS),
    );
    let r = json_stdout(&out);
    let seqs = r["hits"]["sequences"].as_array().expect("sequences");
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0]["join_keys"], serde_json::json!(["h1"]));
    let ids: Vec<&str> = seqs[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "1"]);
    assert_eq!(seqs[0]["events"][0]["_index"], "stdin");
}

#[test]
fn syntax_error_shows_line_column_and_caret() {
    let out = detectd(
        &[
            "query",
            "process where process.name == \"a\" and (pid > 5 or",
        ],
        Some(""),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("<query>:1:50: error: expected an expression, found end of query"),
        "{stderr}"
    );
    let caret_line = stderr.lines().nth(3).unwrap();
    assert_eq!(caret_line.find('^'), Some(4 + 49), "{stderr}");
}

#[test]
fn semantic_errors_are_all_reported() {
    let out = detectd(
        &["query", "process where foo(x) and length(a, b) > 1"],
        Some(""),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(": error: ").count(), 2, "{stderr}");
    assert!(stderr.contains("<query>:1:15: error:"), "{stderr}");
}

#[test]
fn hostile_queries_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("nested.eql");
    let deep = format!(
        "process where {}true{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    std::fs::write(&nested, deep).unwrap();
    let huge = dir.path().join("huge.eql");
    std::fs::write(
        &huge,
        format!("process where a == \"{}\"", "x".repeat(5 << 20)),
    )
    .unwrap();
    let nots = dir.path().join("nots.eql");
    std::fs::write(
        &nots,
        format!("process where {}true", "not ".repeat(10_000)),
    )
    .unwrap();

    for (file, expect) in [
        (&nested, "nested too deeply"),
        (&huge, "query is too long"),
        (&nots, "nested too deeply"),
    ] {
        let out = detectd(
            &["query", "--query-file", &file.display().to_string()],
            Some(""),
        );
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{stderr}");
        assert!(
            stderr.len() < 2000,
            "diagnostic stays short: {} bytes",
            stderr.len()
        );
    }
}

#[test]
fn sorted_streaming_gives_the_same_answer_as_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synth.ndjson");
    let gen = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["generate", "--count", "20000", "--attacks-per-10k", "30"])
        .output()
        .unwrap();
    assert!(gen.status.success());
    std::fs::write(&file, &gen.stdout).unwrap();
    let file = file.display().to_string();
    let seq = "sequence by host.id, process.entity_id with maxspan=5s \
        [library where dll.name : \"taskschd.dll\"] [network where destination.port == 135]";
    for query in [seq, "network where destination.port == 135 | head 7"] {
        let base = ["query", "-e", &file, "--size", "1000", query];
        let sorted_run = json_stdout(&detectd(&[&base[..], &["--sorted"]].concat(), None));
        let default_run = json_stdout(&detectd(&base, None));
        assert_eq!(sorted_run, default_run, "{query}");
        assert!(
            default_run["hits"]["total"]["value"].as_u64().unwrap() > 5,
            "{query}"
        );
    }
}

#[test]
fn sorted_streaming_rejects_events_out_of_time_order() {
    let out = detectd(&["query", "--sorted", "any where true"], Some(EVENTS));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("events are not in time order: stdin:2"),
        "{stderr}"
    );
}

#[test]
fn pending_state_cap_overflow_is_reported_not_silent() {
    // many distinct keys start a sequence that never completes, so without
    // maxspan only the cap bounds the state
    let mut events = String::new();
    for i in 0..50 {
        events.push_str(&format!(
            "{{\"@timestamp\": {i}, \"event\": {{\"category\": \"process\"}}, \"user\": \"u{i}\"}}\n"
        ));
    }
    let query = "sequence by user [process where true] [network where true]";
    let capped = detectd(&["query", "--max-pending", "10", query], Some(&events));
    let r = json_stdout(&capped);
    assert_eq!(r["hits"]["total"]["value"], 0);
    let stderr = String::from_utf8_lossy(&capped.stderr);
    assert!(
        stderr.contains("40 partial sequences were dropped at the limit of 10 pending"),
        "{stderr}"
    );
    let roomy = detectd(&["query", query], Some(&events));
    assert!(
        roomy.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&roomy.stderr)
    );
}

/// Two files whose mappings disagree on `destination.ip`: an `ip` in one,
/// a `keyword` in the other; `--mapping FILE` for every file and
/// `--mapping NAME=FILE` for one.
#[test]
fn mappings_apply_per_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"@timestamp": 1700000000000, "event": {"category": "network"}, "destination": {"ip": "10.0.0.1"}, "tags": null}"#;
    let ips = dir.path().join("ips");
    let texts = dir.path().join("texts");
    std::fs::write(&ips, format!("{line}\n")).unwrap();
    std::fs::write(&texts, format!("{line}\n")).unwrap();
    let ip_mapping = dir.path().join("ip.json");
    std::fs::write(
        &ip_mapping,
        r#"{"ips": {"mappings": {"properties": {"destination": {"properties": {"ip": {"type": "ip"}}}}}}}"#,
    )
    .unwrap();
    let general = dir.path().join("general.json");
    std::fs::write(
        &general,
        r#"{"properties": {"destination": {"properties": {"ip": {"type": "keyword"}}},
            "tags": {"type": "keyword", "null_value": "none"}}}"#,
    )
    .unwrap();
    let (ips_s, texts_s) = (ips.display().to_string(), texts.display().to_string());
    let named = format!("ips={}", ip_mapping.display());
    let general_s = general.display().to_string();
    let query = |q: &str, mappings: &[&str]| -> Vec<String> {
        let mut args = vec!["query", "-e", &ips_s, "-e", &texts_s];
        for m in mappings {
            args.extend(["--mapping", m]);
        }
        args.push(q);
        let r = json_stdout(&detectd(&args, None));
        r["hits"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["_index"].as_str().unwrap().to_string())
            .collect()
    };
    let mapped = r#"network where destination.ip == "::ffff:10.0.0.1""#;
    assert_eq!(query(mapped, &[&named, &general_s]), ["ips"]);
    assert!(query(mapped, &[]).is_empty());
    // the general mapping reaches the file the named one does not cover
    assert_eq!(
        query(r#"any where tags == "none""#, &[&named, &general_s]),
        ["ips", "texts"]
    );
    assert!(query(r#"any where tags == "none""#, &[&named]).is_empty());
}

#[test]
fn a_bad_mapping_is_a_clear_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = events_file(&dir);
    let bad = dir.path().join("bad-mapping.json");
    std::fs::write(
        &bad,
        "{\n  \"properties\": {\"a\": {\"type\": \"alias\"}}\n}\n",
    )
    .unwrap();
    let out = detectd(
        &[
            "query",
            "-e",
            &file,
            "--mapping",
            &bad.display().to_string(),
            "any where true",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: invalid mapping: alias `a` has no `path`",
            bad.display()
        )),
        "{stderr}"
    );
    let out = detectd(
        &[
            "query",
            "-e",
            &file,
            "--mapping",
            "other.ndjson=/nonexistent.json",
            "any where true",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("no events file is named `other.ndjson` (expected one of: `events.ndjson`)"),
        "{stderr}"
    );
    // a literal the mapped type cannot take is a query error with a caret
    let ip = dir.path().join("ip.json");
    std::fs::write(
        &ip,
        r#"{"properties": {"source": {"properties": {"ip": {"type": "ip"}}}}}"#,
    )
    .unwrap();
    let out = detectd(
        &[
            "query",
            "-e",
            &file,
            "--mapping",
            &format!("events.ndjson={}", ip.display()),
            r#"any where source.ip == "nope""#,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("expected an ip address, found \"nope\" (with the mapping of events.ndjson)"),
        "{stderr}"
    );
    assert!(stderr.contains('^'), "{stderr}");
}

/// Several 1 MiB chunks, a malformed line and an event out of order late
/// in the file: one thread and three give the same answer and warnings,
/// from a file (streamed, then sorted when the order breaks) and from stdin.
#[test]
fn threads_give_the_same_answer_and_warnings() {
    let generated = detectd(&["generate", "--count", "6000"], None);
    assert!(generated.status.success());
    let mut lines: Vec<String> = String::from_utf8(generated.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[4999] = "{\"broken\": ".to_string();
    // the event of line 5,500 goes to line 5,900: out of order there
    let moved = lines.remove(5499);
    lines.insert(5899, moved);
    let text = lines.join("\n") + "\n";
    assert!(text.len() > 2 << 20, "more than two chunks");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, &text).unwrap();
    let file = path.display().to_string();
    let queries = [
        r#"process where process.name : ("powershell.exe", "cmd.exe")"#,
        r#"sequence by process.entity_id with maxspan=30s
             [process where true] [library where true]"#,
    ];
    for query in queries {
        for from_stdin in [false, true] {
            let run = |threads: &str| {
                let mut args = vec!["query", "--size", "50", "--threads", threads];
                if !from_stdin {
                    args.extend(["-e", file.as_str()]);
                }
                args.push(query);
                detectd(&args, from_stdin.then_some(text.as_str()))
            };
            let one = run("1");
            let three = run("3");
            let answer = json_stdout(&one);
            assert!(answer["hits"]["total"]["value"].as_u64().unwrap() > 0);
            assert_eq!(one.stdout, three.stdout, "{query}, stdin {from_stdin}");
            let warnings = String::from_utf8_lossy(&one.stderr);
            assert!(
                warnings.contains(":5000: skipped: invalid JSON"),
                "{warnings}"
            );
            assert_eq!(one.stderr, three.stderr, "{query}, stdin {from_stdin}");
        }
    }
}
