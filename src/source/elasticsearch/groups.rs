//! A threshold rule's count pushed down: the window's search (time range,
//! pushdown filter, the exact clause for the indices' types) with Kibana's
//! aggregation (`rule_types/threshold/build_threshold_aggregation.ts`):
//! a `composite` of one `terms` source per field (no `missing_bucket`:
//! an event without a field is in no group), paged with `after`;
//! `min`/`max` of the time field; a `cardinality`; `bucket_selector`s for
//! `_count >= value` and `cardinality >= value`. With no field, the same
//! metrics over the whole search (`buildThresholdSingleBucketAggregation`)
//! and the hit total as the count.
//!
//! Where the time is `timestamp_override` with `@timestamp` as fallback,
//! Kibana aggregates a runtime field (`kibana.combined_timestamp`);
//! OpenSearch has no runtime fields, so here each bucket takes `min`/`max`
//! of the override over its events that have it, and of the fallback over
//! those that do not (two `filter` sub-aggregations): the same times.
//!
//! Events already counted by an alert of their group are excluded in the
//! query (Kibana's `getThresholdBucketFilters`: `must_not` the group's
//! terms with a time at or before its last alerted event).

use elasticsearch::http::Method;
use serde_json::{json, Map, Value};

use super::super::{Group, GroupCount, Groups, SourceError};
use super::{bad_response, check_search, dsl, ElasticsearchSource};
use crate::cluster::encode_path_part;
use crate::source::{FetchRequest, TimeFilter};

/// Buckets per composite page (Kibana asks for 10,000).
const PAGE: usize = 1_000;

