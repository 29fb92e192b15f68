//! How the cluster source reads mappings, against an in-process mock
//! cluster: `GET <indices>/_mapping` once per concrete index, again for a
//! new index (a rollover) and, after the cache's age limit, for indices
//! that still grow (not for a data stream's older backing indices); the
//! pushdown and the `_source` projection use the same mappings the stream
//! hands to the evaluator; a failed mapping read is a clear error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use detectd::cluster::{Cluster, RetryPolicy};
use detectd::config::cluster::ClusterSettings;
use detectd::eql::schema::FieldType;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::source::mappings::MappingCache;
use detectd::source::{EventSource, FetchRequest, TimeRange};
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// What the mock cluster holds, and the mapping requests it saw.
#[derive(Clone)]
struct Mock1 {
    state: Arc<Mutex<State>>,
}

struct State {
    resolve: Value,
    mappings: Value,
    mapping_requests: Vec<String>,
    /// Answer `_mapping` with this status instead.
    mapping_status: Option<u16>,
    searches: Vec<Value>,
}

impl Respond for Mock1 {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap();
        let p = req.url.path().to_string();
        let ok = |v: Value| ResponseTemplate::new(200).set_body_json(v);
        if p == "/" {
            return ok(
                json!({"cluster_name": "mock", "version": {"number": "8.15.0", "build_flavor": "default"}}),
            );
        }
        if p.starts_with("/_resolve/index/") {
            return ok(s.resolve.clone());
        }
        if let Some(list) = p.strip_suffix("/_mapping") {
            let list = list.trim_start_matches('/').to_string();
            s.mapping_requests.push(list.clone());
            if let Some(status) = s.mapping_status {
                return ResponseTemplate::new(status).set_body_json(json!({
                    "error": {"type": "security_exception", "reason": "action [indices:admin/mappings/get] is unauthorized"}
                }));
            }
            let mut out = serde_json::Map::new();
            for name in list.split(',') {
                if let Some(m) = s.mappings.get(name) {
                    out.insert(name.to_string(), m.clone());
                }
            }
            return ok(Value::Object(out));
        }
        if p.ends_with("/_pit") {
            return ok(json!({"id": "PIT-1"}));
        }
        if p == "/_search" {
            s.searches
                .push(serde_json::from_slice(&req.body).unwrap_or(Value::Null));
            return ok(json!({
                "timed_out": false, "_shards": {"total": 1, "successful": 1, "failed": 0},
                "pit_id": "PIT-1", "hits": {"hits": []}
            }));
        }
        if p == "/_pit" {
            return ok(json!({"succeeded": true, "num_freed": 1}));
        }
        ResponseTemplate::new(404).set_body_string(format!("mock: no {p}"))
    }
}

async fn start(resolve: Value, mappings: Value) -> (MockServer, Mock1) {
    let mock = Mock1 {
        state: Arc::new(Mutex::new(State {
            resolve,
            mappings,
            mapping_requests: Vec::new(),
            mapping_status: None,
            searches: Vec::new(),
        })),
    };
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(mock.clone())
        .mount(&server)
        .await;
    (server, mock)
}

async fn source(server: &MockServer, cache: MappingCache) -> ElasticsearchSource {
    let settings = ClusterSettings {
        urls: Some(vec![server.uri()]),
        request_timeout_secs: Some(5.0),
        ..ClusterSettings::default()
    }
    .resolve()
    .unwrap();
    let retry = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    };
    let cluster = Cluster::connect_with(&settings, retry).await.unwrap();
    ElasticsearchSource::new(cluster).with_mapping_cache(cache)
}

fn request(query: &str) -> FetchRequest {
    let q = detectd::eql::parse(query).unwrap();
    FetchRequest::new(
        vec!["logs-*".into()],
        TimeRange {
            from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2024, 1, 1, 1, 0, 0).unwrap(),
        },
    )
    .for_query(&q, "event.category")
}

fn mapping(props: Value) -> Value {
    json!({"mappings": {"properties": props}})
}

fn data_stream(backing: &[&str]) -> Value {
    json!({
        "indices": [{"name": "logs-plain", "attributes": ["open"]}],
        "aliases": [],
        "data_streams": [{"name": "logs-ds", "backing_indices": backing, "timestamp_field": "@timestamp"}]
    })
}

fn all_mappings() -> Value {
    let ip = mapping(json!({"destination": {"properties": {"ip": {"type": "ip"}}}}));
    json!({
        "logs-plain": mapping(json!({"destination": {"properties": {"ip": {"type": "keyword"}}}})),
        ".ds-logs-ds-000001": ip.clone(),
        ".ds-logs-ds-000002": ip.clone(),
        ".ds-logs-ds-000003": ip,
    })
}

