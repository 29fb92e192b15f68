//! Opening and fetching give the same marks, bad lines (in order) and
//! documents (in order) on any number of threads and any chunk size.

use std::sync::Arc;

use serde_json::json;

use crate::offline::chunks::Threads;
use crate::schedule::window::Window;
use crate::source::ndjson::{EventsInput, NdjsonSource, STRIDE};
use crate::source::{EventSource, FetchRequest, TimeRange};

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
        chunk_bytes: 333,
    },
    // shorter than a line: a chunk per line, or (a file) blocks that hold
    // no line start
    Threads {
        workers: 3,
        chunk_bytes: 23,
    },
];

/// 3 strides and a bit: line 1,025 blank, lines 2,049..=3,072 blank, line
/// 100 and 3,100 unreadable, line 1,500 without a time; the times go
/// backwards every 10 lines (the fetch sorts).
fn text() -> Vec<u8> {
    let mut t = String::new();
    for line in 1..=3 * STRIDE + 200 {
        if line == 1025 || (2049..=3072).contains(&line) {
            t.push_str(" \n");
        } else if line == 100 {
            t.push_str("{oops\n");
        } else if line == 3100 {
            t.push_str("\"a string\"\n");
        } else if line == 1500 {
            t.push_str(&json!({"n": line}).to_string());
            t.push('\n');
        } else {
            let second = (line / 10) * 10 + (9 - line % 10);
            let doc = json!({"@timestamp": 1_700_000_000_000u64 + second * 1000, "n": line});
            t.push_str(&doc.to_string());
            t.push('\n');
        }
    }
    t.into_bytes()
}

#[tokio::test]
async fn opening_and_fetching_are_the_same_on_any_threads() {
    let bytes: Arc<[u8]> = Arc::from(text());
    // the same lines as a file (read by position on the workers)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.ndjson");
    std::fs::write(&path, &bytes[..]).unwrap();
    let mut first = None;
    for (threads, file) in SETUPS
        .into_iter()
        .flat_map(|threads| [(threads, false), (threads, true)])
    {
        let input = match file {
            false => EventsInput::Text {
                name: "e.ndjson".into(),
                text: bytes.clone(),
            },
            true => EventsInput::File(path.clone()),
        };
        let mut bad = Vec::new();
        let source =
            NdjsonSource::open_on(vec![input], threads, |b| bad.push(b.to_string())).unwrap();
        let marks = source.inputs[0].marks.clone();
        assert_eq!(
            marks.iter().map(|m| m.line).collect::<Vec<_>>(),
            [1, 1026, 3073],
            "the first non-blank line of each stride that has one ({threads:?}, file {file})"
        );
        let request = FetchRequest::new(
            vec!["*".into()],
            TimeRange {
                from: Window::ALL.start,
                to: Window::ALL.end,
            },
        );
        let stream = source.fetch(request).await.unwrap();
        let warnings = stream.warnings().to_vec();
        let docs: Vec<(String, i64)> = stream
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.id, d.source["n"].as_i64().unwrap()))
            .collect();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad[0].starts_with("e.ndjson:100: skipped: invalid JSON"),
            "{bad:?}"
        );
        assert!(
            bad[1].starts_with("e.ndjson:3100: skipped: expected a JSON object"),
            "{bad:?}"
        );
        assert_eq!(
            warnings,
            [
                "e.ndjson:1500: skipped: no usable time in `@timestamp`: no time range contains \
              the event"
            ]
        );
        // sorted by time: line 9 (second 0) first
        assert_eq!(docs[0], ("9".to_string(), 9));
        let answer = (marks, bad, warnings, docs);
        match &first {
            None => first = Some(answer),
            Some(want) => assert_eq!(&answer, want, "{threads:?}, file {file}"),
        }
    }
}

/// Lines for the filter `process.name == "cmd.exe"`: matching ones (one
/// spelt with a `\u` escape, one in another case), others, untimed ones
/// with and without the name, and one whose time is unusable.
fn filtered_lines() -> Vec<String> {
    let ts = |s: u64| 1_700_000_000_000u64 + (50 - s) * 1000;
    let mut lines = Vec::new();
    for n in 1..=40u64 {
        let name = match n % 5 {
            0 => "cmd.exe",
            1 => "Cmd.Exe",
            _ => "bash",
        };
        lines.push(json!({"@timestamp": ts(n), "process": {"name": name}, "n": n}).to_string());
    }
    let escaped = format!(
        r#"{{"@timestamp":{},"process":{{"name":"\u0063md.exe"}},"n":41}}"#,
        ts(41)
    );
    lines.push(escaped);
    lines.push(json!({"process": {"name": "cmd.exe"}, "n": 42}).to_string());
    lines.push(json!({"process": {"name": "bash"}, "n": 43}).to_string());
    lines.push(json!({"@timestamp": null, "process": {"name": "bash"}, "n": 44}).to_string());
    lines
}

