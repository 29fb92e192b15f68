//! A push-based query executor: events go in one at a time (in time order
//! for event queries and sequences, in any order for samples) and results
//! come out as references `R` to the caller's documents, never copies.
//!
//! Memory is bounded by what the answer can need, not by the input: an
//! event query keeps only the matches the first limit (`head`/`tail` pipe or
//! `size`) can return, a sequence keeps the matcher's pending state plus the
//! completed sequences, a sample keeps the sample matcher's candidates.
//! [`super::search`] runs on top of this, so the conformance suites exercise
//! exactly this code.

use std::collections::VecDeque;

use super::super::ast::Pipe;
use super::super::compile::{Plan, PlanKind};
use super::super::event::Event;
use super::super::sample::{SampleHit, SampleMatcher, SampleSpec};
use super::super::sequence::{Ordinal, SequenceMatch, SequenceMatcher, StageHit};
use super::super::value::Value;
use super::{
    limit, sample_filter_hits, sequence_spec, sequence_stage_hits, ResultPosition, SearchError,
    SearchOptions,
};

/// What a finished stream found, as references to the pushed documents.
#[derive(Clone, Debug, PartialEq)]
pub enum Found<R> {
    /// Matching events in order, after the limits; `total` counts all.
    Events { total: u64, refs: Vec<R> },
    /// Sequences (`None` = missing-event placeholder) or samples, after the
    /// limits, each with its join key.
    Sequences(Vec<FoundSequence<R>>),
}

