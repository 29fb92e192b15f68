//! Running a compiled [`Plan`] over a slice of documents and shaping the
//! answer like the Elasticsearch EQL search API (`hits.total`,
//! `hits.events` or `hits.sequences` with `join_keys`, every event with
//! `_index`, `_id`, `_source`, missing-event placeholders).
//!
//! Events are ordered as Elasticsearch orders them: timestamp (epoch ms),
//! then tiebreaker (events with one before those without), then input order.
//! Sequences run through [`SequenceMatcher`](super::sequence::SequenceMatcher), samples through
//! [`SampleMatcher`](super::sample::SampleMatcher) (in input order: samples ignore time). Then the limits:
//! the `| head N` / `| tail N` pipes in order, then `size` taken from the
//! head or the tail per `result_position`; results stay in ascending order.

mod stream;

use serde::Serialize;
use serde_json::Value as Json;

pub use stream::{Carried, Found, FoundSequence, Matches, Stream};

use super::ast::Pipe;
use super::compile::{Plan, PlanKind, Stage};
use super::event::Event;
use super::sample::{SampleHit, SampleSpecError};
use super::sequence::{
    HitStage, Limits, Ordinal, SequenceSpec, SequenceSpecError, StageHit, StageSpec, TieBreaker,
};
use super::value::{format_date_millis, Value};

/// One input document.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub index: String,
    pub id: String,
    pub source: Json,
}

/// Which end of the matches `size` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResultPosition {
    Head,
    /// Elasticsearch's default since 7.11 (PR #66550).
    #[default]
    Tail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// Maximum events (event queries) or sequences/samples returned.
    pub size: usize,
    pub result_position: ResultPosition,
    /// Samples per join key (`max_samples_per_key`).
    pub max_samples_per_key: usize,
    pub limits: Limits,
}

