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
//! * `until`: a hit drops every partial sequence of its key, after the
//!   event's own stage hits. Elasticsearch (`SequenceMatcher.match`) rejects
//!   a sequence when the nearest until ordinal strictly before the hit
//!   taking it (`until.before(ordinal)`) lies between the sequence's last
//!   ordinal and the hit, both inclusive (`Ordinal.between`): so one event
//!   that matches a stage *and* `until` completes the sequence when the
//!   stage is the last one, and dooms it when it is an earlier one (the
//!   Python `eql` engine lets `until` win both times; `tests/sequence_until.rs`
//!   pins Elasticsearch's answer). A completed sequence is never invalidated.
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
//! Completed sequences come out in the order they were decided; sort them
//! with [`SequenceMatch::es_order`] for Elasticsearch's response order (by
//! the *last* event's ordinal: the spec cases `sequenceAllKeysOptional` and
//! `sequenceWithMoreThan10Results` fail if sorted by the first event). Head,
//! tail and `size` belong to `search`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod ordinal;

pub use ordinal::{Ordinal, TieBreaker};

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
    /// Per stage as written: its expanded missing-event stages.
    missing_by_orig: Vec<Vec<usize>>,
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
        let stages: Vec<Expanded> = flat
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
        let mut missing_by_orig = vec![Vec::new(); spec.stages.len()];
        for (i, stage) in stages.iter().enumerate() {
            if stage.missing.is_some() {
                missing_by_orig[stage.orig].push(i);
            }
        }
        Ok(SequenceMatcher {
            spec,
            limits,
            missing_by_orig,
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
                let Some(missing_stages) = self.missing_by_orig.get(orig) else {
                    continue;
                };
                if missing_stages.is_empty() {
                    continue;
                }
                for key in &hit.keys {
                    let n = self.stages.len();
                    let state = self
                        .keys
                        .entry(key.clone())
                        .or_insert_with(|| KeyState::new(n));
                    for s in missing_stages {
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
mod tests;
