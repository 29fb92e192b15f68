//! Start-up of `detectd run` with real parts: serve `/healthz` and
//! `/metrics` (daemon mode), connect to the cluster and install the index
//! templates (waiting for the cluster with backoff in daemon mode, see
//! [`connect`]), build the rule executor (the [`Runner`]), then hand over to
//! [`Daemon::run`] with the process signals and the system clock.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::connect::{self, Attempt, STARTUP_BACKOFF};
use super::http::{Endpoints, Server};
use super::outage::OutageWatch;
use super::{log, ClusterProbe, Daemon, DaemonOptions, Mode, Outcome, Probe, Signals, SystemClock};
use crate::cluster::{Cluster, ClusterError, RetryPolicy};
use crate::config::{Settings, StateBackend};
use crate::coord::{Coordinator, Timing};
use crate::notify::{Deliverer, TickReport};
use crate::runner::{Runner, RunnerSettings, ScanBoard, TailTiming};
use crate::sink::alerts_index::{AlertsIndexError, BootstrapSpec};
use crate::sink::elasticsearch::{install_templates, BulkSettings, ElasticsearchSink, IndexNames};
use crate::sink::{AlertSink, SinkError};
use crate::source::elasticsearch::ElasticsearchSource;
use crate::state::{AnyStateStore, ClusterStateStore, FileStateStore, StateError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the rule-run threads: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr} for /healthz and /metrics: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] ClusterError),
    #[error("cannot install index templates: {0}")]
    Templates(#[source] ClusterError),
    #[error("cannot use the alerts index: {0}")]
    AlertsIndex(#[source] AlertsIndexError),
    #[error("cannot open the state store: {0}")]
    State(#[source] StateError),
    #[error("cannot set up notifications: {0}")]
    Notify(#[source] crate::notify::deliver::DeliverError),
    #[error("{0}")]
    StateLocked(#[source] crate::coord::LockError),
}

/// Runs `detectd run`. In daemon mode `/healthz` and `/metrics` are served
/// at once and an unreachable cluster is waited for (until a shutdown
/// signal); `--once` serves nothing and fails at once instead.
pub async fn start(settings: Settings, mode: Mode) -> Result<Outcome, StartError> {
    log::settings(&settings);
    // The local backend is one instance's: its directory is held for the
    // whole run, from before the cluster is reached, so a second instance
    // on it stops at once with the reason.
    let _lock = match &settings.state {
        StateBackend::File(dir) => {
            Some(crate::coord::StateDirLock::acquire(dir).map_err(StartError::StateLocked)?)
        }
        StateBackend::Cluster => None,
    };
    let mut signals = signals()?;
    if mode == Mode::Once {
        let cluster = prepare(&settings, RetryPolicy::default())
            .await
            .map_err(|a| match a {
                Attempt::Retry(e) | Attempt::Fatal(e) => e,
            })?;
        return run(&settings, cluster, mode, signals, None).await;
    }

    let endpoints = Endpoints::default();
    let health = endpoints.health.clone();
    let addr = settings.listen;
    let server = Server::start(addr, endpoints.clone())
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(listen = %server.local_addr(), "serving /healthz, /metrics and /rules");
    // No retries inside an attempt: the backoff between attempts is the
    // retry, and each failure is logged and shown on /healthz at once.
    let ready = connect::wait_for(
        || prepare(&settings, RetryPolicy::none()),
        &STARTUP_BACKOFF,
        &health,
        &mut signals.shutdown,
    )
    .await;
    let outcome = match ready {
        Ok(Some(cluster)) => {
            let cluster = cluster.with_retry_policy(RetryPolicy::default());
            run(&settings, cluster, mode, signals, Some(endpoints)).await
        }
        Ok(None) => {
            tracing::info!("stopped before the cluster was reachable");
            Ok(Outcome::default())
        }
        Err(e) => Err(e),
    };
    server.stop().await;
    outcome
}

/// One start-up attempt: connect (`GET /`) and install the index templates.
/// A template install refused for a reason other than an unreachable or
/// busy cluster (e.g. missing privileges) is fatal; any connection failure
/// is worth another attempt (a CA file or credentials may be fixed by then,
/// as before this loop had backoff).
async fn prepare(settings: &Settings, retry: RetryPolicy) -> Result<Cluster, Attempt<StartError>> {
    let cluster = Cluster::connect_with(&settings.cluster, retry)
        .await
        .map_err(|e| Attempt::Retry(StartError::Connect(e)))?;
    let info = cluster.info();
    tracing::info!(
        distribution = ?info.distribution,
        version = %info.version,
        cluster_name = %info.cluster_name,
        "connected"
    );
    let report = install_templates(&cluster, &index_names(settings))
        .await
        .map_err(|e| {
            if e.is_retryable() {
                Attempt::Retry(StartError::Templates(e))
            } else {
                Attempt::Fatal(StartError::Templates(e))
            }
        })?;
    tracing::info!(templates = ?report.templates, "index templates installed");
    // Kibana's alerts alias: found, or created as Kibana would, or waited
    // for. A concrete index squatting its name is fatal: nothing can be
    // written until someone removes it (the error says how).
    let sink = alerts_sink(settings, &cluster);
    match sink.prepare(&settings.indices.alerts).await {
        Ok(()) => tracing::info!(alerts_index = %settings.indices.alerts, "alerts index ready"),
        Err(SinkError::AlertsIndex(e @ AlertsIndexError::Waiting { .. })) => {
            tracing::warn!(alerts_index = %settings.indices.alerts, "{e}");
        }
        Err(SinkError::AlertsIndex(e)) if e.is_retryable() => {
            return Err(Attempt::Retry(StartError::AlertsIndex(e)))
        }
        Err(SinkError::AlertsIndex(e)) => return Err(Attempt::Fatal(StartError::AlertsIndex(e))),
        Err(SinkError::Cluster(e)) => return Err(Attempt::Retry(StartError::Templates(e))),
        Err(e @ SinkError::BadIndex(_)) => {
            return Err(Attempt::Fatal(StartError::AlertsIndex(
                AlertsIndexError::NotAnAlertsAlias {
                    alias: e.to_string(),
                },
            )))
        }
    }
    Ok(cluster)
}

/// The writer of alerts into Kibana's alias: what to do when it is
/// missing, with the Kibana version and the mapping Kibana would give the
/// cluster's distribution.
pub(crate) fn alerts_sink(settings: &Settings, cluster: &Cluster) -> ElasticsearchSink {
    let spec = BootstrapSpec::for_cluster(
        cluster.info(),
        settings.alerts_bootstrap,
        settings.kibana.version.as_deref(),
    );
    ElasticsearchSink::new(cluster.clone(), BulkSettings::default(), spec)
}

/// Builds the executor and the daemon over a connected cluster and runs it;
/// `endpoints` are those already served (daemon mode).
async fn run(
    settings: &Settings,
    cluster: Cluster,
    mode: Mode,
    signals: Signals,
    endpoints: Option<Endpoints>,
) -> Result<Outcome, StartError> {
    // The cluster backend coordinates instances in daemon mode; `--once`
    // runs every rule once, as asked, without leases.
    let coord = match (&settings.state, mode) {
        (StateBackend::Cluster, Mode::Daemon) => Some(coordinator(settings, &cluster)),
        _ => None,
    };
    let state = Arc::new(match &coord {
        Some(c) => AnyStateStore::Cluster(Box::new(
            ClusterStateStore::new(cluster.clone(), &index_names(settings))
                .with_fence(c.clone())
                .with_instance_id(c.instance_id()),
        )),
        None => state_store(settings, &cluster)?,
    });
    let scan_stats = endpoints
        .as_ref()
        .map(|e| e.metrics.scan_stats())
        .unwrap_or_default();
    let executor = executor(settings, &cluster, state.clone(), scan_stats)?;
    let notify = Notifications::start(
        settings,
        state.clone(),
        mode,
        endpoints.as_ref(),
        coord.clone(),
    )?;
    let options = DaemonOptions {
        server: Some(cluster.info().clone()),
        ..DaemonOptions::from_settings(settings)
    };
    // Runs get threads of their own (one per concurrent run): matching is
    // CPU work, and the daemon's runtime must stay free for the schedule,
    // signals and /healthz.
    let runs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.concurrency.clamp(1, 64))
        .thread_name("detectd-run")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let router = Arc::new(crate::notify::Router::new(&settings.notify));
    let probe: Box<dyn Probe> = if router.watches_detectd() {
        Box::new(OutageWatch::new(
            ClusterProbe(cluster),
            state,
            router,
            settings.notify.cluster_unreachable,
            Utc::now,
        ))
    } else {
        Box::new(ClusterProbe(cluster))
    };
    let mut daemon =
        Daemon::new(options, executor, probe, SystemClock).with_runs_on(runs.handle().clone());
    if let Some(endpoints) = &endpoints {
        daemon = daemon.with_endpoints(endpoints);
    }
    if let Some(coord) = coord {
        daemon = daemon.with_coordinator(coord);
    }
    let outcome = daemon.run(mode, signals).await;
    if let Some(n) = notify {
        n.stop().await;
    }
    // Every run has finished (the daemon waited for them); dropping a
    // runtime inside another one is not allowed, so let it go in the background.
    runs.shutdown_background();
    Ok(outcome)
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
fn executor(
    settings: &Settings,
    cluster: &Cluster,
    state: Arc<AnyStateStore>,
    scan_stats: Arc<crate::runner::ScanStats>,
) -> Result<Executor, StartError> {
    let source = ElasticsearchSource::new(cluster.clone());
    let sink = alerts_sink(settings, cluster);
    let runner_settings = RunnerSettings {
        alerts_index: settings.indices.alerts.clone(),
        space_id: settings.space_id.clone(),
        catch_up_horizon: settings.catch_up_horizon,
        kibana_version: crate::alert::kibana_version(
            settings.kibana.version.as_deref(),
            cluster.info(),
        ),
        public_base_url: settings.kibana.public_base_url.clone(),
        ..RunnerSettings::default()
    };
    let router = Arc::new(crate::notify::Router::new(&settings.notify));
    let mut runner = Runner::new(source, sink, state, runner_settings).with_router(router);
    if let Some(r) = &settings.realtime {
        runner = runner.with_tailing(TailTiming {
            every: r.every,
            lag: r.lag,
        });
    }
    Ok(match settings.sharing.enabled {
        true => runner.with_sharing(Arc::new(
            ScanBoard::new(settings.sharing.max_events, scan_stats)
                .with_max_rules(settings.sharing.max_rules)
                .with_local_selection(settings.sharing.select_locally),
        )),
        false => runner,
    })
}

/// The notification worker beside the daemon (daemon mode), or one pass
/// after the runs (`--once`: what fails stays pending for the next start).
struct Notifications {
    deliverer: Option<Deliverer<Arc<AnyStateStore>>>,
    task: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

/// With several instances, which outbox entries this one sends: those of
/// the rules it holds a lease of, and those that belong to no running rule
/// (alerts about detectd itself, rules no instance runs any more) if it is
/// the first live instance. A hand-over between two passes may send one
/// message from both: its idempotency key lets the receiver drop it.
fn outbox_share(coord: Arc<Coordinator>) -> crate::notify::deliver::Share {
    Arc::new(move |entry: &crate::state::OutboxEntry| {
        if entry.about_detectd || coord.owner(&entry.rule_id).is_none() {
            coord.is_leader()
        } else {
            coord.holds(&entry.rule_id)
        }
    })
}

impl Notifications {
    fn start(
        settings: &Settings,
        state: Arc<AnyStateStore>,
        mode: Mode,
        endpoints: Option<&Endpoints>,
        coord: Option<Arc<Coordinator>>,
    ) -> Result<Option<Notifications>, StartError> {
        if settings.notify.is_empty() {
            return Ok(None);
        }
        let mut deliverer = Deliverer::new(state, &settings.notify).map_err(StartError::Notify)?;
        if let Some(coord) = coord {
            deliverer = deliverer.with_share(outbox_share(coord));
        }
        tracing::info!(
            outputs = settings.notify.outputs.len(),
            routes = settings.notify.routes.len(),
            "notifications on"
        );
        if mode == Mode::Once {
            return Ok(Some(Notifications {
                deliverer: Some(deliverer),
                task: None,
            }));
        }
        let cancel = CancellationToken::new();
        let stats = deliverer.stats();
        let endpoints = endpoints.cloned();
        let task = tokio::spawn(deliverer.run(cancel.clone(), Utc::now, move |report| {
            if let Some(e) = &endpoints {
                e.metrics.observe_delivery(report);
                e.health.observe_delivery(report, &stats);
            }
        }));
        Ok(Some(Notifications {
            deliverer: None,
            task: Some((cancel, task)),
        }))
    }

    async fn stop(self) {
        if let Some(d) = self.deliverer {
            match d.tick(Utc::now()).await {
                Ok(r) => tracing::info!(
                    sent = TickReport::total(&r.sent),
                    failed = TickReport::total(&r.failed),
                    given_up = TickReport::total(&r.given_up),
                    pending = TickReport::total(&r.pending),
                    "notifications delivered"
                ),
                Err(e) => tracing::warn!(error = %e, "notifications not delivered"),
            }
        }
        if let Some((cancel, task)) = self.task {
            cancel.cancel();
            let _ = task.await;
        }
    }
}

/// The state store `state.backend` chooses.
pub(crate) fn state_store(
    settings: &Settings,
    cluster: &Cluster,
) -> Result<AnyStateStore, StartError> {
    Ok(match &settings.state {
        StateBackend::Cluster => AnyStateStore::Cluster(Box::new(ClusterStateStore::new(
            cluster.clone(),
            &index_names(settings),
        ))),
        StateBackend::File(dir) => {
            let state = FileStateStore::open(dir).map_err(StartError::State)?;
            tracing::info!(dir = %dir.display(), "state kept in a local directory");
            AnyStateStore::File(state)
        }
    })
}

/// This instance among the others sharing the cluster state.
fn coordinator(settings: &Settings, cluster: &Cluster) -> Arc<Coordinator> {
    let id = settings
        .instance
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    tracing::info!(
        instance_id = %id,
        heartbeat_secs = settings.instance.heartbeat.as_secs_f64(),
        lease_secs = settings.instance.lease.as_secs_f64(),
        "coordinating with other instances through the cluster"
    );
    let store = ClusterStateStore::new(cluster.clone(), &index_names(settings));
    Arc::new(Coordinator::new(
        id,
        Timing {
            heartbeat: settings.instance.heartbeat,
            lease: settings.instance.lease,
        },
        store,
        Arc::new(Utc::now),
    ))
}

pub(crate) fn index_names(settings: &Settings) -> IndexNames {
    IndexNames {
        state: settings.indices.state.clone(),
        executions: settings.indices.executions.clone(),
        dead_letters: settings.indices.dead_letters.clone(),
    }
}

/// The runner over the cluster, with the state backend of the settings.
type Executor = Runner<ElasticsearchSource, ElasticsearchSink, Arc<AnyStateStore>>;
