//! Black-box `detectd query --language kql|lucene`: a query rule's query
//! over NDJSON, answered in the shape of an EQL event query, with the
//! mapping's field types, caret diagnostics, and Lucene outside the subset
//! detectd evaluates refused rather than answered wrongly.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn detectd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .output()
        .expect("detectd runs")
}

fn events(dir: &tempfile::TempDir) -> String {
    let lines = [
        json!({"@timestamp": "2024-05-01T09:03:00Z", "event": {"category": "authentication", "outcome": "failure"}, "user": {"name": "admin"}, "source": {"ip": "10.1.2.3"}}),
        json!({"@timestamp": "2024-05-01T09:01:00Z", "event": {"category": "authentication", "outcome": "success"}, "user": {"name": "alice"}, "source": {"ip": "192.168.0.9"}}),
        json!({"@timestamp": "2024-05-01T09:02:00Z", "event": {"category": "authentication", "outcome": "failure"}, "user": {"name": "Admin"}, "source": {"ip": "10.9.9.9"}}),
    ];
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str("[1, 2]\n");
    let path = dir.path().join("auth.ndjson");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn answer(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn ids(r: &Value) -> Vec<&str> {
    r["hits"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap())
        .collect()
}

#[test]
fn kql_answers_like_an_eql_event_query() {
    let dir = tempfile::tempdir().unwrap();
    let file = events(&dir);
    let out = detectd(&[
        "query",
        "--language",
        "kql",
        "-e",
        &file,
        "event.outcome:failure and user.name:admin*",
    ]);
    let r = answer(&out);
    assert_eq!(r["hits"]["total"], json!({"value": 2, "relation": "eq"}));
    // oldest first, _id = line, _index = file name
    assert_eq!(ids(&r), ["3", "1"]);
    assert_eq!(r["hits"]["events"][0]["_index"], "auth.ndjson");
    assert_eq!(r["hits"]["events"][0]["_source"]["user"]["name"], "Admin");
    assert!(r["hits"].get("sequences").is_none());
    assert_eq!(r["is_partial"], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.ndjson:4: skipped: expected a JSON object"),
        "{stderr}"
    );
    // --size and --result-position cut as for EQL
    let out = detectd(&[
        "query",
        "--language",
        "kql",
        "-e",
        &file,
        "--size",
        "1",
        "--result-position",
        "head",
        "event.category:authentication",
    ]);
    let r = answer(&out);
    assert_eq!(r["hits"]["total"]["value"], 3);
    assert_eq!(ids(&r), ["2"]);
}

#[test]
fn the_mapping_decides_how_a_value_matches() {
    let dir = tempfile::tempdir().unwrap();
    let file = events(&dir);
    let query = "user.name:admin";
    // without a mapping `user.name` is dynamic text: `Admin` matches
    let r = answer(&detectd(&[
        "query",
        "--language",
        "kql",
        "-e",
        &file,
        query,
    ]));
    assert_eq!(ids(&r), ["3", "1"]);
    // as keyword the match is exact
    let mapping = dir.path().join("mapping.json");
    std::fs::write(
        &mapping,
        json!({"properties": {"user": {"properties": {"name": {"type": "keyword"}}}}}).to_string(),
    )
    .unwrap();
    let r = answer(&detectd(&[
        "query",
        "--language",
        "kql",
        "-e",
        &file,
        "--mapping",
        mapping.to_str().unwrap(),
        query,
    ]));
    assert_eq!(ids(&r), ["1"]);
    // a CIDR matches an `ip` field; dynamic mapping would have made the
    // addresses text, where it matches nothing
    let cidr = "source.ip:10.0.0.0/8";
    let r = answer(&detectd(&["query", "--language", "kql", "-e", &file, cidr]));
    assert_eq!(ids(&r), Vec::<&str>::new());
    std::fs::write(
        &mapping,
        json!({"properties": {"source": {"properties": {"ip": {"type": "ip"}}}}}).to_string(),
    )
    .unwrap();
    let r = answer(&detectd(&[
        "query",
        "--language",
        "kql",
        "-e",
        &file,
        "--mapping",
        mapping.to_str().unwrap(),
        cidr,
    ]));
    assert_eq!(ids(&r), ["3", "1"]);
}

#[test]
fn a_kql_syntax_error_shows_a_caret() {
    let out = detectd(&["query", "--language", "kql", "user.name:(admin or"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("<query>:1:20: error: expected "),
        "{stderr}"
    );
    assert!(stderr.contains('^'), "{stderr}");
}

#[test]
fn lucene_runs_its_subset_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = events(&dir);
    let r = answer(&detectd(&[
        "query",
        "--language",
        "lucene",
        "-e",
        &file,
        "event.outcome:failure AND NOT user.name:Admin",
    ]));
    // dynamic text: `Admin` is analysed to `admin`, both failures go
    assert_eq!(ids(&r), Vec::<&str>::new());
    let out = detectd(&[
        "query",
        "--language",
        "lucene",
        "-e",
        &file,
        "user.name:adm~2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<query>: error: cannot evaluate offline"),
        "{stderr}"
    );
}
