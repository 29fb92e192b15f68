//! The sequence matcher: Elasticsearch's `sequence` semantics, fed one event
//! at a time in ordinal order, with memory bounded by the live join keys.
//!
//! The matcher knows nothing of predicates or fields. The caller evaluates,
//! for every event, which stages (and the `until` stage) it matches and the
//! join keys it yields for each of them, and pushes that in [`Ordinal`] order.
//! Completed sequences come out of [`SequenceMatcher::drain_completed`].
//!
//! Elasticsearch runs sequences stage by stage over pages of hits
//! (`TumblingWindow`, `SequenceMatcher`, `KeyToSequences` in
//! `x-pack/plugin/eql`); the rules below are what that algorithm amounts to
//! when replayed event by event:
//!
//! * A hit on stage `s` (not the first positive stage) takes, for its key, the
//!   most recent partial sequence waiting at the previous positive stage and
//!   drops every older one. So at most one partial sequence waits per
//!   (stage, key): a newer one replaces the older ("most recent" strategy).
//! * One event is processed for the stages from last to first, so it can
//!   complete one sequence and start (or advance) another, but never fills two
//!   stages of the same sequence (ordinals within a sequence strictly increase).
//! * `maxspan` is inclusive: `last.timestamp - first.timestamp <= maxspan`; a
//!   partial sequence taken by a hit that is too late is dropped.
//! * `until`: a hit drops every partial sequence of its key (Elasticsearch
//!   rejects a sequence when an until ordinal lies in `[sequence.last, hit]`,
//!   both ends inclusive). A completed sequence is never invalidated.
//! * `with runs=N` is the stage repeated N times.
//! * Missing-event stages (`![...]`) never take part in matching; a sequence
//!   whose positive stages completed is then checked as Elasticsearch's
//!   `TumblingWindow.checkMissingEvents` does, on millisecond timestamps:
//!   a middle stage must have no event of the key strictly between its
//!   neighbouring positive events; leading stages look at the last event before
//!   the first positive one, trailing stages at the first event after the last
//!   positive one, compared with `maxspan`. A trailing decision waits until
//!   the data clock shows that `maxspan` has elapsed (or [`SequenceMatcher::finish`]).
//!
//! Completed sequences are reported in the order Elasticsearch returns them
//! (see [`SequenceMatch::es_order`]); head/tail and `size` belong to `search`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The value of the tiebreaker field of an event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TieBreaker {
    Int(i64),
    Float(f64),
    Str(String),
}

impl TieBreaker {
    fn rank(&self) -> u8 {
        match self {
            TieBreaker::Int(_) | TieBreaker::Float(_) => 0,
            TieBreaker::Str(_) => 1,
        }
    }
}

