//! What a mapping changes about matching, case by case: each query runs over
//! the same documents with the mapping and without one, and must give what
//! Elasticsearch gives for that mapping (and, where the mapping matters,
//! something else without it). The cases are the issue's examples:
//! `constant_keyword` values absent from `_source`, fields that exist only
//! as an `alias`, IPv4-mapped and uncompressed IPv6 literals against an `ip`
//! field, date comparisons against epoch-millisecond sources, keywords
//! longer than `ignore_above`, `null_value`, `coerce: false`, and the
//! timestamp field being a date without any mapping.

use detectd::eql::compile::{compile, CompileOptions};
use detectd::eql::schema::Schema;
use detectd::eql::search::{search, Document, ResultPosition, SearchOptions};
use serde_json::{json, Value};

/// The `_id`s a query returns over `docs` (ids are `d<n>`, n the position).
fn ids(query: &str, schema: &Schema, docs: &[Value]) -> Vec<String> {
    let ast = detectd::eql::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    assert!(detectd::eql::verify(&ast).is_empty(), "{query}");
    let plan = compile(&ast, schema, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let docs: Vec<Document> = docs
        .iter()
        .enumerate()
        .map(|(i, source)| Document {
            index: "logs".into(),
            id: format!("d{i}"),
            source: source.clone(),
        })
        .collect();
    let opts = SearchOptions {
        size: 100,
        result_position: ResultPosition::Head,
        ..SearchOptions::default()
    };
    let resp = search(&plan, &docs, &opts).unwrap();
    match (&resp.hits.events, &resp.hits.sequences) {
        (Some(events), _) => events.iter().map(|e| e.id.clone()).collect(),
        (None, Some(seqs)) => seqs
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.id.clone()))
            .collect(),
        (None, None) => Vec::new(),
    }
}

fn schema(mapping: Value) -> Schema {
    Schema::from_mapping(&mapping).unwrap()
}

/// `(query, ids with the mapping, ids without it)`.
fn check(mapping: Value, docs: &[Value], cases: &[(&str, &[&str], &[&str])]) {
    let mapped = schema(mapping);
    for (query, with, without) in cases {
        assert_eq!(
            ids(query, &mapped, docs),
            *with,
            "with the mapping: {query}"
        );
        assert_eq!(
            ids(query, &Schema::default(), docs),
            *without,
            "without a mapping: {query}"
        );
    }
}

fn ts(n: i64) -> Value {
    json!(1_700_000_000_000_i64 + n)
}

#[test]
fn constant_keyword_value_is_on_every_document() {
    let docs = [
        json!({"@timestamp": ts(1), "event": {"category": "process"}}),
        json!({"@timestamp": ts(2), "event": {"category": "process"}, "data_stream": {"dataset": "x"}}),
    ];
    check(
        json!({"properties": {"data_stream": {"properties": {
            "dataset": {"type": "constant_keyword", "value": "x"}
        }}}}),
        &docs,
        &[
            (
                r#"any where data_stream.dataset == "x""#,
                &["d0", "d1"],
                &["d1"],
            ),
            (
                r#"any where data_stream.dataset : "X""#,
                &["d0", "d1"],
                &["d1"],
            ),
            (
                r#"any where data_stream.dataset != null"#,
                &["d0", "d1"],
                &["d1"],
            ),
        ],
    );
}

