//! Local KQL evaluation agrees with the cluster: for each query, the
//! documents the translated query DSL selects on the cluster are exactly
//! the documents the local evaluator selects.
//!
//! One index with an explicit mapping (keyword, text with a keyword
//! multi-field, wildcard, long, float, date, ip, boolean, `ignore_above`,
//! nested, arrays) and a few hundred generated documents with awkward
//! values (case, spaces, backslashes, numeric strings, nulls, missing
//! fields, long values). The queries cover the KQL grammar and Kibana's
//! translation per field type. A query the cluster refuses must also be
//! refused locally (and the other way round). Disagreements fail the test
//! unless listed in [`KNOWN_LIMITS`] with the reason.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use detectd::filter::Filter;
use detectd::filter::{compile, EvalOptions, FieldTypes};
use detectd::kql::lucene::{self, LuceneOptions};
use detectd::kql::{self, KqlOptions};
use detectd_integration_tests::gen::Rng;
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn mapping() -> Value {
    json!({"dynamic": "strict", "properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"category": {"type": "keyword"}}},
        "host": {"properties": {"name": {"type": "keyword"}, "hostname": {"type": "keyword"}}},
        "process": {"properties": {
            "name": {"type": "keyword"},
            "command_line": {"type": "wildcard"},
            "pid": {"type": "long"},
            "title": {"type": "keyword", "ignore_above": 16}
        }},
        "file": {"properties": {
            "path": {"type": "keyword", "fields": {"text": {"type": "text"}}}
        }},
        "message": {"type": "text"},
        "destination": {"properties": {"port": {"type": "long"}}},
        "source": {"properties": {"ip": {"type": "ip"}}},
        "score": {"type": "float"},
        "user": {"properties": {"name": {"type": "keyword"}, "admin": {"type": "boolean"}}},
        "tags": {"type": "keyword"},
        "dns": {"properties": {"answers": {"type": "nested", "properties": {
            "type": {"type": "keyword"}, "ttl": {"type": "long"}
        }}}}
    }})
}

fn pick<'a>(rng: &mut Rng, v: &[&'a str]) -> &'a str {
    v[rng.below(v.len())]
}

/// Deterministic documents; about one field in six is missing or null.
fn documents() -> Vec<(String, Value)> {
    let mut rng = Rng(0x6b71_6c01);
    let base = Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap();
    let names = [
        "cmd.exe",
        "CMD.EXE",
        "powershell.exe",
        "pwsh.exe",
        "rundll32.exe",
        "a b.exe",
        "x*y.exe",
    ];
    let cmds = [
        "cmd.exe /c whoami",
        "powershell.exe -enc SQBFAFgA",
        "rundll32.exe shell32.dll,Control_RunDLL",
        r"C:\Windows\System32\svchost.exe -k netsvcs",
        "pwsh -NoProfile -Command Get-Process",
        "curl http://evil.example/a?b=c",
    ];
    let messages = [
        "Hello World",
        "The quick brown fox",
        "user logged on",
        "failed to start service",
        "Quick brown dogs, quick!",
        "cmd.exe started by explorer.exe",
        "",
    ];
    let paths = [
        r"C:\Windows\System32\cmd.exe",
        "/usr/bin/curl",
        r"C:\Users\bob\AppData\Local\Temp\a.ps1",
        "/tmp/x y",
    ];
    let ips = [
        "10.0.0.5",
        "10.1.2.3",
        "192.168.1.10",
        "8.8.8.8",
        "::1",
        "fe80::1",
    ];
    let users = ["bob", "alice", "SYSTEM", "Bob"];
    let hosts = ["web-1", "db-1", "WEB-1"];
    let titles = ["short", "a very long title over the limit"];
    let mut out = Vec::new();
    for i in 0..300u64 {
        let mut f: Vec<(&str, Value)> = Vec::new();
        let ts = base + Duration::minutes(37 * i as i64);
        f.push(("@timestamp", json!(iso(ts))));
        let cat = match rng.below(4) {
            0 => json!("process"),
            1 => json!("network"),
            2 => json!("file"),
            _ => json!(["process", "network"]),
        };
        f.push(("event", json!({"category": cat})));
        let h = pick(&mut rng, &hosts);
        f.push((
            "host",
            json!({"name": h, "hostname": pick(&mut rng, &hosts)}),
        ));
        let pid = rng.below(5000);
        let pid_v = if rng.below(5) == 0 {
            json!(pid.to_string())
        } else {
            json!(pid)
        };
        let name = pick(&mut rng, &names);
        let cmd = pick(&mut rng, &cmds);
        let title = pick(&mut rng, &titles);
        f.push((
            "process",
            json!({"name": name, "command_line": cmd, "pid": pid_v, "title": title}),
        ));
        f.push(("file", json!({"path": pick(&mut rng, &paths)})));
        f.push(("message", json!(pick(&mut rng, &messages))));
        let port = [22, 80, 135, 443, 445, 3389, 8080][rng.below(7)];
        f.push(("destination", json!({"port": port})));
        f.push(("source", json!({"ip": pick(&mut rng, &ips)})));
        let score = [0.1, 0.5, 1.5, 2.0][rng.below(4)];
        f.push(("score", json!(score)));
        let admin = match rng.below(4) {
            0 => json!(true),
            1 => json!(false),
            2 => json!("true"),
            _ => json!("false"),
        };
        f.push((
            "user",
            json!({"name": pick(&mut rng, &users), "admin": admin}),
        ));
        let tags = match rng.below(4) {
            0 => json!(["a", "b"]),
            1 => json!(["c"]),
            2 => json!([]),
            _ => json!("a"),
        };
        f.push(("tags", tags));
        let answers: Vec<Value> = (0..rng.below(3))
            .map(|_| {
                let ttl = [60, 300, 3600][rng.below(3)];
                json!({"type": pick(&mut rng, &["A", "CNAME"]), "ttl": ttl})
            })
            .collect();
        f.push(("dns", json!({"answers": answers})));
        // about one field in six missing or null
        let mut d = serde_json::Map::new();
        for (key, v) in f {
            match rng.below(12) {
                0 => {}
                1 => {
                    d.insert(key.to_string(), Value::Null);
                }
                _ => {
                    d.insert(key.to_string(), v);
                }
            }
        }
        out.push((format!("d{i}"), Value::Object(d)));
    }
    out
}

