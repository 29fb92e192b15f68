//! Which of a window's matches become alerts: their ids (each kind's
//! recipe), those already written left out (a lookup by id in the alerts
//! index, and what this run acknowledged), and `max_signals` — counted in
//! new groups, the cut remembered in a pending checkpoint so that a window
//! searched again after a crash chooses the same matches.

use std::collections::HashSet;
use std::time::Instant;

use super::{millis, threshold, AlertScope, Alerted, Attempt, RunError, Runner};
use crate::alert;
use crate::runner::alerts::group_ids;
use crate::runner::detect::Candidate;
use crate::runner::record::ExecutionRecord;
use crate::runner::report::MAX_SIGNALS_WARNING;
use crate::sink::AlertSink;
use crate::source::EventSource;
use crate::state::{CapCut, Checkpoint, PendingWindow, StateStore};

/// A match chosen to alert: the match, its ids not written yet, its head id.
pub(super) type Chosen = (Candidate, HashSet<String>, String);

impl<S, K, T> Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    /// Dedup and cap: the window's matches to alert (each with its new ids
    /// and its head id), and the matches alerted before or now.
    pub(super) async fn choose(
        &self,
        scope: &AlertScope<'_>,
        candidates: Vec<Candidate>,
        attempt: &Attempt<'_>,
        acknowledged: &HashSet<String>,
        record: &mut ExecutionRecord,
    ) -> Result<(Vec<Chosen>, Alerted), RunError> {
        let AlertScope {
            rule,
            alert_rule,
            ctx,
            grouped,
        } = scope;
        let grouped = *grouped;
        if candidates.is_empty() {
            return Ok((Vec::new(), Alerted::default()));
        }
        let mut groups: Vec<(Candidate, Vec<String>)> = candidates
            .into_iter()
            .map(|c| {
                let ids = match (&c.threshold, &c.made, &c.new_terms, c.events.first()) {
                    (Some(b), _, _, _) => vec![b.alert_id(alert_rule, &self.settings.space_id)],
                    (None, Some(m), _, _) => {
                        vec![m.event.alert_id(&self.settings.space_id, &alert_rule.uuid)]
                    }
                    (None, None, Some(terms), Some(Some(hit))) => {
                        vec![alert::new_terms::new_terms_alert_id(
                            &hit.index,
                            &hit.id,
                            terms,
                            &self.settings.space_id,
                            &alert_rule.uuid,
                        )]
                    }
                    _ => group_ids(&c, grouped, &self.settings.space_id, &alert_rule.uuid),
                };
                (c, ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        // Ties broken by id, not by position in this window's fetch: a cut
        // stored in the checkpoint must mean the same when the window is
        // searched again.
        groups
            .sort_by(|(a, a_ids), (b, b_ids)| (a.order.0, &a_ids[0]).cmp(&(b.order.0, &b_ids[0])));
        let index = &self.settings.alerts_index;
        let all_ids: Vec<String> = groups
            .iter()
            .flat_map(|(_, ids)| ids.iter().filter(|id| !acknowledged.contains(*id)).cloned())
            .collect();
        let index_clock = Instant::now();
        let existing = self.sink.existing_ids(index, &all_ids).await;
        record.index_duration_ms += millis(index_clock.elapsed());
        // Without the lookup (e.g. no read privilege on Kibana's alias)
        // the run still writes: duplicates then come back as conflicts,
        // but count against the cap.
        let existing = existing.unwrap_or_else(|e| {
            let w = format!(
                "cannot look up existing alerts in {index}, duplicates count against max_signals: {e}"
            );
            if !record.warnings.contains(&w) {
                record.warnings.push(w);
            }
            HashSet::new()
        });

        let cap = attempt.cap;
        let mut new_groups = 0usize;
        let mut capped = 0u64;
        let mut cap_cut: Option<CapCut> = None;
        // Each chosen match with its new ids and its head id.
        let mut chosen: Vec<Chosen> = Vec::new();
        // Heads of the matches alerted before (now duplicates).
        let mut alerted: Vec<String> = Vec::new();
        for (candidate, ids) in groups {
            let fresh: HashSet<String> = ids
                .iter()
                .filter(|id| !existing.contains(*id) && !acknowledged.contains(*id))
                .cloned()
                .collect();
            record.alerts_duplicate += (ids.len() - fresh.len()) as u64;
            if fresh.is_empty() {
                alerted.push(ids[0].clone());
                continue;
            }
            // A group whose head (the event alert, or the shell) exists
            // only lacks building blocks a failed write left out: those
            // are completed without counting against the cap.
            if fresh.contains(&ids[0]) {
                let key = || CapCut {
                    last_event_ms: candidate.order.0,
                    alert_id: ids[0].clone(),
                };
                // Searched again after an attempt that died between its
                // bulk write and its checkpoint: that attempt chose the
                // matches before its cut, and what it wrote of them now
                // comes back as duplicates. Choosing anew would write up
                // to `max_signals` more.
                let over = match attempt.retried_cut {
                    Some(cut) => key() >= *cut,
                    None => new_groups >= cap,
                };
                if over {
                    capped += 1;
                    cap_cut.get_or_insert_with(key);
                    continue;
                }
                new_groups += 1;
            }
            let head = ids[0].clone();
            chosen.push((candidate, fresh, head));
        }
        if capped > 0 {
            record.alerts_capped += capped;
            if !record.warnings.iter().any(|w| w == MAX_SIGNALS_WARNING) {
                record.warnings.push(MAX_SIGNALS_WARNING.to_string());
            }
        }
        // The choice of a capped window must outlive a crash before its
        // checkpoint (see above). Not on a rule's first run: its window
        // ends at `now`, and a second attempt searches another one.
        if let (Some(cut), None, Some(covered)) = (cap_cut, attempt.retried_cut, attempt.covered) {
            self.state
                .save_checkpoint(&Checkpoint {
                    rule_id: rule.rule_id.clone(),
                    covered_until: covered,
                    updated_at: ctx.now,
                    pending: Some(PendingWindow {
                        window_end: attempt.window.end,
                        cap_cut: cut,
                    }),
                    threshold_history: threshold::stored(attempt.history),
                })
                .await?;
        }
        alerted.extend(chosen.iter().map(|(_, _, head)| head.clone()));
        let alerted = Alerted {
            heads: alerted,
            new: new_groups,
        };
        Ok((chosen, alerted))
    }
}
