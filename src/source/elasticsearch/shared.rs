//! A shared scan on the cluster (see `source::shared`): one point-in-time
//! search whose query is every member's own query as a named clause.
//!
//! Each member's search is planned as if it ran alone ([`SearchPlan`]: its
//! time range on its time fields, pushdown and exact clauses adapted to its
//! indices' mappings), then restricted to the concrete indices its own
//! patterns resolve to (`terms` on `_index`) and named by its position.
//! The scan is `bool.should` of those clauses over the union of the
//! members' targets, sorted as every member sorts, so each hit comes once,
//! in the order each member's own search would give it, and its
//! `matched_queries` say which members selected it: the cluster decides
//! membership with the same query it would have run per member, and the
//! detectors see the very events they would have fetched.
//!
//! A member that reads an index only through filtered aliases has its
//! clause restricted to what the aliases' filters select there (see
//! [`super::aliased`]): the union of targets may name the index itself.
//!
//! Patterns are resolved once per scan, not once per member. Members
//! without an exact clause may instead be selected here from one clause per
//! time range (see [`super::local`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::aliased;
use super::local::LocalSelection;
use super::{
    search_shape, take_hit_document, ElasticsearchSource, Pager, SearchPlan, MAX_TARGETS_LEN,
};
use crate::cluster::{ClusterError, Resolved};
use crate::source::shared::{self, MemberShare, ScanError, ScanOptions, SharedScan};
use crate::source::{FetchRequest, SourceError};

/// Events per page of a shared scan (the most a default cluster returns).
const SCAN_PAGE: usize = 10_000;

impl ElasticsearchSource {
    /// The patterns resolved less than `age` ago, and what to.
    fn resolved_within(&self, age: std::time::Duration) -> HashMap<String, Resolved> {
        if age.is_zero() {
            return HashMap::new();
        }
        let kept = self.resolutions.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .filter(|(_, (at, _))| at.elapsed() < age)
            .map(|(p, (_, r))| (p.clone(), r.clone()))
            .collect()
    }

    /// Keeps what patterns resolved to just now.
    fn keep_resolved(&self, fresh: impl Iterator<Item = (String, Resolved)>) {
        let now = std::time::Instant::now();
        let mut kept = self.resolutions.lock().unwrap_or_else(|e| e.into_inner());
        for (pattern, resolved) in fresh {
            kept.insert(pattern, (now, resolved));
        }
    }

    /// Restricts the members that read indices only through filtered
    /// aliases to what those select ([`aliased`]); which members were.
    async fn restrict_aliased(
        &self,
        requests: &[FetchRequest],
        plans: &mut [SearchPlan],
        resolved: &HashMap<String, Resolved>,
    ) -> Result<Vec<bool>, ScanError> {
        let mut aliases: Vec<String> = Vec::new();
        for (request, plan) in requests.iter().zip(plans.iter()) {
            for a in aliased::aliases_read_through(request, &plan.indices, resolved) {
                if !aliases.contains(&a) {
                    aliases.push(a);
                }
            }
        }
        let mut restricted = vec![false; plans.len()];
        if aliases.is_empty() {
            return Ok(restricted);
        }
        let links = self
            .cluster
            .alias_links(&aliases)
            .await
            .map_err(SourceError::from)?;
        let mut unshareable = Vec::new();
        let mut reason = String::new();
        for (m, (request, plan)) in requests.iter().zip(plans.iter_mut()).enumerate() {
            let clause = match aliased::restriction(request, &plan.indices, resolved, &links) {
                Ok(clause) => clause,
                Err(why) => {
                    if unshareable.is_empty() {
                        reason = format!("a rule reading {:?}: {why}", request.indices);
                    }
                    unshareable.push(m);
                    continue;
                }
            };
            if let Some(clause) = clause {
                restricted[m] = true;
                match plan.query["bool"]["filter"].as_array_mut() {
                    Some(filters) => filters.push(clause),
                    None => {
                        plan.query = json!({ "bool": { "filter": [plan.query.take(), clause] } })
                    }
                }
            }
        }
        if !unshareable.is_empty() {
            return Err(ScanError::Unshareable {
                members: unshareable,
                reason,
            });
        }
        Ok(restricted)
    }

