//! A filter list placed as Kibana's `buildQueryFromFilters` places it
//! (`kbn-es-query` `src/es_query/from_filters.ts`), each filter translated
//! by `filterToQueryDsl`: migrated, wrapped in `nested`, combined, cleaned.

use serde_json::{json, Map, Value};

use super::error::FilterError;
use super::{Body, KibanaFilter, Relation};
use crate::filter::{FieldTypes, Filter, KibanaType, Verbatim};
use crate::querydsl::{self, Pointer};

/// Kibana's `EsQueryFiltersConfig` (the part that changes the query).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaceOptions {
    /// `nestedIgnoreUnmapped`: sent as `ignore_unmapped` on the `nested`
    /// queries around filters on nested fields. The detection engine leaves
    /// it unset.
    pub nested_ignore_unmapped: Option<bool>,
}

/// The clauses a filter list adds to a `bool` query: Kibana's
/// `buildQueryFromFilters` result. Each clause is a [`Filter::Verbatim`]
/// whose DSL is exactly Kibana's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterClauses {
    /// Filters that must match (`bool.filter`).
    pub filter: Vec<Filter>,
    /// Negated filters (`bool.must_not`).
    pub must_not: Vec<Filter>,
}

impl FilterClauses {
    /// `{"must": [], "filter": [...], "should": [], "must_not": [...]}`,
    /// the value Kibana merges into the rule's search.
    pub fn bool_query(&self) -> Value {
        let dsl = |v: &[Filter]| v.iter().map(crate::filter::to_dsl).collect::<Vec<_>>();
        json!({
            "must": [],
            "filter": dsl(&self.filter),
            "should": [],
            "must_not": dsl(&self.must_not),
        })
    }

    /// What the list selects: every `filter` clause and none of the
    /// `must_not` ones (for local evaluation; it renders the negations as
    /// `bool.must_not` of one query each, not Kibana's layout, which
    /// [`FilterClauses::bool_query`] gives).
    pub fn tree(&self) -> Filter {
        let mut parts = self.filter.clone();
        parts.extend(self.must_not.iter().cloned().map(Filter::not));
        Filter::and(parts)
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty() && self.must_not.is_empty()
    }
}

/// Places the filters for an index pattern with these field types (`None`:
/// Kibana without fields; no `nested` wrapping, no value conversion).
pub fn build_query_from_filters(
    filters: &[KibanaFilter],
    types: Option<&FieldTypes>,
    opts: &PlaceOptions,
) -> Result<FilterClauses, FilterError> {
    let mut out = FilterClauses::default();
    for f in filters.iter().filter(|f| !f.disabled) {
        let dsl = to_query_dsl(f, types, opts)?;
        let local = querydsl::read(&dsl, &Pointer::root())?;
        let clause = Filter::Verbatim(Verbatim { dsl, local });
        if f.negate {
            out.must_not.push(clause);
        } else {
            out.filter.push(clause);
        }
    }
    Ok(out)
}

/// Kibana's `filterToQueryDsl` for one filter.
fn to_query_dsl(
    f: &KibanaFilter,
    types: Option<&FieldTypes>,
    opts: &PlaceOptions,
) -> Result<Value, FilterError> {
    match &f.body {
        Body::Combined { relation, params } => {
            let bool_of = |params: &[KibanaFilter]| -> Result<Value, FilterError> {
                Ok(build_query_from_filters(params, types, opts)?.bool_query())
            };
            Ok(match relation {
                Relation::And => json!({ "bool": bool_of(params)? }),
                Relation::Or => {
                    let should = params
                        .iter()
                        .map(|p| Ok(json!({ "bool": bool_of(std::slice::from_ref(p))? })))
                        .collect::<Result<Vec<_>, FilterError>>()?;
                    json!({ "bool": { "should": should, "minimum_should_match": 1 } })
                }
            })
        }
        Body::Query {
            query,
            field,
            convert,
        } => {
            let mut query = query.clone();
            if let (Some(field), Some(types)) = (convert, types) {
                convert_phrase(&mut query, field, types)?;
            }
            // `fromNestedFilter`: the field must be one of the index
            // pattern's, under a `nested` object.
            let nested = field.as_deref().zip(types).and_then(|(field, types)| {
                types.get(field)?;
                types.nested_path(field)
            });
            Ok(match nested {
                Some(path) => {
                    let mut body = Map::new();
                    body.insert("path".into(), json!(path));
                    body.insert("query".into(), query);
                    if let Some(iu) = opts.nested_ignore_unmapped {
                        body.insert("ignore_unmapped".into(), json!(iu));
                    }
                    json!({ "nested": body })
                }
                None => query,
            })
        }
    }
}

/// Kibana's `getConvertedValueForField` on a migrated `match` phrase
/// filter: `1`/`"true"` and `0`/`"false"` become booleans on a boolean
/// field (anything else is refused), other values become numbers on a
/// number field (JavaScript's `Number`; `NaN` is sent as `null`).
fn convert_phrase(query: &mut Value, field: &str, types: &FieldTypes) -> Result<(), FilterError> {
    let kind = types.kibana_type(field);
    let Some(slot) = query
        .get_mut("match_phrase")
        .and_then(|m| m.get_mut(field))
        .and_then(|p| p.get_mut("query"))
    else {
        return Ok(());
    };
    match kind {
        Some(KibanaType::Boolean) if !slot.is_boolean() => {
            let b = match &*slot {
                Value::Number(n) if n.as_f64() == Some(1.0) => true,
                Value::Number(n) if n.as_f64() == Some(0.0) => false,
                Value::String(s) if s == "true" => true,
                Value::String(s) if s == "false" => false,
                other => {
                    return Err(FilterError::NotBoolean {
                        path: Pointer::root()
                            .child("query")
                            .child("match_phrase")
                            .child(field)
                            .to_string(),
                        field: field.to_string(),
                        value: other.to_string(),
                    })
                }
            };
            *slot = Value::Bool(b);
        }
        Some(KibanaType::Number) if !slot.is_number() => {
            let n = match &*slot {
                Value::String(s) if s.trim().is_empty() => Some(0.0),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                Value::Null => Some(0.0),
                _ => None,
            };
            *slot = match n.filter(|n| n.is_finite()) {
                Some(n) if n.fract() == 0.0 && n.abs() < 9e15 => json!(n as i64),
                Some(n) => json!(n),
                None => Value::Null,
            };
        }
        _ => {}
    }
    Ok(())
}
