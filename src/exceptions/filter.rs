//! A rule's exception lists as one negated filter (Kibana's
//! `buildExceptionFilter` with `excludeExceptions: true`, as the detection
//! engine calls it), for the cluster and for local evaluation, and the
//! per-event test sequences need.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::build::exception_query;
use super::error::BuildError;
use super::model::ExceptionItem;
use super::store::RuleExceptions;
use crate::filter::{
    compile, EvalError, EvalOptions, FieldTypes, Filter, Local, Matcher, Verbatim,
};
use crate::kibana_filter::{FilterError, KibanaFilter};
use crate::querydsl::{self, Pointer};

/// The exception filter of a set of items at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionFilter {
    /// The events any item applies to: Kibana's `bool.should` of item
    /// clauses, with its local meaning.
    matching: Verbatim,
    /// Items that took part (not expired).
    pub items: usize,
    /// Items dropped because `expire_time` was before `now`.
    pub expired: usize,
}

impl ExceptionFilter {
    /// The query Kibana puts in the search's `bool.must_not`.
    pub fn query(&self) -> &Value {
        &self.matching.dsl
    }

    /// The events to keep, as one negated filter: `NOT <query>`.
    pub fn to_filter(&self) -> Filter {
        Filter::not(Filter::Verbatim(self.matching.clone()))
    }

    /// The filter as Kibana hands it to `buildEsQuery` after the rule's own
    /// filters: `{"meta": {"alias": null, "disabled": false, "negate":
    /// true}, "query": ...}`. Appended to the rule's filters and placed with
    /// [`crate::kibana_filter::build_query_from_filters`], it lands in
    /// `bool.must_not` exactly as in Kibana's search.
    pub fn kibana_filter(&self) -> Result<KibanaFilter, FilterError> {
        KibanaFilter::from_query(self.matching.dsl.clone(), true, None)
    }

    /// The per-event test: whether an exception applies to a document
    /// (the runner drops such events before matching a sequence: an
    /// exception on any event of a sequence removes the sequence, as
    /// Kibana's EQL search filter does).
    pub fn matcher(
        &self,
        types: &FieldTypes,
        opts: &EvalOptions,
        now: DateTime<Utc>,
    ) -> Result<ExceptionMatcher, EvalError> {
        Ok(ExceptionMatcher {
            matcher: compile(&Filter::Verbatim(self.matching.clone()), types, opts)?,
            now,
        })
    }
}

/// Whether an exception applies to an event.
#[derive(Clone, Debug)]
pub struct ExceptionMatcher {
    matcher: Matcher,
    now: DateTime<Utc>,
}

impl ExceptionMatcher {
    /// True when some exception item applies to the document: the event is
    /// excluded.
    pub fn matches(&self, doc: &Value) -> bool {
        self.matcher.matches(doc, self.now)
    }
}

/// Kibana's exception filter for these items at `now` (the rule run's
/// start): expired items dropped, `None` when no item is left (Kibana then
/// adds no filter). A value-list entry in a live item is an error.
pub fn build_exception_filter<'a>(
    items: impl IntoIterator<Item = &'a ExceptionItem>,
    now: DateTime<Utc>,
) -> Result<Option<ExceptionFilter>, BuildError> {
    let mut live = Vec::new();
    let mut expired = 0;
    for item in items {
        // `removeExpiredExceptions`: `new Date(expire_time) < startedAt`.
        if item.expire_time.is_some_and(|t| t < now) {
            expired += 1;
        } else {
            live.push(item);
        }
    }
    let Some(dsl) = exception_query(live.iter().copied())? else {
        return Ok(None);
    };
    let local = match querydsl::read(&dsl, &Pointer::root()) {
        Ok(local) => local,
        // Built from validated entries; a failure here is a bug, reported
        // as unevaluable rather than as a wrong answer.
        Err(e) => Local::Unsupported(format!("the exception filter does not read back: {e}")),
    };
    Ok(Some(ExceptionFilter {
        matching: Verbatim { dsl, local },
        items: live.len(),
        expired,
    }))
}

impl RuleExceptions {
    /// [`build_exception_filter`] over the rule's items.
    pub fn build(&self, now: DateTime<Utc>) -> Result<Option<ExceptionFilter>, BuildError> {
        build_exception_filter(self.items(), now)
    }
}