    pub(super) async fn scan_shared(
        &self,
        requests: &[FetchRequest],
        options: ScanOptions,
    ) -> Result<SharedScan, ScanError> {
        let max_events = options.max_events;
        shared::shareable(&requests.iter().collect::<Vec<_>>())
            .map_err(SourceError::InvalidRequest)?;
        let mut resolved = self.resolved_within(options.resolved_within);
        let reused: Vec<String> = resolved.keys().cloned().collect();
        let mut plans = Vec::with_capacity(requests.len());
        for request in requests {
            plans.push(self.plan_with(request, &mut resolved).await?);
        }
        let restricted = self
            .restrict_aliased(requests, &mut plans, &resolved)
            .await?;
        self.keep_resolved(resolved.into_iter().filter(|(p, _)| !reused.contains(p)));
        let local = LocalSelection::plan(requests, &plans, &restricted, options.select_locally);
        let mut scan = SharedScan {
            events: Vec::new(),
            read: 0,
            members: plans
                .iter()
                .map(|p| MemberShare {
                    warnings: p.warnings.clone(),
                    mappings: p.mappings.clone(),
                    picks: Vec::new(),
                })
                .collect(),
        };
        let Some(plan) = scan_plan(requests, &plans, &local)? else {
            return Ok(scan);
        };
        // the scan is held whole anyway: the fewest pages
        let page_size = requests
            .iter()
            .map(|r| r.page_size)
            .max()
            .unwrap_or(1_000)
            .max(SCAN_PAGE);
        let pit = self
            .cluster
            .open_pit(&plan.targets, &self.keep_alive)
            .await
            .map_err(SourceError::from)?;
        let mut pager = Pager {
            cluster: &self.cluster,
            plan: &plan,
            keep_alive: &self.keep_alive,
            page_size,
            pit_ids: vec![pit],
            search_after: None,
        };
        let outcome = read_all(&mut pager, &mut scan, &local, max_events).await;
        pager.close().await;
        outcome.map(|()| scan)
    }
}

/// Pages through the scan, adding each hit to the members that matched it
/// or select it here; a hit nobody selects is not kept.
async fn read_all(
    pager: &mut Pager<'_>,
    scan: &mut SharedScan,
    local: &LocalSelection,
    max_events: usize,
) -> Result<(), ScanError> {
    loop {
        let hits = match pager.next_hits().await {
            Ok(Some(hits)) => hits,
            Ok(None) => return Ok(()),
            Err(e) => return Err(refused(e)),
        };
        for mut hit in hits {
            let (mut members, reaches) = matched_members(&hit, scan.members.len(), local)?;
            let doc = take_hit_document(&mut hit).map_err(search_shape)?;
            scan.read += 1;
            for k in reaches {
                local.select(k, &doc.index, &doc.source, &mut members);
            }
            if members.is_empty() {
                continue;
            }
            let pos = scan.events.len() as u32;
            scan.events.push(doc);
            for m in members {
                scan.members[m].picks.push(pos);
            }
        }
        if scan.events.len() > max_events {
            let seen = scan.counts().iter().map(|c| c.events).collect();
            return Err(ScanError::TooLarge {
                limit: max_events,
                seen,
            });
        }
    }
}

