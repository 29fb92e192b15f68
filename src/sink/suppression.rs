//! The cluster side of alert suppression: finding a group's open alert and
//! updating it in place, as Kibana's `alertWithSuppression` does
//! (`rule_registry/server/utils/create_persistence_rule_type_wrapper.ts`):
//! a search of the alerts alias for alerts of the groups' instance ids
//! started since the suppression window's start and not closed, newest
//! first (Kibana collapses on the instance id; here the newest per id is
//! kept client-side, which OpenSearch and Elasticsearch both answer), and
//! `_bulk` `update` with a partial `doc` on the alert's own index.

use chrono::{DateTime, SecondsFormat, Utc};
use elasticsearch::http::Method;
use serde_json::{json, Value};

use super::elasticsearch::{search_hits, ElasticsearchSink};
use super::{AlertUpdate, ItemFailure, OpenAlert, SinkError, WriteReport};
use crate::cluster::{encode_path_part, snippet, ClusterError};

/// Most alerts read back per instance id (the newest is kept).
const PER_INSTANCE: usize = 5;

impl ElasticsearchSink {
    pub(super) async fn search_open_alerts(
        &self,
        index: &str,
        instance_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<OpenAlert>, SinkError> {
        let path = format!("/{}/_search", encode_path_part(index));
        let mut newest: std::collections::HashMap<String, OpenAlert> = Default::default();
        for chunk in instance_ids.chunks(1_000) {
            let body = json!({
                "size": (chunk.len() * PER_INSTANCE).min(10_000),
                "query": {"bool": {"filter": [
                    {"range": {"kibana.alert.start": {
                        "gte": since.to_rfc3339_opts(SecondsFormat::Millis, true)
                    }}},
                    {"terms": {"kibana.alert.instance.id": chunk}},
                    {"bool": {"must_not": {"term": {"kibana.alert.workflow_status": "closed"}}}},
                ]}},
                "sort": [{"kibana.alert.start": {"order": "desc"}}],
                "_source": ["kibana.alert.instance.id", "kibana.alert.suppression.end",
                            "kibana.alert.suppression.docs_count"],
            });
            let response = match self
                .cluster()
                .request_json(
                    Method::Post,
                    &path,
                    &[("ignore_unavailable", "true"), ("allow_no_indices", "true")],
                    Some(&body),
                )
                .await
            {
                Ok(r) => r,
                Err(ClusterError::Status { status: 404, .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            for hit in search_hits(&response, &path)? {
                let src = &hit["_source"];
                let field = |name: &str| {
                    src.get(name)
                        .or_else(|| crate::alert::doc::get_path(src, name))
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                let (Some(id), Some(idx), Some(instance)) = (
                    hit["_id"].as_str(),
                    hit["_index"].as_str(),
                    field("kibana.alert.instance.id").as_str().map(String::from),
                ) else {
                    continue;
                };
                let end = field("kibana.alert.suppression.end")
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map_or(since, |t| t.with_timezone(&Utc));
                // Sorted newest first: the first hit of an id is its alert.
                newest.entry(instance.clone()).or_insert(OpenAlert {
                    id: id.to_string(),
                    index: idx.to_string(),
                    instance_id: instance,
                    end,
                    docs_count: field("kibana.alert.suppression.docs_count")
                        .as_u64()
                        .unwrap_or(0),
                });
            }
        }
        Ok(newest.into_values().collect())
    }

    pub(super) async fn bulk_update(
        &self,
        updates: &[AlertUpdate],
    ) -> Result<WriteReport, SinkError> {
        let mut report = WriteReport::default();
        if updates.is_empty() {
            return Ok(report);
        }
        let mut body = Vec::new();
        for u in updates {
            let action = json!({"update": {"_id": u.id, "_index": u.index}});
            body.extend(serde_json::to_vec(&action).unwrap_or_default());
            body.push(b'\n');
            body.extend(serde_json::to_vec(&json!({"doc": u.doc})).unwrap_or_default());
            body.push(b'\n');
        }
        // Kibana writes suppressed alerts with `refresh: wait_for`: the
        // next run's search must see the new boundaries.
        let raw = self
            .cluster()
            .send_raw(
                Method::Post,
                "/_bulk",
                &[("refresh", "wait_for")],
                Some(body),
                Some("application/x-ndjson"),
            )
            .await?;
        let parsed = crate::cluster::check_json(Method::Post, "/_bulk", &raw)?;
        let items = parsed
            .get("items")
            .and_then(Value::as_array)
            .filter(|items| items.len() == updates.len())
            .ok_or_else(|| {
                SinkError::Cluster(ClusterError::BadResponse {
                    method: "POST",
                    path: "/_bulk".into(),
                    reason: format!(
                        "expected {} update items, found {}",
                        updates.len(),
                        snippet(&raw.body)
                    ),
                })
            })?;
        for (u, item) in updates.iter().zip(items) {
            let op = &item["update"];
            match op["status"].as_u64() {
                Some(s) if (200..300).contains(&s) => report.created.push(u.id.clone()),
                status => report.failed.push(ItemFailure {
                    index: u.index.clone(),
                    id: u.id.clone(),
                    status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
                    reason: op
                        .get("error")
                        .map_or_else(|| "no status".to_string(), Value::to_string),
                }),
            }
        }
        Ok(report)
    }
}
