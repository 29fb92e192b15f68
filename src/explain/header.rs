//! The explanation's first section: the rule itself — its type and shape
//! (an event query, a sequence's stages and join keys, a query rule's
//! language), indices, schedule, `max_signals`, the fields that order
//! events and select the window, and its filters and exception lists.

use std::fmt::Write as _;

use super::text::{duration, one_line, span_text};
use super::threat;
use crate::eql::ast::{EventQuery, QueryBody};
use crate::eql::compile::PlanKind;
use crate::rule::{EqlRule, QueryLanguage, Rule, RuleKind};

/// The stages of a query as written: (label, event query).
pub(super) fn stages(body: &QueryBody) -> Vec<(String, &EventQuery)> {
    match body {
        QueryBody::Event(q) => vec![("event".to_string(), q)],
        QueryBody::Sequence(seq) => {
            let mut out: Vec<(String, &EventQuery)> = seq
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut label = format!("stage {}", i + 1);
                    if s.missing {
                        label.push_str(" (missing)");
                    }
                    if let Some(runs) = s.runs {
                        label.push_str(&format!(" (runs={})", runs.count));
                    }
                    (label, &s.query)
                })
                .collect();
            if let Some(until) = &seq.until {
                out.push(("until".to_string(), &until.query));
            }
            out
        }
        QueryBody::Sample(sample) => sample
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("filter {}", i + 1), &f.query))
            .collect(),
    }
}

/// What an EQL query is: one event, a sequence, a sample.
fn eql_shape(rule: &Rule, q: &crate::eql::ast::Query) -> String {
    match &q.body {
        QueryBody::Event(_) => "eql, an event query: one alert per matching event".to_string(),
        QueryBody::Sequence(seq) => {
            let n = seq.stages.len();
            let mut s = format!(
                "eql, a sequence of {n} stage{}: one shell alert and a building block per event",
                if n == 1 { "" } else { "s" }
            );
            let missing = seq.stages.iter().filter(|s| s.missing).count();
            if missing > 0 {
                s.push_str(&format!(
                    " ({missing} missing-event stage{})",
                    if missing == 1 { "" } else { "s" }
                ));
            }
            if !seq.by.is_empty() {
                let keys: Vec<&str> = seq.by.iter().map(|k| span_text(rule, k.span)).collect();
                s.push_str(&format!(", by {}", keys.join(", ")));
            }
            match seq.maxspan {
                Some(m) => s.push_str(&format!(", maxspan {m}")),
                None => s.push_str(", no maxspan"),
            }
            if seq.until.is_some() {
                s.push_str(", with until");
            }
            s
        }
        QueryBody::Sample(sample) => {
            let keys: Vec<&str> = sample.by.iter().map(|k| span_text(rule, k.span)).collect();
            format!(
                "eql, a sample of {} filters by {}: one shell alert and a building block per event",
                sample.filters.len(),
                keys.join(", ")
            )
        }
    }
}

/// What a query rule is: its type and language.
fn query_shape(rule: &Rule) -> String {
    let query = match &rule.kind {
        RuleKind::Query(q) => Some(q),
        RuleKind::Threshold(t) => Some(&t.query),
        RuleKind::ThreatMatch(t) => Some(&t.query),
        RuleKind::NewTerms(n) => Some(&n.query),
        RuleKind::Eql(_) => None,
        RuleKind::Esql(e) => return esql_shape(e),
        RuleKind::MachineLearning(m) => {
            return format!(
                "machine_learning, anomaly records of {} with record_score >= {}: one alert per \
                 record (needs {})",
                m.job_ids.join(", "),
                m.anomaly_threshold,
                crate::rule::NEEDS_ML
            )
        }
    };
    let language = match query.map(|q| &q.language) {
        Some(QueryLanguage::Kql(_)) => {
            "KQL, translated for the indices' field types as Kibana does"
        }
        Some(QueryLanguage::Lucene) => "Lucene, sent as Kibana sends it (query_string)",
        None => "EQL",
    };
    let outcome = match &rule.kind {
        RuleKind::Threshold(t) if t.fields.is_empty() => {
            format!("one alert when at least {} events match", t.value)
        }
        RuleKind::Threshold(t) => format!(
            "one alert per value of {} reached by at least {} matching events",
            t.fields.join(", "),
            t.value
        ),
        RuleKind::ThreatMatch(_) => {
            "one alert per event that matches an indicator, with threat.enrichments".to_string()
        }
        RuleKind::NewTerms(n) => format!(
            "one alert per tuple of {} first seen in the window (none since \
             history_window_start = {}, relative to the window's end), on its first event there",
            n.fields.join(", "),
            n.history_window_start
        ),
        _ => "one alert per matching event".to_string(),
    };
    format!("{}, {language}: {outcome}", rule.rule_type())
}

/// What an ES|QL rule is: Elasticsearch runs it; how its rows alert.
fn esql_shape(e: &crate::rule::EsqlRule) -> String {
    let rows = if e.shape.aggregating {
        let by = if e.shape.group_by.is_empty() {
            String::new()
        } else {
            format!(" by {}", e.shape.group_by.join(", "))
        };
        format!(
            "aggregating (STATS{by}): one alert per row, the same row in overlapping windows \
             once"
        )
    } else if e.shape.has_id() {
        "one alert per document (METADATA _id), with the row's columns over its source".to_string()
    } else {
        "one alert per row (no METADATA _id: the row is the alert's source)".to_string()
    };
    format!(
        "esql, run by Elasticsearch (needs {}): {rows}",
        crate::rule::NEEDS_ESQL
    )
}

