//! Events from Elasticsearch / OpenSearch: one point-in-time search per
//! window, paged with `search_after`, streamed in order.
//!
//! For each [`FetchRequest`]:
//! 1. resolve every index pattern (`_resolve/index`); a pattern that matches
//!    nothing is a warning, and with no index at all the stream is empty (a
//!    point in time over nothing fails on OpenSearch);
//! 2. read the mappings of the concrete indices behind them (`GET
//!    <indices>/_mapping`, cached per index: see `source::mappings`), adapt
//!    the pushdown filter to their field types (see [`dsl`]) and add alias
//!    targets to the `_source` projection; the stream hands the mappings on,
//!    so events are evaluated with the same types the search used;
//! 3. open a point in time over the resolved indices, then page with
//!    `search_after`, sorted by timestamp, tiebreaker and `_shard_doc`
//!    (`_index` + `_id` where the server has no `_shard_doc`);
//! 4. hand each page to a bounded channel: the producer waits while the
//!    consumer is busy, so at most a few pages are in memory;
//! 5. close the point in time at the end, on error, and when the consumer
//!    drops the stream.
//!
//! Shard failures and timed-out searches are errors, not partial results:
//! an event silently missing from a window is an alert silently lost.

mod aliased;
mod anomalies;
pub mod dsl;
mod esql;
mod groups;
mod local;
mod new_terms;
mod shared;

/// Tuples per page of the new_terms pushdown.
pub use new_terms::PAGE as NEW_TERMS_PAGE;

pub use anomalies::{anomaly_query, ml_missing};
pub use esql::esql_missing;

use elasticsearch::http::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::mappings::{MappingCache, Mappings};
use super::{
    Anomalies, AnomalyRequest, DocRef, Document, EsqlRows, EventSource, EventStream, FetchRequest,
    GroupCount, Groups, NewTerms, NewTermsAsk, ScanError, ScanOptions, SharedScan, SourceError,
};
use crate::cluster::{snippet, Cluster, ClusterError, ConcreteIndex};
use dsl::FieldTypes;

/// Longest comma-joined target list put in a URL path.
const MAX_TARGETS_LEN: usize = 2_000;

/// Fetches windows of events from a cluster.
#[derive(Clone, Debug)]
pub struct ElasticsearchSource {
    cluster: Cluster,
    /// Mappings per concrete index, shared by every run of this source.
    mappings: MappingCache,
    /// How long the point in time stays open between two pages.
    keep_alive: String,
    /// Pages buffered between the fetch task and the consumer.
    buffered_pages: usize,
    /// Whether threshold counts and new terms are aggregations on the
    /// cluster (else the events are fetched and worked on by the detector).
    aggregate: bool,
    /// What patterns resolved to, and when: shared scans that may use an
    /// older answer (tails, [`ScanOptions::resolved_within`]) take it from
    /// here; every scan's fresh answers are kept.
    resolutions: Resolutions,
}

/// Pattern → (when it was resolved, what to).
type Resolutions = Arc<std::sync::Mutex<HashMap<String, (Instant, crate::cluster::Resolved)>>>;

/// What a window's search will send, for logs, `--explain` and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPlan {
    /// What the point in time opens over: the concrete indices (aliases,
    /// data streams) the patterns resolved to, or the patterns that match
    /// something when that list is too long for a URL.
    pub targets: Vec<String>,
    /// The concrete indices behind the targets, where the events live.
    pub indices: Vec<String>,
    /// The field types the pushdown filter was adapted to.
    pub types: FieldTypes,
    pub warnings: Vec<String>,
    pub query: Value,
    pub sort: Value,
    pub source: Value,
    /// The mapping of every concrete index behind the targets.
    pub mappings: Arc<Mappings>,
}

impl ElasticsearchSource {
    pub fn new(cluster: Cluster) -> ElasticsearchSource {
        ElasticsearchSource {
            cluster,
            mappings: MappingCache::default(),
            keep_alive: "2m".to_string(),
            buffered_pages: 2,
            aggregate: true,
            resolutions: Resolutions::default(),
        }
    }

    /// The source with threshold counts pushed down to the cluster (the
    /// default) or counted from fetched events.
    pub fn with_aggregations(mut self, aggregate: bool) -> ElasticsearchSource {
        self.aggregate = aggregate;
        self
    }

