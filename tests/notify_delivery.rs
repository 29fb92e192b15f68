//! Notifications end to end without a cluster: rule runs over the memory
//! source and sink, the outbox in the memory or file state store, the
//! delivery worker sending to a real local HTTP receiver.
//!
//! What must hold: one message per alert group (a sequence is one), each
//! delivered once although the receiver was down for three runs, after a
//! restart, or after a crash between the alerts and the checkpoint; every
//! message carries its idempotency key; Slack, Teams and PagerDuty get
//! their own body shapes; throttle and summary routes as configured.

#[path = "common/notify_fixture.rs"]
mod notify_fixture;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Duration;
use detectd::notify::{Deliverer, Router};
use detectd::runner::{ExecutionRecord, RunStatus, Runner, RunnerSettings};
use detectd::sink::memory::MemorySink;
use detectd::source::memory::MemorySource;
use detectd::state::{
    Checkpoint, DeadLetter, FileStateStore, MemoryStateStore, OutboxEntry, OutboxStatus,
    StateError, StateStore, ThrottleMark,
};
use receiver::{Received, Receiver};
use serde_json::Value;

use notify_fixture::*;

#[tokio::test]
async fn one_message_per_alert_group_for_a_sequence_rule_and_an_event_rule() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(&r, ""));
    let at = t0() - Duration::minutes(4);
    let mut docs = attack("h1", at);
    docs.extend(attack("h2", at + Duration::seconds(30)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    for rule in [sequence_rule(), event_rule()] {
        let rec = run.run(&rule, t0()).await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    }
    // 2 sequences (3 alerts each) and 2 event alerts: 4 groups
    let heads = head_ids(run.sink());
    assert_eq!(heads.len(), 4, "{heads:?}");
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let report = worker.tick(t0()).await.unwrap();
    assert_eq!(report.sent.get("hook"), Some(&4), "{report:?}");

    let keys = delivered_keys(&r);
    let expected: BTreeSet<String> = heads.iter().map(|id| format!("all/{id}")).collect();
    assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
    // a sequence's message lists its two events in order
    let seq: Vec<Received> = r
        .delivered()
        .into_iter()
        .filter(|q| {
            q.body["rule"]["type"] == "eql"
                && q.body["alert"]["events"].as_array().unwrap().len() == 2
        })
        .collect();
    assert_eq!(seq.len(), 2, "two sequence messages with two events each");
    assert_eq!(seq[0].body["alert"]["events"][0]["category"], "library");
    assert_eq!(seq[0].body["alert"]["events"][1]["category"], "network");
    assert!(
        seq[0].body["text"].as_str().unwrap().contains("1. "),
        "{}",
        seq[0].body["text"]
    );

    // The next runs find the same alerts again (overlapping windows): no
    // new group, no new message.
    for rule in [sequence_rule(), event_rule()] {
        run.run(&rule, t0() + Duration::minutes(5)).await;
    }
    worker.tick(t0() + Duration::minutes(5)).await.unwrap();
    assert_eq!(r.delivered().len(), 4);
    assert!(state
        .outbox()
        .iter()
        .all(|e| e.status == OutboxStatus::Sent && e.attempts == 1));
}

#[tokio::test]
async fn a_receiver_down_for_three_runs_then_up_gets_each_message_once() {
    let r = Receiver::start().await;
    r.set_down(true);
    let settings = notify_settings(&webhook_config(&r, ""));
    let rule = sequence_rule();
    let mut docs = Vec::new();
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        docs.extend(attack(host, t0() + Duration::minutes(5 * i as i64 - 4)));
    }
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    for i in 0..3 {
        let now = t0() + Duration::minutes(5 * i);
        let rec = run.run(&rule, now).await;
        // the output being down never holds up a run
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
        assert_eq!(rec.alerts_created, 3, "run {i}: {rec:?}");
        let report = worker.tick(now).await.unwrap();
        assert!(report.sent.is_empty(), "{report:?}");
        assert_eq!(report.failed.get("hook"), Some(&1), "run {i}: {report:?}");
    }
    assert_eq!(r.delivered().len(), 0);
    assert_eq!(r.all().len(), 3, "one failed attempt per pass");
    let pending = state.outbox_pending().await.unwrap();
    assert_eq!(pending.len(), 3);
    // the oldest was tried in each pass; after its failure the others wait
    // their turn rather than hammer an output that is down
    assert_eq!(pending[0].attempts, 3);
    assert!(pending[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("answered 503")));
    assert!(pending[1..].iter().all(|e| e.attempts == 0));

    r.set_down(false);
    let report = worker.tick(t0() + Duration::minutes(15)).await.unwrap();
    assert_eq!(report.sent.get("hook"), Some(&3), "{report:?}");
    worker.tick(t0() + Duration::minutes(20)).await.unwrap();
    let keys = delivered_keys(&r);
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
}

