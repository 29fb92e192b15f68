//! The threshold history across windows (`Checkpoint::threshold_history`):
//! after a window, each alerted group remembers the time of the last event
//! its alert counted, and later windows count only the group's events
//! after it. With overlapping windows (`from = now-9m` every 5m) an event
//! is in two windows but in at most one alert of its group.
//!
//! A group the cap (`max_signals`) left out is not remembered: its events
//! can alert in the next window that still holds them. Entries older than
//! the window's start are dropped: no later window reads those events.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::alert::threshold::terms_hash;
use crate::alert::AlertRule;
use crate::runner::detect::Candidate;
use crate::state::ThresholdMark;

/// A threshold match as the history sees it.
pub(super) struct Mark {
    head: String,
    terms: String,
    last: i64,
}

/// The marks of a window's threshold matches (none for other kinds).
pub(super) fn marks(candidates: &[Candidate], rule: &AlertRule, space: &str) -> Vec<Mark> {
    candidates
        .iter()
        .filter_map(|c| c.threshold.as_deref())
        .map(|b| Mark {
            head: b.alert_id(rule, space),
            terms: terms_hash(&b.terms),
            last: b.max_ts,
        })
        .collect()
}

/// The history after a window starting at `start` whose alerted heads are
/// `alerted`.
pub(super) fn advance(
    history: &mut HashMap<String, i64>,
    marks: &[Mark],
    alerted: &[String],
    start: DateTime<Utc>,
) {
    let alerted: HashSet<&str> = alerted.iter().map(String::as_str).collect();
    for m in marks.iter().filter(|m| alerted.contains(m.head.as_str())) {
        let last = history.entry(m.terms.clone()).or_insert(m.last);
        *last = (*last).max(m.last);
    }
    let start = start.timestamp_millis();
    history.retain(|_, last| *last >= start);
}

/// The history as stored, in a stable order.
pub(super) fn stored(history: &HashMap<String, i64>) -> Vec<ThresholdMark> {
    let mut out: Vec<ThresholdMark> = history
        .iter()
        .map(|(terms, last)| ThresholdMark {
            terms: terms.clone(),
            last: *last,
        })
        .collect();
    out.sort_by(|a, b| a.terms.cmp(&b.terms));
    out
}
