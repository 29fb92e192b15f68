//! Whole rule runs (the `Runner`, in process) whose cluster traffic goes
//! through the fault proxy of `tests/common/fault_proxy.rs` in front of the
//! live cluster at `ELASTICSEARCH_URL`: connections reset mid-fetch, a
//! point in time closed mid-fetch, bulk requests written but never
//! acknowledged, bulk items refused with 429 / 503, responses slower than
//! the request timeout.
//!
//! The properties (issue 6): the run is retried or fails; a failed run
//! leaves the checkpoint at the end of the last window whose alerts were
//! all acknowledged; the next run completes; and the alerts in the index
//! are then exactly those of a run without faults over the same events
//! (the same `_id` set, each id once). Every test also asserts that the
//! proxy actually injected its fault.

#[path = "../../tests/common/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::cluster::{Cluster, RetryPolicy};
use detectd::config::cluster::ClusterSettings;
use detectd::rule::Rule;
use detectd::runner::{ExecutionRecord, RuleExecutor, RunStatus, Runner, RunnerSettings};
use detectd::sink::alerts_index::{ensure, BootstrapMode};
use detectd::sink::elasticsearch::{
    install_templates, BulkSettings, ElasticsearchSink, IndexNames,
};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::{Checkpoint, ClusterStateStore, MemoryStateStore, StateStore};
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use fault_proxy::{Fault, FaultProxy, FaultRule};
use hyper::Method as HttpMethod;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn minutes(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

/// The founding rule, unchanged but for its index patterns.
fn founding(prefix: &str) -> Rule {
    let mut rule = founding_rule();
    rule.index = vec![format!("{prefix}-ev-*")];
    rule
}

/// Retries short enough for a test, as many as the default policy's.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: StdDuration::from_millis(20),
        max_backoff: StdDuration::from_millis(100),
    }
}

/// A PIT search (a page of a window's fetch), as opposed to other searches
/// (the alerts dedup lookup).
fn page_search(fault: Fault) -> FaultRule {
    FaultRule::new("/_search", fault)
        .method(HttpMethod::POST)
        .body_contains("\"pit\"")
}

/// The page searches of the window ending at `end` only.
fn page_search_of_window(end: DateTime<Utc>, fault: Fault) -> FaultRule {
    FaultRule::new("/_search", fault)
        .method(HttpMethod::POST)
        .body_contains(&format!("\"lte\":\"{}\"", iso(end)))
}

type ProxiedRunner = Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore>;

/// A test's own indices, events and proxy. Ten founding-rule attacks (30
/// alerts: a shell and two building blocks each) spread over the four
/// 5-minute windows after the checkpoint at `t0`, fetched four events per
/// page so every window takes several page searches.
struct Fx {
    direct: Cluster,
    proxy: FaultProxy,
    prefix: String,
    names: IndexNames,
    /// The alerts alias of the test's own Kibana space.
    alerts: AlertsSpace,
    rule: Rule,
    /// Other alerts spaces this test made (reference runs).
    extra: std::sync::Mutex<Vec<AlertsSpace>>,
}

const ATTACK_MINUTES: [i64; 10] = [1, 2, 3, 6, 7, 11, 12, 16, 17, 18];

