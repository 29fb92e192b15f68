//! The sample matcher: Elasticsearch's `sample by` semantics, fed one event
//! at a time, with memory bounded by keys × filters × candidates per key.
//!
//! The matcher knows nothing of predicates or fields: the caller evaluates,
//! for every event, which filters it matches and the composite join key(s)
//! it yields for each (global `by` values followed by the filter's own `by`
//! values; one key per value combination of multi-valued fields).
//!
//! What Elasticsearch does (`SampleIterator`, `SampleQueryRequest` in
//! `x-pack/plugin/eql`): composite aggregations find the keys present in
//! every filter, in ascending key order (strings by bytes, a null component
//! first); then, per key, each filter is searched for at most
//! `filters * max_samples_per_key` documents in index order, and a
//! backtracking search picks distinct documents, one per filter, collecting
//! up to `max_samples_per_key` samples for the key (different samples may
//! share documents). The total is capped by the query's limit.
//!
//! Here the key order is `K`'s [`Ord`], which the caller must make agree with
//! Elasticsearch's (byte order for strings, nulls first); the candidates are
//! the first ones pushed, so push events in index order.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::sequence::pairs;

/// Most filters a sample may have (Elasticsearch's limit).
pub const MAX_FILTERS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSpec {
    /// Number of filters (`[...]` blocks), 1..=5.
    pub filters: usize,
    /// The `max_samples_per_key` request parameter (Elasticsearch's default is 1).
    pub max_samples_per_key: usize,
}

impl SampleSpec {
    pub fn new(filters: usize) -> Self {
        SampleSpec {
            filters,
            max_samples_per_key: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SampleSpecError {
    #[error("expected between 1 and {MAX_FILTERS} sample filters, found {0}")]
    BadFilterCount(usize),
    #[error("expected max_samples_per_key of at least 1, found 0")]
    ZeroSamplesPerKey,
}

/// One filter an event matches, with its composite keys for that filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleHit<K> {
    /// Index of the filter, in query order.
    pub filter: usize,
    pub keys: Vec<K>,
}

/// One sample: a composite key and one event per filter, in filter order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleMatch<K, E> {
    pub key: K,
    pub events: Vec<E>,
}

/// Counters describing what the matcher holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Keys seen in at least one filter.
    pub keys: usize,
    /// Candidate events held (over all keys and filters).
    pub candidates: usize,
    /// Hits not kept because the key's filter already had enough candidates.
    pub ignored: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, E: Serialize",
    deserialize = "K: DeserializeOwned + Ord, E: DeserializeOwned"
))]
pub struct SampleMatcher<K, E> {
    spec: SampleSpec,
    /// Per key, per filter: the first candidates, in push order.
    #[serde(with = "pairs")]
    candidates: BTreeMap<K, Vec<Vec<E>>>,
    ignored: u64,
}

impl<K, E> SampleMatcher<K, E>
where
    K: Clone + Ord,
    E: Clone + PartialEq,
{
    pub fn new(spec: SampleSpec) -> Result<Self, SampleSpecError> {
        if !(1..=MAX_FILTERS).contains(&spec.filters) {
            return Err(SampleSpecError::BadFilterCount(spec.filters));
        }
        if spec.max_samples_per_key == 0 {
            return Err(SampleSpecError::ZeroSamplesPerKey);
        }
        Ok(SampleMatcher {
            spec,
            candidates: BTreeMap::new(),
            ignored: 0,
        })
    }

    pub fn spec(&self) -> SampleSpec {
        self.spec
    }

    /// Elasticsearch fetches `filters * max_samples_per_key` documents per
    /// filter and key: enough for the backtracking to find
    /// `max_samples_per_key` samples of distinct documents per sample.
    fn per_filter_cap(&self) -> usize {
        self.spec
            .filters
            .saturating_mul(self.spec.max_samples_per_key)
    }

    /// Feeds one event (in index order). Hits on filters out of range are
    /// ignored.
    pub fn push(&mut self, event: E, hits: &[SampleHit<K>]) {
        let cap = self.per_filter_cap();
        let filters = self.spec.filters;
        for hit in hits {
            if hit.filter >= filters {
                continue;
            }
            for key in &hit.keys {
                let lists = self
                    .candidates
                    .entry(key.clone())
                    .or_insert_with(|| vec![Vec::new(); filters]);
                let list = &mut lists[hit.filter];
                if list.len() >= cap {
                    self.ignored += 1;
                } else if !list.contains(&event) {
                    list.push(event.clone());
                }
            }
        }
    }

    /// The samples found so far, ascending by key, at most `limit` in all.
    pub fn results(&self, limit: usize) -> Vec<SampleMatch<K, E>> {
        let mut out = Vec::new();
        for (key, lists) in &self.candidates {
            if out.len() >= limit {
                break;
            }
            if lists.iter().any(Vec::is_empty) {
                continue;
            }
            let mut found = Vec::new();
            pick(
                lists,
                &mut Vec::with_capacity(lists.len()),
                &mut found,
                self.spec.max_samples_per_key,
            );
            for events in found {
                if out.len() >= limit {
                    break;
                }
                out.push(SampleMatch {
                    key: key.clone(),
                    events,
                });
            }
        }
        out
    }

    pub fn stats(&self) -> SampleStats {
        SampleStats {
            keys: self.candidates.len(),
            candidates: self
                .candidates
                .values()
                .map(|lists| lists.iter().map(Vec::len).sum::<usize>())
                .sum(),
            ignored: self.ignored,
        }
    }
}

