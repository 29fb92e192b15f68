//! Near-real-time tails (`[realtime]`, see `runner::run::tail`): one loop
//! for every rule that tails, on a grid of `every` from the daemon's start,
//! each tick tailing every rule with the grid's wall time as `now` (one
//! `now`, so that with shared scans a tick reads the new events once for all
//! of them). A tail takes a concurrency permit like a run and runs only
//! where the rule's lease is held; it does not wait for the rule's
//! scheduled run (they may overlap: the same alert id written twice is a
//! duplicate). A tick that overruns is followed by the next grid point;
//! missed ticks are not queued: the scheduled windows cover their time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::scheduler::{acquire, next_fire};
use super::{log, Clock, Shared};
use crate::rule::Rule;
use crate::runner::{RuleExecutor, RunStatus};

/// The rules that tail, replaced on reload.
pub(super) type TailRules = watch::Receiver<Vec<Arc<Rule>>>;

pub(super) async fn tail_loop<E, C>(
    shared: Arc<Shared<E, C>>,
    tracker: TaskTracker,
    mut rules: TailRules,
    every: Duration,
    cancel: CancellationToken,
) where
    E: RuleExecutor + 'static,
    C: Clock,
{
    let epoch = Instant::now();
    let mut due = epoch;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let now = shared.grid_wall(due);
        let tailing: Vec<Arc<Rule>> = rules.borrow_and_update().clone();
        let mut tails = tokio::task::JoinSet::new();
        for rule in tailing {
            let (shared, tracker) = (shared.clone(), tracker.clone());
            tails.spawn(async move { tail_one(&shared, &tracker, rule, now, due).await });
        }
        while tails.join_next().await.is_some() {}
        due = next_fire(
            epoch,
            Instant::now().max(due + Duration::from_millis(1)),
            Duration::ZERO,
            every,
        );
    }
}

/// One rule's tail under a permit and its lease, on the runs' runtime.
async fn tail_one<E, C>(
    shared: &Arc<Shared<E, C>>,
    tracker: &TaskTracker,
    rule: Arc<Rule>,
    now: chrono::DateTime<chrono::Utc>,
    due: Instant,
) where
    E: RuleExecutor + 'static,
    C: Clock,
{
    let _permit = acquire(&shared.limit).await;
    let Ok(_lease) = shared.lease(&rule.rule_id) else {
        return;
    };
    let started = Instant::now();
    let executor = shared.executor.clone();
    let task_rule = rule.clone();
    let tail = async move { executor.tail(&task_rule, now).await };
    let record = match shared.spawn_run(tracker, tail).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(rule_id = %rule.rule_id, error = %e, "a tail panicked (a bug in detectd)");
            return;
        }
    };
    shared.metrics.observe_tail(&record);
    // A tail that found something or failed is worth a line; quiet ones
    // only at debug.
    if record.alerts_created > 0 || record.status != RunStatus::Succeeded {
        log::run_finished(
            &record,
            log::RunTiming {
                start_delay: started.saturating_duration_since(due),
                took: started.elapsed(),
            },
        );
    } else {
        tracing::debug!(rule_id = %rule.rule_id, events_fetched = record.events_fetched, "tail finished");
    }
}
