//! The indicator side of a threat_match rule's hash join, built once per
//! run. Kibana joins by searching: it turns chunks of indicators (or of
//! events) into `bool.should` clauses, one per item and mapping
//! (`indicator_match/threat_mapping/build_threat_mapping_filter.ts`), which
//! is where its clause-count errors and timeouts come from. detectd keeps
//! the indicators' keys in memory and looks each event up.
//!
//! What is kept is only what the join needs: for every indicator and
//! mapping whose fields it has, a 64-bit hash of (mapping, its entries'
//! values) with the indicator's number, in one sorted array (16 bytes per
//! key, no allocation per key), and each indicator's `_index` (interned)
//! and `_id` (in one string arena). The indicator documents themselves are
//! not kept: the indicators an alerted event matched are read again by id
//! afterwards (as Kibana re-reads matched indicators by `ids` for its
//! enrichments, `threat_enrichment_factory.ts`), and those values are
//! compared again there, so a hash collision never makes an alert.
//!
//! Values are compared as Elasticsearch's `term`/`match` on a keyword
//! compares them: as text (a number by its JSON text, a boolean as
//! `true`/`false`), case-sensitively. A field with several values matches
//! by any of them, on either side (see the README for how Kibana differs).

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use crate::alert::threat::atoms;
use crate::rule::ThreatMapping;

/// Most key combinations one document gives one mapping (the product of
/// its entries' value counts): beyond, the rest of the document's values
/// are not joined on for that mapping.
pub(crate) const MAX_COMBINATIONS: usize = 1_024;

/// Most indicator matches kept for one event, as Kibana's
/// `MAX_NUMBER_OF_SIGNAL_MATCHES` (`enrich_signal_threat_matches.ts`).
pub(crate) const MAX_MATCHES_PER_EVENT: usize = 200;

/// The loaded indicators' keys and references.
#[derive(Debug, Default)]
pub(crate) struct IndicatorIndex {
    /// (key hash, indicator number), sorted.
    keys: Vec<(u64, u32)>,
    /// Interned `_index` names; `index_of[n]` is indicator `n`'s.
    indices: Vec<Arc<str>>,
    index_of: Vec<u32>,
    /// Every `_id` one after the other; indicator `n`'s ends at `id_ends[n]`.
    ids: String,
    id_ends: Vec<usize>,
    /// Indicator documents that had the fields of no mapping.
    pub(crate) skipped: u64,
}

/// One indicator an event matched, by one mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Matched {
    /// Load order: the enrichments' order.
    pub(crate) indicator: u32,
    pub(crate) mapping: u16,
}

impl IndicatorIndex {
    /// Adds one indicator document; `false` when it has the fields of no
    /// mapping (it is then not kept).
    pub(crate) fn add(
        &mut self,
        mappings: &[ThreatMapping],
        index: &str,
        id: &str,
        source: &Value,
    ) -> bool {
        let n = u32::try_from(self.id_ends.len()).unwrap_or(u32::MAX);
        let before = self.keys.len();
        for (m, mapping) in mappings.iter().enumerate() {
            for_each_key(
                m,
                mapping,
                source,
                |e| &e.value,
                |key| {
                    self.keys.push((key, n));
                },
            );
        }
        if self.keys.len() == before || n == u32::MAX {
            self.keys.truncate(before);
            self.skipped += 1;
            return false;
        }
        let at = match self.indices.iter().position(|i| &**i == index) {
            Some(at) => at,
            None => {
                self.indices.push(Arc::from(index));
                self.indices.len() - 1
            }
        };
        self.index_of.push(at as u32);
        self.ids.push_str(id);
        self.id_ends.push(self.ids.len());
        true
    }

    /// Ready for look-ups: keys sorted, one entry per (key, indicator).
    pub(crate) fn finish(&mut self) {
        self.keys.sort_unstable();
        self.keys.dedup();
        self.keys.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.id_ends.shrink_to_fit();
        self.index_of.shrink_to_fit();
    }

    /// Indicators kept.
    pub(crate) fn len(&self) -> usize {
        self.id_ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.id_ends.is_empty()
    }

    /// Keys kept (an indicator has one per mapping and value combination).
    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Bytes held by the index (its arrays, not the allocator's overhead).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<(u64, u32)>()
            + self.index_of.capacity() * 4
            + self.ids.capacity()
            + self.id_ends.capacity() * std::mem::size_of::<usize>()
    }

    /// Indicator `n`'s `_index` and `_id`.
    pub(crate) fn reference(&self, n: u32) -> (&Arc<str>, &str) {
        let n = n as usize;
        let start = if n == 0 { 0 } else { self.id_ends[n - 1] };
        (
            &self.indices[self.index_of[n] as usize],
            &self.ids[start..self.id_ends[n]],
        )
    }

