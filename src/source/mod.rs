//! Where events come from: NDJSON files for offline runs, Elasticsearch /
//! OpenSearch for the daemon, and memory for tests.
//!
//! [`EventSource`] is the seam a rule run talks to: one [`FetchRequest`] per
//! window (index patterns, time range, pushdown filter, projection) gives an
//! [`EventStream`] that yields the window's events in order, one bounded page
//! at a time, so memory does not grow with the window. Events that end up in
//! alerts are read again in full with [`EventSource::fetch_sources`].

pub mod elasticsearch;
pub mod files;
pub mod memory;

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::cluster::ClusterError;
use crate::eql::pushdown::Filter;
pub use files::Document;

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
    /// `_source` includes; `None` fetches whole documents.
    pub source_fields: Option<Vec<String>>,
    /// Events per page (at most 10,000 on a default cluster).
    pub page_size: usize,
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
            source_fields: None,
            page_size: 1_000,
        }
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
    #[error("search response: {0}")]
    BadResponse(String),
    #[error("shard failures in search: {0}")]
    ShardFailures(String),
    #[error("invalid fetch request: {0}")]
    InvalidRequest(String),
    #[error("the fetch task stopped before the end of the window")]
    TaskGone,
}

/// A window's events, in order, delivered a page at a time through a
/// bounded channel (the producer waits when the consumer is behind).
pub struct EventStream {
    warnings: Vec<String>,
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
            rx: Some(rx),
            page: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// A stream over documents already in memory.
    pub fn from_documents(warnings: Vec<String>, docs: Vec<Document>) -> EventStream {
        EventStream {
            warnings,
            rx: None,
            page: docs.into_iter(),
            failed: false,
        }
    }

    /// Warnings found before the first event (indices that match nothing).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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

    /// The whole `_source` of the given events (for those that end up in
    /// alerts, after a projected fetch). Events that no longer exist are
    /// left out.
    fn fetch_sources(
        &self,
        refs: &[DocRef],
    ) -> impl Future<Output = Result<Vec<Document>, SourceError>> + Send;
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
}
