//! What `/healthz` answers: healthy when the cluster answered the last
//! check and at least one rule is scheduled; otherwise unhealthy with the
//! reasons, so an orchestrator restarts (or does not route to) a daemon that
//! cannot do its job.
//!
//! The cluster check itself is a [`Probe`] the daemon calls periodically;
//! production asks `GET /` of the cluster, tests inject a fake.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::cluster::Cluster;

/// A boxed future, so probes can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Checks that the cluster answers. The error is shown on `/healthz`, so it
/// must not contain secrets (the cluster module's errors do not).
pub trait Probe: Send + Sync {
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
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
}

impl Default for Health {
    fn default() -> Self {
        Health {
            cluster: Mutex::new(ClusterState::NotChecked),
            rules_loaded: AtomicUsize::new(0),
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

    pub fn set_rules_loaded(&self, n: usize) {
        self.rules_loaded.store(n, Ordering::Relaxed);
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
        if reasons.is_empty() {
            (
                200,
                json!({"status": "ok", "cluster": cluster_text, "rules_loaded": rules}),
            )
        } else {
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
}
