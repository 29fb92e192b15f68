//! Pushdown soundness on a live cluster: the search the source sends must
//! return every event the query could use.
//!
//! Two checks: the founding rule over synthetic ECS events, and ≥ 50 queries
//! of the detection-rules corpus over documents made from each query's
//! literals. The oracle is the evaluator itself (compiled once without a
//! schema and once with the index's mapping): every document it matches in
//! some stage must come back from the cluster. The in-memory semantics of
//! the filter ([`Filter::matches`]) must be honoured by the cluster too.
//! The `#[ignore]`d `figures_*` test prints the numbers for the design note.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::eql::ast::Query;
use detectd::eql::compile::{compile, CompileOptions};
use detectd::eql::pushdown::{field_values, pushdown, Filter};
use detectd::eql::schema::Schema;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::source::{Document, EventSource, FetchRequest, TimeRange};
use detectd::synth::{Synth, SynthConfig};
use detectd_integration_tests::gen::{Rng, Vocabulary};
use detectd_integration_tests::*;
use serde_json::{json, Value};

const FOUNDING_V4: &str = r#"sequence by host.id, process.entity_id with maxspan = 5s
 [library where dll.name : "taskschd.dll" and process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe")]
 [network where process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")]"#;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 11, 14, 22, 0, 0).unwrap()
}

fn parse(text: &str) -> Query {
    detectd::eql::parse(text).unwrap_or_else(|e| panic!("parse {text}: {e:?}"))
}

/// The index mapping as the evaluator's schema.
async fn index_schema(cluster: &detectd::cluster::Cluster, index: &str) -> Schema {
    let v = cluster
        .request_json(
            elasticsearch::http::Method::Get,
            &format!("/{index}/_mapping"),
            &[],
            None,
        )
        .await
        .unwrap();
    let mapping = v
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or_default();
    Schema::from_mapping(&mapping).unwrap_or_default()
}

/// Ids of the documents some stage of the query matches, by the evaluator
/// compiled with each schema; `None` if the query does not compile.
fn evaluator_ids(
    query: &Query,
    schemas: &[&Schema],
    docs: &[(String, Value)],
) -> Option<HashSet<String>> {
    let opts = CompileOptions {
        tiebreaker_field: Some("event.sequence".into()),
        ..CompileOptions::default()
    };
    let mut out = HashSet::new();
    for schema in schemas {
        let plan = compile(query, schema, &opts).ok()?;
        for (id, d) in docs {
            let event = plan.event(d);
            if plan
                .stages
                .iter()
                .chain(plan.until.as_ref())
                .any(|s| s.matches(&event))
            {
                out.insert(id.clone());
            }
        }
    }
    Some(out)
}

fn ci_eq(v: &Value, want: &[&str]) -> bool {
    v.as_str()
        .is_some_and(|s| want.iter().any(|w| s.eq_ignore_ascii_case(w)))
}

/// The founding rule's two stage conditions, written out by hand.
fn founding_relevant(doc: &Value) -> bool {
    let any =
        |field: &str, pred: &dyn Fn(&Value) -> bool| field_values(doc, field).into_iter().any(pred);
    let ps = ["powershell.exe", "pwsh.exe", "powershell_ise.exe"];
    let category = |c: &str| any("event.category", &|v| v == c);
    let library = category("library")
        && any("dll.name", &|v| ci_eq(v, &["taskschd.dll"]))
        && any("process.name", &|v| ci_eq(v, &ps));
    let addresses: Vec<&Value> = field_values(doc, "destination.address");
    let network = category("network")
        && any("process.name", &|v| ci_eq(v, &ps))
        && any("destination.port", &|v| v.as_i64() == Some(135))
        && !addresses.is_empty()
        && !addresses.iter().any(|a| *a == "127.0.0.1" || *a == "::1");
    library || network
}

fn synth_docs(n: usize, attacks_per_10k: u32) -> Vec<(String, Value)> {
    let cfg = SynthConfig {
        attacks_per_10k,
        start_ms: start().timestamp_millis(),
        mean_gap_ms: 2,
        ..SynthConfig::default()
    };
    Synth::new(cfg)
        .take(n)
        .enumerate()
        .map(|(i, d)| (format!("s{i}"), d))
        .collect()
}

fn request(index: &str, query: &Query, with_pushdown: bool) -> FetchRequest {
    let mut req = FetchRequest::new(
        vec![index.to_string()],
        TimeRange {
            from: start(),
            to: start() + Duration::days(1),
        },
    );
    req.page_size = 5_000;
    req.tiebreaker_field = Some("event.sequence".into());
    if with_pushdown {
        req = req.for_query(query, "event.category");
    }
    req
}

async fn fetch_ids(source: &ElasticsearchSource, req: FetchRequest) -> Vec<String> {
    source
        .fetch(req)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|d: Document| d.id)
        .collect()
}

