//! The file state store: durability, replacement and the outbox journal.

use super::file::*;
use super::{
    CapCut, Checkpoint, DeadLetter, OutboxEntry, OutboxStatus, PendingWindow, StateStore,
    TailSpend, ThrottleMark,
};
use chrono::{DateTime, Utc};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

#[tokio::test]
async fn checkpoints_survive_reopening_and_are_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path().join("state")).unwrap();
    assert_eq!(store.checkpoint("r1").await.unwrap(), None);
    for (rule, at) in [("r1", 10), ("r2", 20), ("r1", 30)] {
        store
            .save_checkpoint(&Checkpoint {
                threshold_history: Vec::new(),
                rule_id: rule.into(),
                covered_until: t(at),
                updated_at: t(at),
                pending: None,
            })
            .await
            .unwrap();
    }
    let again = FileStateStore::open(dir.path().join("state")).unwrap();
    assert_eq!(
        again.checkpoint("r1").await.unwrap().unwrap().covered_until,
        t(30)
    );
    assert_eq!(
        again.checkpoint("r2").await.unwrap().unwrap().covered_until,
        t(20)
    );
    assert!(!dir.path().join("state/checkpoints.json.tmp").exists());
    let text = std::fs::read_to_string(dir.path().join("state/checkpoints.json")).unwrap();
    assert!(text.contains("\"checkpoint\""), "{text}");
}

#[tokio::test]
async fn a_pending_window_is_kept_and_a_file_without_one_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    // as written before checkpoints could carry a pending window
    std::fs::write(
        dir.path().join("checkpoints.json"),
        br#"{"r1": {"rule_id": "r1", "checkpoint": "2023-11-14T22:13:20Z", "updated_at": "2023-11-14T22:13:20Z"}}"#,
    )
    .unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    let old = store.checkpoint("r1").await.unwrap().unwrap();
    assert_eq!((old.covered_until, old.pending.clone()), (t(0), None));
    let pending = PendingWindow {
        window_end: t(300),
        cap_cut: CapCut {
            last_event_ms: 1_700_000_000_123,
            alert_id: "abc".into(),
        },
    };
    store
        .save_checkpoint(&Checkpoint {
            threshold_history: Vec::new(),
            pending: Some(pending.clone()),
            ..old
        })
        .await
        .unwrap();
    let again = FileStateStore::open(dir.path()).unwrap();
    let read = again.checkpoint("r1").await.unwrap().unwrap();
    assert_eq!(read.pending, Some(pending));
}

#[tokio::test]
async fn dead_letters_are_kept_replaced_by_id_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    assert!(store.dead_letters().await.unwrap().is_empty());
    let letter = |id: &str, at: i64, attempts: u32| DeadLetter {
        alert_id: id.into(),
        index: ".alerts-security.alerts-default".into(),
        rule_id: "r1".into(),
        execution_id: "e1".into(),
        refused_at: t(at),
        status: 400,
        reason: "mapper_parsing_exception: failed to parse".into(),
        attempts,
        alert: serde_json::json!({"host": "ws-1"}),
    };
    store
        .save_dead_letters(&[letter("b", 20, 1), letter("a", 10, 1)])
        .await
        .unwrap();
    store
        .save_dead_letters(&[letter("b", 30, 2)])
        .await
        .unwrap();
    let again = FileStateStore::open(dir.path()).unwrap();
    let all = again.dead_letters().await.unwrap();
    assert_eq!(all, vec![letter("a", 10, 1), letter("b", 30, 2)]);
    again
        .remove_dead_letters(&["a".into(), "unknown".into()])
        .await
        .unwrap();
    assert_eq!(
        again.dead_letters().await.unwrap(),
        vec![letter("b", 30, 2)]
    );
    assert!(!dir.path().join("dead-letters.json.tmp").exists());
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("checkpoints.json"), b"{not json").unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    let err = store.checkpoint("r1").await.unwrap_err();
    assert!(err.to_string().contains("expected a json object"), "{err}");
}

