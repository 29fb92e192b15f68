//! Exception items -> the query DSL of Kibana's exception filter, clause
//! for clause as `buildExceptionFilter` writes it
//! (`x-pack/solutions/security/plugins/lists/server/services/exception_lists/build_exception_filter.ts`):
//!
//! - the filter: `{"bool": {"should": [<item clauses>...]}}` (no
//!   `minimum_should_match`: a `should`-only bool needs one anyway);
//! - an item: its one entry's clause, or `{"bool": {"filter": [<entry
//!   clauses>]}}`; with `os_types`, one `bool.filter` per OS with a `match`
//!   on `host.os.type` first, then one per OS on `host.os.name.caseless`
//!   (the Endpoint's field for the same value);
//! - `match`: `{"bool": {"minimum_should_match": 1, "should":
//!   [{"match_phrase": {f: v}}]}}`; `match_any`: the same with one
//!   `match_phrase`, or a `should` of such clauses, one per value;
//!   `wildcard`: `{"bool": {"filter": {"wildcard": {f: v}}}}`; `exists`:
//!   `{"bool": {"minimum_should_match": 1, "should": [{"exists": {"field":
//!   f}}]}}`; `operator: excluded`: `{"bool": {"must_not": <clause>}}`;
//! - `nested`: `{"nested": {"path": f, "query": <the one inner clause, or a
//!   bool.filter of them>, "score_mode": "none"}}`, inner fields prefixed
//!   with the path.
//!
//! Kibana builds the clauses of an `os_types` item concurrently, so a
//! `nested` entry there may come after entries written after it; the order
//! inside `bool.filter` does not change what matches. Chunking (Kibana
//! splits value-list items into chunks) does not apply without value lists.

use serde_json::{json, Value};

use super::error::BuildError;
use super::model::{Entry, ExceptionItem, ListKey, Operator};

/// The clause of one entry; `parent` is the path of the `nested` entry it
/// is in.
pub fn entry_clause(
    entry: &Entry,
    parent: Option<&str>,
    item: &ExceptionItem,
) -> Result<Value, BuildError> {
    let full = |field: &str| match parent {
        Some(p) => format!("{p}.{field}"),
        None => field.to_string(),
    };
    let excluded = |op: &Operator, clause: Value| match op {
        Operator::Excluded => json!({ "bool": { "must_not": clause } }),
        Operator::Included => clause,
    };
    let phrase = |field: &str, value: &str| {
        json!({ "bool": { "minimum_should_match": 1, "should": [
            { "match_phrase": { field: value } }
        ] } })
    };
    Ok(match entry {
        Entry::Exists { field, operator } => excluded(
            operator,
            json!({ "bool": { "minimum_should_match": 1, "should": [
                { "exists": { "field": full(field) } }
            ] } }),
        ),
        Entry::Match {
            field,
            operator,
            value,
        } => excluded(operator, phrase(&full(field), value)),
        Entry::MatchAny {
            field,
            operator,
            values,
        } => {
            let field = full(field);
            let clause = match values.as_slice() {
                [one] => phrase(&field, one),
                many => json!({ "bool": { "minimum_should_match": 1, "should":
                    many.iter().map(|v| phrase(&field, v)).collect::<Vec<_>>()
                } }),
            };
            excluded(operator, clause)
        }
        Entry::Wildcard {
            field,
            operator,
            value,
        } => excluded(
            operator,
            json!({ "bool": { "filter": { "wildcard": { full(field): value } } } }),
        ),
        Entry::List { field, list_id, .. } => {
            return Err(BuildError::ValueList {
                key: ListKey {
                    list_id: item.list_id.clone(),
                    namespace_type: item.namespace_type,
                },
                item: item.label(),
                field: full(field),
                value_list: list_id.clone(),
            })
        }
        Entry::Nested { field, entries } => {
            let query = match entries.as_slice() {
                [one] => entry_clause(one, Some(field), item)?,
                many => json!({ "bool": { "filter": many
                    .iter()
                    .map(|e| entry_clause(e, Some(field), item))
                    .collect::<Result<Vec<_>, _>>()? } }),
            };
            json!({ "nested": { "path": field, "query": query, "score_mode": "none" } })
        }
    })
}

/// The `should` clauses of one item (Kibana's `buildExceptionItemFilter`).
pub fn item_clauses(item: &ExceptionItem) -> Result<Vec<Value>, BuildError> {
    let clauses = |entries: &[Entry]| -> Result<Vec<Value>, BuildError> {
        entries
            .iter()
            .map(|e| entry_clause(e, None, item))
            .collect()
    };
    if !item.os_types.is_empty() {
        let mut out = Vec::new();
        for os_field in ["host.os.type", "host.os.name.caseless"] {
            for os in &item.os_types {
                let mut entries = vec![Entry::Match {
                    field: os_field.to_string(),
                    operator: Operator::Included,
                    value: os.clone(),
                }];
                entries.extend(item.entries.iter().cloned());
                out.push(json!({ "bool": { "filter": clauses(&entries)? } }));
            }
        }
        return Ok(out);
    }
    let mut all = clauses(&item.entries)?;
    Ok(if all.len() == 1 {
        vec![all.remove(0)]
    } else {
        vec![json!({ "bool": { "filter": all } })]
    })
}

/// The exception filter's query for these items (already free of expired
/// ones): `None` without items, as Kibana then adds no filter.
pub fn exception_query<'a>(
    items: impl IntoIterator<Item = &'a ExceptionItem>,
) -> Result<Option<Value>, BuildError> {
    let mut should = Vec::new();
    let mut any = false;
    for item in items {
        any = true;
        should.extend(item_clauses(item)?);
    }
    Ok(any.then(|| json!({ "bool": { "should": should } })))
}
