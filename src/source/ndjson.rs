//! NDJSON events as an [`EventSource`]: what `detectd hunt` and `detectd
//! test` run rules over, through the same runner and detectors as the
//! daemon.
//!
//! Each input (a file, or text held in memory for rule tests) is an index
//! named like the file (`_index` = file name) whose documents are its lines
//! (`_id` = 1-based line number, blank lines counted), as `detectd query`
//! shows them, so alert ids are stable for the same files. Two inputs with
//! the same name would give events the same identity: that is an error
//! ([`NdjsonError::DuplicateName`]).
//!
//! Offline, every input is the rule's data, whatever the rule's `index`
//! patterns say: the caller chose the files for the rules. A request is
//! otherwise applied exactly as the memory source applies it (`select`):
//! time range with the override fallback, pushdown filter, exact clause
//! lowered for the inputs' mappings (`--mapping`, else typed from the
//! JSON), ordering, projection. Date math in the exact clause (`now-1h`)
//! is relative to [`NdjsonSource::with_now`] (the run's `now`), not to the
//! end of the range, which for a hunt is the end of time.
//!
//! Memory: inputs are read line by line on every fetch; only the events the
//! request selects are kept, projected to the fields asked for. Full
//! sources are read again by line in [`EventSource::fetch_sources`], from
//! byte offsets kept for every [`STRIDE`]th line (a few bytes per thousand
//! lines). Opening reads every input once: lines that are not JSON objects
//! are reported then, once ([`BadLine`]), and skipped silently by the
//! fetches; events without a usable time in the request's time field are
//! counted per fetch (they are in no range) and reported as a warning of
//! the stream. A fetch does not decode the lines its pushdown filter
//! cannot pass (`offline::prefilter`, as `detectd query` does; not for an
//! input with a mapping): such a line counts as untimed only when it does
//! not name the time field (`read::Skip`).
//!
//! The reads are plain blocking I/O: this source serves offline commands,
//! not the daemon's reactor.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::files::{index_name, BadLine};
use super::select::Selector;
use super::{DocRef, Document, EventSource, EventStream, FetchRequest, Mappings, SourceError};
use crate::eql::decode::DecodeError;
use crate::offline::chunks::Threads;

mod read;
mod stream;
mod valid;

/// A byte offset is kept for every this many lines.
pub const STRIDE: u64 = 1024;

/// Where one input's lines come from.
#[derive(Clone, Debug)]
pub enum EventsInput {
    /// A file, named by its file name.
    File(PathBuf),
    /// NDJSON held in memory (the inline events of a rule test).
    Text { name: String, text: Arc<[u8]> },
}

impl EventsInput {
    /// The `_index` of its events.
    pub fn name(&self) -> String {
        match self {
            EventsInput::File(path) => index_name(path),
            EventsInput::Text { name, .. } => name.clone(),
        }
    }

    /// Where it is, for messages.
    fn shown(&self) -> String {
        match self {
            EventsInput::File(path) => path.display().to_string(),
            EventsInput::Text { name, .. } => name.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NdjsonError {
    // The I/O error is part of the message: callers print error chains.
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: io::Error },
    #[error(
        "two events files are named `{name}`: {first} and {second} (an event is identified by \
         its file name and line number, so file names must differ: rename one)"
    )]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
}

/// A line whose byte offset is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    line: u64,
    offset: u64,
}

#[derive(Debug)]
struct Input {
    name: String,
    input: EventsInput,
    /// The first non-blank line at or after line 1, `STRIDE + 1`, ...
    marks: Vec<Mark>,
}

/// Rules' events from NDJSON inputs (see the module doc).
#[derive(Debug)]
pub struct NdjsonSource {
    inputs: Vec<Input>,
    mappings: Arc<Mappings>,
    now: Option<DateTime<Utc>>,
    threads: Threads,
}

/// The `_index` names of `paths`, or the error for two with the same name.
pub fn index_names(inputs: &[EventsInput]) -> Result<Vec<String>, NdjsonError> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut names = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input.name();
        if let Some(first) = seen.get(&name) {
            return Err(NdjsonError::DuplicateName {
                name,
                first: first.clone(),
                second: input.shown(),
            });
        }
        seen.insert(name.clone(), input.shown());
        names.push(name);
    }
    Ok(names)
}

impl NdjsonSource {
    /// Opens `inputs` and reads each once: lines that are not JSON objects
    /// go to `bad_line` (fetches skip them without a word), and the byte
    /// offsets for reading lines again are noted.
    pub fn open(
        inputs: Vec<EventsInput>,
        bad_line: impl FnMut(BadLine),
    ) -> Result<NdjsonSource, NdjsonError> {
        NdjsonSource::open_on(inputs, Threads::available(), bad_line)
    }

