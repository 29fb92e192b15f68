//! ES|QL on Elasticsearch, as Kibana's ES|QL rule sends it
//! (`rule_types/esql/build_esql_search_request.ts`, `esql_request.ts`):
//! `POST /_query/async?drop_null_columns=true` with the query and a
//! `filter` (the window's time range, the rule's filters, NOT its
//! exceptions — here the same query DSL a query rule's search gets), then
//! `GET /_query/async/<id>` while it runs, and `DELETE /_query/async/<id>`
//! at the end, whatever happened. Kibana sleeps 10 s between polls; here
//! each poll waits on the server (`wait_for_completion_timeout`), so a
//! result comes back as soon as it is ready.

use std::time::{Duration, Instant};

use elasticsearch::http::Method;
use serde_json::{json, Map, Value};

use super::{bad_response, ElasticsearchSource};
use crate::cluster::{encode_path_part, ClusterError, Distribution, ServerInfo, Version};
use crate::rule::NEEDS_ESQL;
use crate::source::{Document, EsqlRows, FetchRequest, SourceError};

/// How long one request waits on the server for the query to finish.
const WAIT: &str = "10s";

/// How long a query may run in all before the run gives up on it (the
/// alerting framework's rule timeout in Kibana is 5 minutes).
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// Why `info`'s cluster cannot run ES|QL, if it cannot.
pub fn esql_missing(info: &ServerInfo) -> Option<String> {
    match info.distribution {
        Distribution::OpenSearch => Some(format!(
            "this rule needs {NEEDS_ESQL}; the cluster is OpenSearch {} (it has no ES|QL)",
            info.version
        )),
        Distribution::Elasticsearch if info.version < Version::new(8, 11) => Some(format!(
            "this rule needs {NEEDS_ESQL}; the cluster is Elasticsearch {}",
            info.version
        )),
        Distribution::Elasticsearch => None,
    }
}

impl ElasticsearchSource {
    pub(super) async fn esql_rows(
        &self,
        request: &FetchRequest,
        query: &str,
    ) -> Result<EsqlRows, SourceError> {
        if let Some(reason) = esql_missing(self.cluster.info()) {
            return Err(SourceError::Unsupported(reason));
        }
        let plan = self.plan(request).await?;
        if plan.targets.is_empty() {
            // ES|QL fails on an index that does not exist; with nothing to
            // read the window has no rows.
            return Ok(EsqlRows {
                rows: Vec::new(),
                warnings: plan.warnings,
            });
        }
        let body = json!({
            "query": query,
            "filter": plan.query,
            "wait_for_completion_timeout": WAIT,
        });
        let first = self
            .cluster
            .request_json(
                Method::Post,
                "/_query/async",
                &[("drop_null_columns", "true")],
                Some(&body),
            )
            .await
            .map_err(query_error)?;
        let result = match running_id(&first)? {
            None => Ok(first),
            Some(id) => {
                let polled = self.poll(&id).await;
                // Kibana deletes the query in a `finally`: a stored result
                // (or a query still running) is not left behind.
                let path = format!("/_query/async/{}", encode_path_part(&id));
                if let Err(e) = self
                    .cluster
                    .request_json(Method::Delete, &path, &[], None)
                    .await
                {
                    tracing::warn!(error = %e, "cannot delete the ES|QL async query");
                }
                polled
            }
        };
        Ok(EsqlRows {
            rows: rows(&result?)?,
            warnings: plan.warnings,
        })
    }

    async fn poll(&self, id: &str) -> Result<Value, SourceError> {
        let path = format!("/_query/async/{}", encode_path_part(id));
        let started = Instant::now();
        loop {
            let body = self
                .cluster
                .request_json(
                    Method::Get,
                    &path,
                    &[
                        ("wait_for_completion_timeout", WAIT),
                        ("drop_null_columns", "true"),
                    ],
                    None,
                )
                .await
                .map_err(query_error)?;
            if running_id(&body)?.is_none() {
                return Ok(body);
            }
            if started.elapsed() > GIVE_UP_AFTER {
                return Err(SourceError::Query(format!(
                    "the ES|QL query was still running after {} s",
                    GIVE_UP_AFTER.as_secs()
                )));
            }
        }
    }

    /// The documents with `ids` in `indices` (Kibana's
    /// `fetch_source_documents.ts`: an `ids` query over the query's indices).
    pub(super) async fn documents_by_id(
        &self,
        indices: &[String],
        ids: &[String],
    ) -> Result<Vec<Document>, SourceError> {
        let mut out = Vec::with_capacity(ids.len());
        let path = format!(
            "/{}/_search",
            indices
                .iter()
                .map(|i| encode_path_part(i))
                .collect::<Vec<_>>()
                .join(",")
        );
        for chunk in ids.chunks(1_000) {
            let body = json!({
                "query": {"bool": {"filter": {"ids": {"values": chunk}}}},
                "_source": true,
                "size": chunk.len(),
            });
            let found = self
                .cluster
                .request_json(
                    Method::Post,
                    &path,
                    &[("ignore_unavailable", "true")],
                    Some(&body),
                )
                .await?;
            let hits = found
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    bad_response("POST", &path, "expected `hits.hits` in the answer".into())
                })?;
            for hit in hits {
                out.push(
                    super::hit_document(hit)
                        .map_err(|reason| bad_response("POST", &path, reason))?,
                );
            }
        }
        Ok(out)
    }
}

/// The id of a query still running, `None` when the answer is the result.
fn running_id(body: &Value) -> Result<Option<String>, SourceError> {
    if body.get("is_running").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    match body.get("id").and_then(Value::as_str) {
        Some(id) => Ok(Some(id.to_string())),
        None => Err(bad_response(
            "POST",
            "/_query/async",
            "the ES|QL query is running but no query id was returned".into(),
        )),
    }
}

/// The rows of a finished query: `columns` (name, type) and `values`
/// (one array per row), nulls left out.
fn rows(body: &Value) -> Result<Vec<Map<String, Value>>, SourceError> {
    let bad = |what: &str| bad_response("GET", "/_query/async", format!("expected {what}"));
    let columns: Vec<&str> = body
        .get("columns")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`columns` in the ES|QL result"))?
        .iter()
        .map(|c| c.get("name").and_then(Value::as_str).unwrap_or_default())
        .collect();
    let values = body
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`values` in the ES|QL result"))?;
    values
        .iter()
        .map(|row| {
            let row = row
                .as_array()
                .ok_or_else(|| bad("each row to be an array"))?;
            Ok(columns
                .iter()
                .zip(row)
                .filter(|(_, v)| !v.is_null())
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect())
        })
        .collect()
}

/// A query Elasticsearch refused (400: parsing or verification) is the
/// rule's error, said in Elasticsearch's words.
fn query_error(e: ClusterError) -> SourceError {
    match e.status() {
        Some(400) => SourceError::Query(format!("Elasticsearch refused the ES|QL query: {e}")),
        _ => SourceError::Cluster(e),
    }
}
