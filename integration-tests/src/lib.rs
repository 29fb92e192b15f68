//! Integration tests that talk to a live cluster at `ELASTICSEARCH_URL`.
//!
//! The cluster I/O issue fills this crate; for now it only holds the shared
//! helper that decides whether a live cluster is configured.

/// The cluster URL the integration tests run against, if one is configured.
pub fn cluster_url() -> Option<String> {
    std::env::var("ELASTICSEARCH_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}
