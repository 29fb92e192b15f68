//! A blocking client of the test cluster for the tests that drive several
//! `detectd` processes: requests, bulk loads, every hit of an index.
//! Included with `#[path = "common/es.rs"] mod es;`.

#![allow(dead_code)]

use detectd::cluster::Cluster;
use elasticsearch::http::Method;
use serde_json::{json, Value};

pub struct Es {
    pub rt: tokio::runtime::Runtime,
    pub cluster: Cluster,
}

impl Es {
    pub fn connect(url: &str) -> Es {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let settings = detectd::config::cluster::ClusterSettings {
            urls: Some(vec![url.to_string()]),
            request_timeout_secs: Some(120.0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let cluster = rt.block_on(Cluster::connect(&settings)).unwrap();
        Es { rt, cluster }
    }

    pub fn request(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let raw = self
            .rt
            .block_on(self.cluster.send_raw(
                method,
                path,
                &[],
                body.map(|b| b.to_string().into_bytes()),
                None,
            ))
            .unwrap();
        serde_json::from_slice(&raw.body).unwrap_or(Value::Null)
    }

    pub fn bulk(&self, body: String) {
        let raw = self
            .rt
            .block_on(self.cluster.send_raw(
                Method::Post,
                "/_bulk?refresh=wait_for",
                &[],
                Some(body.into_bytes()),
                Some("application/x-ndjson"),
            ))
            .unwrap();
        let r: Value = serde_json::from_slice(&raw.body).unwrap();
        assert_eq!(r["errors"], false, "bulk refused: {:.300}", r.to_string());
    }

    /// Every hit of `index`, paged with search_after over `sort`.
    pub fn all(&self, index: &str, sort: Value) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({"size": 5000, "sort": sort, "query": {"match_all": {}}});
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let r = self.request(Method::Post, &format!("/{index}/_search"), Some(body));
            let hits = r["hits"]["hits"].as_array().cloned().unwrap_or_default();
            let n = hits.len();
            after = hits.last().map(|h| h["sort"].clone());
            out.extend(hits);
            if n < 5000 {
                return out;
            }
        }
    }
}
