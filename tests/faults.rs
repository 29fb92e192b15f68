//! `detectd run` (the real binary) under faults, through the fault proxy of
//! `tests/common/fault_proxy.rs` in front of the cluster at
//! `ELASTICSEARCH_URL` (skipped without one outside CI): the cluster down at
//! start-up (503 on `/healthz`, backoff, then the missed windows caught up
//! with exactly the alerts `detectd hunt` finds), `--once` and SIGTERM while
//! the cluster is down, and runs longer than their interval. The proxy's own
//! behaviour is checked first, since every other test relies on it.

#[path = "common/process.rs"]
mod process;

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use process::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use elasticsearch::http::Method;
use fault_proxy::{Fault, FaultProxy, FaultRule};
use serde_json::{json, Value};

/// The proxy in front of the cluster, on a runtime of its own (the tests
/// here are synchronous: they drive a child process). `None` (after a
/// notice) when there is no cluster, or it is not plain http.
struct Setup {
    rt: tokio::runtime::Runtime,
    proxy: FaultProxy,
    cluster: detectd::cluster::Cluster,
}

fn setup() -> Option<Setup> {
    let url = cluster_url()?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = match rt.block_on(FaultProxy::start(&url)) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("skipped: the fault proxy cannot front this cluster: {e}");
            return None;
        }
        Err(e) => panic!("cannot start the fault proxy: {e}"),
    };
    let mut settings = detectd::config::cluster::ClusterSettings::from_env();
    settings.request_timeout_secs = Some(120.0);
    let settings = settings.resolve().expect("valid ELASTICSEARCH_* settings");
    let cluster = rt
        .block_on(detectd::cluster::Cluster::connect(&settings))
        .expect("connect to ELASTICSEARCH_URL");
    Some(Setup { rt, proxy, cluster })
}

impl Setup {
    fn request(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let raw = self
            .rt
            .block_on(self.cluster.send_raw(
                method,
                path,
                &[],
                body.map(|b| b.to_string().into_bytes()),
                None,
            ))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_slice(&raw.body).unwrap_or(Value::Null)
    }

    /// Indexes NDJSON lines as documents `1..=n` (the line numbers, as
    /// `detectd hunt` names events) of `index`.
    fn index_lines(&self, index: &str, text: &str) {
        let lines: Vec<&str> = text.lines().collect();
        for (c, chunk) in lines.chunks(5_000).enumerate() {
            let mut body = String::new();
            for (i, l) in chunk.iter().enumerate() {
                let id = c * 5_000 + i + 1;
                body.push_str(&format!(
                    "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{id}\"}}}}\n{l}\n"
                ));
            }
            let raw = self
                .rt
                .block_on(self.cluster.send_raw(
                    Method::Post,
                    "/_bulk",
                    &[],
                    Some(body.into_bytes()),
                    Some("application/x-ndjson"),
                ))
                .unwrap();
            let v: Value = serde_json::from_slice(&raw.body).unwrap();
            assert_eq!(v["errors"], false, "bulk load failed");
        }
        self.request(Method::Post, &format!("/{index}/_refresh"), None);
    }