impl Default for SearchOptions {
    /// The EQL search API defaults: `size` 10, tail, one sample per key.
    fn default() -> Self {
        SearchOptions {
            size: 10,
            result_position: ResultPosition::Tail,
            max_samples_per_key: 1,
            limits: Limits::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("invalid sequence: {0}")]
    Sequence(#[from] SequenceSpecError),
    #[error("invalid sample: {0}")]
    Sample(#[from] SampleSpecError),
}

/// The EQL search API response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchResponse {
    pub is_partial: bool,
    pub is_running: bool,
    pub took: u64,
    pub timed_out: bool,
    pub hits: Hits,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hits {
    pub total: Total,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<HitEvent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequences: Option<Vec<HitSequence>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Total {
    pub value: u64,
    pub relation: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HitEvent {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_source")]
    pub source: Json,
    /// Set on the placeholder of a missing-event stage.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

impl HitEvent {
    /// The hit for a document.
    pub fn of(doc: &Document) -> Self {
        HitEvent {
            index: doc.index.clone(),
            id: doc.id.clone(),
            source: doc.source.clone(),
            missing: false,
        }
    }

    /// What Elasticsearch returns for a `![...]` stage.
    pub fn placeholder() -> Self {
        HitEvent {
            index: String::new(),
            id: String::new(),
            source: Json::Object(Default::default()),
            missing: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HitSequence {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub join_keys: Vec<Json>,
    pub events: Vec<HitEvent>,
}

/// Runs `plan` over `docs` (any order; they are sorted here).
pub fn search(
    plan: &Plan,
    docs: &[Document],
    opts: &SearchOptions,
) -> Result<SearchResponse, SearchError> {
    search_with(plan, |_| plan, docs, opts)
}

/// Like [`search`], with a plan per document: Elasticsearch evaluates each
/// index with its own mapping, so a query over several indices is compiled
/// once per index schema. `plan` gives the query's shape (kind, pipes,
/// maxspan); `plan_for` must return plans compiled from the same query.
pub fn search_with<'p>(
    plan: &'p Plan,
    plan_for: impl Fn(&Document) -> &'p Plan,
    docs: &[Document],
    opts: &SearchOptions,
) -> Result<SearchResponse, SearchError> {
    let events: Vec<(&Plan, Event)> = docs
        .iter()
        .map(|d| {
            let p = plan_for(d);
            (p, p.event(&d.source))
        })
        .collect();
    let mut stream = Stream::new(plan, opts)?;
    if plan.kind == PlanKind::Sample {
        // Samples ignore time: candidates are taken in input (index) order.
        for (i, (p, event)) in events.iter().enumerate() {
            stream.push(p, i, None, event);
        }
    } else {
        let mut order = ordered(&events);
        if plan.kind == PlanKind::Event {
            // Events without a timestamp cannot be ordered; Elasticsearch
            // sorts them last. (Sequences cannot use them at all.)
            order.extend(
                events
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, e))| e.timestamp.is_none())
                    .map(|(i, _)| (i, Ordinal::new(i64::MAX, None, i as u64))),
            );
        }
        for (i, ord) in order {
            let (p, event) = &events[i];
            stream.push(p, i, Some(&ord), event);
        }
    }
    Ok(response(hits(plan.kind, stream.finish(), |i| {
        HitEvent::of(&docs[*i])
    })))
}

/// Wraps hits in the search API envelope.
pub fn response(hits: Hits) -> SearchResponse {
    SearchResponse {
        is_partial: false,
        is_running: false,
        took: 0,
        timed_out: false,
        hits,
    }
}

/// Renders what a stream found, with `doc` turning a reference into the
/// event shown (`_index`, `_id`, `_source`).
pub fn hits<R>(kind: PlanKind, found: Found<R>, mut doc: impl FnMut(&R) -> HitEvent) -> Hits {
    match found {
        Found::Events { total, refs } => Hits {
            total: Total {
                value: total,
                relation: "eq",
            },
            events: Some(refs.iter().map(&mut doc).collect()),
            sequences: None,
        },
        Found::Sequences(found) => {
            let sample = kind == PlanKind::Sample;
            let sequences: Vec<HitSequence> = found
                .into_iter()
                .map(|f| HitSequence {
                    join_keys: f.key.iter().map(|v| key_json(v, sample)).collect(),
                    events: f
                        .events
                        .iter()
                        .map(|e| e.as_ref().map_or_else(HitEvent::placeholder, &mut doc))
                        .collect(),
                })
                .collect();
            Hits {
                total: total(sequences.len()),
                events: None,
                sequences: Some(sequences),
            }
        }
    }
}

/// The ordinal of an event at input position `index`, or `None` when it
/// has no timestamp (Elasticsearch cannot order it).
pub fn ordinal(event: &Event, index: usize) -> Option<Ordinal> {
    Some(Ordinal::new(
        event.timestamp?,
        event.tiebreaker.as_ref().and_then(tiebreaker),
        index as u64,
    ))
}

fn tiebreaker(v: &Value) -> Option<TieBreaker> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => TieBreaker::Int(i64::from(*b)),
        Value::Long(n) | Value::Date(n) => TieBreaker::Int(*n),
        Value::Double(d) => TieBreaker::Float(*d),
        Value::Str(s) | Value::Version(s) => TieBreaker::Str(s.to_string()),
        Value::Ip(ip) => TieBreaker::Str(ip.to_string()),
    })
}

/// Input positions of the events that have a timestamp, in ordinal order.
fn ordered(events: &[(&Plan, Event)]) -> Vec<(usize, Ordinal)> {
    let mut out: Vec<(usize, Ordinal)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, (_, e))| ordinal(e, i).map(|o| (i, o)))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The pipes in order, then `size` from the head or the tail.
fn limit<T>(mut items: Vec<T>, pipes: &[Pipe], opts: &SearchOptions) -> Vec<T> {
    fn keep_tail<T>(items: &mut Vec<T>, n: usize) {
        if items.len() > n {
            items.drain(..items.len() - n);
        }
    }
    for pipe in pipes {
        match *pipe {
            Pipe::Head(n, _) => items.truncate(usize::try_from(n).unwrap_or(usize::MAX)),
            Pipe::Tail(n, _) => keep_tail(&mut items, usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
    match opts.result_position {
        ResultPosition::Head => items.truncate(opts.size),
        ResultPosition::Tail => keep_tail(&mut items, opts.size),
    }
    items
}

fn total(n: usize) -> Total {
    Total {
        value: n as u64,
        relation: "eq",
    }
}

/// The keys of `event` for `stage`, if it matches (none when a
/// non-optional key is missing).
fn stage_keys(
    stage: &Stage,
    event: &Event,
    scratch: &mut Vec<Vec<Value>>,
) -> Option<Vec<Vec<Value>>> {
    if !stage.matches(event) {
        return None;
    }
    stage.join_keys(event, scratch);
    (!scratch.is_empty()).then(|| std::mem::take(scratch))
}

/// The [`SequenceMatcher`](super::sequence::SequenceMatcher) shape of a sequence plan.
pub fn sequence_spec(plan: &Plan) -> SequenceSpec {
    SequenceSpec {
        stages: plan
            .stages
            .iter()
            .map(|s| StageSpec {
                missing: s.missing,
                runs: u32::try_from(s.runs).unwrap_or(u32::MAX),
            })
            .collect(),
        has_until: plan.until.is_some(),
        maxspan_ms: plan.maxspan_ms,
    }
}

/// The stages (and `until`) of a sequence plan that `event` matches, with
/// its join keys for each: what [`SequenceMatcher::push`](super::sequence::SequenceMatcher::push) takes. For callers
/// that stream events (the daemon) rather than call [`search`].
pub fn sequence_stage_hits(plan: &Plan, event: &Event, out: &mut Vec<StageHit<Vec<Value>>>) {
    out.clear();
    let mut scratch = Vec::new();
    for (s, stage) in plan.stages.iter().enumerate() {
        if let Some(keys) = stage_keys(stage, event, &mut scratch) {
            out.push(StageHit {
                stage: HitStage::Stage(s),
                keys,
            });
        }
    }
    if let Some(until) = &plan.until {
        if let Some(keys) = stage_keys(until, event, &mut scratch) {
            out.push(StageHit {
                stage: HitStage::Until,
                keys,
            });
        }
    }
}

/// The filters of a sample plan that `event` matches, with its composite
/// keys for each: what [`SampleMatcher::push`](super::sample::SampleMatcher::push) takes.
pub fn sample_filter_hits(plan: &Plan, event: &Event, out: &mut Vec<SampleHit<Vec<Value>>>) {
    out.clear();
    let mut scratch = Vec::new();
    for (f, stage) in plan.stages.iter().enumerate() {
        if let Some(keys) = stage_keys(stage, event, &mut scratch) {
            out.push(SampleHit { filter: f, keys });
        }
    }
}

/// A join key as Elasticsearch returns it: dates are ISO strings in
/// sequences but epoch milliseconds in samples (composite aggregation keys).
fn key_json(v: &Value, sample: bool) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Long(n) => Json::from(*n),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::Str(s) | Value::Version(s) => Json::String(s.to_string()),
        Value::Ip(ip) => Json::String(ip.to_string()),
        Value::Date(ms) if sample => Json::from(*ms),
        Value::Date(ms) => Json::String(format_date_millis(*ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::compile::{compile, CompileOptions};
    use crate::eql::schema::Schema;
    use serde_json::json;

    fn plan(query: &str, mapping: &str) -> Plan {
        let q = crate::eql::parse(query).unwrap();
        assert!(crate::eql::verify(&q).is_empty());
        let schema = Schema::from_mapping_text(mapping).unwrap();
        let opts = CompileOptions {
            tiebreaker_field: Some("seq".into()),
            ..CompileOptions::default()
        };
        compile(&q, &schema, &opts).unwrap()
    }

    const MAPPING: &str = r#"{"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"category": {"type": "keyword"}}},
        "seq": {"type": "long"},
        "user": {"type": "keyword"},
        "day": {"type": "date"}
    }}"#;

    /// (seq, timestamp ms, category, user)
    fn docs(rows: &[(i64, i64, &str, &str)]) -> Vec<Document> {
        rows.iter()
            .map(|(seq, ts, cat, user)| Document {
                index: "logs".into(),
                id: format!("d{seq}"),
                source: json!({
                    "@timestamp": ts, "seq": seq, "event": {"category": cat},
                    "user": user, "day": "2022-12-17T00:00:00.000Z"
                }),
            })
            .collect()
    }

    fn opts(size: usize, position: ResultPosition) -> SearchOptions {
        SearchOptions {
            size,
            result_position: position,
            ..SearchOptions::default()
        }
    }

    fn event_ids(resp: &SearchResponse) -> Vec<String> {
        resp.hits
            .events
            .iter()
            .flatten()
            .map(|e| e.id.clone())
            .collect()
    }

    fn sequence_ids(resp: &SearchResponse) -> Vec<Vec<String>> {
        resp.hits
            .sequences
            .iter()
            .flatten()
            .map(|s| s.events.iter().map(|e| e.id.clone()).collect())
            .collect()
    }

    #[test]
    fn event_query_orders_by_timestamp_then_tiebreaker_and_limits() {
        // Input out of order; two events share a millisecond.
        let d = docs(&[
            (3, 20, "process", "a"),
            (1, 10, "process", "a"),
            (2, 10, "file", "a"),
            (5, 30, "process", "b"),
            (4, 20, "process", "b"),
        ]);
        let p = plan("process where true", MAPPING);
        let all = search(&p, &d, &opts(10, ResultPosition::Head)).unwrap();
        assert_eq!(event_ids(&all), ["d1", "d3", "d4", "d5"]);
        assert_eq!(
            all.hits.total,
            Total {
                value: 4,
                relation: "eq"
            }
        );
        assert!(all.hits.sequences.is_none());
        let head = search(&p, &d, &opts(2, ResultPosition::Head)).unwrap();
        assert_eq!(event_ids(&head), ["d1", "d3"]);
        assert_eq!(head.hits.total.value, 4);
        let tail = search(&p, &d, &opts(2, ResultPosition::Tail)).unwrap();
        assert_eq!(event_ids(&tail), ["d4", "d5"]);
        let piped = plan("process where true | tail 3 | head 2", MAPPING);
        let r = search(&piped, &d, &opts(10, ResultPosition::Head)).unwrap();
        assert_eq!(event_ids(&r), ["d3", "d4"]);
    }

    #[test]
    fn sequence_response_shape_with_placeholders_and_iso_date_keys() {
        let d = docs(&[
            (1, 1000, "process", "a"),
            (2, 1500, "file", "a"),
            (3, 2000, "process", "b"),
        ]);
        let p = plan(
            "sequence by user, day with maxspan=1s [process where true] [file where true] ![network where true]",
            MAPPING,
        );
        let r = search(&p, &d, &SearchOptions::default()).unwrap();
        assert!(r.hits.events.is_none());
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(
            body["hits"],
            json!({
                "total": {"value": 1, "relation": "eq"},
                "sequences": [{
                    "join_keys": ["a", "2022-12-17T00:00:00.000Z"],
                    "events": [
                        {"_index": "logs", "_id": "d1", "_source": d[0].source},
                        {"_index": "logs", "_id": "d2", "_source": d[1].source},
                        {"_index": "", "_id": "", "_source": {}, "missing": true}
                    ]
                }]
            })
        );
    }

    #[test]
    fn sequence_limits_and_order() {
        // Three sequences by user; ordered by their last event.
        let d = docs(&[
            (1, 10, "process", "a"),
            (2, 11, "process", "b"),
            (3, 12, "file", "b"),
            (4, 13, "process", "c"),
            (5, 14, "file", "a"),
            (6, 15, "file", "c"),
        ]);
        let p = plan(
            "sequence by user [process where true] [file where true]",
            MAPPING,
        );
        let r = search(&p, &d, &opts(10, ResultPosition::Head)).unwrap();
        assert_eq!(sequence_ids(&r), [["d2", "d3"], ["d1", "d5"], ["d4", "d6"]]);
        let tail = search(&p, &d, &opts(1, ResultPosition::Tail)).unwrap();
        assert_eq!(sequence_ids(&tail), [["d4", "d6"]]);
        let head = plan(
            "sequence by user [process where true] [file where true] | head 2",
            MAPPING,
        );
        let r = search(&head, &d, &opts(10, ResultPosition::Tail)).unwrap();
        assert_eq!(sequence_ids(&r), [["d2", "d3"], ["d1", "d5"]]);
        assert_eq!(r.hits.total.value, 2);
    }

    #[test]
    fn sequence_without_keys_omits_join_keys() {
        let d = docs(&[(1, 10, "process", "a"), (2, 11, "file", "b")]);
        let p = plan("sequence [process where true] [file where true]", MAPPING);
        let r = search(&p, &d, &SearchOptions::default()).unwrap();
        let body = serde_json::to_value(&r).unwrap();
        assert!(body["hits"]["sequences"][0].get("join_keys").is_none());
    }

    #[test]
    fn samples_take_size_from_the_head_with_epoch_date_keys() {
        let d = docs(&[
            (1, 0, "process", "b"),
            (2, 0, "file", "b"),
            (3, 0, "process", "a"),
            (4, 0, "file", "a"),
        ]);
        let p = plan(
            "sample by day, user [process where true] [file where true]",
            MAPPING,
        );
        let r = search(&p, &d, &opts(1, ResultPosition::Tail)).unwrap();
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(
            body["hits"]["sequences"][0]["join_keys"],
            json!([1671235200000i64, "a"])
        );
        assert_eq!(sequence_ids(&r), [["d3", "d4"]]);
    }

    #[test]
    fn invalid_shapes_are_errors_not_panics() {
        let d = docs(&[(1, 10, "process", "a")]);
        let mut p = plan("sequence [process where true] [file where true]", MAPPING);
        p.stages[1].runs = 1_000;
        assert!(matches!(
            search(&p, &d, &SearchOptions::default()),
            Err(SearchError::Sequence(SequenceSpecError::BadRuns(1000)))
        ));
        let s = plan(
            "sample by user [process where true] [file where true]",
            MAPPING,
        );
        let zero = SearchOptions {
            max_samples_per_key: 0,
            ..SearchOptions::default()
        };
        assert!(matches!(
            search(&s, &d, &zero),
            Err(SearchError::Sample(SampleSpecError::ZeroSamplesPerKey))
        ));
    }
}
