//! The new_terms detector: the events matching the query (and the rule's
//! filters and exceptions, as Kibana's `esFilter` filters every phase)
//! whose tuple of values of the rule's fields was not seen since the
//! history start; each new tuple alerts once, on its first document in
//! the window. Kibana's meaning (`rule_types/new_terms/*.ts`, see
//! `source::new_terms`): one tuple per combination of a document's values,
//! none when a field is missing; the history is `[history start, window
//! start]` (Kibana keeps a tuple whose first time is `> from`), with the
//! history start parsed relative to the window's end (`parseDateString`
//! with `forceNow: tuple.to`).
//!
//! A source that aggregates (a cluster) finds them itself, page by page
//! ([`EventSource::new_terms`], see `source::elasticsearch::new_terms`).
//! Otherwise (`hunt`'s files, memory, a cluster with aggregations off) the
//! events from the history start to the window's end are read — their
//! time and the rule's fields only — oldest first, keeping for each tuple
//! the time it was last seen: a document at `t` is the first of a new
//! tuple in a window ending at `e` when `t` is in the window (`e - width <
//! t <= e`) and the tuple was last seen before the history start `h(e)`.
//! Memory is one entry per distinct tuple (a 128-bit digest of its values
//! and a time), not per event.
//!
//! A range run (`hunt`, `test`) looks at the windows the schedule would
//! have run over the range (as threshold rules do, `threshold_tiles`): the
//! window ends every `interval` back from the range's end. Over all time
//! the range starts one history length after the first event: the files'
//! first `history_window_start` is history only, as a rule enabled then
//! would have had it — otherwise every tuple of the files would be new
//! once, at its first appearance.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::super::record::ExecutionRecord;
use super::super::run::RunError;
use super::threshold_tiles::Tiling;
use super::{note_source_warnings, Candidate, Hit};
use crate::eql::pushdown::field_values;
use crate::rule::NewTermsRule;
use crate::schedule::window::Window;
use crate::source::memory::timestamp_millis;
use crate::source::{EventSource, FetchRequest, NewTermsAsk, TimeRange};

pub(in crate::runner) struct NewTermsDetector<'r> {
    rule: &'r NewTermsRule,
    /// In a range run: the schedule's windows over the range.
    tiling: Option<Tiling>,
}

/// The windows a document can be new in: their ends are `anchor`,
/// `anchor - interval`, ... down to `first_end`; each is `width` wide.
#[derive(Clone, Copy, Debug)]
struct Ends {
    anchor: i64,
    first_end: i64,
    interval: i64,
    width: i64,
    /// The history start relative to a window's end (ms, negative).
    history_offset: i64,
}

impl Ends {
    /// The latest window end whose window holds `ts` (`end - width < ts
    /// <= end`): the one with the latest history start, so the one where
    /// the document is most likely new.
    fn latest_holding(&self, ts: i64) -> Option<i64> {
        let limit = ts.saturating_add(self.width); // ends must be < limit
        let end = if self.anchor < limit {
            self.anchor
        } else {
            let steps = (self.anchor - limit) / self.interval + 1;
            self.anchor - steps.saturating_mul(self.interval)
        };
        (end >= ts && end >= self.first_end).then_some(end)
    }
}

/// The walk: when each tuple was last seen, and the new ones found.
struct Walker {
    ends: Ends,
    /// By the tuple's key digest (see [`digest`]): 16 bytes a tuple
    /// however long its values, so a million tuples take tens of MB.
    last_seen: HashMap<u128, i64>,
    found: Vec<Candidate>,
    ordered_until: i64,
}

impl Walker {
    /// One event, in time order: its tuples that are new in a window.
    fn step(&mut self, ts: i64, hit: &Hit, tuples: Vec<String>) {
        let end = self.ends.latest_holding(ts);
        for key in tuples {
            let last = self.last_seen.entry(digest(&key)).or_insert(i64::MIN);
            if let Some(end) = end {
                let history_from = end.saturating_add(self.ends.history_offset);
                if *last < history_from {
                    let values: Vec<Value> = serde_json::from_str(&key).unwrap_or_default();
                    self.found.push(Candidate {
                        order: (ts, hit.position),
                        events: vec![Some(hit.clone())],
                        new_terms: Some(values),
                        ..Candidate::EMPTY
                    });
                }
            }
            *last = (*last).max(ts);
        }
    }
}

/// A tuple's key as the first 128 bits of its SHA-256: two of a million
/// tuples share one with a probability near 10^-27.
fn digest(key: &str) -> u128 {
    let d = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_le_bytes(first)
}

/// An event read for the local walk.
struct Read {
    ts: i64,
    hit: Hit,
    tuples: Vec<String>,
}

impl<'r> NewTermsDetector<'r> {
    pub(super) fn new(rule: &'r NewTermsRule) -> NewTermsDetector<'r> {
        NewTermsDetector { rule, tiling: None }
    }

    /// The detector of a range run: the schedule's windows over the range.
    pub(super) fn tiled(mut self, tiling: Tiling) -> NewTermsDetector<'r> {
        self.tiling = Some(tiling);
        self
    }