    /// [`NdjsonSource::open`], parsing lines on `threads` (then and in
    /// every fetch); the outcome is the same on any number.
    pub fn open_on(
        inputs: Vec<EventsInput>,
        threads: Threads,
        mut bad_line: impl FnMut(BadLine),
    ) -> Result<NdjsonSource, NdjsonError> {
        let names = index_names(&inputs)?;
        let mut out = Vec::with_capacity(inputs.len());
        for (input, name) in inputs.into_iter().zip(names) {
            let marks = read::scan(&input, &name, threads, &mut bad_line).map_err(|error| {
                NdjsonError::Read {
                    path: input.shown(),
                    error,
                }
            })?;
            out.push(Input { name, input, marks });
        }
        Ok(NdjsonSource {
            inputs: out,
            mappings: Arc::default(),
            now: None,
            threads,
        })
    }

    /// The source with the mappings of its inputs (by `_index` name); an
    /// input without one is typed from its JSON.
    pub fn with_mappings(mut self, mappings: Mappings) -> NdjsonSource {
        self.mappings = Arc::new(mappings);
        self
    }

    /// What date math in exact clauses is relative to (by default the end
    /// of the requested range).
    pub fn with_now(mut self, now: DateTime<Utc>) -> NdjsonSource {
        self.now = Some(now);
        self
    }

    /// The `_index` of each input, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|i| i.name.as_str())
    }
}

impl EventSource for NdjsonSource {
    async fn fetch(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        let now = self.now.unwrap_or(request.range.to);
        if request.timeless {
            let inputs = self
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.input.clone()))
                .collect();
            return stream::stream(inputs, self.mappings.clone(), request, now);
        }
        let selector = Selector::new(&request, &self.mappings, now)?;
        // Lines the pushdown filter cannot pass are not decoded, but in an
        // input with a mapping, which the filter is not applied to
        // (`Selector::judge`; see `offline::prefilter`). Nor those the
        // exact clause cannot pass, when no input has a mapping (with one,
        // its types apply to every input: `offline::tree_prefilter`).
        let options = crate::eql::compile::CompileOptions {
            timestamp_field: request.timestamp_field.clone(),
            tiebreaker_field: request.tiebreaker_field.clone(),
            ..Default::default()
        };
        let exact = match (&request.exact, self.mappings.field_types()) {
            (Some(exact), None) => exact.lower(None).ok(),
            _ => None,
        };
        let prefilter = match &exact {
            Some(tree) => crate::offline::Prefilter::for_tree(tree, &request.filter, &options),
            None => crate::offline::Prefilter::for_filter(&request.filter, &options),
        };
        let skip = prefilter
            .as_ref()
            .map(|p| read::Skip::new(p, &request.time_filter));
        let mut warnings = Vec::new();
        let mut hits = Vec::new();
        let mut position = 0usize;
        for input in &self.inputs {
            let mut selection = read::Selection {
                hits: std::mem::take(&mut hits),
                ..read::Selection::default()
            };
            let mapped = self.mappings.get(&input.name).is_some();
            read::select(
                &input.input,
                &input.name,
                (&selector, skip.as_ref().filter(|_| !mapped)),
                self.threads,
                &mut position,
                &mut selection,
            )
            .map_err(|e| read_failed(&input.input, e))?;
            hits = selection.hits;
            let (untimed, first_untimed) = (selection.untimed, selection.first_untimed);
            if untimed > 0 {
                let fields = match &request.time_filter.fallback {
                    Some(f) => format!("`{}` (or `{f}`)", request.time_filter.primary),
                    None => format!("`{}`", request.time_filter.primary),
                };
                let more = match untimed - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more events of {})", input.name),
                };
                warnings.push(format!(
                    "{}:{first_untimed}: skipped: no usable time in {fields}: no time range \
                     contains the event{more}",
                    input.name
                ));
            }
        }
        hits.sort_by(|a, b| a.0.cmp_at(a.1, &b.0, b.1));
        let docs = hits.into_iter().map(|h| h.2).collect();
        Ok(EventStream::from_documents(warnings, docs).with_mappings(self.mappings.clone()))
    }

    async fn fetch_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        // The lines wanted, by input, in file order.
        let mut wanted: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for r in refs {
            let Some(i) = self.inputs.iter().position(|i| i.name == r.index) else {
                continue;
            };
            if let Ok(line) = r.id.parse::<u64>() {
                wanted.entry(i).or_default().push(line);
            }
        }
        let mut out = Vec::new();
        for (i, mut lines) in wanted {
            let input = &self.inputs[i];
            lines.sort_unstable();
            lines.dedup();
            let failed = |e| read_failed(&input.input, e);
            let mut cursor = LineCursor::new(open(&input.input).map_err(failed)?);
            for line in lines {
                let Some(bytes) = cursor.read(line, &input.marks).map_err(failed)? else {
                    continue;
                };
                // The fetch read this line as an object: anything else now
                // means the file changed under the run.
                let source = parse_line(bytes).map_err(|e| SourceError::File {
                    path: input.input.shown(),
                    reason: format!("line {line} changed while running: {e}"),
                })?;
                out.push(Document {
                    index: input.name.clone(),
                    id: line.to_string(),
                    source,
                });
            }
        }
        Ok(out)
    }
}

