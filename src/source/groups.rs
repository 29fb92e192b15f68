//! Counting a window's events per group of field values at the source
//! (threshold rules): what is asked and what comes back. A source that
//! cannot aggregate answers `None` and the detector counts the events it
//! fetches instead, with the same meaning (`runner::detect::threshold`).

use serde_json::Value;

/// A count of a window's events per group of values of `fields` (no
/// field: one group of every event).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupCount {
    pub fields: Vec<String>,
    /// The count a group must reach (`>=`); groups below are not returned.
    pub min_count: u64,
    /// A field whose distinct values a group must reach (`>=`).
    pub cardinality: Option<(String, u64)>,
    /// Groups whose events at or before a time are already counted (by an
    /// earlier alert): those events are left out.
    pub exclude: Vec<Excluded>,
}

/// A group's events up to `last` (epoch ms), left out of the count.
#[derive(Clone, Debug, PartialEq)]
pub struct Excluded {
    pub terms: Vec<(String, Value)>,
    pub last: i64,
}

/// One group that reached the count.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The group's value of each field, in the order asked.
    pub terms: Vec<(String, Value)>,
    pub count: u64,
    /// Epoch ms of its earliest and latest event (`None`: no readable time).
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    /// Distinct values of the cardinality field, when one was asked.
    pub distinct: Option<u64>,
}

/// The groups of a window, with the source's warnings (missing indices).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Groups {
    pub groups: Vec<Group>,
    pub warnings: Vec<String>,
}
