//! The connection to an Elasticsearch or OpenSearch cluster: the HTTP client
//! (the official `elasticsearch` crate as transport), server detection from
//! `GET /`, status checking, retries, and the few APIs that differ between
//! the two distributions (point in time, index resolution).
//!
//! What to search and what to write lives in `source::elasticsearch` and
//! `sink::elasticsearch`; this module only knows how to talk to the cluster.
//! The crate returns `Ok` for every HTTP status, so every call here checks
//! the status itself and turns anything but 2xx into a [`ClusterError`].

mod aliases;
pub mod lenient;
mod resolve;
pub mod retry;
pub mod server;

use std::fmt;

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, TransportBuilder,
};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde_json::Value;

use crate::config::cluster::{Auth, ConnectionSettings};
pub use aliases::{AliasLink, AliasLinks};
pub use resolve::{ConcreteIndex, Resolved};
pub use retry::RetryPolicy;
pub use server::{Distribution, PitApi, ServerInfo, Version};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot build the http client: {0}")]
    Build(String),
    #[error("cannot read the ca certificate {path}: {reason}")]
    CaCert { path: String, reason: String },
    #[error("{method} {path}: {reason}")]
    Transport {
        method: &'static str,
        path: String,
        reason: String,
        timeout: bool,
    },
    #[error("{method} {path}: status {status}: {reason}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        reason: String,
    },
    #[error("{method} {path}: unexpected response: {reason}")]
    BadResponse {
        method: &'static str,
        path: String,
        reason: String,
    },
    #[error("unsupported server: {0}")]
    Unsupported(String),
}

impl ClusterError {
    /// Worth retrying: the server was busy or unreachable, not wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClusterError::Transport { .. } => true,
            ClusterError::Status { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClusterError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// 429 (rejected execution, circuit breaker) and any 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// A response as received, before any status check.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A connected client: the transport plus what the server is.
#[derive(Clone)]
pub struct Cluster {
    es: Elasticsearch,
    info: ServerInfo,
    retry: RetryPolicy,
    /// The client's per-request timeout, named in timeout errors.
    request_timeout: std::time::Duration,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("info", &self.info)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// Percent-encodes what may not appear raw in a path segment; commas and
/// `*` stay as they are since index lists and patterns use them.
pub fn encode_path_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b',' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The error reason of an Elasticsearch error body, or the start of the body.
fn error_reason(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(reason) = v.pointer("/error/reason").and_then(Value::as_str) {
            let kind = v
                .pointer("/error/type")
                .and_then(Value::as_str)
                .unwrap_or("error");
            // "all shards failed" says nothing: the cause is one level down.
            let cause = v
                .pointer("/error/root_cause/0/reason")
                .or_else(|| v.pointer("/error/failed_shards/0/reason/reason"))
                .or_else(|| v.pointer("/error/caused_by/reason"))
                .and_then(Value::as_str)
                .filter(|c| *c != reason);
            return match cause {
                Some(c) => format!("{kind}: {reason}: {c}"),
                None => format!("{kind}: {reason}"),
            };
        }
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return e.to_string();
        }
    }
    snippet(body)
}

/// An error and its causes, `outer: inner: ...`. The HTTP client's own
/// message is only "error sending request for url (...)"; why (a refused
/// connection, an unknown certificate issuer, a name the certificate is not
/// valid for) is in the source chain.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and reqwest repeat the inner message in the outer one at times.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The first 200 characters of a body, for messages about bodies we cannot read.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "empty body".to_string();
    }
    let mut s: String = trimmed.chars().take(200).collect();
    if trimmed.chars().count() > 200 {
        s.push('…');
    }
    format!("`{s}`")
}

impl Cluster {
    /// Builds the client and asks `GET /` what the server is.
    pub async fn connect(settings: &ConnectionSettings) -> Result<Cluster, ClusterError> {
        Self::connect_with(settings, RetryPolicy::default()).await
    }

