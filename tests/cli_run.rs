//! `detectd run` as a black box: configuration errors, and (against the
//! cluster at ELASTICSEARCH_URL, skipped without one outside CI) start-up,
//! /healthz and /metrics over HTTP, SIGHUP reload of a broken rule, SIGTERM
//! giving exit 0.

#[path = "common/process.rs"]
mod process;

use process::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rules_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[test]
fn a_bad_config_is_exit_2_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(&config, "[schedule]\nconcurrency = \"many\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("detectd.toml:2:15: error:"), "{stderr}");
}

#[test]
fn daemon_serves_health_and_metrics_reloads_and_stops_on_sigterm() {
    let Some(url) = cluster_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let seed = rules.join("seed.toml");
    std::fs::copy(
        rules_dir().join("execution_scheduled_task_powershell.toml"),
        &seed,
    )
    .unwrap();
    let port = free_port();
    let tag = format!("{}-{}", std::process::id(), port);
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = \"it-daemon-{tag}\"\n\
             [elasticsearch]\nurls = [{url:?}]\n\
             username = \"it-user\"\npassword = \"it-secret-pw-77\"\n\
             [indices]\nstate = \"it-daemon-state-{tag}\"\n\
             executions = \"it-daemon-exec-{tag}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            rules = rules.display().to_string()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("detectd.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();

    let healthy = until(Duration::from_secs(30), || {
        get(port, "/healthz").filter(|(code, _)| *code == 200)
    });
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let Some((_, body)) = healthy else {
        let _ = child.kill();
        panic!("never healthy; log:\n{}", log());
    };
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["rules_loaded"], 1);
    let (code, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("detectd_rules_loaded 1"), "{metrics}");

    // a broken edit of the rule keeps the previous version running
    std::fs::write(&seed, "[rule]\nrule_id = 5\n").unwrap();
    signal(&child, libc::SIGHUP);
    let reloaded = until(Duration::from_secs(20), || {
        log()
            .lines()
            .filter(|l| l.contains("\"rules loaded\""))
            .nth(1)
            .map(str::to_string)
    });
    let reloaded = reloaded.unwrap_or_else(|| panic!("no reload; log:\n{}", log()));
    assert!(reloaded.contains("\"kept_previous\":1"), "{reloaded}");
    assert!(log().contains("rule file is invalid"), "{}", log());
    assert_eq!(get(port, "/healthz").unwrap().0, 200);

    signal(&child, libc::SIGTERM);
    let status = until(Duration::from_secs(30), || child.try_wait().unwrap());
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not stop on SIGTERM; log:\n{}", log())
    });
    assert_eq!(status.code(), Some(0), "log:\n{}", log());
    assert!(log().contains("\"stopped\""), "{}", log());
    // the settings were logged, the password was not
    assert!(log().contains("it-user"), "{}", log());
    assert!(!log().contains("it-secret-pw-77"), "{}", log());
}

/// A cluster client for loading test data and reading results.
fn cluster(url: &str) -> (tokio::runtime::Runtime, detectd::cluster::Cluster) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = detectd::config::cluster::ClusterSettings {
        urls: Some(vec![url.to_string()]),
        request_timeout_secs: Some(120.0),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let c = rt
        .block_on(detectd::cluster::Cluster::connect(&settings))
        .unwrap();
    (rt, c)
}

