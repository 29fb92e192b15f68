//! A new_terms rule pushed down, in bounded memory whatever the number of
//! tuples: Kibana's three phases (`rule_types/new_terms/
//! execute_new_terms_aggregation_approach.ts`, `multi_terms_composite.ts`,
//! `build_new_terms_aggregation.ts`), one page of window tuples at a time.
//!
//! 1. A `composite` of one `terms` source per field (no `missing_bucket`:
//!    a document missing a field has no tuple; several values of a field
//!    give one tuple per combination) over the window's search, paged with
//!    `after`, [`PAGE`] tuples a page.
//! 2. For the page, the same composite over the history's search
//!    (`[history_from, window start]`, the same query, filters and
//!    exceptions: Kibana filters both phases with the rule's `esFilter`),
//!    restricted to the page's values (one `terms` clause per field, so
//!    the query has a handful of clauses whatever the page: Kibana's
//!    `should` of one clause per tuple hits `max_clause_count` and is
//!    retried in halves). The restriction lets through combinations of the
//!    page's values that are not the page's tuples; they are ignored. A
//!    tuple found there is not new. Kibana asks for the minimum time over
//!    `[history_from, to]` and keeps `first_seen > from`: the same set.
//! 3. For the page's new tuples, a composite over the window restricted
//!    the same way with a `top_hits` (size 1, time ascending) per tuple:
//!    the document the alert is built on.
//!
//! Phases 2 and 3 page from the key before the page's first (`after` of
//! the window's page): composite keys have one order whatever the search,
//! so nothing before it is one of the page's tuples.
//!
//! Where the time is `timestamp_override` with `@timestamp` as fallback,
//! Kibana sorts on a runtime field (`kibana.combined_timestamp`);
//! OpenSearch has none, so each tuple takes the earliest of a `top_hits`
//! over its documents with the override (sorted by it) and one over those
//! without it (sorted by the fallback), as the threshold pushdown does.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::super::{DocRef, NewTerm, NewTerms, NewTermsAsk, SourceError};
use super::ElasticsearchSource;
use crate::cluster::encode_path_part;
use crate::source::{FetchRequest, TimeFilter, TimeRange};

/// Tuples per composite page (Kibana: 10,000 in phase 1, batches of 500
/// for several fields).
pub const PAGE: usize = 1_000;