#[tokio::test]
async fn founding_rule_pushdown_keeps_every_relevant_event() {
    let Some(cluster) = connect_or_skip("founding_rule_pushdown").await else {
        return;
    };
    let docs = synth_docs(20_000, 20);
    let relevant: HashSet<String> = docs
        .iter()
        .filter(|(_, d)| founding_relevant(d))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(relevant.len() > 50, "the data must exercise the rule");
    // ECS keyword mapping, and the default dynamic mapping (text with a
    // `.keyword` sub-field) that an index without a template gets.
    let ecs = unique_index("founding-ecs");
    let dynamic = unique_index("founding-dyn");
    create_index(&cluster, &ecs, ecs_mapping()).await;
    create_index(
        &cluster,
        &dynamic,
        json!({"properties": {"@timestamp": {"type": "date"}}}),
    )
    .await;
    index_docs(&cluster, &ecs, &docs).await;
    index_docs(&cluster, &dynamic, &docs).await;
    let source = ElasticsearchSource::new(cluster.clone());
    let rules = [
        FOUNDING_V4.to_string(),
        corpus_query("rules/windows/execution_scheduled_task_powershell_source.toml")
            .unwrap_or_else(|| FOUNDING_V4.to_string()),
    ];
    for index in [&ecs, &dynamic] {
        for (n, text) in rules.iter().enumerate() {
            let query = parse(text);
            let got: HashSet<String> = fetch_ids(&source, request(index, &query, true))
                .await
                .into_iter()
                .collect();
            if n == 0 {
                let missing: Vec<_> = relevant.difference(&got).take(5).collect();
                assert!(
                    missing.is_empty(),
                    "{index}: pushdown dropped relevant events {missing:?}"
                );
            }
            let schema = index_schema(&cluster, index).await;
            let matched = evaluator_ids(&query, &[&Schema::default(), &schema], &docs)
                .unwrap_or_else(|| panic!("rule {n} compiles"));
            assert!(!matched.is_empty(), "rule {n}: the data must exercise it");
            if n == 0 {
                assert_eq!(
                    matched, relevant,
                    "the hand-written oracle agrees with the evaluator"
                );
            }
            let missing: Vec<_> = matched.difference(&got).take(5).collect();
            assert!(
                missing.is_empty(),
                "{index} rule {n}: pushdown dropped matching events {missing:?}"
            );
            // In-memory filter semantics are honoured by the server too.
            let filter = pushdown(&query, "event.category");
            for (id, d) in &docs {
                if filter.matches(d) {
                    assert!(
                        got.contains(id),
                        "{index} rule {n}: server dropped {id}: {d}"
                    );
                }
            }
            assert!(
                got.len() < docs.len() / 10,
                "{index} rule {n}: pushdown narrowed to {} of {}",
                got.len(),
                docs.len()
            );
        }
    }
    delete_indices(&cluster, &[&ecs, &dynamic]).await;
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/detection-rules-eql");
    dir.is_dir().then_some(dir)
}

fn corpus_query(rel: &str) -> Option<String> {
    let text = std::fs::read_to_string(corpus_dir()?.join(rel)).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get("rule")?.get("query")?.as_str().map(str::to_string)
}