/// One line as a document: a JSON object, or why not (the messages of
/// `detectd query`, which rejects exactly the same lines).
fn parse_line(bytes: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let value: Value = serde_json::from_str(text)?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Array(_) => Err(DecodeError::NotObject("an array")),
        Value::String(_) => Err(DecodeError::NotObject("a string")),
        Value::Bool(_) => Err(DecodeError::NotObject("a boolean")),
        Value::Number(_) => Err(DecodeError::NotObject("a number")),
        Value::Null => Err(DecodeError::NotObject("null")),
    }
}

trait ReadSeek: BufRead + Seek {}
impl<T: BufRead + Seek> ReadSeek for T {}

fn open(input: &EventsInput) -> io::Result<Box<dyn ReadSeek + '_>> {
    Ok(match input {
        EventsInput::File(path) => Box::new(BufReader::with_capacity(1 << 16, File::open(path)?)),
        EventsInput::Text { text, .. } => Box::new(Cursor::new(&text[..])),
    })
}

fn read_failed(input: &EventsInput, e: io::Error) -> SourceError {
    SourceError::File {
        path: input.shown(),
        reason: e.to_string(),
    }
}

/// Reads chosen lines of an input, in increasing order, seeking to the
/// nearest mark before each when that is ahead of where it is.
struct LineCursor<'a> {
    reader: Box<dyn ReadSeek + 'a>,
    /// The number of the line the next read returns (0: not positioned).
    next: u64,
    buf: Vec<u8>,
}

