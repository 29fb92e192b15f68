//! Elasticsearch EQL conformance: replays the Elasticsearch QA spec files
//! (`../shared/eql-conformance`) as Elasticsearch runs them (README §2.7)
//! through `detectd::eql::search` and compares the returned event ids
//! (missing-event placeholders as -1) and join keys (as Java strings) exactly.
//! All five suites, 298 cases; each case runs with `result_position` head
//! and tail, and both must give the expected answer.

mod common;

use std::path::Path;

use common::{Case, Suite};
use detectd::eql::compile::{compile, CompileOptions, Plan};
use detectd::eql::schema::Schema;
use detectd::eql::search::{
    search_with, Document, HitEvent, ResultPosition, SearchOptions, SearchResponse,
};
use detectd::eql::value::java_double;
use serde_json::Value as Json;

/// Default `size` of the spec runner.
const DEFAULT_SIZE: usize = 50;

/// Cases of the five suites together (README §1.2).
const TOTAL_CASES: usize = 298;

/// The documents of a suite, each with its index, and one schema per index
/// plus the merged one (Elasticsearch verifies against the merged mapping
/// and evaluates every index with its own).
struct SuiteData {
    docs: Vec<Document>,
    merged: Schema,
    per_index: Vec<(&'static str, Schema)>,
}

fn load(dir: &Path, suite: &Suite) -> SuiteData {
    let mut docs = Vec::new();
    let mut merged = Schema::default();
    let mut per_index = Vec::new();
    for index in suite.indices {
        for (i, source) in common::load_index_docs(dir, index).into_iter().enumerate() {
            let id = match source.get(suite.id_field) {
                Some(Json::Number(n)) => n.to_string(),
                Some(Json::String(s)) => s.clone(),
                _ => i.to_string(),
            };
            docs.push(Document {
                index: index.to_string(),
                id,
                source,
            });
        }
        let schema = common::load_index_schema(dir, index);
        merged.merge(&schema);
        per_index.push((*index, schema));
    }
    // An index's own mapping wins; fields it lacks come from the others.
    for (_, schema) in &mut per_index {
        schema.merge(&merged);
    }
    SuiteData {
        docs,
        merged,
        per_index,
    }
}

/// A join key as the Java runner prints it (`Object.toString`).
fn java_string(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(d)) => java_double(d),
            _ => n.to_string(),
        },
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn event_id(event: &HitEvent, suite: &Suite) -> i64 {
    if event.missing {
        return -1;
    }
    common::event_id(&event.source, suite.id_field)
}

/// Ids and join keys of a response, flattened as the ES runner does.
fn flatten(resp: &SearchResponse, suite: &Suite) -> Result<(Vec<i64>, Vec<String>), String> {
    if let Some(events) = &resp.hits.events {
        return Ok((events.iter().map(|e| event_id(e, suite)).collect(), vec![]));
    }
    let Some(sequences) = &resp.hits.sequences else {
        return Err("response has neither hits.events nor hits.sequences".into());
    };
    let ids = sequences
        .iter()
        .flat_map(|s| s.events.iter().map(|e| event_id(e, suite)))
        .collect();
    let keys = sequences
        .iter()
        .flat_map(|s| s.join_keys.iter().map(java_string))
        .collect();
    Ok((ids, keys))
}

fn run_case(case: &Case, suite: &Suite, data: &SuiteData) -> Result<(), String> {
    let query = detectd::eql::parse(&case.query).map_err(|e| format!("parse error: {e}"))?;
    if let Some(e) = detectd::eql::verify(&query).first() {
        return Err(format!("verification error: {e}"));
    }
    let opts = CompileOptions {
        timestamp_field: "@timestamp".into(),
        tiebreaker_field: suite.tiebreaker.map(str::to_string),
        event_category_field: "event.category".into(),
    };
    let plan = compile(&query, &data.merged, &opts).map_err(|e| format!("compile error: {e}"))?;
    let mut plans: Vec<(&str, Plan)> = Vec::new();
    for (index, schema) in &data.per_index {
        let p = compile(&query, schema, &opts)
            .map_err(|e| format!("compile error for index {index}: {e}"))?;
        plans.push((index, p));
    }
    let plan_for = |doc: &Document| {
        plans
            .iter()
            .find(|(index, _)| *index == doc.index)
            .map_or(&plan, |(_, p)| p)
    };
    for position in [ResultPosition::Head, ResultPosition::Tail] {
        let search = SearchOptions {
            size: case.size.unwrap_or(DEFAULT_SIZE),
            result_position: position,
            max_samples_per_key: case.max_samples_per_key.filter(|n| *n > 0).unwrap_or(1),
            ..SearchOptions::default()
        };
        let resp = search_with(&plan, plan_for, &data.docs, &search)
            .map_err(|e| format!("search error: {e}"))?;
        let (ids, keys) = flatten(&resp, suite)?;
        if !common::matches_expected(case, &ids) {
            return Err(format!(
                "({position:?}) expected {:?}, got {ids:?}",
                case.expected
            ));
        }
        if !case.join_keys.is_empty() && keys != case.join_keys {
            return Err(format!(
                "({position:?}) expected join keys {:?}, got {keys:?}",
                case.join_keys
            ));
        }
    }
    Ok(())
}

/// Runs every case of a suite; returns (passed, failed).
fn run_suite(dir: &Path, suite: &Suite) -> (usize, usize) {
    let cases = common::load_suite_cases(dir, suite);
    let data = load(dir, suite);
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        match run_case(case, suite, &data) {
            Ok(()) => passed += 1,
            Err(why) => {
                failed += 1;
                println!(
                    "FAIL {}/{} ({}): {}\n  query: {}",
                    suite.name,
                    case.name,
                    case.file,
                    why,
                    case.query.replace('\n', "\n         ")
                );
            }
        }
    }
    (passed, failed)
}

#[test]
fn conformance_all_suites() {
    let Some(dir) = common::qa_dir() else {
        return;
    };
    let mut total_passed = 0;
    let mut total_run = 0;
    for suite in &common::ALL_SUITES {
        let (passed, failed) = run_suite(&dir, suite);
        println!(
            "conformance {}: {passed} passed, {failed} failed",
            suite.name
        );
        total_passed += passed;
        total_run += passed + failed;
    }
    println!("conformance total: {total_passed}/{TOTAL_CASES} passed");
    assert_eq!(
        total_run, TOTAL_CASES,
        "the suites should hold {TOTAL_CASES} cases"
    );
    assert_eq!(total_passed, TOTAL_CASES, "conformance cases failed");
}
