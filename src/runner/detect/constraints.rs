//! What narrows every rule's events, whatever its kind: the rule's Kibana
//! `filters` and its exception lists, as one exact clause. Kibana adds both
//! to every detection search (`getQueryFilter` in
//! `rule_types/utils/get_query_filter.ts`: the filters placed by
//! `buildQueryFromFilters`, then the exception filter appended as one
//! negated filter); for an EQL rule they are the request's `filter`, so an
//! excepted event is gone before sequences are matched.

use chrono::{DateTime, Utc};

use super::super::run::RunError;
use crate::filter::Filter;
use crate::kibana_filter::{build_query_from_filters, PlaceOptions};
use crate::rule::Rule;
use crate::source::Exact;

/// The rule's filters and its exception items live at `now` as an exact
/// clause, placed for the indices' field types; `None` when the rule has
/// neither.
pub(super) fn constraints(rule: &Rule, now: DateTime<Utc>) -> Result<Option<Exact>, RunError> {
    let exceptions = rule.exceptions.build(now).map_err(RunError::Exceptions)?;
    if rule.filters.is_empty() && exceptions.is_none() {
        return Ok(None);
    }
    let filters = rule.filters.clone();
    Ok(Some(Exact::new(move |types| {
        let placed = build_query_from_filters(&filters, types, &PlaceOptions::default())
            .map_err(|e| format!("the rule's filters: {e}"))?;
        let mut parts: Vec<Filter> = vec![placed.tree()];
        if let Some(exceptions) = &exceptions {
            parts.push(exceptions.to_filter());
        }
        Ok(Filter::and(parts))
    })))
}
