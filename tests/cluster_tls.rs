//! HTTPS to the cluster and the secrets detectd holds for it.
//!
//! Each test makes its own CA and server certificates (rcgen) and serves a
//! minimal Elasticsearch `GET /` over TLS on loopback (tokio-rustls), which
//! records the request headers it sees. The tests check that the CA file is
//! trusted and nothing else is (system roots only, a wrong CA, a certificate
//! for another name are all refused), that `verify_tls = false` connects but
//! says so at WARN, that API key and basic auth reach the server, and that
//! the password and the API key appear in no log line, error, record,
//! `/healthz` body or `/metrics` text.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use detectd::cluster::{Cluster, ClusterError, Distribution, RetryPolicy};
use detectd::config::cluster::{ClusterSettings, Secret};
use detectd::config::{LogFormat, Overrides, Settings};
use detectd::daemon::{log, Health, Metrics, Mode};
use detectd::runner::{ExecutionRecord, RunStatus};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

const ES_ROOT: &str = r#"{"name":"node-1","cluster_name":"secure-test","version":{"number":"8.15.0","build_flavor":"default"},"tagline":"You Know, for Search"}"#;
const ES_401: &str = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [detectd-user] for REST request [/]"}],"type":"security_exception","reason":"unable to authenticate user [detectd-user] for REST request [/]"},"status":401}"#;

/// A CA: its certificate (PEM written to a file) and the key to sign with.
struct Ca {
    cert: Certificate,
    key: KeyPair,
    pem_file: tempfile::NamedTempFile,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let mut pem_file = tempfile::NamedTempFile::new().unwrap();
        pem_file.write_all(cert.pem().as_bytes()).unwrap();
        Ca {
            cert,
            key,
            pem_file,
        }
    }

    fn path(&self) -> PathBuf {
        self.pem_file.path().to_path_buf()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "detectd test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key_der)
    }
}

/// The headers of one request, names lower-cased.
type Headers = Vec<(String, String)>;

/// A TLS server on loopback answering every request with one status and body.
struct TlsServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Headers>>>,
}

