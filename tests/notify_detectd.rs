//! Alerts about detectd itself, through a real runner, the outbox, the
//! delivery worker and a local HTTP receiver: a rule failing runs in a row
//! gives one message (and one when it runs again), a gap one, a given-up
//! message one on another route and none about itself; routes of alert
//! groups never get them; an incident seen again after a restart (a file
//! outbox) adds nothing.

#[path = "common/notify_fixture.rs"]
mod notify_fixture;
#[path = "common/receiver.rs"]
mod receiver;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Duration;
use detectd::notify::{Deliverer, NotifySettings};
use detectd::runner::{ExecutionRecord, RunStatus, RunnerSettings};
use detectd::state::{
    Checkpoint, DeadLetter, MemoryStateStore, OutboxEntry, OutboxStatus, StateError, StateStore,
    ThrottleMark,
};
use notify_fixture::*;
use receiver::Receiver;

/// Alert groups to `alerts`, alerts about detectd to `ops` (optionally
/// only `events`), each at its own path of the receiver.
fn config(r: &Receiver, alerts_url: &str, events: &str) -> NotifySettings {
    notify_settings(&format!(
        r#"
[notify]
retry_initial = "1s"
give_up_after = "1h"
rule_failures = 3

[[outputs]]
name = "alerts"
kind = "webhook"
url = "{alerts_url}"

[[outputs]]
name = "ops"
kind = "webhook"
url = "{}"

[[routes]]
name = "all"
outputs = ["alerts"]

[[routes]]
name = "detectd"
kind = "detectd"
outputs = ["ops"]
{events}
"#,
        r.url("/ops")
    ))
}

/// The memory store whose checkpoint reads fail while `down`: the rule's
/// runs fail, the outbox still works.
struct Flaky {
    inner: Arc<MemoryStateStore>,
    down: AtomicBool,
}

impl StateStore for Flaky {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StateError::File {
                path: "state".into(),
                reason: "disk gone".into(),
            });
        }
        self.inner.checkpoint(rule_id).await
    }
    async fn save_checkpoint(&self, c: &Checkpoint) -> Result<(), StateError> {
        self.inner.save_checkpoint(c).await
    }
    async fn record_execution(&self, r: &ExecutionRecord) -> Result<(), StateError> {
        self.inner.record_execution(r).await
    }
    async fn save_dead_letters(&self, l: &[DeadLetter]) -> Result<(), StateError> {
        self.inner.save_dead_letters(l).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        self.inner.dead_letters().await
    }
    async fn remove_dead_letters(&self, ids: &[String]) -> Result<(), StateError> {
        self.inner.remove_dead_letters(ids).await
    }
    async fn outbox_add(&self, e: &[OutboxEntry]) -> Result<Vec<String>, StateError> {
        self.inner.outbox_add(e).await
    }
    async fn outbox_get(&self, ids: &[String]) -> Result<Vec<OutboxEntry>, StateError> {
        self.inner.outbox_get(ids).await
    }
    async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.inner.outbox_pending().await
    }
    async fn outbox_update(&self, e: &[OutboxEntry]) -> Result<(), StateError> {
        self.inner.outbox_update(e).await
    }
    async fn throttle_marks(&self, k: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        self.inner.throttle_marks(k).await
    }
    async fn save_throttle_marks(&self, m: &[ThrottleMark]) -> Result<(), StateError> {
        self.inner.save_throttle_marks(m).await
    }
}

