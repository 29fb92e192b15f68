//! Events from NDJSON files (or stdin), for offline runs: `detectd query`,
//! `detectd hunt` and demos.
//!
//! One JSON object per line. Each document gets the file name as `_index`
//! and its 1-based line number as `_id`, like the Elasticsearch EQL API
//! would show a hit. Lines that are not JSON objects are skipped with a
//! warning that names the file and line ([`BadLine`]); they never stop the
//! read.

use std::io::{self, BufRead};
use std::path::Path;

/// A line that was skipped: not a JSON object, or (for a sequence) an
/// event it cannot order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub index: String,
    pub line: u64,
    pub reason: String,
    /// Whether the line itself is unreadable (the same for every query), as
    /// opposed to an event this query cannot use.
    pub unreadable: bool,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: skipped: {}", self.index, self.line, self.reason)
    }
}

/// The `_index` shown for documents of `path`: its file name.
pub fn index_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// An I/O error while reading lines, or the callback's own error.
#[derive(Debug)]
pub enum LineError<E> {
    Io(io::Error),
    Callback(E),
}

/// Calls `f(line number, byte offset, bytes)` for every line that is not
/// blank, with surrounding whitespace trimmed; line numbers are 1-based and
/// count blank lines. Invalid UTF-8 is left to the JSON parser to report.
pub fn for_each_line<E>(
    mut reader: impl BufRead,
    f: &mut impl FnMut(u64, u64, &[u8]) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let mut buf = Vec::with_capacity(1024);
    let mut line: u64 = 0;
    let mut offset: u64 = 0;
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf).map_err(LineError::Io)?;
        if read == 0 {
            return Ok(());
        }
        line += 1;
        if let Some(start) = buf.iter().position(|c| !c.is_ascii_whitespace()) {
            let end = buf
                .iter()
                .rposition(|c| !c.is_ascii_whitespace())
                .map_or(start, |i| i + 1);
            f(line, offset + start as u64, &buf[start..end]).map_err(LineError::Callback)?;
        }
        offset += read as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_numbers_offsets_and_trimmed_bytes() {
        let input = b"{\"a\":1}\n\n  {\"b\":2}  \r\n\xff\n{\"c\":3}";
        let mut seen = Vec::new();
        for_each_line::<()>(&input[..], &mut |line, offset, bytes| {
            seen.push((line, offset, bytes.to_vec()));
            Ok(())
        })
        .unwrap();
        let want: Vec<(u64, u64, Vec<u8>)> = vec![
            (1, 0, b"{\"a\":1}".to_vec()),
            (3, 11, b"{\"b\":2}".to_vec()),
            (4, 22, b"\xff".to_vec()),
            (5, 24, b"{\"c\":3}".to_vec()),
        ];
        assert_eq!(seen, want);
        for (_, offset, bytes) in &seen {
            let at = *offset as usize;
            assert_eq!(
                &input[at..at + bytes.len()],
                &bytes[..],
                "offset points at the line"
            );
        }
    }

    #[test]
    fn callback_errors_stop_the_read() {
        let mut calls = 0;
        let r = for_each_line(&b"a\nb\nc\n"[..], &mut |line, _, _| {
            calls += 1;
            if line == 2 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(LineError::Callback("stop"))));
        assert_eq!(calls, 2);
    }
}
