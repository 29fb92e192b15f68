//! Alert suppression over a window's new alerts (`[rule.alert_suppression]`,
//! see `rule::suppression`), as Kibana's `bulkCreateSuppressedAlertsInMemory`
//! and `alertWithSuppression` do it, for every rule type:
//!
//! 1. each new alert group's head (an event alert, a sequence's shell, a
//!    threshold alert) gets its terms and instance id; one lacking a field
//!    alerts on its own under `missing_fields_strategy = "doNotSuppress"`;
//! 2. the open alert of each instance is looked up (not closed, started
//!    since `now - duration`, or since the window's start without a
//!    duration), and this run's own (a catch-up writes several windows
//!    before the index is searchable again);
//! 3. a match at or before its open alert's `suppression.end` was counted
//!    already (an overlapping window, a retried one): dropped;
//! 4. the rest of an instance extend its open alert in place when there is
//!    a duration (`docs_count += n`, `end`, `last_detected`: a `_bulk`
//!    `update`), else the first becomes a new alert with
//!    `suppression.docs_count = n - 1` and the others are dropped.
//!
//! The dropped matches count as alerted (their window is done); their
//! notifications are not sent: only new alerts are announced, as in Kibana.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::alert::suppression::{instance_id, iso, lacks_a_field, mark, terms};
use crate::alert::Alert;
use crate::rule::{Rule, RuleKind, Suppression};
use crate::sink::{AlertSink, AlertUpdate, OpenAlert, SinkError};

/// This run's open alert per instance id.
pub(super) type OpenAlerts = Mutex<HashMap<String, OpenAlert>>;

/// A window's alerts after suppression.
pub(super) struct Suppressed {
    pub(super) alerts: Vec<Alert>,
    /// The new groups left (head id, its alerts in `alerts`).
    pub(super) groups: Vec<(String, Range<usize>)>,
    pub(super) updates: Vec<AlertUpdate>,
    /// Matches that went into an alert other than their own.
    pub(super) suppressed: u64,
}

/// One new group as suppression sees it.
struct Member {
    group: usize,
    instance: String,
    terms: Vec<(String, Value)>,
    time: DateTime<Utc>,
}

/// A new alert's suppression fields: instance, terms, start, end, docs.
type Mark = (
    String,
    Vec<(String, Value)>,
    DateTime<Utc>,
    DateTime<Utc>,
    u64,
);

/// What the window's scope gives suppression.
pub(super) struct Scope<'a> {
    pub(super) rule: &'a Rule,
    pub(super) config: &'a Suppression,
    pub(super) index: &'a str,
    pub(super) space: &'a str,
    pub(super) now: DateTime<Utc>,
    pub(super) window_start: DateTime<Utc>,
}