/// The `event` of each message the receiver got at `/ops`, in order.
fn ops_events(r: &Receiver) -> Vec<String> {
    r.delivered()
        .iter()
        .filter(|m| m.path == "/ops")
        .map(|m| m.body["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test]
async fn a_rule_failing_seven_runs_in_a_row_gives_one_message_and_one_when_it_runs_again() {
    let r = Receiver::start().await;
    let settings = config(&r, &r.url("/alerts"), "");
    let memory = Arc::new(MemoryStateStore::new());
    let state = Arc::new(Flaky {
        inner: memory.clone(),
        down: AtomicBool::new(true),
    });
    let run = runner(Vec::new(), state.clone(), &settings);
    let worker = Deliverer::new(memory.clone(), &settings).unwrap();
    let rule = sequence_rule();
    for i in 0..7 {
        let now = t0() + Duration::minutes(5 * i);
        let rec = run.run(&rule, now).await;
        assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
        worker.tick(now).await.unwrap();
        // nothing before the third failure in a row
        let expected = usize::from(i >= 2);
        assert_eq!(ops_events(&r).len(), expected, "after run {i}");
    }
    let failing = &r.delivered()[0].body;
    assert_eq!(failing["kind"], "detectd");
    assert_eq!(failing["event"], "rule_failing");
    assert_eq!(failing["detectd"]["since"], t0().to_rfc3339());
    assert_eq!(failing["detectd"]["runs"], 3);
    assert!(
        failing["alert"]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("disk gone")),
        "{failing}"
    );
    assert!(
        failing["rule"]["name"]
            .as_str()
            .is_some_and(|s| s.contains("failed 3 runs in a row")),
        "{failing}"
    );

    state.down.store(false, Ordering::SeqCst);
    for i in 7..9 {
        let now = t0() + Duration::minutes(5 * i);
        let rec = run.run(&rule, now).await;
        // no events, no index: a partial failure, not a failed run
        assert_ne!(rec.status, RunStatus::Failed, "{rec:?}");
        worker.tick(now).await.unwrap();
    }
    assert_eq!(ops_events(&r), ["rule_failing", "rule_recovered"]);
    let keys = delivered_keys(&r);
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
    assert!(
        r.delivered().iter().all(|m| m.path == "/ops"),
        "the route of alert groups gets no alert about detectd"
    );

    // a new streak is a new incident, with a key of its own
    state.down.store(true, Ordering::SeqCst);
    for i in 9..12 {
        let now = t0() + Duration::minutes(5 * i);
        run.run(&rule, now).await;
        worker.tick(now).await.unwrap();
    }
    assert_eq!(
        ops_events(&r),
        ["rule_failing", "rule_recovered", "rule_failing"]
    );
    assert_eq!(delivered_keys(&r).len(), 3);
}

#[tokio::test]
async fn a_gap_gives_one_message_even_when_its_run_is_seen_twice() {
    let r = Receiver::start().await;
    let settings = config(&r, &r.url("/alerts"), "events = [\"gap\"]");
    let state = Arc::new(MemoryStateStore::new());
    let run = detectd::runner::Runner::new(
        detectd::source::memory::MemorySource::new(Vec::new()),
        detectd::sink::memory::MemorySink::new(),
        state.clone(),
        RunnerSettings {
            catch_up_horizon: std::time::Duration::from_secs(3600),
            ..RunnerSettings::default()
        },
    )
    .with_router(Arc::new(detectd::notify::Router::new(&settings)));
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let rule = sequence_rule();
    let rec = run.run(&rule, t0()).await;
    assert_eq!(rec.gap, None, "{rec:?}");
    // down for a day: everything older than the 1 h horizon is a gap
    let later = t0() + Duration::hours(24);
    let rec = run.run(&rule, later).await;
    let gap = rec.gap.expect("a gap recorded");
    // the same incident seen again (as after a crash before the commit)
    let watch = detectd::notify::Watch::new(Arc::new(detectd::notify::Router::new(&settings)))
        .expect("a detectd route");
    watch.observe(&*state, &rec, later).await;
    run.run(&rule, later + Duration::minutes(5)).await;
    worker.tick(later + Duration::minutes(5)).await.unwrap();
    worker.tick(later + Duration::minutes(10)).await.unwrap();
    assert_eq!(ops_events(&r), ["gap"]);
    let body = &r.delivered()[0].body;
    assert_eq!(body["detectd"]["start"], gap.start.to_rfc3339());
    assert_eq!(body["detectd"]["end"], gap.end.to_rfc3339());
    assert_eq!(
        body["idempotency_key"],
        format!(
            "detectd/gap/{}/{}",
            rule.rule_id,
            gap.start.timestamp_millis()
        )
    );
}

#[tokio::test]
async fn a_given_up_message_gives_one_message_on_another_route_and_none_about_itself() {
    let r = Receiver::start().await;
    // the alerts output refuses (a 4xx gives up at once); so does `ops`
    // for the second case below
    let refusing = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        format!("http://{addr}/hook")
    };
    let settings = config(&r, &refusing, "");
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(
        attack("h1", t0() - Duration::minutes(4)),
        state.clone(),
        &settings,
    );
    let rec = run.run(&sequence_rule(), t0()).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    for i in 0..4 {
        worker.tick(t0() + Duration::minutes(i)).await.unwrap();
    }
    assert_eq!(ops_events(&r), ["delivery_given_up"]);
    let given_up: Vec<_> = state
        .outbox()
        .into_iter()
        .filter(|e| e.status == OutboxStatus::GivenUp)
        .collect();
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    let body = &r.delivered()[0].body;
    assert_eq!(body["detectd"]["entry"], given_up[0].id);
    assert!(
        body["detectd"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("answered 400")),
        "{body}"
    );

    // a detectd route on the refusing output: its own given-up message
    // is not announced again (no loop)
    let looped = notify_settings(&format!(
        "[notify]\ngive_up_after = \"1h\"\n\n[[outputs]]\nname = \"bad\"\nkind = \"webhook\"\nurl = \"{refusing}\"\n\n[[routes]]\nname = \"all\"\noutputs = [\"bad\"]\n\n[[routes]]\nname = \"detectd\"\nkind = \"detectd\"\noutputs = [\"bad\"]\n"
    ));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(
        attack("h1", t0() - Duration::minutes(4)),
        state.clone(),
        &looped,
    );
    run.run(&sequence_rule(), t0()).await;
    let worker = Deliverer::new(state.clone(), &looped).unwrap();
    for i in 0..6 {
        worker.tick(t0() + Duration::minutes(i)).await.unwrap();
    }
    let outbox = state.outbox();
    assert_eq!(
        outbox.len(),
        2,
        "the group's message and one about it: {outbox:?}"
    );
    assert!(outbox.iter().all(|e| e.status == OutboxStatus::GivenUp));
    assert_eq!(outbox.iter().filter(|e| e.about_detectd).count(), 1);
}

#[tokio::test]
async fn an_incident_seen_again_after_a_restart_adds_nothing_to_a_file_outbox() {
    let r = Receiver::start().await;
    let settings = config(&r, &r.url("/alerts"), "");
    let dir = tempfile::tempdir().unwrap();
    let rule = sequence_rule();
    let router = Arc::new(detectd::notify::Router::new(&settings));
    let mut rec = ExecutionRecord::started(&rule.rule_id, &rule.name, "e1".into(), t0());
    rec.gap = Some(detectd::runner::WindowRange {
        start: t0() - Duration::hours(5),
        end: t0() - Duration::hours(1),
    });
    let first = detectd::state::FileStateStore::open(dir.path()).unwrap();
    detectd::notify::Watch::new(router.clone())
        .unwrap()
        .observe(&first, &rec, t0())
        .await;
    drop(first);
    // a restarted process: a new store on the same directory, a new watch,
    // the same gap (its window was not committed) a run later
    let again = Arc::new(detectd::state::FileStateStore::open(dir.path()).unwrap());
    rec.gap = Some(detectd::runner::WindowRange {
        start: t0() - Duration::hours(5),
        end: t0() - Duration::minutes(55),
    });
    detectd::notify::Watch::new(router)
        .unwrap()
        .observe(&*again, &rec, t0() + Duration::minutes(5))
        .await;
    let pending = again.outbox_pending().await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let worker = Deliverer::new(again, &settings).unwrap();
    worker.tick(t0() + Duration::minutes(5)).await.unwrap();
    assert_eq!(ops_events(&r), ["gap"]);
}
