//! Alerts kept in memory, for tests of whole rule runs and for offline
//! runs that print what they found. Behaves like the cluster sink: an id
//! already present is a duplicate and is left unchanged.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use super::{AlertSink, SinkError, WriteReport};
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
}
