//! The bad-server-answer matrix: every request detectd sends to a cluster,
//! each answered in turn with garbage (invalid JSON, truncated JSON, valid
//! JSON of the wrong shape, a proxy's HTML 502 page, an empty 200, a huge
//! body), against an in-process mock cluster (wiremock) that otherwise
//! answers like OpenSearch 3 (or, for the rule-run requests, Elasticsearch
//! 8, whose point-in-time API differs).
//!
//! For every pair: no panic, and a clear error that names the request
//! (method and path) and no secret. For the requests of a rule run, the run
//! is reported `failed` and the checkpoint is unchanged, so the window is
//! searched again (nothing lost), except where the design says otherwise:
//! the existing-alerts lookup (a warning; the run writes and duplicates come
//! back as conflicts), closing a point in time (freed by its keep-alive),
//! and storing the execution record (logged). `GET /` and the template
//! install are checked on connect and install. A last test covers `_bulk`
//! answers with `errors: true` and odd item shapes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use detectd::cluster::{Cluster, RetryPolicy};
use detectd::config::cluster::{ClusterSettings, Secret};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ExecutionRecord, RunStatus, Runner, RunnerSettings};
use detectd::sink::alerts_index::{BootstrapMode, BootstrapSpec};
use detectd::sink::elasticsearch::{
    install_templates, BulkSettings, ElasticsearchSink, IndexNames,
};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::ClusterStateStore;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PASSWORD: &str = "Bad-Server-Pw-8812";
const ALERTS: &str = ".alerts-security.alerts-bad";
const ALERTS_BACKING: &str = ".internal.alerts-security.alerts-bad-000001";
const STATE: &str = "bad-state";
const EXECUTIONS: &str = "bad-exec";
const DEAD_LETTERS: &str = "bad-dead";
const RULE_ID: &str = "bad-rule";
const OLD_CHECKPOINT: &str = "2024-05-01T09:55:00Z";
const NEW_CHECKPOINT: &str = "2024-05-01T10:00:00Z";

/// Every request detectd sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Root,
    Resolve,
    Mapping,
    OpenPit,
    Search,
    ClosePit,
    Mget,
    ExistingIds,
    Bulk,
    GetCheckpoint,
    PutCheckpoint,
    PostExecution,
    /// What the alerts alias is (`alerts_index::inspect`).
    ResolveAlerts,
    /// Its write index.
    AliasAlerts,
    PutTemplate,
}

use Endpoint::*;

const ALL: [Endpoint; 15] = [
    Root,
    Resolve,
    Mapping,
    OpenPit,
    Search,
    ClosePit,
    Mget,
    ExistingIds,
    Bulk,
    GetCheckpoint,
    PutCheckpoint,
    PostExecution,
    ResolveAlerts,
    AliasAlerts,
    PutTemplate,
];

impl Endpoint {
    fn method(self) -> &'static str {
        match self {
            Root | Resolve | Mapping | GetCheckpoint | ResolveAlerts | AliasAlerts => "GET",
            OpenPit | Search | Mget | ExistingIds | Bulk | PostExecution => "POST",
            ClosePit => "DELETE",
            PutCheckpoint | PutTemplate => "PUT",
        }
    }

    /// The path, for the Elasticsearch (`es`) or OpenSearch flavour of the
    /// point-in-time API.
    fn path(self, es: bool) -> &'static str {
        match self {
            OpenPit if es => "/logs-test-1/_pit",
            ClosePit if es => "/_pit",
            Root => "/",
            Resolve => "/_resolve/index/logs-test-*",
            Mapping => "/logs-test-1/_mapping",
            OpenPit => "/logs-test-1/_search/point_in_time",
            Search => "/_search",
            ClosePit => "/_search/point_in_time",
            Mget => "/_mget",
            ExistingIds => "/.alerts-security.alerts-bad/_search",
            Bulk => "/_bulk",
            GetCheckpoint | PutCheckpoint => "/bad-state/_doc/bad-rule",
            PostExecution => "/bad-exec/_doc",
            ResolveAlerts => "/_resolve/index/.alerts-security.alerts-bad",
            AliasAlerts => "/_alias/.alerts-security.alerts-bad",
            PutTemplate => "/_index_template/bad-state-template",
        }
    }

    fn of(req: &Request, es: bool) -> Option<Endpoint> {
        let (m, p) = (req.method.as_str(), req.url.path());
        // `_resolve/index/logs-test-*` arrives with the `*` as is
        ALL.into_iter().find(|e| e.method() == m && e.path(es) == p)
    }
}

