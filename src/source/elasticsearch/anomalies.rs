//! Anomaly records of machine-learning jobs, as Kibana's ML rule reads
//! them (`server/lib/machine_learning/index.ts` `buildAnomalyQuery`, run by
//! the ML plugin's `mlAnomalySearch` over `.ml-anomalies-*`), and the state
//! of the rule's jobs (`rule_types/ml/ml.ts` warns when a job is missing or
//! not started: `isJobStarted` in `common/machine_learning/helpers.ts` is
//! job `opened` and datafeed `started`).

use std::collections::HashMap;

use elasticsearch::http::Method;
use serde_json::{json, Value};

use super::{bad_response, hit_document, ElasticsearchSource};
use crate::cluster::{Distribution, ServerInfo};
use crate::rule::NEEDS_ML;
use crate::source::{Anomalies, AnomalyRequest, SourceError};

/// Where the jobs write their records.
const ANOMALIES: &str = "/.ml-anomalies-*/_search";

/// Why `info`'s cluster has no machine learning, if it has none.
pub fn ml_missing(info: &ServerInfo) -> Option<String> {
    match info.distribution {
        Distribution::OpenSearch => Some(format!(
            "this rule needs {NEEDS_ML}; the cluster is OpenSearch {} (its anomaly detection \
             plugin is not Elasticsearch's)",
            info.version
        )),
        Distribution::Elasticsearch => None,
    }
}

/// Kibana's anomaly search body.
pub fn anomaly_query(request: &AnomalyRequest) -> Value {
    let mut must = vec![
        json!({"range": {"timestamp": {
            "gte": request.earliest_ms,
            "lte": request.latest_ms,
            "format": "epoch_millis",
        }}}),
        json!({"range": {"record_score": {"gte": request.threshold}}}),
    ];
    // Kibana filters by job unless the rule reads every job (`*`).
    let every_job = request.job_ids.is_empty() || request.job_ids == ["*"];
    let filterable = !every_job;
    if filterable {
        let ids: Vec<String> = request
            .job_ids
            .iter()
            .map(|id| format!("job_id:{id}"))
            .collect();
        must.push(json!({"query_string": {
            "analyze_wildcard": false,
            "query": ids.join(" OR "),
        }}));
    }
    let mut filter = vec![
        json!({"query_string": {"query": "result_type:record", "analyze_wildcard": false}}),
        json!({"term": {"is_interim": false}}),
        json!({"bool": {"must": must}}),
    ];
    filter.extend(request.constraint.clone());
    json!({
        "size": request.size,
        "query": {"bool": {"filter": filter}},
        "fields": [{"field": "*", "include_unmapped": true}],
        "sort": [{"record_score": {"order": "desc"}}],
    })
}

impl ElasticsearchSource {
    pub(super) async fn anomaly_records(
        &self,
        request: &AnomalyRequest,
    ) -> Result<Anomalies, SourceError> {
        if let Some(reason) = ml_missing(self.cluster.info()) {
            return Err(SourceError::Unsupported(reason));
        }
        let job_warnings = match self.job_states(&request.job_ids).await {
            Ok(w) => w,
            Err(e) => vec![format!("cannot read the state of the ML jobs: {e}")],
        };
        let body = self
            .cluster
            .request_json(Method::Post, ANOMALIES, &[], Some(&anomaly_query(request)))
            .await?;
        if let Some(failed) = body.pointer("/_shards/failed").and_then(Value::as_u64) {
            if failed > 0 {
                return Err(SourceError::ShardFailures(crate::cluster::snippet(
                    body.pointer("/_shards/failures")
                        .unwrap_or(&Value::Null)
                        .to_string()
                        .as_bytes(),
                )));
            }
        }
        let hits = body
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_response("POST", ANOMALIES, "expected `hits.hits`".into()))?;
        let records = hits
            .iter()
            .map(|h| hit_document(h).map_err(|r| bad_response("POST", ANOMALIES, r)))
            .collect::<Result<Vec<_>, _>>()?;
        let total = body
            .pointer("/hits/total/value")
            .or_else(|| body.pointer("/hits/total"))
            .and_then(Value::as_u64)
            .unwrap_or(records.len() as u64);
        Ok(Anomalies {
            records,
            total,
            job_warnings,
        })
    }

    /// One line per job of `ids` that is missing or not started.
    async fn job_states(&self, ids: &[String]) -> Result<Vec<String>, SourceError> {
        let get = |path: &'static str| async move {
            self.cluster
                .request_json(Method::Get, path, &[("allow_no_match", "true")], None)
                .await
        };
        let jobs = get("/_ml/anomaly_detectors/_stats").await?;
        let feeds = get("/_ml/datafeeds").await?;
        let feed_stats = get("/_ml/datafeeds/_stats").await?;
        let list = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).cloned();
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let job_state: HashMap<String, String> = list(&jobs, "jobs")
            .unwrap_or_default()
            .iter()
            .filter_map(|j| Some((text(j, "job_id")?, text(j, "state")?)))
            .collect();
        let feed_state: HashMap<String, String> = list(&feed_stats, "datafeeds")
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Some((text(f, "datafeed_id")?, text(f, "state")?)))
            .collect();
        let job_feed: HashMap<String, String> = list(&feeds, "datafeeds")
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Some((text(f, "job_id")?, text(f, "datafeed_id")?)))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let Some(state) = job_state.get(id) else {
                out.push(format!("ML job \"{id}\" does not exist"));
                continue;
            };
            let feed = job_feed
                .get(id)
                .and_then(|f| feed_state.get(f))
                .map_or("none", String::as_str);
            if state != "opened" || feed != "started" {
                out.push(format!(
                    "ML job \"{id}\" is not started: job status \"{state}\", datafeed status \"{feed}\""
                ));
            }
        }
        Ok(out)
    }
}
