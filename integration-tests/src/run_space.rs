//! What one test's rule runs use on the cluster: detectd's indices (state,
//! executions, dead letters) under a unique prefix with their templates,
//! and an alerts space of its own; a runner over them, the alerts read
//! back, and everything removed at the end.

use detectd::cluster::Cluster;
use detectd::runner::{Runner, RunnerSettings};
use detectd::sink::alerts_index::BootstrapMode;
use detectd::sink::elasticsearch::{
    install_templates, BulkSettings, ElasticsearchSink, IndexNames,
};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::ClusterStateStore;
use std::collections::BTreeSet;

use elasticsearch::http::Method;
use serde_json::{json, Value};

use crate::AlertsSpace;
use crate::{connect_or_skip, delete_detectd_indices, delete_indices, refresh, unique_index};

/// A runner writing to a [`RunSpace`].
pub type ClusterRunner = Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore>;

pub struct RunSpace {
    pub cluster: Cluster,
    /// Unique per test: name the test's own event indices after it.
    pub prefix: String,
    pub names: IndexNames,
    pub alerts: AlertsSpace,
}

impl RunSpace {
    /// Connects (or skips `test` without a cluster) and installs detectd's
    /// templates for indices named after `tag`.
    pub async fn new(test: &str, tag: &str) -> Option<RunSpace> {
        let cluster = connect_or_skip(test).await?;
        let prefix = unique_index(tag);
        let names = IndexNames {
            state: format!("{prefix}-state"),
            executions: format!("{prefix}-executions"),
            dead_letters: format!("{prefix}-dead-letters"),
        };
        install_templates(&cluster, &names)
            .await
            .expect("install templates");
        Some(RunSpace {
            cluster,
            prefix,
            names,
            alerts: AlertsSpace::new(tag),
        })
    }

    /// A new runner over `source` (what a restarted daemon has): alerts
    /// written with `refresh=wait_for` into the space's alias, created as
    /// Kibana would when missing, state in the cluster.
    pub fn runner(&self, source: ElasticsearchSource) -> ClusterRunner {
        Runner::new(
            source,
            ElasticsearchSink::new(
                self.cluster.clone(),
                BulkSettings {
                    refresh: Some("wait_for".into()),
                    ..BulkSettings::default()
                },
                self.alerts.spec(&self.cluster, BootstrapMode::Create),
            ),
            ClusterStateStore::new(self.cluster.clone(), &self.names),
            RunnerSettings {
                alerts_index: self.alerts.alias(),
                space_id: self.alerts.space().to_string(),
                ..RunnerSettings::default()
            },
        )
    }

    /// The hits of `search` over the space's alerts, after a refresh.
    pub async fn alert_hits(&self, search: &Value) -> Vec<Value> {
        refresh(&self.cluster, &self.alerts.alias()).await;
        let v = self
            .cluster
            .request_json(
                Method::Post,
                &format!("/{}/_search", self.alerts.alias()),
                &[],
                Some(search),
            )
            .await
            .expect("search alerts");
        v["hits"]["hits"].as_array().cloned().unwrap_or_default()
    }

    /// What identifies each of the space's alerts across spaces (alert ids
    /// hash the space): its rule, and the events it is made of (a threshold
    /// alert's: its group's terms).
    pub async fn alert_set(&self) -> BTreeSet<(String, String)> {
        self.alert_hits(&json!({ "size": 10_000, "query": { "match_all": {} } }))
            .await
            .iter()
            .map(|h| {
                let s = &h["_source"];
                let rule = s["kibana.alert.rule.rule_id"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
                let events: Vec<&str> = s["kibana.alert.ancestors"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect())
                    .unwrap_or_default();
                let threshold = s["kibana.alert.threshold_result"]["terms"].to_string();
                (rule, format!("{events:?} {threshold}"))
            })
            .collect()
    }

    /// Alerts and state gone, templates back: as before the first run.
    pub async fn reset(&self) {
        delete_detectd_indices(&self.cluster, &self.names).await;
        self.alerts.delete(&self.cluster).await;
        install_templates(&self.cluster, &self.names)
            .await
            .expect("install templates");
    }

    /// Removes `indices` (the test's own) and everything of the space.
    pub async fn cleanup(&self, indices: &[&str]) {
        delete_indices(&self.cluster, indices).await;
        delete_detectd_indices(&self.cluster, &self.names).await;
        self.alerts.delete(&self.cluster).await;
    }
}
