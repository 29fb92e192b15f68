//! The search a run sends for the next window: per stage, the filter that
//! is pushed down, what is left to detectd and why, the leaves the field
//! types widen and why; then the whole request (targets, query, sort,
//! `_source` projection).
//!
//! Offline the field types are ECS's, from the field map Kibana's alerts
//! use (`alert::fieldmap`); a field ECS does not define is taken as
//! unmapped, which widens its leaves, as an unmapped field on a cluster
//! would. With a cluster the request is `ElasticsearchSource::plan`'s own.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{json, Value};

use super::header::stages;
use super::text::{one_line, span_text};
use super::{ExplainError, NextRun};
use crate::eql::compile::CompileOptions;
use crate::eql::pushdown::{stage_filter_explained, Filter};
use crate::rule::Rule;
use crate::source::elasticsearch::dsl::{self, FieldTypes};
use crate::source::elasticsearch::ElasticsearchSource;
use crate::source::{FetchRequest, Mappings, SourceError};

/// What the request comes to: as the source renders it.
struct Rendered {
    targets: Vec<String>,
    types: FieldTypes,
    warnings: Vec<String>,
    query: Value,
    sort: Value,
    source: Value,
}

/// Writes the search section; with a cluster, returns the mappings of the
/// indices searched (what `--event` evaluates their events with).
pub(super) async fn section(
    out: &mut String,
    rule: &Rule,
    next: &NextRun,
    source: Option<&ElasticsearchSource>,
    options: Option<&CompileOptions>,
) -> Result<Option<Arc<Mappings>>, ExplainError> {
    let request = &next.search.request;
    let mut mappings = None;
    let (heading, rendered) = match source {
        None => (
            format!(
                "offline: field types from ECS {}, the field map of Kibana's alerts; \
                 --elasticsearch-url reads the cluster's mappings",
                crate::alert::fieldmap::ECS_VERSION
            ),
            offline(request)?,
        ),
        Some(source) => {
            let info = source.cluster().info();
            let plan = source.plan(request).await?;
            mappings = Some(plan.mappings.clone());
            (
                format!(
                    "field types and indices from the cluster: {:?} {}",
                    info.distribution, info.version
                ),
                Rendered {
                    targets: plan.targets,
                    types: plan.types,
                    warnings: plan.warnings,
                    query: plan.query,
                    sort: plan.sort,
                    source: plan.source,
                },
            )
        }
    };
    let _ = writeln!(out, "\nSearch ({heading})");
    let category = options.map_or("event.category", |o| o.event_category_field.as_str());
    let mut match_all_stages = Vec::new();
    let written = rule
        .eql()
        .map(|e| stages(&e.query.body))
        .unwrap_or_default();
    for (label, q) in written {
        let _ = writeln!(
            out,
            "  {:<13}{}",
            format!("{label} "),
            one_line(span_text(rule, q.span))
        );
        let (filter, unpushed) = stage_filter_explained(q, category);
        let adapted = dsl::adapt(&filter, &rendered.types);
        let shown = if adapted.is_match_all() {
            match_all_stages.push(label.clone());
            "match_all: every event of the window's indices is fetched for it".to_string()
        } else {
            layout(&dsl::to_dsl(&adapted), 4, 19)
        };
        let _ = writeln!(out, "    {:<15}{shown}", "filter");
        for u in &unpushed {
            let _ = writeln!(
                out,
                "    {:<15}{}: {}",
                "not pushed",
                one_line(span_text(rule, u.span)),
                u.reason
            );
        }
        let mut leaves = Vec::new();
        collect_leaves(&filter, &mut leaves);
        for leaf in leaves {
            if let Err(why) = dsl::leaf_verdict(leaf, &rendered.types) {
                let why = match (&why, source) {
                    (dsl::Widening::Unmapped { field }, None) => format!(
                        "`{field}` is not in the ECS field map: its type is unknown offline \
                         (the cluster's mapping decides)"
                    ),
                    _ => why.to_string(),
                };
                let _ = writeln!(
                    out,
                    "    {:<15}{}: {why}",
                    "widened",
                    compact(&dsl::to_dsl(leaf))
                );
            }
        }
    }
    let whole = if let crate::rule::RuleKind::NewTerms(n) = &rule.kind {
        format!(
            "none: the query is the search's own filter (the last clause of `query`), in the \
             window and in its history alike; on a cluster composite aggregations over {} \
             find the window's tuples, those seen in the history and the first event of each \
             new one (no event fetched); offline the events are read from the history start on",
            n.fields.join(", ")
        )
    } else if let crate::rule::RuleKind::Threshold(t) = &rule.kind {
        let groups = if t.fields.is_empty() {
            "all of them as one group".to_string()
        } else {
            format!("per group of {}", t.fields.join(", "))
        };
        format!(
            "none: the query is the search's own filter (the last clause of `query`); the \
             matching events are counted {groups} (on a cluster as a composite aggregation of this \
             query, no event fetched; offline from the fields below), minus those an earlier \
             alert of their group counted; a group of at least {} events alerts",
            t.value
        )
    } else if matches!(rule.kind, crate::rule::RuleKind::ThreatMatch(_)) {
        "none: the query is the search's own filter (the last clause of `query`); every event \
         the cluster returns is looked up in the run's indicators (see `join` above), and those \
         that match one are alerts"
            .to_string()
    } else if rule.eql().is_none() {
        "none: the query is the search's own filter (the last clause of `query`), every event \
         the cluster returns is an alert"
            .to_string()
    } else if request.filter.is_match_all() || match_all_stages.len() == stages_count(rule) {
        "match_all: the cluster is asked for every event of the window".to_string()
    } else if !match_all_stages.is_empty() {
        format!(
            "match_all: the filter is the stages' filters OR-ed, and {} {} everything",
            match_all_stages.join(", "),
            if match_all_stages.len() == 1 {
                "fetches"
            } else {
                "fetch"
            }
        )
    } else if stages_count(rule) == 1 {
        "the filter above: the cluster returns only events that can match".to_string()
    } else {
        "the stages' filters OR-ed: the cluster returns only events some stage can use".to_string()
    };
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<13}{v}");
    };
    row(out, "pushdown", &whole);
    if request.exact.is_some() && rule.eql().is_some() {
        row(
            out,
            "exact",
            "the rule's filters and exceptions, as Kibana adds them (the last clause of `query`): \
             an event they rule out never reaches the matcher",
        );
    } else if !rule.filters.is_empty() || !rule.exceptions_list.is_empty() {
        row(
            out,
            "exact",
            "the query with the rule's filters and exceptions, as Kibana adds them (the last \
             clause of `query`)",
        );
    }
    row(
        out,
        "indices",
        &format!(
            "{}{}",
            rendered.targets.join(", "),
            if source.is_none() {
                "  (a point in time over the patterns' indices, paged with search_after)"
            } else {
                "  (a point in time over these, paged with search_after)"
            }
        ),
    );
    for w in &rendered.warnings {
        row(out, "warning", w);
    }
    let _ = writeln!(out, "  {:<13}{}", "query", layout(&rendered.query, 2, 15));
    row(out, "sort", &compact(&rendered.sort));
    row(
        out,
        "_source",
        &format!(
            "{}  (the fields fetched; the events that end up in alerts are read again whole)",
            compact(&rendered.source)
        ),
    );
    row(out, "page size", &format!("{} events", request.page_size));
    Ok(mappings)
}

