//! The answer of `run_query` is the same on any number of threads and any
//! chunk size: hits and their order, totals, bad lines and their order,
//! the out-of-order error's line.

use std::path::Path;

use serde_json::{json, Value};

use crate::eql::compile::{CompileOptions, PlanSet};
use crate::eql::schema::Schema;
use crate::eql::search::SearchOptions;
use crate::offline::chunks::Threads;
use crate::offline::{run_query, Input, OfflineError};

/// The thread counts and chunk sizes every answer is checked with; the
/// first is the calling thread alone.
const SETUPS: [Threads; 4] = [
    Threads {
        workers: 1,
        chunk_bytes: 1 << 20,
    },
    Threads {
        workers: 2,
        chunk_bytes: 1 << 20,
    },
    Threads {
        workers: 2,
        chunk_bytes: 97,
    },
    // chunks shorter than a line: in a file read by position, most blocks
    // hold no line start, and a line's block reads on past its end
    Threads {
        workers: 3,
        chunk_bytes: 41,
    },
];

/// 2,000 events, a blank line after every 100th, two unreadable lines and
/// one event without a timestamp late in the file. With `swap`, the events
/// of lines `swap` take the other's timestamp (out of order). Returns the
/// text and the line numbers of the events `process.name == "cmd.exe"`
/// matches (category process every 3rd, cmd.exe every 5th).
fn events(swap: Option<(usize, usize)>) -> (String, Vec<u64>) {
    let mut text = String::new();
    let mut line = 0u64;
    let mut matching = Vec::new();
    let mut stamps: Vec<i64> = (0..2000)
        .map(|i| 1_700_000_000_000 + i / 2 * 1000)
        .collect();
    if let Some((a, b)) = swap {
        stamps.swap(a, b);
    }
    for i in 0..2000usize {
        line += 1;
        match i {
            1500 => text.push_str("{not json\n"),
            1777 => text.push_str("[1, 2]\n"),
            _ => {
                let category = ["process", "network", "library"][i % 3];
                let name = if i % 5 == 0 { "cmd.exe" } else { "svchost.exe" };
                let mut doc = json!({
                    "@timestamp": stamps[i],
                    "event": {"category": category},
                    "host": {"id": format!("h{}", i % 4)},
                    "process": {"name": name},
                    "n": i,
                });
                if i == 1600 {
                    doc.as_object_mut().unwrap().remove("@timestamp");
                }
                if i % 15 == 0 {
                    matching.push(line);
                }
                text.push_str(&doc.to_string());
                text.push('\n');
            }
        }
        if i % 100 == 99 {
            line += 1;
            text.push_str("  \n");
        }
    }
    (text, matching)
}

struct Answer {
    response: Value,
    bad: Vec<String>,
}

fn run(query: &str, path: &Path, sorted: bool, threads: Threads) -> Result<Answer, OfflineError> {
    run_sized(query, path, sorted, threads, 7)
}

fn run_sized(
    query: &str,
    path: &Path,
    sorted: bool,
    threads: Threads,
    size: usize,
) -> Result<Answer, OfflineError> {
    let ast = crate::eql::parse(query).unwrap();
    let plans = PlanSet::compile(
        &ast,
        &CompileOptions::default(),
        &Schema::default(),
        std::iter::empty(),
    )
    .unwrap();
    let opts = SearchOptions {
        size,
        ..SearchOptions::default()
    };
    let mut bad = Vec::new();
    let outcome = run_query(
        &plans,
        &[Input::File(path.to_path_buf())],
        &opts,
        sorted,
        None,
        threads,
        |b| bad.push(b.to_string()),
    )?;
    Ok(Answer {
        response: serde_json::to_value(&outcome.response).unwrap(),
        bad,
    })
}

/// Runs `query` with every setup: the same answer each time, returned.
fn same_everywhere(query: &str, path: &Path, sorted: bool) -> Answer {
    let first = run(query, path, sorted, SETUPS[0]).unwrap();
    for threads in &SETUPS[1..] {
        let other = run(query, path, sorted, *threads).unwrap();
        assert_eq!(other.response, first.response, "{query} with {threads:?}");
        assert_eq!(other.bad, first.bad, "{query} with {threads:?}");
    }
    first
}