    /// The source with its own mapping cache settings.
    pub fn with_mapping_cache(mut self, cache: MappingCache) -> ElasticsearchSource {
        self.mappings = cache;
        self
    }

    /// The mapping cache (for diagnostics and tests).
    pub fn mapping_cache(&self) -> &MappingCache {
        &self.mappings
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Resolves the patterns and renders the search for `request`.
    pub async fn plan(&self, request: &FetchRequest) -> Result<SearchPlan, SourceError> {
        self.plan_with(request, &mut HashMap::new()).await
    }

    /// [`ElasticsearchSource::plan`] with the patterns already resolved
    /// (by earlier plans of the same scan) taken from `resolved`, and new
    /// ones added to it.
    async fn plan_with(
        &self,
        request: &FetchRequest,
        resolved: &mut HashMap<String, crate::cluster::Resolved>,
    ) -> Result<SearchPlan, SourceError> {
        if request.page_size == 0 || request.page_size > 10_000 {
            return Err(SourceError::InvalidRequest(format!(
                "page size must be 1..=10000, found {}",
                request.page_size
            )));
        }
        let mut targets = Vec::new();
        let mut matching_patterns = Vec::new();
        let mut concrete: Vec<ConcreteIndex> = Vec::new();
        let mut concrete_at: HashMap<String, usize> = HashMap::new();
        let mut warnings = Vec::new();
        for pattern in &request.indices {
            let found = match resolved.get(pattern) {
                Some(found) => found.clone(),
                None => {
                    let found = self.cluster.resolve(std::slice::from_ref(pattern)).await?;
                    resolved.insert(pattern.clone(), found.clone());
                    found
                }
            };
            if found.names.is_empty() {
                warnings.push(format!("index pattern `{pattern}` matches no index"));
            } else {
                matching_patterns.push(pattern.clone());
            }
            for name in found.names {
                if !targets.contains(&name) {
                    targets.push(name);
                }
            }
            for index in found.concrete {
                match concrete_at.get(&index.name) {
                    Some(&i) => concrete[i].live |= index.live,
                    None => {
                        concrete_at.insert(index.name.clone(), concrete.len());
                        concrete.push(index);
                    }
                }
            }
        }
        // A pattern can match hundreds of indices; their names would make
        // the request line longer than servers accept (4 KB by default), so
        // then the patterns that match something are searched instead.
        if targets.iter().map(|t| t.len() + 1).sum::<usize>() > MAX_TARGETS_LEN {
            targets = matching_patterns;
        }
        let indices: Vec<String> = concrete.iter().map(|c| c.name.clone()).collect();
        let mappings = if concrete.is_empty() {
            Mappings::default()
        } else {
            self.mappings.mappings(&self.cluster, &concrete).await?
        };
        let mut fields = request.filter.fields();
        if let Some(tb) = &request.tiebreaker_field {
            fields.insert(tb.clone());
        }
        // The types the events will be evaluated with, so the pushdown
        // keeps exactly the leaves that mean the same on the cluster.
        let types = FieldTypes::from_schemas(mappings.distinct(), &fields);
        let filter = dsl::adapt(&request.filter, &types);
        let mut query = if request.timeless {
            dsl::filter_query(&filter)
        } else {
            dsl::search_query(&request.range, &request.time_filter, &filter)
        };
        if let Some(exact) = &request.exact {
            // translated for the indices' field types, as Kibana translates a
            // query rule's KQL for its data view
            let exact = exact
                .lower(mappings.field_types().as_ref())
                .map_err(SourceError::Query)?;
            dsl::add_exact(&mut query, &exact);
        }
        let tiebreaker_type = request
            .tiebreaker_field
            .as_deref()
            .and_then(|tb| dsl::tiebreaker_type(&types, tb));
        let sort = if request.timeless {
            // Kibana pages the indicator list by `_shard_doc` alone
            // (`indicator_match/threat_mapping/get_threat_list.ts`)
            dsl::index_order(self.cluster.info().supports_shard_doc())
        } else {
            dsl::sort(
                &request.timestamp_field,
                request.tiebreaker_field.as_deref(),
                tiebreaker_type.as_deref(),
                self.cluster.info().supports_shard_doc(),
            )
        };
        let source = match &request.source_fields {
            None => Value::Bool(true),
            // an alias or a multi-field is not in `_source`: its path is
            Some(fields) => json!({ "includes": mappings.source_fields(fields) }),
        };
        Ok(SearchPlan {
            targets,
            indices,
            types,
            warnings,
            query,
            sort,
            source,
            mappings: Arc::new(mappings),
        })
    }
}

impl EventSource for ElasticsearchSource {
    async fn fetch(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        let plan = self.plan(&request).await?;
        if plan.targets.is_empty() {
            return Ok(
                EventStream::from_documents(plan.warnings, Vec::new()).with_mappings(plan.mappings)
            );
        }
        let pit = self
            .cluster
            .open_pit(&plan.targets, &self.keep_alive)
            .await?;
        let warnings = plan.warnings.clone();
        let mappings = plan.mappings.clone();
        let (tx, rx) = mpsc::channel(self.buffered_pages.max(1));
        let cluster = self.cluster.clone();
        let keep_alive = self.keep_alive.clone();
        let page_size = request.page_size;
        tokio::spawn(async move {
            let mut pager = Pager {
                cluster: &cluster,
                plan: &plan,
                keep_alive: &keep_alive,
                page_size,
                pit_ids: vec![pit],
                search_after: None,
            };
            loop {
                match pager.next_page().await {
                    Ok(None) => {
                        // Close first, so a consumer that saw the end knows
                        // the point in time is gone; then the end marker.
                        pager.close().await;
                        let _ = tx.send(Ok(Vec::new())).await;
                        return;
                    }
                    Ok(Some(page)) => {
                        // The consumer dropped the stream: stop early.
                        if tx.send(Ok(page)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        pager.close().await;
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            pager.close().await;
        });
        Ok(EventStream::from_channel(warnings, rx).with_mappings(mappings))
    }

    async fn fetch_shared(
        &self,
        requests: &[FetchRequest],
        options: ScanOptions,
    ) -> Result<Option<SharedScan>, ScanError> {
        self.scan_shared(requests, options).await.map(Some)
    }

    async fn count_groups(
        &self,
        request: &FetchRequest,
        count: &GroupCount,
    ) -> Result<Option<Groups>, SourceError> {
        if !self.aggregate {
            return Ok(None);
        }
        self.groups(request, count).await.map(Some)
    }

    async fn esql(&self, request: &FetchRequest, query: &str) -> Result<EsqlRows, SourceError> {
        self.esql_rows(request, query).await
    }

    async fn search_ids(
        &self,
        indices: &[String],
        ids: &[String],
    ) -> Result<Vec<Document>, SourceError> {
        self.documents_by_id(indices, ids).await
    }

    async fn anomalies(&self, request: &AnomalyRequest) -> Result<Anomalies, SourceError> {
        self.anomaly_records(request).await
    }

    async fn new_terms(
        &self,
        request: &FetchRequest,
        ask: &NewTermsAsk,
    ) -> Result<Option<NewTerms>, SourceError> {
        if !self.aggregate {
            return Ok(None);
        }
        self.find_new_terms(request, ask).await.map(Some)
    }

    async fn fetch_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        let mut out = Vec::with_capacity(refs.len());
        for chunk in refs.chunks(1_000) {
            let docs: Vec<Value> = chunk
                .iter()
                .map(|r| json!({ "_index": r.index, "_id": r.id }))
                .collect();
            let body = self
                .cluster
                .request_json(Method::Post, "/_mget", &[], Some(&json!({ "docs": docs })))
                .await?;
            let items = body.get("docs").and_then(Value::as_array).ok_or_else(|| {
                bad_response(
                    "POST",
                    "/_mget",
                    format!(
                        "expected a `docs` array, found {}",
                        snippet(body.to_string().as_bytes())
                    ),
                )
            })?;
            for item in items {
                if item.get("found").and_then(Value::as_bool) != Some(true) {
                    continue;
                }
                out.push(
                    hit_document(item).map_err(|reason| bad_response("POST", "/_mget", reason))?,
                );
            }
        }
        Ok(out)
    }
}

/// State of one window's paging.
struct Pager<'a> {
    cluster: &'a Cluster,
    plan: &'a SearchPlan,
    keep_alive: &'a str,
    page_size: usize,
    /// Every point-in-time id seen (Elasticsearch may hand out a new one
    /// with each page); all are closed at the end.
    pit_ids: Vec<String>,
    search_after: Option<Value>,
}

impl Pager<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<Document>>, SourceError> {
        let Some(mut hits) = self.next_hits().await? else {
            return Ok(None);
        };
        let mut page = Vec::with_capacity(hits.len());
        for hit in hits.iter_mut() {
            // Moved out, not cloned: a page can be megabytes of sources.
            page.push(take_hit_document(hit).map_err(search_shape)?);
        }
        Ok(Some(page))
    }

    /// The next page's hits as the cluster sent them; `None` after the last.
    async fn next_hits(&mut self) -> Result<Option<Vec<Value>>, SourceError> {
        if self.search_after.as_ref().is_some_and(Value::is_null) {
            return Ok(None);
        }
        let Some(pit) = self.pit_ids.last() else {
            return Ok(None);
        };
        let mut body = json!({
            "size": self.page_size,
            "query": self.plan.query,
            "sort": self.plan.sort,
            "_source": self.plan.source,
            "track_total_hits": false,
            "pit": { "id": pit, "keep_alive": self.keep_alive },
        });
        if let Some(after) = &self.search_after {
            body["search_after"] = after.clone();
        }
        let mut resp = self
            .cluster
            .request_json(Method::Post, "/_search", &[], Some(&body))
            .await?;
        check_search(&resp)?;
        let new_pit = resp
            .get("pit_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(id) = new_pit {
            if !self.pit_ids.contains(&id) {
                self.pit_ids.push(id);
            }
        }
        let shape = search_shape;
        if resp.pointer("/hits/hits").is_none_or(|h| !h.is_array()) {
            return Err(shape(format!(
                "expected a `hits.hits` array, found {}",
                snippet(resp.to_string().as_bytes())
            )));
        }
        let hits = resp
            .pointer_mut("/hits/hits")
            .map(Value::take)
            .and_then(|h| match h {
                Value::Array(hits) => Some(hits),
                _ => None,
            })
            .ok_or_else(|| shape("expected a `hits.hits` array".into()))?;
        if hits.is_empty() {
            return Ok(None);
        }
        let last_sort = hits
            .last()
            .and_then(|h| h.get("sort"))
            .cloned()
            .ok_or_else(|| shape("expected `sort` values on every hit".into()))?;
        // A short page is the last one; mark it so no further request goes out.
        self.search_after = Some(if hits.len() < self.page_size {
            Value::Null
        } else {
            last_sort
        });
        Ok(Some(hits))
    }

    async fn close(&self) {
        for id in &self.pit_ids {
            if let Err(e) = self.cluster.close_pit(id).await {
                // Nothing else to do: the keep-alive frees it soon.
                eprintln!("warning: cannot close point in time: {e}");
            }
        }
    }
}

fn check_search(resp: &Value) -> Result<(), SourceError> {
    if resp.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(SourceError::ShardFailures("the search timed out".into()));
    }
    let failed = resp
        .pointer("/_shards/failed")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if failed > 0 {
        let reason = resp
            .pointer("/_shards/failures/0/reason/reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(SourceError::ShardFailures(format!(
            "{failed} shard(s) failed, first: {reason}"
        )));
    }
    Ok(())
}

/// A search response of the wrong shape.
fn search_shape(reason: String) -> SourceError {
    bad_response("POST", "/_search", reason)
}

/// A response of the wrong shape, as an error naming the request.
fn bad_response(method: &'static str, path: &str, reason: String) -> SourceError {
    SourceError::Cluster(ClusterError::BadResponse {
        method,
        path: path.to_string(),
        reason,
    })
}

fn take_hit_document(hit: &mut Value) -> Result<Document, String> {
    let source = hit.get_mut("_source").map(Value::take);
    let mut doc = hit_document(hit)?;
    doc.source = source.unwrap_or_else(|| json!({}));
    Ok(doc)
}

fn hit_document(hit: &Value) -> Result<Document, String> {
    let index = hit.get("_index").and_then(Value::as_str);
    let id = hit.get("_id").and_then(Value::as_str);
    match (index, id) {
        (Some(index), Some(id)) => Ok(Document {
            index: index.to_string(),
            id: id.to_string(),
            source: hit.get("_source").cloned().unwrap_or_else(|| json!({})),
        }),
        _ => Err(format!(
            "expected `_index` and `_id` on every hit, found {}",
            snippet(hit.to_string().as_bytes())
        )),
    }
}
