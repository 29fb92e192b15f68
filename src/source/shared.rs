//! One scan for several requests (issue "One scan, many rules"): the
//! events any of them selects, each read once, with the requests that
//! select it.
//!
//! A shared scan answers each member request with exactly the events the
//! request alone would have fetched, in the same order: a cluster
//! evaluates each member's whole query (time range, pushdown, exact
//! clauses, its own indices) as a named clause of one search and says per
//! hit which clauses it matched; the memory source of tests runs each
//! request and keeps every document once. What the events are *for* (which
//! rule, which window) is the runner's business (`runner::share`).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Document, EventStream, FetchRequest, Mappings, SourceError};

/// The result of one shared scan over several [`FetchRequest`]s.
#[derive(Debug, Default)]
pub struct SharedScan {
    /// Every event some member selected, once.
    pub events: Vec<Document>,
    /// How many events the scan read from the source (transferred), each
    /// once: more than `events` when events were read for members that
    /// select locally and none of them selected some.
    pub read: u64,
    /// Per member request, in the order of the requests.
    pub members: Vec<MemberShare>,
}

/// What one member request gets from a [`SharedScan`].
#[derive(Debug, Default)]
pub struct MemberShare {
    /// Warnings its own fetch would have given (patterns matching nothing).
    pub warnings: Vec<String>,
    /// The mappings of the indices its patterns cover.
    pub mappings: Arc<Mappings>,
    /// Its events, as positions in [`SharedScan::events`], in its order.
    pub picks: Vec<u32>,
}

/// How a shared scan may be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// The most events it may hold.
    pub max_events: usize,
    /// How old what an index pattern resolved to may be (a source that
    /// resolves patterns keeps the answers): zero for a window that
    /// commits a checkpoint, which must see an index created a moment
    /// ago; longer for a tail, which the scheduled windows back up.
    pub resolved_within: std::time::Duration,
    /// Whether members without an exact clause may be selected here, by
    /// their pushdown filter on each event, from a read of every event in
    /// their time range and indices (a cluster then evaluates a handful of
    /// clauses, not one per member; see `runner::share`). The members get
    /// the same events either way.
    pub select_locally: bool,
}

impl ScanOptions {
    /// At most `max_events` events, patterns resolved afresh.
    pub fn fresh(max_events: usize) -> ScanOptions {
        ScanOptions {
            max_events,
            resolved_within: std::time::Duration::ZERO,
            select_locally: false,
        }
    }
}

/// Why a shared scan gave up before its end; the members then fetch alone.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// More events than the scan may hold: `seen` counts per member what
    /// was read before it stopped (for choosing groups next time).
    #[error("the shared scan holds more than {limit} events")]
    TooLarge { limit: usize, seen: Vec<u64> },
    /// The cluster refused a query this large (too many clauses) or did
    /// not answer it in time: the group should be smaller.
    #[error("the cluster refused the shared query as too large: {0}")]
    Refused(String),
    /// Some members cannot be in a shared scan at all (`members`: their
    /// positions among the requests), for a reason of theirs (an alias
    /// that routes searches to some shards, which no query expresses).
    /// They should fetch alone; the others may share without them.
    #[error("{} rules cannot share a scan: {reason}", members.len())]
    Unshareable { members: Vec<usize>, reason: String },
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl SharedScan {
    /// How many of the scan's events each member selected alone
    /// (`picks`), and how many no other member selected (`exclusive`).
    pub fn counts(&self) -> Vec<MemberCount> {
        let mut selected_by = vec![0u32; self.events.len()];
        for m in &self.members {
            for &p in &m.picks {
                selected_by[p as usize] += 1;
            }
        }
        self.members
            .iter()
            .map(|m| MemberCount {
                events: m.picks.len() as u64,
                exclusive: m
                    .picks
                    .iter()
                    .filter(|&&p| selected_by[p as usize] == 1)
                    .count() as u64,
            })
            .collect()
    }

    /// Member `i`'s events as the stream its own fetch would have given.
    pub fn stream(&self, i: usize) -> Option<EventStream> {
        let m = self.members.get(i)?;
        let docs = m
            .picks
            .iter()
            .map(|&p| self.events[p as usize].clone())
            .collect();
        Some(
            EventStream::from_documents(m.warnings.clone(), docs).with_mappings(m.mappings.clone()),
        )
    }

    /// Builds a scan from each member's own event list: every document
    /// (by index and id) kept once. For sources that answer each request
    /// locally anyway (memory), so that the runner's sharing is the same
    /// code over every source.
    pub fn from_member_lists(
        lists: Vec<(Vec<String>, Arc<Mappings>, Vec<Document>)>,
    ) -> SharedScan {
        let mut scan = SharedScan::default();
        let mut at: HashMap<(String, String), u32> = HashMap::new();
        for (warnings, mappings, docs) in lists {
            let mut picks = Vec::with_capacity(docs.len());
            for doc in docs {
                let key = (doc.index.clone(), doc.id.clone());
                let pos = *at.entry(key).or_insert_with(|| {
                    scan.events.push(doc);
                    (scan.events.len() - 1) as u32
                });
                picks.push(pos);
            }
            scan.members.push(MemberShare {
                warnings,
                mappings,
                picks,
            });
        }
        scan.read = scan.events.len() as u64;
        scan
    }
}

/// A member's share of a scan, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCount {
    pub events: u64,
    pub exclusive: u64,
}

/// Whether these requests can be one scan: ordered alike (the scan has
/// one sort), over a time range (an indicator list is not a window), and
/// on local indices (`_index` of a remote cluster's hit is not the name
/// its pattern resolves to here).
pub fn shareable(requests: &[&FetchRequest]) -> Result<(), String> {
    let Some(first) = requests.first() else {
        return Ok(());
    };
    for r in requests {
        if r.timeless {
            return Err("an indicator list is not shared".into());
        }
        if r.indices.iter().any(|p| p.contains(':')) {
            return Err("a cross-cluster pattern is not shared".into());
        }
        if r.timestamp_field != first.timestamp_field
            || r.tiebreaker_field != first.tiebreaker_field
        {
            return Err("requests ordered differently cannot share a scan".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: &str) -> Document {
        Document {
            index: "i".into(),
            id: id.into(),
            source: json!({ "id": id }),
        }
    }

    #[tokio::test]
    async fn each_document_is_kept_once_and_each_member_gets_its_own_in_its_order() {
        let scan = SharedScan::from_member_lists(vec![
            (vec![], Arc::default(), vec![doc("a"), doc("b"), doc("c")]),
            (vec!["w".into()], Arc::default(), vec![doc("b"), doc("d")]),
            (vec![], Arc::default(), vec![]),
        ]);
        assert_eq!(scan.events.len(), 4);
        let ids = |s: EventStream| async move {
            s.collect()
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(scan.stream(0).unwrap()).await, ["a", "b", "c"]);
        let second = scan.stream(1).unwrap();
        assert_eq!(second.warnings(), ["w"]);
        assert_eq!(ids(second).await, ["b", "d"]);
        assert!(ids(scan.stream(2).unwrap()).await.is_empty());
        assert!(scan.stream(3).is_none());
        assert_eq!(
            scan.counts(),
            [
                MemberCount {
                    events: 3,
                    exclusive: 2
                },
                MemberCount {
                    events: 2,
                    exclusive: 1
                },
                MemberCount::default()
            ]
        );
    }
}