#[test]
fn an_alias_reads_its_target() {
    // ECS aliases: the document holds only the target field.
    let docs = [
        json!({"@timestamp": ts(1), "host": {"hostname": "ws-1"}}),
        json!({"@timestamp": ts(2), "host": {"name": "ws-1"}}),
    ];
    check(
        json!({"properties": {"host": {"properties": {
            "hostname": {"type": "keyword"},
            "name": {"type": "alias", "path": "host.hostname"}
        }}}}),
        &docs,
        &[(r#"any where host.name == "ws-1""#, &["d0"], &["d1"])],
    );
}

#[test]
fn ip_literals_match_every_spelling_of_the_address() {
    let docs = [
        json!({"@timestamp": ts(1), "destination": {"ip": "10.0.0.1"}}),
        json!({"@timestamp": ts(2), "destination": {"ip": "::1"}}),
        json!({"@timestamp": ts(3), "destination": {"ip": "::ffff:10.0.0.1"}}),
        json!({"@timestamp": ts(4), "destination": {"ip": "not an ip"}}),
    ];
    check(
        json!({"properties": {"destination": {"properties": {"ip": {"type": "ip"}}}}}),
        &docs,
        &[
            (
                r#"any where destination.ip == "::ffff:10.0.0.1""#,
                &["d0", "d2"],
                &["d2"],
            ),
            (
                r#"any where destination.ip == "0:0:0:0:0:0:0:1""#,
                &["d1"],
                &[],
            ),
            (
                r#"any where destination.ip == "10.0.0.1""#,
                &["d0", "d2"],
                &["d0"],
            ),
            (
                r#"any where cidrMatch(destination.ip, "10.0.0.0/8")"#,
                &["d0", "d2"],
                &["d0", "d2"],
            ),
            // a malformed value is not indexed: no value at all
            (r#"any where destination.ip == null"#, &["d3"], &[]),
        ],
    );
}

#[test]
fn ipv4_mapped_join_keys_are_one_key() {
    let mapped = schema(json!({"properties": {"source": {"properties": {"ip": {"type": "ip"}}}}}));
    let docs = [
        json!({"@timestamp": ts(1), "event": {"category": "process"}, "source": {"ip": "10.0.0.1"}}),
        json!({"@timestamp": ts(2), "event": {"category": "network"}, "source": {"ip": "::ffff:10.0.0.1"}}),
    ];
    let q = "sequence by source.ip [process where true] [network where true]";
    assert_eq!(ids(q, &mapped, &docs), ["d0", "d1"]);
    assert!(ids(q, &Schema::default(), &docs).is_empty());
}

#[test]
fn dates_compare_as_instants_whatever_the_source_spelling() {
    let docs = [
        // 2026-11-30T09:00:00Z and 11:00 as epoch milliseconds
        json!({"@timestamp": 1_796_029_200_000_i64, "event": {"created": 1_796_029_200_000_i64}}),
        json!({"@timestamp": 1_796_036_400_000_i64, "event": {"created": "2026-11-30T11:00:00Z"}}),
    ];
    check(
        json!({"properties": {"event": {"properties": {"created": {"type": "date"}}}}}),
        &docs,
        &[
            (
                r#"any where event.created < "2026-11-30T10:00:00Z""#,
                &["d0"],
                &[],
            ),
            (
                r#"any where event.created >= "2026-11-30T10:00:00.000+00:00""#,
                &["d1"],
                // a string compared with a string, by code points
                &["d1"],
            ),
            // the timestamp field is a date even without a mapping
            (
                r#"any where @timestamp < "2026-11-30T10:00:00Z""#,
                &["d0"],
                &["d0"],
            ),
            (
                r#"any where @timestamp == "2026-11-30T11:00:00Z""#,
                &["d1"],
                &["d1"],
            ),
        ],
    );
}

#[test]
fn keywords_longer_than_ignore_above_are_not_indexed() {
    let docs = [
        json!({"@timestamp": ts(1), "process": {"command_line": "short"}}),
        json!({"@timestamp": ts(2), "process": {"command_line": "much too long"}}),
        // 5 characters, but 6 UTF-16 code units (one outside the BMP)
        json!({"@timestamp": ts(3), "process": {"command_line": "ab\u{1F600}cd"}}),
        json!({"@timestamp": ts(4), "process": {"command_line": ["much too long", "ok"]}}),
        json!({"@timestamp": ts(5), "file": {"name": "a-very-long-file-name.exe"}}),
    ];
    check(
        json!({"properties": {
            "process": {"properties": {"command_line": {"type": "keyword", "ignore_above": 5}}},
            // dynamic string mapping: text with a keyword sub-field
            "file": {"properties": {"name": {"type": "text", "fields": {
                "keyword": {"type": "keyword", "ignore_above": 10}
            }}}}
        }}),
        &docs,
        &[
            (
                r#"any where process.command_line == "much too long""#,
                &[],
                &["d1", "d3"],
            ),
            (
                r#"any where process.command_line : "*""#,
                &["d0", "d3"],
                &["d0", "d1", "d2", "d3"],
            ),
            (
                r#"any where process.command_line == null"#,
                &["d1", "d2", "d4"],
                &["d4"],
            ),
            (r#"any where file.name : "*.exe""#, &[], &["d4"]),
            (r#"any where file.name.keyword : "*.exe""#, &[], &[]),
        ],
    );
}

#[test]
fn null_value_stands_for_an_explicit_null() {
    let docs = [
        json!({"@timestamp": ts(1), "user": {"domain": null}}),
        json!({"@timestamp": ts(2)}),
        json!({"@timestamp": ts(3), "user": {"domain": ["CORP", null]}}),
    ];
    check(
        json!({"properties": {"user": {"properties": {
            "domain": {"type": "keyword", "null_value": "NULL"}
        }}}}),
        &docs,
        &[
            (r#"any where user.domain == "NULL""#, &["d0", "d2"], &[]),
            (r#"any where user.domain == null"#, &["d1"], &["d0", "d1"]),
        ],
    );
}

#[test]
fn coerce_false_refuses_strings_and_fractions() {
    let docs = [
        json!({"@timestamp": ts(1), "process": {"pid": 5}}),
        json!({"@timestamp": ts(2), "process": {"pid": "5"}}),
        json!({"@timestamp": ts(3), "process": {"pid": 5.0}}),
        json!({"@timestamp": ts(4), "process": {"pid": 5.5}}),
        json!({"@timestamp": ts(5), "process": {"ratio": "0.5"}}),
    ];
    let strict = json!({"properties": {"process": {"properties": {
        "pid": {"type": "long", "coerce": false},
        "ratio": {"type": "double", "coerce": false}
    }}}});
    check(
        strict,
        &docs,
        &[
            (
                r#"any where process.pid == 5"#,
                &["d0", "d2"],
                &["d0", "d1", "d2"],
            ),
            (r#"any where process.ratio == 0.5"#, &[], &["d4"]),
        ],
    );
    // the default coerces: strings parse, fractions truncate
    let lenient = schema(json!({"properties": {"process": {"properties": {
        "pid": {"type": "long"}
    }}}}));
    assert_eq!(
        ids("any where process.pid == 5", &lenient, &docs),
        ["d0", "d1", "d2", "d3"]
    );
}
