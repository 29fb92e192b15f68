//! Mappings on a live cluster (`ELASTICSEARCH_URL`; skipped without one
//! outside CI), with the real binary: two indices whose mappings make the
//! issue's examples differ from typing values by their JSON (a
//! `constant_keyword` value no `_source` holds, a field that exists only as
//! an alias, IPv4-mapped and uncompressed IPv6 literals against an `ip`
//! field, a date compared with epoch-millisecond sources, keywords beyond
//! `ignore_above`, `null_value`, `coerce: false`), and that disagree with
//! each other (`destination.ip` and `code` are `ip` / `long` in one,
//! `keyword` in the other). `detectd run --once` must raise exactly the
//! alerts Elasticsearch's semantics give, and `detectd hunt` with the same
//! mappings (the answer of `GET <indices>/_mapping` saved to a file) the
//! same alerts, ids and all; without the mappings `hunt` would not.

#[path = "common/process.rs"]
mod process;

use process::*;
use std::collections::BTreeSet;
use std::process::Command;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use elasticsearch::http::Method;
use serde_json::{json, Value};

struct Cluster {
    rt: tokio::runtime::Runtime,
    cluster: detectd::cluster::Cluster,
}

impl Cluster {
    fn connect() -> Option<Cluster> {
        cluster_url()?;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut settings = detectd::config::cluster::ClusterSettings::from_env();
        settings.request_timeout_secs = Some(120.0);
        let settings = settings.resolve().expect("valid ELASTICSEARCH_* settings");
        let cluster = rt
            .block_on(detectd::cluster::Cluster::connect(&settings))
            .expect("connect to ELASTICSEARCH_URL");
        Some(Cluster { rt, cluster })
    }

    fn request(&self, method: Method, path: &str, body: Option<String>, ndjson: bool) -> Value {
        let raw = self
            .rt
            .block_on(self.cluster.send_raw(
                method,
                path,
                &[],
                body.map(String::into_bytes),
                ndjson.then_some("application/x-ndjson"),
            ))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let v: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
        assert!(raw.status < 300, "{path}: {} {v}", raw.status);
        v
    }

    /// Deletes what a test made, whatever the answer (a real cluster may
    /// refuse wildcards).
    fn delete(&self, target: &str) {
        let _ = self.rt.block_on(self.cluster.send_raw(
            Method::Delete,
            &format!("/{target}"),
            &[],
            None,
            None,
        ));
    }
}

/// A rule id, its query, and the events (index, line) it must alert on.
type Case<'a> = (&'a str, String, Vec<(&'a String, &'a str)>);

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A rule over `pattern` with `query`.
fn rule(id: &str, pattern: &str, query: &str) -> String {
    format!(
        "[metadata]\ncreation_date = \"2024/01/01\"\nupdated_date = \"2024/01/01\"\n\n\
         [rule]\nrule_id = \"{id}\"\nname = \"Mapping case {id}\"\ndescription = \"d\"\n\
         type = \"eql\"\nlanguage = \"eql\"\nindex = [\"{pattern}\"]\nseverity = \"low\"\n\
         risk_score = 21\nfrom = \"now-9m\"\ninterval = \"5m\"\nmax_signals = 100\n\
         query = '''\n{query}\n'''\n"
    )
}