/// The members a hit matched, from its `matched_queries` (the clause names
/// are member positions), and the reaches it is in (see
/// [`LocalSelection`]).
fn matched_members(
    hit: &Value,
    members: usize,
    local: &LocalSelection,
) -> Result<(Vec<usize>, Vec<usize>), ScanError> {
    let names = hit
        .get("matched_queries")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            search_shape("expected `matched_queries` on every hit of a shared scan".into())
        })?;
    let mut out = Vec::with_capacity(names.len());
    let mut reaches = Vec::new();
    for name in names {
        if let Some(k) = name.as_str().and_then(|n| local.reach_of(n)) {
            reaches.push(k);
            continue;
        }
        match name.as_str().and_then(|n| n.parse::<usize>().ok()) {
            Some(m) if m < members && !local.is_local(m) => out.push(m),
            _ => {
                return Err(search_shape(format!(
                    "a hit matched an unknown clause {name} of a shared scan"
                ))
                .into())
            }
        }
    }
    Ok((out, reaches))
}

/// The one search of the scan: `None` when no member's patterns match an
/// index (nothing to read).
fn scan_plan(
    requests: &[FetchRequest],
    plans: &[SearchPlan],
    local: &LocalSelection,
) -> Result<Option<SearchPlan>, ScanError> {
    let reading: Vec<(usize, &SearchPlan)> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.indices.is_empty())
        .collect();
    if reading.is_empty() {
        return Ok(None);
    }
    let mut targets: Vec<String> = Vec::new();
    let mut patterns: Vec<String> = Vec::new();
    let mut indices: std::collections::BTreeSet<&String> = Default::default();
    for &(i, plan) in &reading {
        for t in &plan.targets {
            if !targets.contains(t) {
                targets.push(t.clone());
            }
        }
        for p in &requests[i].indices {
            if !patterns.contains(p) {
                patterns.push(p.clone());
            }
        }
        indices.extend(&plan.indices);
    }
    let common = common_filter(&reading.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    let mut clauses: Vec<Value> = reading
        .iter()
        .filter(|&&(i, _)| !local.is_local(i))
        .map(|&(i, plan)| {
            let all = plan
                .indices
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                == indices;
            named_clause(plan, i, common, all)
        })
        .collect();
    clauses.extend(local.clauses(common, &indices));
    if targets.iter().map(|t| t.len() + 1).sum::<usize>() > MAX_TARGETS_LEN {
        targets = patterns;
    }
    let first = &plans[0];
    if plans.iter().any(|p| p.sort != first.sort) {
        // the same fields but typed differently per index set
        return Err(SourceError::InvalidRequest(
            "the members' sorts differ; they cannot share a scan".into(),
        )
        .into());
    }
    let source = if plans.iter().any(|p| p.source == Value::Bool(true)) {
        Value::Bool(true)
    } else {
        let mut fields: Vec<Value> = Vec::new();
        let locally_read = local.fields().into_iter().map(Value::String);
        for f in plans
            .iter()
            .flat_map(|p| {
                p.source["includes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned()
            })
            .chain(locally_read)
        {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        json!({ "includes": fields })
    };
    Ok(Some(SearchPlan {
        targets,
        indices: Vec::new(),
        types: Default::default(),
        warnings: Vec::new(),
        query: json!({ "bool": {
            "filter": common.into_iter().cloned().collect::<Vec<_>>(),
            "should": clauses,
            "minimum_should_match": 1,
        } }),
        sort: first.sort.clone(),
        source,
        mappings: Arc::default(),
    }))
}

/// A member's own query, restricted to its own concrete indices, named by
/// its position. A filter every member has (`common`: the same time range)
/// is left out, the scan applies it once; so is the restriction to its
/// indices when they are all the scan reads (`all_indices`).
fn named_clause(
    plan: &SearchPlan,
    member: usize,
    common: Option<&Value>,
    all_indices: bool,
) -> Value {
    let mut filters: Vec<Value> = plan.query["bool"]["filter"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![plan.query.clone()])
        .into_iter()
        .filter(|f| Some(f) != common)
        .collect();
    if !all_indices {
        filters.push(json!({ "terms": { "_index": plan.indices } }));
    }
    json!({ "bool": { "filter": filters, "_name": member.to_string() } })
}

/// The filter every member's query starts with, when it is the same for
/// all (members of one cohort searching the same window on the same time
/// fields).
fn common_filter<'p>(plans: &[&'p SearchPlan]) -> Option<&'p Value> {
    let first = plans.first()?.query["bool"]["filter"].get(0)?;
    plans
        .iter()
        .all(|p| p.query["bool"]["filter"].get(0) == Some(first))
        .then_some(first)
}

