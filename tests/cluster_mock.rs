//! Fault paths a real server cannot produce on demand, against an in-process
//! HTTP mock (wiremock): 429 / 503 / timeouts retried, a bulk response with
//! mixed item statuses reported item by item, garbage responses turned into
//! clear errors, and the point in time closed when a search fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use detectd::alert::Alert;
use detectd::cluster::{Cluster, ClusterError, RetryPolicy};
use detectd::config::cluster::ClusterSettings;
use detectd::sink::elasticsearch::{BulkSettings, ElasticsearchSink};
use detectd::sink::AlertSink;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::source::{EventSource, FetchRequest, SourceError, TimeRange};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn fast_retry(max: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries: max,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

fn root_body() -> Value {
    json!({"cluster_name":"mock","version":{"distribution":"opensearch","number":"3.8.0"}})
}

async fn mount_root(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(root_body()))
        .mount(server)
        .await;
}

async fn connect(
    server: &MockServer,
    timeout_secs: f64,
    retries: u32,
) -> Result<Cluster, ClusterError> {
    let settings = ClusterSettings {
        urls: Some(vec![server.uri()]),
        request_timeout_secs: Some(timeout_secs),
        ..ClusterSettings::default()
    }
    .resolve()
    .unwrap();
    Cluster::connect_with(&settings, fast_retry(retries)).await
}

fn requests_to(reqs: &[Request], m: &str, p: &str) -> usize {
    reqs.iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .count()
}

#[tokio::test]
async fn connect_retries_503_then_detects_the_server() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_root(&server).await;
    let cluster = connect(&server, 5.0, 3).await.unwrap();
    assert_eq!(cluster.info().version.major, 3);
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(requests_to(&reqs, "GET", "/"), 3);
}

#[tokio::test]
async fn connect_gives_up_after_the_retry_limit_with_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429})))
        .mount(&server)
        .await;
    let err = connect(&server, 5.0, 2).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(err.to_string().contains("queue full"), "{err}");
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        requests_to(&reqs, "GET", "/"),
        3,
        "first attempt + 2 retries"
    );
}

#[tokio::test]
async fn html_from_a_proxy_is_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string("<html><body>Sign in</body></html>"),
        )
        .mount(&server)
        .await;
    let err = connect(&server, 5.0, 0).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("expected json") && msg.contains("<html>"),
        "{msg}"
    );
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tagline":"not a cluster"})))
        .with_priority(1)
        .mount(&server)
        .await;
    let err = connect(&server, 5.0, 0).await.unwrap_err();
    assert!(matches!(err, ClusterError::Unsupported(_)), "{err}");
}

fn window() -> TimeRange {
    TimeRange {
        from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        to: Utc.with_ymd_and_hms(2024, 1, 1, 1, 0, 0).unwrap(),
    }
}

/// `GET /logs-1/_mapping`: an index without fields.
async fn mount_mapping(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/logs-1/_mapping"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"logs-1": {"mappings": {}}})))
        .mount(server)
        .await;
}

async fn mount_fetch_basics(server: &MockServer) {
    mount_root(server).await;
    mount_mapping(server).await;
    Mock::given(method("GET"))
        .and(path("/_resolve/index/logs-*"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"indices":[{"name":"logs-1","attributes":["open"]}],"aliases":[],"data_streams":[]})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-1/_search/point_in_time"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"pit_id":"PIT-1","creation_time":1})),
        )
        .mount(server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_search/point_in_time"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"pits":[{"pit_id":"PIT-1","successful":true}]})),
        )
        .mount(server)
        .await;
}

fn page(ids: &[&str]) -> Value {
    let hits: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"_index":"logs-1","_id":id,"_source":{"n":i},"sort":[1704067200000i64 + i as i64, i]}))
        .collect();
    json!({"_shards":{"total":1,"successful":1,"failed":0},"timed_out":false,"hits":{"hits":hits},"pit_id":"PIT-1"})
}

