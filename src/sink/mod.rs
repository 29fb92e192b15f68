//! Where alerts go: Elasticsearch / OpenSearch through `_bulk` `create`,
//! into Kibana's alerts alias (`alerts_index` finds or creates its layout);
//! NDJSON printed for `detectd hunt` (`ndjson`), memory for tests and
//! `detectd test`.
//!
//! [`AlertSink`] is the seam a rule run writes through; the report says, per
//! alert id, whether it was created, already existed (a duplicate from an
//! overlapping window, not an error) or failed, and why. Because alert ids
//! are deterministic, writing the same alert again is always safe, so a
//! failed alert can simply be written again by the next run.

pub mod alerts_index;
pub mod elasticsearch;
pub mod memory;
pub mod ndjson;
mod suppression;

use std::collections::HashSet;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::alert::Alert;

/// An alert that later matches of its suppression group may extend
/// (`kibana.alert.instance.id`), as the alerts index holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAlert {
    pub id: String,
    /// The index it lives in (an update names it: the alias may have
    /// rolled over since).
    pub index: String,
    pub instance_id: String,
    /// `kibana.alert.suppression.end`.
    pub end: DateTime<Utc>,
    /// `kibana.alert.suppression.docs_count`.
    pub docs_count: u64,
}

/// A partial update of one alert (`_bulk` `update` with `doc`).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertUpdate {
    pub id: String,
    pub index: String,
    pub doc: Value,
}

/// One alert that could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFailure {
    pub index: String,
    pub id: String,
    /// HTTP status of the item (or of the whole request); 0 when no
    /// response was readable.
    pub status: u16,
    /// `error.type: error.reason` as the server gave it, or what went wrong.
    pub reason: String,
}

impl ItemFailure {
    /// The cluster refused the document itself (400: e.g. a field whose
    /// type clashes with the index mapping). Unlike 429, 5xx, 403 or 404,
    /// writing the same alert again can never succeed.
    pub fn is_invalid_document(&self) -> bool {
        self.status == 400
    }
}

impl std::fmt::Display for ItemFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alert {} in {}: status {}: {}",
            self.id, self.index, self.status, self.reason
        )
    }
}

/// The outcome of one write: every alert id given is in exactly one list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub created: Vec<String>,
    pub duplicates: Vec<String>,
    pub failed: Vec<ItemFailure>,
    /// Retries that were needed (requests and items), for telemetry.
    pub retries: u32,
}

impl WriteReport {
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("invalid alerts index `{0}`: expected a non-empty name without `,` or `*`")]
    BadIndex(String),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    AlertsIndex(#[from] alerts_index::AlertsIndexError),
}

/// Where a rule run writes its alerts.
pub trait AlertSink: Send + Sync {
    /// Makes sure alerts can be written to `index` before a run searches
    /// anything (the alias exists, or was created, or the run should not
    /// start: e.g. waiting for Kibana to create it). A sink with nothing to
    /// prepare answers Ok.
    fn prepare(&self, index: &str) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = index;
        async { Ok(()) }
    }

    /// Creates each alert under its id in `index`; existing ids are reported
    /// as duplicates and left unchanged.
    fn write(
        &self,
        index: &str,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<WriteReport, SinkError>> + Send;

    /// Which of `ids` already exist in `index`, so a run can drop them
    /// before capping (only new alerts count against `max_signals`). A sink
    /// that cannot tell answers none: duplicates then come back from
    /// [`AlertSink::write`] instead, but count against the cap.
    fn existing_ids(
        &self,
        index: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<HashSet<String>, SinkError>> + Send {
        let _ = (index, ids);
        async { Ok(HashSet::new()) }
    }

    /// The newest alert of each of `instance_ids` in `index` that is not
    /// closed and started at or after `since` (Kibana's suppression search
    /// in `create_persistence_rule_type_wrapper.ts`). A sink that keeps no
    /// alerts answers none.
    fn open_alerts(
        &self,
        index: &str,
        instance_ids: &[String],
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<OpenAlert>, SinkError>> + Send {
        let _ = (index, instance_ids, since);
        async { Ok(Vec::new()) }
    }

    /// Applies `updates` (each alert's id is in `created` when it was
    /// updated, `failed` otherwise).
    fn update(
        &self,
        updates: &[AlertUpdate],
    ) -> impl Future<Output = Result<WriteReport, SinkError>> + Send {
        let failed = updates
            .iter()
            .map(|u| ItemFailure {
                index: u.index.clone(),
                id: u.id.clone(),
                status: 0,
                reason: "this sink cannot update alerts".to_string(),
            })
            .collect();
        async move {
            Ok(WriteReport {
                failed,
                ..WriteReport::default()
            })
        }
    }
}