/// A garbage answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Garbage {
    InvalidJson,
    /// The first half of the right answer.
    TruncatedJson,
    WrongShape,
    /// Valid JSON, but an array where an object is expected.
    JsonArray,
    Html502,
    Empty200,
    /// 8 MB that is not JSON.
    Huge,
}

use Garbage::*;

const GARBAGE: [Garbage; 7] = [
    InvalidJson,
    TruncatedJson,
    WrongShape,
    JsonArray,
    Html502,
    Empty200,
    Huge,
];

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

impl Garbage {
    fn answer(self, healthy: &ResponseBody) -> ResponseTemplate {
        match self {
            InvalidJson => ResponseTemplate::new(200).set_body_string("this is not json {"),
            TruncatedJson => {
                let body = healthy.bytes();
                ResponseTemplate::new(200).set_body_bytes(body[..body.len() / 2].to_vec())
            }
            WrongShape => ResponseTemplate::new(200).set_body_json(json!({"unexpected": "shape"})),
            JsonArray => ResponseTemplate::new(200).set_body_json(json!([1, "two", null])),
            Html502 => ResponseTemplate::new(502)
                .insert_header("content-type", "text/html")
                .set_body_string(HTML_502),
            Empty200 => ResponseTemplate::new(200),
            Huge => {
                let mut body = b"<html>".to_vec();
                body.resize(8 * 1024 * 1024, b'x');
                ResponseTemplate::new(200).set_body_bytes(body)
            }
        }
    }
}

/// A healthy answer: status and JSON body (none for HEAD).
struct ResponseBody {
    status: u16,
    body: Option<Value>,
}

impl ResponseBody {
    fn ok(body: Value) -> ResponseBody {
        ResponseBody {
            status: 200,
            body: Some(body),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default()
    }

    fn template(&self) -> ResponseTemplate {
        let t = ResponseTemplate::new(self.status);
        match &self.body {
            Some(b) => t.set_body_json(b),
            None => t,
        }
    }
}

fn event() -> Value {
    json!({
        "@timestamp": "2024-05-01T09:58:00.000Z",
        "event": {"category": "process"},
        "process": {"name": "cmd.exe"}
    })
}

/// What the mock cluster holds: the rule's checkpoint document and the
/// execution records written.
#[derive(Debug)]
struct Stored {
    checkpoint: Value,
    executions: Vec<Value>,
    /// Documents indexed into the dead-letters index.
    dead_letters: Vec<Value>,
}

/// The mock cluster: healthy answers, except `garbage` for one endpoint.
#[derive(Clone)]
struct MockCluster {
    /// Elasticsearch 8 rather than OpenSearch 3.
    es: bool,
    garbage: Option<(Endpoint, Garbage)>,
    /// A healthy `_search` page whose hit carries this `_source` instead.
    search_source: Option<String>,
    stored: Arc<Mutex<Stored>>,
}

impl MockCluster {
    fn new(garbage: Option<(Endpoint, Garbage)>) -> MockCluster {
        MockCluster::flavour(false, garbage)
    }

    fn flavour(es: bool, garbage: Option<(Endpoint, Garbage)>) -> MockCluster {
        MockCluster {
            es,
            garbage,
            search_source: None,
            stored: Arc::new(Mutex::new(Stored {
                checkpoint: json!({"rule_id": RULE_ID, "checkpoint": OLD_CHECKPOINT, "updated_at": OLD_CHECKPOINT}),
                executions: Vec::new(),
                dead_letters: Vec::new(),
            })),
        }
    }

