//! An in-process Elasticsearch 8 for the rule types only Elasticsearch
//! runs (ES|QL, machine learning): it answers index resolution, mappings,
//! `_mget`, `ids` searches, `_query/async` (running once, then done),
//! the ML job and datafeed states and the anomaly search, and keeps every
//! request so tests can check the shapes Kibana sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::cluster::{Cluster, RetryPolicy};
use crate::config::cluster::ClusterSettings;
use crate::source::elasticsearch::ElasticsearchSource;

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) body: Value,
}

#[derive(Default)]
pub(super) struct State {
    /// `GET /` version and distribution.
    pub(super) opensearch: bool,
    /// Concrete indices `_resolve/index` answers for any pattern.
    pub(super) indices: Vec<String>,
    /// Documents by (index, id) for `_mget` and `ids` searches.
    pub(super) docs: Vec<(String, String, Value)>,
    /// ES|QL results (columns, values), one per query, in order; the last
    /// answers every query after it.
    pub(super) esql: VecDeque<Value>,
    /// `_ml/anomaly_detectors/_stats`, `_ml/datafeeds`, `_ml/datafeeds/_stats`.
    pub(super) jobs: Value,
    pub(super) feeds: Value,
    pub(super) feed_stats: Value,
    /// Anomaly records answered by the anomaly search.
    pub(super) records: Vec<Value>,
    pub(super) seen: Vec<Seen>,
}

#[derive(Clone)]
pub(super) struct MockEs(pub(super) Arc<Mutex<State>>);

impl MockEs {
    pub(super) fn seen(&self, method: &str, path_prefix: &str) -> Vec<Seen> {
        let s = self.0.lock().unwrap();
        s.seen
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

impl Respond for MockEs {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        let method = req.method.to_string();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        s.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query: req.url.query().unwrap_or_default().to_string(),
            body: body.clone(),
        });
        let ok = |v: Value| ResponseTemplate::new(200).set_body_json(v);
        match (method.as_str(), path.as_str()) {
            ("GET", "/") if s.opensearch => ok(json!({"cluster_name": "mock",
                "version": {"number": "2.19.0", "distribution": "opensearch"}})),
            ("GET", "/") => ok(json!({"cluster_name": "mock", "version": {"number": "8.15.0"}})),
            ("GET", p) if p.starts_with("/_resolve/index/") => ok(json!({
                "indices": s.indices.iter().map(|i| json!({"name": i, "attributes": ["open"]})).collect::<Vec<_>>(),
                "aliases": [], "data_streams": []
            })),
            ("GET", p) if p.ends_with("/_mapping") => {
                let mut out = serde_json::Map::new();
                for i in &s.indices {
                    out.insert(
                        i.clone(),
                        json!({"mappings": {"properties": {
                            "@timestamp": {"type": "date"},
                            "event": {"properties": {"ingested": {"type": "date"}}},
                        }}}),
                    );
                }
                ok(Value::Object(out))
            }
            ("POST", "/_mget") => {
                let docs: Vec<Value> = body["docs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|d| {
                        match s
                            .docs
                            .iter()
                            .find(|(i, id, _)| d["_index"] == *i && d["_id"] == *id)
                        {
                            Some((i, id, src)) => {
                                json!({"_index": i, "_id": id, "found": true, "_source": src})
                            }
                            None => json!({"_index": d["_index"], "_id": d["_id"], "found": false}),
                        }
                    })
                    .collect();
                ok(json!({"docs": docs}))
            }
            ("POST", "/_query/async") => {
                // Running at first: the detector must poll, then delete.
                ok(json!({"id": "Q1", "is_running": true}))
            }
            ("GET", "/_query/async/Q1") => match if s.esql.len() > 1 {
                s.esql.pop_front()
            } else {
                s.esql.front().cloned()
            } {
                Some(mut result) => {
                    result["is_running"] = json!(false);
                    ok(result)
                }
                None => ResponseTemplate::new(404),
            },
            ("DELETE", "/_query/async/Q1") => ok(json!({"acknowledged": true})),
            ("GET", "/_ml/anomaly_detectors/_stats") => ok(s.jobs.clone()),
            ("GET", "/_ml/datafeeds") => ok(s.feeds.clone()),
            ("GET", "/_ml/datafeeds/_stats") => ok(s.feed_stats.clone()),
            ("POST", "/.ml-anomalies-*/_search") => ok(json!({
                "took": 1, "timed_out": false,
                "_shards": {"total": 1, "successful": 1, "failed": 0},
                "hits": {"total": {"value": s.records.len(), "relation": "eq"},
                         "hits": s.records.clone()}
            })),
            ("POST", p) if p.ends_with("/_search") => {
                let ids: Vec<Value> = body
                    .pointer("/query/bool/filter/ids/values")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let hits: Vec<Value> = s
                    .docs
                    .iter()
                    .filter(|(_, id, _)| ids.contains(&json!(id)))
                    .map(|(i, id, src)| json!({"_index": i, "_id": id, "_source": src}))
                    .collect();
                ok(
                    json!({"_shards": {"total": 1, "successful": 1, "failed": 0},
                          "hits": {"hits": hits}}),
                )
            }
            _ => ResponseTemplate::new(404).set_body_string(format!("mock: no {method} {path}")),
        }
    }
}

/// The mock cluster and a source over it.
pub(super) async fn start(state: State) -> (MockServer, MockEs, ElasticsearchSource) {
    let mock = MockEs(Arc::new(Mutex::new(state)));
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(mock.clone())
        .mount(&server)
        .await;
    let settings = ClusterSettings {
        urls: Some(vec![server.uri()]),
        request_timeout_secs: Some(5.0),
        ..ClusterSettings::default()
    }
    .resolve()
    .unwrap();
    let retry = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    };
    let cluster = Cluster::connect_with(&settings, retry).await.unwrap();
    (server, mock, ElasticsearchSource::new(cluster))
}
