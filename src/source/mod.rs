//! Where events come from: NDJSON files for offline runs (`ndjson`),
//! Elasticsearch / OpenSearch for the daemon, and memory for tests; the
//! sources without a cluster share what a request selects (`select`).
//!
//! [`EventSource`] is the seam a rule run talks to: one [`FetchRequest`] per
//! window (index patterns, time range, pushdown filter, projection) gives an
//! [`EventStream`] that yields the window's events in order, one bounded page
//! at a time, so memory does not grow with the window. Events that end up in
//! alerts are read again in full with [`EventSource::fetch_sources`]. The
//! stream also carries the [`Mappings`] of the indices searched (read for
//! the search's pushdown and projection), with which the rule run evaluates
//! each event.

pub mod cluster_only;
pub mod elasticsearch;
pub mod files;
pub mod groups;
pub mod indicators;
pub mod mappings;
pub mod memory;
pub mod ndjson;
pub mod new_terms;
pub mod select;
pub mod shared;

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::cluster::ClusterError;
use crate::eql::ast::Query;
use crate::eql::pushdown::{pushdown, referenced_fields, Filter};
pub use crate::eql::search::Document;
pub use cluster_only::{Anomalies, AnomalyRequest, EsqlRows};
pub use groups::{Excluded, Group, GroupCount, Groups};
pub use mappings::Mappings;
pub use new_terms::{NewTerm, NewTerms, NewTermsAsk};
pub use shared::{ScanError, ScanOptions, SharedScan};

use std::sync::Arc;

/// An inclusive time range `[from, to]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Which field the time range applies to, Kibana style: the rule's
/// `timestamp_override` (or `@timestamp`), and, unless the rule disables the
/// fallback, `@timestamp` for documents that lack the override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeFilter {
    pub primary: String,
    pub fallback: Option<String>,
}

impl TimeFilter {
    /// The fields Kibana's detection engine filters on for a rule with
    /// these `timestamp_override` / `timestamp_override_fallback_disabled`.
    pub fn kibana(timestamp_override: Option<&str>, fallback_disabled: bool) -> TimeFilter {
        match timestamp_override {
            Some(o) if o != "@timestamp" => TimeFilter {
                primary: o.to_string(),
                fallback: (!fallback_disabled).then(|| "@timestamp".to_string()),
            },
            _ => TimeFilter {
                primary: "@timestamp".to_string(),
                fallback: None,
            },
        }
    }

    /// The primary field, then the fallback.
    pub fn fields(&self) -> Vec<String> {
        std::iter::once(self.primary.clone())
            .chain(self.fallback.clone())
            .collect()
    }

    /// An event's time, epoch ms: the first date in the primary field, else
    /// in the fallback.
    pub fn time_of(&self, doc: &serde_json::Value) -> Option<i64> {
        self.fields().iter().find_map(|f| {
            crate::eql::pushdown::field_values(doc, f)
                .into_iter()
                .find_map(memory::timestamp_millis)
        })
    }
}

/// What every fetched event must match exactly, unlike the pushdown
/// filter, which may let more through: a query rule's query, every rule's
/// filters and exceptions. The rule gives it as a translation to the
/// shared filter tree for the field types the source knows (KQL is
/// translated for the indices' types, as Kibana's data view gives them);
/// the cluster gets it as query DSL, other sources evaluate it on each
/// event. The source learns nothing of the language.
#[derive(Clone)]
pub struct Exact(Arc<ExactFn>);

type ExactFn = dyn Fn(Option<&crate::filter::FieldTypes>) -> Result<crate::filter::Filter, String>
    + Send
    + Sync;

impl Exact {
    pub fn new(
        f: impl Fn(Option<&crate::filter::FieldTypes>) -> Result<crate::filter::Filter, String>
            + Send
            + Sync
            + 'static,
    ) -> Exact {
        Exact(Arc::new(f))
    }

    /// Both clauses (`None` where one is absent).
    pub fn both(a: Option<Exact>, b: Option<Exact>) -> Option<Exact> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Exact::new(move |types| {
                Ok(crate::filter::Filter::and(vec![
                    a.lower(types)?,
                    b.lower(types)?,
                ]))
            })),
            (a, b) => a.or(b),
        }
    }

    /// The filter for these field types (`None`: no mapping known).
    pub fn lower(
        &self,
        types: Option<&crate::filter::FieldTypes>,
    ) -> Result<crate::filter::Filter, String> {
        (self.0)(types)
    }
}

impl std::fmt::Debug for Exact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exact(..)")
    }
}