#[tokio::test]
async fn search_pages_retry_429_and_timeouts_and_close_the_pit() {
    let server = MockServer::start().await;
    mount_fetch_basics(&server).await;
    // First a 429, then a response slower than the client's timeout, then
    // one full page and one short page.
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(429).set_body_string("{}"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(&["late"]))
                .set_delay(Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a", "b"])))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["c"])))
        .with_priority(4)
        .mount(&server)
        .await;
    let cluster = connect(&server, 1.0, 3).await.unwrap();
    let source = ElasticsearchSource::new(cluster);
    let mut req = FetchRequest::new(vec!["logs-*".into()], window());
    req.page_size = 2;
    let docs = source.fetch(req).await.unwrap().collect().await.unwrap();
    let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b", "c"]);
    let reqs = server.received_requests().await.unwrap();
    // 429 + timeout + page 1 + page 2
    assert_eq!(requests_to(&reqs, "POST", "/_search"), 4);
    let searches: Vec<Value> = reqs
        .iter()
        .filter(|r| r.url.path() == "/_search")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(searches[3]["search_after"], json!([1704067200001i64, 1]));
    assert_eq!(searches[0]["pit"]["id"], json!("PIT-1"));
    // wait for the producer task to close the point in time
    for _ in 0..100 {
        let reqs = server.received_requests().await.unwrap();
        if requests_to(&reqs, "DELETE", "/_search/point_in_time") == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the point in time was not closed");
}

#[tokio::test]
async fn a_failing_search_is_an_error_and_still_closes_the_pit() {
    let server = MockServer::start().await;
    mount_fetch_basics(&server).await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a", "b"])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .with_priority(2)
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 1).await.unwrap();
    let source = ElasticsearchSource::new(cluster);
    let mut req = FetchRequest::new(vec!["logs-*".into()], window());
    req.page_size = 2;
    let mut stream = source.fetch(req).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().id, "a");
    assert_eq!(stream.next().await.unwrap().unwrap().id, "b");
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, SourceError::Cluster(ClusterError::BadResponse { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("<html>gateway"), "{err}");
    assert!(
        stream.next().await.is_none(),
        "the stream ends after an error"
    );
    for _ in 0..100 {
        let reqs = server.received_requests().await.unwrap();
        if requests_to(&reqs, "DELETE", "/_search/point_in_time") == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the point in time was not closed after the error");
}

#[tokio::test]
async fn shard_failures_are_errors_not_partial_windows() {
    let server = MockServer::start().await;
    mount_fetch_basics(&server).await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_shards":{"total":2,"successful":1,"failed":1,"failures":[{"reason":{"type":"x","reason":"node left"}}]},
            "hits":{"hits":[]}})))
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 0).await.unwrap();
    let source = ElasticsearchSource::new(cluster);
    let err = source
        .fetch(FetchRequest::new(vec!["logs-*".into()], window()))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::ShardFailures(ref m) if m.contains("node left")),
        "{err}"
    );
}

#[tokio::test]
async fn missing_indices_are_a_warning_and_no_pit_is_opened() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("GET"))
        .and(path("/_resolve/index/nothing-*"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"indices":[],"aliases":[],"data_streams":[]})),
        )
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 0).await.unwrap();
    let source = ElasticsearchSource::new(cluster);
    let stream = source
        .fetch(FetchRequest::new(vec!["nothing-*".into()], window()))
        .await
        .unwrap();
    assert_eq!(
        stream.warnings(),
        ["index pattern `nothing-*` matches no index"]
    );
    assert!(stream.collect().await.unwrap().is_empty());
    let reqs = server.received_requests().await.unwrap();
    assert!(reqs.iter().all(|r| !r.url.path().contains("point_in_time")));
}

/// A `_bulk` responder that answers each `create` by a per-id script of
/// statuses (one per attempt; the last repeats) and records what it saw.
struct ScriptedBulk {
    script: Vec<(&'static str, Vec<u16>)>,
    seen: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Respond for ScriptedBulk {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let text = String::from_utf8_lossy(&req.body).to_string();
        let ids: Vec<String> = text
            .lines()
            .step_by(2)
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["create"]["_id"].as_str().unwrap().to_string()
            })
            .collect();
        let mut seen = self.seen.lock().unwrap();
        let items: Vec<Value> = ids
            .iter()
            .map(|id| {
                let attempt = seen.iter().filter(|r| r.contains(id)).count();
                let statuses = &self.script.iter().find(|(k, _)| k == id).unwrap().1;
                let status = statuses[attempt.min(statuses.len() - 1)];
                let mut item = json!({"_index":"alerts-000001","_id":id,"status":status});
                match status {
                    409 => item["error"] = json!({"type":"version_conflict_engine_exception","reason":"document already exists"}),
                    429 => item["error"] = json!({"type":"es_rejected_execution_exception","reason":"rejected"}),
                    400 => item["error"] = json!({"type":"document_parsing_exception","reason":"failed to parse field [x]"}),
                    _ => {}
                }
                json!({"create": item})
            })
            .collect();
        seen.push(ids);
        ResponseTemplate::new(200).set_body_json(json!({"errors":true,"took":1,"items":items}))
    }
}

fn alerts(ids: &[&str]) -> Vec<Alert> {
    ids.iter()
        .map(|id| Alert {
            id: id.to_string(),
            source: json!({"kibana.alert.uuid": id}),
        })
        .collect()
}