impl Ord for TieBreaker {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (TieBreaker::Int(a), TieBreaker::Int(b)) => a.cmp(b),
            (TieBreaker::Float(a), TieBreaker::Float(b)) => a.total_cmp(b),
            (TieBreaker::Int(a), TieBreaker::Float(b)) => (*a as f64).total_cmp(b),
            (TieBreaker::Float(a), TieBreaker::Int(b)) => a.total_cmp(&(*b as f64)),
            (TieBreaker::Str(a), TieBreaker::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for TieBreaker {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for TieBreaker {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for TieBreaker {}

/// The position of an event in the stream.
///
/// Total order: timestamp, then events *with* a tiebreaker before those
/// without (Elasticsearch PR #65078), then the tiebreaker, then the input
/// index (Elasticsearch adds an implicit shard/doc tiebreaker since 7.13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordinal {
    /// Epoch milliseconds.
    pub timestamp: i64,
    pub tiebreaker: Option<TieBreaker>,
    /// Position in the input; makes ordinals unique.
    pub index: u64,
}

impl Ordinal {
    pub fn new(timestamp: i64, tiebreaker: Option<TieBreaker>, index: u64) -> Self {
        Ordinal {
            timestamp,
            tiebreaker,
            index,
        }
    }
}

impl Ord for Ordinal {
    fn cmp(&self, other: &Self) -> Ordering {
        self.timestamp
            .cmp(&other.timestamp)
            .then_with(|| match (&self.tiebreaker, &other.tiebreaker) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| self.index.cmp(&other.index))
    }
}

impl PartialOrd for Ordinal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One stage as written: `[...]` or `![...]`, with its `runs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    pub missing: bool,
    /// `with runs=N`; 1 when absent.
    pub runs: u32,
}

impl StageSpec {
    pub fn positive() -> Self {
        StageSpec {
            missing: false,
            runs: 1,
        }
    }

    pub fn missing() -> Self {
        StageSpec {
            missing: true,
            runs: 1,
        }
    }

    pub fn with_runs(self, runs: u32) -> Self {
        StageSpec { runs, ..self }
    }
}

/// The shape of a sequence query, stages as written (runs not expanded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceSpec {
    pub stages: Vec<StageSpec>,
    pub has_until: bool,
    /// `with maxspan=`, in milliseconds.
    pub maxspan_ms: Option<u64>,
}

/// Resource limits of one matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Partial sequences kept at most. Beyond it the one with the oldest
    /// first event is dropped and counted in [`Stats::overflow`]. Matters for
    /// sequences without `maxspan`, whose state is otherwise unbounded.
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pending: 100_000,
        }
    }
}

/// Counters describing what the matcher did and holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Partial sequences waiting for their next stage now.
    pub pending: usize,
    /// Sequences whose positive stages completed, waiting for a trailing
    /// missing-event decision now.
    pub awaiting_missing: usize,
    /// Completed sequences not yet drained.
    pub completed_buffered: usize,
    /// Partial sequences dropped because `maxspan` elapsed on the data clock.
    pub evicted: u64,
    /// Partial sequences dropped because of [`Limits::max_pending`].
    pub overflow: u64,
    /// Partial sequences a hit arrived for too late (`maxspan` exceeded).
    pub rejected_maxspan: u64,
    /// Partial sequences dropped by an `until` hit.
    pub rejected_until: u64,
    /// Sequences discarded by a missing-event stage.
    pub rejected_missing: u64,
    /// Partial sequences replaced by a more recent one at the same stage.
    pub replaced: u64,
    /// Sequences completed in total.
    pub completed: u64,
    /// Partial sequences left over at [`SequenceMatcher::finish`].
    pub abandoned: u64,
}

/// Which stage an event matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HitStage {
    /// Index into [`SequenceSpec::stages`] (as written, before runs).
    Stage(usize),
    Until,
}

/// One stage an event matches, with its join keys for that stage (one per
/// value combination of multi-valued keys; one `K` when the query has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageHit<K> {
    pub stage: HitStage,
    pub keys: Vec<K>,
}

/// A completed sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceMatch<K, E> {
    pub key: K,
    /// One entry per stage after runs expansion; `None` for a missing-event
    /// stage (Elasticsearch returns a placeholder there).
    pub events: Vec<Option<E>>,
    /// Ordinal of the first positive event.
    pub first: Ordinal,
    /// Ordinal of the last positive event.
    pub last: Ordinal,
    /// Order in which the matcher decided it (breaks ties).
    pub decided: u64,
}

impl<K, E> SequenceMatch<K, E> {
    /// The order of `hits.sequences` in Elasticsearch: its completed set is
    /// sorted by the sequence's last ordinal (`Sequence.compareTo` compares
    /// `ordinal()`, the current stage's); ties (one event completing
    /// sequences of several keys) keep the order they were found in.
    pub fn es_order(&self, other: &Self) -> Ordering {
        self.last
            .cmp(&other.last)
            .then_with(|| self.first.cmp(&other.first))
            .then_with(|| self.decided.cmp(&other.decided))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceSpecError {
    #[error("expected at least one stage that is not a missing-event stage, found none")]
    NoPositiveStage,
    #[error("expected runs between 1 and 100, found {0}")]
    BadRuns(u32),
}

/// Where a missing-event stage sits relative to the positive ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum MissingPlace {
    Leading,
    Middle,
    Trailing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Expanded {
    /// Stage index as written.
    orig: usize,
    missing: Option<MissingPlace>,
}

/// A sequence in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Partial<E> {
    events: Vec<Option<E>>,
    first: Ordinal,
    last: Ordinal,
    /// Timestamp of the last leading missing event before `first`.
    last_leading: Option<i64>,
    /// A middle missing-event stage saw an event: the sequence still takes
    /// part in matching (as in Elasticsearch) but is discarded on completion.
    doomed: bool,
    /// Identity in the eviction index.
    gen: u64,
}

/// The two most recent distinct timestamps of a missing-event stage for one
/// key; enough to answer "latest event strictly before t" for any t not
/// older than the newest event seen (inputs arrive in order).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct MissingHistory {
    latest: i64,
    before_latest: Option<i64>,
}

impl MissingHistory {
    fn record(&mut self, ts: i64) {
        if ts > self.latest {
            self.before_latest = Some(self.latest);
            self.latest = ts;
        } else if ts < self.latest && self.before_latest.is_none_or(|b| ts > b) {
            // Out-of-order input; keep the answer as good as two slots allow.
            self.before_latest = Some(ts);
        }
    }

    fn last_before(&self, ts: i64) -> Option<i64> {
        if self.latest < ts {
            Some(self.latest)
        } else {
            self.before_latest.filter(|b| *b < ts)
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyState<E> {
    /// Indexed by expanded stage; only positive, non-final stages are used.
    pending: Vec<Option<Partial<E>>>,
    /// Indexed by expanded stage; only missing-event stages are used.
    missing: Vec<Option<MissingHistory>>,
}

impl<E> KeyState<E> {
    fn new(stages: usize) -> Self {
        KeyState {
            pending: (0..stages).map(|_| None).collect(),
            missing: vec![None; stages],
        }
    }

    fn is_empty(&self) -> bool {
        self.pending.iter().all(Option::is_none) && self.missing.iter().all(Option::is_none)
    }
}

/// A sequence whose positive stages completed, waiting for the first event
/// of a trailing missing-event stage (or for `maxspan` to elapse).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Awaiting<K, E> {
    key: K,
    events: Vec<Option<E>>,
    first: Ordinal,
    last: Ordinal,
    /// Timestamp the first trailing event is measured from.
    reference: i64,
}

/// The sequence matcher. Serializable so a daemon can persist it between
/// runs and never cut a sequence at a run boundary.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, E: Serialize",
    deserialize = "K: DeserializeOwned + Eq + Hash, E: DeserializeOwned"
))]
pub struct SequenceMatcher<K, E> {
    spec: SequenceSpec,
    limits: Limits,
    stages: Vec<Expanded>,
    first_positive: usize,
    last_positive: usize,
    #[serde(with = "pairs")]
    keys: HashMap<K, KeyState<E>>,
    /// Partial sequences by (first timestamp, gen) -> (key, stage), for
    /// eviction when maxspan elapses or the limit is hit.
    #[serde(with = "pairs")]
    pending_index: BTreeMap<(i64, u64), (K, usize)>,
    awaiting: BTreeMap<u64, Awaiting<K, E>>,
    /// (deadline, id): decided as complete once the data clock passes it.
    awaiting_deadlines: BTreeSet<(i64, u64)>,
    #[serde(with = "pairs")]
    awaiting_by_key: HashMap<K, Vec<u64>>,
    completed: Vec<SequenceMatch<K, E>>,
    watermark: Option<i64>,
    last_sweep: Option<i64>,
    next_gen: u64,
    next_decided: u64,
    stats: Stats,
}

impl<K, E> SequenceMatcher<K, E>
where
    K: Clone + Eq + Hash,
    E: Clone,
{
    pub fn new(spec: SequenceSpec, limits: Limits) -> Result<Self, SequenceSpecError> {
        let mut flat = Vec::new();
        for (orig, stage) in spec.stages.iter().enumerate() {
            if !(1..=100).contains(&stage.runs) {
                return Err(SequenceSpecError::BadRuns(stage.runs));
            }
            for _ in 0..stage.runs {
                flat.push((orig, stage.missing));
            }
        }
        let first_positive = flat
            .iter()
            .position(|(_, missing)| !missing)
            .ok_or(SequenceSpecError::NoPositiveStage)?;
        let last_positive = flat
            .iter()
            .rposition(|(_, missing)| !missing)
            .ok_or(SequenceSpecError::NoPositiveStage)?;
        let stages = flat
            .iter()
            .enumerate()
            .map(|(i, (orig, missing))| Expanded {
                orig: *orig,
                missing: missing.then(|| {
                    if i < first_positive {
                        MissingPlace::Leading
                    } else if i > last_positive {
                        MissingPlace::Trailing
                    } else {
                        MissingPlace::Middle
                    }
                }),
            })
            .collect();
        Ok(SequenceMatcher {
            spec,
            limits,
            stages,
            first_positive,
            last_positive,
            keys: HashMap::new(),
            pending_index: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            awaiting_deadlines: BTreeSet::new(),
            awaiting_by_key: HashMap::new(),
            completed: Vec::new(),
            watermark: None,
            last_sweep: None,
            next_gen: 0,
            next_decided: 0,
            stats: Stats::default(),
        })
    }

    pub fn spec(&self) -> &SequenceSpec {
        &self.spec
    }

    /// Number of stages after `runs` expansion (the length of every
    /// [`SequenceMatch::events`]).
    pub fn expanded_len(&self) -> usize {
        self.stages.len()
    }

    /// Feeds one event. Events must arrive in [`Ordinal`] order; `hits` lists
    /// every stage (and `until`) the event matches with its keys there.
    pub fn push(&mut self, event: E, ord: &Ordinal, hits: &[StageHit<K>]) {
        let ts = ord.timestamp;
        // The event's own timestamp is a data clock: nothing later is older.
        self.advance_watermark(ts);

        // Trailing missing-event stages: the first event after the last
        // positive one decides a waiting sequence.
        for hit in hits {
            if let HitStage::Stage(orig) = hit.stage {
                if self.is_trailing_missing(orig) {
                    for key in &hit.keys {
                        self.trailing_event(key, ts);
                    }
                }
            }
        }

        // Positive stages from last to first: an event may complete (or
        // advance) one sequence and start another, never fill two stages of
        // one sequence.
        for stage in (0..self.stages.len()).rev() {
            let info = self.stages[stage];
            if info.missing.is_some() {
                continue;
            }
            for hit in hits {
                if hit.stage == HitStage::Stage(info.orig) {
                    for key in &hit.keys {
                        self.match_stage(stage, key, &event, ord);
                    }
                }
            }
        }

        if self.spec.has_until {
            for hit in hits {
                if hit.stage == HitStage::Until {
                    for key in &hit.keys {
                        self.until(key);
                    }
                }
            }
        }

        // Missing-event history, recorded last: every check above asks for
        // events strictly before a timestamp.
        for hit in hits {
            if let HitStage::Stage(orig) = hit.stage {
                let missing_stages: Vec<usize> = (0..self.stages.len())
                    .filter(|s| self.stages[*s].orig == orig && self.stages[*s].missing.is_some())
                    .collect();
                if missing_stages.is_empty() {
                    continue;
                }
                for key in &hit.keys {
                    let n = self.stages.len();
                    let state = self
                        .keys
                        .entry(key.clone())
                        .or_insert_with(|| KeyState::new(n));
                    for s in &missing_stages {
                        match &mut state.missing[*s] {
                            Some(history) => history.record(ts),
                            slot @ None => {
                                *slot = Some(MissingHistory {
                                    latest: ts,
                                    before_latest: None,
                                })
                            }
                        }
                    }
                }
            }
        }
    }

    /// Tells the matcher that no event older than `ts` (epoch ms) will come:
    /// partial sequences that can no longer fit in `maxspan` are evicted and
    /// trailing missing-event stages whose `maxspan` elapsed are decided.
    pub fn advance_watermark(&mut self, ts: i64) {
        if self.watermark.is_some_and(|w| ts <= w) {
            return;
        }
        self.watermark = Some(ts);
        let Some(maxspan) = self.maxspan() else {
            return;
        };

        // A partial sequence whose first event is more than maxspan before
        // the clock cannot take any future event.
        while let Some((&(first_ts, gen), _)) = self.pending_index.iter().next() {
            if first_ts.saturating_add(maxspan) >= ts {
                break;
            }
            if let Some((key, stage)) = self.pending_index.remove(&(first_ts, gen)) {
                self.remove_pending(&key, stage);
                self.stats.evicted += 1;
            }
        }

        // Any future trailing event is now more than maxspan away.
        while let Some(&(deadline, id)) = self.awaiting_deadlines.iter().next() {
            if deadline >= ts {
                break;
            }
            self.awaiting_deadlines.remove(&(deadline, id));
            if let Some(waiting) = self.take_awaiting(id) {
                self.emit(waiting.key, waiting.events, waiting.first, waiting.last);
            }
        }

        // Missing-event history older than maxspan can no longer change a
        // decision; sweep it about once per maxspan of data time.
        if self
            .last_sweep
            .is_none_or(|last| ts.saturating_sub(last) > maxspan)
        {
            self.last_sweep = Some(ts);
            let horizon = ts.saturating_sub(maxspan);
            self.keys.retain(|_, state| {
                for slot in state.missing.iter_mut() {
                    if slot.is_some_and(|h| h.latest < horizon) {
                        *slot = None;
                    }
                }
                !state.is_empty()
            });
        }
    }

    /// End of input (query mode): waiting trailing missing-event stages saw
    /// no event, so those sequences complete; partial sequences are dropped.
    pub fn finish(&mut self) {
        let ids: Vec<u64> = self.awaiting.keys().copied().collect();
        for id in ids {
            if let Some(waiting) = self.take_awaiting(id) {
                self.emit(waiting.key, waiting.events, waiting.first, waiting.last);
            }
        }
        self.awaiting_deadlines.clear();
        self.stats.abandoned += self.pending_index.len() as u64;
        self.pending_index.clear();
        self.keys.clear();
    }

    /// Completed sequences found since the last call, in the order they were
    /// decided. Sort with [`SequenceMatch::es_order`] for Elasticsearch's
    /// response order.
    pub fn drain_completed(&mut self) -> Vec<SequenceMatch<K, E>> {
        std::mem::take(&mut self.completed)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            pending: self.pending_index.len(),
            awaiting_missing: self.awaiting.len(),
            completed_buffered: self.completed.len(),
            ..self.stats
        }
    }

    fn maxspan(&self) -> Option<i64> {
        self.spec
            .maxspan_ms
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX))
    }

    /// Elasticsearch's `exceedsMaxSpan`: strictly more than maxspan apart;
    /// never without a maxspan.
    fn exceeds_maxspan(&self, from: i64, to: i64) -> bool {
        self.maxspan().is_some_and(|m| to.saturating_sub(from) > m)
    }

    fn is_trailing_missing(&self, orig: usize) -> bool {
        self.stages
            .iter()
            .any(|s| s.orig == orig && s.missing == Some(MissingPlace::Trailing))
    }

    fn previous_positive(&self, stage: usize) -> Option<usize> {
        (0..stage).rev().find(|s| self.stages[*s].missing.is_none())
    }

    fn last_missing_before(&self, key: &K, stage: usize, ts: i64) -> Option<i64> {
        self.keys
            .get(key)
            .and_then(|state| state.missing[stage])
            .and_then(|h| h.last_before(ts))
    }

    fn match_stage(&mut self, stage: usize, key: &K, event: &E, ord: &Ordinal) {
        if stage == self.first_positive {
            let last_leading = (0..stage)
                .filter_map(|s| self.last_missing_before(key, s, ord.timestamp))
                .max();
            let mut events = vec![None; self.stages.len()];
            events[stage] = Some(event.clone());
            let partial = Partial {
                events,
                first: ord.clone(),
                last: ord.clone(),
                last_leading,
                doomed: false,
                gen: 0,
            };
            if stage == self.last_positive {
                self.try_complete(key.clone(), partial);
            } else {
                self.put_pending(stage, key, partial);
            }
            return;
        }

        let Some(previous) = self.previous_positive(stage) else {
            return;
        };
        let Some(mut partial) = self.take_pending(key, previous) else {
            return;
        };
        if partial.last >= *ord {
            // Out-of-order input; the partial cannot precede this event.
            self.put_pending(previous, key, partial);
            return;
        }
        if self.exceeds_maxspan(partial.first.timestamp, ord.timestamp) {
            self.stats.rejected_maxspan += 1;
            return;
        }
        for middle in previous + 1..stage {
            if self
                .last_missing_before(key, middle, ord.timestamp)
                .is_some_and(|t| t > partial.last.timestamp)
            {
                partial.doomed = true;
            }
        }
        partial.events[stage] = Some(event.clone());
        partial.last = ord.clone();
        if stage == self.last_positive {
            self.try_complete(key.clone(), partial);
        } else {
            self.put_pending(stage, key, partial);
        }
    }

    fn try_complete(&mut self, key: K, partial: Partial<E>) {
        if partial.doomed {
            self.stats.rejected_missing += 1;
            return;
        }
        let leading = self.stages[0].missing.is_some();
        let trailing = self.stages[self.stages.len() - 1].missing.is_some();
        let reference = match (leading, trailing) {
            (false, false) => None,
            (true, false) => {
                let complete = partial
                    .last_leading
                    .is_none_or(|t| self.exceeds_maxspan(t, partial.last.timestamp));
                if !complete {
                    self.stats.rejected_missing += 1;
                    return;
                }
                None
            }
            (false, true) => Some(partial.first.timestamp),
            // Elasticsearch completes a sequence with both leading and
            // trailing stages outright when no leading event exists.
            (true, true) => partial.last_leading,
        };
        match reference {
            None => self.emit(key, partial.events, partial.first, partial.last),
            Some(reference) => {
                let id = self.next_gen;
                self.next_gen += 1;
                if let Some(maxspan) = self.maxspan() {
                    let deadline = reference.saturating_add(maxspan);
                    if self.watermark.is_some_and(|w| deadline < w) {
                        // The data clock is already past the point where a
                        // trailing event could still be close enough.
                        self.emit(key, partial.events, partial.first, partial.last);
                        return;
                    }
                    self.awaiting_deadlines.insert((deadline, id));
                }
                self.awaiting_by_key
                    .entry(key.clone())
                    .or_default()
                    .push(id);
                self.awaiting.insert(
                    id,
                    Awaiting {
                        key,
                        events: partial.events,
                        first: partial.first,
                        last: partial.last,
                        reference,
                    },
                );
            }
        }
    }

    fn trailing_event(&mut self, key: &K, ts: i64) {
        let Some(ids) = self.awaiting_by_key.get(key) else {
            return;
        };
        let ready: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| self.awaiting.get(id).is_some_and(|w| ts > w.last.timestamp))
            .collect();
        for id in ready {
            if let Some(waiting) = self.take_awaiting(id) {
                if let Some(maxspan) = self.maxspan() {
                    self.awaiting_deadlines
                        .remove(&(waiting.reference.saturating_add(maxspan), id));
                }
                if self.exceeds_maxspan(waiting.reference, ts) {
                    self.emit(waiting.key, waiting.events, waiting.first, waiting.last);
                } else {
                    self.stats.rejected_missing += 1;
                }
            }
        }
    }

    fn take_awaiting(&mut self, id: u64) -> Option<Awaiting<K, E>> {
        let waiting = self.awaiting.remove(&id)?;
        if let Some(ids) = self.awaiting_by_key.get_mut(&waiting.key) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.awaiting_by_key.remove(&waiting.key);
            }
        }
        Some(waiting)
    }

    fn emit(&mut self, key: K, events: Vec<Option<E>>, first: Ordinal, last: Ordinal) {
        let decided = self.next_decided;
        self.next_decided += 1;
        self.stats.completed += 1;
        self.completed.push(SequenceMatch {
            key,
            events,
            first,
            last,
            decided,
        });
    }

    fn until(&mut self, key: &K) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        let mut dropped = Vec::new();
        for slot in state.pending.iter_mut() {
            if let Some(partial) = slot.take() {
                dropped.push((partial.first.timestamp, partial.gen));
            }
        }
        let empty = state.is_empty();
        if empty {
            self.keys.remove(key);
        }
        for index in dropped {
            self.pending_index.remove(&index);
            self.stats.rejected_until += 1;
        }
    }

    fn put_pending(&mut self, stage: usize, key: &K, mut partial: Partial<E>) {
        let n = self.stages.len();
        partial.gen = self.next_gen;
        self.next_gen += 1;
        let index = (partial.first.timestamp, partial.gen);
        let state = self
            .keys
            .entry(key.clone())
            .or_insert_with(|| KeyState::new(n));
        if let Some(old) = state.pending[stage].replace(partial) {
            self.pending_index.remove(&(old.first.timestamp, old.gen));
            self.stats.replaced += 1;
        }
        self.pending_index.insert(index, (key.clone(), stage));
        while self.pending_index.len() > self.limits.max_pending {
            let Some((&oldest, _)) = self.pending_index.iter().next() else {
                break;
            };
            if let Some((key, stage)) = self.pending_index.remove(&oldest) {
                self.remove_pending(&key, stage);
                self.stats.overflow += 1;
            }
        }
    }

    fn take_pending(&mut self, key: &K, stage: usize) -> Option<Partial<E>> {
        let state = self.keys.get_mut(key)?;
        let partial = state.pending[stage].take()?;
        if state.is_empty() {
            self.keys.remove(key);
        }
        self.pending_index
            .remove(&(partial.first.timestamp, partial.gen));
        Some(partial)
    }

    /// Drops a partial sequence already removed from the index.
    fn remove_pending(&mut self, key: &K, stage: usize) {
        if let Some(state) = self.keys.get_mut(key) {
            state.pending[stage] = None;
            if state.is_empty() {
                self.keys.remove(key);
            }
        }
    }
}

/// Maps whose keys are not strings serialize as a list of pairs (JSON object
/// keys must be strings).
pub(crate) mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<'a, S, M, K, V>(map: &'a M, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
    {
        serializer.collect_seq(map)
    }

    pub fn deserialize<'de, D, M, K, V>(deserializer: D) -> Result<M, D::Error>
    where
        D: Deserializer<'de>,
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
    {
        let list: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        Ok(list.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
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
            "A", "B", "M1", "B", "C", "M2", "D", "M1", "C", "B", "C", "D", "A", "B", "M3", "C",
            "D", "M4",
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
        let mut m =
            Matcher::new(spec(&[pos(), pos(), pos()], false, None), Limits::default()).unwrap();
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
        let mut m =
            Matcher::new(spec(&[pos(), pos()], false, Some(10)), Limits::default()).unwrap();
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
        let mut m =
            Matcher::new(spec(&[pos(), miss()], false, Some(100)), Limits::default()).unwrap();
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
}
