//! KQL (placeholder while the filter module builds).
