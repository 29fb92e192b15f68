//! The threshold history across windows (`Checkpoint::threshold_history`):
//! after a window, each alerted group remembers the time of the last event
//! its alert counted, and later windows count only the group's events
//! after it. With overlapping windows (`from = now-9m` every 5m) an event
//! is in two windows but in at most one alert of its group.
//!
//! A group the cap (`max_signals`) left out is not remembered: its events
//! can alert in the next window that still holds them. Entries older than
//! the window's start are dropped: no later window reads those events.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::alert::threshold::terms_hash;
use crate::alert::AlertRule;
use crate::runner::detect::{Candidate, History, Seen};
use crate::state::{ThresholdMark, ThresholdTerm};

/// A threshold match as the history sees it.
pub(super) struct Mark {
    head: String,
    key: String,
    seen: Seen,
}

/// The marks of a window's threshold matches and aggregating ES|QL rows
/// (`detect::esql`: the history is the rule's group history, whatever
/// groups it); none for other kinds.
pub(super) fn marks(candidates: &[Candidate], rule: &AlertRule, space: &str) -> Vec<Mark> {
    let buckets = candidates
        .iter()
        .filter_map(|c| c.threshold.as_deref())
        .map(|b| Mark {
            head: b.alert_id(rule, space),
            key: terms_hash(&b.terms),
            seen: Seen {
                terms: b.terms.clone(),
                last: b.max_ts,
            },
        });
    let rows = candidates
        .iter()
        .filter_map(|c| c.made.as_deref())
        .filter_map(|m| {
            let (key, seen) = m.mark.as_ref()?;
            Some(Mark {
                head: m.event.alert_id(space, &rule.uuid),
                key: key.clone(),
                seen: seen.clone(),
            })
        });
    buckets.chain(rows).collect()
}

/// The history after a window starting at `start` whose alerted heads are
/// `alerted`.
pub(super) fn advance(
    history: &mut History,
    marks: &[Mark],
    alerted: &[String],
    start: DateTime<Utc>,
) {
    let alerted: HashSet<&str> = alerted.iter().map(String::as_str).collect();
    for m in marks.iter().filter(|m| alerted.contains(m.head.as_str())) {
        let seen = history
            .entry(m.key.clone())
            .or_insert_with(|| m.seen.clone());
        seen.last = seen.last.max(m.seen.last);
    }
    let start = start.timestamp_millis();
    history.retain(|_, seen| seen.last >= start);
}

/// The history as stored, in a stable order.
pub(super) fn stored(history: &History) -> Vec<ThresholdMark> {
    let mut out: Vec<ThresholdMark> = history
        .iter()
        .map(|(key, seen)| ThresholdMark {
            key: key.clone(),
            terms: seen
                .terms
                .iter()
                .map(|(field, value)| ThresholdTerm {
                    field: field.clone(),
                    value: value.to_string(),
                })
                .collect(),
            last: seen.last,
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The history as read from a checkpoint. A term whose value is no JSON
/// text (a hand-edited state) is kept as that string.
pub(super) fn loaded(marks: &[ThresholdMark]) -> History {
    marks
        .iter()
        .map(|m| {
            let terms = m
                .terms
                .iter()
                .map(|t| {
                    let value = serde_json::from_str(&t.value)
                        .unwrap_or_else(|_| Value::String(t.value.clone()));
                    (t.field.clone(), value)
                })
                .collect();
            (
                m.key.clone(),
                Seen {
                    terms,
                    last: m.last,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mark(head: &str, value: &str, last: i64) -> Mark {
        let terms = vec![("user.name".to_string(), json!(value))];
        Mark {
            head: head.into(),
            key: terms_hash(&terms),
            seen: Seen { terms, last },
        }
    }

    #[test]
    fn only_alerted_groups_are_remembered_and_old_ones_dropped() {
        let start = DateTime::<Utc>::from_timestamp_millis(1_000).unwrap();
        let mut history = History::new();
        let old = mark("h0", "old", 500);
        history.insert(old.key.clone(), old.seen.clone());
        let marks = [mark("h1", "admin", 2_000), mark("h2", "capped", 3_000)];
        advance(&mut history, &marks, &["h1".to_string()], start);
        // `capped` was not alerted (the cap left it out); `old` ended
        // before the window's start
        assert_eq!(history.len(), 1);
        assert_eq!(history[&marks[0].key].last, 2_000);
        // a later alert of the same group moves its time forward only
        advance(
            &mut history,
            &[mark("h3", "admin", 1_500)],
            &["h3".into()],
            start,
        );
        assert_eq!(history[&marks[0].key].last, 2_000);
    }

    #[test]
    fn the_history_survives_the_checkpoint_with_its_values_typed() {
        let mut history = History::new();
        for (value, last) in [(json!("admin"), 5), (json!(443), 6), (json!(true), 7)] {
            let terms = vec![("f".to_string(), value)];
            history.insert(terms_hash(&terms), Seen { terms, last });
        }
        let stored = stored(&history);
        // every value is a string in the state document
        assert!(stored
            .iter()
            .all(|m| m.terms[0].value.starts_with(['"', '4', 't'])));
        assert_eq!(loaded(&stored), history);
    }
}
