//! The operations endpoint: `GET /healthz`, `GET /metrics` and `GET
//! /rules` over plain HTTP/1.1, nothing else. hyper directly, since three
//! fixed routes need no router. Stops accepting when the daemon shuts down; requests in progress
//! are short and simply finish or drop.
//!
//! [`Server`] is started before detectd connects to the cluster, so an
//! orchestrator sees `503` (and why) while the cluster is unreachable rather
//! than a closed port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::metrics::Metrics;
use super::rule_table::RuleTable;

/// What the endpoints read.
#[derive(Clone, Default)]
pub struct Endpoints {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// The scheduled rules with their next and last runs.
    pub rules: Arc<RuleTable>,
}

/// The endpoints served on their own task until [`Server::stop`].
pub struct Server {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` and starts serving.
    pub async fn start(addr: SocketAddr, endpoints: Endpoints) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr().unwrap_or(addr);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, Arc::new(endpoints), cancel.clone()));
        Ok(Server { addr, cancel, task })
    }

    /// The address actually bound (port 0 picks one).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Serves until `cancel` fires. Accept errors (a full file table, a reset
/// connection) are logged and serving goes on.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection on the metrics endpoint");
                continue;
            }
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(route(&endpoints, &req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics endpoint connection ended with an error");
            }
        });
    }
}

fn route(endpoints: &Endpoints, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "expected GET\n".into(),
        );
    }
    match req.uri().path() {
        "/healthz" => {
            let (code, body) = endpoints.health.report();
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            reply(status, "application/json", format!("{body}\n"))
        }
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            endpoints.metrics.encode(),
        ),
        "/rules" => reply(
            StatusCode::OK,
            "application/json",
            format!("{:#}\n", endpoints.rules.report()),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: expected /healthz, /metrics or /rules\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RunStatus;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A raw HTTP/1.1 GET over loopback: the status code and the body.
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_string(), body.to_string())
    }

    async fn server() -> (std::net::SocketAddr, Arc<Endpoints>, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoints = Arc::new(Endpoints::default());
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, endpoints.clone(), cancel.clone()));
        (addr, endpoints, cancel)
    }

    #[tokio::test]
    async fn healthz_over_http_follows_cluster_and_rules() {
        let (addr, endpoints, cancel) = server().await;
        let (code, head, body) = get(addr, "/healthz").await;
        assert_eq!(code, 503);
        assert!(head
            .to_lowercase()
            .contains("content-type: application/json"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "unavailable");
        assert!(json["reasons"].as_array().unwrap().len() == 2, "{json}");

        endpoints.health.set_cluster(Ok(()));
        endpoints.health.set_rules_loaded(1);
        let (code, _, body) = get(addr, "/healthz").await;
        assert_eq!(code, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["cluster"], "reachable");

        endpoints
            .health
            .set_cluster(Err("GET /: connection refused".into()));
        let (code, _, body) = get(addr, "/healthz").await;
        assert_eq!(code, 503);
        assert!(body.contains("connection refused"), "{body}");

        assert_eq!(get(addr, "/nope").await.0, 404);
        cancel.cancel();
    }

    #[tokio::test]
    async fn rules_over_http_list_next_and_last_runs() {
        let (addr, endpoints, cancel) = server().await;
        let (code, _, body) = get(addr, "/rules").await;
        assert_eq!(code, 200);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json, serde_json::json!({"count": 0, "rules": []}));

        let crate::rule::LoadOutcome::Loaded { rule, .. } = crate::rule::load_str(
            "[rule]\nrule_id = \"r1\"\nname = \"One\"\ndescription = \"d\"\ntype = \"eql\"\n\
             language = \"eql\"\nindex = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\n\
             interval = \"90s\"\nquery = 'process where true'\n",
        ) else {
            panic!("the test rule loads")
        };
        let next = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:02:13Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        endpoints.rules.schedule(&rule, next);
        let (code, head, body) = get(addr, "/rules").await;
        assert_eq!(code, 200);
        assert!(head.to_lowercase().contains("application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["count"], 1);
        let row = &json["rules"][0];
        assert_eq!(row["rule_id"], "r1");
        assert_eq!(row["name"], "One");
        assert_eq!(row["interval"], "90s");
        assert_eq!(row["status"], "scheduled");
        assert_eq!(row["next_run"], "2024-05-01T10:02:13.000Z");
        assert_eq!(row["last_run"], serde_json::Value::Null);
        assert_eq!(row["last_error"], serde_json::Value::Null);
        cancel.cancel();
    }

    #[tokio::test]
    async fn metrics_over_http_are_prometheus_text() {
        let (addr, endpoints, cancel) = server().await;
        endpoints.metrics.observe(
            &crate::daemon::metrics::tests::record("rule-9", RunStatus::Succeeded),
            std::time::Duration::from_millis(300),
        );
        endpoints.metrics.set_rules_loaded(1);
        let (code, head, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(head.contains("openmetrics-text"), "{head}");
        assert!(body.contains("# TYPE detectd_rule_runs counter"), "{body}");
        assert!(
            body.contains("detectd_rule_runs_total{rule_id=\"rule-9\",status=\"succeeded\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("detectd_rule_run_duration_seconds_bucket"),
            "{body}"
        );
        assert!(body.contains("detectd_rules_loaded 1"), "{body}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");
        cancel.cancel();
    }
}
