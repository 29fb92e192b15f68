//! `decode_event` against `build_event` on the Elasticsearch QA data: every
//! document of every conformance index, decoded for the plan of every
//! conformance query of its suite (each with the suite's mapping, so
//! aliases, multi-fields, `null_value`s, dotted keys and multi-values are
//! covered), compact and pretty-printed.

mod common;

use std::collections::HashSet;

use detectd::eql::compile::{compile, CompileOptions};
use serde_json::Value as Json;

#[test]
fn decoder_agrees_with_build_event_on_all_conformance_data() {
    let Some(dir) = common::qa_dir() else {
        return;
    };
    let mut plans = 0;
    let mut checked = 0;
    let mut with_values = 0;
    for suite in &common::ALL_SUITES {
        let (docs, schema) = common::load_suite_data(&dir, suite);
        let lines: Vec<(Json, Vec<u8>, Vec<u8>)> = docs
            .into_iter()
            .map(|d| {
                let compact = serde_json::to_vec(&d).expect("doc serialises");
                let pretty = serde_json::to_vec_pretty(&d).expect("doc serialises");
                (d, compact, pretty)
            })
            .collect();
        let opts = CompileOptions {
            timestamp_field: "@timestamp".into(),
            tiebreaker_field: suite.tiebreaker.map(str::to_string),
            event_category_field: "event.category".into(),
        };
        // queries reading the same fields give the same events
        let mut seen_fields = HashSet::new();
        for case in common::load_suite_cases(&dir, suite) {
            let Ok(query) = detectd::eql::parse(&case.query) else {
                continue;
            };
            let Ok(plan) = compile(&query, &schema, &opts) else {
                continue;
            };
            let fields = plan.fields();
            let names: Vec<String> = fields.specs().iter().map(|s| s.name.clone()).collect();
            if !seen_fields.insert(names) {
                continue;
            }
            plans += 1;
            for (doc, compact, pretty) in &lines {
                let built = fields.build_event(doc);
                for line in [compact, pretty] {
                    let decoded = fields.decode_event(line).unwrap_or_else(|e| {
                        panic!("{}/{}: {e}", suite.name, case.name);
                    });
                    assert_eq!(
                        decoded,
                        built,
                        "{}/{}: {}",
                        suite.name,
                        case.name,
                        String::from_utf8_lossy(compact)
                    );
                }
                checked += 1;
                with_values += usize::from((0..fields.len()).any(|s| !built.get(s).is_empty()));
            }
        }
    }
    assert!(plans > 50, "only {plans} distinct plans");
    assert!(with_values * 2 > checked, "most events must have values");
    eprintln!("{checked} (document, plan) pairs agree over {plans} distinct field tables");
}

/// The raw `extra.data` text, document by document as written (not
/// re-serialised), so dotted keys and multi-values reach the decoder in the
/// file's own spelling.
#[test]
fn decoder_agrees_on_extra_data_as_written() {
    let Some(dir) = common::qa_dir() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("data/extra.data")).expect("extra.data");
    let docs: Vec<Json> = serde_json::from_str(&text).expect("extra.data parses");
    let schema = common::load_index_schema(&dir, "extra");
    let opts = CompileOptions {
        timestamp_field: "@timestamp".into(),
        tiebreaker_field: Some("sequence".into()),
        event_category_field: "event.category".into(),
    };
    let query = detectd::eql::parse(
        "any where process.pid == 1 or transID in (1234, 1) or tags : \"tag*\" or \
         optional_tags == null or date_tags > \"1970\" or ?optional_field_default_null == null",
    )
    .expect("query parses");
    let plan = compile(&query, &schema, &opts).expect("query compiles");
    // each document's own text: split the top-level array at `},\n {`
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let pieces: Vec<String> = inner
        .split("\n },")
        .map(|p| {
            let p = p.trim().trim_end_matches(',');
            if p.ends_with('}') {
                p.to_string()
            } else {
                format!("{p}\n }}")
            }
        })
        .collect();
    assert_eq!(pieces.len(), docs.len(), "one piece per document");
    for (piece, doc) in pieces.iter().zip(&docs) {
        let reparsed: Json = serde_json::from_str(piece).expect("piece parses");
        assert_eq!(&reparsed, doc);
        assert_eq!(
            plan.fields()
                .decode_event(piece.as_bytes())
                .expect("piece decodes"),
            plan.fields().build_event(doc),
            "{piece}"
        );
    }
}
