//! Tier 3: every Kibana filter of the detection-rules corpus loads, places
//! as Kibana places it, and evaluates locally.
//!
//! The filters: `[[rule.filters]]` of every rule in
//! `../shared/detection-rules-other/` and `../shared/detection-rules-eql/`
//! (`_deprecated` included; today all 53 are in `detection-rules-other`,
//! the EQL rules have none). Each must parse, place (with and without
//! field types) to the query the rule wrote (old top-level shapes moved
//! under `query`), and compile for local evaluation; its positive query must
//! select a document built to hit it (the wildcard's pattern filled in, the
//! field present) and not an empty document. Fails under `CI=true` when the
//! corpus is missing.

use std::path::{Path, PathBuf};

use detectd::filter::{compile, to_dsl, EvalOptions, FieldTypes, Filter, Local, Unmapped};
use detectd::kibana_filter::{build_query_from_filters, parse_filters, PlaceOptions};
use serde_json::{json, Value};

fn corpus_dirs() -> Option<Vec<PathBuf>> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .join("shared");
    let dirs: Vec<PathBuf> = ["detection-rules-other", "detection-rules-eql"]
        .iter()
        .map(|d| shared.join(d))
        .collect();
    if dirs.iter().all(|d| d.is_dir()) {
        return Some(dirs);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("detection-rules corpus missing under {}", shared.display());
    }
    eprintln!("notice: skipping the filters corpus test, corpus not found");
    None
}

/// (file, `filters` as JSON) of every rule with filters.
fn rule_filters(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        if let Some(filters) = doc.get("rule").and_then(|r| r.get("filters")) {
            out.push((
                entry.path().display().to_string(),
                serde_json::to_value(filters).unwrap(),
            ));
        }
    }
    out
}

/// The query a filter wrote: `query`, or its top-level query.
fn written_query(f: &Value) -> Value {
    if let Some(q) = f.get("query") {
        return q.clone();
    }
    let o: serde_json::Map<String, Value> = f
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "meta" | "$state"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(o)
}

/// A document the query selects, for the leaf kinds the corpus uses.
fn hit(query: &Value) -> (String, Value) {
    if let Some(w) = query.get("wildcard").and_then(Value::as_object) {
        let (field, spec) = w.iter().next().unwrap();
        let pattern = spec
            .get("value")
            .or(Some(spec))
            .and_then(Value::as_str)
            .unwrap();
        let mut value = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => value.push_str("xyz"),
                '?' => value.push('C'),
                '\\' => value.extend(chars.next()),
                c => value.push(c),
            }
        }
        return (field.clone(), json!(value));
    }
    if let Some(field) = query.pointer("/exists/field").and_then(Value::as_str) {
        return (field.to_string(), json!("present"));
    }
    panic!("no document generator for {query}");
}

/// `a.b.c = v` as a nested `_source` object.
fn doc_with(field: &str, value: Value) -> Value {
    field
        .rsplit('.')
        .fold(value, |inner, key| json!({ key: inner }))
}

#[test]
fn every_corpus_filter_loads_places_and_evaluates() {
    let Some(dirs) = corpus_dirs() else {
        return;
    };
    let now = chrono::Utc::now();
    let (mut files, mut filters, mut evaluated) = (0, 0, 0);
    for dir in dirs {
        for (file, value) in rule_filters(&dir) {
            files += 1;
            let parsed = parse_filters(&value).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            for (f, raw) in parsed.iter().zip(value.as_array().unwrap()) {
                filters += 1;
                let query = written_query(raw);
                let (field, value) = hit(&query);
                let types = FieldTypes::default().with(&field, &["keyword"]);
                for t in [None, Some(&types)] {
                    let placed = build_query_from_filters(
                        std::slice::from_ref(f),
                        t,
                        &PlaceOptions::default(),
                    )
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                    let clause = placed.filter.iter().chain(&placed.must_not).next().unwrap();
                    assert_eq!(to_dsl(clause), query, "{file}");
                    assert_eq!(placed.must_not.len(), usize::from(f.is_negated()));
                    let Filter::Verbatim(v) = clause else {
                        panic!("{file}: not verbatim")
                    };
                    assert!(matches!(v.local, Local::Tree(_)), "{file}: {:?}", v.local);
                }
                for opts in [
                    EvalOptions::default(),
                    EvalOptions {
                        unmapped: Unmapped::Dynamic,
                    },
                ] {
                    let placed = build_query_from_filters(
                        std::slice::from_ref(f),
                        Some(&types),
                        &PlaceOptions::default(),
                    )
                    .unwrap();
                    let positive = placed.filter.iter().chain(&placed.must_not).next().unwrap();
                    let m =
                        compile(positive, &types, &opts).unwrap_or_else(|e| panic!("{file}: {e}"));
                    let doc = doc_with(&field, value.clone());
                    assert!(m.matches(&doc, now), "{file}: {query} should select {doc}");
                    assert!(
                        !m.matches(&json!({}), now),
                        "{file}: {query} selects an empty doc"
                    );
                    // The whole list's tree: a negated filter keeps the empty doc out of
                    // its exclusion and the hit in it.
                    let whole = compile(&placed.tree(), &types, &opts).unwrap();
                    assert_eq!(whole.matches(&doc, now), !f.is_negated(), "{file}");
                    evaluated += 1;
                }
            }
        }
    }
    eprintln!("filters corpus: {filters} filters in {files} rule files, {evaluated} evaluations");
    assert_eq!(
        (files, filters),
        (21, 53),
        "rule files with filters, filters"
    );
}
