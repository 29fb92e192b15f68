//! Elasticsearch EQL conformance through the command line, the way a user
//! would replay the QA suites: each index's data as an NDJSON file named
//! like the index, its mapping file beside it, and one `detectd query`
//! process per case and result position with `--events` and `--mapping
//! NAME=FILE` for every index of the suite. All 298 cases must give the
//! expected event ids and join keys (`tests/conformance.rs` runs the same
//! cases through the library).
//!
//! Preparing the files does what Elasticsearch's `DataLoader` does before
//! indexing: `test_data.json` gets its `@timestamp` (from the Windows
//! FILETIME `timestamp`) and the mapping placeholder type
//! `[runtime_random_keyword_type]` becomes `keyword`. The mappings keep
//! their `#` comment lines: `--mapping` reads them as comments.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{Case, Suite};
use serde_json::Value;

/// Default `size` of the spec runner.
const DEFAULT_SIZE: usize = 50;
const TOTAL_CASES: usize = 298;

/// The events files and mapping arguments of a suite.
struct Prepared {
    events: Vec<PathBuf>,
    mappings: Vec<String>,
}

fn prepare(qa: &Path, suite: &Suite, dir: &Path) -> Prepared {
    let mut events = Vec::new();
    let mut mappings = Vec::new();
    for index in suite.indices {
        let file = dir.join(index);
        let mut text = String::new();
        for doc in common::load_index_docs(qa, index) {
            text.push_str(&serde_json::to_string(&doc).unwrap());
            text.push('\n');
        }
        std::fs::write(&file, text).unwrap();
        events.push(file);
        let original = std::fs::read_to_string(qa.join("data").join(format!("{index}.mapping")))
            .unwrap()
            .replace("[runtime_random_keyword_type]", "keyword");
        let mapping = dir.join(format!("{index}.mapping.json"));
        std::fs::write(&mapping, original).unwrap();
        mappings.push(format!("{index}={}", mapping.display()));
    }
    Prepared { events, mappings }
}

/// A join key as the Java runner prints it.
fn java_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(d)) => detectd::eql::value::java_double(d),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn event_id(event: &Value, suite: &Suite) -> i64 {
    if event["missing"] == Value::Bool(true) {
        return -1;
    }
    common::event_id(&event["_source"], suite.id_field)
}

/// Runs one case in one result position through the binary.
fn run_case(case: &Case, suite: &Suite, files: &Prepared, position: &str) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
    cmd.arg("query");
    for e in &files.events {
        cmd.arg("--events").arg(e);
    }
    for m in &files.mappings {
        cmd.arg("--mapping").arg(m);
    }
    if let Some(tb) = suite.tiebreaker {
        cmd.args(["--tiebreaker-field", tb]);
    }
    cmd.args(["--size", &case.size.unwrap_or(DEFAULT_SIZE).to_string()]);
    cmd.args(["--result-position", position]);
    if let Some(n) = case.max_samples_per_key.filter(|n| *n > 0) {
        cmd.args(["--max-samples-per-key", &n.to_string()]);
    }
    cmd.arg(&case.query);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run detectd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let resp: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("stdout is not JSON: {e}"))?;
    let (ids, keys): (Vec<i64>, Vec<String>) =
        if let Some(events) = resp["hits"]["events"].as_array() {
            (events.iter().map(|e| event_id(e, suite)).collect(), vec![])
        } else if let Some(seqs) = resp["hits"]["sequences"].as_array() {
            (
                seqs.iter()
                    .flat_map(|s| s["events"].as_array().into_iter().flatten())
                    .map(|e| event_id(e, suite))
                    .collect(),
                seqs.iter()
                    .flat_map(|s| s["join_keys"].as_array().into_iter().flatten())
                    .map(java_string)
                    .collect(),
            )
        } else {
            return Err("response has neither hits.events nor hits.sequences".into());
        };
    if !common::matches_expected(case, &ids) {
        return Err(format!(
            "({position}) expected {:?}, got {ids:?}",
            case.expected
        ));
    }
    if !case.join_keys.is_empty() && keys != case.join_keys {
        return Err(format!(
            "({position}) expected join keys {:?}, got {keys:?}",
            case.join_keys
        ));
    }
    Ok(())
}

#[test]
fn query_with_mappings_passes_every_case_one_process_each() {
    let Some(qa) = common::qa_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut work: Vec<(&Suite, Case)> = Vec::new();
    let mut prepared = Vec::new();
    for suite in &common::ALL_SUITES {
        let suite_dir = dir.path().join(suite.name);
        std::fs::create_dir(&suite_dir).unwrap();
        prepared.push(prepare(&qa, suite, &suite_dir));
        for case in common::load_suite_cases(&qa, suite) {
            work.push((suite, case));
        }
    }
    assert_eq!(
        work.len(),
        TOTAL_CASES,
        "the suites hold {TOTAL_CASES} cases"
    );
    let suite_files = |suite: &Suite| {
        let i = common::ALL_SUITES
            .iter()
            .position(|s| s.name == suite.name)
            .unwrap();
        &prepared[i]
    };

    // Two workers: one process at a time each.
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((suite, case)) = work.get(i) else {
                    break;
                };
                for position in ["head", "tail"] {
                    if let Err(why) = run_case(case, suite, suite_files(suite), position) {
                        failures.lock().unwrap().push(format!(
                            "FAIL {}/{} ({}): {why}\n  query: {}",
                            suite.name, case.name, case.file, case.query
                        ));
                        break;
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    for f in &failures {
        println!("{f}");
    }
    println!(
        "cli conformance: {}/{TOTAL_CASES} passed",
        TOTAL_CASES - failures.len()
    );
    assert!(failures.is_empty(), "{} cases failed", failures.len());
}