/// `(rule id, event index, event line)` of each alert in NDJSON hits.
fn triples(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .map(|d| {
            let s = &d["_source"];
            (
                s["kibana.alert.rule.rule_id"].as_str().unwrap().to_string(),
                s["kibana.alert.ancestors"][0]["index"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["kibana.alert.ancestors"][0]["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn run_once_and_hunt_match_with_the_indices_mappings() {
    let Some(c) = Cluster::connect() else { return };
    let tag = format!("{}-{}", std::process::id(), free_port());
    let prefix = format!("it-mappings-{tag}");
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let pattern = format!("{prefix}-*");
    let alerts = format!("it-mappings-alerts-{tag}");
    let dir = tempfile::tempdir().unwrap();

    c.request(
        Method::Put,
        &format!("/{a}"),
        Some(
            json!({"mappings": {"properties": {
                "@timestamp": {"type": "date"},
                "event": {"properties": {"category": {"type": "keyword"}, "created": {"type": "date"}}},
                "data_stream": {"properties": {"dataset": {"type": "constant_keyword", "value": "endpoint.a"}}},
                "destination": {"properties": {"ip": {"type": "ip"}}},
                "host": {"properties": {"hostname": {"type": "keyword"},
                    "name": {"type": "alias", "path": "host.hostname"}}},
                "process": {"properties": {
                    "command_line": {"type": "keyword", "ignore_above": 20},
                    "pid": {"type": "long", "coerce": false, "ignore_malformed": true}
                }},
                "user": {"properties": {"domain": {"type": "keyword", "null_value": "NULL"}}},
                "code": {"type": "long"}
            }}})
            .to_string(),
        ),
        false,
    );
    c.request(
        Method::Put,
        &format!("/{b}"),
        Some(
            json!({"mappings": {"properties": {
                "@timestamp": {"type": "date"},
                "event": {"properties": {"category": {"type": "keyword"}}},
                "data_stream": {"properties": {"dataset": {"type": "constant_keyword", "value": "endpoint.b"}}},
                "destination": {"properties": {"ip": {"type": "keyword"}}},
                "host": {"properties": {"name": {"type": "keyword"}}},
                "code": {"type": "keyword"}
            }}})
            .to_string(),
        ),
        false,
    );

    // Events of the last minutes: @timestamp as epoch millis in `a`, ISO in `b`.
    let now = Utc::now();
    let ms = |min: i64| (now - Duration::minutes(min)).timestamp_millis();
    let long_line = "powershell.exe -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA";
    let a_events = [
        json!({"@timestamp": ms(6), "event": {"category": "network", "created": ms(60)}, "destination": {"ip": "10.0.0.1"}, "code": 10}),
        json!({"@timestamp": ms(5), "event": {"category": "network", "created": (now + Duration::hours(1)).timestamp_millis()}, "destination": {"ip": "::1"}, "code": 5}),
        json!({"@timestamp": ms(4), "event": {"category": "process"}, "host": {"hostname": "ws-1"}, "process": {"command_line": long_line, "pid": "5"}}),
        json!({"@timestamp": ms(3), "event": {"category": "process"}, "process": {"command_line": "short.exe", "pid": 5}, "user": {"domain": null}}),
    ];
    let b_events = [
        json!({"@timestamp": iso(now - Duration::minutes(6)), "event": {"category": "network"}, "destination": {"ip": "10.0.0.1"}, "code": "10"}),
        json!({"@timestamp": iso(now - Duration::minutes(4)), "event": {"category": "process"}, "host": {"name": "ws-1"}, "code": "5"}),
    ];
    for (index, events) in [(&a, &a_events[..]), (&b, &b_events[..])] {
        let mut bulk = String::new();
        let mut file = String::new();
        for (i, e) in events.iter().enumerate() {
            bulk.push_str(&format!(
                "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{}\"}}}}\n{e}\n",
                i + 1
            ));
            file.push_str(&format!("{e}\n"));
        }
        let r = c.request(Method::Post, "/_bulk?refresh=true", Some(bulk), true);
        assert_eq!(r["errors"], false, "{r}");
        // the events file is named like the index: `hunt` gives its events
        // the same `_index` and `_id` (line number) as the cluster
        std::fs::write(dir.path().join(index.as_str()), file).unwrap();
    }

    let cut = iso(now);
    let cases: Vec<Case> = vec![
        // in no `_source`: the constant of index a
        (
            "dataset",
            r#"any where data_stream.dataset == "endpoint.a""#.into(),
            vec![(&a, "1"), (&a, "2"), (&a, "3"), (&a, "4")],
        ),
        // an ip in a, a keyword in b
        (
            "ipv4-mapped",
            r#"network where destination.ip == "::ffff:10.0.0.1""#.into(),
            vec![(&a, "1")],
        ),
        (
            "ipv6-long",
            r#"network where destination.ip == "0:0:0:0:0:0:0:1""#.into(),
            vec![(&a, "2")],
        ),
        // an alias in a, a field of its own in b
        (
            "alias",
            r#"any where host.name == "ws-1""#.into(),
            vec![(&a, "3"), (&b, "2")],
        ),
        // a date held as epoch millis
        (
            "date",
            format!("network where event.created < \"{cut}\""),
            vec![(&a, "1")],
        ),
        // longer than ignore_above: not indexed
        (
            "ignore-above",
            format!("process where process.command_line in (\"{long_line}\", \"short.exe\")"),
            vec![(&a, "4")],
        ),
        (
            "null-value",
            r#"any where user.domain == "NULL""#.into(),
            vec![(&a, "4")],
        ),
        // "5" is malformed without coercion
        (
            "coerce",
            "any where process.pid == 5".into(),
            vec![(&a, "4")],
        ),
        // a long in a (10 < 9 is false), a keyword in b ("10" < "9")
        (
            "disagree",
            "any where code < 9".into(),
            vec![(&a, "2"), (&b, "1"), (&b, "2")],
        ),
    ];
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let mut expected = BTreeSet::new();
    for (id, query, hits) in &cases {
        std::fs::write(rules.join(format!("{id}.toml")), rule(id, &pattern, query)).unwrap();
        for (index, line) in hits {
            expected.insert((id.to_string(), index.to_string(), line.to_string()));
        }
    }

    // the daemon, once
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{rules:?}]\n[indices]\nalerts = {alerts:?}\n\
             [schedule]\nstartup_jitter = false\n\
             [state]\nbackend = \"file\"\npath = {state:?}\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n[log]\nformat = \"json\"\n",
            rules = rules.display().to_string(),
            state = dir.path().join("state").display().to_string(),
            port = free_port(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    c.request(Method::Post, &format!("/{alerts}/_refresh"), None, false);
    let found = c.request(
        Method::Post,
        &format!("/{alerts}/_search"),
        Some(json!({"size": 1000, "query": {"match_all": {}}}).to_string()),
        false,
    );
    let written: Vec<Value> = found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(triples(&written), expected, "run --once; log:\n{log}");
    let run_ids: BTreeSet<String> = written
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect();

    // hunt over the same events, with the mappings the cluster has
    let mappings = c.request(Method::Get, &format!("/{a},{b}/_mapping"), None, false);
    let mapping_file = dir.path().join("mappings.json");
    std::fs::write(&mapping_file, mappings.to_string()).unwrap();
    let hunt = |with_mappings: bool| -> Vec<Value> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
        cmd.arg("hunt").arg("--rules").arg(&rules);
        if with_mappings {
            for index in [&a, &b] {
                cmd.arg("--mapping")
                    .arg(format!("{index}={}", mapping_file.display()));
            }
        }
        let out = cmd
            .arg(dir.path().join(a.as_str()))
            .arg(dir.path().join(b.as_str()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines_of(&String::from_utf8(out.stdout).unwrap())
    };
    let hunted = hunt(true);
    assert_eq!(triples(&hunted), expected, "hunt --mapping");
    let hunt_ids: BTreeSet<String> = hunted
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hunt_ids, run_ids, "hunt and run give the same alert ids");
    // without the mappings the examples come out otherwise
    assert_ne!(triples(&hunt(false)), expected);

    c.delete(&format!("{a},{b}"));
    c.delete(&format!("{alerts}*"));
    c.delete(&format!(".internal.{alerts}*"));
}