#[tokio::test]
async fn a_restart_with_pending_messages_delivers_them_once() {
    let r = Receiver::start().await;
    r.set_down(true);
    let settings = notify_settings(&webhook_config(&r, ""));
    let dir = tempfile::tempdir().unwrap();
    {
        let state = Arc::new(FileStateStore::open(dir.path()).unwrap());
        let run = runner(
            attack("h1", t0() - Duration::minutes(4)),
            state.clone(),
            &settings,
        );
        let rec = run.run(&sequence_rule(), t0()).await;
        assert_eq!(rec.alerts_created, 3, "{rec:?}");
        let worker = Deliverer::new(state.clone(), &settings).unwrap();
        worker.tick(t0()).await.unwrap();
        assert_eq!(r.delivered().len(), 0);
        // the process goes away here with its message pending
    }
    r.set_down(false);
    let state = Arc::new(FileStateStore::open(dir.path()).unwrap());
    assert_eq!(state.outbox_pending().await.unwrap().len(), 1);
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let report = worker.tick(t0() + Duration::minutes(1)).await.unwrap();
    assert_eq!(report.sent.get("hook"), Some(&1), "{report:?}");
    // and again after another restart: nothing left to send
    let worker = Deliverer::new(
        Arc::new(FileStateStore::open(dir.path()).unwrap()),
        &settings,
    )
    .unwrap();
    worker.tick(t0() + Duration::minutes(2)).await.unwrap();
    assert_eq!(
        delivered_keys(&r).values().copied().collect::<Vec<_>>(),
        vec![1]
    );
}

/// A store that dies where a test says: its next `checkpoints` checkpoint
/// writes (those without a pending window) fail, as when the process dies
/// after writing the alerts; with `updates` every pass-closing
/// `outbox_update` fails, as when it dies after its sends but before the
/// pass writes their outcomes.
struct Crashing<T> {
    inner: T,
    checkpoints: AtomicUsize,
    updates: bool,
}

impl<T> Crashing<T> {
    fn at_checkpoints(inner: T, n: usize) -> Self {
        Crashing {
            inner,
            checkpoints: AtomicUsize::new(n),
            updates: false,
        }
    }

    fn at_updates(inner: T) -> Self {
        Crashing {
            inner,
            checkpoints: AtomicUsize::new(0),
            updates: true,
        }
    }
}

fn killed(path: &str, before: &str) -> StateError {
    StateError::File {
        path: path.into(),
        reason: format!("killed before {before}"),
    }
}

impl<T: StateStore> StateStore for Crashing<T> {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        self.inner.checkpoint(rule_id).await
    }
    async fn save_checkpoint(&self, c: &Checkpoint) -> Result<(), StateError> {
        if c.pending.is_none() && self.checkpoints.load(Ordering::SeqCst) > 0 {
            self.checkpoints.fetch_sub(1, Ordering::SeqCst);
            return Err(killed("checkpoints.json", "the checkpoint"));
        }
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
        if self.updates {
            return Err(killed("outbox.json", "the pass's update"));
        }
        self.inner.outbox_update(e).await
    }
    async fn outbox_record(&self, e: &[OutboxEntry]) -> Result<(), StateError> {
        self.inner.outbox_record(e).await
    }
    async fn throttle_marks(&self, k: &[String]) -> Result<Vec<ThrottleMark>, StateError> {
        self.inner.throttle_marks(k).await
    }
    async fn save_throttle_marks(&self, m: &[ThrottleMark]) -> Result<(), StateError> {
        self.inner.save_throttle_marks(m).await
    }
}

