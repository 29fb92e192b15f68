//! The EQL detector: the query compiled for each index's mapping, its
//! pushdown and projection, events streamed through the event, sequence or
//! sample matcher (see the module doc of `runner` for sequences across
//! window boundaries).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::super::plans::WindowPlans;
use super::super::record::ExecutionRecord;
use super::super::run::{delta, RunError, RunnerSettings, MAX_REACH_MS};
use super::{note_source_warnings, Candidate, Hit, Reach};
use crate::eql::compile::{compile, CompileOptions, Plan, PlanKind};
use crate::eql::schema::Schema;
use crate::eql::search::{self, Found, ResultPosition, SearchOptions, Stream};
use crate::eql::sequence::Limits;
use crate::rule::EqlRule;
use crate::schedule::window::Window;
use crate::source::{EventSource, FetchRequest};

pub(in crate::runner) struct EqlDetector<'r> {
    eql: &'r EqlRule,
    options: CompileOptions,
    /// The query's shape (kind, stages, maxspan), compiled without a
    /// mapping; each window compiles it again for the mappings of the
    /// indices it reads (`WindowPlans`).
    plan: Plan,
    reach: Reach,
    limits: Limits,
}

impl<'r> EqlDetector<'r> {
    pub(super) fn new(
        eql: &'r EqlRule,
        settings: &RunnerSettings,
    ) -> Result<EqlDetector<'r>, RunError> {
        let options = eql.compile_options();
        let plan = compile(&eql.query, &Schema::default(), &options).map_err(RunError::Compile)?;
        let reach = reach_of(&plan, settings);
        Ok(EqlDetector {
            eql,
            options,
            plan,
            reach,
            limits: settings.limits,
        })
    }

    pub(super) fn reach(&self) -> Reach {
        self.reach
    }

    /// Sequences and samples give a shell plus building blocks.
    pub(super) fn grouped(&self) -> bool {
        self.plan.kind != PlanKind::Event
    }

    pub(super) fn request(&self, mut request: FetchRequest) -> FetchRequest {
        request.timestamp_field = self.options.timestamp_field.clone();
        request.tiebreaker_field = self.eql.tiebreaker_field.clone();
        request.for_query(&self.eql.query, &self.options.event_category_field)
    }

    /// Fetches one window and runs the query over it, each event with the
    /// mapping of the index it came from: the matches to offer (events, or
    /// sequences ending at or after `offer_from`), oldest first.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        offer_from: DateTime<Utc>,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        let (out, _) = self
            .stream_window(source, request, window, offer_from, None, record)
            .await?;
        Ok(out)
    }

    /// A sequence without `maxspan`: its partial sequences last as long as
    /// the window reaches back (`unbounded_sequence_lookback`).
    pub(super) fn unbounded(&self) -> bool {
        self.plan.kind == PlanKind::Sequence && self.plan.maxspan_ms.is_none()
    }

    /// Whether a tail carries this detector's matcher to the next tail
    /// (sequences: [`Carried`]).
    pub(super) fn carries(&self) -> bool {
        self.plan.kind == PlanKind::Sequence
    }

    /// [`Self::matches`] of a tail: a sequence's matcher comes from the
    /// tail before (`carried`, which fed everything up to this window's
    /// start: the request need not reach back) or starts afresh (the
    /// request reaches back), and what it holds at the window's end goes to
    /// the next tail.
    pub(in crate::runner) async fn carried_matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        carried: Option<Carried>,
        record: &mut ExecutionRecord,
    ) -> Result<(Vec<Candidate>, Option<Carried>), RunError> {
        // Carried: every sequence decided now was not offered before.
        let offer_from = match carried {
            Some(_) => DateTime::<Utc>::MIN_UTC,
            None => window.start,
        };
        let carried = Some(carried.unwrap_or_default());
        self.stream_window(source, request, window, offer_from, carried, record)
            .await
    }

    /// The fetch and the matcher of [`Self::matches`]; with `carried`, the
    /// matcher goes on from it and is given back.
    async fn stream_window<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        offer_from: DateTime<Utc>,
        carried: Option<Carried>,
        record: &mut ExecutionRecord,
    ) -> Result<(Vec<Candidate>, Option<Carried>), RunError> {
        let patterns = request.indices.clone();
        let mut events = source.fetch(request).await?;
        note_source_warnings(&patterns, events.warnings(), record);
        let mut plans = WindowPlans::compile(&self.eql.query, &self.options, events.mappings())
            .map_err(RunError::CompileForIndex)?;
        // The query's shape is the same in every plan; the stream borrows
        // it from a copy so that `plans` stays free to intern index names.
        let plan = plans.shape().clone();
        let plan = &plan;
        // Everything is kept: dedup and cap decide later what is written.
        let search_options = SearchOptions {
            size: usize::MAX,
            result_position: ResultPosition::Head,
            max_samples_per_key: 1,
            limits: self.limits,
        };
        let carrying = carried.is_some() && plan.kind == PlanKind::Sequence;
        let (mut stream, mut position, fed_before): (Stream<'_, Hit>, usize, _) = match carried {
            Some(Carried {
                matcher: Some(matcher),
                next_position,
                fed,
            }) => (
                Stream::resume(plan, &search_options, matcher)?,
                next_position,
                fed,
            ),
            Some(c) => (
                Stream::new(plan, &search_options)?,
                c.next_position,
                HashSet::new(),
            ),
            None => (Stream::new(plan, &search_options)?, 0, HashSet::new()),
        };
        let mut fed: HashSet<(Arc<str>, Arc<str>)> = HashSet::new();
        let mut unordered = 0u64;
        while let Some(doc) = events.next().await {
            let doc = doc?;
            record.events_fetched += 1;
            let (index, own) = plans.for_index(doc.index);
            let id: Arc<str> = Arc::from(doc.id);
            if carrying {
                // Consecutive ranges share their boundary instant: an event
                // there was fed by the tail before.
                let key = (index.clone(), id.clone());
                if fed_before.contains(&key) {
                    continue;
                }
                fed.insert(key);
            }
            let event = own.event(&doc.source);
            let ordinal = search::ordinal(&event, position);
            position += 1;
            // Elasticsearch returns an event whose range field is in the
            // window but whose ordering field is missing or unreadable; a
            // sequence cannot place it, so it is left out, and said so.
            if ordinal.is_none() && plan.kind == PlanKind::Sequence {
                unordered += 1;
            }
            let hit = Hit {
                index,
                id,
                ts: event.timestamp.unwrap_or(i64::MAX),
                position,
            };
            stream.push(own, hit, ordinal.as_ref(), &event);
        }
        if unordered > 0 {
            record.events_skipped += unordered;
            record.warnings.push(format!(
                "{unordered} events have no usable timestamp in `{}` and were left out of the \
                 sequence: it cannot order them",
                plan.fields().timestamp_name().unwrap_or("@timestamp")
            ));
        }
        let dropped = stream.overflow();
        if dropped > 0 {
            record.warnings.push(format!(
                "{dropped} partial sequences were dropped at the limit of {} pending; \
                 sequences may have been missed in this window",
                self.limits.max_pending
            ));
        }
        let clock = window.end.timestamp_millis();
        let (found, next) = match plan.kind {
            PlanKind::Sequence if carrying => {
                let (found, matcher) = stream.finish_carrying(clock);
                let next = Carried {
                    matcher,
                    next_position: position,
                    fed,
                };
                (found, Some(next))
            }
            PlanKind::Sequence => (stream.finish_at(clock), None),
            PlanKind::Event | PlanKind::Sample => (stream.finish(), None),
        };
        let offer_ms = offer_from.timestamp_millis();
        let mut out: Vec<Candidate> = match found {
            Found::Events { refs, .. } => refs
                .into_iter()
                .map(|h| Candidate {
                    order: (h.ts, h.position),
                    events: vec![Some(h)],
                    ..Candidate::EMPTY
                })
                .collect(),
            Found::Sequences(found) => found
                .into_iter()
                .filter_map(|s| {
                    let last = s
                        .events
                        .iter()
                        .flatten()
                        .map(|h| (h.ts, h.position))
                        .max()?;
                    // Ended before this window's offer: an earlier window's.
                    (plan.kind != PlanKind::Sequence || last.0 >= offer_ms).then_some(Candidate {
                        order: last,
                        events: s.events,
                        ..Candidate::EMPTY
                    })
                })
                .collect(),
        };
        out.sort_by_key(|c| c.order);
        Ok((out, next))
    }
}

