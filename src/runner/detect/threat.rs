//! The threat_match (indicator match) detector. Kibana
//! (`indicator_match/threat_mapping/create_threat_signals.ts`) searches the
//! window's events with the rule's query, filters and exceptions, and the
//! indicators of `threat_index` with `threat_query`, `threat_filters`, the
//! rule's exceptions too (`get_threat_list.ts` passes the rule's
//! `exceptionFilter`) and "every field of some mapping exists"
//! (`get_mapping_filters.ts`), with **no time range** on the indicators
//! (only what `threat_query` says, e.g. `@timestamp >= "now-30d/d"`); it
//! then matches the smaller side against the other in chunks of
//! `bool.should` clauses.
//!
//! detectd loads the indicators once per run, paged with a point in time
//! like any search, into a hash join index ([`threat_index`], keys only),
//! then streams the window's events (the query detector's search, reading
//! only the time and mapped fields) and looks each up: an event that
//! matches an indicator by a whole mapping is a match, one alert per event
//! with every indicator it matched. The enrichments are built when the
//! alerts are (`alert::threat`), from the matched indicators read again by
//! id. An indicator index that matches nothing is the search's warning, as
//! for events: the run has nothing to match and alerts nothing.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::super::record::ExecutionRecord;
use super::super::run::RunError;
use super::threat_index::IndicatorIndex;
use super::{note_source_warnings, query, Candidate};
use crate::filter::Filter;
use crate::kibana_filter::{build_query_from_filters, PlaceOptions};
use crate::rule::{Rule, ThreatMatchRule};
use crate::source::{EventSource, Exact, FetchRequest};

/// One event's indicators (by `_index`, `_id`) and the mapping each
/// matched by, in load order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ThreatHits {
    pub(crate) indicators: Vec<(Arc<str>, Box<str>, u16)>,
}

pub(in crate::runner) struct ThreatDetector<'r> {
    rule: &'r ThreatMatchRule,
    /// The rule's exceptions apply to the indicators too (see above).
    exceptions: Option<Exact>,
    /// Loaded at the first window of the run, then kept for the others.
    index: Mutex<Option<Arc<IndicatorIndex>>>,
}

impl<'r> ThreatDetector<'r> {
    pub(super) fn new(
        rule: &'r Rule,
        threat: &'r ThreatMatchRule,
        now: DateTime<Utc>,
    ) -> Result<ThreatDetector<'r>, RunError> {
        let exceptions = rule
            .exceptions
            .build(now)
            .map_err(RunError::Exceptions)?
            .map(|e| {
                let filter = e.to_filter();
                Exact::new(move |_| Ok(filter.clone()))
            });
        Ok(ThreatDetector {
            rule: threat,
            exceptions,
            index: Mutex::new(None),
        })
    }

    /// The events' search: the query rule's, reading the time fields and
    /// the events' mapped fields.
    pub(super) fn request(&self, request: FetchRequest) -> FetchRequest {
        let fields = self
            .rule
            .threat_mapping
            .iter()
            .flat_map(|m| m.entries.iter().map(|e| e.field.clone()));
        let mut request =
            query::QueryDetector::new(&self.rule.query).request_reading(request, fields);
        if let Some(fields) = request.source_fields.as_mut() {
            fields.sort();
            fields.dedup();
        }
        request
    }

    /// The indicators' search for a run whose window search is `events`:
    /// no time range, `threat_query`, `threat_filters`, the exceptions and
    /// the mapping's fields, reading only those fields.
    pub(crate) fn indicator_request(&self, events: &FetchRequest) -> FetchRequest {
        let mut request = FetchRequest::new(self.rule.threat_index.clone(), events.range);
        request.timeless = true;
        request.page_size = events.page_size;
        let mut fields: Vec<String> = self
            .rule
            .threat_mapping
            .iter()
            .flat_map(|m| m.entries.iter().map(|e| e.value.clone()))
            .collect();
        fields.sort();
        fields.dedup();
        request.source_fields = Some(fields);
        let query = query::exact(&self.rule.threat_query);
        let filters = self.rule.threat_filters.clone();
        let mapping = Filter::or(
            self.rule
                .threat_mapping
                .iter()
                .map(|m| Filter::and(m.entries.iter().map(|e| Filter::exists(&e.value)).collect()))
                .collect(),
        );
        let narrowed = Exact::new(move |types| {
            let placed = build_query_from_filters(&filters, types, &PlaceOptions::default())
                .map_err(|e| format!("the rule's threat_filters: {e}"))?;
            Ok(Filter::and(vec![placed.tree(), mapping.clone()]))
        });
        request.exact = Exact::both(
            Exact::both(Some(query), Some(narrowed)),
            self.exceptions.clone(),
        );
        request
    }

    /// The run's indicators, loaded at the first call.
    async fn indicators<S: EventSource>(
        &self,
        source: &S,
        events: &FetchRequest,
        record: &mut ExecutionRecord,
    ) -> Result<Arc<IndicatorIndex>, RunError> {
        if let Some(index) = self.index.lock().ok().and_then(|g| g.clone()) {
            return Ok(index);
        }
        let request = self.indicator_request(events);
        let patterns = request.indices.clone();
        let mut stream = source.fetch_indicators(request).await?;
        note_source_warnings(&patterns, stream.warnings(), record);
        let mut index = IndicatorIndex::default();
        while let Some(doc) = stream.next().await {
            let doc = doc?;
            index.add(&self.rule.threat_mapping, &doc.index, &doc.id, &doc.source);
        }
        index.finish();
        tracing::debug!(
            indicators = index.len(),
            keys = index.key_count(),
            skipped = index.skipped,
            bytes = index.heap_bytes(),
            "indicators loaded"
        );
        if index.skipped > 0 {
            record.warnings.push(format!(
                "{} indicator documents lack the fields of every threat_mapping and were skipped",
                index.skipped
            ));
        }
        let index = Arc::new(index);
        if let Ok(mut slot) = self.index.lock() {
            *slot = Some(index.clone());
        }
        Ok(index)
    }

    /// The window's events that match an indicator, oldest first.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        let index = self.indicators(source, &request, record).await?;
        if index.is_empty() {
            return Ok(Vec::new());
        }
        let mappings = &self.rule.threat_mapping;
        let indicators_of = |event: &serde_json::Value| {
            let matched = index.candidates(mappings, event);
            (!matched.is_empty()).then(|| {
                matched
                    .iter()
                    .map(|m| {
                        let (ix, id) = index.reference(m.indicator);
                        (ix.clone(), Box::from(id), m.mapping)
                    })
                    .collect()
            })
        };
        query::one_event_matches(source, request, record, indicators_of, |c, indicators| {
            c.threat = Some(Box::new(ThreatHits { indicators }));
        })
        .await
    }
}
