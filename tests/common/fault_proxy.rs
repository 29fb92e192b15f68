//! A small fault-injecting HTTP proxy for tests: it listens on loopback,
//! forwards every request to the real cluster (osmem in `scripts/test.sh`)
//! and, when told to, breaks things the way networks and busy clusters do,
//! which a real server will not do on demand:
//!
//! - **down**: every connection is reset as soon as it is accepted;
//! - per request, chosen by method, path pattern, body text and count
//!   ([`FaultRule`]): reset the connection before forwarding; forward, then
//!   reset the connection instead of answering (the server did the work, the
//!   client never hears); delay; answer a status without forwarding; for
//!   `_bulk`, strip some items and answer 429 / 503 at their positions (a
//!   realistic partial failure); for point-in-time searches, close the point
//!   in time on the server first (one that expired mid-fetch).
//!
//! It records every request it saw and every fault it injected, so a test
//! can assert that the fault actually happened. hyper on both sides: one
//! upstream connection per request (no pooling to get wrong), bodies read
//! whole (test bodies are small). Plain `http://` upstreams only.
//!
//! Shared by `tests/faults.rs` and `integration-tests/tests/faults.rs`
//! (`#[path]` module); each uses part of it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What to do to a request a [`FaultRule`] picked.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Reset the client's connection before forwarding: the server never
    /// sees the request.
    Reset,
    /// Forward, then reset the client's connection instead of answering.
    ForwardThenDrop,
    /// Wait, then forward.
    Delay(Duration),
    /// Answer this status and body without forwarding.
    Status { status: u16, body: String },
    /// `_bulk` only: the items at positions 0, `every`, 2 × `every`, … are
    /// not forwarded; the response has an item with `status` and an error
    /// at each of their positions, and the server's items at the others.
    BulkItems { every: usize, status: u16 },
    /// A search with a point in time: close that point in time on the
    /// server, then forward the search.
    ClosePit,
}

impl Fault {
    /// A short name for records and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Reset => "reset",
            Fault::ForwardThenDrop => "forward-then-drop",
            Fault::Delay(_) => "delay",
            Fault::Status { .. } => "status",
            Fault::BulkItems { .. } => "bulk-items",
            Fault::ClosePit => "close-pit",
        }
    }
}

/// Which requests get a fault: method, path pattern (`*` matches any
/// characters; the query string is not part of the path), text the body
/// must contain, how many matching requests to let through first (`skip`)
/// and how many to break after that (`times`). Rules are tried in the
/// order they were armed; a rule that has fired `times` times is done.
#[derive(Clone, Debug)]
pub struct FaultRule {
    method: Option<Method>,
    path: String,
    body_contains: Option<String>,
    skip: usize,
    times: usize,
    fault: Fault,
}

impl FaultRule {
    /// `fault` on the first request whose path matches `path`.
    pub fn new(path: &str, fault: Fault) -> FaultRule {
        FaultRule {
            method: None,
            path: path.to_string(),
            body_contains: None,
            skip: 0,
            times: 1,
            fault,
        }
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    pub fn body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_string());
        self
    }

    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Every matching request (after `skip`).
    pub fn always(self) -> Self {
        self.times(usize::MAX)
    }

    fn matches(&self, method: &Method, path: &str, body: &[u8]) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && glob(&self.path, path)
            && self
                .body_contains
                .as_ref()
                .is_none_or(|t| contains(body, t.as_bytes()))
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The fault injected into it, if any ([`Fault::kind`]).
    pub fault: Option<&'static str>,
}

/// A rule and how often it matched and fired.
struct Armed {
    rule: FaultRule,
    matched: usize,
    fired: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PitApi {
    Elasticsearch,
    OpenSearch,
}

struct State {
    upstream: SocketAddr,
    /// Path prefix of the upstream URL (`""` or `/es`).
    prefix: String,
    host: HeaderValue,
    down: AtomicBool,
    refused: AtomicUsize,
    rules: Mutex<Vec<Armed>>,
    seen: Mutex<Vec<Seen>>,
    pit_api: Mutex<Option<PitApi>>,
}

impl State {
    /// The fault for this request: the first rule with firings left that
    /// matches it counts it, and fires once past its `skip`.
    fn pick(&self, method: &Method, path: &str, body: &[u8]) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let armed = rules
            .iter_mut()
            .find(|a| a.fired < a.rule.times && a.rule.matches(method, path, body))?;
        armed.matched += 1;
        if armed.matched <= armed.rule.skip {
            return None;
        }
        armed.fired += 1;
        Some(armed.rule.fault.clone())
    }
}