impl<'a> LineCursor<'a> {
    fn new(reader: Box<dyn ReadSeek + 'a>) -> LineCursor<'a> {
        LineCursor {
            reader,
            next: 0,
            buf: Vec::new(),
        }
    }

    /// The trimmed bytes of line `line`; `None` when the input is shorter
    /// or the line blank.
    fn read(&mut self, line: u64, marks: &[Mark]) -> io::Result<Option<&[u8]>> {
        let at = marks.partition_point(|m| m.line <= line);
        let Some(mark) = at.checked_sub(1).map(|i| marks[i]) else {
            return Ok(None);
        };
        if self.next == 0 || self.next > line || mark.line > self.next {
            self.reader.seek(SeekFrom::Start(mark.offset))?;
            self.next = mark.line;
        }
        loop {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.next += 1;
            if self.next - 1 == line {
                let trimmed = self.buf.trim_ascii();
                return Ok((!trimmed.is_empty()).then_some(trimmed));
            }
        }
    }
}

/// The inputs of `paths` as files.
pub fn files(paths: &[impl AsRef<Path>]) -> Vec<EventsInput> {
    paths
        .iter()
        .map(|p| EventsInput::File(p.as_ref().to_path_buf()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::window::Window;
    use crate::source::{TimeFilter, TimeRange};
    use serde_json::json;

    fn text(name: &str, lines: &[String]) -> EventsInput {
        let mut t = lines.join("\n");
        t.push('\n');
        EventsInput::Text {
            name: name.into(),
            text: Arc::from(t.into_bytes()),
        }
    }

    fn all() -> FetchRequest {
        FetchRequest::new(
            vec!["logs-*".into()],
            TimeRange {
                from: Window::ALL.start,
                to: Window::ALL.end,
            },
        )
    }

    fn ev(ts: &str, n: i64) -> String {
        json!({"@timestamp": ts, "n": n, "big": {"x": "y"}}).to_string()
    }

    #[tokio::test]
    async fn every_input_is_read_whatever_the_patterns_and_sorted_by_time() {
        let a = text(
            "a.ndjson",
            &[
                ev("2024-01-01T00:00:03Z", 1),
                String::new(),
                "not json".into(),
                ev("2024-01-01T00:00:01Z", 2),
            ],
        );
        let b = text(
            "b.ndjson",
            &[json!({"n": 3}).to_string(), ev("2024-01-01T00:00:02Z", 4)],
        );
        let mut bad = Vec::new();
        let src = NdjsonSource::open(vec![a, b], |b| bad.push(b.to_string())).unwrap();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].starts_with("a.ndjson:3: skipped: invalid JSON"),
            "{bad:?}"
        );
        let mut req = all();
        req.source_fields = Some(vec!["n".into()]);
        let stream = src.fetch(req).await.unwrap();
        assert_eq!(
            stream.warnings(),
            ["b.ndjson:1: skipped: no usable time in `@timestamp`: no time range contains the event"]
        );
        let docs = stream.collect().await.unwrap();
        let got: Vec<(&str, &str, Value)> = docs
            .iter()
            .map(|d| (d.index.as_str(), d.id.as_str(), d.source.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.ndjson", "4", json!({"n": 2})),
                ("b.ndjson", "2", json!({"n": 4})),
                ("a.ndjson", "1", json!({"n": 1})),
            ]
        );
        let refs: Vec<DocRef> = [("b.ndjson", "2"), ("a.ndjson", "4"), ("a.ndjson", "1")]
            .iter()
            .chain(&[
                ("a.ndjson", "2"),
                ("a.ndjson", "9"),
                ("c", "1"),
                ("a.ndjson", "x"),
            ])
            .map(|(i, id)| DocRef {
                index: i.to_string(),
                id: id.to_string(),
            })
            .collect();
        let full = src.fetch_sources(&refs).await.unwrap();
        let got: Vec<(&str, &str, &Value)> = full
            .iter()
            .map(|d| (d.index.as_str(), d.id.as_str(), &d.source["big"]))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.ndjson", "1", &json!({"x": "y"})),
                ("a.ndjson", "4", &json!({"x": "y"})),
                ("b.ndjson", "2", &json!({"x": "y"})),
            ],
            "whole sources; blank, missing and unknown lines left out"
        );
    }

    #[tokio::test]
    async fn lines_are_found_again_across_many_marks_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.ndjson");
        let n = 3 * STRIDE + 17;
        let mut t = String::new();
        for i in 1..=n {
            if i % 7 == 0 {
                t.push_str("   \n");
            } else {
                t.push_str(&format!("  {}\n", ev("2024-01-01T00:00:00Z", i as i64)));
            }
        }
        std::fs::write(&path, t).unwrap();
        let src = NdjsonSource::open(files(&[&path]), |_| panic!("no bad line")).unwrap();
        assert_eq!(src.inputs[0].marks.len(), 4);
        let wanted: Vec<u64> = vec![n, 1, STRIDE + 1, STRIDE, 2 * STRIDE + 5, 3 * STRIDE + 1, 8];
        let refs: Vec<DocRef> = wanted
            .iter()
            .map(|l| DocRef {
                index: "big.ndjson".into(),
                id: l.to_string(),
            })
            .collect();
        let docs = src.fetch_sources(&refs).await.unwrap();
        let mut want: Vec<u64> = wanted.into_iter().filter(|l| l % 7 != 0).collect();
        want.sort();
        let got: Vec<(u64, i64)> = docs
            .iter()
            .map(|d| (d.id.parse().unwrap(), d.source["n"].as_i64().unwrap()))
            .collect();
        assert_eq!(got, want.iter().map(|&l| (l, l as i64)).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn exact_date_math_is_relative_to_the_runs_now_and_mappings_apply() {
        let src = NdjsonSource::open(
            vec![text(
                "logs",
                &[
                    json!({"@timestamp": "2024-05-01T09:00:00Z", "port": "135"}).to_string(),
                    json!({"@timestamp": "2024-04-01T09:00:00Z", "port": "135"}).to_string(),
                ],
            )],
            |_| {},
        )
        .unwrap();
        let now = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let src = src.with_now(now).with_mappings(
            Mappings::from_json(&[("logs", json!({"properties": {"port": {"type": "long"}}}))])
                .unwrap(),
        );
        let mut req = all();
        req.time_filter = TimeFilter::kibana(None, false);
        req.exact = Some(crate::source::Exact::new(|types| {
            crate::kql::lower(
                &crate::kql::parse("@timestamp >= now-1d and port >= 100").unwrap(),
                types,
                &crate::kql::KqlOptions::detection_rules(),
            )
            .map_err(|e| e.to_string())
        }));
        let stream = src.fetch(req).await.unwrap();
        assert!(stream.mappings().get("logs").is_some());
        let ids: Vec<String> = stream
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["1"]);
    }

    #[test]
    fn two_inputs_with_one_name_are_an_error() {
        let err = NdjsonSource::open(files(&["/a/events.ndjson", "/b/events.ndjson"]), |_| {})
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "two events files are named `events.ndjson`: /a/events.ndjson and /b/events.ndjson \
             (an event is identified by its file name and line number, so file names must \
             differ: rename one)"
        );
        let err = NdjsonSource::open(files(&["/no/such/file.ndjson"]), |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /no/such/file.ndjson: "),
            "{err}"
        );
    }
}
