//! Unit tests of the sequence matcher, many hand-translated from the
//! Elasticsearch QA spec files (`test_extra.toml`, `test_missing_events.toml`).
use super::*;

type Matcher = SequenceMatcher<String, u64>;

fn ord(ts: i64, id: u64) -> Ordinal {
    Ordinal::new(ts, Some(TieBreaker::Int(id as i64)), id)
}

fn spec(stages: &[StageSpec], until: bool, maxspan: Option<u64>) -> SequenceSpec {
    SequenceSpec {
        stages: stages.to_vec(),
        has_until: until,
        maxspan_ms: maxspan,
    }
}

fn pos() -> StageSpec {
    StageSpec::positive()
}

fn miss() -> StageSpec {
    StageSpec::missing()
}

/// Flattens results as the ES spec tests do: ids, -1 for placeholders.
fn ids(mut matches: Vec<SequenceMatch<String, u64>>) -> Vec<i64> {
    matches.sort_by(|a, b| a.es_order(b));
    matches
        .iter()
        .flat_map(|m| m.events.iter().map(|e| e.map_or(-1, |id| id as i64)))
        .collect()
}

fn keys_of(mut matches: Vec<SequenceMatch<String, u64>>) -> Vec<String> {
    matches.sort_by(|a, b| a.es_order(b));
    matches.into_iter().map(|m| m.key).collect()
}

/// A tagged event: stage `i` matches when `stage_tags[i]` equals the tag
/// (several stages may share a tag), `until` when `until_tag` does.
struct Tagged<'a> {
    id: u64,
    ts: i64,
    tag: &'a str,
    key: &'a str,
}

fn ev<'a>(id: u64, ts: i64, tag: &'a str, key: &'a str) -> Tagged<'a> {
    Tagged { id, ts, tag, key }
}

fn hits_for(t: &Tagged, stage_tags: &[&str], until_tag: Option<&str>) -> Vec<StageHit<String>> {
    let mut hits: Vec<StageHit<String>> = stage_tags
        .iter()
        .enumerate()
        .filter(|(_, tag)| **tag == t.tag)
        .map(|(i, _)| StageHit {
            stage: HitStage::Stage(i),
            keys: vec![t.key.to_string()],
        })
        .collect();
    if until_tag == Some(t.tag) {
        hits.push(StageHit {
            stage: HitStage::Until,
            keys: vec![t.key.to_string()],
        });
    }
    hits
}

fn run_tagged(
    spec: SequenceSpec,
    stage_tags: &[&str],
    until_tag: Option<&str>,
    events: &[Tagged],
) -> Vec<SequenceMatch<String, u64>> {
    let mut m = Matcher::new(spec, Limits::default()).unwrap();
    for t in events {
        m.push(t.id, &ord(t.ts, t.id), &hits_for(t, stage_tags, until_tag));
    }
    m.finish();
    m.drain_completed()
}

/// `missing-events.data`, group test4 (timestamps in ms).
fn test4() -> Vec<Tagged<'static>> {
    let tags = [
        "A", "B", "M1", "B", "C", "M2", "D", "M1", "C", "B", "C", "D", "A", "B", "M3", "C", "D",
        "M4",
    ];
    tags.iter()
        .enumerate()
        .map(|(i, tag)| ev(i as u64 + 1, i as i64 + 1, tag, ""))
        .collect()
}

#[test]
fn ordinal_orders_tiebreaker_before_missing_then_index() {
    let a = Ordinal::new(5, Some(TieBreaker::Int(2)), 9);
    let b = Ordinal::new(5, Some(TieBreaker::Int(3)), 1);
    let c = Ordinal::new(5, None, 0);
    let d = Ordinal::new(4, None, 10);
    let mut v = vec![c.clone(), b.clone(), a.clone(), d.clone()];
    v.sort();
    assert_eq!(v, vec![d, a, b, c]);
    let e = Ordinal::new(5, Some(TieBreaker::Int(2)), 10);
    assert!(Ordinal::new(5, Some(TieBreaker::Int(2)), 9) < e);
    assert!(TieBreaker::Int(2) < TieBreaker::Float(2.5));
    assert!(TieBreaker::Float(1e9) < TieBreaker::Str("0".into()));
}

#[test]
fn spec_errors() {
    let err = Matcher::new(spec(&[miss(), miss()], false, Some(10)), Limits::default());
    assert_eq!(err.unwrap_err(), SequenceSpecError::NoPositiveStage);
    let err = Matcher::new(
        spec(&[pos(), pos().with_runs(0)], false, None),
        Limits::default(),
    );
    assert_eq!(err.unwrap_err(), SequenceSpecError::BadRuns(0));
    let err = Matcher::new(
        spec(&[pos().with_runs(101)], false, None),
        Limits::default(),
    );
    assert_eq!(err.unwrap_err(), SequenceSpecError::BadRuns(101));
}