impl TlsServer {
    async fn start(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        status: u16,
        body: &'static str,
    ) -> TlsServer {
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = seen_by_server.clone();
                tokio::spawn(async move {
                    // A refused handshake is what some tests expect.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    seen.lock().unwrap().push(headers);
                    let reason = if status == 200 { "OK" } else { "Unauthorized" };
                    let response = format!(
                        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-elastic-product: Elasticsearch\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { addr, seen }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn authorization(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|h| {
                h.iter()
                    .find(|(k, _)| k == "authorization")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }
}

/// An Elasticsearch 8 server with a certificate for localhost and 127.0.0.1
/// signed by a fresh CA.
async fn es_server(status: u16, body: &'static str) -> (Ca, TlsServer) {
    let ca = Ca::new("detectd test ca");
    let (chain, key) = ca.issue(&["localhost", "127.0.0.1"]);
    let server = TlsServer::start(chain, key, status, body).await;
    (ca, server)
}

fn no_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    }
}

fn settings(url: String) -> ClusterSettings {
    ClusterSettings {
        urls: Some(vec![url]),
        request_timeout_secs: Some(10.0),
        ..ClusterSettings::default()
    }
}

async fn connect(s: ClusterSettings) -> Result<Cluster, ClusterError> {
    Cluster::connect_with(&s.resolve().unwrap(), no_retry()).await
}

/// Asserts a refused TLS connection: a transport error naming the certificate.
fn assert_refused_for_the_certificate(result: Result<Cluster, ClusterError>, why: &str) {
    let err = result.expect_err(why);
    eprintln!("{why}: {err}");
    assert!(
        matches!(err, ClusterError::Transport { .. }),
        "{why}: {err:?}"
    );
    let text = err.to_string().to_lowercase();
    assert!(text.contains("certificate"), "{why}: {text}");
}

/// A log sink in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Sends this thread's tracing events (every level, every target) here
    /// until the guard drops; `#[tokio::test]` runs on this one thread.
    fn install(&self, format: LogFormat) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(log::subscriber(
            format,
            EnvFilter::new("trace"),
            self.clone(),
            false,
        ))
    }
}

#[tokio::test]
async fn the_configured_ca_is_trusted_and_the_server_detected() {
    let (ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.ca_cert = Some(ca.path());
    let cluster = connect(s).await.expect("connects with the CA file");
    assert_eq!(cluster.info().distribution, Distribution::Elasticsearch);
    assert_eq!(cluster.info().version.major, 8);
    assert_eq!(cluster.info().cluster_name, "secure-test");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    assert!(server.authorization().is_empty(), "no auth configured");
}

#[tokio::test]
async fn localhost_by_name_is_verified_too() {
    let (ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(format!("https://localhost:{}", server.addr.port()));
    s.ca_cert = Some(ca.path());
    let cluster = connect(s).await.expect("the dns name is in the cert");
    assert_eq!(cluster.info().version.major, 8);
}

#[tokio::test]
async fn without_the_ca_the_server_is_refused() {
    let (_ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.password = Some(Secret::new("Pw-NoCa-771"));
    s.username = Some("detectd-user".into());
    let result = connect(s).await;
    let text = format!("{:?} {}", result.as_ref().err(), {
        result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    });
    assert!(!text.contains("Pw-NoCa-771"), "{text}");
    assert_refused_for_the_certificate(result, "the built-in roots do not know the test CA");
    assert!(
        server.seen.lock().unwrap().is_empty(),
        "no request (and no credentials) may be sent over an unverified connection"
    );
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    let (_ca, server) = es_server(200, ES_ROOT).await;
    let other = Ca::new("some other ca");
    let mut s = settings(server.url());
    s.ca_cert = Some(other.path());
    assert_refused_for_the_certificate(connect(s).await, "the server's CA is not the one given");
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let ca = Ca::new("detectd test ca");
    let (chain, key) = ca.issue(&["es.other.example"]);
    let server = TlsServer::start(chain, key, 200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.ca_cert = Some(ca.path());
    assert_refused_for_the_certificate(
        connect(s).await,
        "a certificate for es.other.example does not cover 127.0.0.1",
    );
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_ca_file_is_a_clear_error() {
    let mut s = settings("https://127.0.0.1:9".into());
    s.ca_cert = Some(PathBuf::from("/nonexistent/detectd-ca.pem"));
    let err = connect(s).await.unwrap_err();
    assert!(matches!(err, ClusterError::CaCert { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/detectd-ca.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn verification_off_connects_and_warns() {
    let capture = Capture::default();
    let _guard = capture.install(LogFormat::Json);
    let (_ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.verify_tls = Some(false);
    let cluster = connect(s)
        .await
        .expect("an unknown CA is accepted when asked");
    assert_eq!(cluster.info().version.major, 8);
    let log = capture.text();
    let warn = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["level"] == "WARN"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("verification is off"))
        });
    let warn = warn.unwrap_or_else(|| panic!("expected a WARN about verification, found: {log}"));
    assert!(
        warn["cluster"].as_str().unwrap().contains("127.0.0.1"),
        "{warn}"
    );
}

#[tokio::test]
async fn verification_on_logs_no_such_warning() {
    let capture = Capture::default();
    let _guard = capture.install(LogFormat::Human);
    let (ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.ca_cert = Some(ca.path());
    connect(s).await.unwrap();
    assert!(!capture.text().contains("verification is off"));
}

#[tokio::test]
async fn the_api_key_is_sent_as_an_apikey_header() {
    let (ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.ca_cert = Some(ca.path());
    s.api_key = Some(Secret::new(
        "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
    ));
    connect(s).await.unwrap();
    assert_eq!(
        server.authorization(),
        vec!["ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".to_string()]
    );
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn basic_auth_is_sent_as_a_basic_header() {
    let (ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(server.url());
    s.ca_cert = Some(ca.path());
    s.username = Some("detectd-user".into());
    s.password = Some(Secret::new("Pw-Basic-5519"));
    connect(s).await.unwrap();
    assert_eq!(
        base64(b"detectd-user:Pw-Basic-5519"),
        "ZGV0ZWN0ZC11c2VyOlB3LUJhc2ljLTU1MTk="
    );
    assert_eq!(
        server.authorization(),
        vec![format!("Basic {}", base64(b"detectd-user:Pw-Basic-5519"))]
    );
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_auth() {
    let (ca, server) = es_server(200, ES_ROOT).await;
    let mut s = settings(format!(
        "https://detectd-user:Pw-InUrl-8080@127.0.0.1:{}",
        server.addr.port()
    ));
    s.ca_cert = Some(ca.path());
    let resolved = s.resolve().unwrap();
    assert!(!format!("{resolved:?}").contains("Pw-InUrl-8080"));
    Cluster::connect_with(&resolved, no_retry()).await.unwrap();
    assert_eq!(
        server.authorization(),
        vec![format!("Basic {}", base64(b"detectd-user:Pw-InUrl-8080"))]
    );
}

/// The forms in which a secret could leak: as is, and inside a basic-auth
/// header value.
fn leak_forms(user: &str, password: &str, api_key: &str) -> Vec<String> {
    vec![
        password.to_string(),
        api_key.to_string(),
        base64(format!("{user}:{password}").as_bytes()),
    ]
}

fn assert_no_secret(what: &str, text: &str, forms: &[String]) {
    for form in forms {
        assert!(
            !text.contains(form.as_str()),
            "{what} shows a secret `{form}`:\n{text}"
        );
    }
}

/// One place gathers everything detectd prints or stores while it fails to
/// authenticate: the daemon's log (settings line, connection error), the
/// error's `Display` and `Debug`, the settings' `Debug`, a failed run's
/// execution record (JSON and its log line), `/healthz` and `/metrics`.
#[tokio::test]
async fn secrets_appear_in_no_log_error_record_or_metric() {
    const USER: &str = "detectd-user";
    const PASSWORD: &str = "Pw-Secret-Zq7-3141";
    const API_KEY: &str = "QXBpS2V5LVNlY3JldC1WdjgzOmRpc3RpbmN0";
    let forms = leak_forms(USER, PASSWORD, API_KEY);
    let (ca, server) = es_server(401, ES_401).await;
    let mut outputs: Vec<(String, String)> = Vec::new();

    for format in [LogFormat::Human, LogFormat::Json] {
        // Basic auth through the daemon's own start-up (which logs the
        // settings and the connection failure), the key through a client.
        let capture = Capture::default();
        let guard = capture.install(format);
        let mut basic = settings(server.url());
        basic.ca_cert = Some(ca.path());
        basic.username = Some(USER.into());
        basic.password = Some(Secret::new(PASSWORD));
        let mut with_key = settings(server.url());
        with_key.ca_cert = Some(ca.path());
        with_key.api_key = Some(Secret::new(API_KEY));
        outputs.push(("settings debug".into(), format!("{basic:?} {with_key:?}")));

        let daemon_settings =
            Settings::from_layers(None, basic.clone(), Overrides::default()).unwrap();
        outputs.push((
            "resolved settings debug".into(),
            format!("{daemon_settings:?}"),
        ));
        let start_err = detectd::daemon::start::start(daemon_settings, Mode::Once)
            .await
            .expect_err("a 401 fails a --once start");
        outputs.push(("start error".into(), format!("{start_err} / {start_err:?}")));
        assert!(start_err.to_string().contains("401"), "{start_err}");

        // Credentials written into the URL: a URL is logged and shown in
        // transport errors, so they must leave it.
        let mut in_url = settings(format!(
            "https://{USER}:{PASSWORD}@127.0.0.1:{}",
            server.addr.port()
        ));
        in_url.ca_cert = Some(ca.path());
        let url_settings = Settings::from_layers(None, in_url, Overrides::default()).unwrap();
        outputs.push(("url settings debug".into(), format!("{url_settings:?}")));
        let url_err = detectd::daemon::start::start(url_settings, Mode::Once)
            .await
            .expect_err("a 401 fails a --once start");
        outputs.push(("start error".into(), format!("{url_err} / {url_err:?}")));

        let key_err = connect(with_key).await.expect_err("401 with the api key");
        assert_eq!(key_err.status(), Some(401));
        let basic_err = connect(basic).await.expect_err("401 with basic auth");
        for e in [&key_err, &basic_err] {
            outputs.push(("cluster error".into(), format!("{e} / {e:?}")));
            tracing::error!(error = %e, debug = ?e, "connect failed");
        }

        // A failed run as the runner records it: the error's text.
        let mut record =
            ExecutionRecord::started("rule-1", "Rule one", "exec-1".into(), Utc::now());
        record.status = RunStatus::Failed;
        record.error = Some(basic_err.to_string());
        log::run_finished(&record, log::RunTiming::default());
        outputs.push((
            "execution record".into(),
            serde_json::to_string(&record).unwrap(),
        ));

        let health = Health::default();
        health.set_cluster(Err(key_err.to_string()));
        outputs.push(("/healthz".into(), health.report().1.to_string()));
        let metrics = Metrics::new();
        metrics.observe(&record, Duration::from_millis(5));
        metrics.set_rules_loaded(1);
        outputs.push(("/metrics".into(), metrics.encode()));

        drop(guard);
        let log = capture.text();
        assert!(
            log.contains("unable to authenticate"),
            "the capture works: {log}"
        );
        assert!(log.contains(USER), "the username is not secret: {log}");
        outputs.push((format!("{format:?} log"), log));
    }
    assert!(
        server.authorization().len() >= 8,
        "the credentials did reach the server: {:?}",
        server.authorization()
    );
    for (what, text) in &outputs {
        assert_no_secret(what, text, &forms);
    }
}