/// Depth-first choice of one distinct event per filter, in candidate order,
/// stopping after `max` complete choices (Elasticsearch's `matchSamples`).
/// Returns true once `max` is reached.
fn pick<E: Clone + PartialEq>(
    lists: &[Vec<E>],
    partial: &mut Vec<E>,
    found: &mut Vec<Vec<E>>,
    max: usize,
) -> bool {
    let depth = partial.len();
    for event in &lists[depth] {
        if partial.contains(event) {
            continue;
        }
        partial.push(event.clone());
        if depth + 1 == lists.len() {
            found.push(partial.clone());
        } else if pick(lists, partial, found, max) {
            return true;
        }
        partial.pop();
        if found.len() >= max {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys as (nullable) strings: `None` sorts first, then byte order.
    type Key = Option<String>;

    fn k(s: Option<&str>) -> Key {
        s.map(str::to_string)
    }

    fn hit(filter: usize, key: Option<&str>) -> SampleHit<Key> {
        SampleHit {
            filter,
            keys: vec![k(key)],
        }
    }

    /// `data/sample-multi.data` as (id, event_type, os).
    const MULTI: [(u64, &str, Option<&str>); 10] = [
        (1, "alert_1", Some("win10")),
        (2, "alert_1", Some("win10")),
        (3, "alert_2", Some("win10")),
        (4, "alert_1", Some("win10")),
        (5, "alert_1", Some("fedora")),
        (6, "alert_2", Some("redhat")),
        (7, "alert_1", Some("redhat")),
        (8, "alert_1", None),
        (9, "alert_2", None),
        (10, "alert_1", None),
    ];

    /// `sample by [?]os [alert_1] [alert_2]` (or the filters swapped).
    fn run_multi(max_per_key: usize, optional: bool, swapped: bool) -> (Vec<u64>, Vec<Key>) {
        let mut spec = SampleSpec::new(2);
        spec.max_samples_per_key = max_per_key;
        let mut m = SampleMatcher::new(spec).unwrap();
        for (id, ty, os) in MULTI {
            if os.is_none() && !optional {
                continue;
            }
            let filter = match (ty, swapped) {
                ("alert_1", false) | ("alert_2", true) => 0,
                _ => 1,
            };
            m.push(id, &[hit(filter, os)]);
        }
        let samples = m.results(50);
        let ids = samples.iter().flat_map(|s| s.events.clone()).collect();
        let keys = samples.iter().map(|s| s.key.clone()).collect();
        (ids, keys)
    }

    #[test]
    fn one_sample_per_key() {
        let (ids, keys) = run_multi(1, false, false);
        assert_eq!(ids, vec![7, 6, 1, 3]);
        assert_eq!(keys, vec![k(Some("redhat")), k(Some("win10"))]);
    }

    #[test]
    fn null_key_sorts_first() {
        let (ids, keys) = run_multi(1, true, false);
        assert_eq!(ids, vec![8, 9, 7, 6, 1, 3]);
        assert_eq!(keys, vec![None, k(Some("redhat")), k(Some("win10"))]);
        let (ids, _) = run_multi(2, true, false);
        assert_eq!(ids, vec![8, 9, 10, 9, 7, 6, 1, 3, 2, 3]);
    }

    #[test]
    fn several_samples_per_key_share_events() {
        assert_eq!(run_multi(2, false, false).0, vec![7, 6, 1, 3, 2, 3]);
        assert_eq!(run_multi(2, false, true).0, vec![6, 7, 3, 1, 3, 2]);
        // Three alert_1 events for win10 need a candidate list longer than
        // the number of filters.
        assert_eq!(run_multi(3, false, false).0, vec![7, 6, 1, 3, 2, 3, 4, 3]);
        assert_eq!(run_multi(10, false, false).0, vec![7, 6, 1, 3, 2, 3, 4, 3]);
    }

    #[test]
    fn events_in_a_sample_are_distinct() {
        // One event matching both filters cannot fill both.
        let mut m = SampleMatcher::new(SampleSpec::new(2)).unwrap();
        m.push(1u64, &[hit(0, Some("a")), hit(1, Some("a"))]);
        assert!(m.results(10).is_empty());
        m.push(2, &[hit(0, Some("a")), hit(1, Some("a"))]);
        let samples = m.results(10);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].events, vec![1, 2]);
    }

    #[test]
    fn backtracking_finds_distinct_choice() {
        // SampleIterator's own example: [1,2,3] [4,5] [4,5,3] -> [1,4,5].
        let mut m = SampleMatcher::new(SampleSpec::new(3)).unwrap();
        for (id, filters) in [
            (1u64, &[0][..]),
            (2, &[0]),
            (4, &[1, 2]),
            (5, &[1, 2]),
            (3, &[0, 2]),
        ] {
            let hits: Vec<_> = filters.iter().map(|f| hit(*f, Some("x"))).collect();
            m.push(id, &hits);
        }
        assert_eq!(m.results(10)[0].events, vec![1, 4, 5]);
    }

    #[test]
    fn limit_and_key_order() {
        let mut m = SampleMatcher::new(SampleSpec::new(2)).unwrap();
        // Byte order: upper case before lower case.
        for (id, key) in [(1u64, "doom"), (2, "GTA"), (3, "doom"), (4, "GTA")] {
            let filter = if id <= 2 { 0 } else { 1 };
            m.push(id, &[hit(filter, Some(key))]);
        }
        let all = m.results(10);
        assert_eq!(
            all.iter().map(|s| s.key.clone()).collect::<Vec<_>>(),
            vec![k(Some("GTA")), k(Some("doom"))]
        );
        assert_eq!(all[0].events, vec![2, 4]);
        let one = m.results(1);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].key, k(Some("GTA")));
        assert!(m.results(0).is_empty());
    }

    #[test]
    fn candidates_are_capped_per_key_and_filter() {
        let mut m = SampleMatcher::new(SampleSpec::new(2)).unwrap();
        for id in 0..1000u64 {
            m.push(id, &[hit((id % 2) as usize, Some("k"))]);
        }
        let stats = m.stats();
        assert_eq!(stats.keys, 1);
        assert_eq!(stats.candidates, 4);
        assert_eq!(stats.ignored, 996);
        assert_eq!(m.results(10)[0].events, vec![0, 1]);
    }

    #[test]
    fn spec_errors_and_serialization() {
        assert_eq!(
            SampleMatcher::<Key, u64>::new(SampleSpec::new(6)).unwrap_err(),
            SampleSpecError::BadFilterCount(6)
        );
        assert_eq!(
            SampleMatcher::<Key, u64>::new(SampleSpec::new(0)).unwrap_err(),
            SampleSpecError::BadFilterCount(0)
        );
        let mut spec = SampleSpec::new(2);
        spec.max_samples_per_key = 0;
        assert_eq!(
            SampleMatcher::<Key, u64>::new(spec).unwrap_err(),
            SampleSpecError::ZeroSamplesPerKey
        );

        let mut m = SampleMatcher::new(SampleSpec::new(2)).unwrap();
        m.push(1u64, &[hit(0, None)]);
        let json = serde_json::to_string(&m).unwrap();
        let mut back: SampleMatcher<Key, u64> = serde_json::from_str(&json).unwrap();
        back.push(2, &[hit(1, None)]);
        assert_eq!(back.results(10)[0].events, vec![1, 2]);
    }
}