// test_extra.toml "basic": sequence by transID [REQUEST][ERROR][STAT],
// with the multi-valued transID of events 1 and 3 fanned out.
#[test]
fn extra_basic_with_multivalued_keys() {
    let mut m = Matcher::new(spec(&[pos(), pos(), pos()], false, None), Limits::default()).unwrap();
    let s = |i: usize, keys: &[&str]| StageHit {
        stage: HitStage::Stage(i),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    };
    m.push(1, &ord(1, 1), &[s(0, &["1234", "599999"])]);
    m.push(2, &ord(2, 2), &[s(1, &["1234"])]);
    m.push(3, &ord(3, 3), &[s(2, &["1234", "9876554"])]);
    m.push(4, &ord(10, 4), &[s(0, &["1235"])]);
    m.push(5, &ord(11, 5), &[s(1, &["1235"])]);
    m.push(6, &ord(11, 6), &[s(2, &["1235"])]);
    m.finish();
    let done = m.drain_completed();
    assert_eq!(keys_of(done.clone()), vec!["1234", "1235"]);
    assert_eq!(ids(done), vec![1, 2, 3, 4, 5, 6]);
}

// test_extra.toml "sequenceAllKeysOptional": [process where transID == 2]
// [file where transID == 0] with runs=2, by (entity_id, pid). Results come
// back ordered by their last event, not their first (11 is older than 12).
#[test]
fn runs_expand_and_results_order_by_last_ordinal() {
    let stages = [pos(), pos().with_runs(2)];
    let events = [
        ev(11, 1, "P", "null,null"),
        ev(12, 2, "P", "null,123"),
        ev(13, 3, "F", "null,123"),
        ev(14, 4, "F", "null,123"),
        ev(15, 5, "F", "null,123"),
        ev(16, 6, "F", "null,null"),
        ev(17, 6, "F", "null,null"),
        ev(18, 7, "P", "512,123"),
        ev(19, 8, "F", "512,123"),
        ev(20, 9, "F", "512,123"),
        ev(21, 10, "F", "512,123"),
        ev(22, 11, "F", "512,123"),
        ev(23, 12, "F", "512,123"),
    ];
    let m = Matcher::new(spec(&stages, false, None), Limits::default()).unwrap();
    assert_eq!(m.expanded_len(), 3);
    let done = run_tagged(spec(&stages, false, None), &["P", "F"], None, &events);
    assert_eq!(
        keys_of(done.clone()),
        vec!["null,123", "null,null", "512,123"]
    );
    assert_eq!(ids(done), vec![12, 13, 14, 11, 16, 17, 18, 19, 20]);
}

// test_extra.toml "sequenceWithOptionalFieldsAndUntil_1/_2".
#[test]
fn until_drops_pending_but_not_completed() {
    let stages = [pos(), pos().with_runs(2)];
    let base = |until_id: u64| {
        let events = [
            (11, 1, "P", "null,null"),
            (12, 2, "P", "null,123"),
            (13, 3, "F", "null,123"),
            (14, 4, "F", "null,123"),
            (16, 6, "F", "null,null"),
            (17, 6, "F", "null,null"),
            (18, 7, "P", "512,123"),
            (19, 8, "F", "512,123"),
            (20, 9, "F", "512,123"),
            (21, 10, "F", "512,123"),
        ];
        let mut m = Matcher::new(spec(&stages, true, None), Limits::default()).unwrap();
        for (id, ts, tag, key) in events {
            let t = ev(id, ts, tag, key);
            let mut hits = hits_for(&t, &["P", "F"], None);
            if id == until_id {
                hits.push(StageHit {
                    stage: HitStage::Until,
                    keys: vec![key.to_string()],
                });
            }
            m.push(id, &ord(ts, id), &hits);
        }
        m.finish();
        ids(m.drain_completed())
    };
    // The until event is the last event of the sequence: no effect.
    assert_eq!(base(20), vec![12, 13, 14, 11, 16, 17, 18, 19, 20]);
    // The until event is the middle event: that sequence is gone.
    assert_eq!(base(19), vec![12, 13, 14, 11, 16, 17]);
    // An until event before the sequence starts has no effect.
    assert_eq!(base(13), vec![11, 16, 17, 18, 19, 20]);
}

