//! Alerts to Elasticsearch / OpenSearch with `_bulk` `create`, and the index
//! templates of detectd's own indices.
//!
//! Each alert is one `create` with its deterministic `_id`: a per-item 409
//! is a duplicate. Requests are chunked by size (and split further when the
//! server answers 413, request too large). A whole request refused
//! with 429 / 5xx, a transport error (timeout, connection reset) and
//! per-item 429 / 5xx are retried, only for the affected alerts, with
//! exponential backoff and jitter up to the policy's limit; anything else is
//! reported per item with index, id and reason. An unreadable response (a
//! proxy's HTML page) fails the chunk's alerts with a reason that shows the
//! body: some of them may have been written, and writing them again later
//! is safe because `create` with the same id only ever makes duplicates.

use std::collections::HashSet;

use elasticsearch::http::Method;
use serde_json::{json, Value};

use super::{AlertSink, ItemFailure, SinkError, WriteReport};
use crate::alert::Alert;
use crate::cluster::{is_retryable_status, snippet, Cluster, ClusterError, RetryPolicy};

/// Bulk writer settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkSettings {
    /// Upper bound of one request body; an alert larger than this goes
    /// alone.
    pub max_request_bytes: usize,
    pub retry: RetryPolicy,
    /// `refresh` parameter of the bulk request (`None`: the server default;
    /// tests use `wait_for`).
    pub refresh: Option<String>,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            max_request_bytes: 5 * 1024 * 1024,
            retry: RetryPolicy::default(),
            refresh: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ElasticsearchSink {
    cluster: Cluster,
    settings: BulkSettings,
}

/// Why an alert is waiting for another attempt.
struct Pending {
    pos: usize,
    status: u16,
    reason: String,
}

enum ItemResult {
    Created,
    Duplicate,
    Retry { status: u16, reason: String },
    Failed(ItemFailure),
}

impl ElasticsearchSink {
    pub fn new(cluster: Cluster, settings: BulkSettings) -> ElasticsearchSink {
        ElasticsearchSink { cluster, settings }
    }