fn request(
    rt: &tokio::runtime::Runtime,
    c: &detectd::cluster::Cluster,
    method: elasticsearch::http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> serde_json::Value {
    let raw = rt
        .block_on(c.send_raw(method, path, &[], body, Some("application/x-ndjson")))
        .unwrap();
    serde_json::from_slice(&raw.body).unwrap_or(serde_json::Value::Null)
}

#[test]
fn sigterm_during_a_run_lets_it_finish_and_a_restart_loses_and_duplicates_nothing() {
    use elasticsearch::http::Method;
    let Some(url) = cluster_url() else { return };
    let (rt, c) = cluster(&url);
    let tag = format!("{}-{}", std::process::id(), free_port());
    let events_index = format!("it-sigterm-events-{tag}");
    let rule_id = format!("it-sigterm-{tag}");

    // Generated events from 4 minutes ago (about a minute of them, with
    // founding-rule attacks), enough that a run takes a moment.
    let start_ms = chrono::Utc::now().timestamp_millis() - 4 * 60_000;
    let gen = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["generate", "--count", "60000", "--attacks-per-10k", "10"])
        .args(["--start-ms", &start_ms.to_string()])
        .output()
        .unwrap();
    assert!(gen.status.success());
    let text = String::from_utf8(gen.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for chunk in lines.chunks(10_000) {
        let mut body = String::new();
        for l in chunk {
            body.push_str(&format!(
                "{{\"index\":{{\"_index\":\"{events_index}\"}}}}\n{l}\n"
            ));
        }
        let r = request(&rt, &c, Method::Post, "/_bulk", Some(body.into_bytes()));
        assert_eq!(
            r["errors"],
            false,
            "{}",
            &r.to_string()[..300.min(r.to_string().len())]
        );
    }
    request(
        &rt,
        &c,
        Method::Post,
        &format!("/{events_index}/_refresh"),
        None,
    );

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let seed =
        std::fs::read_to_string(rules_dir().join("execution_scheduled_task_powershell.toml"))
            .unwrap()
            .replace(
                "index = [\"winlogbeat-*\", \"logs-endpoint.events.*\", \"logs-windows.*\"]",
                &format!("index = [\"{events_index}\"]"),
            )
            .replace("5cd55388-a19c-47c7-8ec4-f41656c2fded", &rule_id);
    std::fs::write(rules.join("seed.toml"), seed).unwrap();
    // `detectd hunt` over the same events says how many alerts to expect
    let events_file = dir.path().join("events.ndjson");
    std::fs::write(&events_file, &text).unwrap();
    let hunt = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .arg("hunt")
        .arg("--rules")
        .arg(&rules)
        .arg(&events_file)
        .output()
        .unwrap();
    assert!(
        hunt.status.success(),
        "{}",
        String::from_utf8_lossy(&hunt.stderr)
    );
    let expected = String::from_utf8(hunt.stdout).unwrap().lines().count() as u64;
    assert!(expected > 30, "{expected}");
    let space = AlertsSpace::new(format!("it-sigterm-{tag}"));
    let alerts = space.alias();
    let (state, executions) = (
        format!("it-sigterm-state-{tag}"),
        format!("it-sigterm-exec-{tag}"),
    );
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
             [indices]\nstate = {state:?}\nexecutions = {executions:?}\n\
             [schedule]\nstartup_jitter = false\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nformat = \"json\"\nlevel = \"info,detectd=debug\"\n",
            rules = rules.display().to_string(),
            space = space.id,
            port = free_port(),
        ),
    )
    .unwrap();

    let log_path = dir.path().join("first.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let has = |msg: &str| {
        json_lines(&log_path)
            .iter()
            .position(|l| l["message"] == msg)
    };
    // poll often: the run takes a few hundred milliseconds
    let started = until_every(Duration::from_secs(60), Duration::from_millis(2), || {
        has("rule run started")
    });
    if started.is_none() {
        let _ = child.kill();
        panic!("no run started: {:?}", json_lines(&log_path));
    }
    signal(&child, libc::SIGTERM);
    let status =
        until(Duration::from_secs(120), || child.try_wait().unwrap()).expect("stops after the run");
    assert_eq!(status.code(), Some(0));
    let log = json_lines(&log_path);
    let at = |msg: &str| log.iter().position(|l| l["message"] == msg);
    let (shutdown, finished) = (
        at("shutting down: finishing runs in flight").expect("shutdown logged"),
        at("rule run finished").expect("the run finished"),
    );
    assert!(
        shutdown < finished,
        "SIGTERM came while the run was in flight: {log:?}"
    );
    let run = &log[finished];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["alerts_created"], expected, "{run}");
    assert!(at("stopped").is_some());

    request(
        &rt,
        &c,
        Method::Post,
        &format!("/{alerts},{state}/_refresh"),
        None,
    );
    let checkpoints = request(
        &rt,
        &c,
        Method::Get,
        &format!("/{state}/_search?size=10"),
        None,
    );
    assert!(
        checkpoints.to_string().contains(&rule_id),
        "checkpoint saved: {checkpoints}"
    );

    // restart: the next run sees the same events (9-minute look-back) and
    // writes nothing new
    let log2 = dir.path().join("second.log");
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log2).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", json_lines(&log2));
    let second = json_lines(&log2)
        .into_iter()
        .find(|l| l["message"] == "rule run finished")
        .expect("a run");
    assert_eq!(second["alerts_created"], 0, "{second}");
    request(&rt, &c, Method::Post, &format!("/{alerts}/_refresh"), None);
    let count = request(&rt, &c, Method::Get, &format!("/{alerts}/_count"), None);
    assert_eq!(count["count"], expected, "{count}");

    for index in [&events_index, &state, &executions] {
        request(&rt, &c, Method::Delete, &format!("/{index}*"), None);
    }
    for path in space.cleanup_paths() {
        request(&rt, &c, Method::Delete, &path, None);
    }
}