impl ElasticsearchSource {
    pub(super) async fn find_new_terms(
        &self,
        request: &FetchRequest,
        ask: &NewTermsAsk,
    ) -> Result<NewTerms, SourceError> {
        let window = self.plan(request).await?;
        let mut out = NewTerms {
            terms: Vec::new(),
            warnings: window.warnings.clone(),
        };
        if window.targets.is_empty() || ask.fields.is_empty() {
            return Ok(out);
        }
        let mut past = request.clone();
        past.range = TimeRange {
            from: ask.history_from,
            to: request.range.from,
        };
        let history = if ask.history_from <= request.range.from {
            Some(self.plan(&past).await?)
        } else {
            None
        };
        let path = search_path(&window.targets);
        let sources: Vec<Value> = ask
            .fields
            .iter()
            .map(|f| json!({ f.clone(): { "terms": { "field": f } } }))
            .collect();
        let mut after: Option<Value> = None;
        loop {
            let (page, next) = self
                .composite_page(&path, &window.query, &sources, after.as_ref(), None)
                .await?;
            let keys: Vec<Vec<Value>> = page.iter().map(|b| key_values(b, &ask.fields)).collect();
            if !keys.is_empty() {
                let mut fresh: HashSet<String> = keys.iter().map(|k| key_text(k)).collect();
                if let Some(history) = history.as_ref().filter(|h| !h.targets.is_empty()) {
                    let query = restricted(&history.query, &ask.fields, &keys);
                    let hpath = search_path(&history.targets);
                    // Composite keys come in one order whatever the search:
                    // nothing before the page's first key is one of its
                    // tuples, so the history is read from there.
                    let mut hafter: Option<Value> = after.clone();
                    loop {
                        let (seen, hnext) = self
                            .composite_page(&hpath, &query, &sources, hafter.as_ref(), None)
                            .await?;
                        for b in &seen {
                            fresh.remove(&key_text(&key_values(b, &ask.fields)));
                        }
                        match hnext {
                            Some(k) if !fresh.is_empty() => hafter = Some(k),
                            _ => break,
                        }
                    }
                }
                if !fresh.is_empty() {
                    let new_keys: Vec<Vec<Value>> = keys
                        .into_iter()
                        .filter(|k| fresh.contains(&key_text(k)))
                        .collect();
                    self.first_documents(
                        after.clone(),
                        &path,
                        &window.query,
                        &sources,
                        &request.time_filter,
                        ask,
                        new_keys,
                        &mut out,
                    )
                    .await?;
                }
            }
            // Paging ends when the server gives no further key (or the
            // same one again, which would loop forever).
            match next {
                Some(k) if after.as_ref() != Some(&k) => after = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Phase 3: the earliest window document of each of `keys`.
    #[allow(clippy::too_many_arguments)]
    async fn first_documents(
        &self,
        start: Option<Value>,
        path: &str,
        window_query: &Value,
        sources: &[Value],
        tf: &TimeFilter,
        ask: &NewTermsAsk,
        keys: Vec<Vec<Value>>,
        out: &mut NewTerms,
    ) -> Result<(), SourceError> {
        let query = restricted(window_query, &ask.fields, &keys);
        let wanted: HashSet<String> = keys.iter().map(|k| key_text(k)).collect();
        let sub = first_hit_aggs(tf);
        let mut after: Option<Value> = start;
        loop {
            let (page, next) = self
                .composite_page(path, &query, sources, after.as_ref(), Some(&sub))
                .await?;
            for b in &page {
                let values = key_values(b, &ask.fields);
                if !wanted.contains(&key_text(&values)) {
                    continue;
                }
                let first = ["/first", "/with_primary/first", "/with_fallback/first"]
                    .iter()
                    .filter_map(|p| b.pointer(p).and_then(first_hit))
                    .min_by_key(|(ts, _)| *ts);
                if let Some((ts, doc)) = first {
                    out.terms.push(NewTerm { values, doc, ts });
                }
            }
            match next {
                Some(k) if after.as_ref() != Some(&k) => after = Some(k),
                _ => break,
            }
        }
        Ok(())
    }

    /// One page of a composite over `sources`: its buckets and the key to
    /// continue after (`None`: the last page).
    async fn composite_page(
        &self,
        path: &str,
        query: &Value,
        sources: &[Value],
        after: Option<&Value>,
        sub: Option<&Value>,
    ) -> Result<(Vec<Value>, Option<Value>), SourceError> {
        let mut composite = json!({ "sources": sources, "size": PAGE });
        if let Some(a) = after {
            composite["after"] = a.clone();
        }
        let mut agg = json!({ "composite": composite });
        if let Some(sub) = sub {
            agg["aggs"] = sub.clone();
        }
        let body = json!({ "size": 0, "query": query, "aggs": { "new_terms": agg } });
        let mut resp = self.aggregate_search(path, &body).await?;
        let Some(Value::Object(mut agg)) =
            resp.pointer_mut("/aggregations/new_terms").map(Value::take)
        else {
            return Err(super::groups::shape(
                path,
                "the composite aggregation",
                &resp,
            ));
        };
        let buckets = match agg.remove("buckets") {
            Some(Value::Array(b)) => b,
            _ => return Err(super::groups::shape(path, "composite buckets", &resp)),
        };
        let next = agg
            .remove("after_key")
            .filter(|k| !k.is_null() && !buckets.is_empty());
        Ok((buckets, next))
    }
}

fn search_path(targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| encode_path_part(t)).collect();
    format!("/{}/_search", targets.join(","))
}

/// A bucket's key as the values of `fields` in order.
fn key_values(bucket: &Value, fields: &[String]) -> Vec<Value> {
    fields
        .iter()
        .map(|f| bucket["key"].get(f).cloned().unwrap_or(Value::Null))
        .collect()
}

pub(crate) fn key_text(values: &[Value]) -> String {
    Value::Array(values.to_vec()).to_string()
}

/// `query` restricted to documents holding, for every field, one of the
/// values `keys` have for it.
fn restricted(query: &Value, fields: &[String], keys: &[Vec<Value>]) -> Value {
    let mut clauses = vec![query.clone()];
    for (i, field) in fields.iter().enumerate() {
        let mut seen = HashSet::new();
        let values: Vec<Value> = keys
            .iter()
            .filter_map(|k| k.get(i))
            .filter(|v| seen.insert(v.to_string()))
            .cloned()
            .collect();
        clauses.push(json!({ "terms": { field.clone(): values } }));
    }
    json!({ "bool": { "filter": clauses } })
}

/// The earliest document of a bucket: one `top_hits`, or one per time
/// field (see the module doc).
fn first_hit_aggs(tf: &TimeFilter) -> Value {
    let top = |field: &str| {
        json!({ "first": { "top_hits": {
            "size": 1,
            "sort": [{ field: { "order": "asc" } }],
            "_source": false
        } } })
    };
    match &tf.fallback {
        None => top(&tf.primary),
        Some(fallback) => json!({
            "with_primary": {
                "filter": { "exists": { "field": tf.primary } },
                "aggs": top(&tf.primary),
            },
            "with_fallback": {
                "filter": { "bool": { "must_not": [{ "exists": { "field": tf.primary } }] } },
                "aggs": top(fallback),
            },
        }),
    }
}

/// The time and place of a `top_hits`' first hit.
fn first_hit(top: &Value) -> Option<(i64, DocRef)> {
    let hit = top.pointer("/hits/hits/0")?;
    let ts = hit
        .pointer("/sort/0")
        .and_then(crate::source::select::timestamp_millis)?;
    Some((
        ts,
        DocRef {
            index: hit.get("_index")?.as_str()?.to_string(),
            id: hit.get("_id")?.as_str()?.to_string(),
        },
    ))
}
