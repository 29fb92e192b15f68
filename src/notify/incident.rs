//! Alerts about detectd itself (ElastAlert's `notify_all_errors`): a rule
//! failing runs in a row, a gap, a notification given up. Without them a
//! team learns from the silence, too late, that detection stopped.
//!
//! An incident is announced once, whatever number of runs it lasts: its
//! idempotency key is made from what stays the same while it lasts (the
//! rule and the first failed run of the streak, the gap's start, the
//! given-up entry), and the outbox keeps one entry per key. It goes through
//! the same outbox and worker as alert groups, to the routes written with
//! `kind = "detectd"` only (their `events` choose which), and is deliverable
//! at once: there is no window whose checkpoint it waits for.
//!
//! The message has the shape of an alert group's (`rule.name` says what
//! happened, `alert.reason` the details), so every output's default
//! templates render it, plus `kind = "detectd"`, `event` and `detectd` (the
//! incident's own fields) for templates that want them.
//!
//! The cluster unreachable longer than a threshold is watched by
//! `daemon::outage`. Not here: failure streaks across restarts (a streak is
//! counted in memory: a restart starts it again).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::config::RouteKind;
use super::route::Router;
use crate::state::{OutboxEntry, OutboxStatus, StateError, StateStore};

/// The events a `kind = "detectd"` route may choose.
pub const EVENTS: &[&str] = &["rule_failing", "rule_recovered", "gap", "delivery_given_up"];

/// Something about detectd worth a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incident {
    /// `runs` failed runs in a row of a rule, the first at `since`.
    RuleFailing {
        rule_id: String,
        rule_name: String,
        since: DateTime<Utc>,
        runs: u32,
        error: String,
    },
    /// A rule announced as failing ran again without failing.
    RuleRecovered {
        rule_id: String,
        rule_name: String,
        since: DateTime<Utc>,
        runs: u32,
    },
    /// Time a rule was not searched (older than the catch-up horizon).
    Gap {
        rule_id: String,
        rule_name: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// The cluster has not answered since `since`, for longer than
    /// `notify.cluster_unreachable`.
    ClusterUnreachable { since: DateTime<Utc>, error: String },
    /// An announced outage ended at `until`.
    ClusterReachable {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// A message that will never be delivered.
    DeliveryGivenUp {
        /// The given-up entry's id (`<key>@<output>`).
        entry: String,
        output: String,
        rule_id: String,
        error: String,
    },
}

impl Incident {
    pub fn event(&self) -> &'static str {
        match self {
            Incident::RuleFailing { .. } => "rule_failing",
            Incident::RuleRecovered { .. } => "rule_recovered",
            Incident::Gap { .. } => "gap",
            Incident::DeliveryGivenUp { .. } => "delivery_given_up",
            Incident::ClusterUnreachable { .. } => "cluster_unreachable",
            Incident::ClusterReachable { .. } => "cluster_reachable",
        }
    }

    fn rule_id(&self) -> &str {
        match self {
            Incident::RuleFailing { rule_id, .. }
            | Incident::RuleRecovered { rule_id, .. }
            | Incident::Gap { rule_id, .. }
            | Incident::DeliveryGivenUp { rule_id, .. } => rule_id,
            Incident::ClusterUnreachable { .. } | Incident::ClusterReachable { .. } => "",
        }
    }

    /// What stays the same while the incident lasts.
    fn identity(&self) -> String {
        match self {
            Incident::RuleFailing { rule_id, since, .. }
            | Incident::RuleRecovered { rule_id, since, .. } => {
                format!("{rule_id}/{}", since.timestamp_millis())
            }
            // The start is the rule's checkpoint, the same in every run
            // until the gap is committed; the end moves with the clock.
            Incident::Gap { rule_id, start, .. } => {
                format!("{rule_id}/{}", start.timestamp_millis())
            }
            Incident::DeliveryGivenUp { entry, .. } => entry.clone(),
            // The first failed check: the same for the whole outage.
            Incident::ClusterUnreachable { since, .. }
            | Incident::ClusterReachable { since, .. } => since.timestamp_millis().to_string(),
        }
    }

    fn severity(&self) -> &'static str {
        match self {
            Incident::RuleFailing { .. }
            | Incident::Gap { .. }
            | Incident::ClusterUnreachable { .. } => "high",
            Incident::DeliveryGivenUp { .. } => "medium",
            Incident::RuleRecovered { .. } | Incident::ClusterReachable { .. } => "low",
        }
    }

    fn title(&self) -> String {
        match self {
            Incident::RuleFailing {
                rule_name, runs, ..
            } => format!("detectd: rule {rule_name:?} failed {runs} runs in a row"),
            Incident::RuleRecovered { rule_name, .. } => {
                format!("detectd: rule {rule_name:?} runs again")
            }
            Incident::Gap { rule_name, .. } => {
                format!("detectd: rule {rule_name:?} skipped time (a gap)")
            }
            Incident::DeliveryGivenUp { output, .. } => {
                format!("detectd: a notification to output {output:?} was given up")
            }
            Incident::ClusterUnreachable { .. } => "detectd: the cluster is unreachable".into(),
            Incident::ClusterReachable { .. } => "detectd: the cluster answers again".into(),
        }
    }

    fn reason(&self) -> String {
        match self {
            Incident::RuleFailing {
                rule_id,
                since,
                runs,
                error,
                ..
            } => format!(
                "rule {rule_id} failed {runs} runs in a row since {}: no alerts are searched \
                 for it until it runs again; last error: {error}",
                since.to_rfc3339()
            ),
            Incident::RuleRecovered {
                rule_id,
                since,
                runs,
                ..
            } => format!(
                "rule {rule_id} ran again after at least {runs} failed runs since {}",
                since.to_rfc3339()
            ),
            Incident::Gap {
                rule_id,
                start,
                end,
                ..
            } => format!(
                "rule {rule_id} did not search from {} to {}: events of that time raise no alerts",
                start.to_rfc3339(),
                end.to_rfc3339()
            ),
            Incident::DeliveryGivenUp {
                entry,
                output,
                error,
                ..
            } => format!("message {entry} to output {output} was given up: {error}"),
            Incident::ClusterUnreachable { since, error } => format!(
                "the cluster has not answered since {}: no rule runs until it does; last error: {error}",
                since.to_rfc3339()
            ),
            Incident::ClusterReachable { since, until } => format!(
                "the cluster answers again: unreachable from {} to {}",
                since.to_rfc3339(),
                until.to_rfc3339()
            ),
        }
    }

    fn details(&self) -> Value {
        match self {
            Incident::RuleFailing {
                rule_id,
                since,
                runs,
                error,
                ..
            } => json!({"rule_id": rule_id, "since": since.to_rfc3339(), "runs": runs,
                "error": error}),
            Incident::RuleRecovered {
                rule_id,
                since,
                runs,
                ..
            } => json!({"rule_id": rule_id, "since": since.to_rfc3339(), "runs": runs}),
            Incident::Gap {
                rule_id,
                start,
                end,
                ..
            } => json!({"rule_id": rule_id, "start": start.to_rfc3339(),
                "end": end.to_rfc3339()}),
            Incident::DeliveryGivenUp {
                entry,
                output,
                rule_id,
                error,
            } => json!({"rule_id": rule_id, "entry": entry, "output": output, "error": error}),
            Incident::ClusterUnreachable { since, error } => {
                json!({"since": since.to_rfc3339(), "error": error})
            }
            Incident::ClusterReachable { since, until } => {
                json!({"since": since.to_rfc3339(), "until": until.to_rfc3339()})
            }
        }
    }
}

