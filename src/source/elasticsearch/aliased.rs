//! Shared scans of indices a member reads through filtered aliases.
//!
//! A member's own search of a filtered alias returns only the documents
//! the alias's filter selects in each of its indices — unless the search
//! also names the index otherwise (itself, a data stream, an alias without
//! a filter), which then is searched whole ([`crate::cluster::AliasLink`]).
//! A shared scan searches the union of its members' targets, where another
//! member may name the index itself, and selects each member's hits by
//! `_index`: the alias's filter would be lost. So a member reading an
//! index only through filtered aliases has its clause restricted, for that
//! index, to what those aliases select (any of them, as the cluster ORs
//! them); it is then never selected locally (see [`super::local`]), where
//! no query DSL is evaluated.
//!
//! An alias with `search_routing` searches only some shards, which no query
//! expresses: a member reading through one cannot share a scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::cluster::{AliasLink, AliasLinks, Resolved};
use crate::source::FetchRequest;

/// The aliases a member's patterns matched, when it reads some of its
/// indices only through aliases (whose links must then be looked up).
pub(super) fn aliases_read_through(
    request: &FetchRequest,
    indices: &[String],
    resolved: &HashMap<String, Resolved>,
) -> Vec<String> {
    let (direct, aliases) = names(request, resolved);
    if indices.iter().all(|i| direct.contains(i)) {
        return Vec::new();
    }
    aliases.into_iter().cloned().collect()
}

/// The clause restricting a member to what its own search would return
/// from `indices`, when some of them it reads only through filtered
/// aliases; `None` when it reads them all whole. An error says why the
/// member cannot share a scan.
pub(super) fn restriction(
    request: &FetchRequest,
    indices: &[String],
    resolved: &HashMap<String, Resolved>,
    links: &AliasLinks,
) -> Result<Option<Value>, String> {
    let (direct, aliases) = names(request, resolved);
    let mut whole: Vec<&String> = Vec::new();
    // the filters of an index, keyed by their JSON texts (sorted) → the
    // filters and the indices they select from
    let mut filtered: BTreeMap<Vec<String>, (Vec<&Value>, Vec<&String>)> = BTreeMap::new();
    for index in indices {
        if direct.contains(index) {
            whole.push(index);
            continue;
        }
        let found: Vec<(&String, &AliasLink)> = aliases
            .iter()
            .filter_map(|&a| links.get(&(a.clone(), index.clone())).map(|l| (a, l)))
            .collect();
        if let Some((alias, _)) = found.iter().find(|(_, l)| **l == AliasLink::Routed) {
            return Err(format!(
                "it reads `{index}` through alias `{alias}`, which routes searches to some shards"
            ));
        }
        if found.is_empty() {
            return Err(format!(
                "it reads `{index}` through an alias that no longer links to it"
            ));
        }
        if found.iter().any(|(_, l)| **l == AliasLink::Whole) {
            whole.push(index);
            continue;
        }
        let filters: BTreeMap<String, &Value> = found
            .iter()
            .filter_map(|(_, l)| match l {
                AliasLink::Filtered(f) => Some((f.to_string(), f)),
                _ => None,
            })
            .collect();
        filtered
            .entry(filters.keys().cloned().collect())
            .or_insert_with(|| (filters.into_values().collect(), Vec::new()))
            .1
            .push(index);
    }
    if filtered.is_empty() {
        return Ok(None);
    }
    let mut any: Vec<Value> = Vec::new();
    if !whole.is_empty() {
        any.push(json!({ "terms": { "_index": whole } }));
    }
    for (filters, indices) in filtered.into_values() {
        let selected = match <[&Value; 1]>::try_from(filters) {
            Ok([one]) => one.clone(),
            Err(several) => json!({ "bool": { "should": several, "minimum_should_match": 1 } }),
        };
        any.push(json!({ "bool": { "filter": [{ "terms": { "_index": indices } }, selected] } }));
    }
    Ok(Some(
        json!({ "bool": { "should": any, "minimum_should_match": 1 } }),
    ))
}

