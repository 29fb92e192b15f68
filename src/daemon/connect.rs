//! Waiting for the cluster at start-up: in daemon mode detectd may start
//! before the cluster (containers started together, a cluster restarting),
//! so it tries again and again, with exponential backoff and jitter, until
//! the cluster answers or a shutdown signal comes. Each failure is logged
//! with the delay before the next attempt and shown on `/healthz` (served
//! from the start, see [`super::http::Server`]).
//!
//! What one attempt does (connect, install templates) is the caller's; this
//! module only decides when to try again and when to give up.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use super::health::{BoxFuture, Health};
use crate::cluster::RetryPolicy;

/// The backoff between connection attempts at start-up: 1 s doubling up to
/// 30 s, with jitter (`RetryPolicy::backoff`: a draw from the upper half),
/// so a fleet of daemons restarted together does not knock in lock-step
/// and a cluster that comes back is noticed within 30 s. `max_retries` is
/// not used: the daemon waits until a shutdown signal.
pub const STARTUP_BACKOFF: RetryPolicy = RetryPolicy {
    max_retries: u32::MAX,
    initial_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(30),
};

/// How one attempt failed.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Worth trying again (unreachable, busy, starting up).
    Retry(E),
    /// Trying again cannot help (e.g. missing privileges): give up.
    Fatal(E),
}