#[test]
fn until_on_first_event_kills_the_sequence_it_starts() {
    // Elasticsearch's `between` is inclusive: an until hit on the same
    // event as a non-final stage rejects the sequence at its next stage.
    let done = run_tagged(
        spec(&[pos(), pos()], true, None),
        &["A", "B"],
        Some("A"),
        &[ev(1, 1, "A", "k"), ev(2, 2, "B", "k")],
    );
    assert!(done.is_empty());
    // An until hit of another key does nothing.
    let mut m = Matcher::new(spec(&[pos(), pos()], true, None), Limits::default()).unwrap();
    m.push(
        1,
        &ord(1, 1),
        &hits_for(&ev(1, 1, "A", "k"), &["A", "B"], None),
    );
    m.push(
        2,
        &ord(2, 2),
        &[StageHit {
            stage: HitStage::Until,
            keys: vec!["other".into()],
        }],
    );
    m.push(
        3,
        &ord(3, 3),
        &hits_for(&ev(3, 3, "B", "k"), &["A", "B"], None),
    );
    assert_eq!(ids(m.drain_completed()), vec![1, 3]);
    assert_eq!(m.stats().rejected_until, 0);
}

// test_extra.toml "sequenceWithMultivalue_ManyToMany": [REQUEST][file] by tags.
#[test]
fn one_event_completes_sequences_of_several_keys() {
    let mut m = Matcher::new(spec(&[pos(), pos()], false, None), Limits::default()).unwrap();
    let s = |i: usize, keys: &[&str]| StageHit {
        stage: HitStage::Stage(i),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    };
    m.push(1, &ord(1, 1), &[s(0, &["tag1", "tag2"])]);
    m.push(4, &ord(10, 4), &[s(0, &["tag3", "tag4"])]);
    m.push(23, &ord(12, 23), &[s(1, &["tag1", "tag3", "tag4"])]);
    let done = m.drain_completed();
    assert_eq!(keys_of(done.clone()), vec!["tag1", "tag3", "tag4"]);
    assert_eq!(ids(done), vec![1, 23, 4, 23, 4, 23]);
}

#[test]
fn most_recent_candidate_wins_and_event_ends_one_and_starts_another() {
    // A A B: the second A replaces the first; B completes [2, 3].
    let done = run_tagged(
        spec(&[pos(), pos()], false, None),
        &["A", "B"],
        None,
        &[ev(1, 1, "A", "k"), ev(2, 2, "A", "k"), ev(3, 3, "B", "k")],
    );
    assert_eq!(ids(done), vec![2, 3]);
    // [X][X]: each event ends the previous sequence and starts the next.
    let done = run_tagged(
        spec(&[pos(), pos()], false, None),
        &["X", "X"],
        None,
        &[ev(1, 1, "X", "k"), ev(2, 2, "X", "k"), ev(3, 3, "X", "k")],
    );
    assert_eq!(ids(done), vec![1, 2, 2, 3]);
    // One event never fills two stages of one sequence.
    let done = run_tagged(
        spec(&[pos(), pos()], false, None),
        &["X", "X"],
        None,
        &[ev(1, 1, "X", "k")],
    );
    assert!(done.is_empty());
}

#[test]
fn consumed_partial_is_gone_for_later_hits() {
    // A B B C: the second B finds nothing at stage 0 (the first B took
    // it), and the partial [1, 2] still waits for C.
    let done = run_tagged(
        spec(&[pos(), pos(), pos()], false, None),
        &["A", "B", "C"],
        None,
        &[
            ev(1, 1, "A", "k"),
            ev(2, 2, "B", "k"),
            ev(3, 3, "B", "k"),
            ev(4, 4, "C", "k"),
        ],
    );
    assert_eq!(ids(done), vec![1, 2, 4]);
}

#[test]
fn maxspan_is_inclusive() {
    let run = |gap: i64| {
        ids(run_tagged(
            spec(&[pos(), pos()], false, Some(100)),
            &["A", "B"],
            None,
            &[ev(1, 1000, "A", "k"), ev(2, 1000 + gap, "B", "k")],
        ))
    };
    assert_eq!(run(100), vec![1, 2]);
    assert!(run(101).is_empty());
}

#[test]
fn too_late_hit_consumes_the_partial() {
    // Elasticsearch removes the candidate before checking maxspan, so a
    // late B leaves nothing for a later in-span C... of the same stage.
    let mut m = Matcher::new(spec(&[pos(), pos()], false, Some(10)), Limits::default()).unwrap();
    m.push(
        1,
        &ord(0, 1),
        &hits_for(&ev(1, 0, "A", "k"), &["A", "B"], None),
    );
    m.push(
        2,
        &ord(50, 2),
        &hits_for(&ev(2, 50, "B", "k"), &["A", "B"], None),
    );
    assert!(m.drain_completed().is_empty());
    let stats = m.stats();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.evicted + stats.rejected_maxspan, 1);
}

