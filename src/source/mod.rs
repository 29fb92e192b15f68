//! Where events come from: NDJSON files for offline runs (and, with the
//! cluster I/O work, Elasticsearch / OpenSearch).

pub mod files;