/// Done-when 7 of the rule-runner issue: `run --once` over every EQL rule
/// of the detection-rules corpus completes without a failed run.
#[test]
fn run_once_over_the_whole_corpus_completes() {
    use elasticsearch::http::Method;
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("shared").join("detection-rules-eql"))
        .unwrap_or_default();
    if !corpus.is_dir() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "detection-rules corpus missing at {}",
            corpus.display()
        );
        eprintln!("skipped: {} not found", corpus.display());
        return;
    }
    let Some(url) = cluster_url() else { return };
    let tag = format!("{}-{}", std::process::id(), free_port());
    let space = AlertsSpace::new(format!("it-corpus-{tag}"));
    let (state, executions) = (
        format!("it-corpus-state-{tag}"),
        format!("it-corpus-exec-{tag}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{corpus:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
             [indices]\nstate = {state:?}\nexecutions = {executions:?}\n\
             [schedule]\nconcurrency = 8\n[log]\nformat = \"json\"\n",
            corpus = corpus.display().to_string(),
            space = space.id,
        ),
    )
    .unwrap();
    let log_path = dir.path().join("corpus.log");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = json_lines(&log_path);
    let failed: Vec<&serde_json::Value> = log
        .iter()
        .filter(|l| l["message"] == "rule run finished" && l["status"] == "failed")
        .take(5)
        .collect();
    assert_eq!(out.status.code(), Some(0), "failed runs: {failed:?}");
    let summary = log
        .iter()
        .find(|l| l["message"] == "every rule ran once")
        .expect("a summary line");
    assert_eq!(summary["runs"], 1081, "{summary}");
    assert_eq!(summary["failed_runs"], 0, "{summary}");
    eprintln!("run --once over the corpus: {took:?}");

    let (rt, c) = cluster(&url);
    for index in [&state, &executions] {
        request(&rt, &c, Method::Delete, &format!("/{index}*"), None);
    }
    for path in space.cleanup_paths() {
        request(&rt, &c, Method::Delete, &path, None);
    }
}

/// On OpenSearch (the test server) ES|QL and ML rules are reported at load
/// with the reason and not scheduled; the other rules run.
#[test]
fn run_once_on_opensearch_reports_esql_and_ml_rules_as_not_runnable() {
    let Some(url) = cluster_url() else { return };
    let tag = format!("{}-{}", std::process::id(), free_port());
    let space = AlertsSpace::new(format!("it-needs-{tag}"));
    let (state, executions) = (
        format!("it-needs-state-{tag}"),
        format!("it-needs-exec-{tag}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster_only");
    for name in ["esql_by_id.toml", "ml.toml"] {
        std::fs::copy(fixtures.join(name), rules.join(name)).unwrap();
    }
    std::fs::copy(
        rules_dir().join("execution_scheduled_task_powershell.toml"),
        rules.join("seed.toml"),
    )
    .unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
             [indices]\nstate = {state:?}\nexecutions = {executions:?}\n[log]\nformat = \"json\"\n",
            rules = rules.display().to_string(),
            space = space.id,
        ),
    )
    .unwrap();
    let log_path = dir.path().join("run.log");
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .output()
        .unwrap();
    let log = json_lines(&log_path);
    assert_eq!(out.status.code(), Some(0), "{log:#?}");
    let refused: Vec<&serde_json::Value> = log
        .iter()
        .filter(|l| l["message"] == "rule not runnable on this cluster: not scheduled")
        .collect();
    assert_eq!(refused.len(), 2, "{log:#?}");
    for line in &refused {
        let reason = line["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("the cluster is OpenSearch"), "{line}");
    }
    let loaded = log
        .iter()
        .find(|l| l["message"] == "rules loaded")
        .expect("a rules loaded line");
    assert_eq!(loaded["not_runnable_here"], 2, "{loaded}");
    let summary = log
        .iter()
        .find(|l| l["message"] == "every rule ran once")
        .expect("a summary line");
    assert_eq!(summary["runs"], 1, "{summary}");

    let (rt, c) = cluster(&url);
    for index in [&state, &executions] {
        request(
            &rt,
            &c,
            elasticsearch::http::Method::Delete,
            &format!("/{index}*"),
            None,
        );
    }
    for path in space.cleanup_paths() {
        request(&rt, &c, elasticsearch::http::Method::Delete, &path, None);
    }
}
