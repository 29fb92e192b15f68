//! One rule run, end to end: the contract of DESIGN.md "What one rule run
//! MUST do" (windows, fetch, match, alerts, dedup and cap, write, commit).
//!
//! [`RuleExecutor`] is the seam between the daemon (scheduling, shutdown,
//! health, metrics) and the run itself, so each side can be tested alone.

pub mod record;

use std::future::Future;

use chrono::{DateTime, Utc};

pub use record::{ExecutionRecord, RunStatus};

use crate::rule::Rule;

/// Runs one rule at a point in time: every window due since its checkpoint,
/// oldest first, then commits. Never panics and never returns an error: a
/// failure is a `failed` [`ExecutionRecord`] whose windows are retried by
/// the next run (the checkpoint did not move).
pub trait RuleExecutor: Send + Sync {
    fn execute(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
    ) -> impl Future<Output = ExecutionRecord> + Send;
}
