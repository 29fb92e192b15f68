//! Rule leases in the state index: which instance may run a rule, until
//! when, and at which epoch. The lease is a `lease` object inside the
//! rule's state document (id = rule id), next to its checkpoint, so that
//! taking a lease and committing a checkpoint change the same document:
//! whoever takes the lease moves the document's `_seq_no` on, and the old
//! owner's next checkpoint write, conditional on the `_seq_no` it last
//! saw, is refused with a 409. That is the fence: a paused or partitioned
//! instance that lost its lease cannot commit, whatever the clocks say.
//!
//! Every write here is optimistic (`if_seq_no` / `if_primary_term`), as
//! Kibana's Task Manager claims tasks (`x-pack/platform/plugins/shared/
//! task_manager/server/task_claimers/strategy_mget.ts`: `mget` the current
//! versions, then a bulk update guarded by them, a 409 meaning another
//! node won). This module only reads and writes; who should own what is
//! `coord`'s business.

use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Checkpoint, ClusterStateStore, StateError};
use crate::cluster::{encode_path_part, ClusterError};

/// The `lease` object of a state document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseDoc {
    /// The instance id holding the lease.
    pub owner: String,
    /// Grows by one at every change of owner (and every take after a
    /// release): a checkpoint carries the epoch it was written under.
    pub epoch: u64,
    /// Until when the owner may run the rule without renewing; a released
    /// lease has an expiry in the past.
    pub expires_at: DateTime<Utc>,
}

/// A document's version for optimistic concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub seq_no: u64,
    pub primary_term: u64,
}

impl Versioned {
    fn of(doc: &Value) -> Option<Versioned> {
        Some(Versioned {
            seq_no: doc.get("_seq_no")?.as_u64()?,
            primary_term: doc.get("_primary_term")?.as_u64()?,
        })
    }
}

/// A rule's state document as a lease taker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLease {
    pub rule_id: String,
    /// `None`: no state document yet (create it).
    pub version: Option<Versioned>,
    /// `None`: a document without a lease (written before leases, or by
    /// a single instance).
    pub lease: Option<LeaseDoc>,
}

/// One guarded lease write: a take, a renewal or a release.
#[derive(Clone, Debug)]
pub struct LeaseWrite {
    pub rule_id: String,
    pub lease: LeaseDoc,
    /// The version the write is conditional on; `None`: create the
    /// document (a 409 if someone else did first).
    pub version: Option<Versioned>,
}

/// What became of one [`LeaseWrite`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Written; the document's new version.
    Written(Versioned),
    /// 409: someone else wrote the document since.
    Conflict,
    /// Refused for another reason (429, 5xx...): nothing is known.
    Failed(String),
}

impl ClusterStateStore {
    /// The state documents of `rule_ids` with their versions and leases,
    /// in one `_mget` (a missing index finds none).
    pub async fn leases(&self, rule_ids: &[String]) -> Result<Vec<StoredLease>, StateError> {
        if rule_ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/{}/_mget", encode_path_part(self.state_index()));
        let body = serde_json::json!({ "ids": rule_ids });
        let docs = self
            .post_for_array(&path, &[], &body, "/docs")
            .await?
            .unwrap_or_default();
        let mut out = Vec::with_capacity(rule_ids.len());
        for (id, doc) in rule_ids
            .iter()
            .zip(docs.iter().chain(std::iter::repeat(&Value::Null)))
        {
            let found = doc.get("found").and_then(Value::as_bool) == Some(true);
            let version = if found { Versioned::of(doc) } else { None };
            let lease = doc
                .pointer("/_source/lease")
                .and_then(|l| serde_json::from_value(l.clone()).ok());
            out.push(StoredLease {
                rule_id: id.clone(),
                version,
                lease,
            });
        }
        Ok(out)
    }