impl<R> Found<R> {
    /// Every reference, in the order [`super::hits`] renders them (a
    /// missing event's placeholder has none): the events, or each
    /// sequence's events in turn.
    pub fn refs(&self) -> Vec<&R> {
        match self {
            Found::Events { refs, .. } => refs.iter().collect(),
            Found::Sequences(found) => found
                .iter()
                .flat_map(|f| f.events.iter().flatten())
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FoundSequence<R> {
    pub key: Vec<Value>,
    pub events: Vec<Option<R>>,
}

/// A sequence matcher between two windows of one input (a near-real-time
/// tail carries it from one tail to the next): [`Stream::finish_carrying`]
/// gives it, [`Stream::resume`] takes it back.
pub type Carried<R> = Box<SequenceMatcher<Vec<Value>, R>>;

/// A query run in progress.
pub struct Stream<'p, R> {
    plan: &'p Plan,
    opts: SearchOptions,
    state: State<R>,
}

enum State<R> {
    Events(EventWindow<R>),
    Sequence {
        matcher: Box<SequenceMatcher<Vec<Value>, R>>,
        hits: Vec<StageHit<Vec<Value>>>,
    },
    Sample {
        matcher: SampleMatcher<Vec<Value>, R>,
        hits: Vec<SampleHit<Vec<Value>>>,
    },
}

impl<'p, R: Clone + PartialEq> Stream<'p, R> {
    pub fn new(plan: &'p Plan, opts: &SearchOptions) -> Result<Self, SearchError> {
        let state = match plan.kind {
            PlanKind::Event => State::Events(EventWindow::new(&plan.pipes, opts)),
            PlanKind::Sequence => State::Sequence {
                matcher: Box::new(SequenceMatcher::new(sequence_spec(plan), opts.limits)?),
                hits: Vec::new(),
            },
            PlanKind::Sample => State::Sample {
                matcher: SampleMatcher::new(SampleSpec {
                    filters: plan.stages.len(),
                    max_samples_per_key: opts.max_samples_per_key,
                })?,
                hits: Vec::new(),
            },
        };
        Ok(Stream {
            plan,
            opts: *opts,
            state,
        })
    }

    /// A sequence's stream going on from where an earlier window of the
    /// same query left `matcher` ([`Stream::finish_carrying`]); a plan of
    /// another kind, which has no matcher to carry, starts afresh.
    pub fn resume(
        plan: &'p Plan,
        opts: &SearchOptions,
        matcher: Carried<R>,
    ) -> Result<Self, SearchError> {
        let mut stream = Stream::new(plan, opts)?;
        if let State::Sequence { matcher: own, .. } = &mut stream.state {
            *own = matcher;
        }
        Ok(stream)
    }

    /// Feeds one event, evaluated with `plan` (the stream's own plan, or the
    /// same query compiled for the event's index). `ordinal` is `None` for
    /// an event without a timestamp: sequences skip it, as Elasticsearch
    /// cannot order it.
    pub fn push(&mut self, plan: &Plan, r: R, ordinal: Option<&Ordinal>, event: &Event) {
        match &mut self.state {
            State::Events(window) => {
                if plan.stages.first().is_some_and(|s| s.matches(event)) {
                    window.push(r);
                }
            }
            State::Sequence { matcher, hits } => {
                if let Some(ord) = ordinal {
                    sequence_stage_hits(plan, event, hits);
                    matcher.push(r, ord, hits);
                }
            }
            State::Sample { matcher, hits } => {
                sample_filter_hits(plan, event, hits);
                matcher.push(r, hits);
            }
        }
    }

    /// Feeds one event by what [`Matches::of`] found in it: the same as
    /// [`Stream::push`] with the event, for a caller that evaluates events
    /// elsewhere (on other threads) and keeps only this.
    pub fn push_matches(&mut self, r: R, ordinal: Option<&Ordinal>, matches: &Matches) {
        match (&mut self.state, matches) {
            (State::Events(window), Matches::Event(matched)) => {
                if *matched {
                    window.push(r);
                }
            }
            (State::Sequence { matcher, .. }, Matches::Sequence(hits)) => {
                if let Some(ord) = ordinal {
                    matcher.push(r, ord, hits);
                }
            }
            (State::Sample { matcher, .. }, Matches::Sample(hits)) => matcher.push(r, hits),
            _ => unreachable!("matches of a plan of another kind"),
        }
    }

    /// Partial sequences dropped because the pending-state cap
    /// ([`super::super::sequence::Limits::max_pending`]) was reached: an
    /// answer that may miss sequences, to be reported, never silent.
    pub fn overflow(&self) -> u64 {
        match &self.state {
            State::Sequence { matcher, .. } => matcher.stats().overflow,
            _ => 0,
        }
    }

    /// Ends the input: decides pending missing-event stages and applies the
    /// limits.
    pub fn finish(self) -> Found<R> {
        self.finish_with(None)
    }

    /// Ends one window of a longer input (a scheduled run): the data clock
    /// is `data_clock_ms` (the window end), so a trailing missing-event
    /// stage is decided only if its `maxspan` elapsed before it; sequences
    /// still waiting are left out (a later window, which reaches back by
    /// `maxspan`, finds them again). Event queries and samples end as with
    /// [`Stream::finish`].
    pub fn finish_at(self, data_clock_ms: i64) -> Found<R> {
        self.finish_with(Some(data_clock_ms))
    }

    /// [`Stream::finish_at`], keeping a sequence's matcher for the next
    /// window ([`Stream::resume`]): the sequences decided by now come out,
    /// partial and waiting ones stay in it. `None` for other kinds.
    pub fn finish_carrying(mut self, data_clock_ms: i64) -> (Found<R>, Option<Carried<R>>) {
        let State::Sequence { matcher, .. } = &mut self.state else {
            return (self.finish_at(data_clock_ms), None);
        };
        matcher.advance_watermark(data_clock_ms);
        let done = matcher.drain_completed();
        let Stream { plan, opts, state } = self;
        let State::Sequence { matcher, .. } = state else {
            unreachable!("a sequence above")
        };
        (sequences(done, plan, &opts), Some(matcher))
    }

    fn finish_with(self, data_clock_ms: Option<i64>) -> Found<R> {
        match self.state {
            State::Events(window) => window.finish(&self.plan.pipes, &self.opts),
            State::Sequence { mut matcher, .. } => {
                match data_clock_ms {
                    None => matcher.finish(),
                    Some(clock) => matcher.advance_watermark(clock),
                }
                sequences(matcher.drain_completed(), self.plan, &self.opts)
            }
            State::Sample { matcher, .. } => {
                // Elasticsearch's sample iterator stops after `size` samples
                // in key order whatever `result_position` says.
                let head = SearchOptions {
                    result_position: ResultPosition::Head,
                    ..self.opts
                };
                let kept = limit(matcher.results(usize::MAX), &self.plan.pipes, &head);
                Found::Sequences(
                    kept.into_iter()
                        .map(|s| FoundSequence {
                            key: s.key,
                            events: s.events.into_iter().map(Some).collect(),
                        })
                        .collect(),
                )
            }
        }
    }
}

/// Decided sequences in Elasticsearch's order, limited by the pipes.
fn sequences<R>(
    mut done: Vec<SequenceMatch<Vec<Value>, R>>,
    plan: &Plan,
    opts: &SearchOptions,
) -> Found<R> {
    done.sort_by(|a, b| a.es_order(b));
    let kept = limit(done, &plan.pipes, opts);
    Found::Sequences(
        kept.into_iter()
            .map(|m| FoundSequence {
                key: m.key,
                events: m.events,
            })
            .collect(),
    )
}

/// What [`Stream::push`] decides from one event, computed apart from the
/// stream: whether an event query matches it, or the stages (filters) of a
/// sequence (sample) it matches with their join keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Matches {
    Event(bool),
    Sequence(Vec<StageHit<Vec<Value>>>),
    Sample(Vec<SampleHit<Vec<Value>>>),
}

impl Matches {
    /// What `event` is to `plan` (the stream's plan, or the same query
    /// compiled for the event's index).
    pub fn of(plan: &Plan, event: &Event) -> Matches {
        match plan.kind {
            PlanKind::Event => {
                Matches::Event(plan.stages.first().is_some_and(|s| s.matches(event)))
            }
            PlanKind::Sequence => {
                let mut hits = Vec::new();
                sequence_stage_hits(plan, event, &mut hits);
                Matches::Sequence(hits)
            }
            PlanKind::Sample => {
                let mut hits = Vec::new();
                sample_filter_hits(plan, event, &mut hits);
                Matches::Sample(hits)
            }
        }
    }