const QUERIES: &[&str] = &[
    "process.name: cmd.exe",
    "process.name: CMD.EXE",
    "process.name: \"cmd.exe\"",
    "process.name: *.exe",
    "process.name: pw*",
    "process.name: (cmd.exe or powershell.exe)",
    "not process.name: cmd.exe",
    "process.name: a b.exe",
    r"process.name: x\*y.exe",
    r"process.name: *\**",
    "process.command_line: *whoami*",
    "process.command_line: *-enc*",
    "process.command_line: \"cmd.exe /c whoami\"",
    "process.command_line: cmd.exe /c whoami",
    "process.command_line: *shell32.dll,Control_RunDLL",
    "process.command_line: *Get-Process",
    "process.command_line: *rundll32 shell32*",
    r"process.command_line: C\:\\Windows\\*",
    "message: quick",
    "message: QUICK brown",
    "message: \"quick brown\"",
    "message: \"brown quick\"",
    "message: quick*",
    "message: Qu*",
    "message: *own",
    "message: *",
    "message: cmd.exe",
    r"file.path: C\:\\Windows\\*",
    "file.path.text: windows",
    "file.path.text: \"system32 cmd.exe\"",
    "destination.port: 445",
    "destination.port > 1000",
    "destination.port >= 445 and destination.port < 3389",
    "destination.port: (22 or 3389)",
    "destination.port <= 135",
    "source.ip: 10.0.0.0/8",
    "source.ip: \"192.168.1.10\"",
    "source.ip: \"::1\"",
    "source.ip > 10.0.0.5",
    "@timestamp >= \"2024-03-11\"",
    "@timestamp < \"2024-03-11T06:00:00\"",
    "@timestamp: \"2024-03-11\"",
    "@timestamp > now-100000d",
    "@timestamp > now-1d",
    "@timestamp >= 1710115200000",
    "user.admin: true",
    "user.admin: false",
    "not user.admin: true",
    "user.name: bob",
    "user.name: Bob or user.name: SYSTEM",
    "score: 0.1",
    "score > 1",
    "tags: a",
    "tags: *",
    "not tags: *",
    "event.category: (process and network)",
    "process.title: short",
    "process.title: *long*",
    "process.pid: 123",
    "process.pid > 4000",
    "dns.answers: { type: A and ttl > 100 }",
    "dns.answers: { type: CNAME } and not event.category: file",
    "host.*: web-1",
    "host.*: WEB*",
    "cmd.exe",
    "\"quick brown\"",
    "quick*",
    "whoami",
    "process.name: cmd.exe or message: hello and not destination.port: 22",
    "(process.name: pwsh.exe or user.name: alice) and not (tags: c or source.ip: 8.8.8.8)",
    "user.admin: \"true\"",
    "process.name >= p",
    "process.name < c",
    "@timestamp >= \"2024-03-11T02:00:00+02:00\"",
    "@timestamp <= \"2024-03-10T12\"",
    "score >= 0.5 and score <= 1.5",
    "destination.port: 4*",
    "source.ip: 10.*",
    "*: web-1",
    "\"user logged on\"",
    "logged",
    "brown* or whoami*",
    "message: (quick and brown) or message: hello",
    "file.path.text: c\\:\\\\windows*",
    "not dns.answers: { ttl >= 300 }",
];

