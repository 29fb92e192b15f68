//! Per-rule timing: which windows a run searches, catch-up after downtime,
//! gaps beyond the horizon. (Run scheduling itself arrives with the runner.)

pub mod window;
