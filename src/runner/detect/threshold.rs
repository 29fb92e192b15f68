//! The threshold detector: the window's events that match the query (and
//! the rule's filters, not its exceptions: the same clauses as a query
//! rule's search) counted per group of threshold-field values, locally.
//! Kibana asks for the same with a composite aggregation
//! (`rule_types/threshold/build_threshold_aggregation.ts`): one `terms`
//! source per field without `missing_bucket`, so an event missing a field
//! is in no group; an event with several values of a field is in one
//! group per value (Elasticsearch's composite `terms` source); `min` /
//! `max` of the time field; a group alerts when its count is `>= value`
//! and, with a `cardinality`, its distinct values are `>= value` too.
//!
//! A source that aggregates (a cluster) is asked for the counts
//! ([`EventSource::count_groups`], Kibana's aggregation: see
//! `source::elasticsearch::groups`); other sources (`hunt`'s files, memory)
//! give the events, reading only the time, threshold and cardinality
//! fields, and they are counted here with the same meaning.
//!
//! Events already counted by an alert of their group are left out, as
//! Kibana's signal history does (`get_threshold_bucket_filters.ts`: a
//! group's events at or before its last alerted event): [`History`] maps a
//! group's terms hash to its terms and the time of that event.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::super::record::ExecutionRecord;
use super::super::run::RunError;
use super::threshold_tiles::{tiled, Placed, Tiling};
use super::{note_source_warnings, Candidate};
use crate::alert::threshold::{terms_hash, ThresholdBucket};
use crate::eql::pushdown::field_values;
use crate::rule::ThresholdRule;
use crate::schedule::window::Window;
use crate::source::memory::timestamp_millis;
use crate::source::{EventSource, Excluded, FetchRequest, Group, GroupCount};

/// Most alerted groups excluded in an aggregation's query.
const MAX_PUSHED_EXCLUSIONS: usize = 1_000;

/// A threshold rule's alerted groups, by terms hash.
pub(in crate::runner) type History = HashMap<String, Seen>;

/// An alerted group: its terms, and its last counted event (epoch ms).
#[derive(Clone, Debug, PartialEq)]
pub(in crate::runner) struct Seen {
    pub(in crate::runner) terms: Vec<(String, Value)>,
    pub(in crate::runner) last: i64,
}

pub(in crate::runner) struct ThresholdDetector<'r> {
    rule: &'r ThresholdRule,
    /// In a range run (`hunt`, `test`): the schedule's windows over the
    /// range (see `threshold_tiles`); `None` in a scheduled window.
    tiling: Option<Tiling>,
}

/// One group's tally in a window.
struct Tally {
    terms: Vec<(String, Value)>,
    /// Events of the group at or before this time were alerted already.
    since: Option<i64>,
    count: u64,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    distinct: HashSet<String>,
}

impl<'r> ThresholdDetector<'r> {
    pub(super) fn new(rule: &'r ThresholdRule) -> ThresholdDetector<'r> {
        ThresholdDetector { rule, tiling: None }
    }

    /// The detector of a range run: the schedule's windows over the range.
    pub(super) fn tiled(mut self, tiling: Tiling) -> ThresholdDetector<'r> {
        self.tiling = Some(tiling);
        self
    }

    /// The query as a query rule's exact clause, reading only the time,
    /// threshold and cardinality fields.
    pub(super) fn request(&self, request: FetchRequest) -> FetchRequest {
        let fields = self.rule.fields.iter().cloned();
        let cardinality = self.rule.cardinality.iter().map(|c| c.field.clone());
        super::query::QueryDetector::new(&self.rule.query)
            .request_reading(request, fields.chain(cardinality))
    }

