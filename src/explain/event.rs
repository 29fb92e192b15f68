//! `detectd explain RULE_FILE --event FILE`: why an event did (not) fire.
//!
//! Each event is checked against each stage with the compiled plan a run
//! uses: a stage the event fails is named with the reason — its category,
//! or the clauses of its condition that are not true, each with the
//! event's values of the fields it reads. A clause is judged by compiling
//! it alone into the same kind of plan (`compile` + `Stage::matches`), so
//! the verdict is the engine's, not a second evaluator's. Then the rule's
//! own matcher runs over all the events together (as `detectd hunt`
//! does, without a time window) and says what it finds, with the alert
//! ids; when a sequence finds nothing although every stage has events, the
//! likely cause between consecutive stages is named (order, join keys,
//! `maxspan`).
//!
//! The events come from [`super::input`]. Each is evaluated with the
//! mapping of its `_index` when one is known (`--mapping`, or the cluster's
//! mappings with `--elasticsearch-url`), as a run evaluates each event with
//! its index's mapping; without one, values are typed from the JSON.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value as Json;

use super::header::stages;
use super::input::EventInput;
use super::text::{iso, one_line, span_text};
use super::{ExplainError, ExplainOptions};
use crate::alert::ids::EventRef;
use crate::eql::ast::{Category, EventQuery, Expr, ExprKind, Literal, Query, QueryBody};
use crate::eql::compile::{compile, CompileOptions, Plan, PlanKind, PlanSet, Stage};
use crate::eql::event::Event;
use crate::eql::pushdown::{expr_fields, field_values};
use crate::eql::schema::Schema;
use crate::eql::search::{self, Document, ResultPosition, SearchOptions};
use crate::eql::value::Value;
use crate::offline::mappings::InputSchemas;
use crate::rule::Rule;

/// What each event does against each stage, and what the matcher finds.
/// `schemas` are the mappings, by `_index` and for any other index, the
/// events are evaluated with.
pub fn explain_events(
    rule: &Rule,
    events: &[EventInput],
    schemas: &InputSchemas,
    opts: &ExplainOptions,
) -> Result<String, ExplainError> {
    let Some(eql) = rule.eql() else {
        return super::exact::query_events(rule, events, schemas, opts);
    };
    let constraints = super::exact::exact_matcher(rule, schemas, opts)?;
    let options = eql.compile_options();
    let plans = PlanSet::compile(
        &eql.query,
        &options,
        &schemas.fallback,
        schemas.per_input.iter().map(|(n, s)| (n.as_str(), s)),
    )
    .map_err(|e| ExplainError::CompileForMapping(e.to_string()))?;
    let written = stages(&eql.query.body);
    let keys = key_names(rule);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nEvents ({}: each against each stage, as a run evaluates them)",
        events.len()
    );
    let mut parsed: Vec<Event> = Vec::with_capacity(events.len());
    for input in events {
        let index = input.doc.index.as_str();
        let schema: &Schema = schemas
            .per_input
            .iter()
            .find(|(n, _)| n == index)
            .map_or(&schemas.fallback, |(_, s)| s);
        let judge = Judge {
            rule,
            options: &options,
            plan: plans.for_key(index),
            schema,
        };
        let event = judge.plan.event(&input.doc.source);
        let typed = if schema.has_mapping() {
            format!("  (the mapping of `{index}`)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}  {}{typed}",
            input.label,
            judge.describe(&input.doc, &event)
        );
        let compiled = judge.plan.stages.iter().chain(judge.plan.until.iter());
        for (i, ((label, q), stage)) in written.iter().zip(compiled).enumerate() {
            let names = keys.get(i).map_or("", String::as_str);
            let _ = writeln!(
                out,
                "    {:<13}{}",
                format!("{label} "),
                judge.verdict(q, stage, names, &input.doc, &event)
            );
        }
        if let Some(m) = &constraints {
            let verdict = if m.matches(&input.doc.source, opts.now) {
                "kept: the rule's filters and exceptions let it through"
            } else {
                "removed: a filter or an exception of the rule rules it out, before any stage"
            };
            let _ = writeln!(out, "    {:<13}{verdict}", "constraints");
        }
        parsed.push(event);
    }
    // What the filters and exceptions remove never reaches the matcher.
    let (events, parsed): (Vec<EventInput>, Vec<Event>) = events
        .iter()
        .cloned()
        .zip(parsed)
        .filter(|(e, _)| {
            constraints
                .as_ref()
                .is_none_or(|m| m.matches(&e.doc.source, opts.now))
        })
        .unzip();
    matcher(&mut out, rule, &plans, &events, &parsed, opts);
    Ok(out)
}