fn ids(response: &Value) -> Vec<String> {
    response["hits"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect()
}

const EVENT_QUERY: &str = r#"process where process.name == "cmd.exe""#;
const SEQUENCE: &str = r#"sequence by host.id with maxspan=3s
  [process where process.name == "cmd.exe"] [network where true]"#;
const SAMPLE: &str = r#"sample by host.id [process where true] [library where true]"#;

#[test]
fn an_event_query_in_time_order_is_the_same_on_any_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let (text, matching) = events(None);
    std::fs::write(&path, text).unwrap();
    let answer = same_everywhere(EVENT_QUERY, &path, false);
    assert_eq!(
        answer.response["hits"]["total"]["value"],
        json!(matching.len())
    );
    let want: Vec<String> = matching[matching.len() - 7..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(ids(&answer.response), want, "the last 7, in time order");
    // lines 1,516 and 1,795: event 1500 and 1777 after 15 and 17 blank lines
    assert_eq!(
        answer
            .bad
            .iter()
            .map(|b| b.split(": ").next().unwrap())
            .collect::<Vec<_>>(),
        ["events.ndjson:1516", "events.ndjson:1795"]
    );
    // also with --sorted
    let sorted = same_everywhere(EVENT_QUERY, &path, true);
    assert_eq!(sorted.response, answer.response);
}

#[test]
fn a_large_answer_shows_each_hit_its_own_line_on_any_threads() {
    // more hits than one thread reads back alone (`show_all` shares out
    // more than 256), events and sequences
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, events(None).0).unwrap();
    for query in ["process where true", SEQUENCE] {
        let first = run_sized(query, &path, false, SETUPS[0], 10_000).unwrap();
        for threads in &SETUPS[1..] {
            let other = run_sized(query, &path, false, *threads, 10_000).unwrap();
            assert_eq!(other.response, first.response, "{query} with {threads:?}");
        }
        let hits = &first.response["hits"];
        let shown: Vec<&Value> = match hits["events"].as_array() {
            Some(events) => events.iter().collect(),
            None => hits["sequences"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["events"].as_array().unwrap())
                .collect(),
        };
        assert!(shown.len() > 256, "{query}: {} hits", shown.len());
        for hit in shown {
            // event `n` is on line n + 1, after a blank line per 100 before it
            let n = hit["_source"]["n"].as_u64().unwrap();
            assert_eq!(hit["_id"], json!((n + 1 + n / 100).to_string()), "{query}");
        }
    }
}

#[test]
fn sequences_and_samples_are_the_same_on_any_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, events(None).0).unwrap();
    let answer = same_everywhere(SEQUENCE, &path, false);
    // more than `size` found: the last 7 are shown
    assert_eq!(
        answer.response["hits"]["sequences"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    // the event without a timestamp (event 1600, line 1,617) is reported
    // between the two unreadable lines
    let lines: Vec<&str> = answer
        .bad
        .iter()
        .map(|b| b.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "events.ndjson:1516",
            "events.ndjson:1617",
            "events.ndjson:1795"
        ]
    );
    let samples = same_everywhere(SAMPLE, &path, false);
    assert_eq!(
        samples.response["hits"]["total"]["value"],
        json!(4),
        "one per host"
    );
}

#[test]
fn an_unsorted_file_is_sorted_and_with_sorted_fails_at_the_same_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    // event 1950 takes the time of event 1200 (and the other way round)
    std::fs::write(&path, events(Some((1200, 1950))).0).unwrap();
    for query in [EVENT_QUERY, SEQUENCE] {
        let answer = same_everywhere(query, &path, false);
        assert!(answer.response["hits"]["total"]["value"].as_u64().unwrap() > 0);
        for threads in SETUPS {
            match run(query, &path, true, threads) {
                // event 1201 (line 1,214) is older than event 1200
                Err(OfflineError::OutOfOrder { index, line }) => {
                    assert_eq!(
                        (index.as_str(), line),
                        ("events.ndjson", 1214),
                        "{threads:?}"
                    )
                }
                other => panic!("out of order expected, got {:?}", other.map(|a| a.response)),
            }
        }
    }
    // sorted in memory, the event query finds event 1950 where event 1200 was
    let answer = same_everywhere(EVENT_QUERY, &path, false);
    let (_, matching) = events(None);
    assert_eq!(
        answer.response["hits"]["total"]["value"],
        json!(matching.len())
    );
}
