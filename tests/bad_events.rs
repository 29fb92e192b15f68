//! The bad-event matrix: events whose fields have the wrong JSON type for
//! what the query does with them, odd shapes (mixed arrays, objects where a
//! value is expected, empty arrays, nulls), huge and deeply nested values,
//! missing and odd timestamps, duplicate keys, and lines that are not JSON
//! objects at all.
//!
//! Each row says which query reads the field, which Elasticsearch mapping
//! the row assumes, the bad event, and the outcome: what Elasticsearch does
//! with such a document (see each row's note), or "skipped with a warning"
//! where it cannot be evaluated. Every row runs
//!
//! (a) through the real `detectd query` binary on an NDJSON file whose first
//!     line is a good event that always matches: exit 0, the good event is
//!     still found, the bad one is found exactly when the row says so, and a
//!     skipped line is a warning on stderr naming `file:line`; and
//! (b) where the document can come from a cluster at all (valid UTF-8 JSON
//!     objects), through the `Runner` over the in-memory source, beside the
//!     same good event: the run does not fail, the good event's alert is
//!     written, the bad event is alerted exactly when the row says so.
//!
//! Events without a usable timestamp get their own test for sequences:
//! Elasticsearch cannot order them, so no sequence uses them; detectd says
//! so (a warning per line in `query`, a count and a warning in the run's
//! execution record) instead of dropping them silently.
//!
//! No mapping is read in production (values are typed from the JSON), so a
//! few Elasticsearch behaviours that depend on mapping parameters are not
//! reproduced and are not rows here: a keyword longer than `ignore_above`
//! (not indexed in Elasticsearch, compared whole by detectd), and
//! `coerce: false` fields.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, TimeZone, Utc};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ExecutionRecord, RunStatus, Runner, RunnerSettings};
use detectd::sink::memory::MemorySink;
use detectd::source::memory::MemorySource;
use detectd::source::Document;
use detectd::state::MemoryStateStore;
use serde_json::{json, Value};

const ALERTS: &str = ".alerts-security.alerts-default";

/// What detectd must do with the bad event.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// It matches the query (as Elasticsearch would match the document).
    Match,
    /// It does not match.
    NoMatch,
    /// It cannot be read: skipped, with a warning whose reason contains
    /// this text. Such a line cannot come from a cluster (responses are
    /// UTF-8 JSON), so the runner half does not apply.
    Skipped(&'static str),
    /// No usable timestamp: an event query still matches it, ordered after
    /// every timed event (Elasticsearch sorts missing values last).
    Unordered,
}

use Expect::{Match, NoMatch, Skipped, Unordered};

/// One row of the matrix.
struct Row {
    name: &'static str,
    /// The Elasticsearch mapping of the odd field this row assumes, and why
    /// the outcome is what Elasticsearch does.
    note: &'static str,
    /// The condition on the bad event (see [`event_query`]).
    query: &'static str,
    /// The bad event's NDJSON line (bytes: some rows are not UTF-8).
    line: Vec<u8>,
    expect: Expect,
}

/// The good event every file and run starts with. Its timestamp is later
/// than a bad event's default one, so the order of hits shows whether the
/// bad event was ordered by its timestamp or put last.
fn good() -> Value {
    json!({
        "@timestamp": "2024-05-01T09:58:30.000Z",
        "event": {"category": "network", "ingested": "2024-05-01T09:58:30.000Z"},
        "host": {"id": "h1"},
        "process": {"name": "cmd.exe", "pid": 10, "command_line": "cmd.exe /c evil"},
        "destination": {"port": 445, "address": "10.0.0.5"},
        "labels": {"control": "yes"}
    })
}

/// A bad event: the good event's shape at an earlier time, with `patch`
/// applied (`null` in the patch removes a key; use `Value::Null` inside an
/// array or the `keep_null` marker for an explicit null).
fn bad(patch: Value) -> Vec<u8> {
    let mut doc = good();
    doc["@timestamp"] = json!("2024-05-01T09:58:00.000Z");
    doc["event"]["ingested"] = json!("2024-05-01T09:58:00.000Z");
    doc.as_object_mut().unwrap().remove("labels");
    merge(&mut doc, &patch);
    serde_json::to_vec(&doc).unwrap()
}

