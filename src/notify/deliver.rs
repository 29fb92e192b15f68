//! The delivery worker: sends pending outbox entries and records each
//! attempt, so that a restart resumes where the last process stopped.
//!
//! One pass ([`Deliverer::tick`]) reads the pending entries, keeps those
//! whose window the rule's checkpoint covers (their alerts are written and
//! committed) and whose backoff has passed, and sends them per output, the
//! outputs side by side: an output that is down or slow costs its own
//! messages a retry, never another output's, and never a rule run (runs
//! only add entries). After a failure an output's other messages wait for
//! the next pass. A failure waits `retry_initial`, doubled per attempt up
//! to `retry_max`; a message still not delivered `give_up_after` its run,
//! or refused for its content (a 4xx), is given up and logged, and
//! announced to the `kind = "detectd"` routes (`notify::incident`). Those
//! alerts about detectd itself wait for no checkpoint.
//!
//! Each message sent is recorded at once ([`StateStore::outbox_record`]:
//! no refresh on the cluster, an append on files), so a crash resends at
//! most the messages in flight at that moment, one per output; the pass's
//! closing update writes every outcome again and makes them visible to the
//! next pass. A crash between a send and its record sends the message
//! again: the idempotency key it carries lets the receiver drop it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::config::{DeliverySettings, NotifySettings};
use super::incident::{announce, Incident};
use super::output::{DeliveryError, Output};
use super::route::Router;
use crate::state::{OutboxEntry, OutboxStatus, StateError, StateStore, OUTBOX_RETENTION};

/// How often the running worker prunes settled entries.
pub const PRUNE_EVERY: TimeDelta = TimeDelta::hours(1);

/// What one pass did, per output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub sent: BTreeMap<String, u64>,
    /// Failed attempts (retried later).
    pub failed: BTreeMap<String, u64>,
    pub given_up: BTreeMap<String, u64>,
    /// Still pending after the pass (waiting for a checkpoint or a retry).
    pub pending: BTreeMap<String, u64>,
}

impl TickReport {
    pub fn total(map: &BTreeMap<String, u64>) -> u64 {
        map.values().sum()
    }
}

