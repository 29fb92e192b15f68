//! An in-memory [`EventSource`] for tests of a whole rule run without a
//! cluster. It applies the same request a cluster would: index names (exact
//! or `*` patterns), the inclusive time range with the override fallback,
//! the pushdown filter (evaluated with [`Filter::matches`](crate::eql::pushdown::Filter::matches)), ordering by
//! timestamp then tiebreaker then insertion order, and the projection.
//!
//! Mappings ([`MemorySource::with_mappings`]) are handed to the stream like
//! the cluster source does, for the indices the request covers. Documents of
//! a mapped index are not filtered by the pushdown: `Filter::matches` reads
//! `_source` without a mapping (no `constant_keyword`, alias, `null_value`),
//! which only the cluster answers with the mapping.

use chrono::{DateTime, Utc};
use serde_json::Value;

use std::sync::Arc;

use super::{DocRef, Document, EventSource, EventStream, FetchRequest, Mappings, SourceError};
use crate::eql::pushdown::{field_values, wildcard_match};

/// Documents held in memory, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    docs: Vec<Document>,
    mappings: Mappings,
}

impl MemorySource {
    pub fn new(docs: Vec<Document>) -> MemorySource {
        MemorySource {
            docs,
            mappings: Mappings::default(),
        }
    }

    /// The source with a mapping per index name.
    pub fn with_mappings(mut self, mappings: Mappings) -> MemorySource {
        self.mappings = mappings;
        self
    }
}

/// A timestamp as Elasticsearch reads a date: an ISO string or epoch millis.
pub fn timestamp_millis(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc).timestamp_millis())
            .or_else(|| s.parse::<i64>().ok()),
        _ => None,
    }
}

fn first_millis(doc: &Value, field: &str) -> Option<i64> {
    field_values(doc, field)
        .into_iter()
        .find_map(timestamp_millis)
}

fn project(source: &Value, fields: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields {
        let vals = field_values(source, f);
        match vals.len() {
            0 => {}
            1 => {
                out.insert(f.clone(), vals[0].clone());
            }
            _ => {
                out.insert(f.clone(), Value::Array(vals.into_iter().cloned().collect()));
            }
        }
    }
    Value::Object(out)
}

impl EventSource for MemorySource {
    async fn fetch(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        let from = request.range.from.timestamp_millis();
        let to = request.range.to.timestamp_millis();
        let in_range = |ms: Option<i64>| ms.is_some_and(|m| from <= m && m <= to);
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
        let mappings = Mappings::new(
            self.mappings
                .iter()
                .filter(|(index, _)| covered(index))
                .map(|(index, schema)| (index.to_string(), schema.clone()))
                .collect(),
        );
        let source_fields = request
            .source_fields
            .as_ref()
            .map(|f| mappings.source_fields(f));
        let mut hits: Vec<(i64, Option<Value>, usize, Document)> = Vec::new();
        for (pos, d) in self.docs.iter().enumerate() {
            if !request
                .indices
                .iter()
                .any(|p| wildcard_match(p, &d.index, false))
            {
                continue;
            }
            let primary = first_millis(&d.source, &request.time_filter.primary);
            let ok = in_range(primary)
                || (primary.is_none()
                    && field_values(&d.source, &request.time_filter.primary).is_empty()
                    && request
                        .time_filter
                        .fallback
                        .as_deref()
                        .is_some_and(|f| in_range(first_millis(&d.source, f))));
            let mapped = mappings.get(&d.index).is_some();
            if !ok || (!mapped && !request.filter.matches(&d.source)) {
                continue;
            }
            // A document in the range without the ordering field is still
            // returned, as Elasticsearch's sort puts missing values last;
            // what to do with it is the matcher's business.
            let ts = first_millis(&d.source, &request.timestamp_field).unwrap_or(i64::MAX);
            let tb = request
                .tiebreaker_field
                .as_deref()
                .and_then(|f| field_values(&d.source, f).first().map(|v| (*v).clone()));
            let mut doc = d.clone();
            if let Some(fields) = &source_fields {
                doc.source = project(&d.source, fields);
            }
            hits.push((ts, tb, pos, doc));
        }
        // Missing tiebreakers sort last, as in Elasticsearch.
        hits.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| match (&a.1, &b.1) {
                    (Some(x), Some(y)) => cmp_json(x, y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
                .then(a.2.cmp(&b.2))
        });
        Ok(
            EventStream::from_documents(warnings, hits.into_iter().map(|h| h.3).collect())
                .with_mappings(Arc::new(mappings)),
        )
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

fn cmp_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::pushdown::{Filter, Scalar};
    use crate::source::{TimeFilter, TimeRange};
    use serde_json::json;

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