    fn checkpoint(&self) -> String {
        self.stored.lock().unwrap().checkpoint["checkpoint"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn healthy(&self, endpoint: Endpoint, req: &Request) -> ResponseBody {
        let shards = json!({"total": 1, "successful": 1, "skipped": 0, "failed": 0});
        match endpoint {
            Root if self.es => ResponseBody::ok(json!({
                "cluster_name": "mock",
                "version": {"number": "8.15.0", "build_flavor": "default"}
            })),
            Root => ResponseBody::ok(json!({
                "cluster_name": "mock",
                "version": {"distribution": "opensearch", "number": "3.8.0"}
            })),
            Resolve => ResponseBody::ok(json!({
                "indices": [{"name": "logs-test-1", "attributes": ["open"]}],
                "aliases": [], "data_streams": []
            })),
            Mapping => ResponseBody::ok(json!({
                "logs-test-1": {"mappings": {"properties": {
                    "process": {"properties": {"name": {"type": "keyword"}}},
                    "event": {"properties": {"category": {"type": "keyword"}}}
                }}}
            })),
            OpenPit if self.es => ResponseBody::ok(json!({"id": "PIT-1"})),
            OpenPit => ResponseBody::ok(json!({"pit_id": "PIT-1", "creation_time": 1})),
            Search => ResponseBody::ok(json!({
                "took": 1, "timed_out": false, "_shards": shards, "pit_id": "PIT-1",
                "hits": {"hits": [{
                    "_index": "logs-test-1", "_id": "e1", "_source": event(),
                    "sort": [1_714_557_480_000_i64, 0]
                }]}
            })),
            ClosePit if self.es => ResponseBody::ok(json!({"succeeded": true, "num_freed": 1})),
            ClosePit => {
                ResponseBody::ok(json!({"pits": [{"pit_id": "PIT-1", "successful": true}]}))
            }
            Mget => ResponseBody::ok(json!({"docs": [{
                "_index": "logs-test-1", "_id": "e1", "found": true, "_source": event()
            }]})),
            ExistingIds => ResponseBody::ok(json!({
                "took": 1, "timed_out": false, "_shards": shards,
                "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}
            })),
            Bulk => {
                let text = String::from_utf8_lossy(&req.body);
                // alerts (`create`) and dead letters (`index` + document)
                let items: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter_map(|l| {
                        let (op, c) = l.as_object()?.iter().next()?;
                        matches!(op.as_str(), "create" | "index" | "delete").then(|| {
                            json!({op.as_str(): {"_index": c["_index"], "_id": c["_id"], "status": 201, "result": "created"}})
                        })
                    })
                    .collect();
                ResponseBody::ok(json!({"took": 1, "errors": false, "items": items}))
            }
            GetCheckpoint => ResponseBody::ok(json!({
                "_index": STATE, "_id": RULE_ID, "found": true,
                "_source": self.stored.lock().unwrap().checkpoint.clone()
            })),
            PutCheckpoint => ResponseBody::ok(json!({
                "_index": STATE, "_id": RULE_ID, "result": "updated", "_shards": shards
            })),
            PostExecution => ResponseBody::ok(json!({
                "_index": EXECUTIONS, "_id": "x1", "result": "created", "_shards": shards
            })),
            ResolveAlerts => ResponseBody::ok(json!({
                "indices": [], "data_streams": [],
                "aliases": [{"name": ALERTS, "indices": [ALERTS_BACKING]}]
            })),
            AliasAlerts => ResponseBody::ok(json!({
                ALERTS_BACKING: {"aliases": {ALERTS: {"is_write_index": true}}}
            })),
            PutTemplate => ResponseBody::ok(json!({"acknowledged": true})),
        }
    }
}

impl Respond for MockCluster {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let Some(endpoint) = Endpoint::of(req, self.es) else {
            // other templates than the first one
            if req.method.as_str() == "PUT" && req.url.path().starts_with("/_index_template/") {
                return ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true}));
            }
            return ResponseTemplate::new(404).set_body_string(format!(
                "mock: no such endpoint {} {}",
                req.method,
                req.url.path()
            ));
        };
        let healthy = self.healthy(endpoint, req);
        if let Some((e, g)) = self.garbage {
            if e == endpoint {
                return g.answer(&healthy);
            }
        }
        if endpoint == Search {
            if let Some(source) = &self.search_source {
                let body = format!(
                    "{{\"timed_out\":false,\"_shards\":{{\"total\":1,\"successful\":1,\"failed\":0}},\
                     \"hits\":{{\"hits\":[{{\"_index\":\"logs-test-1\",\"_id\":\"e1\",\"_source\":{source},\
                     \"sort\":[1714557480000,0]}}]}}}}"
                );
                return ResponseTemplate::new(200).set_body_bytes(body.into_bytes());
            }
        }
        let mut stored = self.stored.lock().unwrap();
        match endpoint {
            PutCheckpoint => {
                stored.checkpoint = serde_json::from_slice(&req.body).unwrap_or(Value::Null)
            }
            PostExecution => stored
                .executions
                .push(serde_json::from_slice(&req.body).unwrap_or(Value::Null)),
            Bulk => {
                let text = String::from_utf8_lossy(&req.body);
                let mut lines = text.lines();
                while let Some(line) = lines.next() {
                    let action: Value = serde_json::from_str(line).unwrap_or(Value::Null);
                    if action.pointer("/index/_index") == Some(&json!(DEAD_LETTERS)) {
                        let doc = lines.next().unwrap_or("null");
                        stored
                            .dead_letters
                            .push(serde_json::from_str(doc).unwrap_or(Value::Null));
                    }
                }
            }
            _ => {}
        }
        healthy.template()
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    }
}

