//! An in-memory [`EventSource`] for tests of a whole rule run without a
//! cluster. It applies the same request a cluster would: index names (exact
//! or `*` patterns), then what `select` evaluates on each document (the
//! inclusive time range with the override fallback, the pushdown filter,
//! the exact clause, ordering by timestamp then tiebreaker then insertion
//! order, and the projection).
//!
//! Mappings ([`MemorySource::with_mappings`]) are handed to the stream like
//! the cluster source does, for the indices the request covers.

use std::sync::Arc;

use super::select::{Selector, Verdict};
use super::shared::{self, ScanError, SharedScan};
use super::{DocRef, Document, EventSource, EventStream, FetchRequest, Mappings, SourceError};
use crate::eql::pushdown::wildcard_match;

pub use super::select::timestamp_millis;

/// Documents held in memory, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    docs: Vec<Document>,
    mappings: Mappings,
    /// Index patterns whose readers cannot share a scan (as those reading
    /// through a routing alias of a cluster cannot).
    unshareable: Vec<String>,
}

impl MemorySource {
    pub fn new(docs: Vec<Document>) -> MemorySource {
        MemorySource {
            docs,
            mappings: Mappings::default(),
            unshareable: Vec::new(),
        }
    }

    /// The source where a rule reading `pattern` cannot share a scan.
    pub fn with_unshareable(mut self, pattern: &str) -> MemorySource {
        self.unshareable.push(pattern.to_string());
        self
    }

    /// The source with a mapping per index name.
    pub fn with_mappings(mut self, mappings: Mappings) -> MemorySource {
        self.mappings = mappings;
        self
    }
}

impl EventSource for MemorySource {
    async fn fetch(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        let mut warnings = Vec::new();
        for pattern in &request.indices {
            if !self
                .docs
                .iter()
                .any(|d| wildcard_match(pattern, &d.index, false))
            {
                warnings.push(format!("index pattern `{pattern}` matches no index"));
            }
        }
        let covered = |index: &str| {
            request
                .indices
                .iter()
                .any(|p| wildcard_match(p, index, false))
        };
        let mappings = self.mappings.filtered(covered);
        // Date math in the exact clause is relative to the window end, the
        // run's `now` on a scheduled run.
        let selector = Selector::new(&request, &mappings, request.range.to)?;
        let mut hits = Vec::new();
        for (pos, d) in self.docs.iter().enumerate() {
            if !covered(&d.index) {
                continue;
            }
            let Verdict::Selected(key) = selector.judge(&d.index, &d.source) else {
                continue;
            };
            let mut doc = d.clone();
            if let Some(projected) = selector.project(&d.source) {
                doc.source = projected;
            }
            hits.push((key, pos, doc));
        }
        if !request.timeless {
            hits.sort_by(|a, b| a.0.cmp_at(a.1, &b.0, b.1));
        }
        Ok(
            EventStream::from_documents(warnings, hits.into_iter().map(|h| h.2).collect())
                .with_mappings(Arc::new(mappings)),
        )
    }

    async fn fetch_shared(
        &self,
        requests: &[FetchRequest],
        options: shared::ScanOptions,
    ) -> Result<Option<SharedScan>, ScanError> {
        let max_events = options.max_events;
        shared::shareable(&requests.iter().collect::<Vec<_>>())
            .map_err(SourceError::InvalidRequest)?;
        let unshareable: Vec<usize> = (0..requests.len())
            .filter(|&m| {
                requests[m]
                    .indices
                    .iter()
                    .any(|i| self.unshareable.contains(i))
            })
            .collect();
        if !unshareable.is_empty() {
            return Err(ScanError::Unshareable {
                members: unshareable,
                reason: "it reads an index that cannot be shared".into(),
            });
        }
        let mut lists = Vec::with_capacity(requests.len());
        for request in requests {
            // whole documents: members projecting different fields share them
            let mut whole = request.clone();
            whole.source_fields = None;
            let stream = self.fetch(whole).await?;
            let (warnings, mappings) = (stream.warnings().to_vec(), stream.mappings().clone());
            lists.push((warnings, mappings, stream.collect().await?));
        }
        let scan = SharedScan::from_member_lists(lists);
        if scan.events.len() > max_events {
            let seen = scan.counts().iter().map(|c| c.events).collect();
            return Err(ScanError::TooLarge {
                limit: max_events,
                seen,
            });
        }
        Ok(Some(scan))
    }

    async fn fetch_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        Ok(refs
            .iter()
            .filter_map(|r| {
                self.docs
                    .iter()
                    .find(|d| d.index == r.index && d.id == r.id)
                    .cloned()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::pushdown::{Filter, Scalar};
    use crate::source::{TimeFilter, TimeRange};
    use chrono::{DateTime, Utc};
    use serde_json::json;
    use serde_json::Value;

    fn doc(index: &str, id: &str, source: Value) -> Document {
        Document {
            index: index.into(),
            id: id.into(),
            source,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn range_fallback_filter_order_and_projection() {
        let src = MemorySource::new(vec![
            doc(
                "logs-a",
                "late",
                json!({"@timestamp":"2024-01-01T00:00:10Z","event":{"ingested":"2024-01-01T00:00:02Z"},"x":1,"y":2}),
            ),
            doc(
                "logs-a",
                "fallback",
                json!({"@timestamp":"2024-01-01T00:00:01Z","x":1}),
            ),
            doc(
                "logs-a",
                "outside",
                json!({"@timestamp":"2024-01-01T00:00:03Z","event":{"ingested":"2024-01-01T00:01:00Z"},"x":1}),
            ),
            doc(
                "logs-b",
                "filtered",
                json!({"@timestamp":"2024-01-01T00:00:01Z","x":2}),
            ),
            doc(
                "other",
                "other-index",
                json!({"@timestamp":"2024-01-01T00:00:01Z","x":1}),
            ),
        ]);
        let mut req = FetchRequest::new(
            vec!["logs-*".into(), "nothing-*".into()],
            TimeRange {
                from: t("2024-01-01T00:00:00Z"),
                to: t("2024-01-01T00:00:02Z"),
            },
        );
        req.time_filter = TimeFilter::kibana(Some("event.ingested"), false);
        req.filter = Filter::Term {
            field: "x".into(),
            value: Scalar::Int(1),
            case_insensitive: false,
        };
        req.source_fields = Some(vec!["x".into()]);
        let stream = src.fetch(req.clone()).await.unwrap();
        assert_eq!(stream.warnings().len(), 1);
        let got = stream.collect().await.unwrap();
        let ids: Vec<_> = got.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["fallback", "late"]);
        assert_eq!(got[1].source, json!({"x":1}));
        req.time_filter = TimeFilter::kibana(Some("event.ingested"), true);
        let ids: Vec<_> = src
            .fetch(req)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, vec!["late"]);
    }
}
