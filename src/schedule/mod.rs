//! Per-rule timing: which windows a run searches, catch-up after downtime,
//! gaps beyond the horizon (`window`), and when a cron rule fires (`cron`).
//! Sleeping until a run is due is the daemon scheduler's.

pub mod cron;
pub mod window;
