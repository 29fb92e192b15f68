//! `detectd dead-letters list|replay`: the alerts the cluster refused as
//! invalid documents (kept by the runs, see `state::dead_letter`), shown,
//! or written again once the cause is fixed (`runner::replay`).
//!
//! Both read the same settings as `detectd run` (the config file, the
//! environment, the state backend) and talk to the cluster directly.

use std::io::Write;

use chrono::Utc;
use serde_json::json;

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::daemon::start::{alerts_sink, state_store, StartError};
use crate::runner::{replay_dead_letters, ReplayError, ReplayReport};
use crate::state::{StateError, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("reading the dead letters: {0}")]
    State(#[from] StateError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

/// Prints one JSON line per dead letter (without the alert document) and
/// returns how many there are.
pub async fn list(settings: &Settings, out: &mut dyn Write) -> Result<usize, DeadLettersError> {
    let cluster = connect(settings).await?;
    let state = state_store(settings, &cluster)?;
    let letters = state.dead_letters().await?;
    for l in &letters {
        serde_json::to_writer(
            &mut *out,
            &json!({
                "alert_id": l.alert_id,
                "index": l.index,
                "rule_id": l.rule_id,
                "execution_id": l.execution_id,
                "refused_at": l.refused_at,
                "status": l.status,
                "reason": l.reason,
                "attempts": l.attempts,
            }),
        )
        .map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(letters.len())
}

/// Writes every dead letter again; what was written or already there leaves
/// the dead letters.
pub async fn replay(settings: &Settings) -> Result<ReplayReport, DeadLettersError> {
    let cluster = connect(settings).await?;
    let state = state_store(settings, &cluster)?;
    let sink = alerts_sink(settings, &cluster);
    Ok(replay_dead_letters(&sink, &state, Utc::now()).await?)
}

async fn connect(settings: &Settings) -> Result<Cluster, StartError> {
    Cluster::connect(&settings.cluster)
        .await
        .map_err(StartError::Connect)
}