#[tokio::test]
async fn the_outbox_keeps_an_entry_added_twice_as_first_stored_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    let entry = |status: OutboxStatus, attempts: u32| OutboxEntry {
        id: "r/g1@hook".into(),
        key: "r/g1".into(),
        output: "hook".into(),
        ..sample("r/g1@hook", status, attempts)
    };
    let added = store
        .outbox_add(&[entry(OutboxStatus::Pending, 0)])
        .await
        .unwrap();
    assert_eq!(added, vec!["r/g1@hook".to_string()]);
    store
        .outbox_update(&[entry(OutboxStatus::Sent, 1)])
        .await
        .unwrap();
    // a window searched again adds the same id: the sent entry stays sent
    let again = FileStateStore::open(dir.path()).unwrap();
    assert!(again
        .outbox_add(&[entry(OutboxStatus::Pending, 0)])
        .await
        .unwrap()
        .is_empty());
    assert!(again.outbox_pending().await.unwrap().is_empty());
    let stored = again.outbox_get(&["r/g1@hook".into()]).await.unwrap();
    assert_eq!(stored, vec![entry(OutboxStatus::Sent, 1)]);
    let mark = ThrottleMark {
        key: "r/host-1".into(),
        at: t(5),
    };
    again
        .save_throttle_marks(std::slice::from_ref(&mark))
        .await
        .unwrap();
    assert_eq!(
        FileStateStore::open(dir.path())
            .unwrap()
            .throttle_marks(&["r/host-1".into(), "r/other".into()])
            .await
            .unwrap(),
        vec![mark]
    );
}

#[tokio::test]
async fn settled_outbox_entries_are_dropped_a_week_after_and_pending_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    let entry = |id: &str, status: OutboxStatus, created: i64| OutboxEntry {
        window_end: t(created),
        created_at: t(created),
        ..sample(id, status, 0)
    };
    let week = 7 * 24 * 3600;
    store
        .outbox_add(&[
            entry("old-sent", OutboxStatus::Sent, 0),
            entry("old-pending", OutboxStatus::Pending, 0),
            entry("recent-sent", OutboxStatus::Sent, week),
        ])
        .await
        .unwrap();
    // an update a week and a second after the first entries
    store
        .outbox_update(&[entry("new", OutboxStatus::Sent, week + 1)])
        .await
        .unwrap();
    let ids = ["old-sent", "old-pending", "recent-sent", "new"].map(String::from);
    let kept: Vec<String> = store
        .outbox_get(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(kept, ["old-pending", "recent-sent", "new"]);
}

fn sample(id: &str, status: OutboxStatus, attempts: u32) -> OutboxEntry {
    OutboxEntry {
        id: id.into(),
        key: id.into(),
        route: "r".into(),
        output: "o".into(),
        rule_id: "rule".into(),
        window_end: t(300),
        created_at: t(10),
        status,
        attempts,
        next_attempt_at: None,
        sent_at: None,
        last_error: None,
        message: "{}".into(),
        about_detectd: false,
    }
}

#[tokio::test]
async fn a_recorded_send_is_an_append_read_over_the_file_and_folded_at_the_next_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    let ids = ["a", "b", "c"].map(String::from);
    store
        .outbox_add(&ids.clone().map(|id| sample(&id, OutboxStatus::Pending, 0)))
        .await
        .unwrap();
    let outbox = std::fs::read(dir.path().join("outbox.json")).unwrap();
    store
        .outbox_record(&[sample("a", OutboxStatus::Sent, 1)])
        .await
        .unwrap();
    // the record is an append: outbox.json is untouched, the journal has it
    assert_eq!(
        std::fs::read(dir.path().join("outbox.json")).unwrap(),
        outbox
    );
    let journal = dir.path().join("outbox.journal.ndjson");
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        1
    );
    // read over the file, after reopening too
    let again = FileStateStore::open(dir.path()).unwrap();
    let pending: Vec<String> = again
        .outbox_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pending, ["b", "c"]);
    // the next rewrite folds the journal in and removes it
    again
        .outbox_update(&[sample("b", OutboxStatus::Sent, 1)])
        .await
        .unwrap();
    assert!(!journal.exists());
    let stored = again.outbox_get(&ids).await.unwrap();
    let statuses: Vec<OutboxStatus> = stored.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            OutboxStatus::Sent,
            OutboxStatus::Sent,
            OutboxStatus::Pending
        ]
    );
}