fn merge(doc: &mut Value, patch: &Value) {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            for (k, v) in p {
                match v {
                    Value::Null => {
                        d.remove(k);
                    }
                    Value::String(s) if s == "keep_null" => {
                        d.insert(k.clone(), Value::Null);
                    }
                    Value::Object(_) if d.get(k).is_some_and(Value::is_object) => {
                        merge(d.get_mut(k).unwrap(), v);
                    }
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, p) => *d = p.clone(),
    }
}

/// `{"a":{"a":...{"a":1}}}`, `depth` objects deep, as text (serde_json
/// could not build or drop a 10,000-deep value on a test thread's stack).
fn nested_text(key: &str, depth: usize) -> String {
    let mut s = String::with_capacity(depth * (key.len() + 6));
    for _ in 0..depth {
        s.push_str(&format!("{{\"{key}\":"));
    }
    s.push('1');
    for _ in 0..depth {
        s.push('}');
    }
    s
}

/// The bad event with extra raw JSON text spliced in before its last `}`.
fn bad_with_raw(patch: Value, raw_member: &str) -> Vec<u8> {
    let mut line = bad(patch);
    line.pop(); // the closing brace
    line.extend_from_slice(b",");
    line.extend_from_slice(raw_member.as_bytes());
    line.push(b'}');
    line
}

const PORT_EQ: &str = "destination.port == 445";
const PORT_NE: &str = "destination.port != 80";
const NAME_EQ: &str = "process.name == \"cmd.exe\"";

/// The query of a row: its condition, or the good event's own label, so the
/// good event matches every row's query and the bad one only the condition.
fn event_query(condition: &str) -> String {
    format!("network where ({condition}) or labels.control == \"yes\"")
}