fn stages_count(rule: &Rule) -> usize {
    rule.eql().map_or(0, |e| stages(&e.query.body).len())
}

/// The request as the source renders it, with ECS's field types.
fn offline(request: &FetchRequest) -> Result<Rendered, ExplainError> {
    let types = ecs_types(request);
    let filter = dsl::adapt(&request.filter, &types);
    let mut query = dsl::search_query(&request.range, &request.time_filter, &filter);
    if let Some(exact) = &request.exact {
        let exact = exact
            .lower(Some(&all_ecs_types()))
            .map_err(|e| ExplainError::Source(SourceError::Query(e)))?;
        dsl::add_exact(&mut query, &exact);
    }
    let tiebreaker_type = request
        .tiebreaker_field
        .as_deref()
        .and_then(|tb| dsl::tiebreaker_type(&types, tb));
    // Elasticsearch 7.12 and later sort on `_shard_doc` (OpenSearch before
    // 3.3 on `_index`, `_id`): the cluster decides, offline Elasticsearch's.
    let sort = dsl::sort(
        &request.timestamp_field,
        request.tiebreaker_field.as_deref(),
        tiebreaker_type.as_deref(),
        true,
    );
    let source = match &request.source_fields {
        None => Value::Bool(true),
        Some(fields) => json!({ "includes": fields }),
    };
    Ok(Rendered {
        targets: request.indices.clone(),
        types,
        warnings: Vec::new(),
        query,
        sort,
        source,
    })
}

