//! Notifications when outputs fail: a receiver's refusal gives a message
//! up at once, a failure is retried until `give_up_after`, an unreachable
//! output's error shows no secret, one output down does not hold up
//! another; email through a local SMTP server, refused then accepted.

#[path = "common/notify_fixture.rs"]
mod notify_fixture;
#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/smtp.rs"]
mod smtp;

use std::sync::Arc;

use chrono::Duration;
use detectd::notify::{Deliverer, NotifySettings};
use detectd::runner::{ExecutionRecord, RunStatus};
use detectd::state::{
    Checkpoint, DeadLetter, MemoryStateStore, OutboxStatus, StateError, StateStore,
};
use notify_fixture::*;
use receiver::Receiver;
use smtp::SmtpServer;

/// A receiver that answers every request with `status`.
async fn answering(status: u16) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}/hook?token=url-s3cret")
}

fn hook_at(url: &str) -> NotifySettings {
    notify_settings(&format!(
        "[notify]\ngive_up_after = \"1h\"\n\n[[outputs]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n\n[[routes]]\nname = \"all\"\noutputs = [\"hook\"]\n"
    ))
}

#[tokio::test]
async fn a_refused_message_is_given_up_at_once_and_a_failing_one_after_give_up_after() {
    for (status, given_up_at_once) in [(400u16, true), (503, false), (429, false)] {
        let settings = hook_at(&answering(status).await);
        let state = Arc::new(MemoryStateStore::new());
        let run = runner(
            attack("h1", t0() - Duration::minutes(4)),
            state.clone(),
            &settings,
        );
        run.run(&sequence_rule(), t0()).await;
        let worker = Deliverer::new(state.clone(), &settings).unwrap();
        let report = worker.tick(t0()).await.unwrap();
        let entry = &state.outbox()[0];
        let error = entry.last_error.clone().unwrap();
        assert!(error.contains(&format!("answered {status}")), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        if given_up_at_once {
            assert_eq!(entry.status, OutboxStatus::GivenUp, "{status}");
            assert_eq!(report.given_up.get("hook"), Some(&1));
            continue;
        }
        assert_eq!(entry.status, OutboxStatus::Pending, "{status}");
        assert_eq!(report.failed.get("hook"), Some(&1));
        // within the backoff nothing is tried
        worker.tick(t0() + Duration::seconds(1)).await.unwrap();
        assert_eq!(state.outbox()[0].attempts, 1);
        // past give_up_after (1h) the next failure gives it up
        let report = worker.tick(t0() + Duration::minutes(61)).await.unwrap();
        assert_eq!(
            report.given_up.get("hook"),
            Some(&1),
            "{status}: {report:?}"
        );
        assert_eq!(state.outbox()[0].status, OutboxStatus::GivenUp);
        assert_eq!(state.outbox()[0].attempts, 2);
    }
}

#[tokio::test]
async fn an_unreachable_output_is_retried_and_its_error_shows_no_secret() {
    // a port nobody listens on: bound, then closed
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let settings = hook_at(&format!("http://{addr}/hook?token=url-s3cret"));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(
        attack("h1", t0() - Duration::minutes(4)),
        state.clone(),
        &settings,
    );
    let rec = run.run(&sequence_rule(), t0()).await;
    assert_eq!(rec.status, RunStatus::Succeeded);
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    let report = worker.tick(t0()).await.unwrap();
    assert_eq!(report.failed.get("hook"), Some(&1), "{report:?}");
    let entry = &state.outbox()[0];
    let error = entry.last_error.clone().unwrap();
    assert!(error.starts_with("POST failed: "), "{error}");
    assert!(
        !error.contains("s3cret") && !error.contains("token"),
        "{error}"
    );
    assert!(entry.next_attempt_at.unwrap() > t0());
    let stats = worker.stats().last_error().unwrap();
    assert!(!stats.contains("s3cret"), "{stats}");
}

#[tokio::test]
async fn one_output_down_does_not_hold_up_another() {
    let up = Receiver::start().await;
    let down = Receiver::start().await;
    down.set_down(true);
    let settings = notify_settings(&format!(
        "[[outputs]]\nname = \"up\"\nkind = \"webhook\"\nurl = \"{}\"\n\n[[outputs]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"{}\"\n\n[[routes]]\nname = \"all\"\noutputs = [\"down\", \"up\"]\n",
        up.url("/a"),
        down.url("/b")
    ));
    let mut docs = attack("h1", t0() - Duration::minutes(4));
    docs.extend(attack("h2", t0() - Duration::minutes(3)));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(docs, state.clone(), &settings);
    run.run(&sequence_rule(), t0()).await;
    let report = Deliverer::new(state.clone(), &settings)
        .unwrap()
        .tick(t0())
        .await
        .unwrap();
    assert_eq!(report.sent.get("up"), Some(&2), "{report:?}");
    assert_eq!(report.failed.get("down"), Some(&1), "{report:?}");
    assert_eq!(report.pending.get("down"), Some(&2), "{report:?}");
    assert_eq!(up.delivered().len(), 2);
}

#[tokio::test]
async fn email_goes_through_smtp_once_with_the_key_as_message_id_after_a_refusal() {
    let smtp = SmtpServer::start().await;
    smtp.set_down(true);
    let settings = notify_settings(&format!(
        r#"
[notify]
retry_initial = "1s"

[[outputs]]
name = "mail"
kind = "email"
host = "127.0.0.1"
port = {}
tls = "none"
username = "detectd"
password = "smtp-s3cret"
from = "detectd <detectd@example.com>"
to = ["soc@example.com", "oncall@example.com"]

[[routes]]
name = "all"
outputs = ["mail"]
"#,
        smtp.port()
    ));
    let state = Arc::new(MemoryStateStore::new());
    let run = runner(
        attack("h1", t0() - Duration::minutes(4)),
        state.clone(),
        &settings,
    );
    run.run(&sequence_rule(), t0()).await;
    let worker = Deliverer::new(state.clone(), &settings).unwrap();
    // a 4xx of SMTP is temporary: retried
    let report = worker.tick(t0()).await.unwrap();
    assert_eq!(report.failed.get("mail"), Some(&1), "{report:?}");
    let error = state.outbox()[0].last_error.clone().unwrap();
    assert!(error.starts_with("SMTP: "), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    smtp.set_down(false);
    let report = worker.tick(t0() + Duration::minutes(1)).await.unwrap();
    assert_eq!(report.sent.get("mail"), Some(&1), "{report:?}");
    worker.tick(t0() + Duration::minutes(2)).await.unwrap();

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "<detectd@example.com>");
    assert_eq!(mail.to, ["<soc@example.com>", "<oncall@example.com>"]);
    assert_eq!(
        mail.auth,
        Some(("detectd".to_string(), "smtp-s3cret".to_string()))
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[detectd] medium: Outbound Scheduled Task Activity via PowerShell")
    );
    let key = &state.outbox()[0].key;
    assert_eq!(
        mail.header("Message-ID"),
        Some(detectd::notify::output::email::message_id(key))
    );
    // quoted-printable: undo its soft line breaks
    let body = mail.data.replace("=\n", "");
    assert!(body.contains("host ws-h1, user alice"), "{body}");
    assert!(body.contains(&format!("idempotency key {key}")), "{body}");
}

/// A state store that keeps no outbox (the trait's defaults).
struct NoOutbox(MemoryStateStore);

impl StateStore for NoOutbox {
    async fn checkpoint(&self, rule_id: &str) -> Result<Option<Checkpoint>, StateError> {
        self.0.checkpoint(rule_id).await
    }
    async fn save_checkpoint(&self, c: &Checkpoint) -> Result<(), StateError> {
        self.0.save_checkpoint(c).await
    }
    async fn record_execution(&self, r: &ExecutionRecord) -> Result<(), StateError> {
        self.0.record_execution(r).await
    }
    async fn save_dead_letters(&self, l: &[DeadLetter]) -> Result<(), StateError> {
        self.0.save_dead_letters(l).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        self.0.dead_letters().await
    }
    async fn remove_dead_letters(&self, ids: &[String]) -> Result<(), StateError> {
        self.0.remove_dead_letters(ids).await
    }
}

#[tokio::test]
async fn a_run_whose_messages_cannot_be_stored_writes_no_alerts_and_keeps_its_window() {
    let settings = hook_at("http://127.0.0.1:9/hook");
    let state = Arc::new(NoOutbox(MemoryStateStore::new()));
    let run = runner(
        attack("h1", t0() - Duration::minutes(4)),
        state.clone(),
        &settings,
    );
    let rec = run.run(&sequence_rule(), t0()).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert!(
        rec.error
            .as_deref()
            .is_some_and(|e| e.contains("keeps no notification outbox")),
        "{rec:?}"
    );
    assert_eq!(rec.alerts_created, 0);
    assert!(head_ids(run.sink()).is_empty());
    assert!(
        state.0.get(&sequence_rule().rule_id).is_none(),
        "no checkpoint"
    );
    // without routes the same store runs as before
    let plain = detectd::runner::Runner::new(
        detectd::source::memory::MemorySource::new(attack("h1", t0() - Duration::minutes(4))),
        detectd::sink::memory::MemorySink::new(),
        NoOutbox(MemoryStateStore::new()),
        detectd::runner::RunnerSettings::default(),
    );
    let rec = plain.run(&sequence_rule(), t0()).await;
    assert_eq!((rec.status, rec.alerts_created), (RunStatus::Succeeded, 3));
}
