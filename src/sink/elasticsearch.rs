//! Alerts to Elasticsearch / OpenSearch with `_bulk` `create`, and the index
//! templates of detectd's own indices.
//!
//! Each alert is one `create` with its deterministic `_id`: a per-item 409
//! is a duplicate. Every request carries `require_alias=true`, as Kibana's
//! (`rule_registry/server/rule_data_client/rule_data_client.ts`): the
//! target must be Kibana's alerts alias, never an index a write would
//! create. An item refused because the alias is missing has the alias
//! found or created (see `alerts_index`) and is sent once more. Requests are chunked by size (and split further when the
//! server answers 413, request too large). A whole request refused
//! with 429 / 5xx, a transport error (timeout, connection reset) and
//! per-item 429 / 5xx are retried, only for the affected alerts, with
//! exponential backoff and jitter up to the policy's limit; anything else is
//! reported per item with index, id and reason. An unreadable response (a
//! proxy's HTML page) fails the chunk's alerts with a reason that shows the
//! body: some of them may have been written, and writing them again later
//! is safe because `create` with the same id only ever makes duplicates.

use std::collections::HashSet;
use std::sync::Arc;

use elasticsearch::http::Method;
use serde_json::{json, Value};

use super::alerts_index::{AlertsIndex, BootstrapSpec};
use super::{AlertSink, AlertUpdate, ItemFailure, OpenAlert, SinkError, WriteReport};
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
    alerts: Arc<AlertsIndex>,
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
    Retry {
        status: u16,
        reason: String,
    },
    /// `require_alias` refused the item: the alias does not exist.
    AliasMissing {
        reason: String,
    },
    Failed(ItemFailure),
}

impl ElasticsearchSink {
    /// A writer into Kibana's alerts aliases; `alerts` says what to do
    /// when one is missing.
    pub fn new(
        cluster: Cluster,
        settings: BulkSettings,
        alerts: BootstrapSpec,
    ) -> ElasticsearchSink {
        ElasticsearchSink {
            cluster,
            settings,
            alerts: Arc::new(AlertsIndex::new(alerts)),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
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
        let mut query: Vec<(&str, &str)> = vec![("require_alias", "true")];
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
    let error_type = op.pointer("/error/type").and_then(Value::as_str);
    match status {
        200..=299 => ItemResult::Created,
        409 => ItemResult::Duplicate,
        404 if error_type == Some("index_not_found_exception") => {
            ItemResult::AliasMissing { reason: reason() }
        }
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
    async fn prepare(&self, index: &str) -> Result<(), SinkError> {
        Ok(self.alerts.prepare(&self.cluster, index).await?)
    }

    async fn write(&self, index: &str, alerts: &[Alert]) -> Result<WriteReport, SinkError> {
        if index.is_empty() || index.contains([',', '*', ' ']) {
            return Err(SinkError::BadIndex(index.to_string()));
        }
        let lines: Vec<Vec<u8>> = alerts.iter().map(|a| bulk_lines(index, a)).collect();
        let mut report = WriteReport::default();
        let mut todo: Vec<usize> = (0..alerts.len()).collect();
        let mut attempt = 0u32;
        let mut max_bytes = self.settings.max_request_bytes;
        // At most one look for a missing alias per write: if it is still
        // missing afterwards, something else is wrong.
        let mut looked_for_alias = false;
        loop {
            let mut again: Vec<Pending> = Vec::new();
            let mut missing: Vec<(usize, String)> = Vec::new();
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
                        ItemResult::AliasMissing { reason } => missing.push((pos, reason)),
                    }
                }
            }
            if !missing.is_empty() {
                // The alias went away (or never was): find or create it,
                // then send these again; if that is not possible (waiting
                // for Kibana, a squatting index) they fail with why, and
                // the run keeps its window.
                let found = if looked_for_alias {
                    Err(None)
                } else {
                    looked_for_alias = true;
                    self.alerts.forget(index);
                    self.alerts
                        .prepare(&self.cluster, index)
                        .await
                        .map_err(Some)
                };
                match found {
                    Ok(()) => again.extend(missing.into_iter().map(|(pos, reason)| Pending {
                        pos,
                        status: 404,
                        reason,
                    })),
                    Err(e) => {
                        for (pos, reason) in missing {
                            report.failed.push(ItemFailure {
                                index: index.to_string(),
                                id: alerts[pos].id.clone(),
                                status: 404,
                                reason: match &e {
                                    Some(e) => format!("{reason}: {e}"),
                                    None => reason,
                                },
                            });
                        }
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

    async fn open_alerts(
        &self,
        index: &str,
        instance_ids: &[String],
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<OpenAlert>, SinkError> {
        self.search_open_alerts(index, instance_ids, since).await
    }

    async fn update(&self, updates: &[AlertUpdate]) -> Result<WriteReport, SinkError> {
        self.bulk_update(updates).await
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
            for hit in search_hits(&response, &path)? {
                if let Some(id) = hit.get("_id").and_then(Value::as_str) {
                    found.insert(id.to_string());
                }
            }
        }
        Ok(found)
    }
}

/// The `hits.hits` of a search answer from `path`.
pub(super) fn search_hits<'a>(
    response: &'a Value,
    path: &str,
) -> Result<&'a Vec<Value>, SinkError> {
    response
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            SinkError::Cluster(ClusterError::BadResponse {
                method: "POST",
                path: path.to_string(),
                reason: format!(
                    "expected `hits.hits`, found {}",
                    snippet(response.to_string().as_bytes())
                ),
            })
        })
}

/// Ids per `ids` query: well under `index.max_result_window`.
const EXISTING_IDS_CHUNK: usize = 1_000;

/// Names of detectd's own indices (alerts go to Kibana's alias, not here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexNames {
    /// Per-rule checkpoints.
    pub state: String,
    /// One document per rule run.
    pub executions: String,
    /// Alerts the cluster refused, kept to be written again.
    pub dead_letters: String,
}

