//! Start-up of `detectd run` with real parts: connect to the cluster
//! (waiting for it in daemon mode), install index templates, build the
//! rule executor (the [`Runner`]), then hand over to [`Daemon::run`] with the process
//! signals and the system clock.

use std::time::Duration;

use super::{
    log, ClusterProbe, Daemon, DaemonError, DaemonOptions, Mode, Outcome, Signals, SystemClock,
};
use crate::cluster::{Cluster, ClusterError};
use crate::config::{Settings, StateBackend};
use crate::rule::Rule;
use crate::runner::{ExecutionRecord, RuleExecutor, Runner, RunnerSettings};
use crate::sink::elasticsearch::{install_templates, BulkSettings, ElasticsearchSink, IndexNames};
use crate::source::elasticsearch::ElasticsearchSource;
use crate::state::{ClusterStateStore, FileStateStore, StateError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the rule-run threads: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] ClusterError),
    #[error("cannot install index templates: {0}")]
    Templates(#[source] ClusterError),
    #[error("cannot open the state store: {0}")]
    State(#[source] StateError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// How long to wait between connection attempts while the cluster is not
/// up yet (containers start together).
const CONNECT_RETRY: Duration = Duration::from_secs(5);

/// Runs `detectd run`. In daemon mode an unreachable cluster is waited for
/// (until a shutdown signal); `--once` fails at once instead.
pub async fn start(settings: Settings, mode: Mode) -> Result<Outcome, StartError> {
    log::settings(&settings);
    let mut signals = signals()?;
    let cluster = loop {
        match Cluster::connect(&settings.cluster).await {
            Ok(c) => break c,
            Err(e) if mode == Mode::Once => return Err(StartError::Connect(e)),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = CONNECT_RETRY.as_secs(), "cluster not reachable yet");
                tokio::select! {
                    _ = &mut signals.shutdown => return Ok(Outcome::default()),
                    _ = tokio::time::sleep(CONNECT_RETRY) => {}
                }
            }
        }
    };
    let info = cluster.info();
    tracing::info!(
        distribution = ?info.distribution,
        version = %info.version,
        cluster_name = %info.cluster_name,
        "connected"
    );
    let report = install_templates(&cluster, &index_names(&settings))
        .await
        .map_err(StartError::Templates)?;
    tracing::info!(templates = ?report.templates, alerts_index_existed = report.alerts_index_existed, "index templates installed");

    let executor = executor(&settings, &cluster)?;
    let mut options = DaemonOptions::from_settings(&settings);
    if mode == Mode::Once {
        options.listen = None;
    }
    // Runs get threads of their own (one per concurrent run): matching is
    // CPU work, and the daemon's runtime must stay free for the schedule,
    // signals and /healthz.
    let runs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.concurrency.clamp(1, 64))
        .thread_name("detectd-run")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let daemon = Daemon::new(options, executor, ClusterProbe(cluster), SystemClock)
        .with_runs_on(runs.handle().clone());
    let outcome = daemon.run(mode, signals).await;
    // Every run has finished (the daemon waited for them); dropping a
    // runtime inside another one is not allowed, so let it go in the background.
    runs.shutdown_background();
    Ok(outcome?)
}

#[cfg(unix)]
fn signals() -> Result<Signals, StartError> {
    Signals::os().map_err(StartError::Signals)
}

#[cfg(not(unix))]
fn signals() -> Result<Signals, StartError> {
    let (signals, _reload) = Signals::new(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    Ok(signals)
}

/// The one place the rule executor is built from the settings and the
/// cluster: the [`Runner`] over the cluster's events and alerts index, with
/// its state in the cluster or in a local directory.
fn executor(settings: &Settings, cluster: &Cluster) -> Result<Executor, StartError> {
    let source = ElasticsearchSource::new(cluster.clone());
    let sink = ElasticsearchSink::new(cluster.clone(), BulkSettings::default());
    let runner_settings = RunnerSettings {
        alerts_index: settings.indices.alerts.clone(),
        space_id: settings.space_id.clone(),
        catch_up_horizon: settings.catch_up_horizon,
        ..RunnerSettings::default()
    };
    Ok(match &settings.state {
        StateBackend::Cluster => {
            let state = ClusterStateStore::new(cluster.clone(), &index_names(settings));
            Executor::Cluster(Runner::new(source, sink, state, runner_settings))
        }
        StateBackend::File(dir) => {
            let state = FileStateStore::open(dir).map_err(StartError::State)?;
            tracing::info!(dir = %dir.display(), "state kept in a local directory");
            Executor::File(Runner::new(source, sink, state, runner_settings))
        }
    })
}

fn index_names(settings: &Settings) -> IndexNames {
    IndexNames {
        alerts: settings.indices.alerts.clone(),
        state: settings.indices.state.clone(),
        executions: settings.indices.executions.clone(),
    }
}

/// The runner with either state backend (the store is a type parameter).
enum Executor {
    Cluster(Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore>),
    File(Runner<ElasticsearchSource, ElasticsearchSink, FileStateStore>),
}

impl RuleExecutor for Executor {
    async fn execute(&self, rule: &Rule, now: chrono::DateTime<chrono::Utc>) -> ExecutionRecord {
        match self {
            Executor::Cluster(r) => r.execute(rule, now).await,
            Executor::File(r) => r.execute(rule, now).await,
        }
    }
}
