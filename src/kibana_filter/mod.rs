//! Kibana filter objects: a rule's `filters` (`[[rule.filters]]` in
//! detection-rules TOML, `filters` in a Kibana export), and any filter
//! Kibana adds beside them (the exception-list filter).
//!
//! A filter is `meta` (`negate`, `disabled`, `alias`, `type`, `key`,
//! `params`, ...) and a query DSL object, in `query` or, in older shapes, at
//! the top level (`exists`, `range`, `match_all`, `match` of type
//! `phrase`...). [`KibanaFilter::from_json`] validates one at load time:
//! its meta, its query (as [`crate::querydsl`] reads it; a query the
//! cluster would refuse is an error with its JSON pointer), and what Kibana
//! derives from it. [`build_query_from_filters`] then places a list the way
//! Kibana's `buildQueryFromFilters` does (`kbn-es-query`
//! `src/es_query/from_filters.ts`): disabled filters dropped, the others in
//! `bool.filter` or, negated, in `bool.must_not`, each translated by
//! `filterToQueryDsl` (`migrate_filter.ts`: old shapes moved under `query`,
//! old `match` phrase filters rewritten as `match_phrase`;
//! `from_nested_filter.ts`: a filter on a field under a `nested` object
//! wrapped in a `nested` query when field types are known;
//! `from_combined_filter.ts`: `combined` filters as `bool` queries of their
//! sub-filters). Each placed query is a [`Filter::Verbatim`]: the cluster
//! gets Kibana's DSL as is, the evaluator its local meaning.
//!
//! Not modelled: `ignoreFilterIfFieldNotInIndex` (the detection engine
//! leaves it off), filters of several data views (`meta.index` picks one;
//! a rule has one index pattern), scripted fields (rules have none), and
//! the `$state` store (app or global filters apply alike).

mod error;
mod parse;
mod place;

pub use error::FilterError;
pub use place::{build_query_from_filters, FilterClauses, PlaceOptions};

use serde_json::Value;

use crate::querydsl::Pointer;

/// `meta.relation` of a `combined` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    And,
    Or,
}

/// One Kibana filter, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct KibanaFilter {
    raw: Value,
    disabled: bool,
    negate: bool,
    alias: Option<String>,
    body: Body,
}

#[derive(Clone, Debug, PartialEq)]
enum Body {
    /// The query after `migrateFilter`, before the steps that need field
    /// types.
    Query {
        query: Value,
        /// The field Kibana's `getFilterField` names, which decides the
        /// `nested` wrapping.
        field: Option<String>,
        /// An old `match` phrase filter on this field: its value is
        /// converted for boolean and number fields when placed.
        convert: Option<String>,
    },
    Combined {
        relation: Relation,
        params: Vec<KibanaFilter>,
    },
}

impl KibanaFilter {
    /// Validates a filter object; `at` is where it sits, for errors.
    pub fn from_json(v: &Value, at: &Pointer) -> Result<KibanaFilter, FilterError> {
        parse::filter(v, at)
    }

    /// A filter Kibana builds itself around a query (the exception-list
    /// filter: `negate: true`, no alias).
    pub fn from_query(
        query: Value,
        negate: bool,
        alias: Option<String>,
    ) -> Result<KibanaFilter, FilterError> {
        let raw = serde_json::json!({
            "meta": {"alias": alias, "disabled": false, "negate": negate},
            "query": query,
        });
        parse::filter(&raw, &Pointer::root())
    }

    /// The filter as written.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    pub fn is_negated(&self) -> bool {
        self.negate
    }

    pub fn alias(&self) -> Option<&str> {
        self.alias.as_deref()
    }
}

/// A rule's `filters` value: every filter validated, all errors at once
/// (pointers from the array: `/2/query/wildcard`). `null` entries are
/// skipped, as `buildQueryFromFilters` skips falsy filters.
pub fn parse_filters(v: &Value) -> Result<Vec<KibanaFilter>, Vec<FilterError>> {
    let root = Pointer::root();
    let Some(list) = v.as_array() else {
        return Err(vec![FilterError::Expected {
            path: root.to_string(),
            expected: "an array of filter objects".into(),
            found: crate::querydsl::error::describe(v),
        }]);
    };
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (i, f) in list.iter().enumerate() {
        if f.is_null() {
            continue;
        }
        match KibanaFilter::from_json(f, &root.child(i)) {
            Ok(f) => ok.push(f),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
