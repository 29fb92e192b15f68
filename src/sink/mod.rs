//! Where alerts go: Elasticsearch / OpenSearch through `_bulk` (NDJSON
//! files come with the offline commands).

pub mod elasticsearch;
