//! The query detector (`query` and `saved_query` rules, KQL or Lucene):
//! Kibana's query rule (`rule_types/query/query.ts`) is a search, so every
//! event the search finds in the window is a match. The query is handed to
//! the source as an exact clause, translated for the indices' field types
//! as Kibana translates it for its data view (KQL), or passed as Kibana
//! passes it (Lucene `query_string`); sources without a cluster evaluate
//! it locally with the same meaning.

use std::sync::Arc;

use super::super::record::ExecutionRecord;
use super::super::run::RunError;
use super::{note_source_warnings, Candidate, Hit};
use crate::kql::lucene::{self, LuceneOptions};
use crate::kql::{self, KqlOptions};
use crate::rule::{QueryLanguage, QueryRule};
use crate::source::{EventSource, Exact, FetchRequest};

pub(in crate::runner) struct QueryDetector<'r> {
    query: &'r QueryRule,
}

impl<'r> QueryDetector<'r> {
    pub(super) fn new(query: &'r QueryRule) -> QueryDetector<'r> {
        QueryDetector { query }
    }

    /// The query as an exact clause, ordered by the time the range filters
    /// on (Kibana sorts a query rule's search by `timestamp_override`, then
    /// `@timestamp`), reading only the time fields: the events that become
    /// alerts are read in full afterwards.
    pub(super) fn request(&self, request: FetchRequest) -> FetchRequest {
        self.request_reading(request, std::iter::empty())
    }

    /// [`Self::request`], reading `fields` too (what a kind built on a
    /// query rule counts or compares: threshold, new_terms, threat_match).
    pub(super) fn request_reading(
        &self,
        mut request: FetchRequest,
        fields: impl IntoIterator<Item = String>,
    ) -> FetchRequest {
        request.timestamp_field = request.time_filter.primary.clone();
        request.tiebreaker_field = None;
        request.exact = Some(exact(self.query));
        let mut read = request.time_filter.fields();
        read.extend(fields);
        request.source_fields = Some(read);
        request
    }

    /// Every event the search returns, oldest first.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        one_event_matches(source, request, record, |_| Some(()), |_, ()| {}).await
    }
}

/// The events of `request`'s fetch as one-event matches, oldest first: those
/// `keep` finds something in (every event of a query rule; an event that
/// matches an indicator for threat_match), which `attach` puts on the match.
pub(super) async fn one_event_matches<S: EventSource, T>(
    source: &S,
    request: FetchRequest,
    record: &mut ExecutionRecord,
    mut keep: impl FnMut(&serde_json::Value) -> Option<T>,
    attach: impl Fn(&mut Candidate, T),
) -> Result<Vec<Candidate>, RunError> {
    let patterns = request.indices.clone();
    let time = request.time_filter.clone();
    let mut events = source.fetch(request).await?;
    note_source_warnings(&patterns, events.warnings(), record);
    let mut interned: std::collections::HashMap<String, Arc<str>> = Default::default();
    let mut out = Vec::new();
    let mut position = 0usize;
    while let Some(doc) = events.next().await {
        let doc = doc?;
        record.events_fetched += 1;
        position += 1;
        let Some(found) = keep(&doc.source) else {
            continue;
        };
        let index = interned
            .entry(doc.index.clone())
            .or_insert_with(|| Arc::from(doc.index.as_str()))
            .clone();
        let ts = time.time_of(&doc.source).unwrap_or(i64::MAX);
        let mut candidate = Candidate {
            order: (ts, position),
            events: vec![Some(Hit {
                index,
                id: Arc::from(doc.id),
                ts,
                position,
            })],
            ..Candidate::EMPTY
        };
        attach(&mut candidate, found);
        out.push(candidate);
    }
    out.sort_by_key(|c| c.order);
    Ok(out)
}

/// The rule's query as the exact clause the source translates: KQL for the
/// indices' field types with the detection engine's options
/// (`rule_types/utils/get_query_filter.ts`), Lucene as `query_string`.
pub(in crate::runner) fn exact(query: &QueryRule) -> Exact {
    match &query.language {
        QueryLanguage::Kql(node) => {
            let node = node.clone();
            Exact::new(move |types| {
                kql::lower(&node, types, &KqlOptions::detection_rules()).map_err(|e| e.to_string())
            })
        }
        QueryLanguage::Lucene => {
            let text = query.text.clone();
            Exact::new(move |_| Ok(lucene::to_filter(&text, &LuceneOptions::detection_rules())))
        }
    }
}
