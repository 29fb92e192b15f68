//! Loading the Elasticsearch EQL QA spec files (`shared/eql-conformance`):
//! suites, TOML cases, data and mappings, exactly as the Elasticsearch
//! runner loads them (see `eql-conformance/README.md` §2). Shared by the
//! conformance tests of every query kind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use detectd::eql::schema::Schema;
use serde_json::Value as Json;

/// One spec-file case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub file: String,
    pub query: String,
    /// The case's `size`, if present (even 0).
    pub size: Option<usize>,
    /// Acceptable results (one, or several alternatives).
    pub expected: Vec<Vec<i64>>,
    /// Expected join keys rendered as Java strings (empty = not checked).
    pub join_keys: Vec<String>,
    pub max_samples_per_key: Option<usize>,
}

/// One suite of §2.2.
#[derive(Clone, Debug)]
pub struct Suite {
    pub name: &'static str,
    pub files: &'static [&'static str],
    pub indices: &'static [&'static str],
    pub tiebreaker: Option<&'static str>,
    pub id_field: &'static str,
}

pub const MAIN: Suite = Suite {
    name: "main",
    files: &[
        "test_queries.toml",
        "additional_test_queries.toml",
        "test_queries_date.toml",
    ],
    indices: &["endgame-140"],
    tiebreaker: Some("serial_event_id"),
    id_field: "serial_event_id",
};

pub const EXTRA: Suite = Suite {
    name: "extra",
    files: &["test_extra.toml"],
    indices: &["extra"],
    tiebreaker: Some("sequence"),
    id_field: "sequence",
};

pub const MISSING_EVENTS: Suite = Suite {
    name: "missing-events",
    files: &["test_missing_events.toml"],
    indices: &["missing-events"],
    tiebreaker: Some("sequence"),
    id_field: "sequence",
};

pub const SAMPLE: Suite = Suite {
    name: "sample",
    files: &["test_sample.toml"],
    indices: &["sample1", "sample2", "sample3"],
    tiebreaker: None,
    id_field: "id",
};

pub const SAMPLE_MULTI: Suite = Suite {
    name: "sample-multi",
    files: &["test_sample_multi.toml"],
    indices: &["sample-multi"],
    tiebreaker: None,
    id_field: "id",
};

pub const ALL_SUITES: [Suite; 5] = [MAIN, EXTRA, MISSING_EVENTS, SAMPLE, SAMPLE_MULTI];

/// The `es-qa` folder, or `None` (with a notice) when the share is absent
/// outside CI. Panics in CI (`CI=true`), where the share must be present.
pub fn qa_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eql-conformance/es-qa");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "conformance data missing at {} (required in CI)",
            dir.display()
        );
    }
    eprintln!(
        "notice: conformance data not found at {}; skipping",
        dir.display()
    );
    None
}

/// Loads the cases of one spec file.
pub fn load_cases(dir: &Path, file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let text = quote_bare_nulls_in_join_keys(&text);
    let doc: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let Some(queries) = doc.get("queries").and_then(toml::Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let get_str = |k: &str| q.get(k).and_then(toml::Value::as_str).map(str::trim);
        let name = get_str("name")
            .or_else(|| get_str("note"))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{file}#{i}"));
        let query = get_str("query")
            .unwrap_or_else(|| panic!("{file}: case {name} has no query"))
            .to_string();
        let expected = parse_expected(
            q.get("expected_event_ids")
                .unwrap_or_else(|| panic!("{file}: case {name} has no expected_event_ids")),
        );
        let join_keys = q
            .get("join_keys")
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().map(toml_to_java_string).collect())
            .unwrap_or_default();
        let int = |k: &str| {
            q.get(k)
                .and_then(toml::Value::as_integer)
                .map(|n| n.max(0) as usize)
        };
        out.push(Case {
            name,
            file: file.to_string(),
            query,
            size: int("size"),
            expected,
            join_keys,
            max_samples_per_key: int("max_samples_per_key"),
        });
    }
    out
}

