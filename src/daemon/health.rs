//! What `/healthz` answers: healthy when the cluster answered the last
//! check and at least one rule is scheduled; otherwise unhealthy (503) with
//! the reasons, so an orchestrator restarts (or does not route to) a daemon
//! that cannot do its job. Problems a restart would not fix — rules whose
//! last run failed (e.g. waiting for Kibana to create the alerts index),
//! alerts kept as dead letters — make it `degraded`: still 200, with the
//! reasons.
//!
//! The cluster check itself is a [`Probe`] the daemon calls periodically;
//! production asks `GET /` of the cluster, tests inject a fake.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::runner::{ExecutionRecord, RunStatus};

/// A boxed future, so probes can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Checks that the cluster answers. The error is shown on `/healthz`, so it
/// must not contain secrets (the cluster module's errors do not).
pub trait Probe: Send + Sync {
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// A boxed probe is a probe (the daemon's is chosen at start).
impl Probe for Box<dyn Probe> {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        (**self).check()
    }
}

/// The production probe: `GET /` on the cluster.
pub struct ClusterProbe(pub Cluster);

impl Probe for ClusterProbe {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0
                .request_json(elasticsearch::http::Method::Get, "/", &[], None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ClusterState {
    NotChecked,
    Reachable,
    Unreachable(String),
}

/// Shared health state, updated by the daemon and read by `/healthz`.
#[derive(Debug)]
pub struct Health {
    cluster: Mutex<ClusterState>,
    rules_loaded: AtomicUsize,
    /// Rules whose last run failed, with its error.
    failing: Mutex<BTreeMap<String, String>>,
    /// Alerts kept as dead letters since start.
    dead_lettered: AtomicU64,
    /// Notification delivery, once its worker has made a pass.
    notifications: Mutex<Option<Notifications>>,
    /// This instance among several, once it has had a heartbeat.
    instance: Mutex<Option<crate::coord::CoordView>>,
}

/// What `/healthz` says of notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Notifications {
    pending: u64,
    sent: u64,
    failed: u64,
    given_up: u64,
    /// Outputs whose last pass failed.
    failing: Vec<String>,
    last_error: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            cluster: Mutex::new(ClusterState::NotChecked),
            rules_loaded: AtomicUsize::new(0),
            failing: Mutex::new(BTreeMap::new()),
            dead_lettered: AtomicU64::new(0),
            notifications: Mutex::new(None),
            instance: Mutex::new(None),
        }
    }
}

impl Health {
    pub fn set_cluster(&self, result: Result<(), String>) {
        let state = match result {
            Ok(()) => ClusterState::Reachable,
            Err(e) => ClusterState::Unreachable(e),
        };
        *self.cluster.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// What the last heartbeat saw of the instances and this one's leases.
    pub fn set_instance(&self, view: crate::coord::CoordView) {
        *self.instance.lock().unwrap_or_else(|p| p.into_inner()) = Some(view);
    }

    pub fn set_rules_loaded(&self, n: usize) {
        self.rules_loaded.store(n, Ordering::Relaxed);
    }

    /// Takes in what a finished run says about the daemon's health.
    pub fn observe(&self, record: &ExecutionRecord) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if record.status == RunStatus::Failed {
            let error = record.error.clone().unwrap_or_else(|| "failed".into());
            failing.insert(record.rule_id.clone(), error);
        } else {
            failing.remove(&record.rule_id);
        }
        self.dead_lettered
            .fetch_add(record.alerts_dead_lettered, Ordering::Relaxed);
    }

    /// Takes in one pass of the notification worker and its totals.
    pub fn observe_delivery(
        &self,
        report: &crate::notify::TickReport,
        stats: &crate::notify::DeliveryStats,
    ) {
        let n = Notifications {
            pending: stats.pending.load(Ordering::Relaxed),
            sent: stats.sent.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
            given_up: stats.given_up.load(Ordering::Relaxed),
            failing: report.failed.keys().cloned().collect(),
            last_error: stats.last_error(),
        };
        *self.notifications.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
    }