#[tokio::test]
async fn each_message_is_recorded_as_sent_at_once_so_a_crash_before_the_pass_ends_resends_none() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(&r, ""));
    let dir = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        docs.extend(attack(
            host,
            t0() - Duration::minutes(4) + Duration::seconds(i as i64),
        ));
    }
    {
        let state = Arc::new(Crashing::at_updates(
            FileStateStore::open(dir.path()).unwrap(),
        ));
        let run = runner(docs, state.clone(), &settings);
        let rec = run.run(&sequence_rule(), t0()).await;
        assert_eq!(rec.alerts_created, 9, "{rec:?}");
        let worker = Deliverer::new(state.clone(), &settings).unwrap();
        // the three are sent; the pass then dies writing their outcomes
        assert!(worker.tick(t0()).await.is_err());
        assert_eq!(r.delivered().len(), 3);
    }
    let state = Arc::new(FileStateStore::open(dir.path()).unwrap());
    assert!(state.outbox_pending().await.unwrap().is_empty());
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let report = worker.tick(t0() + Duration::minutes(1)).await.unwrap();
    assert!(report.sent.is_empty(), "{report:?}");
    assert_eq!(
        delivered_keys(&r).values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
}

#[tokio::test]
async fn a_crash_between_the_alerts_and_the_checkpoint_sends_nothing_early_and_each_message_once() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(&r, ""));
    let state = Arc::new(Crashing::at_checkpoints(MemoryStateStore::new(), 1));
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    let run = runner(docs, state.clone(), &settings);
    // the first run writes its alerts and dies before its checkpoint
    let rec = run.run(&sequence_rule(), t0()).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert_eq!(rec.alerts_created, 6);
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let report = worker.tick(t0()).await.unwrap();
    // the window is not committed: its messages wait
    assert!(report.sent.is_empty(), "{report:?}");
    assert_eq!(report.pending.get("hook"), Some(&2));
    assert!(r.all().is_empty());

    // the next attempt searches the same window: same alerts, same ids
    let rec = run.run(&sequence_rule(), t0()).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!((rec.alerts_created, rec.alerts_duplicate), (0, 6));
    assert_eq!(state.inner.outbox().len(), 2, "no second copy of an entry");
    worker.tick(t0() + Duration::seconds(10)).await.unwrap();
    let keys = delivered_keys(&r);
    let expected: BTreeSet<String> = head_ids(run.sink())
        .into_iter()
        .map(|id| format!("all/{id}"))
        .collect();
    assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
}

