//! Detectors: what each rule kind makes of a window. Each asks the source
//! for the window's events (its pushdown, projection and exact clauses) and
//! turns them into matches ([`Candidate`]s: an event, or a sequence of
//! them), oldest first; everything around — windows, catch-up, dedup, cap,
//! alert documents, write, checkpoint, record — is the run's, the same for
//! every kind (DESIGN.md "Rule types").

mod eql;
mod query;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::record::ExecutionRecord;
use super::run::{RunError, RunnerSettings};
use crate::rule::{Rule, RuleKind};
use crate::schedule::window::Window;
use crate::source::{EventSource, FetchRequest};

/// One rule's detector for a run.
pub(super) enum Detector<'r> {
    Eql(eql::EqlDetector<'r>),
    Query(query::QueryDetector<'r>),
}

impl<'r> Detector<'r> {
    /// The detector of `rule`; a query that cannot run at all (an EQL
    /// query that does not compile) is an error here, before any search.
    pub(super) fn new(
        rule: &'r Rule,
        settings: &RunnerSettings,
    ) -> Result<Detector<'r>, RunError> {
        Ok(match &rule.kind {
            RuleKind::Eql(eql) => Detector::Eql(eql::EqlDetector::new(eql, settings)?),
            RuleKind::Query(q) => Detector::Query(query::QueryDetector::new(q)),
        })
    }

    /// How far a window's search reaches before the window.
    pub(super) fn reach(&self) -> Reach {
        match self {
            Detector::Eql(d) => d.reach(),
            Detector::Query(_) => Reach::NONE,
        }
    }

    /// Whether a match gives a shell and building blocks (sequences and
    /// samples) rather than one event alert.
    pub(super) fn grouped(&self) -> bool {
        match self {
            Detector::Eql(d) => d.grouped(),
            Detector::Query(_) => false,
        }
    }

    /// `base` (indices, range, time filter, page size) narrowed to what
    /// this detector reads.
    pub(super) fn request(&self, base: FetchRequest) -> FetchRequest {
        match self {
            Detector::Eql(d) => d.request(base),
            Detector::Query(d) => d.request(base),
        }
    }

    /// The window's matches to offer, oldest first.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        offer_from: DateTime<Utc>,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        match self {
            Detector::Eql(d) => {
                d.matches(source, request, window, offer_from, record)
                    .await
            }
            Detector::Query(d) => d.matches(source, request, record).await,
        }
    }
}

/// One matched event, as a detector refers to it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Hit {
    pub(super) index: Arc<str>,
    pub(super) id: Arc<str>,
    /// Ordering timestamp, epoch ms (`i64::MAX` when missing: sorted last).
    pub(super) ts: i64,
    /// Position in the window's stream (ties).
    pub(super) position: usize,
}

/// One match: an event, or a sequence / sample (`None` = missing event).
#[derive(Debug)]
pub(super) struct Candidate {
    /// (timestamp, position) of the last event: the cap keeps the oldest
    /// (the run breaks ties in time by head alert id instead, the same
    /// every time the window is searched).
    pub(super) order: (i64, usize),
    pub(super) events: Vec<Option<Hit>>,
}

/// How far a window's search reaches before the window start.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reach {
    /// Before the earliest last event offered: room for the first events of
    /// a sequence (`maxspan`, or the unbounded lookback).
    pub(super) before: TimeDelta,
    /// Before the checkpoint: sequences a trailing missing-event stage left
    /// undecided in the previous run (last event within `maxspan` of its
    /// window end).
    pub(super) undecided: TimeDelta,
}

impl Reach {
    /// No reach: a match is one event inside the window.
    pub(super) const NONE: Reach = Reach {
        before: TimeDelta::zero(),
        undecided: TimeDelta::zero(),
    };
}

/// The run's warnings from a fetch's warnings (see `report`).
pub(super) fn note_source_warnings(
    patterns: &[String],
    warnings: &[String],
    record: &mut ExecutionRecord,
) {
    for w in super::report::source_warnings(patterns, warnings) {
        if !record.warnings.contains(&w) {
            record.warnings.push(w);
        }
    }
}