/// A search the cluster refused for its number of clauses
/// (`too_many_clauses` / `TooManyClauses`, `maxClauseCount`), or did not
/// answer in time.
fn refused(e: SourceError) -> ScanError {
    if let SourceError::Cluster(ClusterError::Status {
        status: 400 | 500,
        reason,
        ..
    }) = &e
    {
        let r = reason.to_ascii_lowercase();
        if r.contains("too_many_clauses")
            || r.contains("toomanyclauses")
            || r.contains("maxclausecount")
        {
            return ScanError::Refused(reason.clone());
        }
    }
    if let SourceError::Cluster(ClusterError::Transport {
        timeout: true,
        reason,
        ..
    }) = &e
    {
        return ScanError::Refused(format!("no answer in time: {reason}"));
    }
    ScanError::Source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_names_the_members_that_matched_it() {
        let hit = json!({ "_index": "i", "_id": "1", "matched_queries": ["2", "0"] });
        let none = LocalSelection::default();
        assert_eq!(
            matched_members(&hit, 3, &none).unwrap(),
            (vec![2, 0], vec![])
        );
        assert!(
            matched_members(&hit, 2, &none).is_err(),
            "member 2 of 2 is unknown"
        );
        assert!(matched_members(&json!({ "_index": "i", "_id": "1" }), 3, &none).is_err());
        let reach = json!({ "_index": "i", "_id": "1", "matched_queries": ["r0"] });
        assert!(
            matched_members(&reach, 3, &none).is_err(),
            "no reach was planned"
        );
    }

    #[test]
    fn a_member_clause_is_its_own_query_on_its_own_indices() {
        let plan = SearchPlan {
            targets: vec!["logs-x".into()],
            indices: vec![".ds-logs-x-1".into()],
            types: Default::default(),
            warnings: vec![],
            query: json!({ "bool": { "filter": [{ "range": { "@timestamp": { "gte": 1 } } }] } }),
            sort: json!([]),
            source: json!(true),
            mappings: Arc::default(),
        };
        assert_eq!(
            named_clause(&plan, 7, None, false),
            json!({ "bool": { "_name": "7", "filter": [
                { "range": { "@timestamp": { "gte": 1 } } },
                { "terms": { "_index": [".ds-logs-x-1"] } }
            ] } })
        );
        // the range every member has is the scan's; the indices all of them
        // read need no restriction
        let range = json!({ "range": { "@timestamp": { "gte": 1 } } });
        assert_eq!(common_filter(&[&plan, &plan]), Some(&range));
        assert_eq!(
            named_clause(&plan, 7, Some(&range), true),
            json!({ "bool": { "_name": "7", "filter": [] } })
        );
        let mut other = plan.clone();
        other.query =
            json!({ "bool": { "filter": [{ "range": { "@timestamp": { "gte": 2 } } }] } });
        assert_eq!(common_filter(&[&plan, &other]), None);
    }

    #[test]
    fn only_a_refusal_for_size_splits_the_group() {
        let status = |reason: &str| {
            SourceError::Cluster(ClusterError::Status {
                method: "POST",
                path: "/_search".into(),
                status: 400,
                reason: reason.into(),
            })
        };
        assert!(matches!(
            refused(status(
                "search_phase_execution_exception: too_many_clauses: maxClauseCount is set to 1024"
            )),
            ScanError::Refused(_)
        ));
        assert!(matches!(
            refused(status("parsing_exception")),
            ScanError::Source(_)
        ));
        let timed_out = SourceError::Cluster(ClusterError::Transport {
            method: "POST",
            path: "/_search".into(),
            reason: "operation timed out".into(),
            timeout: true,
        });
        assert!(matches!(refused(timed_out), ScanError::Refused(_)));
    }
}