#[tokio::test]
async fn slack_teams_and_pagerduty_get_their_body_shapes() {
    let r = Receiver::start().await;
    let text = format!(
        r#"
[kibana]
public_base_url = "https://kibana.example"

[[outputs]]
name = "chat"
kind = "slack"
url = "{}"

[[outputs]]
name = "room"
kind = "teams"
url = "{}"

[[outputs]]
name = "pager"
kind = "pagerduty"
url = "{}"
routing_key = "test-routing-key"

[[routes]]
name = "oncall"
outputs = ["chat", "room", "pager"]
"#,
        r.url("/slack"),
        r.url("/teams"),
        r.url("/pd")
    );
    let settings = notify_settings(&text);
    let state = Arc::new(MemoryStateStore::new());
    let run = Runner::new(
        MemorySource::new(attack("h1", t0() - Duration::minutes(4))),
        MemorySink::new(),
        state.clone(),
        RunnerSettings {
            public_base_url: Some("https://kibana.example".into()),
            ..RunnerSettings::default()
        },
    )
    .with_router(Arc::new(Router::new(&settings)));
    run.run(&sequence_rule(), t0()).await;
    let shell = head_ids(run.sink()).into_iter().next().unwrap();
    let key = format!("oncall/{shell}");
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    worker.tick(t0()).await.unwrap();
    let by_path: BTreeMap<String, Value> = r
        .delivered()
        .into_iter()
        .map(|q| (q.path, q.body))
        .collect();
    assert_eq!(by_path.len(), 3, "{by_path:?}");

    let slack = &by_path["/slack"];
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "Outbound Scheduled Task Activity via PowerShell"
    );
    assert!(slack["text"].as_str().unwrap().contains("ws-h1"), "{slack}");
    let button = slack["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("a Kibana button");
    assert!(button["elements"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://kibana.example/"));

    let teams = &by_path["/teams"];
    assert_eq!(teams["type"], "message");
    let attachment = &teams["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert_eq!(attachment["content"]["body"][1]["type"], "FactSet");
    assert_eq!(
        attachment["content"]["actions"][0]["type"],
        "Action.OpenUrl"
    );

    let pd = &by_path["/pd"];
    assert_eq!(pd["routing_key"], "test-routing-key");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], key.as_str());
    // the founding rule is medium: PagerDuty's warning
    assert_eq!(pd["payload"]["severity"], "warning");
    assert_eq!(pd["payload"]["source"], "ws-h1");
    assert_eq!(
        pd["payload"]["custom_details"]["alerts"][0]["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for q in r.delivered() {
        assert_eq!(q.headers.get("idempotency-key"), Some(&key), "{}", q.path);
    }
}

#[tokio::test]
async fn a_throttled_route_lets_one_message_through_per_window_of_quiet() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(&r, "throttle = \"1h\""));
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    docs.extend(attack("h3", t0() + Duration::minutes(1)));
    docs.extend(attack("h4", t0() + Duration::minutes(61)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let mut throttled = 0;
    for now in [
        t0(),
        t0() + Duration::minutes(5),
        // a long quiet gap: the catch-up windows find h4
        t0() + Duration::minutes(65),
    ] {
        let rec = run.run(&sequence_rule(), now).await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
        worker.tick(now).await.unwrap();
        throttled = state
            .outbox()
            .iter()
            .filter(|e| e.status == OutboxStatus::Throttled)
            .count();
    }
    // h1 goes out, h2 (same run) and h3 (5 min later) are throttled, h4
    // comes more than an hour after h1's message
    assert_eq!(throttled, 2);
    let hosts: Vec<String> = r
        .delivered()
        .iter()
        .map(|q| q.body["alert"]["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, ["ws-h1", "ws-h4"]);
}

#[tokio::test]
async fn a_throttle_grouped_by_host_throttles_each_host_on_its_own() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(
        &r,
        "throttle = \"1h\"\ngroup_by = [\"host.name\"]",
    ));
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    run.run(&sequence_rule(), t0()).await;
    Deliverer::new(state.clone(), &settings)
        .unwrap()
        .tick(t0())
        .await
        .unwrap();
    assert_eq!(r.delivered().len(), 2);
}

#[tokio::test]
async fn a_summary_route_sends_one_message_per_run_with_every_group() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(&r, "mode = \"summary\""));
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    docs.extend(attack("h3", t0() - Duration::minutes(2)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    let rec = run.run(&sequence_rule(), t0()).await;
    assert_eq!(rec.alerts_created, 9);
    Deliverer::new(state.clone(), &settings)
        .unwrap()
        .tick(t0())
        .await
        .unwrap();
    let got = r.delivered();
    assert_eq!(got.len(), 1);
    let body = &got[0].body;
    assert_eq!(body["mode"], "summary");
    assert_eq!(body["count"], 3);
    assert_eq!(body["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["title"],
        "Outbound Scheduled Task Activity via PowerShell (3 alerts)"
    );
    assert_eq!(
        body["idempotency_key"],
        format!(
            "all/{}/{}",
            sequence_rule().rule_id,
            t0().timestamp_millis()
        )
    );
}

#[tokio::test]
async fn a_file_output_appends_one_ndjson_line_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/notifications.ndjson");
    let settings = notify_settings(&format!(
        "[[outputs]]\nname = \"lines\"\nkind = \"file\"\npath = {:?}\n\n[[routes]]\nname = \"r\"\noutputs = [\"lines\"]\n",
        path.display().to_string()
    ));
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    run.run(&sequence_rule(), t0()).await;
    Deliverer::new(state.clone(), &settings)
        .unwrap()
        .tick(t0())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(l["idempotency_key"].as_str().unwrap().starts_with("r/"));
        assert!(
            l["text"].as_str().unwrap().contains("powershell.exe"),
            "{l}"
        );
    }
}

#[tokio::test]
async fn a_rules_own_actions_route_its_groups_without_any_configured_route() {
    let r = Receiver::start().await;
    // an output, no [[routes]]
    let settings = notify_settings(&format!(
        "[[outputs]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        r.url("/hook")
    ));
    assert!(settings.routes.is_empty());
    let at = FOUNDING.find("[[rule.threat]]").unwrap();
    let mut text = FOUNDING.to_string();
    text.insert_str(
        at,
        "[[rule.actions]]\noutputs = [\"hook\"]\n\n[[rule.actions]]\noutputs = [\"hook\"]\nmode = \"summary\"\n\n",
    );
    let with_actions = load(&text);
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    // the same events through a rule without actions: nothing to send
    let other = event_rule();
    assert_eq!(run.run(&other, t0()).await.status, RunStatus::Succeeded);
    let rec = run.run(&with_actions, t0()).await;
    assert_eq!(rec.alerts_created, 6, "{rec:?}");
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let report = worker.tick(t0()).await.unwrap();
    // one message per group from the first action, one summary from the second
    assert_eq!(report.sent.get("hook"), Some(&3), "{report:?}");
    let rule_id = &with_actions.rule_id;
    let keys: BTreeSet<String> = delivered_keys(&r).into_keys().collect();
    let per_group = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{rule_id}/actions/1/")))
        .count();
    let summaries = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{rule_id}/actions/2/")))
        .count();
    assert_eq!((per_group, summaries), (2, 1), "{keys:?}");
}

#[tokio::test]
async fn two_workers_over_one_outbox_each_send_their_share_and_no_message_twice() {
    let r = Receiver::start().await;
    let settings = notify_settings(&webhook_config(&r, ""));
    let at = t0() - Duration::minutes(4);
    let mut docs = attack("h1", at);
    docs.extend(attack("h2", at + Duration::seconds(30)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    let (seq, event) = (sequence_rule(), event_rule());
    for rule in [&seq, &event] {
        assert_eq!(run.run(rule, t0()).await.status, RunStatus::Succeeded);
    }
    // each instance holds the lease of one rule
    let owner_of = |rule_id: String| -> detectd::notify::deliver::Share {
        Arc::new(move |e: &OutboxEntry| e.rule_id == rule_id)
    };
    let a = Deliverer::new(state.clone(), &settings)
        .unwrap()
        .with_share(owner_of(seq.rule_id.clone()));
    let b = Deliverer::new(state.clone(), &settings)
        .unwrap()
        .with_share(owner_of(event.rule_id.clone()));
    let (ra, rb) = tokio::join!(a.tick(t0()), b.tick(t0()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.sent.get("hook"), Some(&2), "{ra:?}");
    assert_eq!(rb.sent.get("hook"), Some(&2), "{rb:?}");
    // the other's entries are neither counted nor touched
    assert_eq!(ra.pending.get("hook"), Some(&0), "{ra:?}");
    assert_eq!(delivered_keys(&r).len(), 4);
    assert!(delivered_keys(&r).values().all(|n| *n == 1));
    assert!(state
        .outbox()
        .iter()
        .all(|e| e.status == OutboxStatus::Sent));
}