// test_missing_events.toml, group test1 (ts 1, 2, 3, 4).
#[test]
fn missing_in_between() {
    let events = [
        ev(1, 1, "normal", ""),
        ev(2, 2, "normal", ""),
        ev(3, 3, "missing", ""),
        ev(4, 4, "normal", ""),
    ];
    let s = spec(&[pos(), miss(), pos()], false, Some(1000));
    let none = run_tagged(
        s.clone(),
        &["normal", "nonexisting", "normal"],
        None,
        &events,
    );
    assert_eq!(ids(none), vec![1, -1, 2, 2, -1, 4]);
    let matched = run_tagged(s, &["normal", "missing", "normal"], None, &events);
    assert_eq!(ids(matched), vec![1, -1, 2]);
    let trailing = run_tagged(
        spec(&[pos(), miss()], false, Some(1000)),
        &["normal", "missing"],
        None,
        &events,
    );
    assert_eq!(ids(trailing), vec![4, -1]);
}

// "skipFirstMatchAndPickSecondCandidate", group test2.
#[test]
fn missing_skip_first_candidate() {
    let t0 = 1_651_665_600_000;
    let events = [
        ev(1, t0, "normal", ""),
        ev(2, t0 + 1, "normal", ""),
        ev(3, t0 + 2, "missing", ""),
        ev(4, t0 + 3, "normal", ""),
        ev(5, t0 + 4, "normal", ""),
        ev(6, t0 + 5, "missing", ""),
        ev(7, t0 + 120_006, "missing2", ""),
        ev(8, t0 + 180_006, "missing2", ""),
    ];
    let done = run_tagged(
        spec(&[pos(), pos(), miss(), pos()], false, Some(1000)),
        &["normal", "normal", "missing", "normal"],
        None,
        &events,
    );
    assert_eq!(ids(done), vec![2, 4, -1, 5]);
}

/// Group test3: missing at 12:00, normal 12:10, missing 12:20,
/// normal 12:21, 12:29, 12:31 (all +1 ms except the first).
fn test3() -> Vec<Tagged<'static>> {
    let t0 = 1_651_665_600_000;
    let min = 60_000;
    vec![
        ev(1, t0, "missing", ""),
        ev(2, t0 + 10 * min + 1, "normal", ""),
        ev(3, t0 + 20 * min + 1, "missing", ""),
        ev(4, t0 + 21 * min + 1, "normal", ""),
        ev(5, t0 + 29 * min + 1, "normal", ""),
        ev(6, t0 + 31 * min + 1, "normal", ""),
    ]
}

#[test]
fn missing_leading_and_trailing() {
    let min = 60_000;
    let leading = run_tagged(
        spec(&[miss(), pos()], false, Some(3 * min)),
        &["missing", "normal"],
        None,
        &test3(),
    );
    assert_eq!(ids(leading), vec![-1, 2, -1, 5, -1, 6]);
    let both = |maxspan| {
        ids(run_tagged(
            spec(&[miss(), pos(), miss()], false, Some(maxspan)),
            &["missing", "normal", "missing"],
            None,
            &test3(),
        ))
    };
    assert_eq!(
        both(19 * min),
        vec![-1, 2, -1, -1, 4, -1, -1, 5, -1, -1, 6, -1]
    );
    assert_eq!(both(21 * min), vec![-1, 4, -1, -1, 5, -1, -1, 6, -1]);
}

#[test]
fn missing_multiple_stages() {
    let run = |stages: &[StageSpec], tags: &[&str]| {
        ids(run_tagged(
            spec(stages, false, Some(1000)),
            tags,
            None,
            &test4(),
        ))
    };
    let (p, m) = (pos(), miss());
    assert_eq!(
        run(&[p, p, m, p, m, p], &["A", "B", "M1", "C", "M2", "D"]),
        vec![13, 14, -1, 16, -1, 17]
    );
    assert_eq!(
        run(&[p, p, m, p, p], &["A", "B", "M1", "C", "D"]),
        vec![13, 14, -1, 16, 17]
    );
    assert_eq!(
        run(&[p, p, p, m, p], &["A", "B", "C", "M2", "D"]),
        vec![13, 14, 16, -1, 17]
    );
    assert!(run(
        &[p, p, m, p, m, p, m],
        &["A", "B", "M1", "C", "M2", "D", "M4"]
    )
    .is_empty());
    assert_eq!(
        run(&[p, p, m, p, m, p], &["A", "B", "none", "C", "none", "D"]),
        vec![1, 2, -1, 5, -1, 7, 13, 14, -1, 16, -1, 17]
    );
    assert_eq!(
        run(&[p, p, p, m, p, m], &["A", "B", "C", "M2", "D", "none"]),
        vec![13, 14, 16, -1, 17, -1]
    );
    assert_eq!(
        run(&[m, p, p, p, m, p], &["none", "A", "B", "C", "M2", "D"]),
        vec![-1, 13, 14, 16, -1, 17]
    );
}

