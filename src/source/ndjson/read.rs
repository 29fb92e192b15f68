//! The two reads of a whole input, on worker threads
//! ([`crate::offline::chunks`]) with results taken back in line order:
//! opening (which lines are unreadable, where to find lines again) and a
//! fetch's selection. Parsing lines as JSON is the work; the order-bound
//! parts (marks, positions, reports) stay on the calling thread, so the
//! outcome is that of a line-by-line read on any number of threads.

use std::fs::File;
use std::io::{self, Cursor};

use memchr::memmem::Finder;
use serde_json::Value;

use super::valid::check_line;
use super::{parse_line, EventsInput, Mark, STRIDE};
use crate::offline::chunks::{map_chunks, map_file_chunks, Chunk, Threads};
use crate::offline::Prefilter;
use crate::source::files::{BadLine, LineError};
use crate::source::select::{Selector, SortKey, Verdict};
use crate::source::{Document, TimeFilter};

/// [`map_chunks`] of `input`: a file by [`map_file_chunks`] (a regular
/// file read by position on the workers), a text in memory by a reader.
fn map_input<T: Send>(
    input: &EventsInput,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(u64, T) -> Result<(), ()>,
) -> io::Result<()> {
    match input {
        EventsInput::File(path) => map_file_chunks(File::open(path)?, threads, work, merge),
        EventsInput::Text { text, .. } => map_chunks(Cursor::new(&text[..]), threads, work, merge),
    }
    .map_err(io_only)
}

fn io_only(e: LineError<()>) -> io::Error {
    match e {
        LineError::Io(e) => e,
        LineError::Callback(()) => unreachable!("the merge never fails"),
    }
}

/// Reads `input` once: its unreadable lines go to `bad_line` in line
/// order, and the marks (the first non-blank line of each [`STRIDE`] of
/// lines that has one) are returned.
pub(super) fn scan(
    input: &EventsInput,
    name: &str,
    threads: Threads,
    bad_line: &mut impl FnMut(BadLine),
) -> io::Result<Vec<Mark>> {
    struct Scanned {
        /// Where each non-blank line starts (its place in the chunk, its
        /// byte offset): which are marks depends on the chunk's first line,
        /// which only the merge knows.
        starts: Vec<(u64, u64)>,
        bad: Vec<(u64, String)>,
    }
    let stride = |line: u64| (line - 1) / STRIDE;
    let work = |chunk: &Chunk| {
        let mut out = Scanned {
            starts: Vec::new(),
            bad: Vec::new(),
        };
        chunk.for_each_line(|line, offset, bytes| {
            out.starts.push((line, offset));
            if let Err(e) = check_line(bytes) {
                out.bad.push((line, e.to_string()));
            }
        });
        out
    };
    let mut marks: Vec<Mark> = Vec::new();
    map_input(input, threads, &work, |first_line, scanned: Scanned| {
        for (line, offset) in scanned.starts {
            let line = first_line + line;
            if marks.last().is_none_or(|m| stride(m.line) < stride(line)) {
                marks.push(Mark { line, offset });
            }
        }
        for (line, reason) in scanned.bad {
            bad_line(BadLine {
                index: name.to_string(),
                line: first_line + line,
                reason,
                unreadable: true,
            });
        }
        Ok(())
    })?;
    Ok(marks)
}

/// What a fetch's read of one input selected.
#[derive(Default)]
pub(super) struct Selection {
    /// Selected events with their sort key and input position.
    pub hits: Vec<(SortKey, usize, Document)>,
    /// Events without a usable time, and the line of the first.
    pub untimed: u64,
    pub first_untimed: u64,
}

/// Lines a fetch does not decode: those its pushdown filter cannot pass,
/// ruled out from their bytes ([`Prefilter`]). Such a line is counted as
/// an event without a usable time when it does not even name the time
/// fields (the last part of each name, closing its key, is nowhere in it);
/// one that names them is taken to have a time, as it is in no selection
/// either way. So a file without the rule's time field still warns of
/// every line, and the selection is the same as when every line is decoded.
pub(super) struct Skip<'a> {
    prefilter: &'a Prefilter,
    time_keys: Vec<Finder<'static>>,
}

impl<'a> Skip<'a> {
    pub(super) fn new(prefilter: &'a Prefilter, times: &TimeFilter) -> Skip<'a> {
        let key = |field: &str| {
            let last = field.rsplit('.').next().unwrap_or(field);
            Finder::new(format!("{last}\"").as_bytes()).into_owned()
        };
        let time_keys = std::iter::once(&times.primary)
            .chain(times.fallback.as_ref())
            .map(|f| key(f))
            .collect();
        Skip {
            prefilter,
            time_keys,
        }
    }

    /// Whether a line ruled out names none of the time fields.
    fn untimed(&self, line: &[u8]) -> bool {
        !self.time_keys.iter().any(|k| k.find(line).is_some())
    }
}

/// Reads `input`, selecting with `selector` (without decoding the lines
/// `skip` rules out); `position` numbers the readable lines across inputs
/// (the sort's last tiebreaker: only its order matters).
pub(super) fn select(
    input: &EventsInput,
    name: &str,
    (selector, skip): (&Selector<'_>, Option<&Skip<'_>>),
    threads: Threads,
    position: &mut usize,
    out: &mut Selection,
) -> io::Result<()> {
    enum Line {
        Selected(SortKey, Value, u64),
        NoTime(u64),
        Other,
    }
    let work = |chunk: &Chunk| {
        let mut lines = Vec::new();
        let mut judge = skip.map(|s| s.prefilter.chunk(chunk));
        chunk.for_each_line(|line, offset, bytes| {
            if judge.as_mut().is_some_and(|j| j.rules_out(bytes, offset)) {
                if skip.is_some_and(|s| s.untimed(bytes)) {
                    lines.push(Line::NoTime(line));
                }
                return;
            }
            // Unreadable lines were reported when the source opened.
            let Ok(source) = parse_line(bytes) else {
                return;
            };
            lines.push(match selector.judge(name, &source) {
                Verdict::Selected(key) => {
                    Line::Selected(key, selector.project(&source).unwrap_or(source), line)
                }
                Verdict::NoTime => Line::NoTime(line),
                Verdict::Rejected => Line::Other,
            });
        });
        lines
    };
    map_input(input, threads, &work, |first_line, lines: Vec<Line>| {
        for line in lines {
            *position += 1;
            match line {
                Line::Selected(key, source, line) => out.hits.push((
                    key,
                    *position,
                    Document {
                        index: name.to_string(),
                        id: (first_line + line).to_string(),
                        source,
                    },
                )),
                Line::NoTime(line) => {
                    out.untimed += 1;
                    if out.first_untimed == 0 {
                        out.first_untimed = first_line + line;
                    }
                }
                Line::Other => {}
            }
        }
        Ok(())
    })
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
