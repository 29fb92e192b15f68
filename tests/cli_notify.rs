//! `detectd notify test`: a sample message through a configured output.

#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[path = "common/process.rs"]
mod process;
#[path = "common/receiver.rs"]
mod receiver;

use std::process::Command;

use receiver::Receiver;

fn detectd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
}

#[tokio::test]
async fn notify_test_sends_a_sample_to_the_output_and_says_so() {
    let r = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "[[outputs]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{}\"\n",
            r.url("/slack")
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        detectd()
            .args(["notify", "test", "--output", "chat", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("sent a sample message to output \"chat\" (slack)"),
        "{stderr}"
    );
    let got = r.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body["blocks"][0]["text"]["text"],
        "detectd sample rule"
    );
    let key = got[0].headers.get("idempotency-key").unwrap();
    assert!(key.starts_with("test/"), "{key}");
}

#[test]
fn notify_test_of_an_unknown_output_or_a_broken_template_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        "[[outputs]]\nname = \"lines\"\nkind = \"file\"\npath = \"x.ndjson\"\n",
    )
    .unwrap();
    let out = detectd()
        .args(["notify", "test", "--output", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no output named \"nope\": expected one of [lines]"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        "[[outputs]]\nname = \"lines\"\nkind = \"file\"\npath = \"x.ndjson\"\ntext = '''\nfine\n{{ alert.host + }}\n'''\n",
    )
    .unwrap();
    let out = detectd()
        .args(["notify", "test", "--output", "lines", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("detectd.toml:7:1: error: template `text`, line 2: syntax error"),
        "{stderr}"
    );
    eprintln!("{stderr}");
}

#[test]
fn notify_test_of_an_unreachable_output_is_exit_1_without_the_url() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        "[[outputs]]\nname = \"hook\"\nkind = \"webhook\"\nurl_env = \"DETECTD_TEST_HOOK_URL\"\n",
    )
    .unwrap();
    let out = detectd()
        .args(["notify", "test", "--output", "hook", "--config"])
        .arg(&config)
        .env(
            "DETECTD_TEST_HOOK_URL",
            format!("http://{addr}/x?token=cli-s3cret"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("output \"hook\" (webhook): POST failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// Events with two founding-rule attacks 3 minutes ago in a fresh index of
/// the cluster, and a rules folder with the founding rule reading it:
/// the temporary folder and the rules folder.
fn seed_cluster(rt: &tokio::runtime::Runtime, url: &str, tag: &str) -> (tempfile::TempDir, String) {
    let events_index = format!("it-notify-events-{tag}");
    let rule_id = format!("it-notify-{tag}");
    let at = chrono::Utc::now() - chrono::Duration::minutes(3);
    let mut bulk = String::new();
    for (i, host) in ["n1", "n2"].iter().enumerate() {
        let t = at + chrono::Duration::seconds(10 * i as i64);
        let iso = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        for doc in [
            detectd::synth::founding_library(&iso(t), host, host, "powershell.exe"),
            detectd::synth::founding_network(
                &iso(t + chrono::Duration::seconds(2)),
                host,
                host,
                "powershell.exe",
                "10.0.0.5",
                135,
            ),
        ] {
            bulk.push_str(&format!(
                "{{\"index\":{{\"_index\":\"{events_index}\"}}}}\n{doc}\n"
            ));
        }
    }
    let loaded = http(rt, url, "POST", "/_bulk?refresh=true", Some(bulk));
    assert_eq!(loaded["errors"], false, "{loaded}");

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let seed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("rules/execution_scheduled_task_powershell.toml"),
    )
    .unwrap()
    .replace(
        "index = [\"winlogbeat-*\", \"logs-endpoint.events.*\", \"logs-windows.*\"]",
        &format!("index = [\"{events_index}\"]"),
    )
    .replace("5cd55388-a19c-47c7-8ec4-f41656c2fded", &rule_id);
    std::fs::write(rules.join("seed.toml"), seed).unwrap();
    let rules = rules.display().to_string();
    (dir, rules)
}

fn http(
    rt: &tokio::runtime::Runtime,
    url: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> serde_json::Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .header("content-type", "application/x-ndjson");
    if let Some(b) = body {
        req = req.body(b);
    }
    rt.block_on(async {
        let bytes = req.send().await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    })
}

/// `run --once` twice against the cluster at `ELASTICSEARCH_URL`, with the
/// state (and so the outbox) in the cluster: each alert group's message is
/// delivered once, the second run finds the same alerts and sends nothing.
#[test]
fn run_once_with_the_cluster_outbox_sends_each_group_once_across_runs() {
    let Some(url) = process::cluster_url() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(Receiver::start());
    let tag = format!("{}-{}", std::process::id(), process::free_port());
    let (dir, rules) = seed_cluster(&rt, &url, &tag);
    let state_index = format!("it-notify-state-{tag}");
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = \"it-notify-{tag}\"\n\
             [elasticsearch]\nurls = [{url:?}]\n\
             [indices]\nstate = \"{state_index}\"\nexecutions = \"it-notify-exec-{tag}\"\n\
             [schedule]\nfirst_run = \"now\"\n\
             [[outputs]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}\"\n\
             [[routes]]\nname = \"all\"\noutputs = [\"hook\"]\n",
            hook = r.url("/hook"),
        ),
    )
    .unwrap();
    for round in 0..2 {
        let out = detectd()
            .args(["run", "--once", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "round {round}: {stderr}");
        let keys: Vec<String> = r
            .delivered()
            .iter()
            .map(|q| q.body["idempotency_key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys.len(), 2, "round {round}: {keys:?}\n{stderr}");
        assert!(keys.iter().all(|k| k.starts_with("all/")), "{keys:?}");
        assert_ne!(keys[0], keys[1]);
    }
    let outbox = http(
        &rt,
        &url,
        "POST",
        &format!("/{state_index}-outbox/_search"),
        Some("{\"query\": {\"term\": {\"status\": \"sent\"}}}".into()),
    );
    assert_eq!(
        outbox["hits"]["hits"].as_array().map(Vec::len),
        Some(2),
        "{outbox}"
    );
}

/// The daemon against the cluster, its output down at first: the worker
/// retries beside the runs, delivers once the receiver is up, and shows it
/// on /healthz and /metrics; SIGTERM stops it.
#[test]
fn the_daemon_delivers_after_its_output_comes_back_and_reports_it() {
    use std::time::Duration;
    let Some(url) = process::cluster_url() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(Receiver::start());
    r.set_down(true);
    let tag = format!("{}-{}", std::process::id(), process::free_port());
    let (dir, rules) = seed_cluster(&rt, &url, &tag);
    let port = process::free_port();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = \"it-notifyd-{tag}\"\n\
             [elasticsearch]\nurls = [{url:?}]\n\
             [indices]\nstate = \"it-notifyd-state-{tag}\"\nexecutions = \"it-notifyd-exec-{tag}\"\n\
             [schedule]\nfirst_run = \"now\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nformat = \"json\"\n\
             [notify]\npoll_interval = \"1s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n\
             [[outputs]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}?token=d-s3cret\"\n\
             [[routes]]\nname = \"all\"\noutputs = [\"hook\"]\n",
            hook = r.url("/hook"),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("detectd.log");
    let mut child = detectd()
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let failing = process::until(Duration::from_secs(30), || {
        let (_, body) = process::get(port, "/healthz")?;
        body.contains("notification outputs failing")
            .then_some(body)
    });
    let Some(failing) = failing else {
        let _ = child.kill();
        panic!("no failing output on /healthz; log:\n{}", log());
    };
    assert!(failing.contains("\"degraded\""), "{failing}");
    assert!(!failing.contains("s3cret"), "{failing}");

    r.set_down(false);
    let sent = process::until(Duration::from_secs(30), || {
        let (_, body) = process::get(port, "/healthz")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["notifications"]["sent"] == 2).then_some(v)
    });
    let Some(health) = sent else {
        let _ = child.kill();
        panic!("not delivered; log:\n{}", log());
    };
    assert_eq!(health["notifications"]["pending"], 0, "{health}");
    let (_, metrics) = process::get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("detectd_notifications_sent_total{output=\"hook\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("detectd_notifications_pending{output=\"hook\"} 0"),
        "{metrics}"
    );
    process::signal(&child, libc::SIGTERM);
    let status = process::until(Duration::from_secs(30), || child.try_wait().unwrap());
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not stop; log:\n{}", log())
    });
    assert_eq!(status.code(), Some(0), "{}", log());
    let keys: std::collections::BTreeSet<String> = r
        .delivered()
        .iter()
        .map(|q| q.body["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!((keys.len(), r.delivered().len()), (2, 2));
    assert!(
        log().contains("notification not delivered, will retry"),
        "{}",
        log()
    );
    assert!(log().contains("\"notification sent\""), "{}", log());
    assert!(!log().contains("s3cret"), "{}", log());
}

/// The daemon's cluster cut off (a proxy that resets every connection) for
/// longer than `notify.cluster_unreachable`: the `kind = "detectd"` route
/// gets one `cluster_unreachable` message while it lasts and one
/// `cluster_reachable` when it ends. State in files, so the outbox stays
/// writable during the outage.
#[test]
fn the_daemon_announces_a_cluster_outage_and_its_end() {
    use std::time::Duration;
    let Some(url) = process::cluster_url() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(fault_proxy::FaultProxy::start(&url)).unwrap();
    let tag = format!("{}-{}", std::process::id(), process::free_port());
    let (dir, rules) = seed_cluster(&rt, &url, &tag);
    let port = process::free_port();
    let ops = dir.path().join("ops.ndjson");
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\nspace_id = \"it-outage-{tag}\"\n\
             [elasticsearch]\nurls = [{proxy:?}]\n\
             [state]\nbackend = \"file\"\npath = {state:?}\n\
             [schedule]\nhealth_check_interval = \"1s\"\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n\
             [notify]\npoll_interval = \"1s\"\ncluster_unreachable = \"2s\"\n\
             [[outputs]]\nname = \"ops\"\nkind = \"file\"\npath = {ops:?}\n\
             [[routes]]\nname = \"ops\"\nkind = \"detectd\"\noutputs = [\"ops\"]\n",
            proxy = proxy.url(),
            state = dir.path().join("state"),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("detectd.log");
    let mut child = detectd()
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        // the proxy, not the cluster the variable names
        .env_remove("ELASTICSEARCH_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let events = || -> Vec<String> {
        std::fs::read_to_string(&ops)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["event"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let up = process::until(Duration::from_secs(30), || {
        let (status, _) = process::get(port, "/healthz")?;
        (status == 200).then_some(())
    });
    if up.is_none() {
        let _ = child.kill();
        panic!("never healthy; log:\n{}", log());
    }
    // new connections and requests on pooled ones alike
    proxy.set_down(true);
    proxy.inject(fault_proxy::FaultRule::new("*", fault_proxy::Fault::Reset).always());
    let announced = process::until(Duration::from_secs(30), || {
        events()
            .iter()
            .any(|e| e == "cluster_unreachable")
            .then_some(())
    });
    if announced.is_none() {
        let _ = child.kill();
        panic!("no cluster_unreachable message; log:\n{}", log());
    }
    // the outage goes on: still one message, not one per check
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(), ["cluster_unreachable"], "{}", log());
    proxy.set_down(false);
    proxy.clear_faults();
    let ended = process::until(Duration::from_secs(30), || {
        (events().len() == 2).then_some(())
    });
    process::signal(&child, libc::SIGTERM);
    let _ = process::until(Duration::from_secs(30), || child.try_wait().unwrap());
    let _ = child.kill();
    assert!(
        ended.is_some(),
        "no cluster_reachable message; log:\n{}",
        log()
    );
    assert_eq!(events(), ["cluster_unreachable", "cluster_reachable"]);
    assert!(
        proxy.refused() + proxy.injected("reset") > 0,
        "the proxy never cut anything off"
    );
}