/// What the verdicts on one event need: the rule, and the plan and the
/// mapping of the event's index.
struct Judge<'a> {
    rule: &'a Rule,
    options: &'a CompileOptions,
    plan: &'a Plan,
    schema: &'a Schema,
}

impl Judge<'_> {
    /// The event's time and category, as the plan reads them.
    fn describe(&self, doc: &Document, event: &Event) -> String {
        let ts_field = self.plan.fields().timestamp_name().unwrap_or("@timestamp");
        let time = match event.timestamp {
            Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| iso(&t))
                .unwrap_or_else(|| ms.to_string()),
            None => "no usable timestamp".to_string(),
        };
        format!(
            "{ts_field} {time}, {}",
            values_text(&doc.source, &self.options.event_category_field)
        )
    }

    /// `matches` (with the join key), or why not.
    fn verdict(
        &self,
        q: &EventQuery,
        stage: &Stage,
        key_names: &str,
        doc: &Document,
        event: &Event,
    ) -> String {
        if stage.matches(event) {
            if self.plan.kind == PlanKind::Event || !stage.has_keys() {
                return "matches".to_string();
            }
            let mut keys = Vec::new();
            stage.join_keys(event, &mut keys);
            return match keys.first() {
                Some(_) => format!("matches, join key {key_names} = {}", keys_text(&keys)),
                None => "matches the condition, but a join key field is missing: a sequence \
                         cannot use the event"
                    .to_string(),
            };
        }
        if let Category::Named(name, span) = &q.category {
            let wanted = EventQuery {
                category: q.category.clone(),
                condition: Expr {
                    kind: ExprKind::Literal(Literal::Bool(true)),
                    span: *span,
                },
                span: *span,
            };
            if !self.holds(wanted, &doc.source) {
                return format!(
                    "fails: the category is not \"{name}\" ({})",
                    values_text(&doc.source, &self.options.event_category_field)
                );
            }
        }
        let mut failing = Vec::new();
        self.failing(&q.condition, &doc.source, &mut failing);
        let mut lines = Vec::new();
        for clause in failing {
            let mut fields = BTreeSet::new();
            expr_fields(clause, &mut fields);
            let values: Vec<String> = fields.iter().map(|f| values_text(&doc.source, f)).collect();
            lines.push(format!(
                "fails on `{}` ({})",
                one_line(span_text(self.rule, clause.span)),
                if values.is_empty() {
                    "no field".to_string()
                } else {
                    values.join(", ")
                }
            ));
        }
        if lines.is_empty() {
            // Every part holds alone but the whole does not: null logic.
            return "fails: the condition is not true (null: a field it needs is missing)"
                .to_string();
        }
        lines.join(&format!("\n    {:<13}", ""))
    }

    /// The smallest parts of `e` (not true for this event) to blame:
    /// through `and`, each conjunct that is not true; anything else whole.
    fn failing<'e>(&self, e: &'e Expr, source: &Json, out: &mut Vec<&'e Expr>) {
        if let ExprKind::And(a, b) = &e.kind {
            let before = out.len();
            for part in [a, b] {
                if !self.holds_expr(part, source) {
                    self.failing(part, source, out);
                }
            }
            if out.len() > before {
                return;
            }
        }
        out.push(e);
    }

    fn holds_expr(&self, e: &Expr, source: &Json) -> bool {
        self.holds(
            EventQuery {
                category: Category::Any(e.span),
                condition: e.clone(),
                span: e.span,
            },
            source,
        )
    }

    /// Whether the event matches `q` compiled on its own, as the run
    /// compiles the whole query.
    fn holds(&self, q: EventQuery, source: &Json) -> bool {
        let span = q.span;
        let query = Query {
            body: QueryBody::Event(q),
            pipes: Vec::new(),
            span,
        };
        match compile(&query, self.schema, self.options) {
            Ok(plan) => plan
                .stages
                .first()
                .is_some_and(|s| s.matches(&plan.event(source))),
            Err(_) => false,
        }
    }
}

