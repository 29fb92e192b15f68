//! The run's side of the outbox: turning a window's new alert groups into
//! outbox entries, before the alerts are written.
//!
//! Why before the write and not after it: an entry is only *deliverable*
//! once the rule's checkpoint covers its window (`deliver`), so adding it
//! early never announces an alert that is not there, and a crash anywhere
//! leaves either no alerts and no entries (the window is searched again
//! and chooses the same groups) or the entries (kept, since their ids are
//! the same on the next attempt). Adding them after the write would lose
//! the messages of a crash between the two: the next attempt sees those
//! alerts as duplicates and has no new group to announce.
//!
//! A group already in the outbox (any status) was decided by an earlier
//! attempt and is left alone, throttle decision included.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::config::RouteMode;
use super::message::{group_message, summary_message, Group};
use super::route::{matches, throttle_key, Router};
use crate::rule::Rule;
use crate::state::{OutboxEntry, OutboxStatus, StateError, StateStore, ThrottleMark};

/// What [`enqueue`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnqueueReport {
    /// Entries added as pending (one per message and output).
    pub pending: usize,
    /// Entries added as throttled.
    pub throttled: usize,
}

/// One message a route wants, before the outbox and the throttle decide.
struct Wanted<'r> {
    key: String,
    throttle_key: String,
    throttle: Option<std::time::Duration>,
    outputs: &'r [String],
    route: &'r str,
    message: String,
}

/// Adds the messages of a window's new groups (head alert first in each)
/// to the outbox, for every route that takes them.
pub async fn enqueue<T: StateStore>(
    router: &Router,
    state: &T,
    rule: &Rule,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
    groups: &[Group<'_>],
) -> Result<EnqueueReport, StateError> {
    let routes = router.routes_for(rule);
    if routes.is_empty() || groups.is_empty() {
        return Ok(EnqueueReport::default());
    }
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    for route in routes.iter().map(|r| r.as_ref()) {
        let taken: Vec<&Group<'_>> = groups
            .iter()
            .filter(|g| g.alerts.first().is_some_and(|h| matches(route, rule, h)))
            .collect();
        match route.mode {
            RouteMode::Group => {
                for g in taken {
                    let key = format!("{}/{}", route.name, g.id);
                    let message = group_message(&key, &route.name, rule, g);
                    wanted.push(Wanted {
                        throttle_key: throttle_key(route, rule, g.alerts.first().copied()),
                        key,
                        throttle: route.throttle,
                        outputs: &route.outputs,
                        route: &route.name,
                        message: message.to_string(),
                    });
                }
            }
            RouteMode::Summary if !taken.is_empty() => {
                // The window, not the run: a run that catches up commits
                // several windows, and each must be announced once even if
                // the run dies between them.
                let key = format!(
                    "{}/{}/{}",
                    route.name,
                    rule.rule_id,
                    window_end.timestamp_millis()
                );
                let taken: Vec<Group<'_>> = taken.into_iter().cloned().collect();
                let message = summary_message(&key, &route.name, rule, &taken);
                wanted.push(Wanted {
                    throttle_key: throttle_key(route, rule, None),
                    key,
                    throttle: route.throttle,
                    outputs: &route.outputs,
                    route: &route.name,
                    message: message.to_string(),
                });
            }
            RouteMode::Summary => {}
        }
    }
    if wanted.is_empty() {
        return Ok(EnqueueReport::default());
    }

    let ids: Vec<String> = wanted
        .iter()
        .flat_map(|w| w.outputs.iter().map(|o| OutboxEntry::id_for(&w.key, o)))
        .collect();
    let existing: HashMap<String, OutboxStatus> = state
        .outbox_get(&ids)
        .await?
        .into_iter()
        .map(|e| (e.key, e.status))
        .collect();
    let throttled_keys: Vec<String> = wanted
        .iter()
        .filter(|w| w.throttle.is_some() && !existing.contains_key(&w.key))
        .map(|w| w.throttle_key.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut marks: HashMap<String, DateTime<Utc>> = if throttled_keys.is_empty() {
        HashMap::new()
    } else {
        state
            .throttle_marks(&throttled_keys)
            .await?
            .into_iter()
            .map(|m| (m.key, m.at))
            .collect()
    };
    let mut moved: HashSet<String> = HashSet::new();
    let mut entries = Vec::new();
    let mut report = EnqueueReport::default();
    for w in &wanted {
        let status = match existing.get(&w.key) {
            // Decided by an earlier attempt at this window: the missing
            // outputs' entries (a partial add) follow that decision.
            Some(OutboxStatus::Throttled) => OutboxStatus::Throttled,
            Some(_) => OutboxStatus::Pending,
            None => match w.throttle {
                Some(d) => {
                    let quiet = TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
                    let last = marks.get(&w.throttle_key).copied();
                    if last.is_some_and(|at| now.signed_duration_since(at) < quiet) {
                        OutboxStatus::Throttled
                    } else {
                        marks.insert(w.throttle_key.clone(), now);
                        moved.insert(w.throttle_key.clone());
                        OutboxStatus::Pending
                    }
                }
                None => OutboxStatus::Pending,
            },
        };
        for output in w.outputs {
            entries.push(OutboxEntry {
                id: OutboxEntry::id_for(&w.key, output),
                key: w.key.clone(),
                route: w.route.to_string(),
                output: output.clone(),
                rule_id: rule.rule_id.clone(),
                window_end,
                created_at: now,
                status,
                attempts: 0,
                next_attempt_at: None,
                sent_at: None,
                last_error: None,
                message: w.message.clone(),
                about_detectd: false,
            });
        }
    }
    let added: HashSet<String> = state.outbox_add(&entries).await?.into_iter().collect();
    for e in entries.iter().filter(|e| added.contains(&e.id)) {
        match e.status {
            OutboxStatus::Throttled => report.throttled += 1,
            _ => report.pending += 1,
        }
    }
    // After the entries: a crash in between lets one more message through
    // later (no mark), never keeps this one out by its own mark.
    let new_marks: Vec<ThrottleMark> = moved
        .into_iter()
        .filter_map(|k| marks.get(&k).map(|at| ThrottleMark { key: k, at: *at }))
        .collect();
    if !new_marks.is_empty() {
        state.save_throttle_marks(&new_marks).await?;
    }
    Ok(report)
}