fn rows() -> Vec<Row> {
    let huge = format!("{}evil", "x".repeat(4 * 1024 * 1024));
    vec![
        // --- a string where a number is mapped
        Row {
            name: "numeric string for a long",
            note: "destination.port: long; Elasticsearch coerces \"445\" to 445",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": "445"}})),
            expect: Match,
        },
        Row {
            name: "decimal string for a long",
            note: "destination.port: long; \"445.0\" is coerced to 445",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": "445.0"}})),
            expect: Match,
        },
        Row {
            name: "float for a long",
            note: "destination.port: long; 445.0 is coerced to 445",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": 445.0}})),
            expect: Match,
        },
        Row {
            name: "non-numeric string for a long",
            note: "destination.port: long with ignore_malformed (else the document is refused): \"abc\" is not indexed, so == 445 is false",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": "abc"}})),
            expect: NoMatch,
        },
        Row {
            name: "non-numeric string for a long, negated",
            note: "destination.port: long, ignore_malformed: the malformed value is not indexed, so the field is missing and != (a must_not) is true",
            query: PORT_NE,
            line: bad(json!({"destination": {"port": "abc"}})),
            expect: Match,
        },
        Row {
            name: "boolean for a long",
            note: "destination.port: long, ignore_malformed: true is malformed, not indexed",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": true}})),
            expect: NoMatch,
        },
        // --- a number or boolean where a keyword is mapped
        Row {
            name: "number for a keyword",
            note: "process.name: keyword; 123 is indexed as the term \"123\"",
            query: "process.name == \"123\"",
            line: bad(json!({"process": {"name": 123}})),
            expect: Match,
        },
        Row {
            name: "boolean for a keyword",
            note: "process.name: keyword; true is indexed as \"true\"",
            query: "process.name == \"true\"",
            line: bad(json!({"process": {"name": true}})),
            expect: Match,
        },
        // --- an object where a keyword is mapped
        Row {
            name: "object for a keyword",
            note: "process.name: keyword; an object has no value at process.name (Elasticsearch refuses the document; detectd finds no value)",
            query: NAME_EQ,
            line: bad(json!({"process": {"name": {"first": "cmd.exe"}}})),
            expect: NoMatch,
        },
        Row {
            name: "object for a keyword, negated",
            note: "process.name: keyword; no value, so != is true",
            query: "process.name != \"cmd.exe\"",
            line: bad(json!({"process": {"name": {"first": "cmd.exe"}}})),
            expect: Match,
        },
        Row {
            name: "string where an object is mapped",
            note: "event: object; \"network\" is no event.category, so the category filter fails",
            query: NAME_EQ,
            line: bad(json!({"event": "network"})),
            expect: NoMatch,
        },
        // --- arrays
        Row {
            name: "mixed array for a keyword",
            note: "process.name: keyword; multi-valued, any value matches; null and {} are not values",
            query: "process.name == \"a\"",
            line: bad(json!({"process": {"name": [1, "a", "keep_null", {}]}})),
            expect: Match,
        },
        Row {
            name: "mixed array for a long",
            note: "destination.port: long; [80, \"445\", null] indexes 80 and 445",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": [80, "445", "keep_null"]}})),
            expect: Match,
        },
        Row {
            name: "multi-valued category",
            note: "event.category: keyword; [\"process\", \"network\"] matches network",
            query: NAME_EQ,
            line: bad(json!({"event": {"category": ["process", "network"]}})),
            expect: Match,
        },
        Row {
            name: "empty array",
            note: "an empty array is a missing field: == is false",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": []}})),
            expect: NoMatch,
        },
        Row {
            name: "empty array, negated",
            note: "an empty array is a missing field: != is true",
            query: PORT_NE,
            line: bad(json!({"destination": {"port": []}})),
            expect: Match,
        },
        Row {
            name: "explicit null",
            note: "null is a missing field (no null_value in ECS): == is false",
            query: PORT_EQ,
            line: bad(json!({"destination": {"port": "keep_null"}})),
            expect: NoMatch,
        },
        Row {
            name: "explicit null compared with null",
            note: "null is a missing field: == null is true",
            query: "destination.port == null",
            line: bad(json!({"destination": {"port": "keep_null"}})),
            expect: Match,
        },
        // --- huge and deep
        Row {
            name: "4 MB string",
            note: "process.command_line: wildcard (ECS), the whole value is searchable",
            query: "process.command_line : \"*evil\"",
            line: bad(json!({"process": {"command_line": huge}})),
            expect: Match,
        },
        Row {
            name: "4 MB string, no match",
            note: "process.command_line: wildcard; the pattern is not in it",
            query: "process.command_line : \"*absent*\"",
            line: bad(json!({"process": {"command_line": huge}})),
            expect: NoMatch,
        },
        Row {
            name: "100-deep nesting beside the fields",
            note: "an object 100 levels deep that the query does not read",
            query: NAME_EQ,
            line: bad_with_raw(json!({}), &format!("\"deep\":{}", nested_text("deep", 100))),
            expect: Match,
        },
        Row {
            name: "100-deep nesting on the queried path",
            note: "process.name is an object nested 100 deep: no value at process.name",
            query: NAME_EQ,
            line: bad_with_raw(
                json!({"process": null}),
                &format!("\"process\":{{\"name\":{}}}", nested_text("name", 100)),
            ),
            expect: NoMatch,
        },
        Row {
            name: "10,000-deep nesting",
            note: "deeper than any JSON parser allows (serde_json: 128, Elasticsearch: 1,000): skipped",
            query: NAME_EQ,
            line: bad_with_raw(json!({}), &format!("\"deep\":{}", nested_text("deep", 10_000))),
            expect: Skipped("recursion limit exceeded"),
        },
        // --- timestamps
        Row {
            name: "missing @timestamp",
            note: "an event query matches it; it sorts last",
            query: NAME_EQ,
            line: bad(json!({"@timestamp": null})),
            expect: Unordered,
        },
        Row {
            name: "@timestamp \"yesterday\"",
            note: "not a date: as if missing (date with ignore_malformed)",
            query: NAME_EQ,
            line: bad(json!({"@timestamp": "yesterday"})),
            expect: Unordered,
        },
        Row {
            name: "@timestamp as an object",
            note: "not a date: as if missing",
            query: NAME_EQ,
            line: bad(json!({"@timestamp": {"date": "2024-05-01"}})),
            expect: Unordered,
        },
        Row {
            name: "@timestamp as epoch millis",
            note: "date: a number is epoch milliseconds",
            query: NAME_EQ,
            line: bad(json!({"@timestamp": 1_714_557_480_000_i64})),
            expect: Match,
        },
        Row {
            name: "negative @timestamp",
            note: "date: -1000 is 1969-12-31T23:59:59Z, ordered first",
            query: NAME_EQ,
            line: bad(json!({"@timestamp": -1000})),
            expect: Match,
        },
        Row {
            name: "@timestamp in the year 10000",
            note: "a date far in the future (or, where a date parser allows only 4-digit years, no date): either way an event query puts it after today's events",
            query: NAME_EQ,
            line: bad(json!({"@timestamp": "+10000-01-01T00:00:00Z"})),
            expect: Unordered,
        },
        // --- duplicate keys, and lines that are not JSON objects
        Row {
            name: "duplicate key",
            note: "the last value wins, as in every JSON parser detectd and Elasticsearch's clients use (Elasticsearch itself refuses the document)",
            query: NAME_EQ,
            line: br#"{"@timestamp":"2024-05-01T09:58:00.000Z","event":{"category":"network","ingested":"2024-05-01T09:58:00.000Z"},"process":{"name":"x.exe","name":"cmd.exe"}}"#.to_vec(),
            expect: Match,
        },
        Row {
            name: "non-UTF-8 bytes",
            note: "Latin-1 in a string: not UTF-8 JSON, skipped",
            query: NAME_EQ,
            line: b"{\"@timestamp\":\"2024-05-01T09:58:00.000Z\",\"event\":{\"category\":\"network\"},\"process\":{\"name\":\"caf\xe9.exe\"}}".to_vec(),
            expect: Skipped("invalid UTF-8 after byte 94"),
        },
        Row {
            name: "lone surrogate escape",
            note: "\\ud800 is no Unicode character: not valid JSON text, skipped",
            query: NAME_EQ,
            line: br#"{"@timestamp":"2024-05-01T09:58:00.000Z","event":{"category":"network"},"process":{"name":"\ud800"}}"#.to_vec(),
            expect: Skipped("invalid JSON: unexpected end of hex escape"),
        },
        Row {
            name: "number out of range",
            note: "1e400 is no double: skipped",
            query: PORT_EQ,
            line: br#"{"@timestamp":"2024-05-01T09:58:00.000Z","event":{"category":"network"},"destination":{"port":1e400}}"#.to_vec(),
            expect: Skipped("number out of range"),
        },
        Row {
            name: "truncated line",
            note: "not JSON: skipped",
            query: NAME_EQ,
            line: br#"{"@timestamp":"2024-05-01T09:58:00.000Z","event":{"category":"netw"#.to_vec(),
            expect: Skipped("invalid JSON: EOF while parsing"),
        },
        Row {
            name: "array line",
            note: "JSON, but not an object: skipped",
            query: NAME_EQ,
            line: b"[1, 2]".to_vec(),
            expect: Skipped("expected a JSON object, found an array"),
        },
        Row {
            name: "string line",
            note: "JSON, but not an object: skipped",
            query: NAME_EQ,
            line: b"\"network\"".to_vec(),
            expect: Skipped("expected a JSON object, found a string"),
        },
    ]
}