    /// Forgets a rule that is no longer loaded.
    pub fn forget_rule(&self, rule_id: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(rule_id);
    }

    /// Reasons that do not make the daemon unavailable.
    fn degradations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rule, error)) = failing.iter().next() {
            out.push(format!(
                "{} rules failed their last run (their windows are kept and searched again), e.g. {rule}: {error}",
                failing.len()
            ));
        }
        let dead = self.dead_lettered.load(Ordering::Relaxed);
        if dead > 0 {
            out.push(format!(
                "{dead} alerts were refused by the cluster as invalid since start and kept as dead \
                 letters: `detectd dead-letters list` shows them, `detectd dead-letters replay` \
                 writes them again once the cause is fixed"
            ));
        }
        let notifications = self
            .notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(n) = notifications {
            let last = n.last_error.as_deref().unwrap_or("none recorded");
            if !n.failing.is_empty() {
                out.push(format!(
                    "notification outputs failing (their messages are retried): {}; last error: {last}",
                    n.failing.join(", ")
                ));
            }
            if n.given_up > 0 {
                out.push(format!(
                    "{} notifications were given up since start (see the logs); last error: {last}",
                    n.given_up
                ));
            }
        }
        out
    }

    /// The HTTP status and JSON body of `/healthz`.
    pub fn report(&self) -> (u16, Value) {
        let cluster = self
            .cluster
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let rules = self.rules_loaded.load(Ordering::Relaxed);
        let mut reasons = Vec::new();
        let cluster_text = match &cluster {
            ClusterState::Reachable => "reachable".to_string(),
            ClusterState::NotChecked => {
                reasons.push("the cluster has not been checked yet".to_string());
                "not checked".to_string()
            }
            ClusterState::Unreachable(e) => {
                reasons.push(format!("cluster unreachable: {e}"));
                "unreachable".to_string()
            }
        };
        if rules == 0 {
            reasons.push("no rules loaded".to_string());
        }
        let degraded = self.degradations();
        let (status, mut body) = self.body(cluster_text, rules, reasons, degraded);
        let notifications = self
            .notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let (Some(n), Some(o)) = (notifications, body.as_object_mut()) {
            o.insert(
                "notifications".into(),
                json!({"pending": n.pending, "sent": n.sent, "failed": n.failed,
                       "given_up": n.given_up}),
            );
        }
        let instance = self
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let (Some(v), Some(o)) = (instance, body.as_object_mut()) {
            o.insert(
                "instance".into(),
                serde_json::to_value(v).unwrap_or(Value::Null),
            );
        }
        (status, body)
    }

    fn body(
        &self,
        cluster_text: String,
        rules: usize,
        mut reasons: Vec<String>,
        degraded: Vec<String>,
    ) -> (u16, Value) {
        if reasons.is_empty() && degraded.is_empty() {
            (
                200,
                json!({"status": "ok", "cluster": cluster_text, "rules_loaded": rules}),
            )
        } else if reasons.is_empty() {
            (
                200,
                json!({"status": "degraded", "cluster": cluster_text,
                       "rules_loaded": rules, "reasons": degraded}),
            )
        } else {
            reasons.extend(degraded);
            (
                503,
                json!({"status": "unavailable", "cluster": cluster_text,
                       "rules_loaded": rules, "reasons": reasons}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_among_several_shows_its_leases() {
        let h = Health::default();
        h.set_cluster(Ok(()));
        h.set_rules_loaded(3);
        assert!(h.report().1.get("instance").is_none(), "before a heartbeat");
        h.set_instance(crate::coord::CoordView {
            instance_id: "i1".into(),
            live_instances: vec!["i1".into(), "i2".into()],
            rules_assigned: 2,
            leases_valid: 2,
            leases: vec!["a".into(), "b".into()],
            leases_lost: 1,
            requests: 9,
            last_heartbeat_age_secs: Some(0.5),
        });
        let (code, body) = h.report();
        assert_eq!(code, 200);
        assert_eq!(body["instance"]["instance_id"], "i1");
        assert_eq!(body["instance"]["live_instances"], json!(["i1", "i2"]));
        assert_eq!(body["instance"]["leases"], json!(["a", "b"]));
        assert_eq!(body["instance"]["leases_lost"], 1);
    }

    #[test]
    fn healthy_only_with_a_reachable_cluster_and_rules() {
        let h = Health::default();
        assert_eq!(h.report().0, 503, "nothing checked yet");
        h.set_cluster(Ok(()));
        let (code, body) = h.report();
        assert_eq!(code, 503);
        assert_eq!(body["reasons"], json!(["no rules loaded"]));
        h.set_rules_loaded(3);
        assert_eq!(h.report().0, 200);
        h.set_cluster(Err("GET /: connection refused".into()));
        let (code, body) = h.report();
        assert_eq!(code, 503);
        assert_eq!(
            body["reasons"],
            json!(["cluster unreachable: GET /: connection refused"])
        );
    }

    #[test]
    fn failing_rules_and_dead_letters_degrade_without_unavailability() {
        let record = |rule: &str, status| ExecutionRecord {
            alerts_dead_lettered: 0,
            alerts_suppressed: 0,
            ..crate::daemon::metrics::tests::record(rule, status)
        };
        let h = Health::default();
        h.set_cluster(Ok(()));
        h.set_rules_loaded(2);
        let mut failed = record("r1", RunStatus::Failed);
        failed.error = Some("writing alerts: the alerts alias `.alerts-security.alerts-default` does not exist: waiting for Kibana to create it".into());
        h.observe(&failed);
        let (code, body) = h.report();
        assert_eq!((code, body["status"].as_str()), (200, Some("degraded")));
        let reasons = body["reasons"].to_string();
        assert!(
            reasons.contains("1 rules failed their last run"),
            "{reasons}"
        );
        assert!(
            reasons.contains("r1: writing alerts: the alerts alias"),
            "{reasons}"
        );
        // the rule runs again successfully: healthy again
        h.observe(&record("r1", RunStatus::Succeeded));
        assert_eq!(h.report().1["status"], "ok");
        let mut dead = record("r2", RunStatus::PartialFailure);
        dead.alerts_dead_lettered = 2;
        h.observe(&dead);
        let (code, body) = h.report();
        assert_eq!(code, 200);
        assert!(
            body["reasons"][0].as_str().is_some_and(
                |r| r.starts_with("2 alerts were refused") && r.contains("dead-letters replay")
            ),
            "{body}"
        );
        // and with the cluster gone, unavailable, listing everything
        h.set_cluster(Err("GET /: connection refused".into()));
        let (code, body) = h.report();
        assert_eq!(code, 503);
        assert_eq!(body["reasons"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn notifications_show_their_counts_and_degrade_while_an_output_fails() {
        use crate::notify::{DeliveryStats, TickReport};
        let h = Health::default();
        h.set_cluster(Ok(()));
        h.set_rules_loaded(1);
        assert!(
            h.report().1.get("notifications").is_none(),
            "off: not shown"
        );
        let stats = DeliveryStats::default();
        stats.sent.store(4, Ordering::Relaxed);
        stats.pending.store(2, Ordering::Relaxed);
        let mut report = TickReport::default();
        report.sent.insert("hook".into(), 4);
        h.observe_delivery(&report, &stats);
        let (code, body) = h.report();
        assert_eq!((code, &body["status"]), (200, &json!("ok")));
        assert_eq!(
            body["notifications"],
            json!({"pending": 2, "sent": 4, "failed": 0, "given_up": 0})
        );
        report.failed.insert("pager".into(), 1);
        stats.failed.store(1, Ordering::Relaxed);
        stats.given_up.store(1, Ordering::Relaxed);
        h.observe_delivery(&report, &stats);
        let (code, body) = h.report();
        assert_eq!((code, &body["status"]), (200, &json!("degraded")));
        let reasons = body["reasons"].to_string();
        assert!(
            reasons.contains("notification outputs failing (their messages are retried): pager"),
            "{reasons}"
        );
        assert!(
            reasons.contains("1 notifications were given up since start"),
            "{reasons}"
        );
    }
}