/// The message of an incident for one route, in the shape of an alert
/// group's message (see the module's comment).
pub fn incident_message(key: &str, route: &str, incident: &Incident, now: DateTime<Utc>) -> Value {
    let alert = json!({
        "id": key,
        "reason": incident.reason(),
        "severity": incident.severity(),
        "risk_score": Value::Null,
        "timestamp": now.to_rfc3339(),
        "host": Value::Null,
        "user": Value::Null,
        "url": Value::Null,
        "events": [],
    });
    json!({
        "kind": "detectd",
        "event": incident.event(),
        "idempotency_key": key,
        "key": key,
        "route": route,
        "mode": "group",
        "rule": {
            "id": incident.rule_id(),
            "name": incident.title(),
            "type": "detectd",
            "severity": incident.severity(),
            "risk_score": Value::Null,
            "tags": ["detectd"],
            "description": incident.reason(),
        },
        "alert": alert.clone(),
        "alerts": [alert],
        "count": 1,
        "kibana_url": Value::Null,
        "detectd": incident.details(),
    })
}

/// Adds the messages of an incident to the outbox for every route that
/// takes it; returns how many entries were new (0 when the incident was
/// already announced).
pub async fn announce<T: StateStore>(
    router: &Router,
    state: &T,
    incident: &Incident,
    now: DateTime<Utc>,
) -> Result<usize, StateError> {
    let event = incident.event();
    let mut entries = Vec::new();
    for route in router.routes() {
        if route.kind != RouteKind::Detectd
            || !(route.events.is_empty() || route.events.iter().any(|e| e == event))
        {
            continue;
        }
        let key = format!("{}/{event}/{}", route.name, incident.identity());
        let message = incident_message(&key, &route.name, incident, now).to_string();
        for output in &route.outputs {
            entries.push(OutboxEntry {
                id: OutboxEntry::id_for(&key, output),
                key: key.clone(),
                route: route.name.clone(),
                output: output.clone(),
                rule_id: incident.rule_id().to_string(),
                window_end: now,
                created_at: now,
                status: OutboxStatus::Pending,
                attempts: 0,
                next_attempt_at: None,
                sent_at: None,
                last_error: None,
                message: message.clone(),
                about_detectd: true,
            });
        }
    }
    if entries.is_empty() {
        return Ok(0);
    }
    // `outbox_add` keeps an id already there as it is: the same incident
    // seen again (the next failed run, a restart) adds nothing.
    let added = state.outbox_add(&entries).await?;
    if !added.is_empty() {
        tracing::warn!(event, rule_id = %incident.rule_id(), messages = added.len(),
            "alert about detectd itself");
    }
    Ok(added.len())
}
