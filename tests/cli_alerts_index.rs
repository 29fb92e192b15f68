//! The real binary and Kibana's alerts index (against the cluster at
//! ELASTICSEARCH_URL, skipped without one outside CI): a concrete index
//! squatting the alias name stops start-up with the fix, and dead letters
//! are listed and written again from the command line.

#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::Command;

use detectd::cluster::Cluster;
use detectd::config::cluster::ClusterSettings;
use detectd::state::DeadLetter;
use elasticsearch::http::Method;
use process::*;
use serde_json::{json, Value};

fn connect(url: &str) -> (tokio::runtime::Runtime, Cluster) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = ClusterSettings {
        urls: Some(vec![url.to_string()]),
        ..ClusterSettings::default()
    }
    .resolve()
    .unwrap();
    let cluster = rt.block_on(Cluster::connect(&settings)).unwrap();
    (rt, cluster)
}

fn request(
    rt: &tokio::runtime::Runtime,
    c: &Cluster,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let raw = rt
        .block_on(c.send_raw(
            method,
            path,
            &[],
            body.map(|b| serde_json::to_vec(&b).unwrap()),
            None,
        ))
        .unwrap();
    (
        raw.status,
        serde_json::from_slice(&raw.body).unwrap_or(Value::Null),
    )
}

fn config(dir: &Path, url: &str, space: &AlertsSpace, extra: &str) -> std::path::PathBuf {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let path = dir.join("detectd.toml");
    std::fs::write(
        &path,
        format!(
            "rules = [{rules:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
             [state]\nbackend = \"file\"\npath = {state:?}\n{extra}",
            rules = rules.display().to_string(),
            space = space.id,
            state = dir.join("state").display().to_string(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_squatting_index_stops_start_up_with_the_fix() {
    let Some(url) = cluster_url() else { return };
    let (rt, c) = connect(&url);
    let space = AlertsSpace::new(format!(
        "it-cli-squat-{}-{}",
        std::process::id(),
        free_port()
    ));
    // what an older detectd's first write auto-created
    let (status, _) = request(&rt, &c, Method::Put, &format!("/{}", space.alias()), None);
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--once", "--config"])
        .arg(config(dir.path(), &url, &space, ""))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("a concrete index named `{}`", space.alias()))
            && stderr.contains("Fix:"),
        "{stderr}"
    );
    // nothing written into it, and no layout beside it
    let (_, count) = request(
        &rt,
        &c,
        Method::Get,
        &format!("/{}/_count", space.alias()),
        None,
    );
    assert_eq!(count["count"], 0);
    request(
        &rt,
        &c,
        Method::Delete,
        &format!("/{}", space.alias()),
        None,
    );
}

#[test]
fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    let Some(url) = cluster_url() else { return };
    let (rt, c) = connect(&url);
    let space = AlertsSpace::new(format!(
        "it-cli-dead-{}-{}",
        std::process::id(),
        free_port()
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &url, &space, "");
    // a refused alert, as a run keeps it with the file state backend
    let letter = DeadLetter {
        alert_id: "dead-1".into(),
        index: space.alias(),
        rule_id: "r1".into(),
        execution_id: "e1".into(),
        refused_at: chrono::Utc::now(),
        status: 400,
        reason: "mapper_parsing_exception: failed to parse field [custom]".into(),
        attempts: 1,
        alert: json!({"@timestamp": "2024-05-01T10:00:00.000Z", "kibana.alert.uuid": "dead-1"}),
    };
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/dead-letters.json"),
        serde_json::to_vec(&json!({"dead-1": letter})).unwrap(),
    )
    .unwrap();

    let run = |action: &str| {
        Command::new(env!("CARGO_BIN_EXE_detectd"))
            .args(["dead-letters", action, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let list = run("list");
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        list.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let line: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["alert_id"], "dead-1");
    assert_eq!(line["status"], 400);
    assert!(line["reason"]
        .as_str()
        .unwrap()
        .contains("mapper_parsing_exception"));
    assert!(
        line.get("alert").is_none(),
        "the list leaves the document out"
    );
    assert!(String::from_utf8_lossy(&list.stderr).contains("1 dead letters"));

    let replay = run("replay");
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 written, 0 already there"), "{stderr}");
    // written into the alias (created as Kibana's layout), and gone from the store
    request(
        &rt,
        &c,
        Method::Post,
        &format!("/{}/_refresh", space.alias()),
        None,
    );
    let (_, count) = request(
        &rt,
        &c,
        Method::Get,
        &format!("/{}/_count", space.alias()),
        None,
    );
    assert_eq!(count["count"], 1);
    let left: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/dead-letters.json")).unwrap())
            .unwrap();
    assert_eq!(left, json!({}));
    let again = run("list");
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 dead letters"));
    for path in space.cleanup_paths() {
        request(&rt, &c, Method::Delete, &path, None);
    }
}
