//! Offline query runs over NDJSON: what `detectd query` does.
//!
//! Each line is decoded into an [`Event`] holding only the fields the query
//! reads — unless its bytes show the query cannot match it ([`prefilter`]);
//! the full `_source` is parsed again only for the events that end up in
//! the answer. Elasticsearch orders events by timestamp and tiebreaker,
//! so input in another order is sorted in memory first; input already in
//! time order (the usual export) streams straight into the matcher, and
//! memory stays bounded by the matcher's state whatever the input size.
//!
//! Each file is evaluated with its own plan from a [`PlanSet`] (the query
//! compiled for that file's `--mapping`, see [`mappings`]), as Elasticsearch
//! evaluates each index with its own mapping.

#[cfg(unix)]
mod blocks;
pub mod chunks;
pub mod filter_query;
mod layout;
pub mod mappings;
mod pass;
pub mod prefilter;
mod required;
mod tree_prefilter;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::eql::compile::{Plan, PlanKind, PlanSet};
use crate::eql::search::{self, HitEvent, SearchError, SearchOptions, SearchResponse};
use crate::source::files::{index_name, BadLine, LineError};
pub use chunks::Threads;
use pass::{pass, Order};
pub use prefilter::Prefilter;

/// Where the NDJSON comes from.
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    /// The `_index` its events are shown with: the file name, or `stdin`.
    pub fn name(&self) -> String {
        match self {
            Input::File(p) => index_name(p),
            Input::Stdin => "stdin".to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(
        "events are not in time order: {index}:{line} is older than an event before it \
         (run without --sorted to sort them)"
    )]
    OutOfOrder { index: String, line: u64 },
}

/// One input line, as the answer refers to it: which input, which line,
/// and where to find its text again.
#[derive(Clone, Debug, PartialEq)]
pub struct LineRef {
    input: u32,
    line: u64,
    text: LineText,
}

#[derive(Clone, Debug, PartialEq)]
enum LineText {
    /// In a file: re-read when shown.
    At { offset: u64, len: u32 },
    /// From stdin, which cannot be re-read: the bytes themselves.
    Bytes(Arc<[u8]>),
    /// From stdin, of an event no answer can show (it matches nothing):
    /// not kept.
    Unkept,
}

/// The answer of an offline run, and what it could not do.
#[derive(Debug)]
pub struct QueryOutcome {
    pub response: SearchResponse,
    /// Partial sequences dropped at the pending-state cap (sequences without
    /// `maxspan` over long inputs): the answer may miss sequences.
    pub dropped_partial_sequences: u64,
}

/// Runs the query of `plans` over the inputs, each input with the plan for
/// its name (`_index`). Lines that are not JSON objects, and for sequences
/// events without a usable timestamp, are passed to `bad_line` and skipped.
///
/// With `sorted`, events must already be in time order and stream straight
/// through. Otherwise files are first streamed as if sorted, and only when
/// an event turns out to be out of order are they read again and sorted in
/// memory; standard input, which cannot be read twice, is sorted in memory.
///
/// With a `prefilter`, lines it rules out are not decoded (see
/// [`prefilter`]).
///
/// Lines are decoded and evaluated on `threads` (see [`chunks`]) and taken
/// back in input order: the answer, the bad lines and their order are the
/// same for any number of threads.
pub fn run_query(
    plans: &PlanSet,
    inputs: &[Input],
    opts: &SearchOptions,
    sorted: bool,
    prefilter: Option<&Prefilter>,
    threads: Threads,
    mut bad_line: impl FnMut(BadLine),
) -> Result<QueryOutcome, OfflineError> {
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let plan = plans.shape();
    let per_input: Vec<&Plan> = names.iter().map(|n| plans.for_key(n)).collect();
    let all_files = inputs.iter().all(|i| matches!(i, Input::File(_)));
    let (found, dropped) = if sorted || plan.kind == PlanKind::Sample {
        pass(
            plan,
            &per_input,
            inputs,
            &names,
            opts,
            prefilter,
            threads,
            Order::Given,
            &mut bad_line,
        )?
    } else if all_files {
        let mut bad = Vec::new();
        match pass(
            plan,
            &per_input,
            inputs,
            &names,
            opts,
            prefilter,
            threads,
            Order::Given,
            &mut |b| bad.push(b),
        ) {
            Ok(done) => {
                bad.into_iter().for_each(&mut bad_line);
                done
            }
            Err(OfflineError::OutOfOrder { .. }) => pass(
                plan,
                &per_input,
                inputs,
                &names,
                opts,
                prefilter,
                threads,
                Order::Sort,
                &mut bad_line,
            )?,
            Err(e) => return Err(e),
        }
    } else {
        pass(
            plan,
            &per_input,
            inputs,
            &names,
            opts,
            prefilter,
            threads,
            Order::Sort,
            &mut bad_line,
        )?
    };

    let shown = show_all(&found.refs(), inputs, &names, threads)?;
    let mut shown = shown.into_iter();
    let hits = search::hits(plan.kind, found, |r| {
        let hit = shown.next().expect("a hit for every reference, in order");
        debug_assert_eq!(
            (&hit.index, &hit.id),
            (&names[r.input as usize], &r.line.to_string())
        );
        hit
    });
    Ok(QueryOutcome {
        response: search::response(hits),
        dropped_partial_sequences: dropped,
    })
}

