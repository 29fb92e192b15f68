//! Filters and exception lists end to end against a live cluster
//! (`ELASTICSEARCH_URL`): rules and lists loaded from files as `detectd run`
//! loads them (`rule::load_with_lists`: a rules folder, an exceptions
//! folder with a Kibana exception-list export and a detection-rules
//! exceptions TOML), the filters and the exception filter sent as query DSL
//! with the search, the alerts written.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::rule::{load_with_lists, LoadOutcome, Rule};
use detectd::runner::{RunStatus, Runner};
use detectd::sink::elasticsearch::ElasticsearchSink;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::ClusterStateStore;
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// A folder of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique_index(name));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The rules of `rules` with their lists from `exceptions`, all loaded.
fn load(rules: &Path, exceptions: &Path) -> Vec<Rule> {
    let loaded = load_with_lists(&[rules.to_path_buf()], &[exceptions.to_path_buf()], t0());
    assert!(loaded.list_errors.is_empty(), "{:?}", loaded.list_errors);
    loaded
        .files
        .into_iter()
        .map(|f| {
            let at = f.location();
            match f.outcome {
                LoadOutcome::Loaded { rule, .. } => *rule,
                other => panic!("{at} does not load: {other:?}"),
            }
        })
        .collect()
}

struct Fixture {
    space: RunSpace,
    prefix: String,
}

impl Fixture {
    async fn new(test: &str) -> Option<Fixture> {
        let space = RunSpace::new(test, "exc").await?;
        let _cluster = space.cluster.clone();
        let prefix = space.prefix.clone();
        Some(Fixture { space, prefix })
    }

    async fn index(&self, kind: &str, docs: &[(String, Value)]) {
        let index = format!("{}-ev-{kind}", self.prefix);
        create_index(&self.space.cluster, &index, ecs_mapping()).await;
        index_docs(&self.space.cluster, &index, docs).await;
    }

    fn runner(&self) -> Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore> {
        self.space
            .runner(ElasticsearchSource::new(self.space.cluster.clone()))
    }

    async fn alerts(&self) -> Vec<Value> {
        self.space
            .alert_hits(&json!({"size": 100}))
            .await
            .into_iter()
            .map(|h| h["_source"].clone())
            .collect()
    }

    async fn cleanup(&self, kinds: &[&str]) {
        let indices: Vec<String> = kinds
            .iter()
            .map(|k| format!("{}-ev-{k}", self.prefix))
            .collect();
        let refs: Vec<&str> = indices.iter().map(String::as_str).collect();
        delete_indices(&self.space.cluster, &refs).await;
        delete_detectd_indices(&self.space.cluster, &self.space.names).await;
        self.space.alerts.delete(&self.space.cluster).await;
    }
}

/// A Kibana exception-list export: the list, its item, the summary line.
fn kibana_list(list_id: &str, entries: Value) -> String {
    let list = json!({"list_id": list_id, "namespace_type": "single", "type": "detection",
        "name": list_id, "description": "tuning", "id": "0b3d9f7e-2c1a-4e5b-8d6f-7a9b0c1d2e99"});
    let item = json!({"item_id": format!("{list_id}-1"), "list_id": list_id,
        "namespace_type": "single", "type": "simple", "name": "item", "description": "d",
        "entries": entries});
    let summary = json!({"exported_exception_list_count": 1, "exported_exception_list_item_count": 1,
        "missing_exception_list_item_count": 0, "missing_exception_list_items": [],
        "missing_exception_lists": [], "missing_exception_lists_count": 0});
    format!("{list}\n{item}\n{summary}\n")
}

fn logon(minute: i64, user: &str, host: &str, process: &str) -> Value {
    json!({
        "@timestamp": iso(t0() + Duration::minutes(minute)),
        "event": {"category": "authentication", "outcome": "success"},
        "user": {"name": user},
        "host": {"name": host},
        "process": {"name": process},
    })
}