fn detectd_query(file: &std::path::Path, query: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["query", "--size", "100", "-e"])
        .arg(file)
        .arg(query)
        .stdin(Stdio::null())
        .output()
        .expect("detectd runs")
}

fn event_ids(out: &std::process::Output) -> Result<Vec<String>, String> {
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("stdout is not JSON: {e}"))?;
    Ok(v["hits"]["events"]
        .as_array()
        .ok_or("no hits.events")?
        .iter()
        .map(|e| e["_id"].as_str().unwrap_or("").to_string())
        .collect())
}

/// (a) `detectd query` on a file of the good event then the bad one.
fn check_query(row: &Row, dir: &std::path::Path) -> Result<(), String> {
    let file = dir.join("events.ndjson");
    let mut text = serde_json::to_vec(&good()).unwrap();
    text.push(b'\n');
    text.extend_from_slice(&row.line);
    text.push(b'\n');
    std::fs::write(&file, &text).unwrap();
    let out = detectd_query(&file, &event_query(row.query));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) {
        return Err(format!("exit {:?}: {stderr}", out.status.code()));
    }
    let ids = event_ids(&out)?;
    let skipped_warning = stderr.contains("events.ndjson:2: skipped: ");
    let want: &[&str] = match row.expect {
        Match => &["2", "1"],
        NoMatch | Skipped(_) => &["1"],
        Unordered => &["1", "2"],
    };
    if ids != want {
        return Err(format!(
            "expected hits {want:?}, found {ids:?}; stderr: {stderr}"
        ));
    }
    match row.expect {
        Skipped(reason) => {
            let line = stderr
                .lines()
                .find(|l| l.contains("events.ndjson:2: skipped: "))
                .unwrap_or("");
            if !line.contains(reason) {
                return Err(format!("expected a skip warning with {reason:?}: {stderr}"));
            }
        }
        _ if skipped_warning => return Err(format!("unexpected skip warning: {stderr}")),
        _ => {}
    }
    Ok(())
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// A rule over `logs-test-*` with `query`, searching by `event.ingested`
/// (the ordering field stays `@timestamp`, so events with a bad
/// `@timestamp` are still in the window, as in Elasticsearch).
fn rule(query: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"bad-events\"\nname = \"Bad events\"\ndescription = \"d\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"logs-test-*\"]\nseverity = \"low\"\n\
         risk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         timestamp_override = \"event.ingested\"\nquery = '''\n{query}\n'''\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn doc(id: &str, source: Value) -> Document {
    Document {
        index: "logs-test-default".into(),
        id: id.into(),
        source,
    }
}