    /// Whether the event can be part of an answer (it still counts for a
    /// sequence's clock when it cannot).
    pub fn any(&self) -> bool {
        match self {
            Matches::Event(matched) => *matched,
            Matches::Sequence(hits) => !hits.is_empty(),
            Matches::Sample(hits) => !hits.is_empty(),
        }
    }
}

/// The matches of an event query that the limits can still return.
///
/// The limits (`| head`/`| tail` pipes, then `size` from the head or the
/// tail) always select a contiguous run, and the first of them decides which
/// part of the full match list the rest can see: a head of `n` only ever
/// needs the first `n` matches, a tail of `n` the last `n`. So only that many
/// are kept, and the remaining limits are applied at the end.
struct EventWindow<R> {
    total: u64,
    keep: Keep,
    kept: VecDeque<R>,
}

#[derive(Clone, Copy)]
enum Keep {
    First(usize),
    Last(usize),
}

impl<R> EventWindow<R> {
    fn new(pipes: &[Pipe], opts: &SearchOptions) -> Self {
        let keep = match pipes.first() {
            Some(Pipe::Head(n, _)) => Keep::First(usize::try_from(*n).unwrap_or(usize::MAX)),
            Some(Pipe::Tail(n, _)) => Keep::Last(usize::try_from(*n).unwrap_or(usize::MAX)),
            None => match opts.result_position {
                ResultPosition::Head => Keep::First(opts.size),
                ResultPosition::Tail => Keep::Last(opts.size),
            },
        };
        EventWindow {
            total: 0,
            keep,
            kept: VecDeque::new(),
        }
    }

    fn push(&mut self, r: R) {
        self.total += 1;
        match self.keep {
            Keep::First(n) => {
                if self.kept.len() < n {
                    self.kept.push_back(r);
                }
            }
            Keep::Last(n) => {
                if n == 0 {
                    return;
                }
                if self.kept.len() == n {
                    self.kept.pop_front();
                }
                self.kept.push_back(r);
            }
        }
    }

    fn finish(self, pipes: &[Pipe], opts: &SearchOptions) -> Found<R> {
        // The first limit is already applied by what was kept; applying it
        // again to the kept run is a no-op, so `limit` can take them all.
        Found::Events {
            total: self.total,
            refs: limit(Vec::from(self.kept), pipes, opts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::span::Span;

    fn window(pipes: &[Pipe], size: usize, pos: ResultPosition, n: usize) -> Vec<usize> {
        let opts = SearchOptions {
            size,
            result_position: pos,
            ..SearchOptions::default()
        };
        let mut w = EventWindow::new(pipes, &opts);
        for i in 0..n {
            w.push(i);
        }
        match w.finish(pipes, &opts) {
            Found::Events { total, refs } => {
                assert_eq!(total, n as u64);
                refs
            }
            Found::Sequences(_) => unreachable!("event window gives events"),
        }
    }

    #[test]
    fn bounded_window_equals_limits_on_the_full_list() {
        let s = Span::default();
        let pipe_sets: Vec<Vec<Pipe>> = vec![
            vec![],
            vec![Pipe::Head(3, s)],
            vec![Pipe::Tail(3, s)],
            vec![Pipe::Head(7, s), Pipe::Tail(2, s)],
            vec![Pipe::Tail(7, s), Pipe::Head(2, s)],
            vec![Pipe::Tail(0, s)],
            vec![Pipe::Head(4, s), Pipe::Head(9, s), Pipe::Tail(3, s)],
        ];
        for pipes in &pipe_sets {
            for size in [0, 1, 2, 5, 50] {
                for pos in [ResultPosition::Head, ResultPosition::Tail] {
                    for n in [0, 1, 4, 10, 30] {
                        let opts = SearchOptions {
                            size,
                            result_position: pos,
                            ..SearchOptions::default()
                        };
                        let full = limit((0..n).collect::<Vec<_>>(), pipes, &opts);
                        assert_eq!(
                            window(pipes, size, pos, n),
                            full,
                            "pipes {pipes:?} size {size} {pos:?} n {n}"
                        );
                    }
                }
            }
        }
    }
}