/// The running proxy; stops accepting when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port[/prefix]`) on a free
    /// loopback port, passing everything through. An `https://` upstream
    /// is an `InvalidInput` error (the proxy speaks plain HTTP only).
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let invalid = |why: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{upstream}: {why}"),
            )
        };
        let rest = upstream
            .strip_prefix("http://")
            .ok_or_else(|| invalid("expected an http:// url"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        // Credentials in the URL are the client's business (sent as headers).
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let upstream_addr = tokio::net::lookup_host(if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        })
        .await?
        .next()
        .ok_or_else(|| invalid("the host does not resolve"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: upstream_addr,
            prefix: prefix.to_string(),
            host: HeaderValue::from_str(authority).map_err(|_| invalid("bad host"))?,
            down: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            pit_api: Mutex::new(None),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(FaultProxy {
            addr,
            state,
            accept,
        })
    }

    /// The proxy's URL, to give the client instead of the cluster's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Down: every new connection is reset at once. Up: requests pass
    /// (with the armed faults).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Connections reset because the proxy was down.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Arms a rule (after those already armed: the first matching rule of a
    /// request decides).
    pub fn inject(&self, rule: FaultRule) {
        self.state.rules.lock().unwrap().push(Armed {
            rule,
            matched: 0,
            fired: 0,
        });
    }

    /// Disarms every rule (what was seen stays recorded).
    pub fn clear_faults(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Every request seen, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// How many requests got the fault `kind` ([`Fault::kind`]).
    pub fn injected(&self, kind: &str) -> usize {
        self.seen().iter().filter(|s| s.fault == Some(kind)).count()
    }

    /// How many requests matched `method` and the path pattern.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && glob(path, &s.path))
            .count()
    }
}

/// The client side of one connection. When `reset` is set, dropping it
/// resets the connection (SO_LINGER 0 sends a RST instead of a FIN), which
/// is what a client sees when a node dies or a middlebox drops it.
struct ClientConn {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ClientConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if state.down.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        let reset = Arc::new(AtomicBool::new(false));
        let conn = ClientConn {
            stream,
            reset: reset.clone(),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (state, reset) = (state.clone(), reset.clone());
                async move { handle(&state, req, &reset).await }
            });
            // An error here is mostly a fault we injected on purpose.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), service)
                .await;
        });
    }
}

/// Why the proxy answers nothing: the connection is reset instead.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

type Reply = Result<Response<Full<Bytes>>, Dropped>;

async fn handle(state: &State, req: Request<Incoming>, reset: &AtomicBool) -> Reply {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(Dropped);
    };
    let path = parts.uri.path().to_string();
    let fault = state.pick(&parts.method, &path, &body);
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        fault: fault.as_ref().map(Fault::kind),
    });
    let drop_connection = || {
        reset.store(true, Ordering::SeqCst);
        Err(Dropped)
    };
    let forward = |body: Bytes| {
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or(path.clone(), |p| p.to_string());
        send(
            state,
            parts.method.clone(),
            path_and_query,
            &parts.headers,
            body,
        )
    };
    match fault {
        None => reply(forward(body).await),
        Some(Fault::Reset) => drop_connection(),
        Some(Fault::ForwardThenDrop) => {
            let _ = forward(body).await;
            drop_connection()
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            reply(forward(body).await)
        }
        Some(Fault::Status { status, body }) => Ok(json_response(status, Bytes::from(body))),
        Some(Fault::ClosePit) => {
            close_pit(state, &parts.headers, &body).await;
            reply(forward(body).await)
        }
        Some(Fault::BulkItems { every, status }) => {
            let query = parts
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            bulk_items(state, &parts.headers, &path, &query, &body, every, status).await
        }
    }
}

