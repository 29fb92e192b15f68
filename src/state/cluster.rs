//! State in the cluster: one document per rule in the state index (id =
//! rule id) and one document per run in the executions index, both written
//! with `refresh=wait_for` so a checkpoint is visible (and durable) before
//! the run goes on. Index names and templates are `sink::elasticsearch`'s
//! [`IndexNames`] and `install_templates`.

use elasticsearch::http::Method;
use serde_json::Value;

use super::{execution_document, Checkpoint, StateError, StateStore};
use crate::cluster::{encode_path_part, Cluster, ClusterError};
use crate::runner::ExecutionRecord;
use crate::sink::elasticsearch::IndexNames;

#[derive(Clone, Debug)]
pub struct ClusterStateStore {
    cluster: Cluster,
    /// The state index (checkpoints).
    state: String,
    /// The executions index.
    executions: String,
}

impl ClusterStateStore {
    /// Uses `names.state` and `names.executions`.
    pub fn new(cluster: Cluster, names: &IndexNames) -> ClusterStateStore {
        ClusterStateStore {
            cluster,
            state: names.state.clone(),
            executions: names.executions.clone(),
        }
    }

    fn doc_path(&self, rule_id: &str) -> String {
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
        let response = self
            .cluster
            .request_json(
                Method::Post,
                &path,
                &[("refresh", "wait_for")],
                Some(&execution_document(record)),
            )
            .await?;
        written(response, "POST", path)
    }
}

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

fn bad_response(method: &'static str, path: String, reason: String) -> StateError {
    StateError::Cluster(ClusterError::BadResponse {
        method,
        path,
        reason,
    })
}
