//! Integration tests that talk to a live cluster at `ELASTICSEARCH_URL`
//! (`scripts/test.sh` starts an in-memory osmem-server when none is given;
//! `docker/docker-compose.yml` gives a real Elasticsearch).
//!
//! Without a URL the tests print a notice and pass, unless `CI=true`, where
//! a missing cluster is a failure. Every test works in its own indices
//! (named by [`unique_index`]) and deletes them at the end, so tests can run
//! in parallel against one server.

pub mod gen;
mod run_space;

pub use run_space::{ClusterRunner, RunSpace};

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use detectd::cluster::{Cluster, RetryPolicy};
use detectd::config::cluster::ClusterSettings;
use detectd::rule::{load_file, LoadOutcome, Rule};
use detectd::sink::alerts_index::{AlertsLayout, BootstrapMode, BootstrapSpec};
use detectd::sink::elasticsearch::IndexNames;
use elasticsearch::http::Method;
use serde_json::{json, Value};

/// The cluster URL the integration tests run against, if one is configured.
pub fn cluster_url() -> Option<String> {
    std::env::var("ELASTICSEARCH_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Connects to the configured cluster, or returns `None` (after a notice)
/// when none is configured outside CI.
pub async fn connect_or_skip(test: &str) -> Option<Cluster> {
    if cluster_url().is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: ELASTICSEARCH_URL is not set and CI=true: expected a cluster to test against");
        }
        eprintln!(
            "{test}: skipped: ELASTICSEARCH_URL is not set (scripts/test.sh starts osmem-server)"
        );
        return None;
    }
    // The environment as detectd reads it (URL, credentials, CA).
    let mut settings = ClusterSettings::from_env();
    // Bulk loads of test data on a small machine can be slow.
    settings.request_timeout_secs = Some(120.0);
    let settings = settings.resolve().expect("valid ELASTICSEARCH_* settings");
    Some(
        Cluster::connect_with(&settings, RetryPolicy::default())
            .await
            .expect("connect to ELASTICSEARCH_URL"),
    )
}

/// A date as Elasticsearch writes it: RFC 3339, milliseconds, `Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The repository's founding rule (`rules/execution_scheduled_task_powershell.toml`).
pub fn founding_rule() -> Rule {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rules/execution_scheduled_task_powershell.toml");
    match load_file(&path).outcome {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("founding rule does not load: {other:?}"),
    }
}

/// A fresh, lower-case index name unique to this process and call.
pub fn unique_index(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "it-{prefix}-{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// ECS-style mapping: strings are keywords, `@timestamp` and
/// `event.ingested` are dates.
pub fn ecs_mapping() -> Value {
    json!({
        "dynamic_templates": [{ "strings": {
            "match_mapping_type": "string",
            "mapping": { "type": "keyword", "ignore_above": 1024 }
        } }],
        "properties": {
            "@timestamp": { "type": "date" },
            "event": { "properties": { "ingested": { "type": "date" } } }
        }
    })
}

/// Creates an index with one shard and the given mappings.
pub async fn create_index(cluster: &Cluster, index: &str, mappings: Value) {
    cluster
        .request_json(
            Method::Put,
            &format!("/{index}"),
            &[],
            Some(&json!({
                "settings": { "number_of_shards": 1, "number_of_replicas": 0 },
                "mappings": mappings
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("create index {index}: {e}"));
}

/// Indexes `(id, source)` documents with `_bulk` and refreshes.
pub async fn index_docs(cluster: &Cluster, index: &str, docs: &[(String, Value)]) {
    for chunk in docs.chunks(1_000) {
        let mut body = Vec::new();
        for (id, source) in chunk {
            body.extend(
                serde_json::to_vec(&json!({"index": {"_index": index, "_id": id}})).unwrap(),
            );
            body.push(b'\n');
            body.extend(serde_json::to_vec(source).unwrap());
            body.push(b'\n');
        }
        let raw = cluster
            .send_raw(
                Method::Post,
                "/_bulk",
                &[],
                Some(body),
                Some("application/x-ndjson"),
            )
            .await
            .expect("bulk request");
        let v: Value = serde_json::from_slice(&raw.body).expect("bulk response is json");
        assert_eq!(raw.status, 200, "bulk: {v}");
        assert_eq!(v["errors"], json!(false), "bulk item errors: {v}");
    }
    refresh(cluster, index).await;
}

pub async fn refresh(cluster: &Cluster, index: &str) {
    cluster
        .request_json(Method::Post, &format!("/{index}/_refresh"), &[], None)
        .await
        .unwrap_or_else(|e| panic!("refresh {index}: {e}"));
}

/// Number of documents in an index.
pub async fn count(cluster: &Cluster, index: &str) -> u64 {
    let v = cluster
        .request_json(Method::Get, &format!("/{index}/_count"), &[], None)
        .await
        .unwrap_or_else(|e| panic!("count {index}: {e}"));
    v["count"].as_u64().expect("count")
}

/// Deletes indices (best effort: cleanup must not hide the real failure).
pub async fn delete_indices(cluster: &Cluster, indices: &[&str]) {
    for index in indices {
        let _ = cluster
            .send_raw(Method::Delete, &format!("/{index}"), &[], None, None)
            .await;
    }
}

/// A Kibana space of one test's own: its alerts alias
/// `.alerts-security.alerts-<space>` and the layout behind it, created by
/// detectd's first write (or by the test, playing Kibana).
pub struct AlertsSpace {
    pub layout: AlertsLayout,
}

impl AlertsSpace {
    pub fn new(prefix: &str) -> AlertsSpace {
        AlertsSpace {
            layout: AlertsLayout::for_space(&unique_index(prefix)),
        }
    }

    pub fn space(&self) -> &str {
        self.layout.space()
    }

    /// Where alerts are written and read.
    pub fn alias(&self) -> String {
        self.layout.alias()
    }

    /// How detectd creates the layout on this cluster (`alerts.bootstrap`).
    pub fn spec(&self, cluster: &Cluster, mode: BootstrapMode) -> BootstrapSpec {
        BootstrapSpec::for_cluster(cluster.info(), mode, None)
    }

    /// Removes the backing indices (by name: wildcards skip hidden
    /// indices), the alias's squatter if a test made one, and the template.
    pub async fn delete(&self, cluster: &Cluster) {
        let mut names: Vec<String> = (1..=3)
            .map(|n| format!(".internal.alerts-security.alerts-{}-{n:06}", self.space()))
            .collect();
        names.push(self.alias());
        for name in names {
            let _ = cluster
                .send_raw(Method::Delete, &format!("/{name}"), &[], None, None)
                .await;
        }
        let _ = cluster
            .send_raw(
                Method::Delete,
                &format!("/_index_template/{}", self.layout.template()),
                &[],
                None,
                None,
            )
            .await;
    }
}

/// Removes detectd's own indices of a test (state, executions, dead
/// letters) and their templates (best effort, as `delete_indices`).
pub async fn delete_detectd_indices(cluster: &Cluster, names: &IndexNames) {
    let all = [&names.state, &names.executions, &names.dead_letters];
    delete_indices(cluster, &all.map(String::as_str)).await;
    for name in all {
        let _ = cluster
            .send_raw(
                Method::Delete,
                &format!("/_index_template/{name}-template"),
                &[],
                None,
                None,
            )
            .await;
    }
}