impl ElasticsearchSource {
    pub(super) async fn groups(
        &self,
        request: &FetchRequest,
        count: &GroupCount,
    ) -> Result<Groups, SourceError> {
        let plan = self.plan(request).await?;
        let mut out = Groups {
            groups: Vec::new(),
            warnings: plan.warnings.clone(),
        };
        if plan.targets.is_empty() {
            return Ok(out);
        }
        let targets: Vec<String> = plan.targets.iter().map(|t| encode_path_part(t)).collect();
        let path = format!("/{}/_search", targets.join(","));
        let query = with_exclusions(plan.query.clone(), &request.time_filter, count);
        let metrics = metrics(&request.time_filter, count);
        if count.fields.is_empty() {
            let body = json!({
                "size": 0,
                "track_total_hits": true,
                "query": query,
                "aggs": metrics,
            });
            let resp = self.search(&path, &body).await?;
            let total = resp
                .pointer("/hits/total/value")
                .or_else(|| resp.pointer("/hits/total"))
                .and_then(Value::as_u64)
                .ok_or_else(|| shape(&path, "a hit total", &resp))?;
            let aggs = resp.get("aggregations").cloned().unwrap_or(Value::Null);
            let group = group_of(Vec::new(), total, &aggs, &request.time_filter, count);
            if reaches(&group, count) {
                out.groups.push(group);
            }
            return Ok(out);
        }
        let mut sub = metrics;
        sub.insert("count_check".into(), selector(count));
        let sources: Vec<Value> = count
            .fields
            .iter()
            .map(|f| json!({ f.clone(): { "terms": { "field": f } } }))
            .collect();
        let mut after: Option<Value> = None;
        loop {
            let mut composite = json!({ "sources": sources, "size": PAGE });
            if let Some(a) = &after {
                composite["after"] = a.clone();
            }
            let body = json!({
                "size": 0,
                "query": query,
                "aggs": { "thresholdTerms": { "composite": composite, "aggs": sub } },
            });
            let resp = self.search(&path, &body).await?;
            let agg = resp
                .pointer("/aggregations/thresholdTerms")
                .ok_or_else(|| shape(&path, "the composite aggregation", &resp))?;
            let buckets = agg
                .get("buckets")
                .and_then(Value::as_array)
                .ok_or_else(|| shape(&path, "composite buckets", &resp))?;
            for b in buckets {
                let terms = count
                    .fields
                    .iter()
                    .map(|f| (f.clone(), b["key"][f].clone()))
                    .collect();
                let n = b.get("doc_count").and_then(Value::as_u64).unwrap_or(0);
                let group = group_of(terms, n, b, &request.time_filter, count);
                // The selectors already keep only these; checked again so a
                // server that ignores them cannot make alerts below the value.
                if reaches(&group, count) {
                    out.groups.push(group);
                }
            }
            // Paging ends when the server gives no further key (or the
            // same one again, which would loop forever).
            match agg.get("after_key") {
                Some(k) if !k.is_null() && after.as_ref() != Some(k) => after = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// A search whose shard failures are errors (aggregations of the
    /// threshold and new_terms pushdowns).
    pub(super) async fn aggregate_search(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Value, SourceError> {
        self.search(path, body).await
    }

    async fn search(&self, path: &str, body: &Value) -> Result<Value, SourceError> {
        let resp = self
            .cluster
            .request_json(
                Method::Post,
                path,
                &[("ignore_unavailable", "true")],
                Some(body),
            )
            .await?;
        check_search(&resp)?;
        Ok(resp)
    }
}

/// The window's query without the events already alerted per group.
fn with_exclusions(query: Value, tf: &TimeFilter, count: &GroupCount) -> Value {
    if count.exclude.is_empty() {
        return query;
    }
    let excluded: Vec<Value> = count
        .exclude
        .iter()
        .map(|e| {
            let until =
                dsl::iso(&chrono::DateTime::from_timestamp_millis(e.last).unwrap_or_default());
            let mut clauses = vec![at_or_before(tf, &until)];
            for (field, value) in &e.terms {
                clauses.push(json!({ "term": { field.clone(): value } }));
            }
            json!({ "bool": { "filter": clauses } })
        })
        .collect();
    json!({ "bool": { "filter": [query], "must_not": excluded } })
}

/// An event's time (the override, else the fallback) at or before `until`.
fn at_or_before(tf: &TimeFilter, until: &str) -> Value {
    let primary = json!({ "range": { tf.primary.clone(): { "lte": until } } });
    match &tf.fallback {
        None => primary,
        Some(fallback) => json!({ "bool": { "should": [
            primary,
            { "bool": {
                "must_not": [{ "exists": { "field": tf.primary } }],
                "filter": [{ "range": { fallback.clone(): { "lte": until } } }]
            } }
        ], "minimum_should_match": 1 } }),
    }
}

/// `min`/`max` of the time (per field, see the module doc) and the
/// cardinality.
fn metrics(tf: &TimeFilter, count: &GroupCount) -> Map<String, Value> {
    let mut m = Map::new();
    let min_max = |field: &str| {
        json!({
            "max_timestamp": { "max": { "field": field } },
            "min_timestamp": { "min": { "field": field } },
        })
    };
    match &tf.fallback {
        None => {
            if let Value::Object(o) = min_max(&tf.primary) {
                m.extend(o);
            }
        }
        Some(fallback) => {
            m.insert(
                "with_primary".into(),
                json!({ "filter": { "exists": { "field": tf.primary } }, "aggs": min_max(&tf.primary) }),
            );
            m.insert(
                "with_fallback".into(),
                json!({
                    "filter": { "bool": { "must_not": [{ "exists": { "field": tf.primary } }] } },
                    "aggs": min_max(fallback),
                }),
            );
        }
    }
    if let Some((field, _)) = &count.cardinality {
        m.insert(
            "cardinality_count".into(),
            json!({ "cardinality": { "field": field } }),
        );
    }
    m
}

/// The bucket selector: count, and cardinality when asked.
fn selector(count: &GroupCount) -> Value {
    match &count.cardinality {
        None => json!({ "bucket_selector": {
            "buckets_path": { "docCount": "_count" },
            "script": format!("params.docCount >= {}", count.min_count),
        } }),
        Some((_, value)) => json!({ "bucket_selector": {
            "buckets_path": { "docCount": "_count", "cardinalityCount": "cardinality_count" },
            "script": format!(
                "params.docCount >= {} && params.cardinalityCount >= {value}",
                count.min_count
            ),
        } }),
    }
}

fn group_of(
    terms: Vec<(String, Value)>,
    count: u64,
    aggs: &Value,
    tf: &TimeFilter,
    asked: &GroupCount,
) -> Group {
    let value = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_f64).map(|f| f as i64);
    let (min_ts, max_ts) = match &tf.fallback {
        None => (
            value(aggs, "/min_timestamp/value"),
            value(aggs, "/max_timestamp/value"),
        ),
        Some(_) => {
            let pick = |name: &str, f: fn(i64, i64) -> i64| {
                let a = value(aggs, &format!("/with_primary/{name}/value"));
                let b = value(aggs, &format!("/with_fallback/{name}/value"));
                match (a, b) {
                    (Some(a), Some(b)) => Some(f(a, b)),
                    (a, b) => a.or(b),
                }
            };
            (
                pick("min_timestamp", i64::min),
                pick("max_timestamp", i64::max),
            )
        }
    };
    Group {
        terms,
        count,
        min_ts,
        max_ts,
        distinct: asked
            .cardinality
            .as_ref()
            .map(|_| value(aggs, "/cardinality_count/value").unwrap_or(0) as u64),
    }
}

fn reaches(group: &Group, count: &GroupCount) -> bool {
    group.count > 0
        && group.count >= count.min_count
        && match (&count.cardinality, group.distinct) {
            (Some((_, need)), Some(have)) => have >= *need,
            (Some(_), None) => false,
            (None, _) => true,
        }
}

pub(super) fn shape(path: &str, what: &str, resp: &Value) -> SourceError {
    bad_response(
        "POST",
        path,
        format!(
            "expected {what}, found {}",
            crate::cluster::snippet(resp.to_string().as_bytes())
        ),
    )
}