/// Group test5: (id, ms offset, tag, k1, k2).
const TEST5: [(u64, i64, &str, &str, &str); 12] = [
    (1, 0, "normal", "foo", "foo"),
    (2, 1, "normal", "foo", "foo"),
    (3, 3, "missing", "foo", "foo"),
    (4, 4, "normal", "foo", "foo"),
    (5, 5, "normal", "foo", "foo"),
    (6, 6, "normal", "foo", "foo"),
    (7, 7, "missing", "foo", "bar"),
    (8, 8, "normal", "foo", "foo"),
    (9, 9, "normal", "baz", "baz"),
    (10, 10, "normal", "baz", "baz"),
    (11, 11, "missing", "baz", "foo"),
    (12, 12, "normal", "baz", "baz"),
];

/// Positive stages keyed by `k1`, missing stages by `k2`
/// ("withByKey3"), optionally only missing events with id > 10.
fn run_test5(stages: &[StageSpec], missing_after: u64) -> Vec<SequenceMatch<String, u64>> {
    let mut m = Matcher::new(spec(stages, false, Some(1000)), Limits::default()).unwrap();
    let missing_stage = stages.iter().position(|s| s.missing).unwrap();
    for (id, ms, tag, k1, k2) in TEST5 {
        let hits: Vec<StageHit<String>> = if tag == "normal" {
            (0..stages.len())
                .filter(|i| !stages[*i].missing)
                .map(|i| StageHit {
                    stage: HitStage::Stage(i),
                    keys: vec![k1.to_string()],
                })
                .collect()
        } else if id > missing_after {
            vec![StageHit {
                stage: HitStage::Stage(missing_stage),
                keys: vec![k2.to_string()],
            }]
        } else {
            vec![]
        };
        m.push(id, &ord(1_640_995_200_000 + ms, id), &hits);
    }
    m.finish();
    m.drain_completed()
}

#[test]
fn missing_with_keys_and_runs() {
    let (p, m) = (pos(), miss());
    let done = run_test5(&[p, p, m, p], 0);
    assert_eq!(keys_of(done.clone()), vec!["foo", "foo", "foo", "baz"]);
    assert_eq!(
        ids(done),
        vec![2, 4, -1, 5, 4, 5, -1, 6, 5, 6, -1, 8, 9, 10, -1, 12]
    );
    assert_eq!(
        ids(run_test5(&[p, p, m, p], 10)),
        vec![1, 2, -1, 4, 2, 4, -1, 5, 4, 5, -1, 6, 5, 6, -1, 8, 9, 10, -1, 12]
    );
    assert_eq!(
        ids(run_test5(&[p.with_runs(2), m, p], 0)),
        vec![2, 4, -1, 5, 4, 5, -1, 6, 5, 6, -1, 8, 9, 10, -1, 12]
    );
    assert_eq!(
        ids(run_test5(&[p.with_runs(2), m.with_runs(2), p], 0)),
        vec![2, 4, -1, -1, 5, 4, 5, -1, -1, 6, 5, 6, -1, -1, 8, 9, 10, -1, -1, 12]
    );
}

#[test]
fn trailing_missing_waits_for_maxspan_on_the_data_clock() {
    let mut m = Matcher::new(spec(&[pos(), miss()], false, Some(100)), Limits::default()).unwrap();
    let tags = ["A", "M"];
    m.push(
        1,
        &ord(1000, 1),
        &hits_for(&ev(1, 1000, "A", "k"), &tags, None),
    );
    assert!(m.drain_completed().is_empty());
    assert_eq!(m.stats().awaiting_missing, 1);
    // Exactly maxspan later: a trailing event could still be in range.
    m.advance_watermark(1100);
    assert!(m.drain_completed().is_empty());
    m.advance_watermark(1101);
    assert_eq!(ids(m.drain_completed()), vec![1, -1]);
    assert_eq!(m.stats().awaiting_missing, 0);

    // A trailing event within maxspan discards; its key must match.
    m.push(
        2,
        &ord(2000, 2),
        &hits_for(&ev(2, 2000, "A", "k"), &tags, None),
    );
    m.push(
        3,
        &ord(2050, 3),
        &hits_for(&ev(3, 2050, "M", "other"), &tags, None),
    );
    m.push(
        4,
        &ord(2060, 4),
        &hits_for(&ev(4, 2060, "M", "k"), &tags, None),
    );
    m.advance_watermark(10_000);
    assert!(m.drain_completed().is_empty());
    assert_eq!(m.stats().rejected_missing, 1);

    // A trailing event at the same millisecond as the last positive one
    // does not count (Elasticsearch queries `@timestamp > last`).
    m.push(
        5,
        &ord(20_000, 5),
        &hits_for(&ev(5, 20_000, "A", "k"), &tags, None),
    );
    m.push(
        6,
        &ord(20_000, 6),
        &hits_for(&ev(6, 20_000, "M", "k"), &tags, None),
    );
    m.finish();
    assert_eq!(ids(m.drain_completed()), vec![5, -1]);
}