/// Loads every case of a suite, checking names are unique.
pub fn load_suite_cases(dir: &Path, suite: &Suite) -> Vec<Case> {
    let mut cases = Vec::new();
    for f in suite.files {
        cases.extend(load_cases(dir, f));
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    for w in names.windows(2) {
        assert_ne!(w[0], w[1], "duplicate case name in suite {}", suite.name);
    }
    cases
}

fn toml_to_java_string(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => other.to_string(),
    }
}

fn parse_expected(v: &toml::Value) -> Vec<Vec<i64>> {
    let arr = v.as_array().cloned().unwrap_or_default();
    if arr.iter().any(|x| x.is_array()) {
        arr.iter()
            .map(|alt| {
                alt.as_array()
                    .map(|a| a.iter().filter_map(toml::Value::as_integer).collect())
                    .unwrap_or_default()
            })
            .collect()
    } else {
        vec![arr.iter().filter_map(toml::Value::as_integer).collect()]
    }
}

/// `test_extra.toml` has bare `null` inside `join_keys` arrays, which TOML
/// does not allow; Elasticsearch compares against the string "null".
pub fn quote_bare_nulls_in_join_keys(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("join_keys") {
                quote_null_tokens(line)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote_null_tokens(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '"' {
            in_str = !in_str;
        }
        if !in_str && line[line.char_indices().nth(i).map_or(0, |(b, _)| b)..].starts_with("null") {
            let before = if i == 0 { ' ' } else { bytes[i - 1] };
            let after = bytes.get(i + 4).copied().unwrap_or(' ');
            if !before.is_alphanumeric() && !after.is_alphanumeric() {
                out.push_str("\"null\"");
                i += 4;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Strips `//` comment lines (Elasticsearch's JSON parser accepts them).
fn strip_line_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The documents of one index, in file order, with the loader's transforms.
pub fn load_index_docs(dir: &Path, index: &str) -> Vec<Json> {
    if index == "endgame-140" {
        let text = std::fs::read_to_string(dir.join("test_data.json")).expect("test_data.json");
        let mut docs: Vec<Json> =
            serde_json::from_str(&strip_line_comments(&text)).expect("test_data.json");
        for d in &mut docs {
            // Windows FILETIME (100 ns ticks since 1601) to epoch millis.
            let ts = d
                .get("timestamp")
                .and_then(Json::as_i64)
                .expect("timestamp");
            let ms = ts.div_euclid(10_000) - 11_644_473_600_000;
            if let Some(obj) = d.as_object_mut() {
                obj.insert("@timestamp".into(), Json::from(ms));
            }
        }
        return docs;
    }
    let path = dir.join("data").join(format!("{index}.data"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&strip_line_comments(&text))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The schema of one index (mapping `#` lines dropped, placeholder type as
/// keyword).
pub fn load_index_schema(dir: &Path, index: &str) -> Schema {
    let path = dir.join("data").join(format!("{index}.mapping"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Schema::from_mapping_text(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Documents (concatenated in index order) and the merged schema of a suite.
pub fn load_suite_data(dir: &Path, suite: &Suite) -> (Vec<Json>, Schema) {
    let mut docs = Vec::new();
    let mut schema = Schema::default();
    for index in suite.indices {
        docs.extend(load_index_docs(dir, index));
        schema.merge(&load_index_schema(dir, index));
    }
    (docs, schema)
}

/// The id of a returned event (`_source[id_field]` as an integer).
pub fn event_id(doc: &Json, id_field: &str) -> i64 {
    doc.get(id_field)
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(-1)
}

/// Whether `got` equals one of the case's alternatives.
pub fn matches_expected(case: &Case, got: &[i64]) -> bool {
    case.expected.iter().any(|alt| alt.as_slice() == got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_nulls_in_join_keys_are_quoted() {
        let t = "join_keys = [null, \"null\", \"a\", null]\nquery = 'x == null'";
        let out = quote_bare_nulls_in_join_keys(t);
        assert!(out.starts_with("join_keys = [\"null\", \"null\", \"a\", \"null\"]"));
        assert!(out.ends_with("query = 'x == null'"));
    }
}