impl Default for IndexNames {
    fn default() -> Self {
        IndexNames {
            state: "detectd-state".to_string(),
            executions: "detectd-executions".to_string(),
            dead_letters: "detectd-dead-letters".to_string(),
        }
    }
}

impl IndexNames {
    /// The notification outbox: messages and throttle marks, next to the
    /// checkpoints (`state::cluster`).
    pub fn outbox(&self) -> String {
        format!("{}-outbox", self.state)
    }
}

/// What [`install_templates`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateReport {
    /// Templates written (or rewritten with the same content).
    pub templates: Vec<String>,
}

/// Version stamped in `_meta` of every template detectd installs.
pub const TEMPLATE_VERSION: u64 = 3;

/// Installs the index templates of detectd's own indices (state,
/// executions, dead letters). Safe to call at every start-up: a template PUT
/// with the same body changes nothing. No template of detectd's matches
/// Kibana's alerts alias or its backing indices (see `alerts_index`).
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
    // Every template: one shard, a replica where there is a node for it,
    // detectd's `_meta`; only the patterns and mappings differ.
    let template = |pattern: String, mappings: Value| {
        json!({
            "index_patterns": [pattern],
            "priority": 200,
            "_meta": meta,
            "template": {
                "settings": { "number_of_shards": 1, "auto_expand_replicas": "0-1" },
                "mappings": mappings
            }
        })
    };
    let state = template(
        names.state.clone(),
        json!({
            "dynamic_templates": keyword_strings,
            "properties": {
                "rule_id": { "type": "keyword" },
                "checkpoint": { "type": "date" },
                "tiebreaker": { "type": "keyword" },
                "updated_at": { "type": "date" },
                "pending": { "type": "object", "enabled": false },
                "threshold_history": { "type": "object", "enabled": false },
                "lease": { "properties": {
                    "owner": { "type": "keyword" },
                    "epoch": { "type": "long" },
                    "expires_at": { "type": "date" } } }
            }
        }),
    );
    let executions = template(
        format!("{}*", names.executions),
        json!({
            "dynamic_templates": keyword_strings,
            "properties": {
                "@timestamp": { "type": "date" },
                "rule_id": { "type": "keyword" },
                "instance_id": { "type": "keyword" },
                "status": { "type": "keyword" },
                "window": { "properties": {
                    "from": { "type": "date" }, "to": { "type": "date" } } },
                "events_fetched": { "type": "long" },
                "events_skipped": { "type": "long" },
                "alerts": { "properties": {
                    "created": { "type": "long" },
                    "duplicate": { "type": "long" },
                    "capped": { "type": "long" },
                    "failed": { "type": "long" },
                    "dead_lettered": { "type": "long" } } },
                "search_duration_ms": { "type": "long" },
                "index_duration_ms": { "type": "long" },
                "warnings": { "type": "keyword" },
                "gap": { "properties": {
                    "from": { "type": "date" }, "to": { "type": "date" } } }
            }
        }),
    );
    // The refused alert is kept as stored data only: it was refused for
    // its shape, so it must not be mapped again here.
    let dead_letters = template(
        names.dead_letters.clone(),
        json!({
            "dynamic": false,
            "properties": {
                "alert_id": { "type": "keyword" },
                "index": { "type": "keyword" },
                "rule_id": { "type": "keyword" },
                "execution_id": { "type": "keyword" },
                "refused_at": { "type": "date" },
                "status": { "type": "integer" },
                "reason": { "type": "text" },
                "attempts": { "type": "integer" },
                "alert": { "type": "object", "enabled": false }
            }
        }),
    );
    // Messages are stored as JSON text and never searched: not mapped.
    let outbox = template(
        names.outbox(),
        json!({
            "dynamic": false,
            "properties": {
                "id": { "type": "keyword" },
                "key": { "type": "keyword" },
                "route": { "type": "keyword" },
                "output": { "type": "keyword" },
                "rule_id": { "type": "keyword" },
                "window_end": { "type": "date" },
                "created_at": { "type": "date" },
                "status": { "type": "keyword" },
                "attempts": { "type": "integer" },
                "next_attempt_at": { "type": "date" },
                "sent_at": { "type": "date" },
                "last_error": { "type": "text" },
                "message": { "type": "object", "enabled": false },
                "about_detectd": { "type": "boolean" },
                "at": { "type": "date" }
            }
        }),
    );
    // Heartbeats and rule sets of the instances (`coord::membership`): a
    // rule set is stored, not mapped (a thousand rule ids would be a
    // thousand fields).
    let instances_index = format!("{}-instances", names.state);
    let instances = template(
        instances_index.clone(),
        json!({
            "dynamic_templates": keyword_strings,
            "properties": {
                "kind": { "type": "keyword" },
                "instance_id": { "type": "keyword" },
                "rules_hash": { "type": "keyword" },
                "last_seen": { "type": "date" },
                "started_at": { "type": "date" },
                "rules_loaded_at": { "type": "date" },
                "rules": { "type": "object", "enabled": false }
            }
        }),
    );
    let templates = vec![
        (format!("{}-template", names.state), state),
        (format!("{}-template", names.outbox()), outbox),
        (format!("{instances_index}-template"), instances),
        (format!("{}-template", names.executions), executions),
        (format!("{}-template", names.dead_letters), dead_letters),
    ];
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
        // require_alias: the alias is missing (osmem's and Elasticsearch's item).
        assert!(matches!(
            c(
                json!({"create":{"status":404,"error":{"type":"index_not_found_exception",
                "reason":"no such index [.alerts-security.alerts-x] and [require_alias] request flag is [true] and [.alerts-security.alerts-x] is not an alias"}}})
            ),
            ItemResult::AliasMissing { .. }
        ));
    }
}