    /// Sends one chunk and classifies each of its alerts.
    async fn send_chunk(
        &self,
        index: &str,
        alerts: &[Alert],
        lines: &[Vec<u8>],
        chunk: &[usize],
    ) -> Vec<(usize, ItemResult)> {
        let mut body = Vec::with_capacity(chunk.iter().map(|&i| lines[i].len()).sum());
        for &i in chunk {
            body.extend_from_slice(&lines[i]);
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(r) = &self.settings.refresh {
            query.push(("refresh", r));
        }
        let whole = |status: u16, reason: String, retry: bool| {
            chunk
                .iter()
                .map(|&i| {
                    let r = if retry {
                        ItemResult::Retry {
                            status,
                            reason: reason.clone(),
                        }
                    } else {
                        ItemResult::Failed(ItemFailure {
                            index: index.to_string(),
                            id: alerts[i].id.clone(),
                            status,
                            reason: reason.clone(),
                        })
                    };
                    (i, r)
                })
                .collect::<Vec<_>>()
        };
        let raw = match self
            .cluster
            .send_raw(
                Method::Post,
                "/_bulk",
                &query,
                Some(body),
                Some("application/x-ndjson"),
            )
            .await
        {
            Ok(raw) => raw,
            Err(e @ ClusterError::Transport { .. }) => return whole(0, e.to_string(), true),
            Err(e) => return whole(0, e.to_string(), false),
        };
        if !(200..300).contains(&raw.status) {
            let reason = crate::cluster::check_json(Method::Post, "/_bulk", &raw)
                .err()
                .map_or_else(|| "request refused".to_string(), |e| e.to_string());
            // 413: the server's `http.max_content_length` is below our chunk
            // size; a chunk of several alerts is retried split in halves.
            let retry = is_retryable_status(raw.status) || (raw.status == 413 && chunk.len() > 1);
            return whole(raw.status, reason, retry);
        }
        let parsed: Option<Value> = serde_json::from_slice(&raw.body).ok();
        let items = parsed
            .as_ref()
            .and_then(|v| v.get("items"))
            .and_then(Value::as_array);
        let Some(items) = items.filter(|items| items.len() == chunk.len()) else {
            let reason = match items {
                Some(items) => format!(
                    "POST /_bulk: unexpected response: expected {} items, found {}",
                    chunk.len(),
                    items.len()
                ),
                None => format!(
                    "POST /_bulk: unexpected response: expected json with `items`, found {}",
                    snippet(&raw.body)
                ),
            };
            return whole(raw.status, reason, false);
        };
        let mut out = Vec::with_capacity(chunk.len());
        for (&pos, item) in chunk.iter().zip(items) {
            out.push((pos, classify(index, &alerts[pos].id, item)));
        }
        out
    }
}

/// One bulk item (`{"create": {...}}`) to a result.
fn classify(index: &str, id: &str, item: &Value) -> ItemResult {
    let op = item
        .get("create")
        .or_else(|| item.as_object().and_then(|m| m.values().next()));
    // An HTTP status as a number: a string, a float or 65737 (which `as
    // u16` would have turned into 201, "created") is not an answer.
    let status = op
        .and_then(|op| op.get("status"))
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s));
    let (Some(op), Some(status)) = (op, status) else {
        return ItemResult::Failed(ItemFailure {
            index: index.to_string(),
            id: id.to_string(),
            status: 0,
            reason: format!(
                "POST /_bulk: unexpected item: expected `create` with a `status`, found {}",
                snippet(item.to_string().as_bytes())
            ),
        });
    };
    let item_index = op
        .get("_index")
        .and_then(Value::as_str)
        .unwrap_or(index)
        .to_string();
    let reason = || match op.get("error") {
        Some(Value::Object(e)) => format!(
            "{}: {}",
            e.get("type").and_then(Value::as_str).unwrap_or("error"),
            e.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
        ),
        Some(other) => other.to_string(),
        None => "no error given".to_string(),
    };
    match status {
        200..=299 => ItemResult::Created,
        409 => ItemResult::Duplicate,
        s if is_retryable_status(s) => ItemResult::Retry {
            status: s,
            reason: reason(),
        },
        s => ItemResult::Failed(ItemFailure {
            index: item_index,
            id: id.to_string(),
            status: s,
            reason: reason(),
        }),
    }
}

/// The NDJSON action + document lines of one alert.
fn bulk_lines(index: &str, alert: &Alert) -> Vec<u8> {
    let mut out = serde_json::to_vec(&json!({ "create": { "_index": index, "_id": alert.id } }))
        .unwrap_or_default();
    out.push(b'\n');
    out.extend(serde_json::to_vec(&alert.source).unwrap_or_default());
    out.push(b'\n');
    out
}

/// Groups positions into chunks of at most `max` bytes (an oversized alert
/// forms its own chunk).
fn chunks(positions: &[usize], lines: &[Vec<u8>], max: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for &p in positions {
        let len = lines[p].len();
        match out.last_mut() {
            Some(cur) if !cur.is_empty() && size + len <= max => {
                cur.push(p);
                size += len;
            }
            _ => {
                out.push(vec![p]);
                size = len;
            }
        }
    }
    out
}

