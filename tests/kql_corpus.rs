//! Tier 3: every KQL query of the detection-rules corpus parses and
//! translates, and compiles for local evaluation.
//!
//! The queries: `query` of every rule with `language = "kuery"` (query,
//! threshold, new_terms and threat_match rules) and every `threat_query`,
//! from `../shared/detection-rules-other/`. Each is translated twice: with
//! no index pattern (as Kibana without field types) and with field types
//! guessed from ECS naming conventions ([`ecs_guess`]: dates, IPs, ports and
//! counts, text and wildcard fields by name, keyword otherwise) over every
//! field the corpus names. Fails under `CI=true` when the corpus is missing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use detectd::filter::{compile, to_dsl, EvalOptions, FieldTypes};
use detectd::kql::{self, KqlOptions, LitValue, Node};
use detectd::synth::kql_events::ecs_guess;

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("shared").join("detection-rules-other"))?;
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("detection-rules corpus missing at {}", dir.display());
    }
    eprintln!(
        "notice: skipping KQL corpus test, {} not found",
        dir.display()
    );
    None
}

/// (file, which field, query text) of every KQL query in the corpus.
fn kql_queries(dir: &PathBuf) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let Some(rule) = doc.get("rule") else {
            continue;
        };
        let name = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .display()
            .to_string();
        if rule.get("language").and_then(|l| l.as_str()) == Some("kuery") {
            if let Some(q) = rule.get("query").and_then(|q| q.as_str()) {
                out.push((name.clone(), "query", q.to_string()));
            }
        }
        if let Some(q) = rule.get("threat_query").and_then(|q| q.as_str()) {
            out.push((name, "threat_query", q.to_string()));
        }
    }
    out
}

/// The field names a query uses (nested groups' paths into `nested`).
fn field_names(
    node: &Node,
    prefix: Option<&str>,
    out: &mut BTreeSet<String>,
    nested: &mut BTreeSet<String>,
) {
    let name = |l: &kql::Literal| match (prefix, &l.value) {
        (_, LitValue::Wildcard(_)) | (_, LitValue::Null) => None,
        (Some(p), _) => Some(format!("{p}.{}", l.to_plain_string())),
        (None, _) => Some(l.to_plain_string()),
    };
    match node {
        Node::Or { clauses, .. } | Node::And { clauses, .. } => clauses
            .iter()
            .for_each(|c| field_names(c, prefix, out, nested)),
        Node::Not { inner, .. } => field_names(inner, prefix, out, nested),
        Node::Nested { path, query, .. } => {
            let p = name(path).unwrap_or_default();
            nested.insert(p.clone());
            field_names(query, Some(&p), out, nested)
        }
        Node::Is { field, .. } | Node::Range { field, .. } | Node::Exists { field, .. } => {
            out.extend(name(field))
        }
    }
}

#[test]
fn every_corpus_kql_query_parses_translates_and_compiles() {
    let Some(dir) = corpus_dir() else {
        return;
    };
    let queries = kql_queries(&dir);
    let mut failures = Vec::new();
    let mut parsed = Vec::new();
    for (file, which, q) in &queries {
        match kql::parse(q) {
            Ok(n) => parsed.push((file, which, q, n)),
            Err(e) => failures.push(format!("{file} {which}: parse: {e}")),
        }
    }
    let (mut names, mut nested) = (BTreeSet::new(), BTreeSet::new());
    for (.., n) in &parsed {
        field_names(n, None, &mut names, &mut nested);
    }
    let mut types = FieldTypes::default();
    for n in &names {
        types = types.with(n, &[ecs_guess(n)]);
    }
    for n in &nested {
        types = types.with(n, &["nested"]);
    }
    let opts = KqlOptions::detection_rules();
    let (mut plain_ok, mut typed_ok, mut compiled) = (0, 0, 0);
    for (file, which, _q, n) in &parsed {
        match kql::lower(n, None, &opts) {
            Ok(f) => {
                assert!(to_dsl(&f).is_object());
                plain_ok += 1;
            }
            Err(e) => failures.push(format!("{file} {which}: untyped: {e}")),
        }
        match kql::lower(n, Some(&types), &opts) {
            Ok(f) => {
                assert!(to_dsl(&f).is_object());
                typed_ok += 1;
                match compile(&f, &types, &EvalOptions::default()) {
                    Ok(_) => compiled += 1,
                    Err(e) => failures.push(format!("{file} {which}: compile: {e}")),
                }
            }
            Err(e) => failures.push(format!("{file} {which}: typed: {e}")),
        }
    }
    eprintln!(
        "KQL corpus: {} queries, {} parsed, {} translated untyped, {} translated with ECS-guessed types \
         ({} fields, {} nested), {} compiled for local evaluation",
        queries.len(),
        parsed.len(),
        plain_ok,
        typed_ok,
        names.len(),
        nested.len(),
        compiled
    );
    assert_eq!(queries.len(), 801, "KQL queries in the corpus");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The corpus's Lucene rules: passed through as Kibana does; the one rule
/// (deprecated) uses a regular expression, which cannot be evaluated
/// offline and says so.
#[test]
fn corpus_lucene_queries_pass_through() {
    use detectd::filter::Filter;
    use detectd::kql::lucene::{self, LuceneOptions};
    let Some(dir) = corpus_dir() else {
        return;
    };
    let mut seen = 0;
    for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let doc: toml::Value =
            toml::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
        let Some(rule) = doc.get("rule") else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) != Some("lucene") {
            continue;
        }
        let q = rule.get("query").and_then(|q| q.as_str()).unwrap();
        seen += 1;
        let f = lucene::to_filter(q, &LuceneOptions::detection_rules());
        let dsl = lucene::es_query(&f);
        assert_eq!(
            dsl["bool"]["must"][0]["query_string"]["query"],
            serde_json::json!(q)
        );
        assert_eq!(
            dsl["bool"]["must"][0]["query_string"]["analyze_wildcard"],
            serde_json::json!(true)
        );
        let Filter::QueryString(qs) = &f else {
            panic!("{f:?}")
        };
        match &qs.local {
            detectd::filter::Local::Unsupported(why) => {
                assert!(why.contains("regular expression"), "{why}")
            }
            other => panic!("expected the regex to be refused offline: {other:?}"),
        }
    }
    eprintln!("Lucene corpus: {seen} queries passed through");
    assert_eq!(seen, 1);
}