    pub async fn connect_with(
        settings: &ConnectionSettings,
        retry: RetryPolicy,
    ) -> Result<Cluster, ClusterError> {
        let es = build_client(settings)?;
        let mut cluster = Cluster {
            es,
            // Placeholder until `GET /` answers; never used before that.
            info: ServerInfo {
                distribution: Distribution::Elasticsearch,
                version: Version::new(0, 0),
                cluster_name: String::new(),
            },
            retry,
            request_timeout: settings.request_timeout,
        };
        let root = cluster.request_json(Method::Get, "/", &[], None).await?;
        cluster.info = ServerInfo::from_root(&root).map_err(ClusterError::Unsupported)?;
        Ok(cluster)
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The same connection with another retry policy (the daemon connects
    /// without retries, since it has its own backoff loop, then runs with
    /// the default policy).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Cluster {
        self.retry = retry;
        self
    }

    /// One HTTP request, no status check, no retry. `content_type` defaults
    /// to `application/json`.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        content_type: Option<&'static str>,
    ) -> Result<RawResponse, ClusterError> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        let query = if query.is_empty() { None } else { Some(query) };
        let transport_err = |e: elasticsearch::Error| {
            let timeout = e.is_timeout();
            let mut reason = error_chain(&e);
            if timeout {
                // "operation timed out" alone does not say which limit, nor
                // which setting raises it.
                reason = format!(
                    "no response within the request timeout of {} s (request_timeout_secs): {reason}",
                    self.request_timeout.as_secs_f64()
                );
            }
            ClusterError::Transport {
                method: method_name(method),
                path: path.to_string(),
                timeout,
                reason,
            }
        };
        let response = self
            .es
            .send(method, path, headers, query, body, None)
            .await
            .map_err(transport_err)?;
        let status = response.status_code().as_u16();
        let body = response.bytes().await.map_err(transport_err)?;
        Ok(RawResponse {
            status,
            body: body.to_vec(),
        })
    }

    /// One request with retries of retryable failures; any non-2xx status
    /// becomes an error, the body must be JSON.
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClusterError> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut attempt = 0;
        loop {
            let result = self
                .send_raw(method, path, query, bytes.clone(), None)
                .await
                .and_then(|raw| check_json(method, path, &raw));
            match result {
                Err(e) if e.is_retryable() && attempt < self.retry.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Opens a point in time over `indices` (concrete names or patterns that
    /// match something) and returns its id.
    pub async fn open_pit(
        &self,
        indices: &[String],
        keep_alive: &str,
    ) -> Result<String, ClusterError> {
        let target = encode_path_part(&indices.join(","));
        // OpenSearch's create-PIT API takes no `ignore_unavailable` (and
        // rejects unknown parameters); callers pass resolved names anyway.
        let (path, key, query): (String, &str, &[(&str, &str)]) = match self.info.pit_api() {
            PitApi::Elasticsearch => (
                format!("/{target}/_pit"),
                "id",
                &[
                    ("keep_alive", keep_alive),
                    ("ignore_unavailable", "true"),
                    ("expand_wildcards", "open"),
                ],
            ),
            PitApi::OpenSearch => (
                format!("/{target}/_search/point_in_time"),
                "pit_id",
                &[("keep_alive", keep_alive)],
            ),
        };
        let body = self.request_json(Method::Post, &path, query, None).await?;
        body.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClusterError::BadResponse {
                method: "POST",
                path,
                reason: format!("expected `{key}` in the point-in-time response, found none"),
            })
    }

    /// Closes a point in time. A PIT that is already gone is not an error.
    pub async fn close_pit(&self, id: &str) -> Result<(), ClusterError> {
        let (path, body) = match self.info.pit_api() {
            PitApi::Elasticsearch => ("/_pit", serde_json::json!({ "id": id })),
            PitApi::OpenSearch => (
                "/_search/point_in_time",
                serde_json::json!({ "pit_id": [id] }),
            ),
        };
        match self
            .request_json(Method::Delete, path, &[], Some(&body))
            .await
        {
            Ok(_) | Err(ClusterError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// How many points in time are open on the cluster, where the server
    /// can tell: OpenSearch lists them, Elasticsearch counts open search
    /// contexts in node stats (which includes scrolls). For tests and health.
    pub async fn open_pit_count(&self) -> Result<u64, ClusterError> {
        match self.info.pit_api() {
            PitApi::OpenSearch => {
                let body = self
                    .request_json(Method::Get, "/_search/point_in_time/_all", &[], None)
                    .await?;
                Ok(body
                    .get("pits")
                    .and_then(Value::as_array)
                    .map_or(0, |p| p.len() as u64))
            }
            PitApi::Elasticsearch => {
                let body = self
                    .request_json(
                        Method::Get,
                        "/_nodes/stats/indices/search",
                        &[("filter_path", "nodes.*.indices.search.open_contexts")],
                        None,
                    )
                    .await?;
                let mut total = 0;
                if let Some(nodes) = body.get("nodes").and_then(Value::as_object) {
                    for node in nodes.values() {
                        total += node
                            .pointer("/indices/search/open_contexts")
                            .and_then(Value::as_u64)
                            .unwrap_or(0);
                    }
                }
                Ok(total)
            }
        }
    }
}

/// Status check and JSON decoding of one response.
pub fn check_json(method: Method, path: &str, raw: &RawResponse) -> Result<Value, ClusterError> {
    if !(200..300).contains(&raw.status) {
        return Err(ClusterError::Status {
            method: method_name(method),
            path: path.to_string(),
            status: raw.status,
            reason: error_reason(&raw.body),
        });
    }
    if raw.body.is_empty() {
        return Ok(Value::Null);
    }
    let error = match serde_json::from_slice(&raw.body) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    // A document Elasticsearch accepted (deep nesting, lone surrogates)
    // must not fail every run of the rules reading it.
    if let Some((value, how)) = lenient::parse(&raw.body) {
        tracing::warn!(
            method = method_name(method),
            path,
            surrogates_replaced = how.surrogates_replaced,
            nesting_depth = how.deep,
            "response read leniently: lone surrogate escapes became U+FFFD, deep nesting was allowed"
        );
        return Ok(value);
    }
    Err(ClusterError::BadResponse {
        method: method_name(method),
        path: path.to_string(),
        reason: format!("expected json, found {} ({error})", snippet(&raw.body)),
    })
}

fn build_client(settings: &ConnectionSettings) -> Result<Elasticsearch, ClusterError> {
    let builder = if settings.urls.len() == 1 {
        TransportBuilder::new(SingleNodeConnectionPool::new(settings.urls[0].clone()))
    } else {
        TransportBuilder::new(MultiNodeConnectionPool::round_robin(
            settings.urls.clone(),
            None,
        ))
    };
    let mut builder = builder
        .timeout(settings.request_timeout)
        .request_body_compression(settings.gzip)
        // Proxies from the environment would silently reroute cluster traffic.
        .disable_proxy();
    builder = match &settings.auth {
        Auth::None => builder,
        Auth::ApiKey(key) => builder.auth(Credentials::EncodedApiKey(key.expose().to_string())),
        Auth::Basic { username, password } => builder.auth(Credentials::Basic(
            username.clone(),
            password.expose().to_string(),
        )),
    };
    if !settings.verify_tls {
        // Loud on purpose: with verification off anyone on the path can pose
        // as the cluster and read the credentials detectd sends.
        let urls: Vec<&str> = settings.urls.iter().map(|u| u.as_str()).collect();
        tracing::warn!(
            cluster = ?urls,
            ca_cert_ignored = settings.ca_cert.is_some(),
            "tls certificate verification is off (verify_tls = false): the cluster's identity is not checked; use this only for throw-away test clusters"
        );
        builder = builder.cert_validation(CertificateValidation::None);
    } else if let Some(path) = &settings.ca_cert {
        let pem = std::fs::read(path).map_err(|e| ClusterError::CaCert {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| ClusterError::CaCert {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        builder = builder.cert_validation(CertificateValidation::Full(cert));
    }
    let transport = builder
        .build()
        .map_err(|e| ClusterError::Build(e.to_string()))?;
    Ok(Elasticsearch::new(transport))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons_and_snippets() {
        let r = error_reason(br#"{"error":{"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}"#);
        assert_eq!(r, "index_not_found_exception: no such index [x]");
        let html = error_reason(b"<html><body>502 Bad Gateway</body></html>");
        assert!(html.contains("<html>"), "{html}");
        assert_eq!(error_reason(b""), "empty body");
        let nested = error_reason(br#"{"error":{"type":"search_phase_execution_exception","reason":"all shards failed","root_cause":[{"type":"query_shard_exception","reason":"failed to create query"}]}}"#);
        assert_eq!(
            nested,
            "search_phase_execution_exception: all shards failed: failed to create query"
        );
        let long = "x".repeat(500);
        assert!(snippet(long.as_bytes()).chars().count() < 210);
    }

    #[test]
    fn path_parts_are_encoded_but_patterns_kept() {
        assert_eq!(
            encode_path_part("logs-*,winlogbeat-*"),
            "logs-*,winlogbeat-*"
        );
        assert_eq!(encode_path_part("a b/#"), "a%20b%2F%23");
    }
}
