//! What index patterns resolve to, kept between shared scans
//! (`ScanOptions::resolved_within`): a tail's scan every few seconds takes
//! the answer of one a moment ago instead of asking `_resolve/index` again,
//! and a scan that must see an index created a moment ago (a scheduled
//! window) resolves afresh — counted through the fault proxy in front of
//! the cluster at `ELASTICSEARCH_URL`.

#[path = "common/process.rs"]
mod process;

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::source::{EventSource, FetchRequest, ScanOptions, TimeRange};
use elasticsearch::http::Method;
use fault_proxy::FaultProxy;
use serde_json::json;

async fn connect(url: &str) -> detectd::cluster::Cluster {
    let mut settings = detectd::config::cluster::ClusterSettings::from_env();
    settings.urls = Some(vec![url.to_string()]);
    let settings = settings.resolve().expect("valid ELASTICSEARCH_* settings");
    detectd::cluster::Cluster::connect(&settings)
        .await
        .expect("connect")
}

async fn index_one(cluster: &detectd::cluster::Cluster, index: &str, id: &str) {
    let doc = json!({ "@timestamp": (Utc::now() - TimeDelta::minutes(1)).to_rfc3339(), "n": id });
    let path = format!("/{index}/_doc/{id}?refresh=true");
    cluster
        .send_raw(
            Method::Put,
            &path,
            &[],
            Some(doc.to_string().into_bytes()),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
}

#[tokio::test]
async fn a_tail_reuses_a_recent_resolution_and_a_window_resolves_afresh() {
    let Some(url) = process::cluster_url() else {
        return;
    };
    let proxy = match FaultProxy::start(&url).await {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("skipped: the fault proxy cannot front this cluster: {e}");
            return;
        }
        Err(e) => panic!("cannot start the fault proxy: {e}"),
    };
    let direct = connect(&url).await;
    let prefix = format!("it-resolve-{}", std::process::id());
    index_one(&direct, &format!("{prefix}-a"), "1").await;
    index_one(&direct, &format!("{prefix}-a"), "2").await;

    let source = ElasticsearchSource::new(connect(&proxy.url()).await);
    let now = Utc::now();
    let request = FetchRequest::new(
        vec![format!("{prefix}-*")],
        TimeRange {
            from: now - TimeDelta::minutes(10),
            to: now,
        },
    );
    let requests = [request.clone(), request];
    let tail = ScanOptions {
        max_events: 1_000,
        resolved_within: Duration::from_secs(60),
        select_locally: false,
    };
    let resolves = || proxy.requests("GET", "/_resolve/index/*");
    let events = |scan: detectd::source::SharedScan| scan.events.len();

    let first = source.fetch_shared(&requests, tail).await.unwrap().unwrap();
    assert_eq!(events(first), 2);
    let asked = resolves();
    assert!(asked >= 1, "the first scan resolves its pattern");

    // a minute has not passed: the tail takes the answer it has
    let second = source.fetch_shared(&requests, tail).await.unwrap().unwrap();
    assert_eq!(events(second), 2);
    assert_eq!(resolves(), asked, "no _resolve/index for a recent answer");

    // an index created since: a tail does not know it yet (the scheduled
    // windows find its events) ...
    index_one(&direct, &format!("{prefix}-b"), "3").await;
    let stale = source.fetch_shared(&requests, tail).await.unwrap().unwrap();
    assert_eq!(events(stale), 2);
    assert_eq!(resolves(), asked);

    // ... a window resolves afresh and reads it, and its answer is kept
    let fresh = ScanOptions::fresh(1_000);
    let window = source
        .fetch_shared(&requests, fresh)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events(window), 3);
    let asked = resolves();
    let after = source.fetch_shared(&requests, tail).await.unwrap().unwrap();
    assert_eq!(events(after), 3, "the tail takes the window's fresh answer");
    assert_eq!(resolves(), asked);

    for index in ["a", "b"] {
        let _ = direct
            .send_raw(
                Method::Delete,
                &format!("/{prefix}-{index}"),
                &[],
                None,
                None,
            )
            .await;
    }
}
