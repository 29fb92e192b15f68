//! Alerts kept in memory, for tests of whole rule runs and for offline
//! runs that print what they found. Behaves like the cluster sink: an id
//! already present is a duplicate and is left unchanged.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use chrono::{DateTime, Utc};

use super::{AlertSink, AlertUpdate, OpenAlert, SinkError, WriteReport};
use crate::alert::Alert;

#[derive(Debug, Default)]
pub struct MemorySink {
    /// index -> id -> body, in id order.
    indices: Mutex<BTreeMap<String, BTreeMap<String, Value>>>,
}

impl MemorySink {
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    /// The alerts of `index` by id.
    pub fn alerts(&self, index: &str) -> BTreeMap<String, Value> {
        self.indices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .cloned()
            .unwrap_or_default()
    }
}

impl AlertSink for MemorySink {
    async fn write(&self, index: &str, alerts: &[Alert]) -> Result<WriteReport, SinkError> {
        if index.is_empty() || index.contains([',', '*', ' ']) {
            return Err(SinkError::BadIndex(index.to_string()));
        }
        let mut all = self.indices.lock().unwrap_or_else(PoisonError::into_inner);
        let docs = all.entry(index.to_string()).or_default();
        let mut report = WriteReport::default();
        for a in alerts {
            if docs.contains_key(&a.id) {
                report.duplicates.push(a.id.clone());
            } else {
                docs.insert(a.id.clone(), a.source.clone());
                report.created.push(a.id.clone());
            }
        }
        Ok(report)
    }

    async fn existing_ids(
        &self,
        index: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, SinkError> {
        let all = self.indices.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all.get(index).map_or_else(HashSet::new, |docs| {
            ids.iter()
                .filter(|id| docs.contains_key(*id))
                .cloned()
                .collect()
        }))
    }

    async fn open_alerts(
        &self,
        index: &str,
        instance_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<OpenAlert>, SinkError> {
        let all = self.indices.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(docs) = all.get(index) else {
            return Ok(Vec::new());
        };
        let mut newest: BTreeMap<String, (String, OpenAlert)> = BTreeMap::new();
        for (id, doc) in docs {
            let Some(instance) = doc["kibana.alert.instance.id"].as_str() else {
                continue;
            };
            let start = doc["kibana.alert.start"].as_str().unwrap_or_default();
            let date = |v: &Value| {
                v.as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            if !instance_ids.iter().any(|i| i == instance)
                || doc["kibana.alert.workflow_status"] == "closed"
                || date(&doc["kibana.alert.start"]).is_none_or(|t| t < since)
            {
                continue;
            }
            let open = OpenAlert {
                id: id.clone(),
                index: index.to_string(),
                instance_id: instance.to_string(),
                end: date(&doc["kibana.alert.suppression.end"]).unwrap_or(since),
                docs_count: doc["kibana.alert.suppression.docs_count"]
                    .as_u64()
                    .unwrap_or(0),
            };
            match newest.get(instance) {
                Some((s, _)) if s.as_str() >= start => {}
                _ => {
                    newest.insert(instance.to_string(), (start.to_string(), open));
                }
            }
        }
        Ok(newest.into_values().map(|(_, o)| o).collect())
    }

    async fn update(&self, updates: &[AlertUpdate]) -> Result<WriteReport, SinkError> {
        let mut all = self.indices.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = WriteReport::default();
        for u in updates {
            let doc = all.get_mut(&u.index).and_then(|docs| docs.get_mut(&u.id));
            match (doc, &u.doc) {
                (Some(Value::Object(doc)), Value::Object(changes)) => {
                    for (k, v) in changes {
                        doc.insert(k.clone(), v.clone());
                    }
                    report.created.push(u.id.clone());
                }
                _ => report.failed.push(super::ItemFailure {
                    index: u.index.clone(),
                    id: u.id.clone(),
                    status: 404,
                    reason: "document_missing_exception".into(),
                }),
            }
        }
        Ok(report)
    }
}
