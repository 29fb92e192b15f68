//! The notification outbox: messages a rule run decided to send, kept in
//! the state store so that a crash or a restart loses none of them (the
//! transactional outbox of STYLE.md "Delivery you can reason about").
//!
//! A run adds its messages before it writes the alerts they announce, with
//! ids made from the route and the alert group (so a window searched again
//! adds the same ids, which are kept as they are); the delivery worker of
//! `notify::deliver` sends a message only once the rule's checkpoint covers
//! its window, and records each attempt here. Throttle marks (when a route
//! last let a message of a group key through) live beside the messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for its window's checkpoint, or for the next attempt.
    Pending,
    /// The output acknowledged it (`sent_at`).
    Sent,
    /// Not delivered within the output's give-up time (`last_error` says why).
    GivenUp,
    /// Kept out by the route's throttle; stored so that a window searched
    /// again decides the same way.
    Throttled,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::GivenUp => "given_up",
            OutboxStatus::Throttled => "throttled",
        }
    }
}

/// One message for one output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `<key>@<output>`: one entry per output, so an output that is down
    /// holds up its own messages only.
    pub id: String,
    /// The idempotency key every attempt carries: `<route>/<alert group
    /// id>` (or `<route>/<rule id>/<window end>` for a summary).
    pub key: String,
    pub route: String,
    pub output: String,
    pub rule_id: String,
    /// End of the window whose alerts the message announces: it is sent
    /// once the rule's checkpoint reaches it (the alerts are written).
    pub window_end: DateTime<Utc>,
    /// When the run added it (the run's clock).
    pub created_at: DateTime<Utc>,
    pub status: OutboxStatus,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time (backoff after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// The last failure, without secrets (no URLs, no header values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the templates render, as JSON text (text, not an object, so
    /// the cluster backend never maps alert fields of many rules into one
    /// index).
    pub message: String,
    /// An alert about detectd itself (`notify::incident`): deliverable at
    /// once (there is no window to wait for) and never announced as given
    /// up, so a broken output cannot feed on its own failures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub about_detectd: bool,
}

impl OutboxEntry {
    /// The id of the entry of `key` for `output`.
    pub fn id_for(key: &str, output: &str) -> String {
        format!("{key}@{output}")
    }
}

/// When a route last let a message of one throttle key through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleMark {
    /// `<route>/<group key>`.
    pub key: String,
    pub at: DateTime<Utc>,
}

/// How long settled outbox entries (sent, given up, throttled) are kept:
/// far longer than any window is searched again, so a window retried after
/// a crash still finds its entries and adds no second message. The delivery
/// worker prunes older ones ([`super::StateStore::outbox_prune`]).
pub const OUTBOX_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

impl OutboxEntry {
    /// Settled (no longer pending) and created before `before`: prunable.
    pub fn settled_before(&self, before: DateTime<Utc>) -> bool {
        self.status != OutboxStatus::Pending && self.created_at < before
    }
}

/// Pending entries in the order they are delivered: oldest first, then by id.
pub(crate) fn sort_entries(entries: &mut [OutboxEntry]) {
    entries.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
}
