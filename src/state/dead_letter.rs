//! Dead letters: alerts the cluster refused as invalid documents (a 400 for
//! their shape), kept with the refusal so that no alert is ever dropped.
//!
//! A run that gets such a refusal stores the alert here, counts and reports
//! it, and commits its window: retrying the same document would be refused
//! again and would stall the rule. Once the cause is fixed (a mapping
//! changed, a field removed), `detectd dead-letters replay` writes them
//! again with the same ids and removes those written; a duplicate (409)
//! counts as written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One refused alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The alert's deterministic `_id` (also the dead letter's id: storing
    /// the same alert again replaces it).
    pub alert_id: String,
    /// The alias the alert was written to.
    pub index: String,
    pub rule_id: String,
    pub execution_id: String,
    /// When the cluster last refused it.
    pub refused_at: DateTime<Utc>,
    /// HTTP status of the refusal.
    pub status: u16,
    /// `error.type: error.reason` as the cluster gave it.
    pub reason: String,
    /// How many times it was refused (1 when first stored).
    pub attempts: u32,
    /// The alert document as it was sent.
    pub alert: Value,
}
