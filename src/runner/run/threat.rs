//! A threat_match window's alerts: the indicators its chosen events matched
//! are read again by id (only those: the join kept their keys, not their
//! documents), compared again on the documents, and the event's source
//! gets its `threat.enrichments` (`alert::threat`) before it becomes an
//! event alert like a query rule's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::alert::threat::{enrich, IndicatorHit};
use crate::alert::SourceEvent;
use crate::rule::{Rule, RuleKind};
use crate::runner::detect::{Candidate, ThreatHits};
use crate::source::{DocRef, EventSource, SourceError};

/// The matched indicators' documents, by (`_index`, `_id`).
pub(super) type Indicators = HashMap<(Arc<str>, Box<str>), Value>;

/// Reads the indicators the chosen candidates matched.
pub(super) async fn indicator_sources<'c, S: EventSource>(
    source: &S,
    chosen: impl Iterator<Item = &'c Candidate>,
) -> Result<Indicators, SourceError> {
    let mut seen: HashSet<(&Arc<str>, &Box<str>)> = HashSet::new();
    let mut refs = Vec::new();
    for hits in chosen.filter_map(|c| c.threat.as_deref()) {
        for (index, id, _) in &hits.indicators {
            if seen.insert((index, id)) {
                refs.push(DocRef {
                    index: index.to_string(),
                    id: id.to_string(),
                });
            }
        }
    }
    if refs.is_empty() {
        return Ok(Indicators::new());
    }
    Ok(source
        .fetch_indicator_sources(&refs)
        .await?
        .into_iter()
        .map(|d| ((Arc::from(d.index), Box::from(d.id)), d.source))
        .collect())
}

/// `event` with the enrichments of `hits`; `None` when none of its
/// indicators still matches it (deleted since, or a key that only
/// collided).
pub(super) fn enriched(
    rule: &Rule,
    hits: &ThreatHits,
    event: &SourceEvent,
    indicators: &Indicators,
) -> Option<SourceEvent> {
    let RuleKind::ThreatMatch(t) = &rule.kind else {
        return None;
    };
    let found: Vec<IndicatorHit<'_>> = hits
        .indicators
        .iter()
        .filter_map(|(index, id, mapping)| {
            let source = indicators.get(&(index.clone(), id.clone()))?;
            Some(IndicatorHit {
                index,
                id,
                source,
                mapping: usize::from(*mapping),
            })
        })
        .collect();
    let source = enrich(&event.source, &found, &t.threat_mapping, &t.indicator_path)?;
    Some(SourceEvent {
        index: event.index.clone(),
        id: event.id.clone(),
        source,
    })
}
