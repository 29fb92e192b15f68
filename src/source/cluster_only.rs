//! What only an Elasticsearch cluster can answer, as a source hands it to
//! a detector: the rows of an ES|QL query and the anomaly records of
//! machine-learning jobs. Sources without them (files, memory) answer
//! [`super::SourceError::Unsupported`] with what the rule needs.

use serde_json::{Map, Value};

use super::Document;

/// The result of an ES|QL query: one object per row, column name → value,
/// `null` columns left out (Kibana's `rowToDocument` skips them: ES|QL
/// returns a null for every mapped field a row lacks).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EsqlRows {
    pub rows: Vec<Map<String, Value>>,
    /// Index patterns of the query that match no index.
    pub warnings: Vec<String>,
}

/// One machine-learning rule's search of anomaly records.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyRequest {
    pub job_ids: Vec<String>,
    pub threshold: u32,
    /// Epoch milliseconds, both inclusive (Kibana's `buildAnomalyQuery`).
    pub earliest_ms: i64,
    pub latest_ms: i64,
    /// At most this many records, highest score first.
    pub size: usize,
    /// The rule's filters and NOT its exceptions, as one query DSL clause
    /// (Kibana puts the exceptions in `must_not`: the same records).
    pub constraint: Option<Value>,
}

/// What an anomaly search found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Anomalies {
    /// The records (index, id and `_source`), highest score first.
    pub records: Vec<Document>,
    /// How many records matched in all (more than `records` when capped).
    pub total: u64,
    /// Jobs that are missing or not running, one line each.
    pub job_warnings: Vec<String>,
}