#[tokio::test]
async fn a_journal_line_cut_short_by_a_crash_is_ignored_and_a_bad_line_before_the_end_is_an_error()
{
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    store
        .outbox_add(&[
            sample("a", OutboxStatus::Pending, 0),
            sample("b", OutboxStatus::Pending, 0),
        ])
        .await
        .unwrap();
    store
        .outbox_record(&[sample("a", OutboxStatus::Sent, 1)])
        .await
        .unwrap();
    let journal = dir.path().join("outbox.journal.ndjson");
    // a crash halfway through the append of b's record
    let full = serde_json::to_string(&sample("b", OutboxStatus::Sent, 1)).unwrap();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&full.as_bytes()[..full.len() / 2]);
    std::fs::write(&journal, &bytes).unwrap();
    let pending: Vec<String> = store
        .outbox_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pending, ["b"], "the torn record was never acknowledged");
    // the same damage before the last line is not a crash: an error
    bytes.extend_from_slice(b"\n");
    std::fs::write(&journal, &bytes).unwrap();
    let err = store.outbox_pending().await.unwrap_err().to_string();
    assert!(
        err.contains("outbox.journal.ndjson") && err.contains("line 2"),
        "{err}"
    );
}

#[tokio::test]
async fn pruning_drops_settled_entries_created_before_the_cutoff_and_never_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path()).unwrap();
    let at = |id: &str, status: OutboxStatus, created: i64| OutboxEntry {
        created_at: t(created),
        ..sample(id, status, 0)
    };
    store
        .outbox_add(&[
            at("old-sent", OutboxStatus::Sent, 0),
            at("old-given-up", OutboxStatus::GivenUp, 0),
            at("old-pending", OutboxStatus::Pending, 0),
            at("new-sent", OutboxStatus::Sent, 100),
        ])
        .await
        .unwrap();
    // a record in the journal is pruned as well
    store
        .outbox_record(&[at("old-pending", OutboxStatus::Sent, 0)])
        .await
        .unwrap();
    assert_eq!(store.outbox_prune(t(50)).await.unwrap(), 3);
    assert_eq!(store.outbox_prune(t(50)).await.unwrap(), 0);
    let ids = ["old-sent", "old-given-up", "old-pending", "new-sent"].map(String::from);
    let kept: Vec<String> = FileStateStore::open(dir.path())
        .unwrap()
        .outbox_get(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(kept, ["new-sent"]);
}

#[tokio::test]
async fn tail_budgets_are_kept_by_rule_replaced_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStateStore::open(dir.path().join("state")).unwrap();
    assert_eq!(store.tail_spend("r1").await.unwrap(), None);
    let spend = |rule: &str, slot: i64, alerted: u64| TailSpend {
        rule_id: rule.into(),
        slot,
        alerted,
    };
    for s in [spend("r1", 7, 2), spend("r2", 7, 1), spend("r1", 8, 5)] {
        store.save_tail_spend(&s).await.unwrap();
    }
    let again = FileStateStore::open(dir.path().join("state")).unwrap();
    assert_eq!(
        again.tail_spend("r1").await.unwrap(),
        Some(spend("r1", 8, 5))
    );
    assert_eq!(
        again.tail_spend("r2").await.unwrap(),
        Some(spend("r2", 7, 1))
    );
    assert_eq!(again.tail_spend("r3").await.unwrap(), None);
    // the checkpoints are a file of their own
    assert_eq!(again.checkpoint("r1").await.unwrap(), None);
}