/// The rule's header; `eql` is the EQL part and its plan (none for a
/// query rule).
pub(super) fn section(
    out: &mut String,
    rule: &Rule,
    origin: &str,
    eql: Option<(&EqlRule, &crate::eql::compile::Plan)>,
) {
    let shape = match eql {
        Some((e, _)) => eql_shape(rule, &e.query),
        None => query_shape(rule),
    };
    let kind = eql.map_or(PlanKind::Event, |(_, plan)| plan.kind);
    let _ = writeln!(out, "{}", rule.name);
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<13}{v}");
    };
    row(out, "rule_id", &rule.rule_id);
    row(out, "file", origin);
    row(out, "type", &shape);
    match (eql, &rule.kind) {
        (Some((e, _)), _) if !e.query.pipes.is_empty() => {
            let pipes: Vec<String> = e.query.pipes.iter().map(|p| p.to_string()).collect();
            row(out, "pipes", &pipes.join(", "));
        }
        (None, RuleKind::Query(q))
        | (None, RuleKind::Threshold(crate::rule::ThresholdRule { query: q, .. }))
        | (None, RuleKind::ThreatMatch(crate::rule::ThreatMatchRule { query: q, .. }))
        | (None, RuleKind::NewTerms(crate::rule::NewTermsRule { query: q, .. })) => {
            let text = match one_line(&q.text) {
                t if t.trim().is_empty() => "(empty: every event matches)".to_string(),
                t => t,
            };
            row(out, "query", &text);
            if let RuleKind::ThreatMatch(t) = &rule.kind {
                for (k, v) in threat::rows(t) {
                    row(out, k, &v);
                }
            }
        }
        (None, RuleKind::Esql(e)) => row(out, "query", &one_line(&e.text)),
        _ => {}
    }
    if rule.building_block_type.is_some() {
        row(
            out,
            "building",
            "a building-block rule: Kibana hides its alerts unless asked",
        );
    }
    if !rule.enabled {
        row(
            out,
            "enabled",
            "false: loaded but not scheduled (`run` skips it)",
        );
    }
    row(out, "indices", &rule.index.join(", "));
    let s = &rule.schedule;
    let width = s.lookback();
    let overlap = s.additional_lookback();
    row(
        out,
        "schedule",
        &format!(
            "every {}, over from = {}, to = {}: windows of {}{}",
            duration(s.interval),
            s.from,
            s.to,
            duration(width),
            if overlap.is_zero() {
                String::new()
            } else {
                format!(", each {} into the previous run's", duration(overlap))
            }
        ),
    );
    row(
        out,
        "max_signals",
        &format!(
            "{}: at most {} new {} per window, oldest first",
            rule.max_signals,
            rule.max_signals,
            if kind == PlanKind::Event {
                "alerts"
            } else {
                "shells (their building blocks ride along)"
            }
        ),
    );
    let time_filter = crate::source::TimeFilter::kibana(
        rule.timestamp_override.as_deref(),
        rule.timestamp_override_fallback_disabled,
    );
    // A query rule's search is sorted by the time it selects on.
    let ordering = match eql {
        Some((_, plan)) => plan.fields().timestamp_name().unwrap_or("@timestamp"),
        None => time_filter.primary.as_str(),
    };
    let mut f = format!("`{ordering}` orders events");
    match &time_filter.fallback {
        None => f.push_str(&format!(", `{}` selects the window", time_filter.primary)),
        Some(fb) => f.push_str(&format!(
            ", `{}` selects the window (`{fb}` where it is missing: timestamp_override)",
            time_filter.primary
        )),
    }
    if let Some((e, _)) = eql {
        let category = e
            .event_category_override
            .as_deref()
            .unwrap_or("event.category");
        f.push_str(&format!(", `{category}` is the category"));
        match &e.tiebreaker_field {
            Some(tb) => f.push_str(&format!(", `{tb}` breaks ties")),
            None => f.push_str(", no tiebreaker"),
        }
    }
    row(out, "fields", &f);
    constraint_rows(out, rule, kind);
}

/// The rule's Kibana filters and exception lists, when it has any.
fn constraint_rows(out: &mut String, rule: &Rule, kind: PlanKind) {
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<13}{v}");
    };
    if !rule.filters.is_empty() {
        let n = rule.filters.len();
        row(
            out,
            "filters",
            &format!(
                "{n} Kibana filter{}, placed as Kibana's buildQueryFromFilters places them \
                 (in the search's `query` below)",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
    if !rule.exceptions_list.is_empty() {
        let lists: Vec<String> = rule
            .exceptions
            .lists()
            .map(|l| {
                let n = l.items.len();
                format!("{} ({n} item{})", l.key, if n == 1 { "" } else { "s" })
            })
            .collect();
        let effect = if kind == PlanKind::Event {
            "an event an item describes does not alert"
        } else {
            "an event an item describes is removed before matching, as Kibana removes it"
        };
        row(
            out,
            "exceptions",
            &format!("{}: {effect}", lists.join(", ")),
        );
    }
}