    /// Every `_id` in `index`, and the index's document count.
    fn ids(&self, index: &str) -> (BTreeSet<String>, u64) {
        self.request(Method::Post, &format!("/{index}/_refresh"), None);
        let found = self.request(
            Method::Post,
            &format!("/{index}/_search"),
            Some(json!({"size": 5000, "_source": false, "query": {"match_all": {}}})),
        );
        let ids = found["hits"]["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .map(|h| h["_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let count = self.request(Method::Get, &format!("/{index}/_count"), None)["count"]
            .as_u64()
            .unwrap_or(0);
        (ids, count)
    }

    fn cleanup(&self, indices: &[&str]) {
        for index in indices {
            self.request(Method::Delete, &format!("/{index}*"), None);
            let template = format!(
                "/_index_template/{}-template",
                index.trim_start_matches('.')
            );
            self.request(Method::Delete, &template, None);
        }
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a date: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// A test's own names and files: events index (also the name of the NDJSON
/// file, so `detectd hunt` gives events the same `_index`), alerts index,
/// rule id, the founding rule pointed at the events, a config.
struct Case {
    dir: tempfile::TempDir,
    events: String,
    /// The Kibana space of the case; `alerts` is its alias.
    space: AlertsSpace,
    alerts: String,
    state_indices: [String; 2],
    rule_id: String,
    port: u16,
}

impl Case {
    fn new(name: &str) -> Case {
        let tag = format!("{}-{}", std::process::id(), free_port());
        Case {
            dir: tempfile::tempdir().unwrap(),
            events: format!("it-faults-{name}-events-{tag}"),
            space: AlertsSpace::new(format!("it-faults-{name}-{tag}")),
            alerts: format!(".alerts-security.alerts-it-faults-{name}-{tag}"),
            state_indices: [
                format!("it-faults-{name}-state-{tag}"),
                format!("it-faults-{name}-exec-{tag}"),
            ],
            rule_id: format!("it-faults-{name}-{tag}"),
            port: free_port(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The founding rule over this case's events, with `interval`.
    fn write_rule(&self, interval: &str) {
        let rules = self.path("rules");
        std::fs::create_dir_all(&rules).unwrap();
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("rules/execution_scheduled_task_powershell.toml"),
        )
        .unwrap()
        .replace(
            "index = [\"winlogbeat-*\", \"logs-endpoint.events.*\", \"logs-windows.*\"]",
            &format!("index = [\"{}\"]", self.events),
        )
        .replace("interval = \"5m\"", &format!("interval = \"{interval}\""))
        .replace("5cd55388-a19c-47c7-8ec4-f41656c2fded", &self.rule_id);
        assert!(text.contains(&self.events) && text.contains(&self.rule_id));
        std::fs::write(rules.join("rule.toml"), text).unwrap();
    }

    /// A config: the cluster through `url`, state in a local directory.
    fn write_config(&self, url: &str) -> PathBuf {
        let config = self.path("detectd.toml");
        std::fs::write(
            &config,
            format!(
                "rules = [{rules:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
                 [indices]\nstate = {state:?}\nexecutions = {exec:?}\n\
                 [schedule]\nstartup_jitter = false\n\
                 [state]\nbackend = \"file\"\npath = {state_dir:?}\n\
                 [server]\nlisten = \"127.0.0.1:{port}\"\n\
                 [log]\nformat = \"json\"\nlevel = \"info,detectd=debug\"\n",
                rules = self.path("rules").display().to_string(),
                space = self.space.id,
                state = self.state_indices[0],
                exec = self.state_indices[1],
                state_dir = self.path("state").display().to_string(),
                port = self.port,
            ),
        )
        .unwrap();
        config
    }

    /// Generated events (with founding-rule attacks) in batches starting
    /// at `starts`, as one NDJSON file named like the events index.
    fn write_events(&self, starts: &[DateTime<Utc>]) -> (PathBuf, String) {
        let mut text = String::new();
        for (i, start) in starts.iter().enumerate() {
            let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
                .args(["generate", "--count", "3000", "--attacks-per-10k", "30"])
                .args(["--seed", &(100 + i).to_string()])
                .args(["--start-ms", &start.timestamp_millis().to_string()])
                .output()
                .unwrap();
            assert!(out.status.success());
            text.push_str(&String::from_utf8(out.stdout).unwrap());
        }
        let file = self.path(&self.events);
        std::fs::write(&file, &text).unwrap();
        (file, text)
    }

    /// The alert ids `detectd hunt` computes over the events file.
    fn hunt(&self, events_file: &Path) -> BTreeSet<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
            .arg("hunt")
            .arg("--rules")
            .arg(self.path("rules"))
            .arg(events_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let ids: BTreeSet<String> = stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["_id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), stdout.lines().count(), "hunt ids are unique");
        ids
    }

    /// `detectd run [--once] --config <config>` talking to `url` (the
    /// environment wins over the file, so ELASTICSEARCH_URL is set to it).
    fn command(&self, config: &Path, url: &str, once: bool) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
        cmd.arg("run");
        if once {
            cmd.arg("--once");
        }
        cmd.arg("--config")
            .arg(config)
            .env("ELASTICSEARCH_URL", url)
            .env_remove("RUST_LOG");
        cmd
    }

    fn spawn(&self, config: &Path, url: &str, log: &str) -> Child {
        self.command(config, url, false)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path(log)).unwrap())
            .spawn()
            .unwrap()
    }

    fn log(&self, name: &str) -> Vec<Value> {
        json_lines(&self.path(name))
    }

    /// Execution records of the file state backend, oldest first.
    fn executions(&self) -> Vec<Value> {
        json_lines(&self.path("state").join("executions.ndjson"))
    }
}

/// Stops the child (SIGTERM) and expects exit 0.
fn stop(child: &mut Child, log: impl Fn() -> Vec<Value>) {
    signal(child, libc::SIGTERM);
    let status = until(Duration::from_secs(60), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("did not stop on SIGTERM; log: {:#?}", log());
    };
    assert_eq!(status.code(), Some(0), "log: {:#?}", log());
}

/// Kills the child if a test fails while it runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Property: the proxy passes requests through unchanged, and each fault
/// does what it says (a reset is a transport error; a status is answered
/// without the server; `_bulk` items fail at exactly their positions and
/// only the others are written; a point in time closed under a search
/// makes the search fail), and it records what it injected.
#[test]
fn the_fault_proxy_injects_what_it_is_told() {
    let Some(s) = setup() else { return };
    let index = format!("it-faults-proxy-{}-{}", std::process::id(), free_port());
    let mut settings = detectd::config::cluster::ClusterSettings::from_env();
    settings.urls = Some(vec![s.proxy.url()]);
    let client =
        s.rt.block_on(detectd::cluster::Cluster::connect_with(
            &settings.resolve().unwrap(),
            detectd::cluster::RetryPolicy::none(),
        ))
        .expect("connect through the proxy");
    let send = |method, path: &str, body: Option<String>| {
        s.rt.block_on(client.send_raw(
            method,
            path,
            &[],
            body.map(String::into_bytes),
            Some("application/x-ndjson"),
        ))
    };

    // pass-through
    let root = send(Method::Get, "/", None).unwrap();
    assert_eq!(root.status, 200);
    let root: Value = serde_json::from_slice(&root.body).unwrap();
    assert_eq!(
        root["cluster_name"],
        s.request(Method::Get, "/", None)["cluster_name"]
    );

    // reset before forwarding: a transport error; the server never saw it
    s.proxy
        .inject(FaultRule::new("/*/_doc/*", Fault::Reset).method(hyper::Method::PUT));
    let reset = send(Method::Put, &format!("/{index}/_doc/r1"), Some("{}".into()));
    assert!(
        matches!(reset, Err(detectd::cluster::ClusterError::Transport { .. })),
        "{reset:?}"
    );
    assert_eq!(s.proxy.injected("reset"), 1);

    // a status without the server
    s.proxy.inject(FaultRule::new(
        "/",
        Fault::Status {
            status: 503,
            body: "{\"error\":\"injected\"}".into(),
        },
    ));
    assert_eq!(send(Method::Get, "/", None).unwrap().status, 503);
    assert_eq!(
        send(Method::Get, "/", None).unwrap().status,
        200,
        "once only"
    );

    // forwarded, then dropped: the client hears nothing, the server wrote it
    s.proxy
        .inject(FaultRule::new("/*/_doc/*", Fault::ForwardThenDrop));
    let dropped = send(
        Method::Put,
        &format!("/{index}/_doc/d1?refresh=true"),
        Some("{}".into()),
    );
    assert!(dropped.is_err(), "{dropped:?}");
    let doc = s.request(Method::Get, &format!("/{index}/_doc/d1"), None);
    assert_eq!(doc["found"], true, "{doc}");
    let doc = s.request(Method::Get, &format!("/{index}/_doc/r1"), None);
    assert_ne!(
        doc["found"], true,
        "the reset request was never forwarded: {doc}"
    );

    // bulk items 0, 2, 4 refused with 429 at their positions
    s.proxy.inject(FaultRule::new(
        "/_bulk",
        Fault::BulkItems {
            every: 2,
            status: 429,
        },
    ));
    let mut body = String::new();
    for i in 0..5 {
        body.push_str(&format!(
            "{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"b{i}\"}}}}\n{{\"n\":{i}}}\n"
        ));
    }
    let bulk = send(Method::Post, "/_bulk?refresh=true", Some(body)).unwrap();
    let bulk: Value = serde_json::from_slice(&bulk.body).unwrap();
    let statuses: Vec<(u64, String)> = bulk["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["create"]["status"].as_u64().unwrap(),
                i["create"]["_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (429, "b0"),
            (201, "b1"),
            (429, "b2"),
            (201, "b3"),
            (429, "b4")
        ]
        .map(|(s, i)| (s, i.to_string()))
        .to_vec(),
        "{bulk}"
    );
    assert_eq!(bulk["errors"], true);
    let (ids, _) = s.ids(&index);
    assert_eq!(
        ids,
        ["b1", "b3", "d1"].map(String::from).into_iter().collect(),
        "only the items not refused were written"
    );

    // a point in time closed under the search
    let pit =
        s.rt.block_on(s.cluster.open_pit(std::slice::from_ref(&index), "1m"))
            .unwrap();
    s.proxy
        .inject(FaultRule::new("/_search", Fault::ClosePit).body_contains("\"pit\""));
    let search = send(
        Method::Post,
        "/_search",
        Some(json!({"size": 1, "pit": {"id": pit, "keep_alive": "1m"}}).to_string()),
    )
    .unwrap();
    assert_eq!(
        search.status,
        404,
        "{}",
        String::from_utf8_lossy(&search.body)
    );
    assert_eq!(s.proxy.injected("close-pit"), 1);
    assert!(s.proxy.requests("POST", "/_bulk") >= 1);
    s.cleanup(&[&index]);
}

/// Property (issue 6, cluster down at start-up): while the cluster is
/// unreachable `detectd run` serves `/healthz` with 503 naming the cluster
/// error, retries with growing delays (visible in the log), and once the
/// cluster is back turns healthy and runs every window missed since the
/// rule's checkpoint, oldest first and without a gap, writing exactly the
/// alerts `detectd hunt` finds in the same events: none lost, none twice.
#[test]
fn cluster_down_at_start_up_is_waited_for_then_the_missed_windows_run_exactly() {
    let Some(s) = setup() else { return };
    let case = Case::new("down");
    case.write_rule("5m");
    // the checkpoint 22 minutes ago: catch-up spans five 5-minute windows,
    // with events (and attacks) in each of them
    // whole milliseconds, as the checkpoint file stores them
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let checkpoint = now - chrono::Duration::minutes(22);
    let starts: Vec<DateTime<Utc>> = [1, 6, 11, 16, 21]
        .iter()
        .map(|m| checkpoint + chrono::Duration::minutes(*m))
        .collect();
    let (events_file, text) = case.write_events(&starts);
    s.index_lines(&case.events, &text);
    let expected = case.hunt(&events_file);
    assert!(expected.len() >= 30, "{} alerts", expected.len());
    std::fs::create_dir_all(case.path("state")).unwrap();
    std::fs::write(
        case.path("state").join("checkpoints.json"),
        json!({ case.rule_id.clone(): {
            "rule_id": case.rule_id, "checkpoint": iso(checkpoint), "updated_at": iso(checkpoint)
        } })
        .to_string(),
    )
    .unwrap();
    let config = case.write_config(&s.proxy.url());
    // Credentials in the URL (used as basic auth, which the test cluster
    // ignores) must show neither on /healthz nor in the log; only where the
    // environment brings no credentials of its own, which would clash.
    let secret = "it-faults-secret-pw-31";
    let url = if std::env::var("ELASTICSEARCH_API_KEY").is_ok()
        || std::env::var("ELASTICSEARCH_USERNAME").is_ok()
    {
        s.proxy.url()
    } else {
        format!("http://it-user:{secret}@127.0.0.1:{}", s.proxy.port())
    };

    s.proxy.set_down(true);
    let mut child = KillOnDrop(case.spawn(&config, &url, "daemon.log"));
    let log = || case.log("daemon.log");

    // /healthz answers before the cluster does: 503 and why
    let (code, body) = until(Duration::from_secs(30), || get(case.port, "/healthz"))
        .unwrap_or_else(|| panic!("/healthz never answered; log: {:#?}", log()));
    assert_eq!(code, 503, "{body}");
    let waits: Vec<Value> = until(Duration::from_secs(30), || {
        let waits: Vec<Value> = log()
            .into_iter()
            .filter(|l| l["message"] == "cluster not reachable yet")
            .collect();
        (waits.len() >= 3).then_some(waits)
    })
    .unwrap_or_else(|| panic!("fewer than 3 attempts logged: {:#?}", log()));
    let (code, body) = get(case.port, "/healthz").expect("/healthz answers");
    assert_eq!(code, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["cluster"], "unreachable", "{health}");
    assert!(
        health["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("cannot connect to the cluster")),
        "{health}"
    );
    assert!(!body.contains(secret), "{body}");
    let delays: Vec<u64> = waits[..3]
        .iter()
        .map(|w| w["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert!(
        delays[0] < delays[1] && delays[1] < delays[2],
        "the waits grow: {delays:?}"
    );
    assert_eq!(waits[0]["attempt"], 1);
    assert!(s.proxy.refused() >= 3, "the proxy refused the attempts");
    assert_eq!(s.proxy.seen().len(), 0, "no request got through");

    // the cluster comes back
    s.proxy.set_down(false);
    let healthy = until(Duration::from_secs(60), || {
        get(case.port, "/healthz").filter(|(code, _)| *code == 200)
    });
    assert!(healthy.is_some(), "never healthy; log: {:#?}", log());
    let run = until(Duration::from_secs(60), || {
        log()
            .into_iter()
            .find(|l| l["message"] == "rule run finished")
    })
    .unwrap_or_else(|| panic!("no run; log: {:#?}", log()));
    stop(&mut child.0, log);
    let text = std::fs::read_to_string(case.path("daemon.log")).unwrap();
    assert!(!text.contains(secret), "the password reached the log");

    assert_eq!(run["status"], "succeeded", "{run}");
    let records = case.executions();
    let record = &records[0];
    let windows = record["windows"].as_array().unwrap();
    let run_now = date(&windows.last().unwrap()["end"]);
    let interval = chrono::Duration::minutes(5);
    let expected_windows =
        ((run_now - checkpoint).num_milliseconds() as u64).div_ceil(300_000) as i64;
    assert_eq!(windows.len() as i64, expected_windows, "{record}");
    assert!(windows.len() >= 5, "{record}");
    let mut covered = checkpoint;
    for w in windows {
        let (start, end) = (date(&w["start"]), date(&w["end"]));
        assert!(start <= covered, "no hole before {w}");
        assert_eq!(
            end,
            (covered + interval).min(run_now),
            "oldest first, one interval each"
        );
        covered = end;
    }
    assert!(record["gap"].is_null(), "{record}");
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(case.path("state").join("checkpoints.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(date(&saved[&case.rule_id]["checkpoint"]), run_now);

    let (ids, count) = s.ids(&case.alerts);
    assert_eq!(ids, expected, "the alerts written are the ones hunt finds");
    assert_eq!(count as usize, expected.len(), "no alert twice");
    // (overlapping catch-up windows find some sequences twice: those are
    // counted as duplicates, never written twice)
    assert_eq!(
        run["alerts_created"],
        expected.len(),
        "each alert created once: {run}"
    );
    s.cleanup(&[&case.events, &case.state_indices[0], &case.state_indices[1]]);
    for path in case.space.cleanup_paths() {
        s.request(Method::Delete, &path, None);
    }
}

/// Property: `run --once` does not wait for an unreachable cluster: it
/// exits 2 (a start-up error, as documented) with the reason on stderr.
#[test]
fn run_once_with_the_cluster_down_fails_at_once_with_exit_2() {
    let Some(s) = setup() else { return };
    let case = Case::new("once");
    case.write_rule("5m");
    let config = case.write_config(&s.proxy.url());
    s.proxy.set_down(true);
    let out = case
        .command(&config, &s.proxy.url(), true)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot connect to the cluster"), "{stderr}");
    assert!(s.proxy.refused() >= 1, "the attempt reached the proxy");
    assert!(
        !stderr.contains("cluster not reachable yet"),
        "no waiting: {stderr}"
    );
}

/// Property: SIGTERM while detectd waits for an unreachable cluster ends it
/// cleanly: exit 0, and no run was started.
#[test]
fn sigterm_while_waiting_for_the_cluster_exits_cleanly() {
    let Some(s) = setup() else { return };
    let case = Case::new("sigterm");
    case.write_rule("5m");
    let config = case.write_config(&s.proxy.url());
    s.proxy.set_down(true);
    let mut child = KillOnDrop(case.spawn(&config, &s.proxy.url(), "daemon.log"));
    let log = || case.log("daemon.log");
    until(Duration::from_secs(30), || {
        log()
            .into_iter()
            .find(|l| l["message"] == "cluster not reachable yet")
    })
    .unwrap_or_else(|| panic!("no attempt logged: {:#?}", log()));
    stop(&mut child.0, log);
    let lines = log();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "stopped before the cluster was reachable"),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l["message"] == "rule run started"));
}

/// Property (issue 6, slow cluster): when searches are slow enough that a
/// run takes longer than the rule's interval, runs of the rule never
/// overlap (single flight, from the run log), the run after an overrun
/// starts right away rather than at a later tick, the windows of
/// consecutive runs cover time without a hole, and the alerts are exactly
/// those `detectd hunt` finds, each written once.
#[test]
fn runs_longer_than_the_interval_never_overlap_and_the_next_catches_up() {
    let Some(s) = setup() else { return };
    let case = Case::new("slow");
    let interval = chrono::Duration::seconds(2);
    case.write_rule("2s");
    let (events_file, text) = case.write_events(&[Utc::now() - chrono::Duration::minutes(3)]);
    s.index_lines(&case.events, &text);
    let expected = case.hunt(&events_file);
    assert!(expected.len() >= 6, "{} alerts", expected.len());
    let config = case.write_config(&s.proxy.url());
    // the first two window searches take 3 s, longer than the 2 s interval
    s.proxy.inject(
        FaultRule::new("/_search", Fault::Delay(Duration::from_secs(3)))
            .method(hyper::Method::POST)
            .body_contains("\"pit\"")
            .times(2),
    );
    let mut child = KillOnDrop(case.spawn(&config, &s.proxy.url(), "daemon.log"));
    let log = || case.log("daemon.log");
    let finished = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| l["message"] == "rule run finished")
            .count()
    };
    until(Duration::from_secs(90), || {
        (finished(&log()) >= 5).then_some(())
    })
    .unwrap_or_else(|| panic!("fewer than 5 runs; log: {:#?}", log()));
    stop(&mut child.0, log);
    assert_eq!(s.proxy.injected("delay"), 2, "two searches were slowed");

    // single flight: started / finished alternate in the log
    let events: Vec<&'static str> = case
        .log("daemon.log")
        .iter()
        .filter_map(|l| match l["message"].as_str() {
            Some("rule run started") => Some("started"),
            Some("rule run finished") => Some("finished"),
            _ => None,
        })
        .collect();
    for (i, e) in events.iter().enumerate() {
        let want = if i % 2 == 0 { "started" } else { "finished" };
        assert_eq!(*e, want, "runs overlapped: {events:?}");
    }

    let records = case.executions();
    assert!(records.len() >= 5, "{records:#?}");
    let duration = |r: &Value| date(&r["finished_at"]) - date(&r["started_at"]);
    assert!(
        duration(&records[0]) > interval,
        "the first run overran its interval: {:#?}",
        records[0]
    );
    let mut covered: Option<DateTime<Utc>> = None;
    for (k, r) in records.iter().enumerate() {
        assert_eq!(r["status"], "succeeded", "{r}");
        assert!(r["gap"].is_null(), "{r}");
        if k > 0 {
            let prev = &records[k - 1];
            let (prev_end, next_start) = (date(&prev["finished_at"]), date(&r["started_at"]));
            assert!(next_start >= prev_end, "run {k} overlapped run {}", k - 1);
            if duration(prev) > interval {
                // an overrun is followed at once, not at the next tick
                assert!(
                    next_start - prev_end < interval,
                    "run {k} started {:?} after run {} overran",
                    next_start - prev_end,
                    k - 1
                );
            }
        }
        for w in r["windows"].as_array().unwrap() {
            let (start, end) = (date(&w["start"]), date(&w["end"]));
            if let Some(c) = covered {
                assert!(start <= c, "a hole before window {w} of run {k}");
                assert!(end >= c && end - c <= interval, "window {w} of run {k}");
            }
            covered = Some(end);
        }
    }
    assert!(
        records[1]["windows"].as_array().unwrap().len() >= 2,
        "the run after the overrun caught up window by window: {:#?}",
        records[1]
    );

    let (ids, count) = s.ids(&case.alerts);
    assert_eq!(ids, expected);
    assert_eq!(count as usize, expected.len());
    let created: u64 = records
        .iter()
        .map(|r| r["alerts"]["created"].as_u64().unwrap())
        .sum();
    assert_eq!(created as usize, expected.len(), "each alert created once");
    s.cleanup(&[&case.events, &case.state_indices[0], &case.state_indices[1]]);
    for path in case.space.cleanup_paths() {
        s.request(Method::Delete, &path, None);
    }
}