/// The concrete indices the member's patterns name directly (as
/// themselves or through a data stream), and the aliases they matched.
fn names<'r>(
    request: &FetchRequest,
    resolved: &'r HashMap<String, Resolved>,
) -> (BTreeSet<&'r String>, BTreeSet<&'r String>) {
    let mut direct = BTreeSet::new();
    let mut aliases = BTreeSet::new();
    for r in request.indices.iter().filter_map(|p| resolved.get(p)) {
        direct.extend(&r.direct);
        aliases.extend(&r.aliases);
    }
    (direct, aliases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TimeRange;
    use chrono::{TimeZone, Utc};

    fn resolved(direct: &[&str], aliases: &[&str]) -> Resolved {
        Resolved {
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            direct: direct.iter().map(|s| s.to_string()).collect(),
            ..Resolved::default()
        }
    }

    #[test]
    fn an_index_read_only_through_filtered_aliases_is_restricted_to_their_filters() {
        let t = Utc.timestamp_opt(0, 0).unwrap();
        let request = FetchRequest::new(
            vec!["logs-1".into(), "tenant-*".into()],
            TimeRange { from: t, to: t },
        );
        let resolved = HashMap::from([
            ("logs-1".to_string(), resolved(&["logs-1"], &[])),
            (
                "tenant-*".to_string(),
                resolved(&[], &["tenant-a", "tenant-b", "all"]),
            ),
        ]);
        let (fa, fb) = (json!({"term": {"t": "a"}}), json!({"term": {"t": "b"}}));
        let link = |a: &str, i: &str, l: AliasLink| ((a.to_string(), i.to_string()), l);
        let mut links = AliasLinks::from([
            link("tenant-a", "logs-1", AliasLink::Filtered(fa.clone())),
            link("tenant-a", "logs-2", AliasLink::Filtered(fa.clone())),
            link("tenant-b", "logs-2", AliasLink::Filtered(fb.clone())),
            link("tenant-a", "logs-3", AliasLink::Filtered(fa.clone())),
            link("all", "logs-4", AliasLink::Whole),
            link("tenant-b", "logs-4", AliasLink::Filtered(fb.clone())),
        ]);
        let indices: Vec<String> = ["logs-1", "logs-2", "logs-3", "logs-4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let clause = restriction(&request, &indices, &resolved, &links).unwrap();
        // logs-1 named itself and logs-4 through an alias without a
        // filter are whole; logs-2 takes either filter, logs-3 one
        assert_eq!(
            clause,
            Some(json!({ "bool": { "minimum_should_match": 1, "should": [
                { "terms": { "_index": ["logs-1", "logs-4"] } },
                { "bool": { "filter": [{ "terms": { "_index": ["logs-3"] } }, fa] } },
                { "bool": { "filter": [
                    { "terms": { "_index": ["logs-2"] } },
                    { "bool": { "should": [fa, fb], "minimum_should_match": 1 } }
                ] } },
            ] } }))
        );
        assert_eq!(
            aliases_read_through(&request, &indices, &resolved),
            ["all", "tenant-a", "tenant-b"]
        );
        assert!(aliases_read_through(&request, &indices[..1], &resolved).is_empty());
        assert_eq!(
            restriction(&request, &indices[..1], &resolved, &links),
            Ok(None)
        );

        links.insert(("tenant-b".into(), "logs-3".into()), AliasLink::Routed);
        let refused = restriction(&request, &indices, &resolved, &links).unwrap_err();
        assert!(
            refused.contains("`logs-3` through alias `tenant-b`"),
            "{refused}"
        );
        let unknown = restriction(&request, &["logs-5".to_string()], &resolved, &links);
        assert!(unknown.unwrap_err().contains("no longer links"));
    }
}
