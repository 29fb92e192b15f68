//! Detectors: what each rule kind makes of a window. Each asks the source
//! for the window's events (its pushdown, projection and exact clauses) and
//! turns them into matches ([`Candidate`]s: an event, or a sequence of
//! them), oldest first; everything around — windows, catch-up, dedup, cap,
//! alert documents, write, checkpoint, record — is the run's, the same for
//! every kind (DESIGN.md "Rule types").

mod constraints;
mod eql;
mod esql;
mod ml;
mod new_terms;
mod query;
mod threat;
mod threat_index;
mod threshold;
mod threshold_tiles;

pub(super) use eql::Carried;
pub(crate) use new_terms::tuples_of as new_terms_tuples;
pub(crate) use threat::ThreatHits;
pub(super) use threshold::{History, Seen};

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::record::ExecutionRecord;
use super::run::{RunError, RunnerSettings};
use crate::rule::{Rule, RuleKind};
use crate::schedule::window::Window;
use crate::source::{EventSource, Exact, FetchRequest};

/// One rule's detector for a run: its kind's, and what narrows the events
/// of every kind (filters, exceptions).
pub(crate) struct Detector<'r> {
    kind: Kind<'r>,
    constraints: Option<Exact>,
}

enum Kind<'r> {
    // One detector per run: its size does not matter.
    Eql(Box<eql::EqlDetector<'r>>),
    Query(query::QueryDetector<'r>),
    Threshold(threshold::ThresholdDetector<'r>),
    Esql(esql::EsqlDetector<'r>),
    Ml(ml::MlDetector<'r>),
    ThreatMatch(threat::ThreatDetector<'r>),
    NewTerms(new_terms::NewTermsDetector<'r>),
}

impl<'r> Detector<'r> {
    /// The detector of `rule` for a run at `now` (exception items expire);
    /// a query that cannot run at all (an EQL query that does not compile)
    /// is an error here, before any search.
    pub(crate) fn new(
        rule: &'r Rule,
        settings: &RunnerSettings,
        now: DateTime<Utc>,
    ) -> Result<Detector<'r>, RunError> {
        let kind = match &rule.kind {
            RuleKind::Eql(eql) => Kind::Eql(Box::new(eql::EqlDetector::new(eql, settings)?)),
            RuleKind::Query(q) => Kind::Query(query::QueryDetector::new(q)),
            RuleKind::Threshold(t) => Kind::Threshold(threshold::ThresholdDetector::new(t)),
            RuleKind::Esql(e) => Kind::Esql(esql::EsqlDetector::new(
                e,
                rule.max_signals,
                rule.uuid().to_string(),
            )),
            RuleKind::MachineLearning(m) => Kind::Ml(ml::MlDetector::new(m, rule.max_signals)),
            RuleKind::ThreatMatch(t) => {
                Kind::ThreatMatch(threat::ThreatDetector::new(rule, t, now)?)
            }
            RuleKind::NewTerms(n) => Kind::NewTerms(new_terms::NewTermsDetector::new(n)),
        };
        Ok(Detector {
            kind,
            constraints: constraints::constraints(rule, now)?,
        })
    }

    /// The detector of a run over a range given by the caller (`hunt`,
    /// `test`) rather than one scheduled window: a threshold rule counts in
    /// the windows its schedule would have run over the range.
    pub(crate) fn for_range(mut self, rule: &Rule) -> Detector<'r> {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let tiling = threshold_tiles::Tiling {
            width_ms: ms(rule.schedule.lookback()),
            interval_ms: ms(rule.schedule.interval),
        };
        self.kind = match self.kind {
            Kind::Threshold(d) => Kind::Threshold(d.tiled(tiling)),
            Kind::NewTerms(d) => Kind::NewTerms(d.tiled(tiling)),
            other => other,
        };
        self
    }

    /// How far a window's search reaches before the window.
    pub(crate) fn reach(&self) -> Reach {
        match &self.kind {
            Kind::Eql(d) => d.reach(),
            // a new_terms detector sets its own range (the history)
            Kind::Query(_)
            | Kind::Threshold(_)
            | Kind::ThreatMatch(_)
            | Kind::NewTerms(_)
            | Kind::Esql(_)
            | Kind::Ml(_) => Reach::NONE,
        }
    }

    /// What a rule that Elasticsearch evaluates sends for `window` (ES|QL,
    /// machine learning), for `explain`; `None` for rules evaluated here.
    pub(crate) fn cluster_request(&self, window: Window) -> Option<serde_json::Value> {
        match &self.kind {
            Kind::Esql(d) => Some(serde_json::json!({
                "POST /_query/async?drop_null_columns=true": {
                    "query": d.query(),
                    "filter": "the window's time range, the rule's filters and NOT its exceptions \
                               (the query DSL of a query rule's search over these indices)",
                    "wait_for_completion_timeout": "10s",
                },
            })),
            Kind::Ml(d) => {
                let request = d.anomaly_request(window, self.constraints.as_ref()).ok()?;
                Some(serde_json::json!({
                    "POST /.ml-anomalies-*/_search":
                        crate::source::elasticsearch::anomaly_query(&request),
                }))
            }
            _ => None,
        }
    }

    /// Whether a window's matches come from one fetch of its events and
    /// nothing else (EQL and query rules): such windows can be read in a
    /// shared scan. Aggregating kinds ask the cluster their own questions.
    pub(crate) fn reads_one_stream(&self) -> bool {
        matches!(self.kind, Kind::Eql(_) | Kind::Query(_))
    }

    /// Whether a match gives a shell and building blocks (sequences and
    /// samples) rather than one event alert.
    pub(super) fn grouped(&self) -> bool {
        match &self.kind {
            Kind::Eql(d) => d.grouped(),
            Kind::Query(_)
            | Kind::Threshold(_)
            | Kind::ThreatMatch(_)
            | Kind::NewTerms(_)
            | Kind::Esql(_)
            | Kind::Ml(_) => false,
        }
    }

    /// `base` (indices, range, time filter, page size) narrowed to what
    /// this detector reads, with the rule's filters and exceptions.
    pub(crate) fn request(&self, base: FetchRequest) -> FetchRequest {
        let mut request = match &self.kind {
            Kind::Eql(d) => d.request(base),
            Kind::Query(d) => d.request(base),
            Kind::Threshold(d) => d.request(base),
            Kind::Esql(d) => d.request(base),
            Kind::Ml(_) => base,
            Kind::ThreatMatch(d) => d.request(base),
            Kind::NewTerms(d) => d.request(base),
        };
        request.exact = Exact::both(request.exact.take(), self.constraints.clone());
        request
    }

    /// An EQL sequence without `maxspan`.
    pub(crate) fn unbounded_sequence(&self) -> bool {
        matches!(&self.kind, Kind::Eql(d) if d.unbounded())
    }

    /// Whether a near-real-time tail carries this detector's state to the
    /// next tail (an EQL sequence's matcher).
    pub(crate) fn carries(&self) -> bool {
        self.carrying().is_some()
    }

    /// The EQL sequence detector whose matcher a tail carries to the next
    /// tail (see `runner::run::tail`); `None` for every other detector.
    pub(in crate::runner) fn carrying(&self) -> Option<&eql::EqlDetector<'r>> {
        match &self.kind {
            Kind::Eql(d) if d.carries() => Some(d),
            _ => None,
        }
    }

    /// The window's matches to offer, oldest first. `history` is the
    /// threshold history (see `Checkpoint::threshold_history`); other
    /// kinds ignore it.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        offer_from: DateTime<Utc>,
        history: &History,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        match &self.kind {
            Kind::Eql(d) => d.matches(source, request, window, offer_from, record).await,
            Kind::Query(d) => d.matches(source, request, record).await,
            Kind::Threshold(d) => d.matches(source, request, window, history, record).await,
            Kind::Esql(d) => d.matches(source, request, window, history, record).await,
            Kind::Ml(d) => {
                d.matches(source, window, self.constraints.as_ref(), record)
                    .await
            }
            Kind::ThreatMatch(d) => d.matches(source, request, record).await,
            Kind::NewTerms(d) => d.matches(source, request, window, record).await,
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

/// One match: an event, or a sequence / sample (`None` = missing event),
/// or a threshold group (no events: its alert is built from the group), or
/// a new tuple with its first document.
#[derive(Debug)]
pub(super) struct Candidate {
    /// (timestamp, position) of the last event: the cap keeps the oldest
    /// (the run breaks ties in time by head alert id instead, the same
    /// every time the window is searched).
    pub(super) order: (i64, usize),
    pub(super) events: Vec<Option<Hit>>,
    pub(super) threshold: Option<Box<crate::alert::threshold::ThresholdBucket>>,
    /// A threat_match event's candidate indicators (compared again on the
    /// documents when its alert is built).
    pub(super) threat: Option<Box<ThreatHits>>,
    /// A new tuple (new_terms rules): its values in the rule's field order;
    /// the match's one event is its first document in the window.
    pub(super) new_terms: Option<Vec<serde_json::Value>>,
    /// An event the detector made rather than fetched (an ES|QL row, an
    /// anomaly record made to fit ECS): its alert is built from it.
    pub(super) made: Option<Box<Made>>,
}

impl Candidate {
    /// No match: the base of one (`..Candidate::EMPTY`), with none of the
    /// parts only some kinds carry.
    pub(super) const EMPTY: Candidate = Candidate {
        order: (0, 0),
        events: Vec::new(),
        threshold: None,
        threat: None,
        new_terms: None,
        made: None,
    };
}

/// An event a detector made, and what the rule's group history keeps of
/// it once it alerted (aggregating ES|QL rows, see `esql`).
#[derive(Debug)]
pub(super) struct Made {
    pub(super) event: crate::alert::SourceEvent,
    pub(super) mark: Option<(String, Seen)>,
}

/// How far a window's search reaches before the window start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reach {
    /// Before the earliest last event offered: room for the first events of
    /// a sequence (`maxspan`, or the unbounded lookback).
    pub(crate) before: TimeDelta,
    /// Before the checkpoint: sequences a trailing missing-event stage left
    /// undecided in the previous run (last event within `maxspan` of its
    /// window end).
    pub(crate) undecided: TimeDelta,
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