/// Every ECS field with its type: what an exact clause (a query rule's
/// KQL, filters, exceptions) is translated for offline, as Kibana
/// translates it for a data view over ECS indices.
fn all_ecs_types() -> crate::filter::FieldTypes {
    let mut types = crate::filter::FieldTypes::default();
    for field in crate::alert::fieldmap::ecs().iter() {
        if !matches!(field.field_type(), "" | "object") {
            types = types.with(field.name, &[field.field_type()]);
        }
    }
    for name in ECS_CONSTANT_KEYWORDS {
        types = types.with(name, &["constant_keyword"]);
    }
    for name in crate::alert::fieldmap::ecs_nested() {
        types = types.with(name, &["nested"]);
    }
    types
}

/// ECS fields Kibana's alerts field map leaves out because they are
/// `constant_keyword` (`ecs_field_map.ts` skips that type), but that event
/// indices map as ECS defines them (ECS `data_stream` field set).
const ECS_CONSTANT_KEYWORDS: &[&str] = &[
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
];

/// The ECS types of the fields the filter names (with the `.keyword`
/// sub-fields and parent objects the adaptation asks about).
fn ecs_types(request: &FetchRequest) -> FieldTypes {
    let ecs = crate::alert::fieldmap::ecs();
    let nested = crate::alert::fieldmap::ecs_nested();
    let mut fields = request.filter.fields();
    fields.extend(request.tiebreaker_field.clone());
    let mut types = FieldTypes::default();
    for f in &fields {
        let mut names = vec![f.clone(), format!("{f}.keyword")];
        names.extend(f.match_indices('.').map(|(i, _)| f[..i].to_string()));
        for name in names {
            if let Some(field) = ecs.get(&name) {
                types = types.with(&name, &[field.field_type()]);
            } else if ECS_CONSTANT_KEYWORDS.contains(&name.as_str()) {
                types = types.with(&name, &["constant_keyword"]);
            } else if nested.contains(&name) {
                types = types.with(&name, &["nested"]);
            }
        }
    }
    types
}

fn collect_leaves<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
    match f {
        Filter::MatchAll => {}
        Filter::Bool {
            must,
            should,
            must_not,
        } => {
            for x in must.iter().chain(should).chain(must_not) {
                collect_leaves(x, out);
            }
        }
        leaf => out.push(leaf),
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Longest line [`layout`] keeps a value on.
const LINE: usize = 110;

/// JSON laid out for reading: a value that fits on the rest of its line
/// is written compact, a longer object or array one member per line,
/// indented by two. `indent` is the indentation of the value's line, `col`
/// the column it starts at.
fn layout(v: &Value, indent: usize, col: usize) -> String {
    let flat = compact(v);
    if col + flat.len() <= LINE {
        return flat;
    }
    let inner = indent + 2;
    let pad = " ".repeat(inner);
    let (open, close, members): (char, char, Vec<String>) = match v {
        Value::Object(map) => (
            '{',
            '}',
            map.iter()
                .map(|(k, x)| {
                    let key = compact(&Value::String(k.clone()));
                    format!("{key}: {}", layout(x, inner, inner + key.len() + 2))
                })
                .collect(),
        ),
        Value::Array(items) => (
            '[',
            ']',
            items.iter().map(|x| layout(x, inner, inner)).collect(),
        ),
        _ => return flat,
    };
    format!(
        "{open}\n{pad}{}\n{}{close}",
        members.join(&format!(",\n{pad}")),
        " ".repeat(indent)
    )
}
