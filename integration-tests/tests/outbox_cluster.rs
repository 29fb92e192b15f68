//! The notification outbox in the cluster: its template (messages stored,
//! not mapped), a message recorded as sent without a refresh read back at
//! once by id, and settled entries past retention pruned while pending ones
//! stay.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::sink::elasticsearch::{install_templates, IndexNames};
use detectd::state::{ClusterStateStore, OutboxEntry, OutboxStatus, StateStore};
use detectd_integration_tests::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
}

fn entry(id: &str, status: OutboxStatus, created: DateTime<Utc>) -> OutboxEntry {
    OutboxEntry {
        id: id.into(),
        key: format!("route/{id}"),
        route: "route".into(),
        output: "hook".into(),
        rule_id: "rule".into(),
        window_end: created,
        created_at: created,
        status,
        attempts: 0,
        next_attempt_at: None,
        sent_at: None,
        last_error: None,
        // an alert field that would map as a long if the message were mapped
        message: r#"{"alert":{"host":{"name":"h1"}},"n":1}"#.into(),
        about_detectd: false,
    }
}

#[tokio::test]
async fn the_outbox_has_its_template_records_without_refresh_and_prunes_settled_entries() {
    let Some(cluster) = connect_or_skip("outbox_cluster").await else {
        return;
    };
    let names = IndexNames {
        state: unique_index("state"),
        executions: unique_index("executions"),
        dead_letters: unique_index("dead-letters"),
    };
    install_templates(&cluster, &names).await.unwrap();
    let store = ClusterStateStore::new(cluster.clone(), &names);
    let old = t0() - Duration::days(8);
    store
        .outbox_add(&[
            entry("old-sent", OutboxStatus::Sent, old),
            entry("old-throttled", OutboxStatus::Throttled, old),
            entry("old-pending", OutboxStatus::Pending, old),
            entry("new-pending", OutboxStatus::Pending, t0()),
        ])
        .await
        .unwrap();

    // the template made the index: its message is kept, not mapped
    let mapping = cluster
        .request_json(
            elasticsearch::http::Method::Get,
            &format!("/{}/_mapping", names.outbox()),
            &[],
            None,
        )
        .await
        .unwrap();
    let props = mapping
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|i| i.pointer("/mappings/properties"))
        .cloned()
        .unwrap_or_else(|| panic!("{mapping}"));
    assert_eq!(props["status"]["type"], "keyword", "{props}");
    assert_eq!(props["created_at"]["type"], "date", "{props}");
    assert_eq!(props["message"]["enabled"], false, "{props}");
    assert!(props.get("alert").is_none() && props.get("n").is_none());

    // one message sent, recorded without a refresh: a get by id sees it
    let mut sent = entry("new-pending", OutboxStatus::Sent, t0());
    sent.attempts = 1;
    sent.sent_at = Some(t0());
    store
        .outbox_record(std::slice::from_ref(&sent))
        .await
        .unwrap();
    assert_eq!(
        store.outbox_get(&["new-pending".into()]).await.unwrap(),
        vec![sent.clone()]
    );
    // and the pass's update makes it visible to the search
    store
        .outbox_update(std::slice::from_ref(&sent))
        .await
        .unwrap();
    let pending: Vec<String> = store
        .outbox_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pending, ["old-pending"]);

    // pruning a week back drops the two old settled entries only
    let dropped = store.outbox_prune(t0() - Duration::days(7)).await.unwrap();
    assert_eq!(dropped, 2);
    let ids = ["old-sent", "old-throttled", "old-pending", "new-pending"].map(String::from);
    let kept: Vec<String> = store
        .outbox_get(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(kept, ["old-pending", "new-pending"]);
    // an outbox that does not exist yet prunes nothing, without an error
    let empty = ClusterStateStore::new(
        cluster.clone(),
        &IndexNames {
            state: unique_index("state-none"),
            ..names.clone()
        },
    );
    assert_eq!(empty.outbox_prune(t0()).await.unwrap(), 0);
}
