//! Points in time are always closed: after a full fetch, after the consumer
//! drops the stream early, and after a failing search. One test in its own
//! binary, so no other test opens points in time while it counts them.

use std::time::Duration as StdDuration;

use chrono::{Duration, TimeZone, Utc};
use detectd::eql::pushdown::{Filter, Scalar};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::source::{EventSource, FetchRequest, TimeRange};
use detectd_integration_tests::*;
use serde_json::{json, Value};

#[tokio::test]
async fn points_in_time_are_closed_after_success_drop_and_error() {
    let Some(cluster) = connect_or_skip("points_in_time_are_closed").await else {
        return;
    };
    let index = unique_index("pit");
    create_index(&cluster, &index, ecs_mapping()).await;
    let base = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let docs: Vec<(String, Value)> = (0..500)
        .map(|i| {
            (
                format!("d{i}"),
                json!({"@timestamp": (base + Duration::seconds(i)).to_rfc3339(), "word": "abc"}),
            )
        })
        .collect();
    index_docs(&cluster, &index, &docs).await;
    let before = cluster.open_pit_count().await.unwrap();
    let source = ElasticsearchSource::new(cluster.clone());
    let mut req = FetchRequest::new(
        vec![index.clone()],
        TimeRange {
            from: base,
            to: base + Duration::hours(1),
        },
    );
    req.page_size = 50;

    // A full fetch closes its PIT before the stream ends.
    let all = source
        .fetch(req.clone())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 500);
    assert_eq!(
        cluster.open_pit_count().await.unwrap(),
        before,
        "after a full fetch"
    );

    // Dropping the stream early: the producer notices and closes.
    let mut stream = source.fetch(req.clone()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    assert!(
        cluster.open_pit_count().await.unwrap() > before,
        "a PIT is open mid-fetch"
    );
    drop(stream);
    wait_for_count(&cluster, before, "after an early drop").await;

    // A search the server rejects (a numeric range on a keyword field with a
    // bound it cannot parse is fine; a wildcard on a date field is not on
    // every server, so force an error with an invalid sort field type).
    req.timestamp_field = "word".into();
    req.filter = Filter::Term {
        field: "word".into(),
        value: Scalar::String("abc".into()),
        case_insensitive: false,
    };
    let result = source.fetch(req).await;
    if let Ok(stream) = result {
        // Whether the server accepts sorting on a keyword as a date or not,
        // the PIT must be gone once the stream is done.
        let _ = stream.collect().await;
    }
    wait_for_count(&cluster, before, "after a failing or odd search").await;
    delete_indices(&cluster, &[&index]).await;
}

async fn wait_for_count(cluster: &detectd::cluster::Cluster, want: u64, when: &str) {
    let mut last = 0;
    for _ in 0..100 {
        last = cluster.open_pit_count().await.unwrap();
        if last == want {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    panic!("{when}: {last} points in time open, expected {want}");
}