impl AlertSink for ElasticsearchSink {
    async fn write(&self, index: &str, alerts: &[Alert]) -> Result<WriteReport, SinkError> {
        if index.is_empty() || index.contains([',', '*', ' ']) {
            return Err(SinkError::BadIndex(index.to_string()));
        }
        let lines: Vec<Vec<u8>> = alerts.iter().map(|a| bulk_lines(index, a)).collect();
        let mut report = WriteReport::default();
        let mut todo: Vec<usize> = (0..alerts.len()).collect();
        let mut attempt = 0u32;
        let mut max_bytes = self.settings.max_request_bytes;
        loop {
            let mut again: Vec<Pending> = Vec::new();
            // Size of the smallest chunk refused with 413 in this round.
            let mut too_large: Option<usize> = None;
            for chunk in chunks(&todo, &lines, max_bytes) {
                let results = self.send_chunk(index, alerts, &lines, &chunk).await;
                tracing::debug!(
                    index,
                    alerts = chunk.len(),
                    bytes = chunk.iter().map(|&i| lines[i].len()).sum::<usize>(),
                    "bulk request done"
                );
                if results
                    .iter()
                    .any(|(_, r)| matches!(r, ItemResult::Retry { status: 413, .. }))
                {
                    let size: usize = chunk.iter().map(|&i| lines[i].len()).sum();
                    too_large = Some(too_large.map_or(size, |s| s.min(size)));
                }
                for (pos, result) in results {
                    match result {
                        ItemResult::Created => report.created.push(alerts[pos].id.clone()),
                        ItemResult::Duplicate => report.duplicates.push(alerts[pos].id.clone()),
                        ItemResult::Failed(f) => report.failed.push(f),
                        ItemResult::Retry { status, reason } => again.push(Pending {
                            pos,
                            status,
                            reason,
                        }),
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            if attempt >= self.settings.retry.max_retries {
                for p in again {
                    report.failed.push(ItemFailure {
                        index: index.to_string(),
                        id: alerts[p.pos].id.clone(),
                        status: p.status,
                        reason: format!("{} (gave up after {attempt} retries)", p.reason),
                    });
                }
                break;
            }
            if let Some(size) = too_large {
                let largest = again.iter().map(|p| lines[p.pos].len()).max().unwrap_or(1);
                // Half of what was refused, but at least one alert per request.
                max_bytes = (size / 2).max(largest);
            }
            attempt += 1;
            report.retries += again.len() as u32;
            tokio::time::sleep(self.settings.retry.backoff(attempt)).await;
            todo = again.into_iter().map(|p| p.pos).collect();
        }
        Ok(report)
    }

    /// An `ids` search (Kibana's `filterDuplicateAlerts` does the same), so
    /// it works on a rolled-over alias too. Searches see refreshed data
    /// only: write with `refresh` set (Kibana uses `true`) so the next run
    /// sees this run's alerts.
    async fn existing_ids(
        &self,
        index: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, SinkError> {
        if index.is_empty() || index.contains([',', '*', ' ']) {
            return Err(SinkError::BadIndex(index.to_string()));
        }
        let path = format!("/{}/_search", crate::cluster::encode_path_part(index));
        let mut found = HashSet::new();
        for chunk in ids.chunks(EXISTING_IDS_CHUNK) {
            let body = json!({
                "query": { "ids": { "values": chunk } },
                "_source": false,
                "size": chunk.len(),
            });
            let response = match self
                .cluster
                .request_json(
                    Method::Post,
                    &path,
                    &[("ignore_unavailable", "true"), ("allow_no_indices", "true")],
                    Some(&body),
                )
                .await
            {
                Ok(r) => r,
                // No alerts index yet: nothing exists.
                Err(ClusterError::Status { status: 404, .. }) => return Ok(found),
                Err(e) => return Err(e.into()),
            };
            let hits = response
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    SinkError::Cluster(ClusterError::BadResponse {
                        method: "POST",
                        path: path.clone(),
                        reason: format!(
                            "expected `hits.hits`, found {}",
                            snippet(response.to_string().as_bytes())
                        ),
                    })
                })?;
            for hit in hits {
                if let Some(id) = hit.get("_id").and_then(Value::as_str) {
                    found.insert(id.to_string());
                }
            }
        }
        Ok(found)
    }
}

/// Ids per `ids` query: well under `index.max_result_window`.
const EXISTING_IDS_CHUNK: usize = 1_000;

/// Names of detectd's own indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexNames {
    /// Where alerts go (Kibana's alias by default, so the Security app shows
    /// them).
    pub alerts: String,
    /// Per-rule checkpoints.
    pub state: String,
    /// One document per rule run.
    pub executions: String,
}

impl Default for IndexNames {
    fn default() -> Self {
        IndexNames {
            alerts: ".alerts-security.alerts-default".to_string(),
            state: "detectd-state".to_string(),
            executions: "detectd-executions".to_string(),
        }
    }
}

/// What [`install_templates`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateReport {
    /// Templates written (or rewritten with the same content).
    pub templates: Vec<String>,
    /// Whether the alerts template was skipped because the alerts index (or
    /// alias, e.g. Kibana's) already exists.
    pub alerts_index_existed: bool,
}

