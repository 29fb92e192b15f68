//! A window's chosen matches written as alerts: their events read in full,
//! the alerts built (each kind's shape), suppressed (`suppress`), announced
//! to the outbox, written, open suppression alerts updated in place, and
//! what the cluster refuses as invalid kept as dead letters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::{millis, threat, AlertScope, Alerted, Attempt, RunError, Runner};
use crate::alert::{self, Alert, AlertContext, SourceEvent};
use crate::runner::detect::Candidate;
use crate::runner::record::ExecutionRecord;
use crate::runner::suppress;
use crate::sink::{AlertSink, ItemFailure};
use crate::source::{DocRef, EventSource};
use crate::state::{DeadLetter, StateStore};

impl<S, K, T> Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    /// Dedup, cap, read sources, build and write the alerts of one window:
    /// the matches alerted (written now, or already there).
    pub(super) async fn alert_window(
        &self,
        scope: &AlertScope<'_>,
        candidates: Vec<Candidate>,
        attempt: &Attempt<'_>,
        acknowledged: &mut HashSet<String>,
        record: &mut ExecutionRecord,
    ) -> Result<Alerted, RunError> {
        let (chosen, alerted) = self
            .choose(scope, candidates, attempt, acknowledged, record)
            .await?;
        if chosen.is_empty() {
            return Ok(alerted);
        }
        let AlertScope {
            rule,
            alert_rule,
            ctx,
            grouped,
        } = scope;
        let grouped = *grouped;
        let index = &self.settings.alerts_index;
        // Full sources, only for the events that end up in alerts.
        let mut refs: Vec<DocRef> = Vec::new();
        let mut seen: HashSet<(Arc<str>, Arc<str>)> = HashSet::new();
        for (c, _, _) in &chosen {
            for h in c.events.iter().flatten() {
                if seen.insert((h.index.clone(), h.id.clone())) {
                    refs.push(DocRef {
                        index: h.index.to_string(),
                        id: h.id.to_string(),
                    });
                }
            }
        }
        let search_clock = Instant::now();
        let sources = self.source.fetch_sources(&refs).await;
        record.search_duration_ms += millis(search_clock.elapsed());
        let sources: HashMap<(String, String), SourceEvent> = sources?
            .into_iter()
            .map(|d| {
                (
                    (d.index.clone(), d.id.clone()),
                    SourceEvent {
                        index: d.index,
                        id: d.id,
                        source: d.source,
                    },
                )
            })
            .collect();

        let indicators =
            threat::indicator_sources(&self.source, chosen.iter().map(|(c, _, _)| c)).await?;

        let mut alerts: Vec<Alert> = Vec::new();
        // New groups (head id, their alerts in `alerts`) to announce.
        let mut new_groups: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
        let mut vanished = 0usize;
        for (c, fresh, head_id) in &chosen {
            let events: Option<Vec<Option<&SourceEvent>>> = c
                .events
                .iter()
                .map(|h| match h {
                    None => Some(None),
                    Some(h) => sources
                        .get(&(h.index.to_string(), h.id.to_string()))
                        .map(Some),
                })
                .collect();
            let Some(events) = events else {
                vanished += 1;
                continue;
            };
            let built = if let Some(hits) = &c.threat {
                let event = events.first().copied().flatten();
                match event.and_then(|e| threat::enriched(rule, hits, e, &indicators)) {
                    Some(e) => alert::event_alert(alert_rule, ctx, &e)
                        .into_iter()
                        .collect(),
                    None => {
                        vanished += 1;
                        continue;
                    }
                }
            } else if let Some(bucket) = &c.threshold {
                alert::threshold::threshold_alert(alert_rule, ctx, bucket)
                    .into_iter()
                    .collect()
            } else if let Some(made) = &c.made {
                alert::event_alert(alert_rule, ctx, &made.event)
                    .into_iter()
                    .collect()
            } else if let Some(terms) = &c.new_terms {
                events
                    .first()
                    .copied()
                    .flatten()
                    .and_then(|e| alert::new_terms::new_terms_alert(alert_rule, ctx, e, terms))
                    .into_iter()
                    .collect()
            } else if grouped {
                alert::sequence_alerts(alert_rule, ctx, &events)
            } else {
                events
                    .first()
                    .copied()
                    .flatten()
                    .and_then(|e| alert::event_alert(alert_rule, ctx, e))
                    .into_iter()
                    .collect()
            };
            // An event that is itself an alert brings its ancestors into
            // the ids: those alerts were not looked up, the `create`s say
            // whether they exist.
            let as_expected = built.first().is_some_and(|head| head.id == *head_id);
            let start = alerts.len();
            alerts.extend(
                built
                    .into_iter()
                    .filter(|a| !as_expected || fresh.contains(&a.id)),
            );
            // A group whose head already existed only gets building blocks
            // a failed write left out: it was announced with its head.
            if as_expected && fresh.contains(head_id) {
                new_groups.push((head_id.as_str(), start..alerts.len()));
            }
        }
        if vanished > 0 {
            record.warnings.push(format!(
                "{vanished} matches were not alerted: their events (or indicators) were deleted before the alerts were written"
            ));
        }
        let mut new_groups: Vec<(String, std::ops::Range<usize>)> = new_groups
            .into_iter()
            .map(|(id, range)| (id.to_string(), range))
            .collect();
        let mut updates = Vec::new();
        if let Some(config) = &rule.alert_suppression {
            let scope = suppress::Scope {
                rule,
                config,
                index,
                space: &self.settings.space_id,
                now: ctx.now,
                window_start: attempt.window.start,
            };
            let s = suppress::apply(&self.sink, &scope, alerts, new_groups, attempt.open).await?;
            alerts = s.alerts;
            new_groups = s.groups;
            updates = s.updates;
            record.alerts_suppressed += s.suppressed;
        }
        if alerts.is_empty() && updates.is_empty() {
            return Ok(alerted);
        }
        if let Some(router) = &self.router {
            let groups: Vec<crate::notify::Group<'_>> = new_groups
                .iter()
                .map(|(id, range)| crate::notify::Group {
                    id: id.as_str(),
                    alerts: alerts[range.clone()].iter().map(|a| &a.source).collect(),
                })
                .collect();
            // Before the write: a message is sent only once the window's
            // checkpoint is stored, and a crash between the write and the
            // checkpoint must not leave written alerts without messages.
            let added = crate::notify::enqueue(
                router,
                &self.state,
                rule,
                attempt.window.end,
                ctx.now,
                &groups,
            )
            .await?;
            tracing::debug!(
                rule_id = %rule.rule_id,
                pending = added.pending,
                throttled = added.throttled,
                "notifications added to the outbox"
            );
        }
        tracing::debug!(
            rule_id = %rule.rule_id,
            alerts = alerts.len(),
            "writing alerts"
        );
        let index_clock = Instant::now();
        let report = self.sink.write(index, &alerts).await;
        record.index_duration_ms += millis(index_clock.elapsed());
        let report = report?;
        record.alerts_created += report.created.len() as u64;
        record.alerts_duplicate += report.duplicates.len() as u64;
        record.alerts_failed += report.failed.len() as u64;
        acknowledged.extend(report.created);
        acknowledged.extend(report.duplicates);
        if !updates.is_empty() {
            // Open alerts extended in place (suppression). A failed update
            // keeps the window: its retry finds the matches either counted
            // (the update landed) or not. An alert deleted meanwhile (404)
            // takes its group's matches with it, loudly.
            let updated = self.sink.update(&updates).await?;
            let (gone, failed): (Vec<ItemFailure>, Vec<ItemFailure>) =
                updated.failed.into_iter().partition(|f| f.status == 404);
            if let Some(first) = failed.into_iter().next() {
                return Err(RunError::WriteIncomplete { failed: 1, first });
            }
            if let Some(first) = gone.first() {
                record.warnings.push(format!(
                    "{} open alerts of suppression groups were deleted before they could be \
                     updated, first: {first}",
                    gone.len()
                ));
            }
        }
        // An invalid document would be refused on every retry, and keeping
        // the window would stall the rule until the catch-up horizon turned
        // it into a gap: such alerts are reported, loudly, and the window
        // moves on. Any other failure may succeed later: the window is
        // searched again.
        let (rejected, retryable): (Vec<ItemFailure>, Vec<ItemFailure>) = report
            .failed
            .into_iter()
            .partition(ItemFailure::is_invalid_document);
        if let Some(first) = retryable.into_iter().next() {
            return Err(RunError::WriteIncomplete {
                failed: record.alerts_failed as usize,
                first,
            });
        }
        if let Some(first) = rejected.first() {
            self.dead_letter(&alerts, &rejected, ctx, record).await?;
            record.warnings.push(format!(
                "{} alerts were refused by the cluster as invalid (status 400) and kept as dead \
                 letters (`detectd dead-letters replay` writes them again), first: {first}",
                rejected.len()
            ));
        }
        Ok(alerted)
    }

    /// Keeps alerts the cluster refused as invalid documents, so the window
    /// can move on without losing them. If they cannot be kept, the run
    /// fails and the window is searched again: nothing is dropped.
    async fn dead_letter(
        &self,
        alerts: &[Alert],
        rejected: &[ItemFailure],
        ctx: &AlertContext,
        record: &mut ExecutionRecord,
    ) -> Result<(), RunError> {
        let by_id: HashMap<&str, &Alert> = alerts.iter().map(|a| (a.id.as_str(), a)).collect();
        let letters: Vec<DeadLetter> = rejected
            .iter()
            .map(|f| DeadLetter {
                alert_id: f.id.clone(),
                // the alias written to (the failure names the backing
                // index, which a replay must not write to directly)
                index: self.settings.alerts_index.clone(),
                rule_id: record.rule_id.clone(),
                execution_id: record.execution_id.clone(),
                refused_at: ctx.now,
                status: f.status,
                reason: f.reason.clone(),
                attempts: 1,
                alert: by_id
                    .get(f.id.as_str())
                    .map(|a| a.source.clone())
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect();
        self.state.save_dead_letters(&letters).await?;
        for failure in rejected {
            tracing::error!(
                rule_id = %record.rule_id,
                alert_id = %failure.id,
                index = %failure.index,
                reason = %failure.reason,
                "alert refused by the cluster as invalid; kept as a dead letter"
            );
        }
        record.alerts_dead_lettered += letters.len() as u64;
        Ok(())
    }
}