/// An upstream answer: status, headers, body.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// One request to the cluster on a fresh connection. Hop-by-hop and
/// encoding headers are not passed on: bodies are re-framed, and the proxy
/// reads `_bulk` responses, so it asks for them uncompressed.
async fn send(
    state: &State,
    method: Method,
    path_and_query: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Upstream, String> {
    let stream = TcpStream::connect(state.upstream)
        .await
        .map_err(|e| format!("cannot connect to the cluster: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", state.prefix));
    for (name, value) in headers {
        let skip = [
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "accept-encoding",
            "keep-alive",
        ];
        if !skip.contains(&name.as_str()) {
            req = req.header(name, value);
        }
    }
    req = req.header(HOST, state.host.clone());
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Upstream {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn reply(upstream: Result<Upstream, String>) -> Reply {
    match upstream {
        Ok(up) => {
            let mut resp = Response::new(Full::new(up.body));
            *resp.status_mut() = up.status;
            for (name, value) in &up.headers {
                let skip = ["content-length", "transfer-encoding", "connection"];
                if !skip.contains(&name.as_str()) {
                    resp.headers_mut().append(name, value.clone());
                }
            }
            Ok(resp)
        }
        Err(e) => Ok(json_response(
            502,
            Bytes::from(json!({"error": format!("fault proxy: {e}")}).to_string()),
        )),
    }
}

fn json_response(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The client's credentials, for the proxy's own requests.
fn auth_only(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(auth) = headers.get(AUTHORIZATION) {
        out.insert(AUTHORIZATION, auth.clone());
    }
    out.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out
}

/// Closes the point in time a search body names, with the server's own
/// API (asked once from `GET /`).
async fn close_pit(state: &State, headers: &HeaderMap, body: &[u8]) {
    let Some(id) = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/pit/id")
            .and_then(Value::as_str)
            .map(String::from)
    }) else {
        return;
    };
    let known = *state.pit_api.lock().unwrap();
    let api = match known {
        Some(api) => api,
        None => {
            let root = send(
                state,
                Method::GET,
                "/".into(),
                &auth_only(headers),
                Bytes::new(),
            )
            .await;
            let opensearch = root
                .ok()
                .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .is_some_and(|v| v.pointer("/version/distribution") == Some(&json!("opensearch")));
            let api = if opensearch {
                PitApi::OpenSearch
            } else {
                PitApi::Elasticsearch
            };
            *state.pit_api.lock().unwrap() = Some(api);
            api
        }
    };
    let (path, close) = match api {
        PitApi::Elasticsearch => ("/_pit", json!({ "id": id })),
        PitApi::OpenSearch => ("/_search/point_in_time", json!({ "pit_id": [id] })),
    };
    let _ = send(
        state,
        Method::DELETE,
        path.into(),
        &auth_only(headers),
        Bytes::from(close.to_string()),
    )
    .await;
}

/// One `_bulk` operation: its action line, document line (none for
/// `delete`), and the action's name, index and id.
struct BulkOp<'a> {
    lines: Vec<&'a [u8]>,
    op: String,
    index: Value,
    id: Value,
}

fn bulk_ops(body: &[u8]) -> Vec<BulkOp<'_>> {
    let mut lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let mut ops = Vec::new();
    while let Some(action) = lines.next() {
        let parsed: Value = serde_json::from_slice(action).unwrap_or(Value::Null);
        let (op, meta) = parsed
            .as_object()
            .and_then(|m| m.iter().next())
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_else(|| ("index".into(), Value::Null));
        let mut op_lines = vec![action];
        if op != "delete" {
            if let Some(doc) = lines.next() {
                op_lines.push(doc);
            }
        }
        ops.push(BulkOp {
            lines: op_lines,
            op,
            index: meta.get("_index").cloned().unwrap_or(Value::Null),
            id: meta.get("_id").cloned().unwrap_or(Value::Null),
        });
    }
    ops
}

/// Forwards the `_bulk` without the items at positions `0, every, …` and
/// answers them with `status` at their positions, the rest as the server
/// answered.
async fn bulk_items(
    state: &State,
    headers: &HeaderMap,
    path: &str,
    query: &str,
    body: &[u8],
    every: usize,
    status: u16,
) -> Reply {
    let ops = bulk_ops(body);
    let every = every.max(1);
    let failed = |i: usize| i.checked_rem(every) == Some(0);
    let mut kept = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if !failed(i) {
            for line in &op.lines {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            }
        }
    }
    let mut upstream_items: Vec<Value> = Vec::new();
    let mut took = json!(0);
    if !kept.is_empty() {
        let up = send(
            state,
            Method::POST,
            format!("{path}{query}"),
            headers,
            Bytes::from(kept),
        )
        .await;
        let up = match up {
            Ok(up) if up.status.is_success() => up,
            other => return reply(other),
        };
        let parsed: Value = serde_json::from_slice(&up.body).unwrap_or(Value::Null);
        took = parsed.get("took").cloned().unwrap_or(json!(0));
        upstream_items = parsed
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
    }
    let (error_type, reason) = match status {
        429 => (
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation (injected by the fault proxy)",
        ),
        _ => (
            "unavailable_shards_exception",
            "primary shard is not active (injected by the fault proxy)",
        ),
    };
    let mut upstream_items = upstream_items.into_iter();
    let items: Vec<Value> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            if failed(i) {
                json!({ op.op.clone(): {
                    "_index": op.index, "_id": op.id, "status": status,
                    "error": { "type": error_type, "reason": reason }
                } })
            } else {
                upstream_items.next().unwrap_or(Value::Null)
            }
        })
        .collect();
    let response = json!({ "took": took, "errors": true, "items": items });
    Ok(json_response(200, Bytes::from(response.to_string())))
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