/// The rule's matcher over all the events, without a window.
fn matcher(
    out: &mut String,
    rule: &Rule,
    plans: &PlanSet,
    events: &[EventInput],
    parsed: &[Event],
    opts: &ExplainOptions,
) {
    let shape = plans.shape();
    let docs: Vec<Document> = events.iter().map(|e| e.doc.clone()).collect();
    let options = SearchOptions {
        size: usize::MAX,
        result_position: ResultPosition::Head,
        max_samples_per_key: 1,
        limits: opts.runner.limits,
    };
    let response = match search::search_with(shape, |d| plans.for_key(&d.index), &docs, &options) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "  result       the matcher refused the query: {e}");
            return;
        }
    };
    let label_of = |index: &str, id: &str| {
        events
            .iter()
            .find(|e| e.doc.index == index && e.doc.id == id)
            .map_or_else(|| format!("{index}/{id}"), |e| e.label.clone())
    };
    let uuid = rule.uuid();
    let grouped = shape.kind != PlanKind::Event;
    let _ = writeln!(
        out,
        "\nResult (the rule's matcher over these events, without a time window, as `detectd hunt`)"
    );
    if let Some(hits) = &response.hits.events {
        if hits.is_empty() {
            let _ = writeln!(out, "  no alert: no event matches");
        }
        for h in hits {
            let ids = crate::runner::match_ids(
                &[EventRef {
                    index: &h.index,
                    id: &h.id,
                }],
                false,
                &opts.space_id,
                uuid,
            );
            let _ = writeln!(
                out,
                "  alert        {}  id {}",
                label_of(&h.index, &h.id),
                ids.first().map_or("", String::as_str)
            );
        }
        return;
    }
    let sequences = response.hits.sequences.as_deref().unwrap_or(&[]);
    let noun = if shape.kind == PlanKind::Sample {
        "sample"
    } else {
        "sequence"
    };
    for s in sequences {
        let present: Vec<EventRef<'_>> = s
            .events
            .iter()
            .filter(|e| !e.missing)
            .map(|e| EventRef {
                index: &e.index,
                id: &e.id,
            })
            .collect();
        let ids = crate::runner::match_ids(&present, grouped, &opts.space_id, uuid);
        let members: Vec<String> = s
            .events
            .iter()
            .map(|e| {
                if e.missing {
                    "(missing)".to_string()
                } else {
                    label_of(&e.index, &e.id)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "  {noun:<13}{}  join key {}",
            members.join(" → "),
            serde_json::to_string(&s.join_keys).unwrap_or_default()
        );
        if let Some((shell, blocks)) = ids.split_first() {
            let _ = writeln!(out, "    {:<13}{shell}", "shell id");
            for (i, b) in blocks.iter().enumerate() {
                let _ = writeln!(out, "    {:<13}{b}", format!("block {i} id"));
            }
        }
    }
    if sequences.is_empty() {
        let _ = writeln!(out, "  no alert: no {noun} of these events");
        if shape.kind == PlanKind::Sequence {
            for why in sequence_hints(rule, plans, events, parsed) {
                let _ = writeln!(out, "  {:<13}{why}", "why");
            }
        }
    }
}

/// Why consecutive stages found no pair, for a sequence the matcher did not
/// find: the first stage no event matches, or per pair of events matching
/// consecutive stages, their order, their join keys or `maxspan`.
fn sequence_hints(
    rule: &Rule,
    plans: &PlanSet,
    events: &[EventInput],
    parsed: &[Event],
) -> Vec<String> {
    const MAX_HINTS: usize = 6;
    let Some(QueryBody::Sequence(seq)) = rule.eql().map(|e| &e.query.body) else {
        return Vec::new();
    };
    // Each event with the stages of its own index's plan.
    let stage_of =
        |e: usize, i: usize| -> &Stage { &plans.for_key(&events[e].doc.index).stages[i] };
    let positive: Vec<usize> = (0..plans.shape().stages.len())
        .filter(|&i| !plans.shape().stages[i].missing)
        .collect();
    let mut hits: Vec<Vec<usize>> = Vec::new();
    for &i in &positive {
        let matching: Vec<usize> = (0..events.len())
            .filter(|&e| stage_of(e, i).matches(&parsed[e]))
            .collect();
        if matching.is_empty() {
            return vec![format!("stage {} matches none of the events", i + 1)];
        }
        hits.push(matching);
    }
    let keys = |i: usize, e: usize| -> Vec<String> {
        let mut k = Vec::new();
        stage_of(e, i).join_keys(&parsed[e], &mut k);
        k.iter()
            .map(|combo| keys_text(std::slice::from_ref(combo)))
            .collect()
    };
    let mut hints = Vec::new();
    for pair in positive.windows(2).zip(hits.windows(2)) {
        let ([sa, sb], [ha, hb]) = pair else {
            continue;
        };
        let (sa, sb) = (*sa, *sb);
        let has_keys = plans.shape().stages[sa].has_keys();
        let (ia, ib) = (sa + 1, sb + 1);
        let pairs: Vec<(usize, usize)> = ha
            .iter()
            .flat_map(|&a| hb.iter().map(move |&b| (a, b)))
            .filter(|(a, b)| a != b)
            .collect();
        // Only events with a common join key can form a sequence.
        let sharing: Vec<(usize, usize)> = pairs
            .iter()
            .copied()
            .filter(|&(a, b)| !has_keys || keys(sa, a).iter().any(|k| keys(sb, b).contains(k)))
            .collect();
        if sharing.is_empty() {
            if let Some(&(a, b)) = pairs.first() {
                hints.push(format!(
                    "no stage {ib} event shares a join key with a stage {ia} event: e.g. {} has {} \
                     and {} has {}",
                    events[a].label,
                    keys(sa, a).join(" | "),
                    events[b].label,
                    keys(sb, b).join(" | ")
                ));
            }
            continue;
        }
        for (a, b) in sharing {
            if hints.len() >= MAX_HINTS {
                return hints;
            }
            let (la, lb) = (&events[a].label, &events[b].label);
            let (Some(ta), Some(tb)) = (parsed[a].timestamp, parsed[b].timestamp) else {
                hints.push(format!(
                    "{la} or {lb} has no usable timestamp: a sequence cannot order it"
                ));
                continue;
            };
            if tb < ta || (tb == ta && b < a) {
                hints.push(format!(
                    "{lb} (stage {ib}) is not after {la} (stage {ia}): stages match in time order"
                ));
            } else if let Some(m) = seq
                .maxspan
                .filter(|m| u64::try_from(tb - ta).unwrap_or(0) > m.millis())
            {
                hints.push(format!(
                    "{lb} is {} after {la}: beyond maxspan {m}",
                    super::text::offset_text(std::time::Duration::from_millis(
                        u64::try_from(tb - ta).unwrap_or(0)
                    ))
                ));
            } else {
                hints.push(format!(
                    "{la} and {lb} fit stages {ia} and {ib} (order, join key, maxspan): another \
                     stage, an `until` or a missing-event stage rules the sequence out"
                ));
            }
        }
    }
    hints
}

/// Each stage's join key fields as written, `(host.id, process.entity_id)`,
/// aligned with [`stages`].
fn key_names(rule: &Rule) -> Vec<String> {
    let names = |global: &[Expr], own: &[Expr]| {
        let all: Vec<String> = global
            .iter()
            .chain(own)
            .map(|k| one_line(span_text(rule, k.span)))
            .collect();
        format!("({})", all.join(", "))
    };
    let Some(body) = rule.eql().map(|e| &e.query.body) else {
        return Vec::new();
    };
    match body {
        QueryBody::Event(_) => Vec::new(),
        QueryBody::Sequence(seq) => seq
            .stages
            .iter()
            .chain(seq.until.as_deref())
            .map(|s| names(&seq.by, &s.by))
            .collect(),
        QueryBody::Sample(sample) => sample
            .filters
            .iter()
            .map(|f| names(&sample.by, &f.by))
            .collect(),
    }
}

/// `field = value`, `field = [a, b]`, or `field is missing`.
fn values_text(source: &Json, field: &str) -> String {
    let values = field_values(source, field);
    match values.as_slice() {
        [] => format!("{field} is missing"),
        [one] => format!("{field} = {one}"),
        many => format!(
            "{field} = [{}]",
            many.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Join keys as `("h1", "p1")` (several combinations of multi-valued keys
/// separated by `|`).
fn keys_text(keys: &[Vec<Value>]) -> String {
    keys.iter()
        .map(|combo| {
            let parts: Vec<String> = combo
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Json::String(s.to_string()).to_string(),
                    other => other.to_string(),
                })
                .collect();
            format!("({})", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
