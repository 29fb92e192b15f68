//! `--event` and a rule's exact clause: a query rule's query with its
//! filters and exceptions, or an EQL rule's filters and exceptions alone.
//! The clause is the one the run's detector puts in its request
//! (`Detector::request`), translated for the field types of the events'
//! mappings (`--mapping`, or the cluster's), and evaluated by the matcher
//! the sources without a cluster use (`filter::eval`, fields no mapping
//! declares typed as dynamic mapping would type them): the same verdict a
//! `hunt` over these events gives.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::input::EventInput;
use super::text::iso;
use super::{ExplainError, ExplainOptions};
use crate::alert::ids::EventRef;
use crate::eql::pushdown::field_values;
use crate::filter::eval::{self, EvalOptions, Matcher, Unmapped};
use crate::filter::FieldTypes;
use crate::offline::mappings::InputSchemas;
use crate::rule::Rule;
use crate::runner::Detector;
use crate::source::select::timestamp_millis;
use crate::source::{FetchRequest, SourceError, TimeRange};

/// The rule's exact clause compiled for the events' field types; `None`
/// when the rule has none (an EQL rule without filters and exceptions).
pub(super) fn exact_matcher(
    rule: &Rule,
    schemas: &InputSchemas,
    opts: &ExplainOptions,
) -> Result<Option<Matcher>, ExplainError> {
    let detector = Detector::new(rule, &opts.runner, opts.now).map_err(ExplainError::Run)?;
    let all_time = TimeRange {
        from: DateTime::<Utc>::MIN_UTC,
        to: DateTime::<Utc>::MAX_UTC,
    };
    let request = detector.request(FetchRequest::new(rule.index.clone(), all_time));
    let Some(exact) = request.exact else {
        return Ok(None);
    };
    let types: Option<FieldTypes> = schemas.mappings().field_types();
    let filter = exact
        .lower(types.as_ref())
        .map_err(|e| ExplainError::Source(SourceError::Query(e)))?;
    let matcher = eval::compile(
        &filter,
        &types.unwrap_or_default(),
        &EvalOptions {
            unmapped: Unmapped::Dynamic,
        },
    )
    .map_err(|e| ExplainError::Source(SourceError::Query(e.to_string())))?;
    Ok(Some(matcher))
}

/// A query rule's verdict on each event: whether the query, filters and
/// exceptions select it, with its alert id (over all time, as `hunt`).
pub(super) fn query_events(
    rule: &Rule,
    events: &[EventInput],
    schemas: &InputSchemas,
    opts: &ExplainOptions,
) -> Result<String, ExplainError> {
    let matcher = exact_matcher(rule, schemas, opts)?;
    let time_field = crate::source::TimeFilter::kibana(
        rule.timestamp_override.as_deref(),
        rule.timestamp_override_fallback_disabled,
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nEvents ({}: each against the query, filters and exceptions, as a run evaluates them)",
        events.len()
    );
    let mut alerts = 0usize;
    for input in events {
        let doc = &input.doc;
        let time = std::iter::once(&time_field.primary)
            .chain(time_field.fallback.as_ref())
            .find_map(|f| {
                field_values(&doc.source, f)
                    .into_iter()
                    .find_map(timestamp_millis)
                    .map(|ms| (f, ms))
            });
        let when = match time {
            Some((f, ms)) => match DateTime::from_timestamp_millis(ms) {
                Some(t) => format!("{f} {}", iso(&t)),
                None => format!("{f} {ms}"),
            },
            None => format!(
                "no usable time in `{}`: no window ever holds it",
                time_field.primary
            ),
        };
        let selected = matcher
            .as_ref()
            .is_none_or(|m| m.matches(&doc.source, opts.now));
        let verdict = if !selected {
            "no match: the query, a filter or an exception rules it out".to_string()
        } else if time.is_none() {
            "matches the query, but a run never searches it".to_string()
        } else if let crate::rule::RuleKind::NewTerms(n) = &rule.kind {
            let tuples = crate::runner::new_terms_tuples(&n.fields, &doc.source);
            if tuples.is_empty() {
                format!(
                    "matches the query, but lacks one of {}: it has no tuple (Kibana's \
                     composite aggregation leaves it out)",
                    n.fields.join(", ")
                )
            } else {
                alerts += 1;
                format!(
                    "matches: tuple {}; it alerts if it is the first event of its tuple in the \
                     window and none is in the history",
                    tuples.join(", ")
                )
            }
        } else if let crate::rule::RuleKind::Threshold(t) = &rule.kind {
            let (counted, verdict) = threshold_verdict(t, &doc.source);
            alerts += usize::from(counted);
            verdict
        } else {
            alerts += 1;
            let id = crate::runner::match_ids(
                &[EventRef {
                    index: &doc.index,
                    id: &doc.id,
                }],
                false,
                &opts.space_id,
                rule.uuid(),
            );
            format!("matches: alert {}", id.join(", "))
        };
        let _ = writeln!(out, "  {}  {when}, {verdict}", input.label);
    }
    if let crate::rule::RuleKind::NewTerms(_) = &rule.kind {
        let _ = writeln!(
            out,
            "  {:<13}{alerts} of {} events have a tuple; a tuple alerts once, on its first \
             event in a window, when its history does not hold it",
            "in all",
            events.len(),
        );
        return Ok(out);
    }
    if let crate::rule::RuleKind::Threshold(t) = &rule.kind {
        let _ = writeln!(
            out,
            "  {:<13}{alerts} of {} events are counted; a group alerts at {} in one window",
            "in all",
            events.len(),
            t.value
        );
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "  {:<13}{alerts} of {} events alert (at most max_signals = {} per window)",
        "in all",
        events.len(),
        rule.max_signals
    );
    Ok(out)
}

/// Whether a threshold rule counts a matching event, and in which group:
/// an event missing a threshold field is in none.
fn threshold_verdict(rule: &crate::rule::ThresholdRule, doc: &serde_json::Value) -> (bool, String) {
    let mut missing = Vec::new();
    let mut terms = Vec::new();
    for f in &rule.fields {
        let values: Vec<String> = field_values(doc, f)
            .into_iter()
            .map(|v| v.to_string())
            .collect();
        if values.is_empty() {
            missing.push(f.as_str());
        } else {
            terms.push(format!("{f}={}", values.join("|")));
        }
    }
    if !missing.is_empty() {
        (
            false,
            format!(
                "matches the query, but is in no group (no {})",
                missing.join(", ")
            ),
        )
    } else if terms.is_empty() {
        (true, "matches: counted in the rule's one group".to_string())
    } else {
        (
            true,
            format!("matches: counted in group {}", terms.join(", ")),
        )
    }
}