/// [`filtered_lines`] as an input's text and as the memory source's
/// documents.
fn filtered_input() -> (Arc<[u8]>, Vec<crate::source::Document>) {
    let lines = filtered_lines();
    let text: Arc<[u8]> = Arc::from((lines.join("\n") + "\n").into_bytes());
    let docs = lines
        .iter()
        .enumerate()
        .map(|(i, l)| crate::source::Document {
            index: "e.ndjson".into(),
            id: (i + 1).to_string(),
            source: serde_json::from_str(l).unwrap(),
        })
        .collect();
    (text, docs)
}

#[tokio::test]
async fn lines_the_filter_cannot_pass_are_not_decoded_and_the_selection_is_the_memory_sources() {
    use crate::eql::pushdown::{Filter, Scalar};
    use crate::source::memory::MemorySource;
    use crate::source::Document;

    let (text, docs) = filtered_input();
    let request = |case_insensitive: bool| {
        let mut r = FetchRequest::new(
            vec!["*".into()],
            TimeRange {
                from: Window::ALL.start,
                to: Window::ALL.end,
            },
        );
        r.filter = Filter::Term {
            field: "process.name".into(),
            value: Scalar::String("cmd.exe".into()),
            case_insensitive,
        };
        r
    };
    let ids = |docs: Vec<Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
    for case_insensitive in [false, true] {
        let want = MemorySource::new(docs.clone())
            .fetch(request(case_insensitive))
            .await
            .unwrap();
        let want = ids(want.collect().await.unwrap());
        let expected = if case_insensitive { 17 } else { 9 };
        assert_eq!(want.len(), expected, "{want:?}");
        for threads in SETUPS {
            let input = EventsInput::Text {
                name: "e.ndjson".into(),
                text: text.clone(),
            };
            let source = NdjsonSource::open_on(vec![input], threads, |_| {}).unwrap();
            let stream = source.fetch(request(case_insensitive)).await.unwrap();
            // lines 42 and 43 have no time; 43, ruled out, is counted as it
            // does not name `@timestamp`; 44 names it (its null time is
            // no use) but cannot pass the filter: not decoded, not counted
            assert_eq!(
                stream.warnings(),
                [
                    "e.ndjson:42: skipped: no usable time in `@timestamp`: no time range contains \
                  the event (and 1 more events of e.ndjson)"
                ],
                "{threads:?}"
            );
            let got = ids(stream.collect().await.unwrap());
            assert_eq!(
                got, want,
                "{threads:?}, case-insensitive {case_insensitive}"
            );
        }
    }
}

#[tokio::test]
async fn lines_the_exact_clause_cannot_pass_are_not_decoded_without_a_mapping() {
    use crate::kql::{self, KqlOptions};
    use crate::source::memory::MemorySource;
    use crate::source::{Document, Exact};

    let (text, docs) = filtered_input();
    // a query rule's query: `cmd.exe` is a token of a dynamic text field,
    // so `Cmd.Exe` and the escaped spelling match too
    let request = || {
        let mut r = FetchRequest::new(
            vec!["*".into()],
            TimeRange {
                from: Window::ALL.start,
                to: Window::ALL.end,
            },
        );
        r.exact = Some(Exact::new(|types| {
            let node = kql::parse("process.name: CMD.exe").map_err(|e| e.to_string())?;
            kql::lower(&node, types, &KqlOptions::detection_rules()).map_err(|e| e.to_string())
        }));
        r
    };
    let ids = |docs: Vec<Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let want = MemorySource::new(docs).fetch(request()).await.unwrap();
    let want = ids(want.collect().await.unwrap());
    assert_eq!(want.len(), 17, "{want:?}");
    for threads in SETUPS {
        let input = EventsInput::Text {
            name: "e.ndjson".into(),
            text: text.clone(),
        };
        let source = NdjsonSource::open_on(vec![input], threads, |_| {}).unwrap();
        let stream = source.fetch(request()).await.unwrap();
        // 44 names `@timestamp` but cannot pass the query: not decoded, so
        // not counted (decoded, it would be: "and 2 more")
        assert_eq!(
            stream.warnings(),
            [
                "e.ndjson:42: skipped: no usable time in `@timestamp`: no time range contains \
              the event (and 1 more events of e.ndjson)"
            ],
            "{threads:?}"
        );
        assert_eq!(ids(stream.collect().await.unwrap()), want, "{threads:?}");
    }
}