#[tokio::test]
async fn each_index_is_read_once_new_ones_when_they_appear() {
    let (server, mock) = start(
        data_stream(&[".ds-logs-ds-000001", ".ds-logs-ds-000002"]),
        all_mappings(),
    )
    .await;
    let src = source(&server, MappingCache::default()).await;
    let req = request(r#"network where destination.ip == "10.0.0.1""#);
    let stream = src.fetch(req.clone()).await.unwrap();
    let m = stream.mappings();
    assert_eq!(
        m.get(".ds-logs-ds-000001")
            .unwrap()
            .resolve("destination.ip")
            .ty,
        FieldType::Ip
    );
    assert_eq!(
        m.get("logs-plain").unwrap().resolve("destination.ip").ty,
        FieldType::Keyword
    );
    // both backing indices have one mapping: one schema
    assert_eq!(m.distinct().len(), 2);
    drop(stream);
    src.fetch(req.clone()).await.unwrap();
    // a rollover: a new write index
    mock.state.lock().unwrap().resolve = data_stream(&[
        ".ds-logs-ds-000001",
        ".ds-logs-ds-000002",
        ".ds-logs-ds-000003",
    ]);
    let stream = src.fetch(req).await.unwrap();
    assert!(stream.mappings().get(".ds-logs-ds-000003").is_some());
    assert_eq!(
        mock.state.lock().unwrap().mapping_requests,
        [
            "logs-plain,.ds-logs-ds-000001,.ds-logs-ds-000002",
            ".ds-logs-ds-000003"
        ]
    );
    assert_eq!(src.mapping_cache().cached(), 4);
}

#[tokio::test]
async fn indices_that_still_grow_are_read_again_after_the_age_limit() {
    let (server, mock) = start(
        data_stream(&[".ds-logs-ds-000001", ".ds-logs-ds-000002"]),
        all_mappings(),
    )
    .await;
    let src = source(
        &server,
        MappingCache::new(Duration::ZERO, Duration::from_secs(3600)),
    )
    .await;
    let req = request("any where true");
    src.fetch(req.clone()).await.unwrap();
    src.fetch(req).await.unwrap();
    // the older backing index is not read again, the write index and the
    // plain index are
    assert_eq!(
        mock.state.lock().unwrap().mapping_requests,
        [
            "logs-plain,.ds-logs-ds-000001,.ds-logs-ds-000002",
            "logs-plain,.ds-logs-ds-000002"
        ]
    );
}

#[tokio::test]
async fn pushdown_and_projection_use_the_mappings() {
    let resolve = json!({"indices": [{"name": "logs-1", "attributes": ["open"]}], "aliases": [], "data_streams": []});
    let mappings = json!({"logs-1": mapping(json!({
        "host": {"properties": {"hostname": {"type": "keyword"},
            "name": {"type": "alias", "path": "host.hostname"}}},
        "data_stream": {"properties": {"dataset": {"type": "constant_keyword", "value": "x"}}},
        "event": {"properties": {"created": {"type": "date"}}},
        "user": {"properties": {"id": {"type": "keyword", "index": false}}}
    }))});
    let (server, mock) = start(resolve, mappings).await;
    let src = source(&server, MappingCache::default()).await;
    let plan = src
        .plan(&request(
            r#"any where host.name == "ws-1" and data_stream.dataset == "x" and event.created > "2024-01-01" and user.id == "u""#,
        ))
        .await
        .unwrap();
    let query = plan.query.to_string();
    // an alias and a constant_keyword answer on the cluster as the
    // evaluator does; a date range and a field that is not indexed widen
    assert!(
        query.contains(r#"{"term":{"host.name":{"value":"ws-1"}}}"#),
        "{query}"
    );
    assert!(
        query.contains(r#"{"term":{"data_stream.dataset":{"value":"x"}}}"#),
        "{query}"
    );
    assert!(!query.contains("event.created"), "{query}");
    assert!(!query.contains("user.id"), "{query}");
    // the alias's target is fetched, the alias itself is not in `_source`
    let includes = plan.source["includes"].as_array().unwrap();
    assert!(includes.contains(&json!("host.hostname")), "{includes:?}");
    assert!(mock.state.lock().unwrap().searches.is_empty(), "plan only");
}

#[tokio::test]
async fn a_failed_mapping_read_is_an_error_naming_the_request() {
    let resolve = json!({"indices": [{"name": "logs-1", "attributes": ["open"]}], "aliases": [], "data_streams": []});
    let (server, mock) = start(resolve, json!({})).await;
    mock.state.lock().unwrap().mapping_status = Some(403);
    let src = source(&server, MappingCache::default()).await;
    let err = src
        .fetch(request("any where true"))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("reading the mappings of logs-1: GET /logs-1/_mapping: "),
        "{err}"
    );
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    // nothing was cached: the next window asks again
    mock.state.lock().unwrap().mapping_status = None;
    assert!(src.fetch(request("any where true")).await.is_ok());
    assert_eq!(mock.state.lock().unwrap().mapping_requests.len(), 2);
}
