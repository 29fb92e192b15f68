//! The EQL detector: the query compiled for each index's mapping, its
//! pushdown and projection, events streamed through the event, sequence or
//! sample matcher (see the module doc of `runner` for sequences across
//! window boundaries).

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
        let mut stream: Stream<'_, Hit> = Stream::new(plan, &search_options)?;
        let mut position = 0usize;
        let mut unordered = 0u64;
        while let Some(doc) = events.next().await {
            let doc = doc?;
            record.events_fetched += 1;
            let (index, own) = plans.for_index(doc.index);
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
                id: std::sync::Arc::from(doc.id),
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
        let found = match plan.kind {
            PlanKind::Sequence => stream.finish_at(window.end.timestamp_millis()),
            PlanKind::Event | PlanKind::Sample => stream.finish(),
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
        Ok(out)
    }
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