impl PartialEq for Exact {
    fn eq(&self, other: &Exact) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One window's search.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchRequest {
    /// Index patterns as in the rule (`logs-endpoint.events.*`, ...).
    pub indices: Vec<String>,
    pub range: TimeRange,
    pub time_filter: TimeFilter,
    /// The field events are ordered by (the rule's `timestamp_field`).
    pub timestamp_field: String,
    pub tiebreaker_field: Option<String>,
    /// The pushdown filter ([`Filter::MatchAll`] to fetch everything).
    pub filter: Filter,
    /// What events must match exactly, besides the pushdown.
    pub exact: Option<Exact>,
    /// `_source` includes; `None` fetches whole documents.
    pub source_fields: Option<Vec<String>>,
    /// Events per page (at most 10,000 on a default cluster).
    pub page_size: usize,
    /// No time range: every document the filters select, in index order
    /// (an indicator list, which Kibana searches without a time range;
    /// `range.to` is still what date math in the exact clause is relative
    /// to).
    pub timeless: bool,
}

impl FetchRequest {
    /// A request with the defaults of an EQL rule: `@timestamp` ordering and
    /// range, no tiebreaker, no filter, whole documents, 1,000 per page.
    pub fn new(indices: Vec<String>, range: TimeRange) -> FetchRequest {
        FetchRequest {
            indices,
            range,
            time_filter: TimeFilter::kibana(None, false),
            timestamp_field: "@timestamp".to_string(),
            tiebreaker_field: None,
            filter: Filter::MatchAll,
            exact: None,
            source_fields: None,
            page_size: 1_000,
            timeless: false,
        }
    }
}

impl FetchRequest {
    /// Narrows the request to what `query` can use: its pushdown filter and
    /// a projection of the fields it reads plus the time, order and
    /// category fields. Events that end up in alerts are read in full
    /// afterwards with [`EventSource::fetch_sources`].
    pub fn for_query(mut self, query: &Query, event_category_field: &str) -> FetchRequest {
        self.filter = pushdown(query, event_category_field);
        let mut fields = referenced_fields(query, event_category_field);
        fields.insert(event_category_field.to_string());
        fields.insert(self.timestamp_field.clone());
        fields.insert(self.time_filter.primary.clone());
        fields.extend(self.time_filter.fallback.clone());
        fields.extend(self.tiebreaker_field.clone());
        self.source_fields = Some(fields.into_iter().collect());
        self
    }
}

/// An event to read again in full: where it lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DocRef {
    pub index: String,
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("shard failures in search: {0}")]
    ShardFailures(String),
    #[error("invalid fetch request: {0}")]
    InvalidRequest(String),
    #[error("the fetch task stopped before the end of the window")]
    TaskGone,
    #[error("reading the mappings of {indices}: {error}")]
    MappingRequest {
        indices: String,
        error: ClusterError,
    },
    #[error("the mapping of {indices} cannot be read: {reason}")]
    Mapping { indices: String, reason: String },
    /// The rule's query cannot be translated or evaluated for these indices.
    #[error("the query cannot run: {0}")]
    Query(String),
    /// The source cannot do what the rule needs (ES|QL or machine
    /// learning without Elasticsearch): the text says what is needed.
    #[error("{0}")]
    Unsupported(String),
    /// An events file could not be read again (`ndjson`).
    #[error("reading {path}: {reason}")]
    File { path: String, reason: String },
}

/// A window's events, in order, delivered a page at a time through a
/// bounded channel (the producer waits when the consumer is behind).
pub struct EventStream {
    warnings: Vec<String>,
    mappings: Arc<Mappings>,
    rx: Option<mpsc::Receiver<Result<Vec<Document>, SourceError>>>,
    page: std::vec::IntoIter<Document>,
    failed: bool,
}