    /// The groups of the window that reach the threshold, oldest last
    /// event first, each as a match carrying its bucket.
    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        history: &History,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        if let Some(tiling) = self.tiling {
            let (groups, events) = self.placed(source, request, record).await?;
            return Ok(tiled(self.rule, &groups, events, window, tiling)
                .into_iter()
                .map(candidate)
                .collect());
        }
        let window_end = window.end;
        let patterns = request.indices.clone();
        let asked = GroupCount {
            fields: self.rule.fields.clone(),
            min_count: self.rule.value,
            cardinality: self
                .rule
                .cardinality
                .first()
                .map(|c| (c.field.clone(), c.value)),
            exclude: history
                .values()
                .map(|s| Excluded {
                    terms: s.terms.clone(),
                    last: s.last,
                })
                .collect(),
        };
        // Each alerted group is a `must_not` clause of the aggregation's
        // query; past a thousand (a search's clause limit,
        // `indices.query.bool.max_clause_count`, is near) the events are
        // counted here instead: slower, never refused.
        let pushed = if asked.exclude.len() <= MAX_PUSHED_EXCLUSIONS {
            source.count_groups(&request, &asked).await?
        } else {
            None
        };
        let groups = match pushed {
            Some(found) => {
                note_source_warnings(&patterns, &found.warnings, record);
                found.groups
            }
            None => self.count(source, request, history, record).await?,
        };
        let mut out: Vec<Candidate> = groups
            .into_iter()
            .filter(|g| reaches(g, &asked))
            .map(|g| {
                // No readable time (cannot happen inside a time range):
                // the window's end stands in.
                let end = window_end.timestamp_millis();
                let max_ts = g.max_ts.unwrap_or(end);
                candidate(ThresholdBucket {
                    cardinality: asked
                        .cardinality
                        .as_ref()
                        .map(|(field, _)| (field.clone(), g.distinct.unwrap_or(0))),
                    terms: g.terms,
                    count: g.count,
                    min_ts: g.min_ts.unwrap_or(max_ts),
                    max_ts,
                    window_end,
                })
            })
            .collect();
        out.sort_by_key(|c| c.order);
        Ok(out)
    }

    /// Every event of the range with its time, its groups (interned) and
    /// its cardinality values; events without a time or a group are
    /// skipped.
    async fn placed<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        record: &mut ExecutionRecord,
    ) -> Result<(Vec<Vec<(String, Value)>>, Vec<Placed>), RunError> {
        let patterns = request.indices.clone();
        let time_fields: Vec<String> = std::iter::once(request.time_filter.primary.clone())
            .chain(request.time_filter.fallback.clone())
            .collect();
        let mut events = source.fetch(request).await?;
        note_source_warnings(&patterns, events.warnings(), record);
        let mut interned: HashMap<Vec<String>, usize> = HashMap::new();
        let mut groups: Vec<Vec<(String, Value)>> = Vec::new();
        let mut out = Vec::new();
        while let Some(doc) = events.next().await {
            let doc = doc?;
            record.events_fetched += 1;
            let ts = time_fields.iter().find_map(|f| {
                field_values(&doc.source, f)
                    .into_iter()
                    .find_map(timestamp_millis)
            });
            let of = self.groups_of(&doc.source);
            let Some(ts) = ts.filter(|_| !of.is_empty()) else {
                record.events_skipped += 1;
                continue;
            };
            let ids = of
                .into_iter()
                .map(|terms| {
                    let key: Vec<String> = terms.iter().map(|(_, v)| v.to_string()).collect();
                    *interned.entry(key).or_insert_with(|| {
                        groups.push(terms);
                        groups.len() - 1
                    })
                })
                .collect();
            out.push(Placed {
                ts,
                groups: ids,
                distinct: self.distinct_of(&doc.source),
            });
        }
        Ok((groups, out))
    }

    fn distinct_of(&self, doc: &Value) -> Vec<String> {
        match self.rule.cardinality.first() {
            Some(c) => field_values(doc, &c.field)
                .into_iter()
                .filter(|v| !v.is_null())
                .map(Value::to_string)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every group of the window's events, counted here.
    async fn count<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        history: &History,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Group>, RunError> {
        let patterns = request.indices.clone();
        let time_fields: Vec<String> = std::iter::once(request.time_filter.primary.clone())
            .chain(request.time_filter.fallback.clone())
            .collect();
        let mut events = source.fetch(request).await?;
        note_source_warnings(&patterns, events.warnings(), record);
        let mut tallies: HashMap<Vec<String>, Tally> = HashMap::new();
        let mut missing = 0u64;
        while let Some(doc) = events.next().await {
            let doc = doc?;
            record.events_fetched += 1;
            let ts = time_fields.iter().find_map(|f| {
                field_values(&doc.source, f)
                    .into_iter()
                    .find_map(timestamp_millis)
            });
            let groups = self.groups_of(&doc.source);
            if groups.is_empty() {
                missing += 1;
                continue;
            }
            let distinct = self.distinct_of(&doc.source);
            for terms in groups {
                let key: Vec<String> = terms.iter().map(|(_, v)| v.to_string()).collect();
                let tally = tallies.entry(key).or_insert_with(|| Tally {
                    since: history.get(&terms_hash(&terms)).map(|s| s.last),
                    terms,
                    count: 0,
                    min_ts: None,
                    max_ts: None,
                    distinct: HashSet::new(),
                });
                if let (Some(since), Some(ts)) = (tally.since, ts) {
                    if ts <= since {
                        continue;
                    }
                }
                tally.count += 1;
                if let Some(ts) = ts {
                    tally.min_ts = Some(tally.min_ts.map_or(ts, |m| m.min(ts)));
                    tally.max_ts = Some(tally.max_ts.map_or(ts, |m| m.max(ts)));
                }
                tally.distinct.extend(distinct.iter().cloned());
            }
        }
        // Kibana's composite aggregation drops them too (no
        // `missing_bucket`): counted as skipped, not an error.
        record.events_skipped += missing;
        let with_cardinality = !self.rule.cardinality.is_empty();
        Ok(tallies
            .into_values()
            .map(|t| Group {
                distinct: with_cardinality.then_some(t.distinct.len() as u64),
                terms: t.terms,
                count: t.count,
                min_ts: t.min_ts,
                max_ts: t.max_ts,
            })
            .collect())
    }

    /// The groups an event is in: one per combination of its values of
    /// the threshold fields (none when a field is missing); one empty group
    /// when the rule has no fields.
    fn groups_of(&self, doc: &Value) -> Vec<Vec<(String, Value)>> {
        let mut groups: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for field in &self.rule.fields {
            let mut values: Vec<&Value> = field_values(doc, field)
                .into_iter()
                .filter(|v| !v.is_null() && !v.is_array() && !v.is_object())
                .collect();
            // A value repeated in one event counts the event once.
            let mut seen = HashSet::new();
            values.retain(|v| seen.insert(v.to_string()));
            if values.is_empty() {
                return Vec::new();
            }
            groups = groups
                .into_iter()
                .flat_map(|g| {
                    values.iter().map(move |v| {
                        let mut g = g.clone();
                        g.push((field.clone(), (*v).clone()));
                        g
                    })
                })
                .collect();
        }
        groups
    }
}

/// A bucket as a match, ordered by its last event.
fn candidate(bucket: ThresholdBucket) -> Candidate {
    Candidate {
        order: (bucket.max_ts, 0),
        events: Vec::new(),
        threshold: Some(Box::new(bucket)),
        ..Candidate::EMPTY
    }
}

/// Whether a group reaches the rule's count (and cardinality).
fn reaches(group: &Group, asked: &GroupCount) -> bool {
    group.count > 0
        && group.count >= asked.min_count
        && asked
            .cardinality
            .as_ref()
            .is_none_or(|(_, need)| group.distinct.is_some_and(|have| have >= *need))
}
