//! Lucene passthrough and local meaning.

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::filter::{compile, EvalError, EvalOptions, FieldTypes};

fn types() -> FieldTypes {
    FieldTypes::default()
        .with("process.name", &["keyword"])
        .with("process.command_line", &["wildcard"])
        .with("message", &["text"])
        .with("user.name", &["keyword"])
        .with("port", &["long"])
        .with("@timestamp", &["date"])
}

fn run(q: &str, doc: Value) -> Result<bool, EvalError> {
    let f = to_filter(q, &LuceneOptions::detection_rules());
    let now = Utc.with_ymd_and_hms(2024, 3, 15, 0, 0, 0).unwrap();
    Ok(compile(&f, &types(), &EvalOptions::default())?.matches(&doc, now))
}

#[test]
fn passthrough_is_what_kibana_sends() {
    let f = to_filter("process.name:cmd.exe", &LuceneOptions::detection_rules());
    assert_eq!(
        es_query(&f),
        json!({"bool": {"must": [{"query_string": {
            "query": "process.name:cmd.exe", "analyze_wildcard": true, "time_zone": "Zulu"}}],
            "filter": [], "should": [], "must_not": []}})
    );
    assert_eq!(
        es_query(&to_filter("  ", &LuceneOptions::detection_rules()))["bool"]["must"],
        json!([])
    );
}

#[test]
fn sigma_style_queries_evaluate() {
    let q = r"process.name:(cmd.exe OR powershell.exe) AND process.command_line:*\-enc* AND NOT user.name:SYSTEM";
    let hit = json!({"process": {"name": "cmd.exe", "command_line": "x -enc abc"}, "user": {"name": "bob"}});
    assert!(run(q, hit).unwrap());
    let sys = json!({"process": {"name": "cmd.exe", "command_line": "x -enc abc"}, "user": {"name": "SYSTEM"}});
    assert!(!run(q, sys).unwrap());
    assert!(run("port:[440 TO 450}", json!({"port": 445})).unwrap());
    assert!(!run("port:{445 TO *]", json!({"port": 445})).unwrap());
    assert!(run("port:>=445", json!({"port": 445})).unwrap());
    assert!(run("_exists_:user.name", json!({"user": {"name": "x"}})).unwrap());
    assert!(!run("user.name:*", json!({"user": {}})).unwrap());
    assert!(run(
        "message:\"quick brown\"",
        json!({"message": "The Quick Brown fox"})
    )
    .unwrap());
    assert!(run(
        "@timestamp:[now-1d TO now]",
        json!({"@timestamp": "2024-03-14T12:00:00Z"})
    )
    .unwrap());
    // `a AND b OR c` is `+a +b c`: c alone is not enough
    assert!(!run(
        "process.name:a AND user.name:b OR port:1",
        json!({"port": 1})
    )
    .unwrap());
    assert!(run("NOT process.name:a", json!({})).unwrap());
}

#[test]
fn outside_the_subset_is_an_error_not_an_answer() {
    let doc = json!({"process": {"name": "chmod"}});
    for q in [
        "process.name:/ch.*/",
        "process.name:chmd~",
        r"message:*\\cmd.exe",
    ] {
        assert!(
            matches!(run(q, doc.clone()), Err(EvalError::Unsupported(_))),
            "{q}"
        );
    }
}
