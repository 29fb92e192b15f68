//! `detectd status`: the instances, who holds each rule's lease and for how
//! much longer, each rule's checkpoint and last run, read from the cluster
//! (the instances, state and executions indices).

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use serde_json::Value;

use super::membership::{Heartbeat, Registry};
use crate::cluster::{encode_path_part, Cluster, ClusterError};
use crate::state::LeaseDoc;

/// One rule's row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleRow {
    pub rule_id: String,
    pub lease: Option<LeaseDoc>,
    pub checkpoint: Option<DateTime<Utc>>,
    /// Start and status of the last run recorded.
    pub last_run: Option<(DateTime<Utc>, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct Status {
    pub instances: Vec<Heartbeat>,
    pub rules: Vec<RuleRow>,
}

/// Rows read per index: the status of a very large installation is cut
/// here (and says so).
const STATUS_PAGE: usize = 10_000;

async fn search(cluster: &Cluster, index: &str, body: Value) -> Result<Vec<Value>, ClusterError> {
    let path = format!("/{}/_search", encode_path_part(index));
    let params = [("ignore_unavailable", "true"), ("allow_no_indices", "true")];
    match cluster
        .request_json(Method::Post, &path, &params, Some(&body))
        .await
    {
        Ok(r) => Ok(r
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()),
        Err(ClusterError::Status { status: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl Status {
    pub async fn read(
        cluster: &Cluster,
        state_index: &str,
        executions_index: &str,
    ) -> Result<Status, ClusterError> {
        let registry = Registry::new(cluster.clone(), state_index);
        let mut instances = registry.heartbeats().await?;
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        let mut rules: BTreeMap<String, RuleRow> = BTreeMap::new();
        let states = search(
            cluster,
            state_index,
            serde_json::json!({"size": STATUS_PAGE, "query": {"match_all": {}},
                "_source": ["rule_id", "checkpoint", "lease"]}),
        )
        .await?;
        for hit in states {
            let Some(id) = hit.get("_id").and_then(Value::as_str) else {
                continue;
            };
            let row = rules.entry(id.to_string()).or_default();
            row.rule_id = id.to_string();
            row.lease = hit
                .pointer("/_source/lease")
                .and_then(|l| serde_json::from_value(l.clone()).ok());
            row.checkpoint = hit
                .pointer("/_source/checkpoint")
                .and_then(|c| serde_json::from_value(c.clone()).ok());
        }
        let runs = search(
            cluster,
            executions_index,
            serde_json::json!({"size": STATUS_PAGE, "query": {"match_all": {}},
                "sort": [{"@timestamp": "desc"}],
                "_source": ["rule_id", "started_at", "status"]}),
        )
        .await?;
        for hit in runs {
            let source = hit.get("_source").cloned().unwrap_or(Value::Null);
            let (Some(id), Some(started), Some(status)) = (
                source.get("rule_id").and_then(Value::as_str),
                source
                    .get("started_at")
                    .and_then(|s| serde_json::from_value::<DateTime<Utc>>(s.clone()).ok()),
                source.get("status").and_then(Value::as_str),
            ) else {
                continue;
            };
            let row = rules.entry(id.to_string()).or_default();
            row.rule_id = id.to_string();
            if row.last_run.as_ref().is_none_or(|(t, _)| started > *t) {
                row.last_run = Some((started, status.to_string()));
            }
        }
        Ok(Status {
            instances,
            rules: rules.into_values().collect(),
        })
    }

    /// The tables `detectd status` prints, ages counted at `now`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let age = |t: DateTime<Utc>| {
            let s = (now - t).num_milliseconds() as f64 / 1000.0;
            format!("{s:.1}s")
        };
        let mut out = String::new();
        let live = self.instances.iter().filter(|b| b.is_live(now)).count();
        let _ = writeln!(
            out,
            "instances: {live} live of {} known",
            self.instances.len()
        );
        let _ = writeln!(
            out,
            "  {:<38} {:<8} {:<6} {:>6} {:<14} {:>10} {:>8}",
            "INSTANCE", "STATE", "VER", "RULES", "RULES_HASH", "SEEN_AGO", "LEASES"
        );
        for b in &self.instances {
            let leases = self
                .rules
                .iter()
                .filter(|r| {
                    r.lease
                        .as_ref()
                        .is_some_and(|l| l.owner == b.instance_id && l.expires_at > now)
                })
                .count();
            let _ = writeln!(
                out,
                "  {:<38} {:<8} {:<6} {:>6} {:<14} {:>10} {:>8}",
                b.instance_id,
                if b.is_live(now) { "live" } else { "gone" },
                b.version,
                b.rules_count,
                b.rules_hash,
                age(b.last_seen),
                leases
            );
        }
        let _ = writeln!(out, "rules: {}", self.rules.len());
        let _ = writeln!(
            out,
            "  {:<40} {:<38} {:>6} {:>12} {:<25} {:<25} STATUS",
            "RULE", "OWNER", "EPOCH", "LEASE_LEFT", "CHECKPOINT", "LAST_RUN"
        );
        for r in &self.rules {
            let (owner, epoch, left) = match &r.lease {
                Some(l) if l.expires_at > now => (
                    l.owner.clone(),
                    l.epoch.to_string(),
                    format!(
                        "{:.1}s",
                        (l.expires_at - now).num_milliseconds() as f64 / 1000.0
                    ),
                ),
                Some(l) => (
                    format!("({} expired)", l.owner),
                    l.epoch.to_string(),
                    "-".to_string(),
                ),
                None => ("-".to_string(), "-".to_string(), "-".to_string()),
            };
            let (last, status) = match &r.last_run {
                Some((t, s)) => (t.to_rfc3339(), s.clone()),
                None => ("-".to_string(), "-".to_string()),
            };
            let _ = writeln!(
                out,
                "  {:<40} {:<38} {:>6} {:>12} {:<25} {:<25} {}",
                r.rule_id,
                owner,
                epoch,
                left,
                r.checkpoint.map(|c| c.to_rfc3339()).unwrap_or("-".into()),
                last,
                status
            );
        }
        if self.rules.len() >= STATUS_PAGE {
            let _ = writeln!(out, "  (only the first {STATUS_PAGE} rules are shown)");
        }
        out
    }
}