#[test]
fn state_is_bounded_by_live_keys_not_input_length() {
    let mut m = Matcher::new(
        spec(&[pos(), pos(), miss()], false, Some(10)),
        Limits::default(),
    )
    .unwrap();
    let tags = ["A", "B", "M"];
    for i in 0..10_000u64 {
        let key = format!("k{i}");
        let ts = i as i64 * 5;
        // Every key starts a sequence, gets a missing event and never completes.
        m.push(
            i * 2,
            &ord(ts, i * 2),
            &hits_for(&ev(0, 0, "A", &key), &tags, None),
        );
        m.push(
            i * 2 + 1,
            &ord(ts, i * 2 + 1),
            &hits_for(&ev(0, 0, "M", &key), &tags, None),
        );
        let stats = m.stats();
        assert!(stats.pending <= 4, "pending {} at {i}", stats.pending);
        assert!(m.keys.len() <= 8, "keys {} at {i}", m.keys.len());
    }
    assert!(m.stats().evicted >= 9_990);
}

#[test]
fn pending_limit_without_maxspan_is_counted() {
    let mut m = Matcher::new(
        spec(&[pos(), pos()], false, None),
        Limits { max_pending: 3 },
    )
    .unwrap();
    for i in 0..10u64 {
        let key = format!("k{i}");
        m.push(
            i,
            &ord(i as i64, i),
            &hits_for(&ev(0, 0, "A", &key), &["A", "B"], None),
        );
    }
    let stats = m.stats();
    assert_eq!(stats.pending, 3);
    assert_eq!(stats.overflow, 7);
    // The newest keys survived.
    m.push(
        99,
        &ord(100, 99),
        &hits_for(&ev(0, 0, "B", "k9"), &["A", "B"], None),
    );
    m.push(
        98,
        &ord(101, 98),
        &hits_for(&ev(0, 0, "B", "k0"), &["A", "B"], None),
    );
    assert_eq!(ids(m.drain_completed()), vec![9, 99]);
}

#[test]
fn state_survives_serialization_mid_stream() {
    let s = spec(&[pos(), pos(), miss()], true, Some(1000));
    let tags = ["A", "B", "M"];
    let events = [
        ev(1, 1, "A", "x"),
        ev(2, 2, "A", "y"),
        ev(3, 3, "B", "x"),
        ev(4, 4, "U", "y"),
        ev(5, 5, "A", "y"),
        ev(6, 6, "B", "y"),
        ev(7, 900, "M", "y"),
        ev(8, 3000, "A", "z"),
    ];
    let run = |split: usize| {
        let mut m = Matcher::new(s.clone(), Limits::default()).unwrap();
        let mut out = Vec::new();
        for (i, t) in events.iter().enumerate() {
            if i == split {
                out.extend(m.drain_completed());
                let json = serde_json::to_string(&m).unwrap();
                m = serde_json::from_str(&json).unwrap();
            }
            m.push(t.id, &ord(t.ts, t.id), &hits_for(t, &tags, Some("U")));
        }
        m.finish();
        out.extend(m.drain_completed());
        ids(out)
    };
    let whole = run(usize::MAX);
    assert_eq!(whole, vec![1, 3, -1]);
    for split in 0..events.len() {
        assert_eq!(run(split), whole, "split at {split}");
    }
}

/// A direct, unoptimised transcription of what Elasticsearch computes for
/// one sequence query when every page holds all hits (`TumblingWindow` with
/// a single window): all stages processed one after the other over the
/// whole input, candidates kept in lists per (stage, key) and trimmed with
/// `trimBefore`, `until` checked with the inclusive `between`, and missing
/// stages checked afterwards against the whole input with the conditions of
/// `checkMissingEvents`. The streaming matcher must agree with it.
mod reference {
    use super::*;

