//! Events from NDJSON files (or stdin), for offline runs: `detectd query`,
//! `detectd hunt` and demos.
//!
//! One JSON object per line. Each document gets the file name as `_index`
//! and its 1-based line number as `_id`, like the Elasticsearch EQL API
//! would show a hit. Lines that are not JSON objects are skipped with a
//! warning that names the file and line; they never stop the read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

pub use crate::eql::search::Document;

/// A line that could not be read as a JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub index: String,
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: skipped: {}", self.index, self.line, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where NDJSON comes from: files in order, or standard input when empty.
pub struct NdjsonInput {
    paths: Vec<PathBuf>,
}

/// Everything read from the inputs, in input order.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub documents: Vec<Document>,
    pub bad_lines: Vec<BadLine>,
}

impl NdjsonInput {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        NdjsonInput { paths }
    }

    /// Reads every document of every input. Blank lines are ignored.
    pub fn read_all(&self) -> Result<ReadOutcome, FileSourceError> {
        let mut out = ReadOutcome::default();
        if self.paths.is_empty() {
            let stdin = io::stdin();
            read_ndjson("stdin", stdin.lock(), &mut out).map_err(|source| FileSourceError::Io {
                path: PathBuf::from("<stdin>"),
                source,
            })?;
            return Ok(out);
        }
        for path in &self.paths {
            let file = File::open(path).map_err(|source| FileSourceError::Io {
                path: path.clone(),
                source,
            })?;
            read_ndjson(&index_name(path), BufReader::new(file), &mut out).map_err(|source| {
                FileSourceError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        Ok(out)
    }
}

/// The `_index` shown for documents of `path`: its file name.
pub fn index_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Reads NDJSON from `reader`, appending documents and bad lines to `out`.
/// Invalid UTF-8 is a bad line, not an I/O error.
pub fn read_ndjson(index: &str, reader: impl Read, out: &mut ReadOutcome) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buf = Vec::with_capacity(1024);
    let mut line_no: u64 = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let bytes = trim_ascii(&buf);
        if bytes.is_empty() {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(source @ serde_json::Value::Object(_)) => out.documents.push(Document {
                index: index.to_string(),
                id: line_no.to_string(),
                source,
            }),
            Ok(other) => out.bad_lines.push(BadLine {
                index: index.to_string(),
                line: line_no,
                reason: format!("expected a JSON object, found {}", json_kind(&other)),
            }),
            Err(e) => out.bad_lines.push(BadLine {
                index: index.to_string(),
                line: line_no,
                reason: format!("invalid JSON: {e}"),
            }),
        }
    }
    Ok(())
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_and_reports_bad_lines_with_line_numbers() {
        let input = b"{\"a\":1}\n\n[1,2]\n{broken\n\xff\xfe\n  {\"b\":2}  \r\n";
        let mut out = ReadOutcome::default();
        read_ndjson("f.ndjson", &input[..], &mut out).unwrap();
        let ids: Vec<_> = out.documents.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["1", "6"]);
        assert_eq!(out.documents[1].source["b"], 2);
        assert_eq!(out.documents[0].index, "f.ndjson");
        let bad: Vec<_> = out.bad_lines.iter().map(|b| b.line).collect();
        assert_eq!(bad, [3, 4, 5]);
        assert!(out.bad_lines[0].reason.contains("found an array"));
        assert!(out.bad_lines[1]
            .to_string()
            .starts_with("f.ndjson:4: skipped: invalid JSON"));
    }

    #[test]
    fn last_line_without_newline_is_read() {
        let mut out = ReadOutcome::default();
        read_ndjson("x", &b"{\"a\":1}\n{\"a\":2}"[..], &mut out).unwrap();
        assert_eq!(out.documents.len(), 2);
        assert_eq!(out.documents[1].id, "2");
    }
}