impl Fx {
    async fn new(test: &str) -> Option<Fx> {
        let direct = connect_or_skip(test).await?;
        let url = cluster_url()?;
        let proxy = match FaultProxy::start(&url).await {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                eprintln!("{test}: skipped: the fault proxy cannot front this cluster: {e}");
                return None;
            }
            Err(e) => panic!("cannot start the fault proxy: {e}"),
        };
        let prefix = unique_index("faults");
        let names = IndexNames {
            state: format!("{prefix}-state"),
            executions: format!("{prefix}-executions"),
            dead_letters: format!("{prefix}-dead-letters"),
        };
        install_templates(&direct, &names)
            .await
            .expect("install templates");
        // The alerts layout exists before the faults begin (the faults are
        // about runs, not about creating it).
        let alerts = AlertsSpace::new("faults");
        ensure(
            &direct,
            &alerts.layout,
            &alerts.spec(&direct, BootstrapMode::Create),
        )
        .await
        .expect("create the alerts layout");
        for kind in ["library", "network"] {
            create_index(&direct, &format!("{prefix}-ev-{kind}"), ecs_mapping()).await;
        }
        let (mut library, mut network) = (Vec::new(), Vec::new());
        for (i, m) in ATTACK_MINUTES.iter().enumerate() {
            let host = format!("h{i}");
            let at = minutes(*m);
            library.push((
                format!("{host}-lib"),
                detectd::synth::founding_library(&iso(at), &host, &host, "powershell.exe"),
            ));
            network.push((
                format!("{host}-net"),
                detectd::synth::founding_network(
                    &iso(at + Duration::seconds(2)),
                    &host,
                    &host,
                    "powershell.exe",
                    "10.0.0.5",
                    135,
                ),
            ));
        }
        index_docs(&direct, &format!("{prefix}-ev-library"), &library).await;
        index_docs(&direct, &format!("{prefix}-ev-network"), &network).await;
        let rule = founding(&prefix);
        let fx = Fx {
            direct,
            proxy,
            prefix,
            names,
            alerts,
            rule,
            extra: Default::default(),
        };
        fx.state()
            .save_checkpoint(&Checkpoint {
                threshold_history: Vec::new(),
                rule_id: fx.rule.rule_id.clone(),
                covered_until: t0(),
                updated_at: t0(),
                pending: None,
            })
            .await
            .expect("save the starting checkpoint");
        Some(fx)
    }

    fn settings(&self, alerts: &AlertsSpace) -> RunnerSettings {
        RunnerSettings {
            alerts_index: alerts.alias(),
            space_id: alerts.space().to_string(),
            page_size: 4,
            ..RunnerSettings::default()
        }
    }

    /// A client through the proxy with `timeout_secs` per request.
    async fn via_proxy(&self, timeout_secs: f64) -> Cluster {
        let mut settings = ClusterSettings::from_env();
        settings.urls = Some(vec![self.proxy.url()]);
        settings.request_timeout_secs = Some(timeout_secs);
        let settings = settings.resolve().expect("valid settings");
        Cluster::connect_with(&settings, quick_retries())
            .await
            .expect("connect through the proxy")
    }

    /// A runner whose source, sink and state all go through the proxy.
    async fn runner(&self, timeout_secs: f64) -> ProxiedRunner {
        let cluster = self.via_proxy(timeout_secs).await;
        let sink = ElasticsearchSink::new(
            cluster.clone(),
            BulkSettings {
                refresh: Some("wait_for".into()),
                retry: quick_retries(),
                ..BulkSettings::default()
            },
            self.alerts.spec(&cluster, BootstrapMode::Create),
        );
        Runner::new(
            ElasticsearchSource::new(cluster.clone()),
            sink,
            ClusterStateStore::new(cluster, &self.names),
            self.settings(&self.alerts),
        )
    }

    fn state(&self) -> ClusterStateStore {
        ClusterStateStore::new(self.direct.clone(), &self.names)
    }

    async fn checkpoint(&self) -> Option<DateTime<Utc>> {
        self.state()
            .checkpoint(&self.rule.rule_id)
            .await
            .expect("read the checkpoint")
            .map(|c| c.covered_until)
    }

    /// The alert ids a run at `now` writes without faults, straight to the
    /// cluster, from the same checkpoint (`t0`), into an alerts index of its
    /// own; and that run's record.
    async fn reference_run(&self, now: DateTime<Utc>) -> (BTreeSet<String>, ExecutionRecord) {
        let alerts = AlertsSpace::new("faults-ref");
        let state = MemoryStateStore::new();
        state.set(Checkpoint {
            threshold_history: Vec::new(),
            rule_id: self.rule.rule_id.clone(),
            covered_until: t0(),
            updated_at: t0(),
            pending: None,
        });
        let runner = Runner::new(
            ElasticsearchSource::new(self.direct.clone()),
            ElasticsearchSink::new(
                self.direct.clone(),
                BulkSettings {
                    refresh: Some("wait_for".into()),
                    ..BulkSettings::default()
                },
                alerts.spec(&self.direct, BootstrapMode::Create),
            ),
            state,
            self.settings(&alerts),
        );
        let rec = runner.execute(&self.rule, now).await;
        assert_eq!(rec.status, RunStatus::Succeeded, "reference run: {rec:#?}");
        let (ids, count) = self.ids(&alerts.alias()).await;
        assert_eq!(ids.len() as u64, count);
        self.extra.lock().unwrap().push(alerts);
        (ids, rec)
    }

    async fn reference(&self, now: DateTime<Utc>) -> BTreeSet<String> {
        self.reference_run(now).await.0
    }

    /// The `_id`s in an alerts index and its document count (none when
    /// the index was never created: nothing was written).
    async fn ids(&self, index: &str) -> (BTreeSet<String>, u64) {
        let refreshed = self
            .direct
            .send_raw(Method::Post, &format!("/{index}/_refresh"), &[], None, None)
            .await
            .unwrap_or_else(|e| panic!("refresh {index}: {e}"));
        if refreshed.status == 404 {
            return (BTreeSet::new(), 0);
        }
        let found = self
            .direct
            .request_json(
                Method::Post,
                &format!("/{index}/_search"),
                &[],
                Some(&json!({"size": 1000, "_source": false, "query": {"match_all": {}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("search {index}: {e}"));
        let ids = found["hits"]["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .filter_map(|h| h["_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (ids, count(&self.direct, index).await)
    }

    /// Asserts the alerts index holds exactly `expected`, each id once.
    async fn assert_alerts(&self, expected: &BTreeSet<String>) {
        let (ids, count) = self.ids(&self.alerts.alias()).await;
        assert_eq!(
            &ids, expected,
            "the alert set differs from a run without faults"
        );
        assert_eq!(count as usize, expected.len(), "an alert was indexed twice");
    }

    /// The execution records of this test's runs, as stored.
    async fn executions(&self) -> Vec<Value> {
        refresh(&self.direct, &self.names.executions).await;
        let found = self
            .direct
            .request_json(
                Method::Post,
                &format!("/{}/_search", self.names.executions),
                &[],
                Some(&json!({"size": 100, "query": {"match_all": {}}})),
            )
            .await
            .expect("search executions");
        found["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|h| h["_source"].clone())
            .collect()
    }

    async fn cleanup(&self) {
        let library = format!("{}-ev-library", self.prefix);
        let network = format!("{}-ev-network", self.prefix);
        delete_indices(&self.direct, &[&library, &network]).await;
        delete_detectd_indices(&self.direct, &self.names).await;
        self.alerts.delete(&self.direct).await;
        let extra = std::mem::take(&mut *self.extra.lock().unwrap());
        for space in extra {
            space.delete(&self.direct).await;
        }
    }
}

fn assert_failed_with(rec: &ExecutionRecord, text: &str) {
    assert_eq!(rec.status, RunStatus::Failed, "{rec:#?}");
    let error = rec.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(text),
        "expected `{text}` in the error: {rec:#?}"
    );
}

/// Property: a connection reset in the middle of a window's fetch (once) is
/// absorbed by the client's retries within the run: the run succeeds,
/// fetches every event exactly once (no page lost or read twice), and
/// writes exactly the alerts of a run without faults.
#[tokio::test]
async fn a_connection_reset_mid_fetch_is_retried_within_the_run() {
    let Some(fx) = Fx::new("a_connection_reset_mid_fetch_is_retried_within_the_run").await else {
        return;
    };
    let now = minutes(20);
    let (expected, clean) = fx.reference_run(now).await;
    assert_eq!(
        expected.len(),
        30,
        "10 sequences: shell + 2 building blocks"
    );
    // the second page of the first window
    fx.proxy.inject(page_search(Fault::Reset).skip(1).times(1));
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(fx.proxy.injected("reset"), 1, "the fault happened");
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    assert_eq!(rec.windows.len(), 4);
    assert_eq!(
        rec.events_fetched, clean.events_fetched,
        "the faulted run fetched as many events as a clean one over the same windows"
    );
    assert_eq!(rec.alerts_created, 30, "{rec:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(fx.checkpoint().await, Some(now));
    fx.cleanup().await;
}

/// Property: when the connection keeps being reset in the middle of a
/// window's fetch (beyond the client's retries), the run fails with the
/// transport error; the checkpoint stays at the end of the last window
/// whose alerts were all written (not past it), only those windows' alerts
/// exist, and the next run, with the cluster healthy, completes the
/// exact alert set.
#[tokio::test]
async fn a_persistent_reset_mid_fetch_fails_the_run_at_the_last_acknowledged_window() {
    let Some(fx) =
        Fx::new("a_persistent_reset_mid_fetch_fails_the_run_at_the_last_acknowledged_window").await
    else {
        return;
    };
    let now = minutes(20);
    let first_two = fx.reference(minutes(10)).await;
    let expected = fx.reference(minutes(21)).await;
    assert_eq!((first_two.len(), expected.len()), (15, 30));
    // every page after the first of the third window (ending at t0+15m)
    fx.proxy.inject(
        page_search_of_window(minutes(15), Fault::Reset)
            .skip(1)
            .always(),
    );
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert!(
        fx.proxy.injected("reset") >= 4,
        "first try and 3 retries were reset"
    );
    assert_failed_with(&rec, "fetching events");
    assert_eq!(
        rec.windows.len(),
        3,
        "stopped at the third window: {rec:#?}"
    );
    assert_eq!(
        fx.checkpoint().await,
        Some(minutes(10)),
        "the checkpoint is the end of the second window"
    );
    fx.assert_alerts(&first_two).await;
    assert_eq!(rec.alerts_created, 15);

    fx.proxy.clear_faults();
    let next = fx.runner(10.0).await.execute(&fx.rule, minutes(21)).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:#?}");
    assert_eq!(next.windows.len(), 3, "t0+10m to t0+21m: {next:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(next.alerts_created, 15, "only the missing ones: {next:#?}");
    assert_eq!(fx.checkpoint().await, Some(minutes(21)));
    let statuses: BTreeSet<String> = fx
        .executions()
        .await
        .iter()
        .map(|e| e["status"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        statuses,
        ["failed", "succeeded"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    fx.cleanup().await;
}

/// Property: a point in time that disappears in the middle of a window's
/// fetch (expired, or closed by the server) fails the run with the
/// server's reason instead of returning a partial window; the checkpoint
/// does not move and the next run writes the exact alert set.
#[tokio::test]
async fn a_point_in_time_closed_mid_fetch_fails_the_run_and_the_next_completes() {
    let Some(fx) =
        Fx::new("a_point_in_time_closed_mid_fetch_fails_the_run_and_the_next_completes").await
    else {
        return;
    };
    let now = minutes(20);
    let expected = fx.reference(now).await;
    fx.proxy.inject(
        page_search_of_window(minutes(5), Fault::ClosePit)
            .skip(1)
            .times(1),
    );
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(fx.proxy.injected("close-pit"), 1, "the fault happened");
    assert_failed_with(&rec, "fetching events");
    let error = rec.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("404") || error.contains("search_context_missing"),
        "the server's reason: {error}"
    );
    assert_eq!(rec.windows.len(), 1);
    assert_eq!(rec.alerts_created, 0, "nothing of the partial window");
    assert_eq!(
        fx.checkpoint().await,
        Some(t0()),
        "the checkpoint did not move"
    );
    assert_eq!(fx.ids(&fx.alerts.alias()).await.1, 0);

    let next = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(fx.checkpoint().await, Some(now));
    fx.cleanup().await;
}

/// Property: a `_bulk` the cluster executed but whose response never
/// reached detectd (connection dropped after the request was sent) is
/// retried; the retry's 409 conflicts count as duplicates, not failures,
/// so the run succeeds, and the index holds the exact alert set with no id
/// twice.
#[tokio::test]
async fn a_bulk_written_but_unacknowledged_is_retried_and_conflicts_are_duplicates() {
    let Some(fx) =
        Fx::new("a_bulk_written_but_unacknowledged_is_retried_and_conflicts_are_duplicates").await
    else {
        return;
    };
    let now = minutes(20);
    let expected = fx.reference(now).await;
    fx.proxy
        .inject(FaultRule::new("/_bulk", Fault::ForwardThenDrop).times(1));
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(
        fx.proxy.injected("forward-then-drop"),
        1,
        "the fault happened"
    );
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    // the first window's alerts were written by the dropped request: the
    // retry found them as 409s
    assert!(rec.alerts_created < 30, "{rec:#?}");
    assert!(
        rec.alerts_duplicate >= 30 - rec.alerts_created,
        "conflicts counted as duplicates: {rec:#?}"
    );
    assert_eq!(rec.alerts_failed, 0);
    fx.assert_alerts(&expected).await;
    assert_eq!(fx.checkpoint().await, Some(now));
    fx.cleanup().await;
}

/// Property: when no `_bulk` response ever arrives (every request written
/// but dropped), the run fails and the checkpoint does not advance past
/// the unacknowledged alerts, even though the cluster holds them; the next
/// run finds them (duplicates, not new alerts) and completes the set, each
/// id once.
#[tokio::test]
async fn a_bulk_never_acknowledged_keeps_the_checkpoint_and_the_next_run_sees_duplicates() {
    let Some(fx) =
        Fx::new("a_bulk_never_acknowledged_keeps_the_checkpoint_and_the_next_run_sees_duplicates")
            .await
    else {
        return;
    };
    let now = minutes(20);
    let expected = fx.reference(now).await;
    fx.proxy
        .inject(FaultRule::new("/_bulk", Fault::ForwardThenDrop).always());
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(
        fx.proxy.injected("forward-then-drop"),
        4,
        "first try + 3 retries"
    );
    assert_failed_with(&rec, "could not be written");
    assert_eq!(rec.windows.len(), 1, "stopped at the first window");
    assert_eq!(
        fx.checkpoint().await,
        Some(t0()),
        "not advanced past unacknowledged alerts"
    );
    let (written, count) = fx.ids(&fx.alerts.alias()).await;
    assert_eq!(
        written.len(),
        9,
        "the first window's 3 sequences are in the cluster"
    );
    assert_eq!(count, 9);
    assert!(written.is_subset(&expected));

    fx.proxy.clear_faults();
    let next = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:#?}");
    assert_eq!(
        next.alerts_created, 21,
        "only the ones never written: {next:#?}"
    );
    assert!(next.alerts_duplicate >= 9, "{next:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(fx.checkpoint().await, Some(now));
    fx.cleanup().await;
}

/// Property: a whole `_bulk` refused with 429, then items of the retry
/// refused with 429 and then 503 (some items of a request, at their
/// positions), are retried until written: the run succeeds with every
/// alert created once and the exact alert set.
#[tokio::test]
async fn bulk_requests_and_items_refused_with_429_and_503_are_retried_to_the_exact_set() {
    let Some(fx) =
        Fx::new("bulk_requests_and_items_refused_with_429_and_503_are_retried_to_the_exact_set")
            .await
    else {
        return;
    };
    let now = minutes(20);
    let expected = fx.reference(now).await;
    let rejected = json!({"error": {"type": "es_rejected_execution_exception",
        "reason": "rejected execution (injected)"}, "status": 429});
    fx.proxy.inject(
        FaultRule::new(
            "/_bulk",
            Fault::Status {
                status: 429,
                body: rejected.to_string(),
            },
        )
        .times(1),
    );
    fx.proxy.inject(
        FaultRule::new(
            "/_bulk",
            Fault::BulkItems {
                every: 2,
                status: 429,
            },
        )
        .times(1),
    );
    fx.proxy.inject(
        FaultRule::new(
            "/_bulk",
            Fault::BulkItems {
                every: 3,
                status: 503,
            },
        )
        .times(1),
    );
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(
        fx.proxy.injected("status"),
        1,
        "the whole request was refused"
    );
    assert_eq!(
        fx.proxy.injected("bulk-items"),
        2,
        "both item faults happened"
    );
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    assert_eq!((rec.alerts_created, rec.alerts_failed), (30, 0), "{rec:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(fx.checkpoint().await, Some(now));
    fx.cleanup().await;
}

/// Property: bulk items refused with 503 on every attempt fail the run
/// (reported, not dropped silently) without moving the checkpoint; the
/// alerts that were accepted stay, and the next run completes the exact
/// set.
#[tokio::test]
async fn bulk_items_refused_every_time_fail_the_run_without_committing() {
    let Some(fx) = Fx::new("bulk_items_refused_every_time_fail_the_run_without_committing").await
    else {
        return;
    };
    let now = minutes(20);
    let expected = fx.reference(now).await;
    fx.proxy.inject(
        FaultRule::new(
            "/_bulk",
            Fault::BulkItems {
                every: 3,
                status: 503,
            },
        )
        .always(),
    );
    let rec = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(fx.proxy.injected("bulk-items"), 4, "first try + 3 retries");
    assert_failed_with(&rec, "could not be written");
    assert!(rec.alerts_failed > 0, "{rec:#?}");
    assert_eq!(fx.checkpoint().await, Some(t0()));

    fx.proxy.clear_faults();
    let next = fx.runner(10.0).await.execute(&fx.rule, now).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(
        rec.alerts_created + next.alerts_created,
        30,
        "every alert created once over both runs"
    );
    fx.cleanup().await;
}

/// Property (slow cluster): searches slower than `request_timeout` fail the
/// run with an error that says it timed out, the checkpoint does not move,
/// and the next run (cluster fast again) catches up with the exact alert
/// set.
#[tokio::test]
async fn responses_slower_than_the_request_timeout_fail_the_run_and_the_next_catches_up() {
    let Some(fx) =
        Fx::new("responses_slower_than_the_request_timeout_fail_the_run_and_the_next_catches_up")
            .await
    else {
        return;
    };
    let now = minutes(20);
    let expected = fx.reference(now).await;
    fx.proxy
        .inject(page_search(Fault::Delay(StdDuration::from_millis(2_500))).always());
    let rec = fx.runner(1.0).await.execute(&fx.rule, now).await;
    assert!(fx.proxy.injected("delay") >= 1, "the fault happened");
    assert_failed_with(&rec, "fetching events");
    let error = rec.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("no response within the request timeout of 1 s (request_timeout_secs)"),
        "a clear timeout error: {error}"
    );
    assert_eq!(rec.alerts_created, 0);
    assert_eq!(fx.checkpoint().await, Some(t0()));
    let stored = fx.executions().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "failed");
    assert!(stored[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("request timeout")));

    fx.proxy.clear_faults();
    let next = fx.runner(10.0).await.execute(&fx.rule, minutes(22)).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:#?}");
    assert_eq!(next.windows.len(), 5, "caught up from t0: {next:#?}");
    fx.assert_alerts(&expected).await;
    assert_eq!(fx.checkpoint().await, Some(minutes(22)));
    fx.cleanup().await;
}
