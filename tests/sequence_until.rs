//! One event that matches both a sequence stage and the `until` condition:
//! who wins. Engines disagree (the Python `eql` engine lets `until` win
//! always); detectd does what Elasticsearch's sequence matcher does,
//! read from its source (`x-pack/plugin/eql/src/main/java/org/elasticsearch/
//! xpack/eql/execution/sequence/` in elastic/elasticsearch):
//!
//! * `SequenceMatcher.match(stage, key, ordinal, hit)`: when a hit takes a
//!   partial sequence to its next stage, `until.before(ordinal)` finds the
//!   nearest until ordinal *strictly before* the hit (`OrdinalGroup.
//!   findBefore` keeps elements with `compareTo(ordinal) < 0`), and the
//!   sequence is rejected if that ordinal lies `between(sequence.ordinal(),
//!   ordinal)`, both ends inclusive (`Ordinal.between`).
//! * `TumblingWindow` fetches the window's until hits (`untilCriterion`)
//!   before it matches the later stages, so the order events arrive in does
//!   not matter.
//!
//! Hence: an event that *completes* a sequence and matches `until`
//! completes it (its own until ordinal is not before itself); an event that
//! fills an *earlier* stage and matches `until` dooms that sequence (the
//! until ordinal equals the sequence's last ordinal, and `between` is
//! inclusive), so it never completes; and an `until` event of the same key
//! strictly between two stages rejects the sequence.

use detectd::eql::compile::{compile, CompileOptions};
use detectd::eql::schema::Schema;
use detectd::eql::search::{search, Document, ResultPosition, SearchOptions};
use serde_json::json;

/// Events: (id, category, stop flag), one millisecond apart, all of user
/// `u`. Returns the ids of every sequence found, in order.
fn sequences(query: &str, events: &[(u64, &str, bool)]) -> Vec<Vec<u64>> {
    let ast = detectd::eql::parse(query).unwrap();
    assert!(detectd::eql::verify(&ast).is_empty());
    let opts = CompileOptions {
        tiebreaker_field: Some("seq".into()),
        ..CompileOptions::default()
    };
    let plan = compile(&ast, &Schema::default(), &opts).unwrap();
    let docs: Vec<Document> = events
        .iter()
        .map(|(id, category, stop)| Document {
            index: "logs".into(),
            id: id.to_string(),
            source: json!({
                "@timestamp": 1_000 + id, "seq": id, "user": "u",
                "event": {"category": category}, "stop": stop
            }),
        })
        .collect();
    let resp = search(
        &plan,
        &docs,
        &SearchOptions {
            size: 100,
            result_position: ResultPosition::Head,
            ..SearchOptions::default()
        },
    )
    .unwrap();
    resp.hits
        .sequences
        .unwrap_or_default()
        .iter()
        .map(|s| s.events.iter().map(|e| e.id.parse().unwrap()).collect())
        .collect()
}

const TWO: &str =
    "sequence by user [process where true] [file where true] until [any where stop == true]";
const THREE: &str =
    "sequence by user [process where true] [file where true] [network where true] until [any where stop == true]";

#[test]
fn the_event_completing_a_sequence_completes_it_even_if_it_matches_until() {
    assert_eq!(
        sequences(TWO, &[(1, "process", false), (2, "file", true)]),
        [[1, 2]]
    );
    assert_eq!(
        sequences(
            THREE,
            &[
                (1, "process", false),
                (2, "file", false),
                (3, "network", true)
            ]
        ),
        [[1, 2, 3]]
    );
}

#[test]
fn an_event_filling_an_earlier_stage_and_matching_until_dooms_its_sequence() {
    // first stage
    assert!(sequences(TWO, &[(1, "process", true), (2, "file", false)]).is_empty());
    // middle stage
    assert!(sequences(
        THREE,
        &[
            (1, "process", false),
            (2, "file", true),
            (3, "network", false)
        ]
    )
    .is_empty());
    // a later start of the same key is not affected
    assert_eq!(
        sequences(
            TWO,
            &[
                (1, "process", true),
                (2, "process", false),
                (3, "file", false)
            ]
        ),
        [[2, 3]]
    );
}

#[test]
fn an_until_event_between_two_stages_rejects_the_sequence() {
    assert!(sequences(
        TWO,
        &[
            (1, "process", false),
            (2, "registry", true),
            (3, "file", false)
        ]
    )
    .is_empty());
    // after the sequence completed, until changes nothing
    assert_eq!(
        sequences(
            TWO,
            &[
                (1, "process", false),
                (2, "file", false),
                (3, "registry", true)
            ]
        ),
        [[1, 2]]
    );
}
