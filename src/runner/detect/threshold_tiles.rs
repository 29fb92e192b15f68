//! A threshold rule over a range given by the caller (`hunt`, `test`): not
//! one count over the whole range — "3 failures" over a week of files is
//! not what the rule says — but the windows the schedule would have run
//! over the range's events (`to - from` wide, every `interval`, the last
//! ending at the range's end or its last event), oldest first, with the
//! same history between them as scheduled runs keep. So a hunt alerts
//! what the scheduled rule would have alerted, each alert with the id that
//! window would have given it.
//!
//! The events are read once (their time, groups and cardinality values
//! only), sorted by time, and every window counts its slice of them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::alert::threshold::ThresholdBucket;
use crate::rule::ThresholdRule;
use crate::schedule::window::Window;

/// The schedule's windows: how wide, how far apart (ms).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tiling {
    pub(super) width_ms: i64,
    pub(super) interval_ms: i64,
}

/// One event as the windows need it.
pub(super) struct Placed {
    pub(super) ts: i64,
    /// Indices into the interned groups.
    pub(super) groups: Vec<usize>,
    pub(super) distinct: Vec<String>,
}

/// The buckets of every window over `events`, oldest window first.
pub(super) fn tiled(
    rule: &ThresholdRule,
    groups: &[Vec<(String, Value)>],
    mut events: Vec<Placed>,
    range: Window,
    tiling: Tiling,
) -> Vec<ThresholdBucket> {
    events.sort_by_key(|e| e.ts);
    let (Some(first), Some(last)) = (events.first().map(|e| e.ts), events.last().map(|e| e.ts))
    else {
        return Vec::new();
    };
    let start = if range.start == Window::ALL.start {
        first
    } else {
        range.start.timestamp_millis()
    };
    let anchor = if range.end == Window::ALL.end {
        last
    } else {
        range.end.timestamp_millis()
    };
    let interval = tiling.interval_ms.max(1);
    let mut ends = Vec::new();
    let mut end = anchor;
    while end >= start {
        ends.push(end);
        end -= interval;
    }
    ends.reverse();
    let mut history: HashMap<usize, i64> = HashMap::new();
    let mut out = Vec::new();
    for end in ends {
        let from = end.saturating_sub(tiling.width_ms);
        let lo = events.partition_point(|e| e.ts < from);
        let hi = events.partition_point(|e| e.ts <= end);
        let mut tallies: HashMap<usize, Tally> = HashMap::new();
        for e in &events[lo..hi] {
            for &g in &e.groups {
                if history.get(&g).is_some_and(|since| e.ts <= *since) {
                    continue;
                }
                let t = tallies.entry(g).or_insert_with(|| Tally {
                    count: 0,
                    min_ts: e.ts,
                    max_ts: e.ts,
                    distinct: HashSet::new(),
                });
                t.count += 1;
                t.min_ts = t.min_ts.min(e.ts);
                t.max_ts = t.max_ts.max(e.ts);
                t.distinct.extend(e.distinct.iter().cloned());
            }
        }
        let Some(window_end) = DateTime::<Utc>::from_timestamp_millis(end) else {
            continue;
        };
        let mut reached: Vec<(usize, Tally)> = tallies
            .into_iter()
            .filter(|(_, t)| t.count >= rule.value)
            .filter(|(_, t)| {
                rule.cardinality
                    .first()
                    .is_none_or(|c| t.distinct.len() as u64 >= c.value)
            })
            .collect();
        reached.sort_by_key(|(g, t)| (t.max_ts, *g));
        for (g, t) in reached {
            history.insert(g, t.max_ts);
            out.push(ThresholdBucket {
                terms: groups[g].clone(),
                count: t.count,
                min_ts: t.min_ts,
                max_ts: t.max_ts,
                cardinality: rule
                    .cardinality
                    .first()
                    .map(|c| (c.field.clone(), t.distinct.len() as u64)),
                window_end,
            });
        }
    }
    out
}

struct Tally {
    count: u64,
    min_ts: i64,
    max_ts: i64,
    distinct: HashSet<String>,
}
