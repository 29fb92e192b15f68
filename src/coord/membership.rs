//! Who is there: each instance's heartbeat document in the instances
//! index (`<state index>-instances`, like the outbox's `<state
//! index>-outbox`), and the rule set documents they point to.
//!
//! A heartbeat (id `instance-<id>`) says which rule set the instance runs
//! (`rules_hash`) and when it was last seen; an instance seen within the
//! lease time is live. The rule set itself (rule id -> fingerprint) is
//! written once per set as `rules-<hash>` and read by the others only when
//! they meet a hash they do not know, so a heartbeat stays small: one
//! write and one search per heartbeat period, however many rules.
//! Kibana's Task Manager keeps one `background-task-node` document per
//! node the same way (`last_seen`), see `reference/kibana-rule-types.md` §6.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::assign::RuleFingerprints;
use crate::cluster::{encode_path_part, Cluster, ClusterError};

/// One instance's heartbeat document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub instance_id: String,
    /// detectd's version.
    pub version: String,
    /// The hash of the rule set it runs (`rules-<hash>` holds it).
    pub rules_hash: String,
    pub rules_count: usize,
    pub rules_loaded_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Its lease time, in milliseconds: how long the others wait before
    /// they count it dead.
    pub lease_ms: u64,
}

impl Heartbeat {
    /// Seen within its lease time at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        let lease = chrono::Duration::milliseconds(self.lease_ms.min(i64::MAX as u64) as i64);
        self.last_seen + lease > now
    }
}

/// The heartbeats and rule sets of the instances, in the cluster.
#[derive(Clone, Debug)]
pub struct Registry {
    cluster: Cluster,
    index: String,
}

/// Heartbeats read per search: far more instances than anyone runs.
const MEMBERS_PAGE: usize = 1_000;

impl Registry {
    pub fn new(cluster: Cluster, state_index: &str) -> Registry {
        Registry {
            cluster,
            index: Registry::index_for(state_index),
        }
    }

    /// The instances index of a state index.
    pub fn index_for(state_index: &str) -> String {
        format!("{state_index}-instances")
    }

    pub fn index(&self) -> &str {
        &self.index
    }

    fn doc_path(&self, id: &str) -> String {
        format!(
            "/{}/_doc/{}",
            encode_path_part(&self.index),
            encode_path_part(id)
        )
    }

    /// Writes the rule set document of `hash` (the same content again
    /// changes nothing).
    pub async fn publish_rules(
        &self,
        hash: &str,
        rules: &RuleFingerprints,
    ) -> Result<(), ClusterError> {
        let body = serde_json::json!({ "kind": "rules", "rules_hash": hash, "rules": rules });
        self.cluster
            .request_json(
                Method::Put,
                &self.doc_path(&format!("rules-{hash}")),
                &[],
                Some(&body),
            )
            .await
            .map(drop)
    }

    /// Writes the heartbeat. Not refreshed: the others see it at the
    /// index's next refresh (1 s by default), well within a lease time.
    pub async fn beat(&self, beat: &Heartbeat) -> Result<(), ClusterError> {
        let mut body = serde_json::to_value(beat).unwrap_or(Value::Null);
        body["kind"] = Value::from("instance");
        self.cluster
            .request_json(
                Method::Put,
                &self.doc_path(&format!("instance-{}", beat.instance_id)),
                &[],
                Some(&body),
            )
            .await
            .map(drop)
    }

    /// Removes the heartbeat (a clean shutdown): the others rebalance at
    /// their next heartbeat instead of after the lease time.
    pub async fn leave(&self, instance_id: &str) -> Result<(), ClusterError> {
        match self
            .cluster
            .request_json(
                Method::Delete,
                &self.doc_path(&format!("instance-{instance_id}")),
                &[("refresh", "wait_for")],
                None,
            )
            .await
        {
            Ok(_) | Err(ClusterError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every heartbeat document, live or not (no index yet: none).
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, ClusterError> {
        let path = format!("/{}/_search", encode_path_part(&self.index));
        // The rule sets stay out of the answer: their documents come back
        // without `last_seen` and are skipped below.
        let body = serde_json::json!({
            "size": MEMBERS_PAGE,
            "_source": {"excludes": ["rules"]},
            "query": {"match_all": {}},
        });
        let params = [("ignore_unavailable", "true"), ("allow_no_indices", "true")];
        let response = match self
            .cluster
            .request_json(Method::Post, &path, &params, Some(&body))
            .await
        {
            Ok(r) => r,
            Err(ClusterError::Status { status: 404, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let hits = response
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| ClusterError::BadResponse {
                method: "POST",
                path: path.clone(),
                reason: format!(
                    "expected `hits.hits`, found {}",
                    crate::cluster::snippet(response.to_string().as_bytes())
                ),
            })?;
        Ok(hits
            .iter()
            .filter_map(|h| h.get("_source"))
            .filter(|s| s.get("kind").and_then(Value::as_str) == Some("instance"))
            .filter_map(|s| serde_json::from_value(s.clone()).ok())
            .collect())
    }

    /// The rule sets of these hashes, in one `_mget`; unknown hashes are
    /// left out.
    pub async fn rule_sets(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Arc<RuleFingerprints>>, ClusterError> {
        let mut out = HashMap::new();
        if hashes.is_empty() {
            return Ok(out);
        }
        let path = format!("/{}/_mget", encode_path_part(&self.index));
        let ids: Vec<String> = hashes.iter().map(|h| format!("rules-{h}")).collect();
        let body = serde_json::json!({ "ids": ids });
        let response = match self
            .cluster
            .request_json(Method::Post, &path, &[], Some(&body))
            .await
        {
            Ok(r) => r,
            Err(ClusterError::Status { status: 404, .. }) => return Ok(out),
            Err(e) => return Err(e),
        };
        for doc in response
            .get("docs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let hash = doc.pointer("/_source/rules_hash").and_then(Value::as_str);
            let rules = doc
                .pointer("/_source/rules")
                .and_then(|r| serde_json::from_value::<RuleFingerprints>(r.clone()).ok());
            if let (Some(hash), Some(rules)) = (hash, rules) {
                out.insert(hash.to_string(), Arc::new(rules));
            }
        }
        Ok(out)
    }
}

/// The heartbeats live at `now`, sorted by instance id.
pub fn live(mut beats: Vec<Heartbeat>, now: DateTime<Utc>) -> Vec<Heartbeat> {
    beats.retain(|b| b.is_live(now));
    beats.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    beats.dedup_by(|a, b| a.instance_id == b.instance_id);
    beats
}

/// Milliseconds of a duration, for documents.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, seen: i64) -> Heartbeat {
        let t = DateTime::from_timestamp(1_700_000_000 + seen, 0).unwrap();
        Heartbeat {
            instance_id: id.into(),
            version: "0".into(),
            rules_hash: "h".into(),
            rules_count: 0,
            rules_loaded_at: t,
            started_at: t,
            last_seen: t,
            lease_ms: 30_000,
        }
    }

    #[test]
    fn an_instance_is_live_within_its_lease_time() {
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let beats = vec![beat("c", 99), beat("a", 71), beat("b", 70), beat("d", 60)];
        let ids: Vec<_> = live(beats, now)
            .into_iter()
            .map(|b| b.instance_id)
            .collect();
        // seen 29 s ago: live; 30 s ago: the lease is over
        assert_eq!(ids, ["a", "c"]);
    }
}
