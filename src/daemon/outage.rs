//! The cluster unreachable for longer than `notify.cluster_unreachable`,
//! as an alert about detectd itself (`notify::incident`): a [`Probe`] that
//! wraps the daemon's cluster check and watches its answers.
//!
//! One message per outage, keyed by its first failed check, when it has
//! lasted the threshold; one when it ends (`cluster_reachable`). With
//! `state.backend = "cluster"` the outbox is unreachable too: adding the
//! first message fails (logged) and is tried at each check; an outage that
//! could never be announced is announced by its end, which says how long it
//! lasted.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::health::{BoxFuture, Probe};
use crate::notify::config::DEFAULT_CLUSTER_UNREACHABLE;
use crate::notify::{announce, Incident, Router};
use crate::state::StateStore;

/// The current outage, if any.
#[derive(Debug, Default)]
struct Outage {
    since: Option<DateTime<Utc>>,
    /// Its `cluster_unreachable` message is in the outbox.
    announced: bool,
}

/// Wraps a probe; see the module's comment.
pub struct OutageWatch<P, T> {
    inner: P,
    state: T,
    router: Arc<Router>,
    threshold: TimeDelta,
    now: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    outage: Mutex<Outage>,
}

impl<P: Probe, T: StateStore> OutageWatch<P, T> {
    /// `threshold` zero: the default (5 minutes).
    pub fn new(
        inner: P,
        state: T,
        router: Arc<Router>,
        threshold: Duration,
        now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Self {
        let threshold = if threshold.is_zero() {
            DEFAULT_CLUSTER_UNREACHABLE
        } else {
            threshold
        };
        OutageWatch {
            inner,
            state,
            router,
            threshold: TimeDelta::from_std(threshold).unwrap_or(TimeDelta::MAX),
            now: Box::new(now),
            outage: Mutex::new(Outage::default()),
        }
    }

    /// What one check's result means for the outage, at `now`.
    fn incident(&self, result: &Result<(), String>, now: DateTime<Utc>) -> Option<Incident> {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Err(error) => {
                let since = *outage.since.get_or_insert(now);
                (!outage.announced && now.signed_duration_since(since) >= self.threshold).then(
                    || Incident::ClusterUnreachable {
                        since,
                        error: error.clone(),
                    },
                )
            }
            Ok(()) => {
                let since = outage.since.take()?;
                let announced = std::mem::take(&mut outage.announced);
                // A short blip was never announced: its end is no news.
                (announced || now.signed_duration_since(since) >= self.threshold)
                    .then_some(Incident::ClusterReachable { since, until: now })
            }
        }
    }

    async fn observe(&self, result: &Result<(), String>) {
        let now = (self.now)();
        let Some(incident) = self.incident(result, now) else {
            return;
        };
        match announce(&self.router, &self.state, &incident, now).await {
            Ok(_) => {
                if matches!(incident, Incident::ClusterUnreachable { .. }) {
                    self.outage
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .announced = true;
                }
            }
            Err(e) => tracing::warn!(event = incident.event(), error = %e,
                "cannot add an alert about detectd, will try at the next check"),
        }
    }
}

impl<P: Probe, T: StateStore> Probe for OutageWatch<P, T> {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let result = self.inner.check().await;
            self.observe(&result).await;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Settings};
    use crate::state::MemoryStateStore;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    struct Fake(Arc<AtomicBool>);

    impl Probe for Fake {
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            let up = self.0.load(Ordering::SeqCst);
            Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err("connection refused".into())
                }
            })
        }
    }

    fn router() -> Arc<Router> {
        let text = "[notify]\ncluster_unreachable = \"5m\"\n\n[[outputs]]\nname = \"l\"\nkind = \"file\"\npath = \"x\"\n\n[[routes]]\nname = \"ops\"\nkind = \"detectd\"\noutputs = [\"l\"]\n";
        let s = Settings::from_layers(
            Some(("detectd.toml".into(), text.into())),
            Default::default(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.notify.cluster_unreachable, Duration::from_secs(300));
        Arc::new(Router::new(&s.notify))
    }

    #[tokio::test]
    async fn an_outage_longer_than_the_threshold_gives_one_message_and_one_when_it_ends() {
        let up = Arc::new(AtomicBool::new(false));
        let minute = Arc::new(AtomicI64::new(0));
        let t0 = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let state = Arc::new(MemoryStateStore::new());
        let clock = minute.clone();
        let watch = OutageWatch::new(
            Fake(up.clone()),
            state.clone(),
            router(),
            Duration::from_secs(300),
            move || t0 + TimeDelta::minutes(clock.load(Ordering::SeqCst)),
        );
        let events = |s: &MemoryStateStore| -> Vec<String> {
            let mut e: Vec<_> = s.outbox().into_iter().map(|e| e.key).collect();
            e.sort();
            e
        };
        // a check a minute; the outage starts at minute 0
        for m in 0..5 {
            minute.store(m, Ordering::SeqCst);
            assert!(watch.check().await.is_err());
            assert!(
                events(&state).is_empty(),
                "nothing before 5 minutes (at {m})"
            );
        }
        for m in 5..20 {
            minute.store(m, Ordering::SeqCst);
            watch.check().await.unwrap_err();
        }
        let t0_ms = t0.timestamp_millis();
        assert_eq!(
            events(&state),
            [format!("ops/cluster_unreachable/{t0_ms}")],
            "one message for 20 failed checks"
        );
        assert!(state.outbox()[0].about_detectd);
        up.store(true, Ordering::SeqCst);
        for m in 20..23 {
            minute.store(m, Ordering::SeqCst);
            watch.check().await.unwrap();
        }
        assert_eq!(
            events(&state),
            [
                format!("ops/cluster_reachable/{t0_ms}"),
                format!("ops/cluster_unreachable/{t0_ms}"),
            ]
        );

        // a blip shorter than the threshold: no message, not even its end
        up.store(false, Ordering::SeqCst);
        for m in 30..33 {
            minute.store(m, Ordering::SeqCst);
            watch.check().await.unwrap_err();
        }
        up.store(true, Ordering::SeqCst);
        minute.store(33, Ordering::SeqCst);
        watch.check().await.unwrap();
        assert_eq!(state.outbox().len(), 2);
    }
}