    /// Writes leases in one `_bulk`, each conditional on its version:
    /// an `update` of the `lease` object (the checkpoint is left as it is)
    /// or a `create` of a document holding only the lease. One outcome per
    /// write, in order; the request failing as a whole is an `Err`.
    pub async fn write_leases(
        &self,
        writes: &[LeaseWrite],
    ) -> Result<Vec<LeaseOutcome>, StateError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines = Vec::new();
        for w in writes {
            let (action, doc) = match w.version {
                Some(v) => (
                    serde_json::json!({"update": {
                        "_index": self.state_index(), "_id": w.rule_id,
                        "if_seq_no": v.seq_no, "if_primary_term": v.primary_term,
                    }}),
                    serde_json::json!({"doc": {"lease": w.lease}}),
                ),
                None => (
                    serde_json::json!({"create": {"_index": self.state_index(), "_id": w.rule_id}}),
                    serde_json::json!({"rule_id": w.rule_id, "lease": w.lease}),
                ),
            };
            for v in [action, doc] {
                lines.extend(serde_json::to_vec(&v).unwrap_or_default());
                lines.push(b'\n');
            }
        }
        // No refresh: leases are read with `_mget` and checkpoints with a
        // GET by id, both real time.
        let raw = self
            .cluster()
            .send_raw(
                Method::Post,
                "/_bulk",
                &[],
                Some(lines),
                Some("application/x-ndjson"),
            )
            .await?;
        let body = crate::cluster::check_json(Method::Post, "/_bulk", &raw)?;
        let items = body.get("items").and_then(Value::as_array);
        let Some(items) = items.filter(|i| i.len() == writes.len()) else {
            return Err(StateError::Cluster(ClusterError::BadResponse {
                method: "POST",
                path: "/_bulk".into(),
                reason: format!(
                    "expected one `items` entry per lease, found {}",
                    crate::cluster::snippet(body.to_string().as_bytes())
                ),
            }));
        };
        Ok(items
            .iter()
            .map(|item| {
                let op = item.as_object().and_then(|m| m.values().next());
                let status = op.and_then(|o| o.get("status")).and_then(Value::as_u64);
                match (status, op.and_then(Versioned::of)) {
                    (Some(200..=299), Some(v)) => LeaseOutcome::Written(v),
                    (Some(409), _) => LeaseOutcome::Conflict,
                    _ => LeaseOutcome::Failed(crate::cluster::snippet(item.to_string().as_bytes())),
                }
            })
            .collect())
    }

    /// Stores the checkpoint under `lease`, only if the rule's document is
    /// still at `version` (nobody took the lease since): the checkpoint
    /// commit of a run on several instances. Returns the new version; a
    /// 409 is [`StateError::LeaseLost`].
    pub async fn save_checkpoint_fenced(
        &self,
        checkpoint: &Checkpoint,
        lease: &LeaseDoc,
        version: Versioned,
    ) -> Result<Versioned, StateError> {
        let mut body = serde_json::to_value(checkpoint).unwrap_or(Value::Null);
        body["lease"] = serde_json::to_value(lease).unwrap_or(Value::Null);
        let path = self.doc_path(&checkpoint.rule_id);
        let seq_no = version.seq_no.to_string();
        let term = version.primary_term.to_string();
        let params = [
            ("refresh", "wait_for"),
            ("if_seq_no", seq_no.as_str()),
            ("if_primary_term", term.as_str()),
        ];
        let response = match self
            .cluster()
            .request_json(Method::Put, &path, &params, Some(&body))
            .await
        {
            Ok(r) => r,
            Err(ClusterError::Status { status: 409, .. }) => {
                return Err(StateError::LeaseLost {
                    rule_id: checkpoint.rule_id.clone(),
                    why: format!(
                    "its state document changed since epoch {} (another instance took the lease)",
                    lease.epoch
                ),
                })
            }
            Err(e) => return Err(e.into()),
        };
        match (
            response.get("result").and_then(Value::as_str),
            Versioned::of(&response),
        ) {
            (Some(_), Some(v)) => Ok(v),
            _ => Err(StateError::Cluster(ClusterError::BadResponse {
                method: "PUT",
                path,
                reason: format!(
                    "expected an index response with `result` and `_seq_no`, found {}",
                    crate::cluster::snippet(response.to_string().as_bytes())
                ),
            })),
        }
    }
}
