//! Watching runs for incidents (`notify::incident`): counts each rule's
//! failed runs in a row and reads the gap a run recorded, so that a streak
//! is announced once when it reaches `notify.rule_failures` (and its end
//! once, when the rule runs again), and a gap once.
//!
//! The streak lives in memory: a restart starts counting again, and the
//! streak's idempotency key (its first failed run) is then a new one. A
//! failure to add a message (the state store is down too) is logged and
//! tried again after the next run, never fails the run itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::incident::{announce, Incident};
use super::route::Router;
use crate::runner::{ExecutionRecord, RunStatus};
use crate::state::StateStore;

/// One rule's failed runs in a row.
#[derive(Clone, Debug)]
struct Streak {
    since: DateTime<Utc>,
    runs: u32,
    /// Its `rule_failing` message is in the outbox.
    announced: bool,
}

/// Turns run records into incidents, for the routes of `kind = "detectd"`.
#[derive(Debug)]
pub struct Watch {
    router: Arc<Router>,
    streaks: Mutex<HashMap<String, Streak>>,
}

impl Watch {
    /// `None` when no route takes alerts about detectd.
    pub fn new(router: Arc<Router>) -> Option<Watch> {
        router.watches_detectd().then(|| Watch {
            router,
            streaks: Mutex::new(HashMap::new()),
        })
    }

    /// Looks at one finished run (its record complete) at `now`.
    pub async fn observe<T: StateStore>(
        &self,
        state: &T,
        record: &ExecutionRecord,
        now: DateTime<Utc>,
    ) {
        let mut incidents = Vec::new();
        if let Some(gap) = &record.gap {
            incidents.push(Incident::Gap {
                rule_id: record.rule_id.clone(),
                rule_name: record.rule_name.clone(),
                start: gap.start,
                end: gap.end,
            });
        }
        let (failing, recovered) = self.count(record);
        incidents.extend(failing.clone());
        incidents.extend(recovered);
        for incident in &incidents {
            match announce(&self.router, state, incident, now).await {
                Ok(_) => {
                    if matches!(incident, Incident::RuleFailing { .. }) {
                        self.mark_announced(&record.rule_id);
                    }
                }
                Err(e) => tracing::warn!(rule_id = %record.rule_id, event = incident.event(),
                    error = %e, "cannot add an alert about detectd, will try after the next run"),
            }
        }
    }

    /// Updates the rule's streak; returns the streak to announce (reached
    /// the threshold, not announced yet) and the end of an announced one.
    fn count(&self, record: &ExecutionRecord) -> (Option<Incident>, Option<Incident>) {
        let threshold = self.router.rule_failures();
        let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        if record.status != RunStatus::Failed {
            let ended = streaks.remove(&record.rule_id);
            let recovered = ended
                .filter(|s| s.announced)
                .map(|s| Incident::RuleRecovered {
                    rule_id: record.rule_id.clone(),
                    rule_name: record.rule_name.clone(),
                    since: s.since,
                    runs: s.runs,
                });
            return (None, recovered);
        }
        let streak = streaks.entry(record.rule_id.clone()).or_insert(Streak {
            since: record.started_at,
            runs: 0,
            announced: false,
        });
        streak.runs = streak.runs.saturating_add(1);
        let failing =
            (streak.runs >= threshold && !streak.announced).then(|| Incident::RuleFailing {
                rule_id: record.rule_id.clone(),
                rule_name: record.rule_name.clone(),
                since: streak.since,
                runs: streak.runs,
                error: record.error.clone().unwrap_or_else(|| "failed".into()),
            });
        (failing, None)
    }

    fn mark_announced(&self, rule_id: &str) {
        if let Some(s) = self
            .streaks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(rule_id)
        {
            s.announced = true;
        }
    }
}