async fn start(mock: &MockCluster) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(mock.clone())
        .mount(&server)
        .await;
    server
}

async fn connect(server: &MockServer) -> Result<Cluster, detectd::cluster::ClusterError> {
    let settings = ClusterSettings {
        urls: Some(vec![server.uri()]),
        username: Some("bad-user".into()),
        password: Some(Secret::new(PASSWORD)),
        request_timeout_secs: Some(10.0),
        ..ClusterSettings::default()
    }
    .resolve()
    .unwrap();
    Cluster::connect_with(&settings, fast_retry()).await
}

fn rule() -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"{RULE_ID}\"\nname = \"Bad server\"\ndescription = \"d\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"logs-test-*\"]\nseverity = \"low\"\n\
         risk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         query = '''\nprocess where process.name == \"cmd.exe\"\n'''\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn names() -> IndexNames {
    IndexNames {
        state: STATE.into(),
        executions: EXECUTIONS.into(),
        dead_letters: DEAD_LETTERS.into(),
    }
}

/// How the sink would create the alerts layout (the mock has it already).
fn spec() -> BootstrapSpec {
    BootstrapSpec {
        mode: BootstrapMode::Create,
        kibana_version: "8.15.0".into(),
        mappings: json!({"properties": {}}),
    }
}

/// One rule run against the mock, with the tracing output it logged.
async fn run(mock: &MockCluster) -> (ExecutionRecord, String) {
    let server = start(mock).await;
    let cluster = connect(&server).await.expect("GET / is healthy here");
    let runner = Runner::new(
        ElasticsearchSource::new(cluster.clone()),
        ElasticsearchSink::new(
            cluster.clone(),
            BulkSettings {
                retry: fast_retry(),
                ..BulkSettings::default()
            },
            spec(),
        ),
        ClusterStateStore::new(cluster, &names()),
        RunnerSettings {
            alerts_index: ALERTS.into(),
            ..RunnerSettings::default()
        },
    );
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let record = runner.run(&rule(), now).await;
    (record, log.text())
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// The error text names the request and is short and free of secrets.
fn names_request(text: &str, endpoint: Endpoint, es: bool) -> Result<(), String> {
    let request = format!("{} {}", endpoint.method(), endpoint.path(es));
    if !text.contains(&request) {
        return Err(format!("expected the error to name `{request}`: {text}"));
    }
    if text.contains(PASSWORD) || text.contains("bad-user") {
        return Err(format!("a credential leaked into the error: {text}"));
    }
    if text.len() > 2_000 {
        return Err(format!(
            "expected a short error, found {} bytes",
            text.len()
        ));
    }
    Ok(())
}

/// The requests of a rule run whose garbage must fail the run.
const RUN_CRITICAL: [Endpoint; 10] = [
    ResolveAlerts,
    AliasAlerts,
    Resolve,
    Mapping,
    OpenPit,
    Search,
    Mget,
    Bulk,
    GetCheckpoint,
    PutCheckpoint,
];

/// Every request of a rule run × every garbage answer, against both
/// point-in-time flavours (Elasticsearch, OpenSearch): no panic; the run is
/// `failed` with an error naming the request (no secret, not the whole
/// body); the checkpoint is unchanged (the window will be searched again).
/// The existing-alerts lookup, closing the point in time and storing the
/// execution record are not fatal: the run goes on, writes its alert and
/// commits; a failed lookup is a warning naming the request, a failed
/// record write a logged error naming it.
#[tokio::test]
async fn every_garbage_answer_in_a_run_is_a_clear_error_and_loses_nothing() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for endpoint in [
        ResolveAlerts,
        AliasAlerts,
        Resolve,
        Mapping,
        OpenPit,
        Search,
        ClosePit,
        Mget,
        ExistingIds,
        Bulk,
        GetCheckpoint,
        PutCheckpoint,
        PostExecution,
    ] {
        for (garbage, es) in GARBAGE.into_iter().flat_map(|g| [(g, false), (g, true)]) {
            cases += 1;
            let mock = MockCluster::flavour(es, Some((endpoint, garbage)));
            let (record, log) = run(&mock).await;
            let flavour = if es { "Elasticsearch" } else { "OpenSearch" };
            let label = format!("{flavour}: {endpoint:?} × {garbage:?}");
            let outcome = if RUN_CRITICAL.contains(&endpoint) {
                failed_cleanly(&mock, &record, endpoint)
            } else {
                went_on(&mock, &record, &log, endpoint, garbage)
            };
            if let Err(e) = outcome {
                failures.push(format!("{label}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn failed_cleanly(
    mock: &MockCluster,
    record: &ExecutionRecord,
    endpoint: Endpoint,
) -> Result<(), String> {
    if record.status != RunStatus::Failed {
        return Err(format!("expected a failed run: {record:?}"));
    }
    names_request(record.error.as_deref().unwrap_or(""), endpoint, mock.es)?;
    if mock.checkpoint() != OLD_CHECKPOINT {
        return Err(format!("the checkpoint moved to {}", mock.checkpoint()));
    }
    // the failed run's record is still stored, saying why
    let stored = mock.stored.lock().unwrap();
    if !stored
        .executions
        .iter()
        .any(|e| e["status"] == "failed" && e["error"].as_str() == record.error.as_deref())
    {
        return Err(format!(
            "expected the failed run's record stored: {:?}",
            stored.executions
        ));
    }
    Ok(())
}

fn went_on(
    mock: &MockCluster,
    record: &ExecutionRecord,
    log: &str,
    endpoint: Endpoint,
    garbage: Garbage,
) -> Result<(), String> {
    if record.status == RunStatus::Failed {
        return Err(format!("expected the run to go on: {record:?}"));
    }
    if record.alerts_created != 1 {
        return Err(format!("expected the alert written: {record:?}"));
    }
    if mock.checkpoint() != NEW_CHECKPOINT {
        return Err(format!(
            "expected the checkpoint advanced, found {}",
            mock.checkpoint()
        ));
    }
    match endpoint {
        ExistingIds => {
            let warning = record
                .warnings
                .iter()
                .find(|w| w.starts_with("cannot look up existing alerts"))
                .ok_or_else(|| format!("expected a lookup warning: {record:?}"))?;
            names_request(warning, endpoint, mock.es)?;
        }
        PostExecution => {
            let line = log
                .lines()
                .find(|l| l.contains("cannot store the execution record"))
                .ok_or_else(|| format!("expected a logged error: {log}"))?;
            names_request(line, endpoint, mock.es)?;
        }
        // Closing is best effort (its keep-alive frees the point in time),
        // and nothing of its answer is read but the status.
        ClosePit => {
            let _ = garbage;
        }
        _ => unreachable!("only non-fatal endpoints here"),
    }
    Ok(())
}

/// `GET /` × every garbage answer: connecting fails with an error naming
/// `GET /`, no secret, short.
#[tokio::test]
async fn every_garbage_answer_to_get_root_is_a_clear_connect_error() {
    let mut failures = Vec::new();
    for garbage in GARBAGE {
        let server = start(&MockCluster::new(Some((Root, garbage)))).await;
        match connect(&server).await {
            Ok(_) => failures.push(format!("{garbage:?}: connected")),
            Err(e) => {
                if let Err(why) = names_request(&e.to_string(), Root, false) {
                    failures.push(format!("{garbage:?}: {why}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The template install × every garbage answer (to the first template
/// PUT): an error naming the request, never a template install taken for
/// done.
#[tokio::test]
async fn every_garbage_answer_to_the_template_install_is_a_clear_error() {
    let mut failures = Vec::new();
    let cases = GARBAGE.into_iter().map(|g| (PutTemplate, g));
    for (endpoint, garbage) in cases {
        let server = start(&MockCluster::new(Some((endpoint, garbage)))).await;
        let cluster = connect(&server).await.unwrap();
        match install_templates(&cluster, &names()).await {
            Ok(report) => {
                failures.push(format!("{endpoint:?} × {garbage:?}: installed {report:?}"))
            }
            Err(e) => {
                if let Err(why) = names_request(&e.to_string(), endpoint, false) {
                    failures.push(format!("{endpoint:?} × {garbage:?}: {why}"));
                }
            }
        }
    }
    // and the healthy mock installs all five
    let server = start(&MockCluster::new(None)).await;
    let cluster = connect(&server).await.unwrap();
    let report = install_templates(&cluster, &names()).await.unwrap();
    assert_eq!(report.templates.len(), 5, "{report:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The healthy mock: the run succeeds, writes one alert and commits, so
/// the matrix above fails only because of its garbage.
#[tokio::test]
async fn the_healthy_mock_cluster_gives_a_clean_run() {
    let mock = MockCluster::new(None);
    let (record, _) = run(&mock).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!(record.alerts_created, 1);
    assert_eq!(mock.checkpoint(), NEW_CHECKPOINT);
    assert_eq!(mock.stored.lock().unwrap().executions.len(), 1);
}

/// Search pages whose `_source` serde_json refuses by default but
/// Elasticsearch accepts: nesting deeper than 128 levels and a lone
/// surrogate escape. They are read leniently (U+FFFD for the surrogate),
/// with a warning naming `POST /_search`, and the run goes on: such a
/// document must not block the rules reading it. Nesting beyond 1000
/// levels (more than Elasticsearch's parser takes) still fails the run,
/// naming the request, with the window kept.
#[tokio::test]
async fn sources_elasticsearch_accepts_are_read_leniently_and_beyond_fail_the_run() {
    let deep = |levels: usize| {
        format!(
            r#"{{"@timestamp":"2024-05-01T09:58:00.000Z","process":{{"name":"cmd.exe"}},"x":{}1{}}}"#,
            "{\"a\":".repeat(levels),
            "}".repeat(levels)
        )
    };
    for source in [
        deep(200),
        r#"{"@timestamp":"2024-05-01T09:58:00.000Z","process":{"name":"\ud800"}}"#.to_string(),
    ] {
        let mut mock = MockCluster::new(None);
        mock.search_source = Some(source);
        let (record, log) = run(&mock).await;
        assert_ne!(record.status, RunStatus::Failed, "{record:?}");
        assert_eq!(mock.checkpoint(), NEW_CHECKPOINT);
        assert!(
            log.contains("response read leniently") && log.contains("/_search"),
            "{log}"
        );
    }
    let mut mock = MockCluster::new(None);
    mock.search_source = Some(deep(1200));
    let (record, _) = run(&mock).await;
    assert_eq!(record.status, RunStatus::Failed, "{record:?}");
    names_request(record.error.as_deref().unwrap_or(""), Search, false).unwrap();
    assert_eq!(mock.checkpoint(), OLD_CHECKPOINT);
}

/// One bulk item shape and what it must count as.
struct Item {
    item: Value,
    outcome: &'static str,
}

/// `_bulk` answering `errors: true` (or `false`) with odd items: only a
/// `create` with a 2xx status (a number in the HTTP range) is created, 409
/// a duplicate; anything else a failure naming `POST /_bulk` and showing
/// the item; with any failure the run is `failed` and the checkpoint stays,
/// except a 400 (the document is invalid for the index: retrying cannot
/// help), which is reported as a warning while the window moves on.
#[tokio::test]
async fn bulk_items_of_odd_shapes_are_failures_not_successes() {
    let items = [
        Item {
            item: json!({"create": {"status": 201}}),
            outcome: "created",
        },
        Item {
            item: json!({"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}),
            outcome: "duplicate",
        },
        Item {
            item: json!({"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}}),
            outcome: "rejected: status 400: mapper_parsing_exception: failed to parse",
        },
        Item {
            item: json!({"create": {"status": "201"}}),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!({"create": {"status": 65_737}}),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!({"create": {"status": 201.5}}),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!({"create": {}}),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!({"create": null}),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!({}),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!([]),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!(null),
            outcome: "failed: expected `create` with a `status`",
        },
        Item {
            item: json!("created"),
            outcome: "failed: expected `create` with a `status`",
        },
    ];
    for errors in [true, false] {
        for (i, it) in items.iter().enumerate() {
            let label = format!("errors: {errors}, item {i} {}", it.item);
            let item = it.item.clone();
            let server = MockServer::start().await;
            let mock = MockCluster::new(None);
            Mock::given(wiremock::matchers::method("POST"))
                .and(wiremock::matchers::path("/_bulk"))
                // alert writes only: storing a dead letter gets the healthy answer
                .and(wiremock::matchers::body_string_contains("\"create\""))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"errors": errors, "items": [item]})),
                )
                .with_priority(1)
                .mount(&server)
                .await;
            Mock::given(wiremock::matchers::any())
                .respond_with(mock.clone())
                .with_priority(2)
                .mount(&server)
                .await;
            let cluster = connect(&server).await.unwrap();
            let sink = ElasticsearchSink::new(
                cluster.clone(),
                BulkSettings {
                    retry: fast_retry(),
                    ..BulkSettings::default()
                },
                spec(),
            );
            let alert = detectd::alert::Alert {
                id: "alert-1".into(),
                source: json!({"n": 1}),
            };
            let report = detectd::sink::AlertSink::write(&sink, ALERTS, &[alert])
                .await
                .unwrap();
            let got = if !report.created.is_empty() {
                "created".to_string()
            } else if !report.duplicates.is_empty() {
                "duplicate".to_string()
            } else {
                let f = &report.failed[0];
                assert!(
                    f.reason.starts_with("POST /_bulk") || f.status != 0,
                    "{label}: {f}"
                );
                let kind = if f.is_invalid_document() {
                    "rejected"
                } else {
                    "failed"
                };
                format!("{kind}: {f}")
            };
            let want = it.outcome;
            let want_kind = want.split(": ").next().unwrap_or(want);
            assert!(
                got == want
                    || (want.contains(": ")
                        && got.starts_with(want_kind)
                        && got.contains(&want[want_kind.len() + 2..])),
                "{label}: expected {want}, found {got}"
            );

            // the same answer in a run: a failure fails the run, keeps the window
            let runner = Runner::new(
                ElasticsearchSource::new(cluster.clone()),
                sink,
                ClusterStateStore::new(cluster, &names()),
                RunnerSettings {
                    alerts_index: ALERTS.into(),
                    ..RunnerSettings::default()
                },
            );
            let record = runner
                .run(&rule(), Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap())
                .await;
            if want.starts_with("failed") {
                assert_eq!(record.status, RunStatus::Failed, "{label}: {record:?}");
                assert_eq!(mock.checkpoint(), OLD_CHECKPOINT, "{label}");
                assert!(
                    record
                        .error
                        .as_deref()
                        .is_some_and(|e| e.contains("could not be written")),
                    "{label}: {record:?}"
                );
            } else if want.starts_with("rejected") {
                // refused as invalid: retrying cannot help, so the window
                // moves on and the run says which alert was refused
                assert_eq!(
                    record.status,
                    RunStatus::PartialFailure,
                    "{label}: {record:?}"
                );
                assert_eq!(mock.checkpoint(), NEW_CHECKPOINT, "{label}");
                assert_eq!(record.alerts_failed, 1, "{label}");
                assert_eq!(record.alerts_dead_lettered, 1, "{label}");
                assert!(
                    record
                        .warnings
                        .iter()
                        .any(|w| w.contains("refused by the cluster as invalid")
                            && w.contains("dead letters")
                            && w.contains("mapper_parsing_exception")),
                    "{label}: {record:?}"
                );
                // ... and kept, with the document and why it was refused
                let stored = mock.stored.lock().unwrap();
                let letter = stored.dead_letters.last().expect("a dead letter stored");
                assert_eq!(letter["rule_id"], RULE_ID, "{label}");
                assert_eq!(letter["status"], 400, "{label}");
                assert!(
                    letter["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("mapper_parsing_exception")),
                    "{label}: {letter}"
                );
                assert!(letter["alert"].is_object(), "{label}: {letter}");
            } else {
                assert_eq!(record.status, RunStatus::Succeeded, "{label}: {record:?}");
                assert_eq!(mock.checkpoint(), NEW_CHECKPOINT, "{label}");
            }
        }
    }
}