/// Totals since start, for `/healthz` and logs.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub given_up: AtomicU64,
    pub pending: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl DeliveryStats {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, report: &TickReport) {
        self.sent
            .fetch_add(TickReport::total(&report.sent), Ordering::Relaxed);
        self.failed
            .fetch_add(TickReport::total(&report.failed), Ordering::Relaxed);
        self.given_up
            .fetch_add(TickReport::total(&report.given_up), Ordering::Relaxed);
        self.pending
            .store(TickReport::total(&report.pending), Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("reading the outbox: {0}")]
    State(#[from] StateError),
    #[error("output `{output}`: {source}")]
    Output {
        output: String,
        #[source]
        source: DeliveryError,
    },
}

/// Sends the outbox of one state store through the configured outputs.
pub struct Deliverer<T> {
    state: T,
    outputs: HashMap<String, Arc<Output>>,
    settings: DeliverySettings,
    stats: Arc<DeliveryStats>,
    /// For the alerts about given-up messages.
    router: Router,
    /// Which entries this instance sends (see [`Deliverer::with_share`]).
    share: Share,
}

/// Whether this instance sends an entry: with several instances, each sends
/// those of the rules it holds a lease for (`coord`), so a message is not
/// sent by two; alone, it sends every one.
pub type Share = Arc<dyn Fn(&OutboxEntry) -> bool + Send + Sync>;

/// One output's due entries, sent in order.
struct Batch {
    output: Arc<Output>,
    entries: Vec<OutboxEntry>,
}

/// The outcome of one entry's attempt.
struct Attempted {
    entry: OutboxEntry,
    outcome: Outcome,
}

enum Outcome {
    Sent,
    /// May succeed later.
    Failed(String),
    /// Tried, and refused for what it is: no retry can help.
    Refused(String),
    /// Not tried: it cannot be sent.
    GivenUp(String),
}

impl<T: StateStore + Clone + 'static> Deliverer<T> {
    pub fn new(state: T, settings: &NotifySettings) -> Result<Deliverer<T>, DeliverError> {
        let mut outputs = HashMap::new();
        for o in &settings.outputs {
            let output = Output::new(o, settings.delivery.timeout).map_err(|source| {
                DeliverError::Output {
                    output: o.name.clone(),
                    source,
                }
            })?;
            outputs.insert(o.name.clone(), Arc::new(output));
        }
        Ok(Deliverer {
            state,
            outputs,
            settings: settings.delivery.clone(),
            stats: Arc::new(DeliveryStats::default()),
            router: Router::new(settings),
            share: Arc::new(|_| true),
        })
    }

    /// Sends only the entries `share` says are this instance's; the others
    /// are left as they are (not counted, not given up) for their instance.
    pub fn with_share(mut self, share: Share) -> Self {
        self.share = share;
        self
    }

    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// The wait after `attempts` failures.
    fn backoff(&self, attempts: u32) -> TimeDelta {
        let initial = self.settings.retry_initial.as_millis().max(1);
        let shift = attempts.saturating_sub(1).min(30);
        let ms = initial
            .saturating_mul(1u128 << shift)
            .min(self.settings.retry_max.as_millis().max(1));
        TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// One pass over the pending entries at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, DeliverError> {
        let pending = self.state.outbox_pending().await?;
        let mut report = TickReport::default();
        // Every output has a pending count, 0 included, so a gauge that
        // went up comes down again.
        for name in self.outputs.keys() {
            report.pending.insert(name.clone(), 0);
        }
        let give_up = TimeDelta::from_std(self.settings.give_up_after).unwrap_or(TimeDelta::MAX);
        let mut covered: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
        let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
        let mut settled: Vec<Attempted> = Vec::new();
        for entry in pending.into_iter().filter(|e| (self.share)(e)) {
            let Some(output) = self.outputs.get(&entry.output) else {
                // Removed from the config since the run: nothing can send it.
                let why = format!("output `{}` is no longer configured", entry.output);
                settled.push(Attempted {
                    entry,
                    outcome: Outcome::GivenUp(why),
                });
                continue;
            };
            if !entry.about_detectd && !covered.contains_key(&entry.rule_id) {
                let c = self.state.checkpoint(&entry.rule_id).await?;
                covered.insert(entry.rule_id.clone(), c.map(|c| c.covered_until));
            }
            // An alert about detectd announces no alerts: nothing to wait for.
            let committed = entry.about_detectd
                || covered[&entry.rule_id].is_some_and(|c| c >= entry.window_end);
            let expired = now.signed_duration_since(entry.created_at) >= give_up;
            if !committed {
                if expired {
                    settled.push(Attempted {
                        entry,
                        outcome: Outcome::GivenUp(
                            "its window was never committed (the rule's runs keep failing?)".into(),
                        ),
                    });
                } else {
                    *report.pending.entry(entry.output.clone()).or_default() += 1;
                }
                continue;
            }
            if entry.next_attempt_at.is_some_and(|at| at > now) {
                *report.pending.entry(entry.output.clone()).or_default() += 1;
                continue;
            }
            batches
                .entry(entry.output.clone())
                .or_insert_with(|| Batch {
                    output: output.clone(),
                    entries: Vec::new(),
                })
                .entries
                .push(entry);
        }

        // Outputs side by side: one that hangs until its timeout holds up
        // only its own batch.
        let mut tasks = tokio::task::JoinSet::new();
        for (_, batch) in batches {
            tasks.spawn(send_batch(batch, self.state.clone(), now));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((attempted, untried)) => {
                    settled.extend(attempted);
                    for e in untried {
                        *report.pending.entry(e.output).or_default() += 1;
                    }
                }
                Err(e) => tracing::error!(error = %e, "a delivery task failed"),
            }
        }

        let mut updates = Vec::new();
        for Attempted { mut entry, outcome } in settled {
            let output = entry.output.clone();
            let not_tried = matches!(outcome, Outcome::GivenUp(_));
            match outcome {
                Outcome::Sent => {
                    mark_sent(&mut entry, now);
                    *report.sent.entry(output.clone()).or_default() += 1;
                    tracing::info!(output = %output, key = %entry.key, rule_id = %entry.rule_id,
                        attempts = entry.attempts, "notification sent");
                }
                Outcome::Failed(why) if now.signed_duration_since(entry.created_at) < give_up => {
                    entry.attempts += 1;
                    let wait = self.backoff(entry.attempts);
                    entry.next_attempt_at = Some(now + wait);
                    entry.last_error = Some(why.clone());
                    *report.failed.entry(output.clone()).or_default() += 1;
                    *report.pending.entry(output.clone()).or_default() += 1;
                    tracing::warn!(output = %output, key = %entry.key, attempts = entry.attempts,
                        retry_in_ms = wait.num_milliseconds(), error = %why,
                        "notification not delivered, will retry");
                    self.set_last_error(&output, &why);
                }
                Outcome::Failed(why) | Outcome::Refused(why) | Outcome::GivenUp(why) => {
                    entry.attempts += u32::from(!not_tried);
                    entry.status = OutboxStatus::GivenUp;
                    entry.last_error = Some(why.clone());
                    *report.given_up.entry(output.clone()).or_default() += 1;
                    tracing::error!(output = %output, key = %entry.key, rule_id = %entry.rule_id,
                        attempts = entry.attempts, error = %why, "notification given up");
                    self.set_last_error(&output, &why);
                }
            }
            updates.push(entry);
        }
        self.state.outbox_update(&updates).await?;
        self.announce_given_up(&updates, now).await;
        self.stats.add(&report);
        Ok(report)
    }

    /// Tells the `kind = "detectd"` routes of the messages just given up,
    /// after their record (a crash in between announces nothing, rather
    /// than a message that may still be sent). A given-up alert about
    /// detectd is not announced: an output that is down would otherwise
    /// feed on its own failures.
    async fn announce_given_up(&self, updates: &[OutboxEntry], now: DateTime<Utc>) {
        if !self.router.watches_detectd() {
            return;
        }
        for e in updates
            .iter()
            .filter(|e| e.status == OutboxStatus::GivenUp && !e.about_detectd)
        {
            let incident = Incident::DeliveryGivenUp {
                entry: e.id.clone(),
                output: e.output.clone(),
                rule_id: e.rule_id.clone(),
                error: e.last_error.clone().unwrap_or_default(),
            };
            if let Err(err) = announce(&self.router, &self.state, &incident, now).await {
                tracing::warn!(key = %e.key, error = %err,
                    "cannot add the alert about a given-up notification");
            }
        }
    }

    fn set_last_error(&self, output: &str, why: &str) {
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(format!("output `{output}`: {why}"));
    }

    /// Drops settled entries older than [`OUTBOX_RETENTION`] at `now`
    /// (a failure is logged: the next prune tries again).
    pub async fn prune(&self, now: DateTime<Utc>) {
        match self.state.outbox_prune(now - OUTBOX_RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(dropped = n, "settled notifications past retention pruned"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox, will retry"),
        }
    }

    /// Passes every `poll_interval` until `cancel`, pruning the outbox at
    /// the first pass and every [`PRUNE_EVERY`] after; `observe` sees each
    /// pass's report (metrics, health).
    pub async fn run(
        self,
        cancel: CancellationToken,
        now: impl Fn() -> DateTime<Utc> + Send,
        observe: impl Fn(&TickReport) + Send,
    ) {
        let mut pruned_at: Option<DateTime<Utc>> = None;
        loop {
            let at = now();
            if pruned_at.is_none_or(|p| at.signed_duration_since(p) >= PRUNE_EVERY) {
                self.prune(at).await;
                pruned_at = Some(at);
            }
            match self.tick(at).await {
                Ok(report) => observe(&report),
                Err(e) => tracing::warn!(error = %e, "delivery pass failed, will retry"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }
}

/// What an entry becomes once its output acknowledged it.
fn mark_sent(entry: &mut OutboxEntry, now: DateTime<Utc>) {
    entry.status = OutboxStatus::Sent;
    entry.attempts += 1;
    entry.sent_at = Some(now);
    entry.next_attempt_at = None;
}

/// Sends a batch in order until the first failure, recording each message
/// sent before the next is tried; returns the attempts and the entries not
/// tried.
async fn send_batch<T: StateStore>(
    batch: Batch,
    state: T,
    now: DateTime<Utc>,
) -> (Vec<Attempted>, Vec<OutboxEntry>) {
    let mut attempted = Vec::new();
    let mut rest = batch.entries.into_iter();
    for entry in rest.by_ref() {
        let outcome = match serde_json::from_str(&entry.message) {
            Err(e) => Outcome::GivenUp(DeliveryError::Message(e.to_string()).to_string()),
            Ok(message) => match batch.output.send(&message).await {
                Ok(()) => Outcome::Sent,
                Err(e) if e.is_permanent() => Outcome::Refused(e.to_string()),
                Err(e) => Outcome::Failed(e.to_string()),
            },
        };
        if matches!(outcome, Outcome::Sent) {
            let mut sent = entry.clone();
            mark_sent(&mut sent, now);
            // Not fatal: the pass's closing update writes it again.
            if let Err(e) = state.outbox_record(std::slice::from_ref(&sent)).await {
                tracing::warn!(key = %entry.key, error = %e,
                    "cannot record a notification just sent; the pass's update will");
            }
        }
        let failed = matches!(outcome, Outcome::Failed(_));
        attempted.push(Attempted { entry, outcome });
        if failed {
            break;
        }
    }
    (attempted, rest.collect())
}