impl EventStream {
    /// A stream fed by a producer task through `rx`: pages of events in
    /// order, then an empty page as the end marker (or an error). A channel
    /// that closes without the marker is an incomplete window
    /// ([`SourceError::TaskGone`]), never a silent end.
    pub fn from_channel(
        warnings: Vec<String>,
        rx: mpsc::Receiver<Result<Vec<Document>, SourceError>>,
    ) -> EventStream {
        EventStream {
            warnings,
            mappings: Arc::default(),
            rx: Some(rx),
            page: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// A stream over documents already in memory.
    pub fn from_documents(warnings: Vec<String>, docs: Vec<Document>) -> EventStream {
        EventStream {
            warnings,
            mappings: Arc::default(),
            rx: None,
            page: docs.into_iter(),
            failed: false,
        }
    }

    /// The stream with the mappings of the indices it reads.
    pub fn with_mappings(mut self, mappings: Arc<Mappings>) -> EventStream {
        self.mappings = mappings;
        self
    }

    /// Warnings found before the first event (indices that match nothing).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The mapping of each index the events come from (empty when the
    /// source has none: events are then typed from their JSON).
    pub fn mappings(&self) -> &Arc<Mappings> {
        &self.mappings
    }

    /// The next event; `None` at the end. After an error the stream ends.
    pub async fn next(&mut self) -> Option<Result<Document, SourceError>> {
        loop {
            if let Some(doc) = self.page.next() {
                return Some(Ok(doc));
            }
            if self.failed {
                return None;
            }
            let rx = self.rx.as_mut()?;
            match rx.recv().await {
                Some(Ok(page)) if page.is_empty() => {
                    self.rx = None;
                    return None;
                }
                Some(Ok(page)) => self.page = page.into_iter(),
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                // The producer went away without the end marker (a panic,
                // a runtime shutting down): the window is incomplete.
                None => {
                    self.failed = true;
                    return Some(Err(SourceError::TaskGone));
                }
            }
        }
    }

    /// Drains the stream into memory (tests and small windows only).
    pub async fn collect(mut self) -> Result<Vec<Document>, SourceError> {
        let mut out = Vec::new();
        while let Some(doc) = self.next().await {
            out.push(doc?);
        }
        Ok(out)
    }
}

/// Where a rule run gets its events.
pub trait EventSource: Send + Sync {
    /// Starts fetching one window.
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> impl Future<Output = Result<EventStream, SourceError>> + Send;

    /// One scan for several window requests ([`shared`]): every event any
    /// of them selects, once, and per request exactly the events its own
    /// [`EventSource::fetch`] would give, in the same order. `None` when
    /// this source does not share scans (each request is then fetched
    /// alone). A scan holding more than `options.max_events` events stops
    /// with [`ScanError::TooLarge`].
    fn fetch_shared(
        &self,
        requests: &[FetchRequest],
        options: shared::ScanOptions,
    ) -> impl Future<Output = Result<Option<SharedScan>, ScanError>> + Send {
        let _ = (requests, options);
        async { Ok(None) }
    }

    /// The whole `_source` of the given events (for those that end up in
    /// alerts, after a projected fetch). Events that no longer exist are
    /// left out.
    fn fetch_sources(
        &self,
        refs: &[DocRef],
    ) -> impl Future<Output = Result<Vec<Document>, SourceError>> + Send;

    /// Starts fetching an indicator list (a threat_match rule's
    /// `threat_index`, a [`FetchRequest::timeless`] request). A cluster
    /// serves it like any search; offline, indicators come from their own
    /// file ([`indicators::WithIndicators`]).
    fn fetch_indicators(
        &self,
        request: FetchRequest,
    ) -> impl Future<Output = Result<EventStream, SourceError>> + Send {
        self.fetch(request)
    }

    /// The whole `_source` of the given indicators (those an event
    /// matched), as [`EventSource::fetch_sources`] for events.
    fn fetch_indicator_sources(
        &self,
        refs: &[DocRef],
    ) -> impl Future<Output = Result<Vec<Document>, SourceError>> + Send {
        self.fetch_sources(refs)
    }

    /// The window's events of `request` counted per group, by the source
    /// itself (an aggregation on a cluster); `None` when this source does
    /// not aggregate, and the caller counts the fetched events instead.
    fn count_groups(
        &self,
        request: &FetchRequest,
        count: &GroupCount,
    ) -> impl Future<Output = Result<Option<Groups>, SourceError>> + Send {
        let _ = (request, count);
        async { Ok(None) }
    }

    /// The rows of the ES|QL `query` (its `| limit` included) over
    /// `request`'s window: the range, time fields and exact clauses
    /// (filters, exceptions) become the query's `filter`.
    fn esql(
        &self,
        request: &FetchRequest,
        query: &str,
    ) -> impl Future<Output = Result<EsqlRows, SourceError>> + Send {
        let _ = (request, query);
        async { Err(unsupported(crate::rule::NEEDS_ESQL)) }
    }

    /// The documents with these `_id`s in `indices` (an ES|QL row names
    /// its document by `_id` alone when the query has no `METADATA _index`).
    fn search_ids(
        &self,
        indices: &[String],
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Document>, SourceError>> + Send {
        let _ = (indices, ids);
        async { Err(unsupported(crate::rule::NEEDS_ESQL)) }
    }

    /// The anomaly records a machine-learning rule reads.
    fn anomalies(
        &self,
        request: &AnomalyRequest,
    ) -> impl Future<Output = Result<Anomalies, SourceError>> + Send {
        let _ = request;
        async { Err(unsupported(crate::rule::NEEDS_ML)) }
    }

    /// The new tuples of `request`'s window (its time range) against the
    /// history from `ask.history_from`, found by the source itself
    /// (aggregations on a cluster); `None` when this source does not
    /// aggregate, and the caller works on the fetched events instead.
    fn new_terms(
        &self,
        request: &FetchRequest,
        ask: &NewTermsAsk,
    ) -> impl Future<Output = Result<Option<NewTerms>, SourceError>> + Send {
        let _ = (request, ask);
        async { Ok(None) }
    }
}

/// The error of a source that lacks what a rule needs.
pub fn unsupported(needs: &str) -> SourceError {
    SourceError::Unsupported(format!(
        "this rule needs {needs}; this source has no cluster"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: &str) -> Document {
        Document {
            index: "i".into(),
            id: id.into(),
            source: json!({}),
        }
    }

    #[tokio::test]
    async fn stream_ends_at_the_marker_and_a_lost_producer_is_an_error() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(vec![doc("a"), doc("b")])).await.unwrap();
        tx.send(Ok(vec![doc("c")])).await.unwrap();
        tx.send(Ok(Vec::new())).await.unwrap();
        drop(tx);
        let got = EventStream::from_channel(vec![], rx)
            .collect()
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );

        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(vec![doc("a")])).await.unwrap();
        drop(tx);
        let mut s = EventStream::from_channel(vec![], rx);
        assert!(s.next().await.unwrap().is_ok());
        assert!(matches!(s.next().await, Some(Err(SourceError::TaskGone))));
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_projected_pushdown_fetch_keeps_what_the_evaluator_matches() {
        use crate::eql::compile::{compile, CompileOptions};
        use crate::eql::schema::Schema;
        use crate::synth::{Synth, SynthConfig};
        let docs: Vec<Document> = Synth::new(SynthConfig {
            attacks_per_10k: 50,
            ..SynthConfig::default()
        })
        .take(5_000)
        .enumerate()
        .map(|(i, source)| Document {
            index: "logs-endpoint.events.test".into(),
            id: format!("e{i}"),
            source,
        })
        .collect();
        let query = crate::eql::parse(
            r#"sequence by host.id, process.entity_id with maxspan = 5s
 [library where dll.name : "taskschd.dll" and process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe")]
 [network where process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")]"#,
        )
        .unwrap();
        let plan = compile(&query, &Schema::default(), &CompileOptions::default()).unwrap();
        let matched: Vec<&str> = docs
            .iter()
            .filter(|d| {
                let ev = plan.event(&d.source);
                plan.stages.iter().any(|s| s.matches(&ev))
            })
            .map(|d| d.id.as_str())
            .collect();
        assert!(matched.len() > 20);
        let first = docs[0].source["@timestamp"].as_str().unwrap();
        let from = chrono::DateTime::parse_from_rfc3339(first)
            .unwrap()
            .with_timezone(&Utc);
        let req = FetchRequest::new(
            vec!["logs-endpoint.events.*".into()],
            TimeRange {
                from,
                to: from + chrono::Duration::hours(1),
            },
        )
        .for_query(&query, "event.category");
        let fields = req.source_fields.clone().unwrap();
        for f in [
            "@timestamp",
            "dll.name",
            "host.id",
            "process.entity_id",
            "destination.address",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
        let source = memory::MemorySource::new(docs.clone());
        let got = source.fetch(req).await.unwrap().collect().await.unwrap();
        assert!(
            got.len() < docs.len() / 5,
            "pushdown narrows: {} of {}",
            got.len(),
            docs.len()
        );
        // The evaluator still matches the same events on projected sources.
        let kept: Vec<&str> = got
            .iter()
            .filter(|d| {
                let ev = plan.event(&d.source);
                plan.stages.iter().any(|s| s.matches(&ev))
            })
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(kept, matched);
        // And the full sources come back for alerting.
        let refs: Vec<DocRef> = got[..3]
            .iter()
            .map(|d| DocRef {
                index: d.index.clone(),
                id: d.id.clone(),
            })
            .collect();
        let full = source.fetch_sources(&refs).await.unwrap();
        assert!(
            full[0].source.get("user").is_some(),
            "full source has every field"
        );
    }
}