/// EQL queries of the corpus that parse and pass the semantic checks, in
/// path order.
fn corpus_queries() -> Vec<(String, String, Query)> {
    let Some(dir) = corpus_dir() else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut stack = vec![dir.join("rules")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(v) = toml::from_str::<toml::Value>(&text) else {
            continue;
        };
        let Some(rule) = v.get("rule") else { continue };
        if rule.get("language").and_then(|l| l.as_str()) != Some("eql") {
            continue;
        }
        let Some(q) = rule.get("query").and_then(|q| q.as_str()) else {
            continue;
        };
        let Ok(query) = detectd::eql::parse(q) else {
            continue;
        };
        if !detectd::eql::verify(&query).is_empty() {
            continue;
        }
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push((name, q.to_string(), query));
    }
    out
}

#[tokio::test]
async fn corpus_queries_pushdown_is_a_superset_on_the_cluster() {
    let Some(cluster) = connect_or_skip("corpus_pushdown").await else {
        return;
    };
    let all = corpus_queries();
    if all.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "corpus missing under CI"
        );
        eprintln!("corpus_pushdown: skipped: ../shared/detection-rules-eql not found");
        return;
    }
    // Every 8th query of the corpus: a spread over all platforms and shapes.
    let picked: Vec<_> = all.iter().step_by(8).collect();
    assert!(
        picked.len() >= 50,
        "only {} corpus queries picked",
        picked.len()
    );
    let source = ElasticsearchSource::new(cluster.clone());
    let (mut with_hits, mut narrowed, mut total_docs, mut total_fetched) = (0, 0, 0, 0);
    let (mut evaluated_hits, mut not_compiled) = (0, 0);
    for (i, (name, text, query)) in picked.iter().enumerate() {
        let vocab = Vocabulary::of(query);
        let mut rng = Rng(i as u64 + 7);
        let ts = |k: usize| {
            (start() + Duration::seconds(k as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let docs: Vec<(String, Value)> = (0..60)
            .map(|k| {
                (
                    format!("c{k}"),
                    vocab.document(&mut rng, &ts(k), "event.category"),
                )
            })
            .collect();
        let index = unique_index("corpus");
        create_index(&cluster, &index, ecs_mapping()).await;
        index_docs(&cluster, &index, &docs).await;
        let filter = pushdown(query, "event.category");
        let got: HashSet<String> = fetch_ids(&source, request(&index, query, true))
            .await
            .into_iter()
            .collect();
        let schema = index_schema(&cluster, &index).await;
        match evaluator_ids(query, &[&Schema::default(), &schema], &docs) {
            Some(matched) => {
                if !matched.is_empty() {
                    evaluated_hits += 1;
                }
                for id in &matched {
                    assert!(
                        got.contains(id),
                        "{name}: pushdown dropped {id}, which the evaluator matches\nquery: {text}\nfilter: {filter:?}\ndoc: {}",
                        docs.iter().find(|(d, _)| d == id).map(|(_, v)| v.to_string()).unwrap_or_default()
                    );
                }
            }
            None => not_compiled += 1,
        }
        let expected: Vec<&String> = docs
            .iter()
            .filter(|(_, d)| filter.matches(d))
            .map(|(id, _)| id)
            .collect();
        for id in &expected {
            assert!(
                got.contains(*id),
                "{name}: the cluster dropped {id}\nquery: {text}\nfilter: {filter:?}\ndoc: {}",
                docs.iter()
                    .find(|(d, _)| d == *id)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            );
        }
        if !expected.is_empty() {
            with_hits += 1;
        }
        if got.len() < docs.len() {
            narrowed += 1;
        }
        total_docs += docs.len();
        total_fetched += got.len();
        delete_indices(&cluster, &[&index]).await;
    }
    eprintln!(
        "corpus pushdown: {} queries ({not_compiled} rejected by compile), {evaluated_hits} with documents the evaluator matches, {with_hits} with documents the filter keeps, {narrowed} narrowed by the cluster; fetched {total_fetched} of {total_docs} documents",
        picked.len()
    );
    assert!(
        evaluated_hits >= 40,
        "the evaluator must match documents for most queries, got {evaluated_hits}"
    );
    assert!(
        with_hits * 2 >= picked.len(),
        "the generated documents must exercise most queries"
    );
    assert!(
        narrowed * 2 >= picked.len(),
        "pushdown should narrow most queries"
    );
}

/// The figures for the design note: the founding rule over 100k mixed ECS
/// events in its window, ~1% relevant; events fetched with and without
/// pushdown and fetch throughput. Run with
/// `cargo test -p detectd-integration-tests --release --test pushdown -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn figures_founding_rule_fetch_with_and_without_pushdown() {
    let Some(cluster) = connect_or_skip("figures").await else {
        return;
    };
    let docs = synth_docs(100_000, 18);
    let relevant = docs.iter().filter(|(_, d)| founding_relevant(d)).count();
    let index = unique_index("figures");
    create_index(&cluster, &index, ecs_mapping()).await;
    index_docs(&cluster, &index, &docs).await;
    let source = ElasticsearchSource::new(cluster.clone());
    let query = parse(FOUNDING_V4);
    for (label, with) in [("without pushdown", false), ("with pushdown", true)] {
        let t = Instant::now();
        let n = fetch_ids(&source, request(&index, &query, with))
            .await
            .len();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label}: fetched {n} events in {secs:.2} s = {:.0} events/s",
            n as f64 / secs
        );
    }
    // Where the time goes: one raw page of 5,000 events (no parsing on our
    // side), with and without `_source`.
    for (label, src) in [
        ("raw page of 5000 with _source", json!(true)),
        ("raw page of 5000 without _source", json!(false)),
    ] {
        let body = json!({"size": 5000, "sort": [{"@timestamp": "asc"}], "_source": src, "query": {"match_all": {}}});
        let t = Instant::now();
        let raw = cluster
            .send_raw(
                elasticsearch::http::Method::Post,
                &format!("/{index}/_search"),
                &[],
                Some(serde_json::to_vec(&body).unwrap()),
                None,
            )
            .await
            .unwrap();
        println!(
            "{label}: {:.3} s ({} bytes)",
            t.elapsed().as_secs_f64(),
            raw.body.len()
        );
    }
    println!(
        "relevant events: {relevant} of {} ({:.2}%)",
        docs.len(),
        100.0 * relevant as f64 / docs.len() as f64
    );
    let filter = pushdown(&query, "event.category");
    assert!(!matches!(filter, Filter::MatchAll));
    delete_indices(&cluster, &[&index]).await;
}