/// Runs `rule` once over `docs`: the record and the ids of the events
/// that got an alert (building blocks' ancestors included).
async fn run(rule: &Rule, docs: Vec<Document>) -> (ExecutionRecord, Vec<String>, bool) {
    let runner = Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    );
    let record = runner.run(rule, now()).await;
    let mut alerted: Vec<String> = runner
        .sink()
        .alerts(ALERTS)
        .values()
        .flat_map(|a| {
            a["kibana.alert.ancestors"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        // events only, not the building blocks a shell also lists
        .filter(|anc| anc["index"] == "logs-test-default")
        .filter_map(|anc| anc["id"].as_str().map(str::to_string))
        .collect();
    alerted.sort();
    alerted.dedup();
    let checkpoint = runner.state().get(&rule.rule_id).is_some();
    (record, alerted, checkpoint)
}

/// (b) the Runner over memory with the good and the bad event.
async fn check_runner(row: &Row) -> Result<(), String> {
    let Ok(source) = serde_json::from_slice::<Value>(&row.line) else {
        return Ok(()); // cannot come from a cluster
    };
    if matches!(row.expect, Skipped(_)) || !source.is_object() {
        return Ok(());
    }
    let rule = rule(&event_query(row.query));
    let (record, alerted, checkpoint) =
        run(&rule, vec![doc("good", good()), doc("bad", source)]).await;
    if record.status == RunStatus::Failed {
        return Err(format!("the run failed: {record:?}"));
    }
    if !checkpoint {
        return Err("no checkpoint saved".into());
    }
    let want: &[&str] = match row.expect {
        Match | Unordered => &["bad", "good"],
        NoMatch | Skipped(_) => &["good"],
    };
    if alerted != want {
        return Err(format!(
            "expected alerts for {want:?}, found {alerted:?}: {record:?}"
        ));
    }
    if record.events_skipped != 0 {
        return Err(format!("expected no event skipped: {record:?}"));
    }
    Ok(())
}

/// Every row through `detectd query` and the runner: never a crash, the
/// good event always found, the bad one found exactly as Elasticsearch
/// would find it, or skipped with a warning naming its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_event_is_evaluated_as_elasticsearch_would_or_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let rows = rows();
    let mut failures = Vec::new();
    for row in &rows {
        if let Err(e) = check_query(row, dir.path()) {
            failures.push(format!("query: {} ({}): {e}", row.name, row.note));
        }
        if let Err(e) = check_runner(row).await {
            failures.push(format!("runner: {} ({}): {e}", row.name, row.note));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

const SEQUENCE: &str = "sequence by host.id with maxspan=5m \
     [network where process.name == \"cmd.exe\"] [network where destination.port == 445]";

/// Three events: `first` (cmd.exe, port 80) and `second` (other.exe, port
/// 445) form the sequence; `untimed` (cmd.exe, port 445) would start and
/// end sequences of its own but has no usable `@timestamp`.
fn sequence_docs(untimed_ts: Value) -> Vec<(String, Value)> {
    let mut first = good();
    first["@timestamp"] = json!("2024-05-01T09:57:00.000Z");
    first["event"]["ingested"] = json!("2024-05-01T09:57:00.000Z");
    first["destination"]["port"] = json!(80);
    let mut second = good();
    second["process"]["name"] = json!("other.exe");
    let mut untimed = good();
    untimed["event"]["ingested"] = json!("2024-05-01T09:58:00.000Z");
    match untimed_ts {
        Value::Null => {
            untimed.as_object_mut().unwrap().remove("@timestamp");
        }
        ts => untimed["@timestamp"] = ts,
    }
    vec![
        ("first".into(), first),
        ("second".into(), second),
        ("untimed".into(), untimed),
    ]
}

/// Sequences cannot use an event without a usable timestamp. `detectd
/// query` warns naming its line and still finds the other sequence; a run
/// still writes the other sequence's alerts, counts the event in
/// `events_skipped`, says why in a warning (status `partial failure`), and
/// advances its checkpoint.
#[tokio::test]
async fn sequences_skip_events_without_a_timestamp_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    for ts in [Value::Null, json!("yesterday"), json!({"date": 1})] {
        let docs = sequence_docs(ts.clone());

        let file = dir.path().join("seq.ndjson");
        let mut f = std::fs::File::create(&file).unwrap();
        for (_, d) in &docs {
            writeln!(f, "{d}").unwrap();
        }
        drop(f);
        let out = detectd_query(&file, SEQUENCE);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{ts}: {stderr}");
        assert!(
            stderr.contains(
                "seq.ndjson:3: skipped: no usable timestamp in `@timestamp`: a sequence cannot order the event"
            ),
            "{ts}: {stderr}"
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let seqs = v["hits"]["sequences"].as_array().expect("sequences");
        let ids: Vec<Vec<&str>> = seqs
            .iter()
            .map(|s| {
                s["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["_id"].as_str().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(ids, vec![vec!["1", "2"]], "{ts}");

        let rule = rule(SEQUENCE);
        let docs: Vec<Document> = docs.into_iter().map(|(id, s)| doc(&id, s)).collect();
        let (record, alerted, checkpoint) = run(&rule, docs).await;
        assert_eq!(record.status, RunStatus::PartialFailure, "{ts}: {record:?}");
        assert_eq!(record.events_fetched, 3, "{record:?}");
        assert_eq!(record.events_skipped, 1, "{record:?}");
        assert!(
            record.warnings.iter().any(|w| w
                == "1 events have no usable timestamp in `@timestamp` and were left out of the sequence: it cannot order them"),
            "{record:?}"
        );
        assert_eq!(alerted, ["first", "second"], "{ts}: {record:?}");
        assert!(checkpoint, "the window is done: checkpoint saved");
    }
}

/// An event query keeps events without a timestamp (sorted last): no
/// warning, nothing counted as skipped.
#[tokio::test]
async fn event_queries_keep_events_without_a_timestamp() {
    let rule = rule(&format!("network where {NAME_EQ}"));
    let docs: Vec<Document> = sequence_docs(Value::Null)
        .into_iter()
        .map(|(id, s)| doc(&id, s))
        .collect();
    let (record, alerted, _) = run(&rule, docs).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!(record.events_skipped, 0);
    assert_eq!(alerted, ["first", "untimed"], "{record:?}");
}

/// `detectd hunt` runs every rule over the same lines: an unreadable line
/// is reported once, but an event without a usable time in a rule's time
/// field is reported for each rule. A hunt is a rule run over all time: like
/// the cluster's range filter, it searches no event without a time, for
/// event rules as for sequences.
#[test]
fn hunt_reports_events_without_a_time_for_each_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let rule_text = |id: &str, query: &str| {
        format!(
            "[rule]\nrule_id = \"{id}\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
             index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\nquery = '''\n{query}\n'''\n"
        )
    };
    let events_rule = format!("network where {NAME_EQ}");
    std::fs::write(rules.join("a_event.toml"), rule_text("a", &events_rule)).unwrap();
    std::fs::write(rules.join("b_sequence.toml"), rule_text("b", SEQUENCE)).unwrap();
    let file = dir.path().join("seq.ndjson");
    let mut text = String::new();
    for (_, d) in sequence_docs(Value::Null) {
        text.push_str(&format!("{d}\n"));
    }
    text.push_str("not json\n");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .arg("hunt")
        .arg("--rules")
        .arg(&rules)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr
            .matches("seq.ndjson:4: skipped: invalid JSON")
            .count(),
        1,
        "an unreadable line is reported once: {stderr}"
    );
    for rule in ["a_event.toml", "b_sequence.toml"] {
        assert!(
            stderr.contains(&format!(
                "{}: warning: seq.ndjson:3: skipped: no usable time in `@timestamp`: no time \
                 range contains the event\n",
                rules.join(rule).display()
            )),
            "{stderr}"
        );
    }
    // the event rule alerts the one timed event it matches; the sequence
    // rule its one sequence (a shell and two building blocks)
    let alerts = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(alerts, 1 + 3, "{stderr}");
}