/// A KQL rule with Kibana filters (one negated) and an exception list with
/// a `match_any` and a `wildcard` item entry: only the event none of them
/// removes alerts.
#[tokio::test]
async fn a_query_rule_with_filters_and_an_exception_list() {
    let Some(fx) = Fixture::new("a_query_rule_with_filters_and_an_exception_list").await else {
        return;
    };
    let docs: Vec<(String, Value)> = [
        logon(1, "admin", "ws-1", "sshd"),
        logon(2, "admin", "build-01", "sshd"),
        logon(3, "alice", "ws-1", "sshd"),
        logon(4, "admin", "ws-9", "sshd"),
        logon(4, "admin", "ws-2", "ansible-playbook"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, d)| (format!("e{}", i + 1), d))
    .collect();
    fx.index("auth", &docs).await;

    let rules = TempDir::new("rules");
    rules.write(
        "logons.toml",
        &format!(
            r#"[rule]
rule_id = "admin-logons"
name = "Admin logons"
description = "d"
type = "query"
language = "kuery"
index = ["{}-ev-*"]
severity = "low"
risk_score = 21
query = 'event.category:authentication'

[[rule.filters]]
meta = {{ negate = false, disabled = false, key = "user.name", type = "phrase" }}
query = {{ match_phrase = {{ "user.name" = "admin" }} }}

[[rule.filters]]
meta = {{ negate = true, disabled = false }}
query = {{ match_phrase = {{ "host.name" = "ws-9" }} }}

[[rule.exceptions_list]]
id = "0b3d9f7e-2c1a-4e5b-8d6f-7a9b0c1d2e99"
list_id = "soc-tuning"
namespace_type = "single"
type = "detection"
"#,
            fx.prefix
        ),
    );
    let lists = TempDir::new("lists");
    lists.write(
        "tuning.ndjson",
        &kibana_list(
            "soc-tuning",
            json!([{"field": "host.name", "operator": "included", "type": "match_any",
                    "value": ["build-01", "build-02"]}]),
        ),
    );
    lists.write(
        "ansible.ndjson",
        &kibana_list(
            "soc-tuning-2",
            json!([{"field": "process.name", "operator": "included", "type": "wildcard",
                    "value": "ansible*"}]),
        ),
    );
    let mut loaded = load(&rules.0, &lists.0);
    assert_eq!(loaded.len(), 1);
    let rule = loaded.remove(0);
    let runner = fx.runner();
    let rec = runner.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    let ids: Vec<Value> = fx
        .alerts()
        .await
        .iter()
        .map(|a| a["kibana.alert.ancestors"][0]["id"].clone())
        .collect();
    // e2: the exception; e3: the filter; e4: the negated filter. e5 would
    // go with the second list, which this rule does not use.
    let mut ids: Vec<String> = ids
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["e1", "e5"], "{rec:#?}");
    fx.cleanup(&["auth"]).await;
}

/// The founding EQL sequence with an exception list written in
/// detection-rules' exceptions TOML: the network half on one host is
/// excepted, so that host's sequence never completes; the other alerts.
#[tokio::test]
async fn an_eql_sequence_with_an_exception_list() {
    let Some(fx) = Fixture::new("an_eql_sequence_with_an_exception_list").await else {
        return;
    };
    let at = t0() + Duration::minutes(1);
    for (kind, tag_docs) in [("library", true), ("network", false)] {
        let docs: Vec<(String, Value)> = ["h1", "h2"]
            .iter()
            .map(|h| {
                let source = if tag_docs {
                    detectd::synth::founding_library(&iso(at), h, h, "powershell.exe")
                } else {
                    detectd::synth::founding_network(
                        &iso(at + Duration::seconds(2)),
                        h,
                        h,
                        "powershell.exe",
                        "10.0.0.5",
                        135,
                    )
                };
                (format!("{h}-{kind}"), source)
            })
            .collect();
        fx.index(kind, &docs).await;
    }

    let rules = TempDir::new("rules");
    let founding = include_str!("../../rules/execution_scheduled_task_powershell.toml");
    let start = founding.find("index = [").unwrap();
    let end = start + founding[start..].find(']').unwrap() + 1;
    let mut text = founding.to_string();
    text.replace_range(start..end, &format!("index = [\"{}-ev-*\"]", fx.prefix));
    text.push_str(
        "\n[[rule.exceptions_list]]\nid = \"lm\"\nlist_id = \"lateral-tuning\"\n\
         namespace_type = \"single\"\ntype = \"detection\"\n",
    );
    rules.write("founding.toml", &text);
    let lists = TempDir::new("lists");
    lists.write(
        "lateral.toml",
        r#"[metadata]
creation_date = "2024/07/10"
list_name = "Lateral tuning"

[[exceptions]]

[exceptions.container]
description = "Hosts allowed to schedule tasks remotely"
list_id = "lateral-tuning"
name = "Lateral tuning"
namespace_type = "single"
type = "detection"

[[exceptions.items]]
description = "h2 connects to its RPC endpoint on purpose"
name = "h2 rpc"
item_id = "h2-rpc"
type = "simple"

[[exceptions.items.entries]]
field = "host.id"
type = "match"
operator = "included"
value = "h2"

[[exceptions.items.entries]]
field = "destination.port"
type = "match"
operator = "included"
value = "135"
"#,
    );
    let mut loaded = load(&rules.0, &lists.0);
    let rule = loaded.remove(0);
    assert!(!rule.exceptions.is_empty());
    let rec = fx.runner().run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    let alerts = fx.alerts().await;
    let shells: Vec<&Value> = alerts
        .iter()
        .filter(|a| a.get("kibana.alert.group.index").is_none())
        .collect();
    assert_eq!(shells.len(), 1, "{alerts:#?}");
    assert_eq!(shells[0]["host"]["id"], json!("h1"));
    assert_eq!(alerts.len(), 3, "a shell and its two building blocks");
    fx.cleanup(&["library", "network"]).await;
}