    /// The query as a query rule's exact clause, reading only the time and
    /// the rule's fields, ordered by the time.
    pub(super) fn request(&self, request: FetchRequest) -> FetchRequest {
        super::query::QueryDetector::new(&self.rule.query)
            .request_reading(request, self.rule.fields.iter().cloned())
    }

    /// The history start of the window ending at `end`.
    pub(in crate::runner) fn history_from(&self, end: DateTime<Utc>) -> DateTime<Utc> {
        end.checked_add_signed(chrono::TimeDelta::milliseconds(
            self.rule.history_window_start.offset_ms(),
        ))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The first document of each new tuple of the window (a range run:
    /// of each window over the range), oldest first.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        mut request: FetchRequest,
        window: Window,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        let patterns = request.indices.clone();
        let offset = self.rule.history_window_start.offset_ms();
        let ends = match self.tiling {
            None => {
                let history_from = self.history_from(window.end);
                request.range = TimeRange {
                    from: window.start,
                    to: window.end,
                };
                let ask = NewTermsAsk {
                    fields: self.rule.fields.clone(),
                    history_from,
                };
                if let Some(found) = source.new_terms(&request, &ask).await? {
                    note_source_warnings(&patterns, &found.warnings, record);
                    let mut out: Vec<Candidate> = found
                        .terms
                        .into_iter()
                        .enumerate()
                        .map(|(i, t)| Candidate {
                            order: (t.ts, i),
                            events: vec![Some(Hit {
                                index: Arc::from(t.doc.index),
                                id: Arc::from(t.doc.id),
                                ts: t.ts,
                                position: i,
                            })],
                            new_terms: Some(t.values),
                            ..Candidate::EMPTY
                        })
                        .collect();
                    out.sort_by_key(|c| c.order);
                    return Ok(out);
                }
                request.range.from = history_from.min(window.start);
                let end = window.end.timestamp_millis();
                Ends {
                    anchor: end,
                    first_end: end,
                    interval: 1,
                    width: end - window.start.timestamp_millis(),
                    history_offset: offset,
                }
            }
            Some(tiling) => {
                let all = window == Window::ALL;
                let span = if all {
                    self.span(source, &request).await?
                } else {
                    Some((
                        window.start.timestamp_millis(),
                        window.end.timestamp_millis(),
                    ))
                };
                let Some((first, last)) = span else {
                    return Ok(Vec::new());
                };
                // Over all time the files' first history length is
                // history only (see the module doc).
                let first_end = if all {
                    first.saturating_sub(offset)
                } else {
                    first
                };
                if first_end > last {
                    record.warnings.push(format!(
                        "the events span less than history_window_start ({}): no window of \
                         the range has its whole history in them, nothing is new",
                        self.rule.history_window_start
                    ));
                    return Ok(Vec::new());
                }
                if !all {
                    request.range.from = self.history_from(window.start);
                }
                Ends {
                    anchor: last,
                    first_end,
                    interval: tiling.interval_ms.max(1),
                    width: tiling.width_ms.max(1),
                    history_offset: offset,
                }
            }
        };
        self.walk(source, request, ends, record).await
    }

    /// The earliest and latest time of the range's events (a range run
    /// over all time places its windows by them).
    async fn span<S: EventSource>(
        &self,
        source: &S,
        request: &FetchRequest,
    ) -> Result<Option<(i64, i64)>, RunError> {
        let mut times = request.clone();
        times.source_fields = Some(
            std::iter::once(request.time_filter.primary.clone())
                .chain(request.time_filter.fallback.clone())
                .collect(),
        );
        let mut events = source.fetch(times).await?;
        let mut span: Option<(i64, i64)> = None;
        while let Some(doc) = events.next().await {
            if let Some(ts) = self.time_of(&request_fields(request), &doc?.source) {
                span = Some(span.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
            }
        }
        Ok(span)
    }

    /// Reads the events oldest first and walks them. Sources give them in
    /// time order; an event out of order (the fallback time of one without
    /// the override sorts last) makes the walk start again over the events
    /// sorted here.
    async fn walk<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        ends: Ends,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        let patterns = request.indices.clone();
        let time_fields = request_fields(&request);
        let mut walker = self.walker(ends);
        let mut events = source.fetch(request.clone()).await?;
        note_source_warnings(&patterns, events.warnings(), record);
        let mut position = 0usize;
        let mut in_order = true;
        let (mut fetched, mut skipped) = (0u64, 0u64);
        while let Some(doc) = events.next().await {
            let doc = doc?;
            fetched += 1;
            let Some(read) = self.read(&time_fields, doc, position) else {
                skipped += 1;
                continue;
            };
            position += 1;
            if read.ts < walker.ordered_until {
                in_order = false;
                break;
            }
            walker.ordered_until = read.ts;
            walker.step(read.ts, &read.hit, read.tuples);
        }
        if !in_order {
            drop(events);
            let mut all = Vec::new();
            let mut events = source.fetch(request).await?;
            (fetched, skipped, position) = (0, 0, 0);
            while let Some(doc) = events.next().await {
                fetched += 1;
                match self.read(&time_fields, doc?, position) {
                    Some(read) => {
                        position += 1;
                        all.push(read);
                    }
                    None => skipped += 1,
                }
            }
            all.sort_by_key(|r| (r.ts, r.hit.position));
            walker = self.walker(ends);
            for read in all {
                walker.step(read.ts, &read.hit, read.tuples);
            }
        }
        record.events_fetched += fetched;
        // Kibana's composite drops them too (no `missing_bucket`).
        record.events_skipped += skipped;
        let mut out = walker.found;
        out.sort_by_key(|c| c.order);
        Ok(out)
    }

    fn walker(&self, ends: Ends) -> Walker {
        Walker {
            ends,
            last_seen: HashMap::new(),
            found: Vec::new(),
            ordered_until: i64::MIN,
        }
    }

    /// An event's time and tuples; `None` without a time or a tuple.
    fn read(
        &self,
        time_fields: &[String],
        doc: crate::source::Document,
        position: usize,
    ) -> Option<Read> {
        let ts = self.time_of(time_fields, &doc.source)?;
        let tuples = tuples_of(&self.rule.fields, &doc.source);
        if tuples.is_empty() {
            return None;
        }
        Some(Read {
            ts,
            hit: Hit {
                index: Arc::from(doc.index),
                id: Arc::from(doc.id),
                ts,
                position,
            },
            tuples,
        })
    }

    fn time_of(&self, time_fields: &[String], doc: &Value) -> Option<i64> {
        time_fields
            .iter()
            .find_map(|f| field_values(doc, f).into_iter().find_map(timestamp_millis))
    }
}

/// The time fields of a request: the override, then the fallback.
fn request_fields(request: &FetchRequest) -> Vec<String> {
    std::iter::once(request.time_filter.primary.clone())
        .chain(request.time_filter.fallback.clone())
        .collect()
}

/// The tuples of a document as key texts (JSON arrays of the values in
/// field order): one per combination of its values, none when a field has
/// no value (Elasticsearch's composite `terms` sources).
pub(crate) fn tuples_of(fields: &[String], doc: &Value) -> Vec<String> {
    let mut tuples: Vec<Vec<&Value>> = vec![Vec::new()];
    for field in fields {
        let mut seen = HashSet::new();
        let values: Vec<&Value> = field_values(doc, field)
            .into_iter()
            .filter(|v| !v.is_null() && !v.is_array() && !v.is_object())
            .filter(|v| seen.insert(v.to_string()))
            .collect();
        if values.is_empty() {
            return Vec::new();
        }
        tuples = tuples
            .into_iter()
            .flat_map(|t| {
                values.iter().map(move |v| {
                    let mut t = t.clone();
                    t.push(*v);
                    t
                })
            })
            .collect();
    }
    tuples
        .into_iter()
        .map(|t| Value::Array(t.into_iter().cloned().collect()).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_has_one_tuple_per_combination_and_none_without_a_field() {
        let fields = vec!["host.id".to_string(), "user.name".to_string()];
        let doc = json!({"host": {"id": "h1"}, "user": {"name": ["a", "b", "a"]}});
        assert_eq!(tuples_of(&fields, &doc), [r#"["h1","a"]"#, r#"["h1","b"]"#]);
        assert!(tuples_of(&fields, &json!({"host": {"id": "h1"}})).is_empty());
        assert!(tuples_of(
            &fields,
            &json!({"host": {"id": "h1"}, "user": {"name": null}})
        )
        .is_empty());
        assert_eq!(
            tuples_of(&["port".to_string()], &json!({"port": 22})),
            ["[22]"]
        );
    }

    #[test]
    fn the_latest_window_holding_a_time() {
        // windows every 5 (ms), 9 wide, the last ending at 100, none
        // ending before 50
        let ends = Ends {
            anchor: 100,
            first_end: 50,
            interval: 5,
            width: 9,
            history_offset: -20,
        };
        assert_eq!(ends.latest_holding(100), Some(100));
        assert_eq!(ends.latest_holding(92), Some(100));
        assert_eq!(ends.latest_holding(91), Some(95));
        assert_eq!(ends.latest_holding(90), Some(95));
        assert_eq!(ends.latest_holding(101), None);
        assert_eq!(ends.latest_holding(50), Some(55));
        assert_eq!(ends.latest_holding(45), Some(50));
        assert_eq!(ends.latest_holding(42), Some(50));
        assert_eq!(ends.latest_holding(41), None);
        // one window (a scheduled run): (91, 100]
        let one = Ends {
            anchor: 100,
            first_end: 100,
            interval: 1,
            width: 9,
            history_offset: -20,
        };
        assert_eq!(one.latest_holding(91), None);
        assert_eq!(one.latest_holding(92), Some(100));
        assert_eq!(one.latest_holding(100), Some(100));
    }
}