    pub struct Ev {
        pub id: u64,
        pub ord: Ordinal,
        /// (stage as written or usize::MAX for until, key)
        pub hits: Vec<(usize, String)>,
    }

    pub const UNTIL: usize = usize::MAX;

    #[derive(Clone)]
    struct Seq {
        key: String,
        events: Vec<Option<u64>>,
        ords: Vec<Option<Ordinal>>,
        first: Ordinal,
        last: Ordinal,
    }

    /// Results as (last, first, key, ids), sorted.
    pub fn run(spec: &SequenceSpec, events: &[Ev]) -> Vec<(Ordinal, Ordinal, String, Vec<i64>)> {
        let mut expanded = Vec::new();
        for (orig, s) in spec.stages.iter().enumerate() {
            for _ in 0..s.runs {
                expanded.push((orig, s.missing));
            }
        }
        let n = expanded.len();
        let positive: Vec<usize> = (0..n).filter(|i| !expanded[*i].1).collect();
        let (first_pos, last_pos) = (positive[0], *positive.last().unwrap());
        let maxspan = spec.maxspan_ms.map(|m| m as i64);
        let exceeds = |from: i64, to: i64| maxspan.is_some_and(|m| to - from > m);

        let mut untils: HashMap<String, Vec<Ordinal>> = HashMap::new();
        if spec.has_until {
            for e in events {
                for (s, k) in &e.hits {
                    if *s == UNTIL {
                        untils.entry(k.clone()).or_default().push(e.ord.clone());
                    }
                }
            }
        }

        let mut groups: HashMap<(usize, String), Vec<Seq>> = HashMap::new();
        let mut completed: Vec<Seq> = Vec::new();
        for (pi, &stage) in positive.iter().enumerate() {
            let orig = expanded[stage].0;
            for e in events {
                for (s, key) in &e.hits {
                    if *s != orig {
                        continue;
                    }
                    let seq = if stage == first_pos {
                        let mut events = vec![None; n];
                        let mut ords = vec![None; n];
                        events[stage] = Some(e.id);
                        ords[stage] = Some(e.ord.clone());
                        Seq {
                            key: key.clone(),
                            events,
                            ords,
                            first: e.ord.clone(),
                            last: e.ord.clone(),
                        }
                    } else {
                        let prev = positive[pi - 1];
                        let Some(list) = groups.get_mut(&(prev, key.clone())) else {
                            continue;
                        };
                        let Some(idx) = list.iter().rposition(|q| q.last < e.ord) else {
                            continue;
                        };
                        let mut seq = list[idx].clone();
                        list.drain(..=idx);
                        if exceeds(seq.first.timestamp, e.ord.timestamp) {
                            continue;
                        }
                        let blocked = untils
                            .get(key)
                            .is_some_and(|us| us.iter().any(|u| seq.last <= *u && *u < e.ord));
                        if blocked {
                            continue;
                        }
                        seq.events[stage] = Some(e.id);
                        seq.ords[stage] = Some(e.ord.clone());
                        seq.last = e.ord.clone();
                        seq
                    };
                    if stage == last_pos {
                        completed.push(seq);
                    } else {
                        groups.entry((stage, key.clone())).or_default().push(seq);
                    }
                }
            }
        }

        let missing_ts = |stage: usize, key: &str| -> Vec<i64> {
            let orig = expanded[stage].0;
            events
                .iter()
                .filter(|e| e.hits.iter().any(|(s, k)| *s == orig && k == key))
                .map(|e| e.ord.timestamp)
                .collect()
        };
        let mut out = Vec::new();
        for seq in completed {
            let mut discarded = false;
            let mut last_leading: Option<i64> = None;
            let mut first_trailing: Option<i64> = None;
            for i in 0..n {
                if !expanded[i].1 {
                    continue;
                }
                let ts = missing_ts(i, &seq.key);
                if i < first_pos {
                    let found = ts
                        .iter()
                        .copied()
                        .filter(|t| *t < seq.first.timestamp)
                        .max();
                    last_leading = last_leading.max(found);
                } else if i > last_pos {
                    let found = ts.iter().copied().filter(|t| *t > seq.last.timestamp).min();
                    first_trailing = match (first_trailing, found) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                } else {
                    let prev = (0..i).rev().find(|s| !expanded[*s].1).unwrap();
                    let next = (i + 1..n).find(|s| !expanded[*s].1).unwrap();
                    let lo = seq.ords[prev].as_ref().unwrap().timestamp;
                    let hi = seq.ords[next].as_ref().unwrap().timestamp;
                    if ts.iter().any(|t| *t > lo && *t < hi) {
                        discarded = true;
                    }
                }
            }
            if discarded {
                continue;
            }
            let m0 = expanded[0].1;
            let ml = expanded[n - 1].1;
            let bigger = |from: Option<i64>, to: Option<i64>| match (from, to) {
                (Some(f), Some(t)) => exceeds(f, t),
                _ => true,
            };
            let ok = (first_trailing.is_none() && last_leading.is_none())
                || (last_leading.is_none() && m0)
                || (first_trailing.is_none() && ml)
                || (m0 && ml && bigger(last_leading, first_trailing))
                || (m0 && !ml && bigger(last_leading, Some(seq.last.timestamp)))
                || (!m0 && ml && bigger(Some(seq.first.timestamp), first_trailing));
            if ok {
                let ids = seq
                    .events
                    .iter()
                    .map(|e| e.map_or(-1, |id| id as i64))
                    .collect();
                out.push((seq.last, seq.first, seq.key, ids));
            }
        }
        out.sort();
        out
    }
}