/// No cluster needed: over every parsable EQL query of the corpus, the
/// evaluator never matches a generated document that the pushdown filter's
/// in-memory semantics would drop.
#[test]
fn every_corpus_query_filter_keeps_what_the_evaluator_matches() {
    let all = corpus_queries();
    if all.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "corpus missing under CI"
        );
        eprintln!("skipped: ../shared/detection-rules-eql not found");
        return;
    }
    let opts = CompileOptions::default();
    let (mut compiled, mut exercised, mut checked) = (0, 0, 0usize);
    for (i, (name, text, query)) in all.iter().enumerate() {
        let Ok(plan) = compile(query, &Schema::default(), &opts) else {
            continue;
        };
        compiled += 1;
        let filter = pushdown(query, "event.category");
        let vocab = Vocabulary::of(query);
        let mut rng = Rng(1_000 + i as u64);
        let mut hit = false;
        for k in 0..200 {
            let doc = vocab.document(&mut rng, "2024-01-01T00:00:00.000Z", "event.category");
            let event = plan.event(&doc);
            if plan
                .stages
                .iter()
                .chain(plan.until.as_ref())
                .any(|s| s.matches(&event))
            {
                hit = true;
                checked += 1;
                assert!(
                    filter.matches(&doc),
                    "{name} (doc {k}): the filter drops an event the evaluator matches\nquery: {text}\nfilter: {filter:?}\ndoc: {doc}"
                );
            }
        }
        if hit {
            exercised += 1;
        }
    }
    eprintln!(
        "{} corpus queries, {compiled} compiled, {exercised} matched generated events ({checked} matches checked)",
        all.len()
    );
    assert!(compiled > 900, "only {compiled} corpus queries compiled");
    assert!(
        exercised * 3 >= compiled,
        "only {exercised} of {compiled} queries exercised"
    );
}