pub(super) async fn apply<K: AlertSink>(
    sink: &K,
    scope: &Scope<'_>,
    alerts: Vec<Alert>,
    groups: Vec<(String, Range<usize>)>,
    open: &OpenAlerts,
) -> Result<Suppressed, SinkError> {
    let group_by = match &scope.rule.kind {
        RuleKind::Threshold(t) => t.fields.clone(),
        _ => scope.config.group_by.clone(),
    };
    let mut members: Vec<Member> = Vec::new();
    for (i, (_, range)) in groups.iter().enumerate() {
        let head = &alerts[range.start].source;
        let t = terms(&group_by, head);
        if lacks_a_field(&t) && !scope.config.suppress_missing {
            continue;
        }
        members.push(Member {
            group: i,
            instance: instance_id(&t, scope.rule.uuid(), scope.space),
            terms: t,
            time: match_time(scope.rule, head).unwrap_or(scope.now),
        });
    }
    let mut keep = vec![true; groups.len()];
    let mut updates = Vec::new();
    let mut suppressed = 0u64;
    let mut marks: HashMap<usize, Mark> = HashMap::new();
    if !members.is_empty() {
        let since = match scope.config.duration {
            Some(d) => scope.now - TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX),
            None => scope.window_start,
        };
        let mut ids: Vec<String> = members.iter().map(|m| m.instance.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut existing: HashMap<String, OpenAlert> = sink
            .open_alerts(scope.index, &ids, since)
            .await?
            .into_iter()
            .map(|o| (o.instance_id.clone(), o))
            .collect();
        let mut mine = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (instance, o) in mine.iter() {
            let newer = existing.get(instance).is_none_or(|e| e.end <= o.end);
            if newer {
                existing.insert(instance.clone(), o.clone());
            }
        }
        // Members by instance, in window order.
        let mut by_instance: Vec<(String, Vec<&Member>)> = Vec::new();
        for m in &members {
            match by_instance.iter_mut().find(|(i, _)| *i == m.instance) {
                Some((_, list)) => list.push(m),
                None => by_instance.push((m.instance.clone(), vec![m])),
            }
        }
        for (instance, list) in by_instance {
            let open_alert = existing.get(&instance);
            let (done, fresh): (Vec<&Member>, Vec<&Member>) = list
                .into_iter()
                .partition(|m| open_alert.is_some_and(|o| m.time <= o.end));
            for m in &done {
                keep[m.group] = false;
            }
            let Some(first) = fresh.first() else {
                continue;
            };
            let end = fresh.iter().map(|m| m.time).max().unwrap_or(first.time);
            let start = fresh.iter().map(|m| m.time).min().unwrap_or(first.time);
            match open_alert {
                Some(o) if scope.config.duration.is_some() => {
                    for m in &fresh {
                        keep[m.group] = false;
                    }
                    suppressed += fresh.len() as u64;
                    let docs_count = o.docs_count + fresh.len() as u64;
                    let end = end.max(o.end);
                    updates.push(AlertUpdate {
                        id: o.id.clone(),
                        index: o.index.clone(),
                        doc: json!({
                            "kibana.alert.suppression.end": iso(end),
                            "kibana.alert.suppression.docs_count": docs_count,
                            "kibana.alert.last_detected": iso(scope.now),
                        }),
                    });
                    mine.insert(
                        instance.clone(),
                        OpenAlert {
                            end,
                            docs_count,
                            ..o.clone()
                        },
                    );
                }
                _ => {
                    for m in &fresh[1..] {
                        keep[m.group] = false;
                    }
                    suppressed += (fresh.len() - 1) as u64;
                    let docs_count = (fresh.len() - 1) as u64;
                    marks.insert(
                        first.group,
                        (
                            instance.clone(),
                            first.terms.clone(),
                            start,
                            end,
                            docs_count,
                        ),
                    );
                    mine.insert(
                        instance.clone(),
                        OpenAlert {
                            id: groups[first.group].0.clone(),
                            index: scope.index.to_string(),
                            instance_id: instance.clone(),
                            end,
                            docs_count,
                        },
                    );
                }
            }
        }
    }
    // The alerts left, in order, with the suppression fields on the heads.
    let mut in_group = vec![None; alerts.len()];
    for (i, (_, range)) in groups.iter().enumerate() {
        for slot in &mut in_group[range.clone()] {
            *slot = Some(i);
        }
    }
    let mut out = Vec::with_capacity(alerts.len());
    let mut out_groups: Vec<(String, Range<usize>)> = Vec::new();
    let mut current: Option<usize> = None;
    for (pos, mut alert) in alerts.into_iter().enumerate() {
        let group = in_group[pos];
        if group.is_some_and(|g| !keep[g]) {
            continue;
        }
        if let Some(g) = group {
            if current != Some(g) {
                current = Some(g);
                if let Some((instance, t, start, end, docs)) = marks.get(&g) {
                    if let Value::Object(body) = &mut alert.source {
                        mark(body, instance, t, *start, *end, *docs);
                    }
                }
                out_groups.push((groups[g].0.clone(), out.len()..out.len()));
            }
            if let Some(last) = out_groups.last_mut() {
                last.1.end = out.len() + 1;
            }
        } else {
            current = None;
        }
        out.push(alert);
    }
    Ok(Suppressed {
        alerts: out,
        groups: out_groups,
        updates,
        suppressed,
    })
}

/// When a match happened, for its group's boundaries: the rule's
/// `timestamp_override` in the alert when it has one (Kibana reads the
/// primary timestamp of the event), else the event's time.
fn match_time(rule: &Rule, body: &Value) -> Option<DateTime<Utc>> {
    let date = |v: &Value| {
        let v = match v {
            Value::Array(items) => items.first()?,
            other => other,
        };
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    rule.timestamp_override
        .as_deref()
        .and_then(|f| body.get(f).or_else(|| crate::alert::doc::get_path(body, f)))
        .and_then(date)
        .or_else(|| body.get("kibana.alert.original_time").and_then(date))
        .or_else(|| body.get("@timestamp").and_then(date))
}