mod equivalence {
    use super::reference::{self, Ev, UNTIL};
    use super::*;
    use proptest::prelude::*;

    /// A small random query: 2..=4 stages over 3 tags, some missing, runs,
    /// maybe until and maxspan.
    fn arb_spec() -> impl Strategy<Value = (SequenceSpec, Vec<usize>)> {
        (
            prop::collection::vec((any::<bool>(), 1u32..=2, 0usize..3), 2..=4),
            any::<bool>(),
            prop::option::of(0u64..6),
        )
            .prop_filter_map("needs a positive stage", |(stages, until, maxspan)| {
                let has_missing = stages.iter().any(|(m, _, _)| *m);
                if stages.iter().all(|(m, _, _)| *m) {
                    return None;
                }
                // Elasticsearch requires maxspan with missing-event stages.
                let maxspan = if has_missing {
                    Some(maxspan.unwrap_or(3))
                } else {
                    maxspan
                };
                let spec = SequenceSpec {
                    stages: stages
                        .iter()
                        .map(|(m, runs, _)| StageSpec {
                            missing: *m,
                            runs: *runs,
                        })
                        .collect(),
                    has_until: until,
                    maxspan_ms: maxspan,
                };
                let tags = stages.iter().map(|(_, _, t)| *t).collect();
                Some((spec, tags))
            })
    }

    /// Events: timestamp steps of 0..=2 ms, a tag (3 = until), keys a/b.
    fn arb_events() -> impl Strategy<Value = Vec<(i64, usize, Vec<&'static str>)>> {
        prop::collection::vec(
            (
                0i64..=2,
                0usize..4,
                prop::sample::subsequence(vec!["a", "b"], 1..=2),
            ),
            0..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]
        #[test]
        fn streaming_matches_batch_reference(
            (spec, tags) in arb_spec(),
            raw in arb_events(),
            split in 0usize..40,
        ) {
            let mut ts = 0;
            let mut events = Vec::new();
            for (i, (step, tag, keys)) in raw.iter().enumerate() {
                ts += step;
                let id = i as u64 + 1;
                let mut hits = Vec::new();
                for (stage, t) in tags.iter().enumerate() {
                    if t == tag {
                        for k in keys {
                            hits.push((stage, k.to_string()));
                        }
                    }
                }
                if *tag == 3 {
                    for k in keys {
                        hits.push((UNTIL, k.to_string()));
                    }
                }
                events.push(Ev { id, ord: ord(ts, id), hits });
            }
            let expected = reference::run(&spec, &events);

            let mut m = Matcher::new(spec.clone(), Limits::default()).unwrap();
            let mut got = Vec::new();
            for (i, e) in events.iter().enumerate() {
                if i == split {
                    got.extend(m.drain_completed());
                    let json = serde_json::to_string(&m).unwrap();
                    m = serde_json::from_str(&json).unwrap();
                }
                let mut hits: Vec<StageHit<String>> = Vec::new();
                for (s, k) in &e.hits {
                    let stage = if *s == UNTIL { HitStage::Until } else { HitStage::Stage(*s) };
                    match hits.iter_mut().find(|h| h.stage == stage) {
                        Some(h) => h.keys.push(k.clone()),
                        None => hits.push(StageHit { stage, keys: vec![k.clone()] }),
                    }
                }
                m.push(e.id, &e.ord, &hits);
            }
            m.finish();
            got.extend(m.drain_completed());
            let mut got: Vec<_> = got
                .into_iter()
                .map(|s| {
                    let ids = s.events.iter().map(|e| e.map_or(-1, |id| id as i64)).collect();
                    (s.last, s.first, s.key, ids)
                })
                .collect();
            got.sort();
            prop_assert_eq!(got, expected);
        }
    }
}