#[tokio::test]
async fn mixed_bulk_response_is_reported_item_by_item_and_429_items_retried() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(ScriptedBulk {
            script: vec![
                ("new", vec![201]),
                ("dup", vec![409]),
                ("busy", vec![429, 429, 201]),
                ("bad", vec![400]),
                ("down", vec![503]),
            ],
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 0).await.unwrap();
    let sink = ElasticsearchSink::new(
        cluster,
        BulkSettings {
            retry: fast_retry(3),
            ..BulkSettings::default()
        },
        spec(),
    );
    let report = sink
        .write("alerts", &alerts(&["new", "dup", "busy", "bad", "down"]))
        .await
        .unwrap();
    assert_eq!(report.created, vec!["new", "busy"]);
    assert_eq!(report.duplicates, vec!["dup"]);
    assert_eq!(report.failed.len(), 2);
    let bad = report.failed.iter().find(|f| f.id == "bad").unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.index, "alerts-000001");
    assert!(
        bad.reason.contains("failed to parse field [x]"),
        "{}",
        bad.reason
    );
    let down = report.failed.iter().find(|f| f.id == "down").unwrap();
    assert_eq!(down.status, 503);
    assert!(
        down.reason.contains("gave up after 3 retries"),
        "{}",
        down.reason
    );
    // Retries resend only the alerts that need it.
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].len(), 5);
    assert_eq!(seen[1], vec!["busy", "down"]);
    assert_eq!(seen[2], vec!["busy", "down"]);
    assert_eq!(seen[3], vec!["down"]);
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn whole_bulk_request_503_is_retried_then_every_alert_fails() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"},"status":503})))
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 0).await.unwrap();
    let sink = ElasticsearchSink::new(
        cluster,
        BulkSettings {
            retry: fast_retry(2),
            ..BulkSettings::default()
        },
        spec(),
    );
    let report = sink.write("alerts", &alerts(&["a", "b"])).await.unwrap();
    assert!(report.created.is_empty());
    assert_eq!(report.failed.len(), 2);
    assert!(report
        .failed
        .iter()
        .all(|f| f.status == 503 && f.reason.contains("primary shard is not active")));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(requests_to(&reqs, "POST", "/_bulk"), 3);
}

#[tokio::test]
async fn bulk_timeout_is_retried() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(json!({"items":[]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"errors":false,"items":[{"create":{"_id":"a","status":201}}]}),
            ),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let cluster = connect(&server, 1.0, 0).await.unwrap();
    let sink = ElasticsearchSink::new(
        cluster,
        BulkSettings {
            retry: fast_retry(2),
            ..BulkSettings::default()
        },
        spec(),
    );
    let report = sink.write("alerts", &alerts(&["a"])).await.unwrap();
    assert_eq!(report.created, vec!["a"]);
    assert_eq!(report.retries, 1);
}

#[tokio::test]
async fn garbage_bulk_responses_fail_the_chunk_with_the_body_shown() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string("<html><h1>502 Bad Gateway</h1></html>"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"items":[{"create":{"status":201}}]})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 0).await.unwrap();
    let sink = ElasticsearchSink::new(cluster, BulkSettings::default(), spec());
    let report = sink.write("alerts", &alerts(&["a", "b"])).await.unwrap();
    assert_eq!(report.failed.len(), 2);
    assert!(
        report.failed[0].reason.contains("502 Bad Gateway"),
        "{}",
        report.failed[0].reason
    );
    // An item count that does not match the request is not trusted either.
    let report = sink.write("alerts", &alerts(&["a", "b"])).await.unwrap();
    assert_eq!(report.failed.len(), 2);
    assert!(
        report.failed[0]
            .reason
            .contains("expected 2 items, found 1"),
        "{}",
        report.failed[0].reason
    );
    assert!(sink.write("a,b", &alerts(&["a"])).await.is_err());
}

/// Elasticsearch flavour: `/_pit` to open, `DELETE /_pit {"id"}` to close,
/// `_shard_doc` as the last sort key; OpenSearch 2.x (no `_shard_doc`):
/// `_index` + `_id` instead.
#[tokio::test]
async fn pit_api_and_tiebreak_sort_follow_the_server() {
    for (root, open_path, close_body, last_sort) in [
        (
            json!({"version":{"number":"8.15.0","build_flavor":"default"}}),
            "/logs-1/_pit",
            json!({"id":"PIT-1"}),
            json!({"_shard_doc":"asc"}),
        ),
        (
            json!({"version":{"distribution":"opensearch","number":"2.11.0"}}),
            "/logs-1/_search/point_in_time",
            json!({"pit_id":["PIT-1"]}),
            json!({"_id":"asc"}),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(root))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/_resolve/index/logs-*"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"indices":[{"name":"logs-1"}]})),
            )
            .mount(&server)
            .await;
        mount_mapping(&server).await;
        Mock::given(method("POST"))
            .and(path(open_path))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id":"PIT-1","pit_id":"PIT-1"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/_search"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a"])))
            .mount(&server)
            .await;
        let close_path = if open_path.ends_with("_pit") {
            "/_pit"
        } else {
            "/_search/point_in_time"
        };
        Mock::given(method("DELETE"))
            .and(path(close_path))
            .and(wiremock::matchers::body_json(close_body))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"succeeded":true})))
            .expect(1)
            .mount(&server)
            .await;
        let cluster = connect(&server, 5.0, 0).await.unwrap();
        let source = ElasticsearchSource::new(cluster);
        let docs = source
            .fetch(FetchRequest::new(vec!["logs-*".into()], window()))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(docs.len(), 1);
        let reqs = server.received_requests().await.unwrap();
        let search: Value = reqs
            .iter()
            .find(|r| r.url.path() == "/_search")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .unwrap();
        assert_eq!(
            search["sort"].as_array().unwrap().last().unwrap(),
            &last_sort
        );
        assert_eq!(
            search["sort"][0],
            json!({"@timestamp":{"order":"asc","unmapped_type":"date"}})
        );
        // `expect(1)` on the PIT mocks is verified when the server drops.
    }
}