/// Calls `attempt` until it succeeds (`Ok(Some(value))`), fails fatally
/// (`Err`), or `shutdown` fires (`Ok(None)`, also while an attempt is in
/// progress). After each retryable failure `health` shows the error and the
/// next attempt waits `policy.backoff(n)`.
pub async fn wait_for<T, E, F, Fut>(
    mut attempt: F,
    policy: &RetryPolicy,
    health: &Health,
    shutdown: &mut BoxFuture<'static, ()>,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
    E: Display,
{
    let mut failures: u32 = 0;
    loop {
        let result = tokio::select! {
            _ = &mut *shutdown => return Ok(None),
            r = attempt() => r,
        };
        let error = match result {
            Ok(value) => {
                health.set_cluster(Ok(()));
                return Ok(Some(value));
            }
            Err(Attempt::Fatal(e)) => {
                health.set_cluster(Err(e.to_string()));
                return Err(e);
            }
            Err(Attempt::Retry(e)) => e,
        };
        failures = failures.saturating_add(1);
        let delay = policy.backoff(failures);
        health.set_cluster(Err(error.to_string()));
        tracing::warn!(
            attempt = failures,
            error = %error,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "cluster not reachable yet"
        );
        tokio::select! {
            _ = &mut *shutdown => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    /// Fails `failures` times with a retryable error, then succeeds; notes
    /// when each attempt started (tokio's clock).
    #[derive(Clone)]
    struct Flaky {
        failures: usize,
        starts: Arc<Mutex<Vec<Instant>>>,
    }

    impl Flaky {
        fn new(failures: usize) -> Flaky {
            Flaky {
                failures,
                starts: Arc::default(),
            }
        }

        async fn attempt(&self) -> Result<&'static str, Attempt<String>> {
            let n = {
                let mut starts = self.starts.lock().unwrap();
                starts.push(Instant::now());
                starts.len()
            };
            if n <= self.failures {
                Err(Attempt::Retry(format!("GET /: connection refused ({n})")))
            } else {
                Ok("connected")
            }
        }

        fn gaps(&self) -> Vec<Duration> {
            let starts = self.starts.lock().unwrap();
            starts.windows(2).map(|w| w[1] - w[0]).collect()
        }
    }

    fn never() -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }

    /// Property: the waits between attempts grow exponentially (each within
    /// the jittered range `[base/2, base]` of `1 s * 2^(n-1)`), are capped at
    /// 30 s, and the loop ends with the value once an attempt succeeds.
    #[tokio::test(start_paused = true)]
    async fn attempts_back_off_exponentially_up_to_the_cap() {
        let flaky = Flaky::new(9);
        let health = Health::default();
        let got = wait_for(|| flaky.attempt(), &STARTUP_BACKOFF, &health, &mut never())
            .await
            .unwrap();
        assert_eq!(got, Some("connected"));
        let gaps = flaky.gaps();
        assert_eq!(gaps.len(), 9, "9 failures, then the 10th attempt");
        for (i, gap) in gaps.iter().enumerate() {
            let base = Duration::from_secs(1 << i).min(Duration::from_secs(30));
            assert!(
                *gap >= base / 2 && *gap <= base,
                "wait {} was {gap:?}, expected within [{:?}, {base:?}]",
                i + 1,
                base / 2
            );
        }
        assert!(gaps[3] > gaps[0], "the waits grow: {gaps:?}");
        assert!(
            gaps.iter().all(|g| *g <= Duration::from_secs(30)),
            "capped: {gaps:?}"
        );
    }

    /// Property: while attempts fail, `/healthz` is 503 and names the
    /// cluster error; after the attempt that succeeds, the cluster shows as
    /// reachable.
    #[tokio::test(start_paused = true)]
    async fn health_shows_why_the_cluster_is_unreachable_until_connected() {
        let flaky = Flaky::new(2);
        let health = Arc::new(Health::default());
        health.set_rules_loaded(1);
        let task = {
            let (flaky, health) = (flaky.clone(), health.clone());
            tokio::spawn(async move {
                wait_for(|| flaky.attempt(), &STARTUP_BACKOFF, &health, &mut never()).await
            })
        };
        // the first attempt has failed; the second waits for at least 0.5 s
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (code, body) = health.report();
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["cluster"], "unreachable", "{body}");
        assert!(
            body["reasons"][0]
                .as_str()
                .is_some_and(|r| r.contains("connection refused (1)")),
            "{body}"
        );
        assert_eq!(task.await.unwrap().unwrap(), Some("connected"));
        assert_eq!(health.report().0, 200, "{}", health.report().1);
    }

    /// Property: a shutdown signal ends the wait at once, both between
    /// attempts and during one that hangs, without another attempt.
    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait_between_and_during_attempts() {
        let flaky = Flaky::new(usize::MAX);
        let health = Health::default();
        let started = Instant::now();
        let mut shutdown: BoxFuture<'static, ()> =
            Box::pin(tokio::time::sleep(Duration::from_millis(1_200)));
        let got = wait_for(|| flaky.attempt(), &STARTUP_BACKOFF, &health, &mut shutdown)
            .await
            .unwrap();
        assert_eq!(got, None);
        assert_eq!(started.elapsed(), Duration::from_millis(1_200));
        assert_eq!(
            flaky.starts.lock().unwrap().len(),
            2,
            "attempts at 0 s and after the first wait (0.5-1 s), none after the signal"
        );

        let mut shutdown: BoxFuture<'static, ()> =
            Box::pin(tokio::time::sleep(Duration::from_secs(3)));
        let hanging = || std::future::pending::<Result<(), Attempt<String>>>();
        let started = Instant::now();
        let got = wait_for(hanging, &STARTUP_BACKOFF, &health, &mut shutdown)
            .await
            .unwrap();
        assert_eq!(got, None);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    /// Property: a fatal failure is returned at once, without retrying.
    #[tokio::test(start_paused = true)]
    async fn a_fatal_failure_stops_waiting() {
        let calls = Mutex::new(0);
        let health = Health::default();
        let result = wait_for(
            || {
                *calls.lock().unwrap() += 1;
                async { Err::<(), _>(Attempt::Fatal("status 403: forbidden".to_string())) }
            },
            &STARTUP_BACKOFF,
            &health,
            &mut never(),
        )
        .await;
        assert_eq!(result.unwrap_err(), "status 403: forbidden");
        assert_eq!(*calls.lock().unwrap(), 1);
        assert_eq!(health.report().0, 503);
    }
}