/// The hits for `refs` ([`show`]), in order: read again and parsed on
/// `threads`, each taking a contiguous share with file handles of its own
/// (the answer's lines are read after the pass, on a core each). The
/// first error, if any.
fn show_all(
    refs: &[&LineRef],
    inputs: &[Input],
    names: &[String],
    threads: Threads,
) -> Result<Vec<HitEvent>, OfflineError> {
    let show_share = |share: &[&LineRef]| -> Result<Vec<HitEvent>, OfflineError> {
        let mut files: Vec<Option<File>> = inputs.iter().map(|_| None).collect();
        share
            .iter()
            .map(|r| show(r, inputs, names, &mut files))
            .collect()
    };
    // a few hits are not worth a thread
    let workers = threads.workers.clamp(1, refs.len().div_ceil(256).max(1));
    if workers == 1 {
        return show_share(refs);
    }
    let share = refs.len().div_ceil(workers);
    let shown: Vec<Result<Vec<_>, OfflineError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = refs
            .chunks(share)
            .map(|part| scope.spawn(move || show_share(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(refs.len());
    for part in shown {
        all.extend(part?);
    }
    Ok(all)
}

/// The hit for a referenced line: its text read again and parsed whole.
fn show(
    r: &LineRef,
    inputs: &[Input],
    names: &[String],
    files: &mut [Option<File>],
) -> Result<HitEvent, OfflineError> {
    let input = r.input as usize;
    let bytes: Vec<u8> = match &r.text {
        LineText::Bytes(b) => b.to_vec(),
        LineText::Unkept => {
            return Err(OfflineError::Io {
                path: names[input].clone(),
                source: io::Error::other(format!(
                    "line {} was not kept: it matches nothing the answer can show",
                    r.line
                )),
            })
        }
        LineText::At { offset, len } => {
            let Input::File(path) = &inputs[input] else {
                unreachable!("offsets are only taken for files");
            };
            if files[input].is_none() {
                files[input] = Some(File::open(path).map_err(|e| io_error(path, e))?);
            }
            let file = files[input].as_mut().expect("opened above");
            let mut buf = vec![0; *len as usize];
            file.seek(SeekFrom::Start(*offset))
                .and_then(|_| file.read_exact(&mut buf))
                .map_err(|e| io_error(path, e))?;
            buf
        }
    };
    let source = serde_json::from_slice(&bytes).map_err(|e| OfflineError::Io {
        path: names[input].clone(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {} changed while running: {e}", r.line),
        ),
    })?;
    Ok(HitEvent {
        index: names[input].clone(),
        id: r.line.to_string(),
        source,
        missing: false,
    })
}

/// Reads `input` in chunks of lines worked on by `threads`, the results
/// merged in input order with the number of their chunk's first line (see
/// [`chunks::map_chunks`]).
fn read_chunks<T: Send>(
    input: &Input,
    threads: Threads,
    work: &(impl Fn(&chunks::Chunk) -> T + Sync),
    merge: impl FnMut(u64, T) -> Result<(), OfflineError>,
) -> Result<(), OfflineError> {
    match input {
        Input::File(path) => {
            let file = File::open(path).map_err(|source| io_error(path, source))?;
            chunks::map_file_chunks(file, threads, work, merge).map_err(|e| with_path(e, path))
        }
        Input::Stdin => chunks::map_chunks(io::stdin(), threads, work, merge)
            .map_err(|e| with_path(e, Path::new("<stdin>"))),
    }
}

fn io_error(path: &Path, source: io::Error) -> OfflineError {
    OfflineError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn with_path(e: LineError<OfflineError>, path: &Path) -> OfflineError {
    match e {
        LineError::Io(e) => io_error(path, e),
        LineError::Callback(e) => e,
    }
}