/// Queries whose local answer is known to differ, with the reason. Empty:
/// every disagreement found so far was fixed.
const KNOWN_LIMITS: &[(&str, &str)] = &[];

async fn cluster_ids(
    cluster: &detectd::cluster::Cluster,
    index: &str,
    query: &Value,
) -> Result<BTreeSet<String>, String> {
    let body = json!({"query": query, "size": 1000, "_source": false});
    let v = cluster
        .request_json(Method::Post, &format!("/{index}/_search"), &[], Some(&body))
        .await
        .map_err(|e| e.to_string())?;
    Ok(v["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// How many queries agreed, were refused by both sides, and the
/// disagreements (each with its reason unless a known limit).
struct Tally {
    agree: usize,
    both_refused: usize,
    known: usize,
    selective: usize,
    disagreements: Vec<String>,
}

/// Runs each query on the cluster and locally over `docs`.
async fn agreement(
    cluster: &detectd::cluster::Cluster,
    index: &str,
    docs: &[(String, Value)],
    types: &FieldTypes,
    queries: &[&str],
    translate: impl Fn(&str) -> (Filter, Value),
) -> Tally {
    let now = Utc::now();
    let mut t = Tally {
        agree: 0,
        both_refused: 0,
        known: 0,
        selective: 0,
        disagreements: Vec::new(),
    };
    for q in queries {
        let (filter, dsl) = translate(q);
        let on_cluster = cluster_ids(cluster, index, &dsl).await;
        let local = compile(&filter, types, &EvalOptions::default()).map(|m| {
            docs.iter()
                .filter(|(_, d)| m.matches(d, now))
                .map(|(id, _)| id.clone())
                .collect::<BTreeSet<_>>()
        });
        let outcome = match (&on_cluster, &local) {
            (Ok(c), Ok(l)) if c == l => {
                t.agree += 1;
                // Agreement on an empty or a full answer says little.
                if !c.is_empty() && c.len() < docs.len() {
                    t.selective += 1;
                }
                if std::env::var("KQL_AGREEMENT_VERBOSE").is_ok() {
                    eprintln!("{:4} {q}", c.len());
                }
                continue;
            }
            (Err(_), Err(_)) => {
                t.both_refused += 1;
                continue;
            }
            (Ok(c), Ok(l)) => format!(
                "cluster {} docs, local {} docs; only cluster: {:?}; only local: {:?}",
                c.len(),
                l.len(),
                c.difference(l).take(5).collect::<Vec<_>>(),
                l.difference(c).take(5).collect::<Vec<_>>()
            ),
            (Err(e), Ok(l)) => format!("cluster refused ({e}), local matched {}", l.len()),
            (Ok(c), Err(e)) => format!("local refused ({e}), cluster matched {}", c.len()),
        };
        if KNOWN_LIMITS.iter().any(|(k, _)| k == q) {
            t.known += 1;
            eprintln!("known limit: {q}: {outcome}");
        } else {
            t.disagreements.push(format!("{q}\n    {outcome}"));
        }
    }
    t
}

async fn setup(
    cluster: &detectd::cluster::Cluster,
    prefix: &str,
) -> (String, Vec<(String, Value)>, FieldTypes) {
    let index = unique_index(prefix);
    create_index(cluster, &index, mapping()).await;
    let docs = documents();
    index_docs(cluster, &index, &docs).await;
    let mapping_resp = cluster
        .request_json(Method::Get, &format!("/{index}/_mapping"), &[], None)
        .await
        .unwrap();
    (index, docs, FieldTypes::from_mapping(&mapping_resp))
}

#[tokio::test]
async fn local_kql_evaluation_agrees_with_the_cluster() {
    let Some(cluster) = connect_or_skip("local_kql_evaluation_agrees_with_the_cluster").await
    else {
        return;
    };
    let (index, docs, types) = setup(&cluster, "kql-agree").await;
    let opts = KqlOptions::detection_rules();
    let t = agreement(&cluster, &index, &docs, &types, QUERIES, |q| {
        let f = kql::to_filter(q, Some(&types), &opts)
            .unwrap_or_else(|e| panic!("{q}: does not translate: {e}"));
        let dsl = kql::es_query(&f);
        (f, dsl)
    })
    .await;
    eprintln!(
        "KQL agreement: {} queries over {} documents: {} agree, {} refused by both, {} known limits, \
         {} disagree; {} agreeing queries select some but not all documents",
        QUERIES.len(),
        docs.len(),
        t.agree,
        t.both_refused,
        t.known,
        t.disagreements.len(),
        t.selective
    );
    delete_indices(&cluster, &[&index]).await;
    assert!(
        t.disagreements.is_empty(),
        "disagreements:\n{}",
        t.disagreements.join("\n")
    );
    assert!(
        t.selective >= QUERIES.len() - 15,
        "too few selective queries: {}",
        t.selective
    );
}

/// Lucene queries in the subset detectd evaluates (what Sigma rules use).
const LUCENE_QUERIES: &[&str] = &[
    "process.name:cmd.exe",
    "process.name:(cmd.exe OR powershell.exe)",
    "process.name:cmd.exe AND NOT user.name:bob",
    "process.name:pw* OR destination.port:445",
    "+process.name:cmd.exe -tags:c",
    "process.command_line:*whoami*",
    r"process.command_line:*\-enc*",
    r"process.command_line:cmd.exe\ \/c\ whoami",
    "message:quick",
    "message:\"quick brown\"",
    "message:Qu*",
    "destination.port:[135 TO 445]",
    "destination.port:{135 TO 445}",
    "destination.port:>=3389",
    "@timestamp:[2024-03-11 TO 2024-03-12]",
    "@timestamp:[now-100000d TO now]",
    r"source.ip:10.0.0.0\/8",
    "_exists_:tags",
    "NOT _exists_:tags",
    "user.admin:true",
    "dns.answers.type:A",
    "process.name:cmd.exe AND user.name:bob OR destination.port:22",
    "process.name:cmd.exe OR user.name:bob AND destination.port:22",
    "cmd.exe",
    "\"quick brown\"",
    "quick*",
    r"file.path:C\:\\Windows\\*",
    "host.name:web\\-1 OR host.hostname:WEB*",
    "score:[0.5 TO *]",
];

#[tokio::test]
async fn local_lucene_evaluation_agrees_with_the_cluster() {
    let Some(cluster) = connect_or_skip("local_lucene_evaluation_agrees_with_the_cluster").await
    else {
        return;
    };
    let (index, docs, types) = setup(&cluster, "lucene-agree").await;
    let opts = LuceneOptions::detection_rules();
    let t = agreement(&cluster, &index, &docs, &types, LUCENE_QUERIES, |q| {
        let f = lucene::to_filter(q, &opts);
        let dsl = lucene::es_query(&f);
        (f, dsl)
    })
    .await;
    eprintln!(
        "Lucene agreement: {} queries over {} documents: {} agree, {} refused by both, {} disagree; \
         {} agreeing queries select some but not all documents",
        LUCENE_QUERIES.len(),
        docs.len(),
        t.agree,
        t.both_refused,
        t.disagreements.len(),
        t.selective
    );
    delete_indices(&cluster, &[&index]).await;
    assert!(
        t.disagreements.is_empty(),
        "disagreements:\n{}",
        t.disagreements.join("\n")
    );
    assert!(t.both_refused == 0, "every query is in the subset");
}