    /// The indicators `event` may match, by mapping, in load order then
    /// mapping order, at most [`MAX_MATCHES_PER_EVENT`]. A candidate: the
    /// values are compared again on the documents before an alert.
    pub(crate) fn candidates(&self, mappings: &[ThreatMapping], event: &Value) -> Vec<Matched> {
        let mut out = Vec::new();
        for (m, mapping) in mappings.iter().enumerate() {
            for_each_key(
                m,
                mapping,
                event,
                |e| &e.field,
                |key| {
                    let from = self.keys.partition_point(|(k, _)| *k < key);
                    for (_, n) in self.keys[from..].iter().take_while(|(k, _)| *k == key) {
                        out.push(Matched {
                            indicator: *n,
                            mapping: m as u16,
                        });
                    }
                },
            );
        }
        out.sort_unstable();
        out.dedup();
        out.truncate(MAX_MATCHES_PER_EVENT);
        out
    }
}

/// Calls `f` with the key of every combination of `doc`'s values of the
/// mapping's entries (the field `side` names), at most
/// [`MAX_COMBINATIONS`]; none when an entry's field is missing.
fn for_each_key(
    m: usize,
    mapping: &ThreatMapping,
    doc: &Value,
    side: impl Fn(&crate::rule::ThreatMappingEntry) -> &String,
    mut f: impl FnMut(u64),
) {
    let lists: Vec<Vec<Cow<'_, str>>> = mapping
        .entries
        .iter()
        .map(|e| atoms(doc, side(e)))
        .collect();
    if lists.iter().any(Vec::is_empty) {
        return;
    }
    let mut at = vec![0usize; lists.len()];
    for _ in 0..MAX_COMBINATIONS {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        m.hash(&mut h);
        for (list, &i) in lists.iter().zip(&at) {
            list[i].as_ref().hash(&mut h);
        }
        f(h.finish());
        // next combination (odometer)
        let mut pos = lists.len();
        loop {
            if pos == 0 {
                return;
            }
            pos -= 1;
            at[pos] += 1;
            if at[pos] < lists[pos].len() {
                break;
            }
            at[pos] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::threat::agrees;
    use crate::rule::ThreatMappingEntry;
    use serde_json::json;

    fn mapping(pairs: &[(&str, &str)]) -> ThreatMapping {
        ThreatMapping {
            entries: pairs
                .iter()
                .map(|(f, v)| ThreatMappingEntry {
                    field: f.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    fn index(mappings: &[ThreatMapping], docs: &[Value]) -> IndicatorIndex {
        let mut ix = IndicatorIndex::default();
        for (i, d) in docs.iter().enumerate() {
            ix.add(mappings, "ti", &format!("i{i}"), d);
        }
        ix.finish();
        ix
    }

    #[test]
    fn an_or_of_mappings_and_an_and_of_entries() {
        let mappings = vec![
            mapping(&[("source.ip", "threat.indicator.ip")]),
            mapping(&[
                ("host.name", "threat.indicator.host"),
                ("user.name", "threat.indicator.user"),
            ]),
        ];
        let ix = index(
            &mappings,
            &[
                json!({"threat": {"indicator": {"ip": "10.0.0.1"}}}),
                json!({"threat": {"indicator": {"host": "ws1", "user": "bob"}}}),
                // lacks `user`: no key for mapping 2, none for mapping 1
                json!({"threat": {"indicator": {"host": "ws1"}}}),
            ],
        );
        assert_eq!((ix.len(), ix.skipped, ix.key_count()), (2, 1, 2));
        let ev =
            json!({"source": {"ip": "10.0.0.1"}, "host": {"name": "ws1"}, "user": {"name": "bob"}});
        assert_eq!(
            ix.candidates(&mappings, &ev),
            [
                Matched {
                    indicator: 0,
                    mapping: 0
                },
                Matched {
                    indicator: 1,
                    mapping: 1
                }
            ]
        );
        // half of the AND is no match
        let half = json!({"host": {"name": "ws1"}, "user": {"name": "alice"}});
        assert!(ix.candidates(&mappings, &half).is_empty());
        assert_eq!(ix.reference(1), (&Arc::from("ti"), "i1"));
    }

    #[test]
    fn any_value_of_an_array_matches_on_either_side() {
        let mappings = vec![mapping(&[("destination.ip", "threat.indicator.ip")])];
        let ix = index(
            &mappings,
            &[json!({"threat.indicator.ip": ["1.1.1.1", "2.2.2.2"]})],
        );
        let ev = json!({"destination": {"ip": ["9.9.9.9", "2.2.2.2"]}});
        assert_eq!(ix.candidates(&mappings, &ev).len(), 1);
        assert!(agrees(
            &mappings[0],
            &ev,
            &json!({"threat.indicator.ip": ["1.1.1.1", "2.2.2.2"]})
        ));
        assert!(!agrees(
            &mappings[0],
            &ev,
            &json!({"threat.indicator.ip": "1.1.1.1"})
        ));
    }

    #[test]
    fn values_compare_as_text_and_case_sensitively() {
        let mappings = vec![mapping(&[("port", "ti.port")])];
        let ix = index(
            &mappings,
            &[
                json!({"ti": {"port": "443"}}),
                json!({"ti": {"port": "ABC"}}),
            ],
        );
        assert_eq!(ix.candidates(&mappings, &json!({"port": 443})).len(), 1);
        assert!(ix.candidates(&mappings, &json!({"port": "abc"})).is_empty());
        assert!(ix
            .candidates(&mappings, &json!({"port": {"x": 1}}))
            .is_empty());
    }
}
