//! State in the cluster: one document per rule in the state index (id =
//! rule id) and, once its near-real-time tails alert, one for their budget
//! (id `tail-budget:<rule id>`), one document per run in the executions
//! index and one per
//! refused alert in the dead-letters index (id = alert id), all written
//! with `refresh=wait_for` so a checkpoint is visible (and durable) before
//! the run goes on. Index names and templates are `sink::elasticsearch`'s
//! [`IndexNames`] and `install_templates`.
//!
//! The notification outbox is the index `<state index>-outbox`: one
//! document per message (id = entry id, added with `create` so an id
//! already there is kept) and one per throttle mark (id `throttle:<key>`).
//! Its message bodies are stored as JSON text, so no mapping of alert
//! fields grows in it.

use std::sync::Arc;

use elasticsearch::http::Method;
use serde_json::Value;

use super::outbox::sort_entries;
use super::{
    execution_document, Checkpoint, CheckpointFence, DeadLetter, OutboxEntry, OutboxStatus,
    StateError, StateStore, TailSpend, ThrottleMark,
};
use crate::cluster::{encode_path_part, Cluster, ClusterError};
use crate::runner::ExecutionRecord;
use crate::sink::elasticsearch::IndexNames;

#[derive(Clone, Debug)]
pub struct ClusterStateStore {
    cluster: Cluster,
    /// Set when several instances share the state: checkpoints are then
    /// written under the rule's lease (see `lease`).
    fence: Option<Arc<dyn CheckpointFence>>,
    /// Stamped on execution records as `instance_id` (several instances).
    instance_id: Option<String>,
    /// The state index (checkpoints).
    state: String,
    /// The executions index.
    executions: String,
    /// The dead-letters index.
    dead_letters: String,
    /// The notification outbox index.
    outbox: String,
}

impl ClusterStateStore {
    /// Uses `names.state`, `names.executions` and `names.dead_letters`.
    pub fn new(cluster: Cluster, names: &IndexNames) -> ClusterStateStore {
        ClusterStateStore {
            cluster,
            fence: None,
            instance_id: None,
            state: names.state.clone(),
            executions: names.executions.clone(),
            dead_letters: names.dead_letters.clone(),
            outbox: names.outbox(),
        }
    }

    /// The store whose checkpoints `fence` writes (under a lease).
    pub fn with_fence(mut self, fence: Arc<dyn CheckpointFence>) -> ClusterStateStore {
        self.fence = Some(fence);
        self
    }

    /// The store that stamps `instance_id` on the execution records it
    /// writes, so a run can be traced to the instance that made it.
    pub fn with_instance_id(mut self, id: &str) -> ClusterStateStore {
        self.instance_id = Some(id.to_string());
        self
    }