/// Version stamped in `_meta` of every template detectd installs.
pub const TEMPLATE_VERSION: u64 = 1;

/// Installs the index templates of detectd's indices. Safe to call at every
/// start-up: a template PUT with the same body changes nothing. The alerts
/// template is installed only when the alerts index does not exist, so an
/// installation managed by Kibana keeps its own mapping.
pub async fn install_templates(
    cluster: &Cluster,
    names: &IndexNames,
) -> Result<TemplateReport, ClusterError> {
    let mut report = TemplateReport::default();
    let keyword_strings = json!([{ "strings_as_keywords": {
        "match_mapping_type": "string",
        "mapping": { "type": "keyword", "ignore_above": 1024 }
    } }]);
    let meta = json!({ "managed_by": "detectd", "version": TEMPLATE_VERSION });
    let state = json!({
        "index_patterns": [names.state],
        "priority": 200,
        "_meta": meta,
        "template": {
            "settings": { "number_of_shards": 1, "auto_expand_replicas": "0-1" },
            "mappings": {
                "dynamic_templates": keyword_strings,
                "properties": {
                    "rule_id": { "type": "keyword" },
                    "checkpoint": { "type": "date" },
                    "tiebreaker": { "type": "keyword" },
                    "updated_at": { "type": "date" },
                    "pending": { "type": "object", "enabled": false }
                }
            }
        }
    });
    let executions = json!({
        "index_patterns": [format!("{}*", names.executions)],
        "priority": 200,
        "_meta": meta,
        "template": {
            "settings": { "number_of_shards": 1, "auto_expand_replicas": "0-1" },
            "mappings": {
                "dynamic_templates": keyword_strings,
                "properties": {
                    "@timestamp": { "type": "date" },
                    "rule_id": { "type": "keyword" },
                    "status": { "type": "keyword" },
                    "window": { "properties": {
                        "from": { "type": "date" }, "to": { "type": "date" } } },
                    "events_fetched": { "type": "long" },
                    "events_skipped": { "type": "long" },
                    "alerts": { "properties": {
                        "created": { "type": "long" },
                        "duplicate": { "type": "long" },
                        "capped": { "type": "long" },
                        "failed": { "type": "long" } } },
                    "search_duration_ms": { "type": "long" },
                    "index_duration_ms": { "type": "long" },
                    "warnings": { "type": "keyword" },
                    "gap": { "properties": {
                        "from": { "type": "date" }, "to": { "type": "date" } } }
                }
            }
        }
    });
    let mut templates = vec![
        (format!("{}-template", names.state), state),
        (format!("{}-template", names.executions), executions),
    ];
    let alerts_path = format!("/{}", crate::cluster::encode_path_part(&names.alerts));
    let retry = cluster.retry_policy().clone();
    let mut attempt = 0;
    let existing = loop {
        let raw = cluster
            .send_raw(Method::Head, &alerts_path, &[], None, None)
            .await;
        let busy = match &raw {
            Ok(r) => is_retryable_status(r.status),
            Err(e) => e.is_retryable(),
        };
        if busy && attempt < retry.max_retries {
            attempt += 1;
            tokio::time::sleep(retry.backoff(attempt)).await;
            continue;
        }
        break raw?;
    };
    // 200 exists, 404 does not; anything else (a 502 from a proxy) says
    // neither, and guessing "absent" would put our template under
    // Kibana's index.
    report.alerts_index_existed = match existing.status {
        200 => true,
        404 => false,
        status => {
            return Err(ClusterError::Status {
                method: "HEAD",
                path: alerts_path,
                status,
                reason: "expected 200 (the alerts index exists) or 404 (it does not)".into(),
            })
        }
    };
    if !report.alerts_index_existed {
        let alerts = json!({
            "index_patterns": [format!("{}*", names.alerts)],
            // Below Kibana's own templates, which should win where installed.
            "priority": 50,
            "_meta": meta,
            "template": {
                "mappings": {
                    "dynamic_templates": keyword_strings,
                    "properties": {
                        "@timestamp": { "type": "date" },
                        "kibana": { "properties": {
                            "alert": { "properties": {
                                "uuid": { "type": "keyword" },
                                "status": { "type": "keyword" },
                                "workflow_status": { "type": "keyword" },
                                "original_time": { "type": "date" },
                                "reason": { "type": "keyword", "ignore_above": 8192 },
                                "risk_score": { "type": "float" },
                                "severity": { "type": "keyword" },
                                "building_block_type": { "type": "keyword" },
                                "group": { "properties": {
                                    "id": { "type": "keyword" },
                                    "index": { "type": "integer" } } },
                                "rule": { "properties": {
                                    "uuid": { "type": "keyword" },
                                    "rule_id": { "type": "keyword" },
                                    "name": { "type": "keyword" },
                                    "parameters": { "type": "object", "enabled": false } } }
                            } }
                        } }
                    }
                }
            }
        });
        templates.push((
            format!("{}-template", names.alerts.trim_start_matches('.')),
            alerts,
        ));
    }
    for (name, body) in templates {
        let path = format!(
            "/_index_template/{}",
            crate::cluster::encode_path_part(&name)
        );
        let response = cluster
            .request_json(Method::Put, &path, &[], Some(&body))
            .await?;
        // A template the server did not acknowledge is not installed.
        if response.get("acknowledged").and_then(Value::as_bool) != Some(true) {
            return Err(ClusterError::BadResponse {
                method: "PUT",
                path,
                reason: format!(
                    "expected `acknowledged: true`, found {}",
                    snippet(response.to_string().as_bytes())
                ),
            });
        }
        report.templates.push(name);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, size: usize) -> Alert {
        Alert {
            id: id.to_string(),
            source: json!({ "pad": "x".repeat(size) }),
        }
    }

    #[test]
    fn chunks_respect_the_byte_limit() {
        let alerts: Vec<Alert> = (0..10).map(|i| alert(&format!("a{i}"), 100)).collect();
        let lines: Vec<Vec<u8>> = alerts.iter().map(|a| bulk_lines("idx", a)).collect();
        let one = lines[0].len();
        let positions: Vec<usize> = (0..10).collect();
        let got = chunks(&positions, &lines, one * 3);
        assert_eq!(got.len(), 4);
        assert!(got
            .iter()
            .all(|c| c.iter().map(|&i| lines[i].len()).sum::<usize>() <= one * 3));
        assert_eq!(got.concat(), positions);
        // An alert larger than the limit goes alone.
        let got = chunks(&positions, &lines, 10);
        assert_eq!(got.len(), 10);
    }

    #[test]
    fn bulk_lines_are_create_actions_with_ids() {
        let text = String::from_utf8(bulk_lines("alerts", &alert("abc", 1))).unwrap();
        let mut it = text.lines();
        let action: Value = serde_json::from_str(it.next().unwrap()).unwrap();
        assert_eq!(action, json!({"create":{"_index":"alerts","_id":"abc"}}));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn items_are_classified() {
        let c = |v: Value| classify("i", "x", &v);
        assert!(matches!(
            c(json!({"create":{"status":201}})),
            ItemResult::Created
        ));
        assert!(matches!(
            c(json!({"create":{"status":409}})),
            ItemResult::Duplicate
        ));
        assert!(matches!(
            c(json!({"create":{"status":429}})),
            ItemResult::Retry { status: 429, .. }
        ));
        assert!(matches!(
            c(json!({"create":{"status":503}})),
            ItemResult::Retry { .. }
        ));
        match c(
            json!({"create":{"_index":"real-1","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse"}}}),
        ) {
            ItemResult::Failed(f) => {
                assert_eq!(f.index, "real-1");
                assert_eq!(f.reason, "mapper_parsing_exception: failed to parse");
            }
            _ => panic!("expected a failure"),
        }
        assert!(matches!(c(json!("garbage")), ItemResult::Failed(_)));
    }
}
