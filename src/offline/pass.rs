//! One read of every input of `detectd query` into a fresh [`Stream`]: the
//! lines are decoded and evaluated on worker threads ([`super::chunks`]),
//! and what each event is to the query ([`Matches`]) comes back in input
//! order to this thread, which alone checks time order, numbers events and
//! feeds the stream. Workers keep nothing of an event but its matches and
//! ordinal, so a sort in memory holds those, not the events.

use std::sync::Arc;

use super::chunks::{Chunk, Threads};
use super::prefilter::{for_each_kept, Prefilter};
use super::{read_chunks, Input, LineRef, LineText, OfflineError};
use crate::eql::compile::{Plan, PlanKind};
use crate::eql::search::{self, Found, Matches, SearchOptions, Stream};
use crate::eql::sequence::Ordinal;
use crate::source::files::BadLine;

/// How events reach the matcher.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// As read; an event older than the one before is an error.
    Given,
    /// Buffered and sorted first.
    Sort,
}

/// One non-blank line, as a worker leaves it (`line`: its place in the
/// chunk, see [`Chunk::for_each_line`]).
enum Line {
    /// Not a JSON object.
    Unreadable { line: u64, reason: String },
    Event {
        line: u64,
        offset: u64,
        len: u32,
        /// With input position 0: the merge numbers events.
        ordinal: Option<Ordinal>,
        matches: Matches,
        /// The line itself, when it must be kept (stdin) and can be shown.
        bytes: Option<Arc<[u8]>>,
    },
}

/// Decodes and evaluates the lines of `chunk` with `plan`, but for those
/// the prefilter rules out: they match nothing, and only a sequence's
/// clock would see them.
fn work(plan: &Plan, prefilter: Option<&Prefilter>, keep_bytes: bool, chunk: &Chunk) -> Vec<Line> {
    let mut out = Vec::new();
    for_each_kept(prefilter, chunk, |line, offset, bytes| {
        out.push(match plan.fields().decode_event(bytes) {
            Err(e) => Line::Unreadable {
                line,
                reason: e.to_string(),
            },
            Ok(event) => {
                let matches = Matches::of(plan, &event);
                Line::Event {
                    line,
                    offset,
                    len: bytes.len() as u32,
                    ordinal: search::ordinal(&event, 0),
                    bytes: (keep_bytes && matches.any()).then(|| Arc::from(bytes)),
                    matches,
                }
            }
        })
    });
    out
}

/// One read of every input into a fresh [`Stream`] (shaped by `plan`, each
/// input evaluated with its `per_input` plan): what it found, and how many
/// partial sequences it dropped at the pending-state cap.
#[allow(clippy::too_many_arguments)]
pub(super) fn pass(
    plan: &Plan,
    per_input: &[&Plan],
    inputs: &[Input],
    names: &[String],
    opts: &SearchOptions,
    prefilter: Option<&Prefilter>,
    threads: Threads,
    order: Order,
    bad_line: &mut impl FnMut(BadLine),
) -> Result<(Found<LineRef>, u64), OfflineError> {
    let mut stream = Stream::new(plan, opts)?;
    let mut buffered: Vec<(Ordinal, Matches, LineRef)> = Vec::new();
    // Elasticsearch sorts events without a timestamp last (event queries;
    // sequences cannot use them), so they wait for the end.
    let mut untimed: Vec<(Matches, LineRef)> = Vec::new();
    let mut last: Option<Ordinal> = None;
    let mut position: u64 = 0;
    let samples = plan.kind == PlanKind::Sample;
    // Only a sequence's clock needs the events that match nothing.
    let clocked = plan.kind == PlanKind::Sequence;

    for (n, input) in inputs.iter().enumerate() {
        let keep_bytes = matches!(input, Input::Stdin);
        let own = per_input[n];
        let mut merge = |first_line: u64, lines: Vec<Line>| -> Result<(), OfflineError> {
            for line in lines {
                let (line, offset, len, ordinal, matches, bytes) = match line {
                    Line::Unreadable { line, reason } => {
                        bad_line(BadLine {
                            index: names[n].clone(),
                            line: first_line + line,
                            reason,
                            unreadable: true,
                        });
                        continue;
                    }
                    Line::Event {
                        line,
                        offset,
                        len,
                        ordinal,
                        matches,
                        bytes,
                    } => (first_line + line, offset, len, ordinal, matches, bytes),
                };
                let r = LineRef {
                    input: n as u32,
                    line,
                    text: match bytes {
                        Some(bytes) => LineText::Bytes(bytes),
                        None if keep_bytes => LineText::Unkept,
                        None => LineText::At { offset, len },
                    },
                };
                let ordinal = ordinal.map(|mut o| {
                    o.index = position;
                    o
                });
                position += 1;
                match (ordinal, order) {
                    // samples ignore time: input order
                    (ordinal, _) if samples => stream.push_matches(r, ordinal.as_ref(), &matches),
                    (None, _) if plan.kind == PlanKind::Sequence => {
                        // Elasticsearch cannot order it, so no sequence uses
                        // it; say so rather than drop it silently.
                        bad_line(BadLine {
                            index: names[n].clone(),
                            line,
                            reason: format!(
                                "no usable timestamp in `{}`: a sequence cannot order the event",
                                plan.fields().timestamp_name().unwrap_or("@timestamp")
                            ),
                            unreadable: false,
                        });
                    }
                    (None, _) => {
                        if matches.any() {
                            untimed.push((matches, r));
                        }
                    }
                    (Some(ord), Order::Sort) => {
                        if clocked || matches.any() {
                            buffered.push((ord, matches, r));
                        }
                    }
                    (Some(ord), Order::Given) => {
                        if last.as_ref().is_some_and(|l| ord < *l) {
                            return Err(OfflineError::OutOfOrder {
                                index: names[n].clone(),
                                line,
                            });
                        }
                        stream.push_matches(r, Some(&ord), &matches);
                        last = Some(ord);
                    }
                }
            }
            Ok(())
        };
        let work = |chunk: &Chunk| work(own, prefilter, keep_bytes, chunk);
        read_chunks(input, threads, &work, &mut merge)?;
    }

    buffered.sort_by(|a, b| a.0.cmp(&b.0));
    for (ord, matches, r) in buffered {
        stream.push_matches(r, Some(&ord), &matches);
    }
    for (matches, r) in untimed {
        stream.push_matches(r, None, &matches);
    }
    let overflow = stream.overflow();
    Ok((stream.finish(), overflow))
}

#[cfg(test)]
#[path = "pass_tests.rs"]
mod tests;
