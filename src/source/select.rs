//! What a [`FetchRequest`] selects, evaluated locally on one document: the
//! semantics every source without a cluster shares (the memory source of
//! tests, NDJSON files for `hunt` and `test`), so that they select, order
//! and project exactly alike.
//!
//! A document is selected when its time is in the inclusive range (the
//! primary time field, or the fallback when the document lacks the primary
//! field, Kibana style), it passes the pushdown filter (not evaluated for
//! documents of a mapped index: [`Filter::matches`] reads `_source` without
//! the mapping, which only the cluster answers with), and it matches the
//! exact clause lowered for the field types of the mappings (unmapped
//! fields typed from their values, as dynamic mapping would). Selected
//! documents sort by the ordering field, then the tiebreaker (missing ones
//! last, as Elasticsearch sorts), then their position in the source.
//!
//! Which documents a request covers (index patterns) is the source's
//! business, not this module's.
//!
//! [`Filter::matches`]: crate::eql::pushdown::Filter::matches

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{FetchRequest, Mappings, SourceError};
use crate::eql::pushdown::{field_values, field_values_with_nulls};
use crate::filter::eval::{self, EvalOptions, Matcher, Unmapped};

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

/// What the request says of one document.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Selected, with the key it sorts by.
    Selected(SortKey),
    /// Not selected: the document has no readable time in the range's
    /// fields, so no time range ever contains it.
    NoTime,
    /// Not selected: outside the range, or filtered out.
    Rejected,
}

/// Where a selected document sorts: by time (missing: last), then by
/// tiebreaker (missing: last); the caller breaks the remaining ties by
/// position.
#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    ts: i64,
    tiebreaker: Option<Value>,
}

impl SortKey {
    /// The key of `source` ordered by `timestamp_field`, then
    /// `tiebreaker_field` (missing: last).
    pub fn of(source: &Value, timestamp_field: &str, tiebreaker_field: Option<&str>) -> SortKey {
        SortKey {
            ts: first_millis(source, timestamp_field).unwrap_or(i64::MAX),
            tiebreaker: tiebreaker_field
                .and_then(|f| field_values(source, f).first().map(|v| (*v).clone())),
        }
    }

    /// The order of two documents, `pa` / `pb` being their positions in the
    /// source.
    pub fn cmp_at(&self, pa: usize, other: &SortKey, pb: usize) -> Ordering {
        self.ts
            .cmp(&other.ts)
            .then_with(|| match (&self.tiebreaker, &other.tiebreaker) {
                (Some(x), Some(y)) => cmp_json(x, y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then(pa.cmp(&pb))
    }
}

/// One request, ready to judge documents.
pub struct Selector<'r> {
    request: &'r FetchRequest,
    mappings: &'r Mappings,
    from: i64,
    to: i64,
    exact: Option<Matcher>,
    /// Date math in the exact clause (`now-1h`) is relative to this.
    now: DateTime<Utc>,
    source_fields: Option<Vec<String>>,
}

impl<'r> Selector<'r> {
    /// Compiles `request` for documents of the indices of `mappings` (an
    /// index without one is typed from its JSON). `now` is what date math
    /// in the exact clause is relative to.
    pub fn new(
        request: &'r FetchRequest,
        mappings: &'r Mappings,
        now: DateTime<Utc>,
    ) -> Result<Selector<'r>, SourceError> {
        // What events must match exactly, evaluated here as the cluster
        // would select them (unmapped fields typed from their values).
        let exact = match &request.exact {
            None => None,
            Some(exact) => {
                let types = mappings.field_types();
                let filter = exact.lower(types.as_ref()).map_err(SourceError::Query)?;
                let matcher = eval::compile(
                    &filter,
                    &types.unwrap_or_default(),
                    &EvalOptions {
                        unmapped: Unmapped::Dynamic,
                    },
                )
                .map_err(|e| SourceError::Query(e.to_string()))?;
                Some(matcher)
            }
        };
        let source_fields = request
            .source_fields
            .as_ref()
            .map(|f| mappings.source_fields(f));
        Ok(Selector {
            request,
            mappings,
            from: request.range.from.timestamp_millis(),
            to: request.range.to.timestamp_millis(),
            exact,
            now,
            source_fields,
        })
    }

    /// Whether the request selects `source`, a document of `index`.
    pub fn judge(&self, index: &str, source: &Value) -> Verdict {
        let request = self.request;
        let in_range = |ms: Option<i64>| ms.is_some_and(|m| self.from <= m && m <= self.to);
        let primary = first_millis(source, &request.time_filter.primary);
        let lacks_primary =
            primary.is_none() && field_values(source, &request.time_filter.primary).is_empty();
        let fallback = request
            .time_filter
            .fallback
            .as_deref()
            .filter(|_| lacks_primary)
            .map(|f| first_millis(source, f));
        let ok = request.timeless || in_range(primary) || fallback.is_some_and(in_range);
        if !ok {
            let no_time = primary.is_none() && fallback.flatten().is_none();
            return if no_time {
                Verdict::NoTime
            } else {
                Verdict::Rejected
            };
        }
        let mapped = self.mappings.get(index).is_some();
        if !mapped && !request.filter.matches(source) {
            return Verdict::Rejected;
        }
        if self
            .exact
            .as_ref()
            .is_some_and(|m| !m.matches(source, self.now))
        {
            return Verdict::Rejected;
        }
        // A document in the range without the ordering field is still
        // returned, as Elasticsearch's sort puts missing values last; what
        // to do with it is the matcher's business.
        Verdict::Selected(SortKey::of(
            source,
            &request.timestamp_field,
            request.tiebreaker_field.as_deref(),
        ))
    }

    /// The `_source` a selected document is returned with: the projection
    /// the request asks for, or `None` for the whole document.
    pub fn project(&self, source: &Value) -> Option<Value> {
        let fields = self.source_fields.as_ref()?;
        let mut out = serde_json::Map::new();
        for f in fields {
            // explicit nulls too: a mapping's `null_value` gives them a value
            let vals = field_values_with_nulls(source, f);
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
        Some(Value::Object(out))
    }
}

fn cmp_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{TimeFilter, TimeRange};
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn no_time_is_told_apart_from_out_of_range() {
        let mut req = FetchRequest::new(
            vec!["*".into()],
            TimeRange {
                from: t("2024-01-01T00:00:00Z"),
                to: t("2024-01-01T00:01:00Z"),
            },
        );
        req.time_filter = TimeFilter::kibana(Some("event.ingested"), false);
        let m = Mappings::default();
        let s = Selector::new(&req, &m, req.range.to).unwrap();
        let judge = |v: Value| s.judge("i", &v);
        assert!(matches!(
            judge(json!({"@timestamp": "2024-01-01T00:00:30Z"})),
            Verdict::Selected(_)
        ));
        assert_eq!(
            judge(json!({"@timestamp": "2024-01-01T00:02:00Z"})),
            Verdict::Rejected
        );
        assert_eq!(judge(json!({"x": 1})), Verdict::NoTime);
        assert_eq!(judge(json!({"@timestamp": "yesterday"})), Verdict::NoTime);
        // the primary field is there but unreadable: no fallback, no time
        assert_eq!(
            judge(json!({"event": {"ingested": "soon"}, "@timestamp": "2024-01-01T00:00:30Z"})),
            Verdict::NoTime
        );
        // readable but outside: rejected, not timeless
        assert_eq!(
            judge(json!({"event": {"ingested": "2023-01-01T00:00:00Z"}})),
            Verdict::Rejected
        );
    }
}