    /// The same store without its fence: what a fence itself writes with.
    pub fn unfenced(&self) -> ClusterStateStore {
        ClusterStateStore {
            fence: None,
            ..self.clone()
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The state index (checkpoints and leases).
    pub fn state_index(&self) -> &str {
        &self.state
    }

    /// The executions index.
    pub fn executions_index(&self) -> &str {
        &self.executions
    }

    /// `_mget` of these ids in the outbox index: the `_source` of each
    /// document found (a missing index finds none).
    async fn outbox_sources(&self, ids: &[String]) -> Result<Vec<Value>, StateError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/{}/_mget", encode_path_part(&self.outbox));
        let body = serde_json::json!({ "ids": ids });
        let Some(docs) = self.post_for_array(&path, &[], &body, "/docs").await? else {
            return Ok(Vec::new());
        };
        Ok(docs
            .iter()
            .filter(|d| d.get("found").and_then(Value::as_bool) == Some(true))
            .filter_map(|d| d.get("_source").cloned())
            .collect())
    }

    /// POSTs `body` to `path` and takes the array at `pointer` (`/docs`,
    /// `/hits/hits`) out of the answer; `None` when the index does not
    /// exist (404), an error naming what was expected otherwise.
    pub(super) async fn post_for_array(
        &self,
        path: &str,
        params: &[(&str, &str)],
        body: &Value,
        pointer: &str,
    ) -> Result<Option<Vec<Value>>, StateError> {
        let mut response = match self
            .cluster
            .request_json(Method::Post, path, params, Some(body))
            .await
        {
            Ok(r) => r,
            Err(ClusterError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if let Some(Value::Array(items)) = response.pointer_mut(pointer) {
            return Ok(Some(std::mem::take(items)));
        }
        Err(bad_response(
            "POST",
            path.to_string(),
            format!(
                "expected `{}`, found {}",
                pointer.trim_start_matches('/').replace('/', "."),
                crate::cluster::snippet(response.to_string().as_bytes())
            ),
        ))
    }

    fn outbox_lines(&self, docs: &[(String, Value)], op: &str) -> Vec<u8> {
        let mut lines = Vec::new();
        for (id, doc) in docs {
            let action = serde_json::json!({ op: {"_index": self.outbox, "_id": id} });
            lines.extend(serde_json::to_vec(&action).unwrap_or_default());
            lines.push(b'\n');
            lines.extend(serde_json::to_vec(doc).unwrap_or_default());
            lines.push(b'\n');
        }
        lines
    }

    /// `_bulk` of one action per id (an `index` with a document, or a
    /// `delete`), refreshed before it returns; every item must succeed
    /// (a delete of an unknown id, 404, counts as done).
    async fn bulk(&self, lines: Vec<u8>, what: &str) -> Result<(), StateError> {
        self.bulk_with(lines, what, "wait_for").await
    }

    /// [`Self::bulk`] with the `refresh` parameter given: `"false"` is
    /// durable on return (the translog) without waiting for a refresh.
    async fn bulk_with(&self, lines: Vec<u8>, what: &str, refresh: &str) -> Result<(), StateError> {
        let raw = self
            .cluster
            .send_raw(
                Method::Post,
                "/_bulk",
                &[("refresh", refresh)],
                Some(lines),
                Some("application/x-ndjson"),
            )
            .await?;
        let body = crate::cluster::check_json(Method::Post, "/_bulk", &raw)?;
        let Some(items) = body.get("items").and_then(Value::as_array) else {
            return Err(bad_response(
                "POST",
                "/_bulk".into(),
                format!(
                    "expected `items` ({what}), found {}",
                    crate::cluster::snippet(body.to_string().as_bytes())
                ),
            ));
        };
        for item in items {
            let op = item.as_object().and_then(|m| m.values().next());
            let status = op.and_then(|op| op.get("status")).and_then(Value::as_u64);
            match status {
                Some(200..=299) | Some(404) => {}
                _ => {
                    return Err(bad_response(
                        "POST",
                        "/_bulk".into(),
                        format!(
                            "{what} refused: {}",
                            crate::cluster::snippet(item.to_string().as_bytes())
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    async fn index_outbox_entries(
        &self,
        entries: &[OutboxEntry],
        refresh: &str,
    ) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let docs: Vec<(String, Value)> = entries
            .iter()
            .map(|e| (e.id.clone(), serde_json::to_value(e).unwrap_or(Value::Null)))
            .collect();
        let lines = self.outbox_lines(&docs, "index");
        self.bulk_with(lines, "updating outbox entries", refresh)
            .await
    }

    pub(super) fn doc_path(&self, rule_id: &str) -> String {
        format!(
            "/{}/_doc/{}",
            encode_path_part(&self.state),
            encode_path_part(rule_id)
        )
    }
}

impl StateStore for ClusterStateStore {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        // GET by id is real time: no refresh needed to see the last write.
        let body = match self
            .cluster
            .request_json(Method::Get, &self.doc_path(rule_id), &[], None)
            .await
        {
            Ok(body) => body,
            // No such document, or no state index yet.
            Err(ClusterError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Only `found: false` means no checkpoint. Any other answer (a
        // proxy's empty 200, another shape) read as "none" would restart
        // the rule as new and silently skip the time since its checkpoint.
        match body.get("found").and_then(Value::as_bool) {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => {
                return Err(bad_response(
                    "GET",
                    self.doc_path(rule_id),
                    format!(
                        "expected a document with `found`, found {}",
                        crate::cluster::snippet(body.to_string().as_bytes())
                    ),
                ))
            }
        }
        let source = body.get("_source").cloned().unwrap_or(Value::Null);
        // A document holding only a lease: taken before the rule's first
        // acknowledged window.
        if source.get("checkpoint").is_none() && source.get("lease").is_some() {
            return Ok(None);
        }
        serde_json::from_value(source.clone())
            .map(Some)
            .map_err(|e| StateError::BadDocument {
                rule_id: rule_id.to_string(),
                found: format!(
                    "{} ({e})",
                    crate::cluster::snippet(source.to_string().as_bytes())
                ),
            })
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        if let Some(fence) = &self.fence {
            return fence.save(self, checkpoint).await;
        }
        let body = serde_json::to_value(checkpoint).unwrap_or(Value::Null);
        let path = self.doc_path(&checkpoint.rule_id);
        let response = self
            .cluster
            .request_json(Method::Put, &path, &[("refresh", "wait_for")], Some(&body))
            .await?;
        // The checkpoint is what lets the next run skip this window: only a
        // real index answer says it was written.
        written(response, "PUT", path)
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), StateError> {
        let path = format!("/{}/_doc", encode_path_part(&self.executions));
        let mut doc = execution_document(record);
        if let Some(id) = &self.instance_id {
            doc["instance_id"] = Value::from(id.as_str());
        }
        let response = self
            .cluster
            .request_json(Method::Post, &path, &[("refresh", "wait_for")], Some(&doc))
            .await?;
        written(response, "POST", path)
    }

    async fn save_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for l in letters {
            let action =
                serde_json::json!({"index": {"_index": self.dead_letters, "_id": l.alert_id}});
            lines.extend(serde_json::to_vec(&action).unwrap_or_default());
            lines.push(b'\n');
            lines.extend(serde_json::to_vec(l).unwrap_or_default());
            lines.push(b'\n');
        }
        self.bulk(lines, "storing dead letters").await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        let path = format!("/{}/_search", encode_path_part(&self.dead_letters));
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = serde_json::json!({
                "size": DEAD_LETTER_PAGE,
                "sort": [{"refused_at": "asc"}, {"alert_id": "asc"}],
                "query": {"match_all": {}},
            });
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            // No dead-letters index yet: none.
            let Some(hits) = self
                .post_for_array(&path, SEARCH_MISSING_OK, &body, "/hits/hits")
                .await?
            else {
                return Ok(out);
            };
            for hit in &hits {
                let source = hit.get("_source").cloned().unwrap_or(Value::Null);
                let letter: DeadLetter = serde_json::from_value(source.clone()).map_err(|e| {
                    bad_response(
                        "POST",
                        path.clone(),
                        format!(
                            "expected a dead letter, found {} ({e})",
                            crate::cluster::snippet(source.to_string().as_bytes())
                        ),
                    )
                })?;
                out.push(letter);
            }
            if hits.len() < DEAD_LETTER_PAGE {
                return Ok(out);
            }
            after = hits.last().and_then(|h| h.get("sort")).cloned();
            if after.is_none() {
                return Ok(out);
            }
        }
    }

    async fn remove_dead_letters(&self, alert_ids: &[String]) -> Result<(), StateError> {
        if alert_ids.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for id in alert_ids {
            let action = serde_json::json!({"delete": {"_index": self.dead_letters, "_id": id}});
            lines.extend(serde_json::to_vec(&action).unwrap_or_default());
            lines.push(b'\n');
        }
        self.bulk(lines, "removing dead letters").await
    }

    async fn outbox_add(&self, entries: &[OutboxEntry]) -> Result<Vec<String>, StateError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<(String, Value)> = entries
            .iter()
            .map(|e| (e.id.clone(), serde_json::to_value(e).unwrap_or(Value::Null)))
            .collect();
        let lines = self.outbox_lines(&docs, "create");
        let raw = self
            .cluster
            .send_raw(
                Method::Post,
                "/_bulk",
                &[("refresh", "wait_for")],
                Some(lines),
                Some("application/x-ndjson"),
            )
            .await?;
        let body = crate::cluster::check_json(Method::Post, "/_bulk", &raw)?;
        let items = body.get("items").and_then(Value::as_array);
        let Some(items) = items.filter(|i| i.len() == entries.len()) else {
            return Err(bad_response(
                "POST",
                "/_bulk".into(),
                format!(
                    "expected one `items` entry per outbox entry, found {}",
                    crate::cluster::snippet(body.to_string().as_bytes())
                ),
            ));
        };
        let mut added = Vec::new();
        for (entry, item) in entries.iter().zip(items) {
            let status = item
                .pointer("/create/status")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            match status {
                200..=299 => added.push(entry.id.clone()),
                // already there: kept as it is, which is the point
                409 => {}
                _ => {
                    return Err(bad_response(
                        "POST",
                        "/_bulk".into(),
                        format!(
                            "adding outbox entries refused: {}",
                            crate::cluster::snippet(item.to_string().as_bytes())
                        ),
                    ))
                }
            }
        }
        Ok(added)
    }

    async fn outbox_get(&self, ids: &[String]) -> Result<Vec<OutboxEntry>, StateError> {
        let sources = self.outbox_sources(ids).await?;
        sources
            .into_iter()
            .map(|s| parse_entry(s, &self.outbox))
            .collect()
    }

    async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        let path = format!("/{}/_search", encode_path_part(&self.outbox));
        // `status` is a keyword (the outbox template), or text with a
        // keyword subfield in an outbox made before the template: a term
        // on it matches the one lower-case token either way.
        let body = serde_json::json!({
            "size": OUTBOX_PAGE,
            "query": {"term": {"status": "pending"}},
        });
        let Some(hits) = self
            .post_for_array(&path, SEARCH_MISSING_OK, &body, "/hits/hits")
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut out = hits
            .iter()
            .map(|h| {
                parse_entry(
                    h.get("_source").cloned().unwrap_or(Value::Null),
                    &self.outbox,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        sort_entries(&mut out);
        Ok(out)
    }

    async fn outbox_update(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        self.index_outbox_entries(entries, "wait_for").await
    }

    /// No refresh: one message just sent costs no wait for the next
    /// refresh; the pass's closing `outbox_update` (which writes the same
    /// entries again) makes them visible to the next search.
    async fn outbox_record(&self, entries: &[OutboxEntry]) -> Result<(), StateError> {
        self.index_outbox_entries(entries, "false").await
    }

    /// One `_delete_by_query` (throttle marks have no `status`: kept).
    async fn outbox_prune(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StateError> {
        let path = format!("/{}/_delete_by_query", encode_path_part(&self.outbox));
        let settled = [
            OutboxStatus::Sent,
            OutboxStatus::GivenUp,
            OutboxStatus::Throttled,
        ]
        .map(OutboxStatus::as_str);
        let body = serde_json::json!({ "query": { "bool": { "filter": [
            { "terms": { "status": settled } },
            { "range": { "created_at": { "lt": before } } },
        ] } } });
        let response = match self
            .cluster
            .request_json(
                Method::Post,
                &path,
                &[("conflicts", "proceed")],
                Some(&body),
            )
            .await
        {
            Ok(r) => r,
            Err(ClusterError::Status { status: 404, .. }) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        response
            .get("deleted")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                bad_response(
                    "POST",
                    path,
                    format!(
                        "expected `deleted`, found {}",
                        crate::cluster::snippet(response.to_string().as_bytes())
                    ),
                )
            })
    }

    async fn throttle_marks(&self, keys: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        let ids: Vec<String> = keys.iter().map(|k| format!("throttle:{k}")).collect();
        let sources = self.outbox_sources(&ids).await?;
        sources
            .into_iter()
            .map(|s| {
                serde_json::from_value(s.clone()).map_err(|e| {
                    bad_response(
                        "POST",
                        format!("/{}/_mget", self.outbox),
                        format!(
                            "expected a throttle mark, found {} ({e})",
                            crate::cluster::snippet(s.to_string().as_bytes())
                        ),
                    )
                })
            })
            .collect()
    }

    async fn save_throttle_marks(&self, marks: &[ThrottleMark]) -> Result<(), StateError> {
        if marks.is_empty() {
            return Ok(());
        }
        let docs: Vec<(String, Value)> = marks
            .iter()
            .map(|m| {
                (
                    format!("throttle:{}", m.key),
                    serde_json::to_value(m).unwrap_or(Value::Null),
                )
            })
            .collect();
        self.bulk(self.outbox_lines(&docs, "index"), "storing throttle marks")
            .await
    }

    async fn tail_spend(&self, rule_id: &str) -> Result<Option<TailSpend>, StateError> {
        let path = self.doc_path(&tail_budget_id(rule_id));
        // GET by id is real time: the last write is seen without a refresh.
        let body = match self
            .cluster
            .request_json(Method::Get, &path, &[], None)
            .await
        {
            Ok(body) => body,
            Err(ClusterError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let expected = |what: &str, found: &Value| {
            bad_response(
                "GET",
                path.clone(),
                format!(
                    "expected {what}, found {}",
                    crate::cluster::snippet(found.to_string().as_bytes())
                ),
            )
        };
        match body.get("found").and_then(Value::as_bool) {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => return Err(expected("a document with `found`", &body)),
        }
        let source = body.get("_source").cloned().unwrap_or(Value::Null);
        serde_json::from_value(source.clone())
            .map(Some)
            .map_err(|_| expected("a tail budget", &source))
    }

    async fn save_tail_spend(&self, spend: &TailSpend) -> Result<(), StateError> {
        let path = self.doc_path(&tail_budget_id(&spend.rule_id));
        let body = serde_json::to_value(spend).unwrap_or(Value::Null);
        // Read back by id only (real time): durable on return, no refresh.
        let response = self
            .cluster
            .request_json(Method::Put, &path, &[("refresh", "false")], Some(&body))
            .await?;
        written(response, "PUT", path)
    }
}

/// The id of a rule's tail budget in the state index.
fn tail_budget_id(rule_id: &str) -> String {
    format!("tail-budget:{rule_id}")
}

/// Pending outbox entries read in one search: more than this many waiting
/// means the outputs are far behind; the rest are read once these are out.
const OUTBOX_PAGE: usize = 10_000;

fn parse_entry(source: Value, index: &str) -> Result<OutboxEntry, StateError> {
    serde_json::from_value(source.clone()).map_err(|e| {
        bad_response(
            "POST",
            format!("/{index}/_search"),
            format!(
                "expected an outbox entry, found {} ({e})",
                crate::cluster::snippet(source.to_string().as_bytes())
            ),
        )
    })
}

/// Dead letters read per search page.
const DEAD_LETTER_PAGE: usize = 1_000;

/// An index-a-document answer carries `result` (`created`, `updated`,
/// `noop`); a 2xx without it (an empty body from a proxy) is no proof.
fn written(response: Value, method: &'static str, path: String) -> Result<(), StateError> {
    if response.get("result").is_some_and(Value::is_string) {
        return Ok(());
    }
    Err(bad_response(
        method,
        path,
        format!(
            "expected an index response with `result`, found {}",
            crate::cluster::snippet(response.to_string().as_bytes())
        ),
    ))
}

/// Search parameters for an index that may not exist yet (it then finds
/// nothing rather than failing).
const SEARCH_MISSING_OK: &[(&str, &str)] =
    &[("ignore_unavailable", "true"), ("allow_no_indices", "true")];

fn bad_response(method: &'static str, path: String, reason: String) -> StateError {
    StateError::Cluster(ClusterError::BadResponse {
        method,
        path,
        reason,
    })
}