/// What a tail carries of a sequence to the next tail: the matcher with
/// its partial (and waiting) sequences, where positions go on, and which
/// events it fed last.
#[derive(Debug, Default)]
pub(in crate::runner) struct Carried {
    /// `None`: not started yet (the first tail starts it).
    matcher: Option<search::Carried<Hit>>,
    /// Positions go on across tails: ties in time keep their order.
    next_position: usize,
    /// The events (index, id) the last tail fed: the next one's range
    /// starts at the instant this one's ended, both inclusive.
    fed: HashSet<(Arc<str>, Arc<str>)>,
}

/// How far a sequence's windows reach back (see `runner`'s module doc):
/// its `maxspan` (or the unbounded lookback) before the window, and, for a
/// trailing missing-event stage, `maxspan` before the checkpoint too.
fn reach_of(plan: &Plan, settings: &RunnerSettings) -> Reach {
    if plan.kind != PlanKind::Sequence {
        return Reach::NONE;
    }
    let maxspan = plan.maxspan_ms.map(|ms| {
        TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 4).min(MAX_REACH_MS))
    });
    let trailing_missing = plan.stages.last().is_some_and(|s| s.missing);
    Reach {
        before: maxspan.unwrap_or_else(|| delta(settings.unbounded_sequence_lookback)),
        undecided: match (trailing_missing, maxspan) {
            (true, Some(m)) => m,
            _ => TimeDelta::zero(),
        },
    }
}
