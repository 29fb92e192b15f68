//! Every KQL query of the detection-rules corpus, on documents made from
//! its own literals, selects the same documents on the cluster as in the
//! local evaluator.
//!
//! The index mapping is built from the corpus's field names with ECS-style
//! type guesses (no mapping ships with the corpus), and the documents from
//! each query's literals (`detectd::synth::kql_events`: one per leaf, one
//! with every leaf, one with none), all tagged with the query's number. Documents the cluster rejects (a value
//! that does not fit the guessed type) are left out on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::Utc;
use detectd::filter::{compile, EvalOptions, FieldTypes};
use detectd::kql::{self, KqlOptions, Node};
use detectd::synth::kql_events::{self, QueryLeaves};
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/detection-rules-other");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("detection-rules corpus missing at {}", dir.display());
    }
    eprintln!("notice: skipping, {} not found", dir.display());
    None
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("toml") {
            out.push(p);
        }
    }
}

fn corpus_queries(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    toml_files(dir, &mut files);
    let mut out = Vec::new();
    for f in files {
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let Some(rule) = doc.get("rule") else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) == Some("kuery") {
            out.extend(
                rule.get("query")
                    .and_then(|q| q.as_str())
                    .map(str::to_string),
            );
        }
        out.extend(
            rule.get("threat_query")
                .and_then(|q| q.as_str())
                .map(str::to_string),
        );
    }
    out
}

#[tokio::test]
async fn corpus_kql_queries_agree_with_the_cluster() {
    let Some(dir) = corpus_dir() else { return };
    let Some(cluster) = connect_or_skip("corpus_kql_queries_agree_with_the_cluster").await else {
        return;
    };
    let queries = corpus_queries(&dir);
    let parsed: Vec<Node> = queries.iter().map(|q| kql::parse(q).unwrap()).collect();
    let all_leaves: Vec<QueryLeaves> = parsed.iter().map(QueryLeaves::of).collect();
    let mut guessed: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut nested = BTreeSet::new();
    for ls in &all_leaves {
        guessed.extend(ls.guessed_types().map(|(f, t)| (f.to_string(), t)));
        nested.extend(ls.nested.iter().cloned());
    }
    guessed.insert("@timestamp".into(), "date");
    guessed.insert("message".into(), "match_only_text");
    guessed.insert("qid".into(), "keyword");
    let index = unique_index("kql-corpus");
    create_index(&cluster, &index, kql_events::mapping(&guessed, &nested)).await;
    let mapping = cluster
        .request_json(Method::Get, &format!("/{index}/_mapping"), &[], None)
        .await
        .unwrap();
    let types = FieldTypes::from_mapping(&mapping);
    let now = Utc::now();

    // documents per query
    let mut docs: Vec<(String, usize, Value)> = Vec::new();
    for (qi, ls) in all_leaves.iter().enumerate() {
        for (n, mut d) in ls.documents(&types, &nested, now).into_iter().enumerate() {
            d.insert("qid".into(), json!(qi.to_string()));
            docs.push((format!("q{qi}-{n}"), qi, Value::Object(d)));
        }
    }

    // index, keeping what the cluster accepts
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    for chunk in docs.chunks(1000) {
        let mut body = Vec::new();
        for (id, _, d) in chunk {
            body.extend(
                serde_json::to_vec(&json!({"index": {"_index": index, "_id": id}})).unwrap(),
            );
            body.push(b'\n');
            body.extend(serde_json::to_vec(d).unwrap());
            body.push(b'\n');
        }
        let raw = cluster
            .send_raw(
                Method::Post,
                "/_bulk",
                &[],
                Some(body),
                Some("application/x-ndjson"),
            )
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&raw.body).unwrap();
        for item in v["items"].as_array().into_iter().flatten() {
            let it = &item["index"];
            if it["status"].as_u64().is_some_and(|s| s < 300) {
                accepted.extend(it["_id"].as_str().map(str::to_string));
            }
        }
    }
    refresh(&cluster, &index).await;

    let opts = KqlOptions::detection_rules();
    let (mut agree, mut both_refused, mut selective) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for (qi, q) in queries.iter().enumerate() {
        let filter = kql::lower(&parsed[qi], Some(&types), &opts).unwrap();
        let body = json!({"size": 1000, "_source": false, "query": {"bool": {"filter": [
            kql::es_query(&filter), {"term": {"qid": qi.to_string()}}]}}});
        let on_cluster: Result<BTreeSet<String>, String> = cluster
            .request_json(Method::Post, &format!("/{index}/_search"), &[], Some(&body))
            .await
            .map(|v| {
                v["hits"]["hits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h["_id"].as_str().map(str::to_string))
                    .collect()
            })
            .map_err(|e| e.to_string());
        let mine: Vec<&(String, usize, Value)> = docs
            .iter()
            .filter(|(id, d_qi, _)| *d_qi == qi && accepted.contains(id))
            .collect();
        let local = compile(&filter, &types, &EvalOptions::default()).map(|m| {
            mine.iter()
                .filter(|(_, _, d)| m.matches(d, now))
                .map(|(id, _, _)| id.clone())
                .collect::<BTreeSet<_>>()
        });
        match (&on_cluster, &local) {
            (Ok(c), Ok(l)) if c == l => {
                agree += 1;
                if !c.is_empty() && c.len() < mine.len() {
                    selective += 1;
                }
            }
            (Err(_), Err(_)) => both_refused += 1,
            (c, l) => disagreements.push(format!("{q}\n    cluster: {c:?}\n    local: {l:?}")),
        }
    }
    eprintln!(
        "KQL corpus agreement: {} queries, {} documents ({} accepted): {agree} agree \
         ({selective} select some but not all of their documents), {both_refused} refused by both, {} disagree",
        queries.len(),
        docs.len(),
        accepted.len(),
        disagreements.len()
    );
    delete_indices(&cluster, &[&index]).await;
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
