//! [`Runner`]: the steps of one rule run (see the module doc of `runner`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tracing::Instrument;

use super::alerts::{alert_rule, group_ids};
use super::detect::{Candidate, Detector, History, Reach};
use super::record::{ExecutionIds, ExecutionRecord, RunStatus, WindowRange};
use super::report::{gap_warning, MAX_SIGNALS_WARNING};
use super::suppress;
use super::RuleExecutor;
use crate::alert::{self, Alert, AlertContext, AlertRule, SourceEvent};
use crate::eql::compile::PlanSetError;
use crate::eql::search::SearchError;
use crate::eql::sequence::Limits;
use crate::eql::EqlError;
use crate::rule::Rule;
use crate::schedule::window::{plan_windows, Timing, Window};
use crate::sink::{AlertSink, ItemFailure, SinkError};
use crate::source::{DocRef, EventSource, FetchRequest, SourceError, TimeFilter, TimeRange};
use crate::state::{CapCut, Checkpoint, DeadLetter, PendingWindow, StateError, StateStore};

mod range;
mod threat;
mod threshold;

/// How runs are carried out, the same for every rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerSettings {
    /// Where alerts go (Kibana's default space alias by default).
    pub alerts_index: String,
    /// Kibana space stamped on alerts and hashed into event alert ids.
    pub space_id: String,
    /// How far back catch-up after downtime may go; older time is a gap.
    pub catch_up_horizon: Duration,
    /// How far a window of a sequence without `maxspan` reaches back before
    /// its start, so such sequences are not cut at a run boundary.
    pub unbounded_sequence_lookback: Duration,
    /// Events per page of a window's search.
    pub page_size: usize,
    /// Matcher limits (partial sequences kept).
    pub limits: Limits,
    /// `kibana.version` stamped on alerts.
    pub kibana_version: String,
    /// Kibana's public URL, for `kibana.alert.url` (none: no link).
    pub public_base_url: Option<String>,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            alerts_index: ".alerts-security.alerts-default".to_string(),
            space_id: "default".to_string(),
            catch_up_horizon: Duration::from_secs(24 * 3600),
            unbounded_sequence_lookback: Duration::from_secs(3600),
            page_size: 1_000,
            limits: Limits::default(),
            kibana_version: crate::alert::MODELLED_KIBANA_VERSION.to_string(),
            public_base_url: None,
        }
    }
}

