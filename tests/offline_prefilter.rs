//! The offline prefilter (`offline::prefilter`) changes no answer: every
//! Elasticsearch QA case, over its suite's data as NDJSON without a
//! mapping (where `detectd query` uses the prefilter), in both result
//! positions, gives the same response with the prefilter as without it —
//! while the prefilter does rule lines out.

mod common;

use detectd::eql::compile::{compile, CompileOptions, PlanSet};
use detectd::eql::schema::Schema;
use detectd::eql::search::{ResultPosition, SearchOptions};
use detectd::offline::{run_query, Input, Prefilter, Threads};

const DEFAULT_SIZE: usize = 50;

fn answer(
    plans: &PlanSet,
    inputs: &[Input],
    opts: &SearchOptions,
    prefilter: Option<&Prefilter>,
) -> String {
    let outcome = run_query(
        plans,
        inputs,
        opts,
        false,
        prefilter,
        Threads::new(2),
        |_| {},
    )
    .unwrap();
    serde_json::to_string(&outcome.response).unwrap()
}

#[test]
fn every_qa_case_answers_the_same_with_the_prefilter() {
    let Some(qa) = common::qa_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut compared, mut prefiltered, mut ruled_out) = (0usize, 0usize, 0u64);
    for suite in common::ALL_SUITES {
        let mut inputs = Vec::new();
        let mut lines: Vec<String> = Vec::new();
        for index in suite.indices {
            let path = dir.path().join(index);
            let text: String = common::load_index_docs(&qa, index)
                .iter()
                .map(|d| serde_json::to_string(d).unwrap() + "\n")
                .collect();
            lines.extend(text.lines().map(str::to_string));
            std::fs::write(&path, text).unwrap();
            inputs.push(Input::File(path));
        }
        let options = CompileOptions {
            tiebreaker_field: suite.tiebreaker.map(str::to_string),
            ..CompileOptions::default()
        };
        for case in common::load_suite_cases(&qa, &suite) {
            let Ok(ast) = detectd::eql::parse(&case.query) else {
                continue;
            };
            let Ok(plan) = compile(&ast, &Schema::default(), &options) else {
                continue;
            };
            let plans = PlanSet::single(plan);
            let Some(prefilter) = Prefilter::for_query(&ast, &options) else {
                continue;
            };
            prefiltered += 1;
            ruled_out += lines
                .iter()
                .filter(|l| !prefilter.may_match(l.as_bytes()))
                .count() as u64;
            for position in [ResultPosition::Head, ResultPosition::Tail] {
                let opts = SearchOptions {
                    size: case.size.unwrap_or(DEFAULT_SIZE),
                    result_position: position,
                    max_samples_per_key: case.max_samples_per_key.filter(|n| *n > 0).unwrap_or(1),
                    ..SearchOptions::default()
                };
                let without = answer(&plans, &inputs, &opts, None);
                let with = answer(&plans, &inputs, &opts, Some(&prefilter));
                assert_eq!(
                    with, without,
                    "{} ({}): {} with the prefilter",
                    case.name, suite.name, case.query
                );
                compared += 1;
            }
        }
    }
    eprintln!("{prefiltered} cases with a prefilter, {compared} answers compared, {ruled_out} lines ruled out");
    // most cases name a category or a string: the comparison must be broad
    assert!(prefiltered >= 150, "{prefiltered}");
    assert!(ruled_out > 5_000, "{ruled_out}");
}