#[tokio::test]
async fn credentials_are_sent_and_a_bad_ca_file_is_an_error() {
    use wiremock::matchers::header;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(header(
            "authorization",
            "ApiKey c2VjcmV0LWlkOnNlY3JldC1rZXk=",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(root_body()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401})))
        .with_priority(10)
        .mount(&server)
        .await;
    let settings = |key: Option<&str>| ClusterSettings {
        urls: Some(vec![server.uri()]),
        api_key: key.map(detectd::config::cluster::Secret::new),
        ..ClusterSettings::default()
    };
    let ok = Cluster::connect_with(
        &settings(Some("c2VjcmV0LWlkOnNlY3JldC1rZXk="))
            .resolve()
            .unwrap(),
        fast_retry(0),
    )
    .await;
    assert!(ok.is_ok(), "{ok:?}");
    let err = Cluster::connect_with(&settings(None).resolve().unwrap(), fast_retry(3))
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(401),
        "401 is not retried and says why: {err}"
    );
    assert!(err
        .to_string()
        .contains("missing authentication credentials"));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(requests_to(&reqs, "GET", "/"), 2, "no retry of a 401");

    let mut bad_ca = settings(None);
    bad_ca.ca_cert = Some("/nonexistent/ca.pem".into());
    let err = Cluster::connect(&bad_ca.resolve().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::CaCert { .. }), "{err}");
}

/// A server whose request limit is below the chunk size answers 413: the
/// chunk is split until it fits, nothing is lost.
struct SizeLimitedBulk {
    limit: usize,
}

impl Respond for SizeLimitedBulk {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.body.len() > self.limit {
            return ResponseTemplate::new(413).set_body_string("");
        }
        let items: Vec<Value> = String::from_utf8_lossy(&req.body)
            .lines()
            .step_by(2)
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                json!({"create": {"_id": v["create"]["_id"], "status": 201}})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"errors": false, "items": items}))
    }
}

#[tokio::test]
async fn too_large_requests_are_split() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(SizeLimitedBulk { limit: 300 })
        .mount(&server)
        .await;
    let cluster = connect(&server, 5.0, 0).await.unwrap();
    let sink = ElasticsearchSink::new(
        cluster,
        BulkSettings {
            max_request_bytes: 100_000,
            retry: fast_retry(5),
            ..BulkSettings::default()
        },
        spec(),
    );
    let ids: Vec<String> = (0..8).map(|i| format!("alert-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let report = sink.write("alerts", &alerts(&refs)).await.unwrap();
    assert_eq!(report.created.len(), 8, "{:?}", report.failed);
    let reqs = server.received_requests().await.unwrap();
    assert!(requests_to(&reqs, "POST", "/_bulk") > 2);
    // One alert alone over the limit cannot be split: it fails with 413.
    let big = Alert {
        id: "big".into(),
        source: json!({"pad": "x".repeat(1_000)}),
    };
    let report = sink.write("alerts", &[big]).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].status, 413);
}

#[tokio::test]
async fn a_dead_node_is_skipped_by_the_retry() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    // A port nothing listens on: bind, note the port, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let settings = ClusterSettings {
        urls: Some(vec![dead, server.uri()]),
        request_timeout_secs: Some(5.0),
        ..ClusterSettings::default()
    }
    .resolve()
    .unwrap();
    let cluster = Cluster::connect_with(&settings, fast_retry(3))
        .await
        .unwrap();
    assert_eq!(cluster.info().version.major, 3);
}

/// How the sink would create Kibana's alerts layout (these tests write to
/// a mock that answers every bulk item itself).
fn spec() -> detectd::sink::alerts_index::BootstrapSpec {
    detectd::sink::alerts_index::BootstrapSpec {
        mode: detectd::sink::alerts_index::BootstrapMode::Create,
        kibana_version: "8.15.0".into(),
        mappings: json!({"properties": {}}),
    }
}