/// Why a run stopped. Becomes the `error` of a `failed` record.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("query does not compile: {0}")]
    Compile(EqlError),
    /// The query is valid, but not for the type an index maps a field with
    /// (a literal that is no ip for an `ip` field): Elasticsearch fails
    /// such a search too.
    #[error("query does not compile {0}")]
    CompileForIndex(PlanSetError),
    #[error("query cannot run: {0}")]
    Search(#[from] SearchError),
    #[error("reading state: {0}")]
    State(#[from] StateError),
    #[error("fetching events: {0}")]
    Source(#[from] SourceError),
    #[error("writing alerts: {0}")]
    Sink(#[from] SinkError),
    #[error("the exception lists cannot be applied: {0}")]
    Exceptions(crate::exceptions::BuildError),
    #[error(
        "{failed} alerts could not be written (the window will be searched again), first: {first}"
    )]
    WriteIncomplete { failed: usize, first: ItemFailure },
}

/// Runs rules over an event source, writing alerts to a sink and
/// checkpoints and records to a state store.
#[derive(Debug)]
pub struct Runner<S, K, T> {
    source: S,
    sink: K,
    state: T,
    settings: RunnerSettings,
    execution_ids: ExecutionIds,
    /// Routes of notifications: new alert groups go to the state's outbox.
    router: Option<Arc<crate::notify::Router>>,
    /// Alerts about detectd itself, when a route takes them.
    watch: Option<Arc<crate::notify::Watch>>,
}

impl<S, K, T> Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    pub fn new(source: S, sink: K, state: T, settings: RunnerSettings) -> Self {
        Runner {
            source,
            sink,
            state,
            settings,
            execution_ids: ExecutionIds::default(),
            router: None,
            watch: None,
        }
    }

    /// The runner with notification routes: each window adds the messages
    /// of its new alert groups to the state store's outbox before writing
    /// them (see `notify::outbox`).
    pub fn with_router(mut self, router: Arc<crate::notify::Router>) -> Self {
        self.watch = crate::notify::Watch::new(router.clone()).map(Arc::new);
        self.router = Some(router).filter(|r| !r.is_empty());
        self
    }

    /// The runner with another way of making execution ids (random by
    /// default).
    pub fn with_execution_ids(mut self, ids: ExecutionIds) -> Self {
        self.execution_ids = ids;
        self
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn state(&self) -> &T {
        &self.state
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// The run behind [`RuleExecutor::execute`].
    pub async fn run(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        let clock = Instant::now();
        let mut record = ExecutionRecord::started(
            &rule.rule_id,
            &rule.name,
            self.execution_ids.make(&rule.rule_id, now),
            now,
        );
        // The span ties what the sink and the cluster client log (bulk
        // requests, retries) to the rule whose run caused it.
        let outcome = self
            .run_windows(rule, now, &mut record)
            .instrument(tracing::debug_span!("rule_run", rule_id = %rule.rule_id))
            .await;
        self.finish(&mut record, outcome, now, clock).await;
        record
    }

    /// Sets the status, error and end time of a run's record from its
    /// outcome, and stores it.
    async fn finish(
        &self,
        record: &mut ExecutionRecord,
        outcome: Result<(), RunError>,
        now: DateTime<Utc>,
        clock: Instant,
    ) {
        record.status = match &outcome {
            Err(e) => {
                record.error = Some(e.to_string());
                RunStatus::Failed
            }
            Ok(()) if !record.warnings.is_empty() => RunStatus::PartialFailure,
            Ok(()) => RunStatus::Succeeded,
        };
        record.finished_at = add(
            now,
            TimeDelta::from_std(clock.elapsed()).unwrap_or_default(),
        );
        tracing::debug!(rule_id = %record.rule_id, "storing the execution record");
        if let Err(e) = self.state.record_execution(record).await {
            tracing::warn!(
                rule_id = %record.rule_id,
                execution_id = %record.execution_id,
                error = %e,
                "cannot store the execution record"
            );
        }
        if let Some(watch) = &self.watch {
            watch.observe(&self.state, record, now).await;
        }
        // The run's log line is written by its caller (the daemon's
        // `log::run_finished`), the one place that defines it.
    }

    async fn run_windows(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        record: &mut ExecutionRecord,
    ) -> Result<(), RunError> {
        let detector = Detector::new(rule, &self.settings, now)?;
        // Nothing is searched while alerts cannot be written (e.g. waiting
        // for Kibana to create the alerts index): the windows stay due.
        self.sink.prepare(&self.settings.alerts_index).await?;

        let timing = timing(rule, &self.settings, now);
        let anchor = anchor(rule, now);
        let checkpoint = self.state.checkpoint(&rule.rule_id).await?;
        let covered = checkpoint.as_ref().map(|c| c.covered_until);
        // A threshold rule's alerted groups (`Checkpoint::threshold_history`).
        let mut history = checkpoint
            .as_ref()
            .map(|c| threshold::loaded(&c.threshold_history))
            .unwrap_or_default();
        // A capped window the last run wrote but did not commit (it died).
        let mut pending = checkpoint.and_then(|c| c.pending);
        let windows = plan_windows(timing, covered, anchor);
        // Progress lines at debug level: after a crash (or in a slow run)
        // they tell how far the run got: searching, writing, committing.
        tracing::debug!(
            rule_id = %rule.rule_id,
            windows = windows.windows.len(),
            checkpoint = ?covered.map(|c| c.to_rfc3339()),
            "windows planned"
        );
        if let Some(gap) = windows.gap {
            record.gap = Some(WindowRange {
                start: gap.start,
                end: gap.end,
            });
            record.warnings.push(gap_warning(&gap, timing.horizon));
        }

        let reach = detector.reach();
        let scope = self.alert_scope(rule, &detector, now, record);
        let mut previous_end = covered;
        // Ids acknowledged by earlier windows of this run: catch-up windows
        // overlap, and a sink's search may not show its last writes yet.
        let mut acknowledged: HashSet<String> = HashSet::new();
        // Suppression's open alerts written by earlier windows of this run.
        let open = suppress::OpenAlerts::default();
        for window in windows.windows {
            tracing::debug!(
                rule_id = %rule.rule_id,
                window_start = %window.start.to_rfc3339(),
                window_end = %window.end.to_rfc3339(),
                "window started"
            );
            record.windows.push(WindowRange {
                start: window.start,
                end: window.end,
            });
            let WindowSearch {
                offer_from,
                request,
            } = window_search(rule, &self.settings, reach, window, previous_end);
            let request = detector.request(request);

            let search_clock = Instant::now();
            let matched = detector
                .matches(&self.source, request, window, offer_from, &history, record)
                .await;
            record.search_duration_ms += millis(search_clock.elapsed());
            let candidates = matched?;
            tracing::debug!(
                rule_id = %rule.rule_id,
                window_end = %window.end.to_rfc3339(),
                matches = candidates.len(),
                "window matched"
            );

            let retried = pending.take().filter(|p| p.window_end == window.end);
            let marks = threshold::marks(&candidates, &scope.alert_rule, &self.settings.space_id);
            let attempt = Attempt {
                window,
                covered: previous_end,
                retried_cut: retried.as_ref().map(|p| &p.cap_cut),
                history: &history,
                open: &open,
            };
            let alerted = self
                .alert_window(&scope, candidates, &attempt, &mut acknowledged, record)
                .await?;
            threshold::advance(&mut history, &marks, &alerted, window.start);
            tracing::debug!(
                rule_id = %rule.rule_id,
                window_end = %window.end.to_rfc3339(),
                alerts_created = record.alerts_created,
                "window alerts written"
            );
            self.state
                .save_checkpoint(&Checkpoint {
                    rule_id: rule.rule_id.clone(),
                    covered_until: window.end,
                    updated_at: now,
                    pending: None,
                    threshold_history: threshold::stored(&history),
                })
                .await?;
            tracing::debug!(
                rule_id = %rule.rule_id,
                covered_until = %window.end.to_rfc3339(),
                "checkpoint saved"
            );
            previous_end = Some(window.end);
        }
        Ok(())
    }

    /// What every alert of a run of `rule` at `now` is built from.
    fn alert_scope<'r>(
        &self,
        rule: &'r Rule,
        detector: &Detector<'_>,
        now: DateTime<Utc>,
        record: &ExecutionRecord,
    ) -> AlertScope<'r> {
        AlertScope {
            rule,
            alert_rule: alert_rule(rule, now),
            ctx: AlertContext {
                now,
                space_id: self.settings.space_id.clone(),
                execution_uuid: record.execution_id.clone(),
                kibana_version: self.settings.kibana_version.clone(),
                public_base_url: self.settings.public_base_url.clone(),
            },
            grouped: detector.grouped(),
        }
    }

    /// The search of one window over `range`: the rule's indices and time
    /// fields, narrowed by its detector.
    /// Dedup, cap, read sources, build and write the alerts of one window.
    /// Returns the head ids of the matches that are alerted (written now,
    /// or already there); those the cap left out are not among them.
    async fn alert_window(
        &self,
        scope: &AlertScope<'_>,
        candidates: Vec<Candidate>,
        attempt: &Attempt<'_>,
        acknowledged: &mut HashSet<String>,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<String>, RunError> {
        let AlertScope {
            rule,
            alert_rule,
            ctx,
            grouped,
        } = scope;
        let grouped = *grouped;
        if candidates.is_empty() {
            return Ok(Vec::new());
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

        let cap = usize::try_from(rule.max_signals).unwrap_or(usize::MAX);
        let mut new_groups = 0usize;
        let mut capped = 0u64;
        let mut cap_cut: Option<CapCut> = None;
        // Each chosen match with its new ids and its head id.
        let mut chosen: Vec<(Candidate, HashSet<String>, String)> = Vec::new();
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
        if chosen.is_empty() {
            return Ok(alerted);
        }

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

impl<S, K, T> RuleExecutor for Runner<S, K, T>
where
    S: EventSource,
    K: AlertSink,
    T: StateStore,
{
    async fn execute(&self, rule: &Rule, now: DateTime<Utc>) -> ExecutionRecord {
        self.run(rule, now).await
    }
}

/// What every alert of a run is built from.
struct AlertScope<'r> {
    rule: &'r Rule,
    alert_rule: AlertRule,
    ctx: AlertContext,
    /// Sequences and samples give a shell plus building blocks.
    grouped: bool,
}

/// The window being alerted, and what the state says about it.
struct Attempt<'a> {
    window: Window,
    /// The checkpoint before this window (`None` on a rule's first run).
    covered: Option<DateTime<Utc>>,
    /// Where an earlier attempt at this same window, which died between
    /// its bulk write and its checkpoint, cut its matches.
    retried_cut: Option<&'a CapCut>,
    /// The threshold history before this window (kept in a capped
    /// window's pending checkpoint).
    history: &'a History,
    /// This run's open suppression alerts (see `suppress`).
    open: &'a suppress::OpenAlerts,
}

/// A rule's timing for [`plan_windows`] of a run at `now`: its interval,
/// the width of its windows (`to - from`) and the catch-up horizon.
///
/// A cron rule's quiet time is not downtime: a business-hours rule
/// (`*/5 9-17 * * MON-FRI`) last ran on Friday at 17:55, and its first run
/// on Monday covers the weekend from its checkpoint, window by window as
/// any catch-up, with no gap. So its horizon reaches back to the fire
/// before this run's, plus the configured horizon for downtime before
/// that. (Kibana has no cron schedules; for its interval rules a missed
/// run is a gap.)
pub(crate) fn timing(rule: &Rule, settings: &RunnerSettings, now: DateTime<Utc>) -> Timing {
    let mut horizon = delta(settings.catch_up_horizon);
    if let Some(cron) = &rule.schedule.cron {
        // `now` is this run's fire or just after it: the fire before that
        // is where the previous run's checkpoint is, when it ran on time.
        let this_fire = cron
            .previous_before(now + TimeDelta::nanoseconds(1))
            .unwrap_or(now);
        if let Some(previous) = cron.previous_before(this_fire) {
            horizon += (now - previous).max(TimeDelta::zero());
        }
    }
    Timing {
        interval: delta(rule.schedule.interval),
        width: delta(rule.schedule.lookback()),
        horizon,
    }
}

/// Where a run at `now` ends its last window: `now`, shifted by a `to`
/// other than `now` (e.g. `now-1m` shifts every window).
pub(crate) fn anchor(rule: &Rule, now: DateTime<Utc>) -> DateTime<Utc> {
    add(now, TimeDelta::milliseconds(rule.schedule.to.offset_ms()))
}

/// What one window fetches: the search, and from when matches are offered.
#[derive(Clone, Debug)]
pub(crate) struct WindowSearch {
    /// Matches (events, or sequences by their last event) from here on are
    /// offered; earlier ones were offered by an earlier window.
    pub(crate) offer_from: DateTime<Utc>,
    pub(crate) request: FetchRequest,
}

/// The search of `window`, after `previous_end` (the end of what is
/// already acknowledged; `None` on a rule's first run), before the rule's
/// detector narrows it ([`Detector::request`]).
pub(crate) fn window_search(
    rule: &Rule,
    settings: &RunnerSettings,
    reach: Reach,
    window: Window,
    previous_end: Option<DateTime<Utc>>,
) -> WindowSearch {
    // The part of the window after what is already acknowledged.
    let new_start = previous_end.map_or(window.start, |p| p.clamp(window.start, window.end));
    // Matches ending in the window are offered, and, for a trailing
    // missing-event stage, those the previous window could not decide yet
    // (ending within `maxspan` before its end).
    let offer_from = window.start.min(sub(new_start, reach.undecided));
    let fetch_from = sub(offer_from, reach.before);
    WindowSearch {
        offer_from,
        request: base_request(
            rule,
            settings,
            TimeRange {
                from: fetch_from,
                to: window.end,
            },
        ),
    }
}

/// The search of `range` over the rule's indices, before its detector
/// narrows it: Kibana's time filter, the page size.
pub(super) fn base_request(
    rule: &Rule,
    settings: &RunnerSettings,
    range: TimeRange,
) -> FetchRequest {
    let mut request = FetchRequest::new(rule.index.clone(), range);
    request.time_filter = TimeFilter::kibana(
        rule.timestamp_override.as_deref(),
        rule.timestamp_override_fallback_disabled,
    );
    request.page_size = settings.page_size;
    request
}

/// Ten years: longer spans are clamped (keeps date arithmetic in range).
pub(super) const MAX_REACH_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

pub(super) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d)
        .unwrap_or(TimeDelta::MAX)
        .min(TimeDelta::milliseconds(MAX_REACH_MS))
}

fn add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn sub(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
