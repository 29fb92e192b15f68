//! `detectd explain RULE_FILE`: a rule as detectd understands it — its
//! type, indices and schedule, its query (a query rule's), filters and
//! exception lists, the next window with its date math resolved, how far a
//! sequence's search reaches back, the query DSL a run sends (which parts
//! of an EQL query fall back to match-all and why; a query rule's KQL
//! translated for the field types), the fields fetched, the alert id
//! recipe — and, with `--event FILE`, which stage or clause each event
//! fails and why ([`event`]), or whether a query rule selects it
//! ([`exact`]).
//!
//! Nothing is decided here: the windows are the runner's
//! (`runner::timing`, `anchor`, `window_search`, the `Detector` and its
//! request), the pushdown and why a part is not pushed down come from
//! `eql::pushdown` (`stage_filter_explained`), the DSL and why a leaf is
//! widened from the source (`dsl::adapt`, `leaf_verdict`, `search_query`,
//! `add_exact`, `sort`; with a cluster `ElasticsearchSource::plan`
//! itself), the ids from the alert recipes (`runner::match_ids`), the
//! first-run offset from the scheduler, and `--event` evaluates with the
//! compiled plan and the exact clause a run uses. What this module adds is
//! the wording. Offline, field types are ECS's (the field map Kibana's
//! alerts use); with a cluster, the cluster's.

mod daemon;
pub mod event;
mod exact;
pub mod input;
mod search;
mod text;
mod threat;

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::eql::ast::{EventQuery, QueryBody};
use crate::eql::compile::{compile, PlanKind};
use crate::eql::schema::Schema;
use crate::eql::EqlError;
use crate::offline::mappings::InputSchemas;
use crate::rule::{EqlRule, QueryLanguage, Rule, RuleKind};
use crate::runner::{Detector, RunnerSettings};
use crate::schedule::window::plan_windows;
use crate::source::elasticsearch::ElasticsearchSource;
use crate::source::{Mappings, SourceError};
use text::{iso, offset_text, one_line, span_text};

pub use event::explain_events;
pub use input::{read_events, EventInput, EventsError};

/// What the explanation assumes of the run and the daemon.
#[derive(Clone, Debug)]
pub struct ExplainOptions {
    /// When the run is taken to happen (`--now`, default the clock).
    pub now: DateTime<Utc>,
    /// Kibana space, part of event alert ids.
    pub space_id: String,
    /// The run's settings (catch-up horizon, lookback of unbounded sequences).
    pub runner: RunnerSettings,
    /// Exception list files or folders (`--exceptions`), as `run` has them.
    pub exceptions: Vec<std::path::PathBuf>,
}

impl ExplainOptions {
    pub fn at(now: DateTime<Utc>) -> ExplainOptions {
        ExplainOptions {
            now,
            space_id: crate::config::DEFAULT_SPACE_ID.to_string(),
            runner: RunnerSettings::default(),
            exceptions: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the query does not compile: {0}")]
    Compile(EqlError),
    /// The query does not compile for the mapping of an event's index.
    #[error("the query does not compile {0}")]
    CompileForMapping(String),
    #[error("asking the cluster: {0}")]
    Source(#[from] SourceError),
    /// The rule cannot run (its exceptions do not build).
    #[error("{0}")]
    Run(crate::runner::RunError),
}

/// An explanation, and what the cluster said that `--event` uses.
#[derive(Clone, Debug)]
pub struct Explained {
    pub text: String,
    /// With a cluster: the mappings of the indices the search covers.
    pub mappings: Option<Arc<Mappings>>,
}

/// The explanation of `rule` (loaded from `origin`): offline, or with the
/// cluster behind `source` resolving the indices and field types.
pub async fn explain(
    rule: &Rule,
    origin: &str,
    opts: &ExplainOptions,
    source: Option<&ElasticsearchSource>,
) -> Result<Explained, ExplainError> {
    let mut out = String::new();
    let (kind, options) = match rule.eql() {
        Some(eql) => {
            let options = eql.compile_options();
            let plan =
                compile(&eql.query, &Schema::default(), &options).map_err(ExplainError::Compile)?;
            header(&mut out, rule, origin, Some((eql, &plan)));
            (plan.kind, Some(options))
        }
        // A query rule's match is one event, as an EQL event query's.
        None => {
            header(&mut out, rule, origin, None);
            (PlanKind::Event, None)
        }
    };
    // The run's own detector: its reach and what it narrows the search to.
    let detector = Detector::new(rule, &opts.runner, opts.now).map_err(ExplainError::Run)?;
    let next = next_run(&mut out, rule, opts, kind, &detector);
    daemon::section(&mut out, rule, opts, &detector, &next);
    if let Some(request) = detector.cluster_request(next.window) {
        // Elasticsearch evaluates the rule: what is sent is all there is
        // to show (no pushdown, no local evaluation).
        let _ = writeln!(out, "\nrequest (the next window)");
        let text = serde_json::to_string_pretty(&request).unwrap_or_default();
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
        return Ok(Explained {
            text: out,
            mappings: None,
        });
    }
    let mappings = search::section(&mut out, rule, &next, source, options.as_ref()).await?;
    ids(&mut out, rule, opts, kind);
    Ok(Explained {
        text: out,
        mappings,
    })
}

/// The stages of a query as written: (label, event query).
fn stages(body: &QueryBody) -> Vec<(String, &EventQuery)> {
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
fn header(
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
            text::duration(s.interval),
            s.from,
            s.to,
            text::duration(width),
            if overlap.is_zero() {
                String::new()
            } else {
                format!(", each {} into the previous run's", text::duration(overlap))
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

/// What the next window is: the runner's windows for a run at `now` whose
/// previous run was on time.
pub(crate) struct NextRun {
    pub(crate) search: crate::runner::WindowSearch,
    pub(crate) window: crate::schedule::window::Window,
}

fn next_run(
    out: &mut String,
    rule: &Rule,
    opts: &ExplainOptions,
    kind: PlanKind,
    detector: &Detector<'_>,
) -> NextRun {
    let timing = crate::runner::timing(rule, &opts.runner, opts.now);
    let anchor = crate::runner::anchor(rule, opts.now);
    // On time: the interval before, or a cron rule's previous fire.
    let since_previous = match &rule.schedule.cron {
        Some(cron) => cron
            .previous_before(opts.now)
            .map_or(timing.interval, |p| opts.now - p),
        None => timing.interval,
    };
    let previous = anchor - since_previous;
    let windows = plan_windows(timing, Some(previous), anchor);
    let window = windows
        .windows
        .last()
        .copied()
        .unwrap_or(crate::schedule::window::Window {
            start: anchor - timing.width,
            end: anchor,
        });
    let reach = detector.reach();
    let mut search =
        crate::runner::window_search(rule, &opts.runner, reach, window, Some(previous));
    search.request = detector.request(search.request);
    let _ = writeln!(
        out,
        "\nNext run: at {} (on time: the previous run was {} earlier)",
        iso(&opts.now),
        text::duration(since_previous.to_std().unwrap_or_default())
    );
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<13}{v}");
    };
    row(
        out,
        "window",
        &format!(
            "{} .. {}  (from = {}, to = {}, both bounds inclusive)",
            iso(&window.start),
            iso(&window.end),
            rule.schedule.from,
            rule.schedule.to
        ),
    );
    let fetched_from = search.request.range.from;
    let history = match &rule.kind {
        RuleKind::NewTerms(n) => Some(
            window
                .end
                .checked_add_signed(chrono::TimeDelta::milliseconds(
                    n.history_window_start.offset_ms(),
                ))
                .unwrap_or(window.start),
        ),
        _ => None,
    };
    let reach_text = if let Some(history) = history {
        format!(
            "{} .. {}  (the window, and its history from history_window_start: a tuple seen \
             from {} to the window's start, both included, is not new)",
            iso(&history),
            iso(&window.end),
            iso(&history)
        )
    } else if kind != PlanKind::Sequence {
        "the window itself: matching needs nothing before it".to_string()
    } else {
        let maxspan = match rule.eql().map(|e| &e.query.body) {
            Some(QueryBody::Sequence(seq)) => seq.maxspan,
            _ => None,
        };
        let why = match maxspan {
            Some(m) => format!("back by maxspan {m}"),
            None => format!(
                "back by {} (a sequence without maxspan: unbounded_sequence_lookback)",
                text::duration(opts.runner.unbounded_sequence_lookback)
            ),
        };
        format!(
            "{} .. {}  ({why}, so a sequence ending in the window is found whole)",
            iso(&fetched_from),
            iso(&window.end)
        )
    };
    row(out, "search range", &reach_text);
    let offered = if let RuleKind::NewTerms(n) = &rule.kind {
        format!(
            "the first event in the window of each tuple of {} not seen in its history; on a \
             cluster three aggregations per page of {} tuples (the window's tuples, those of \
             them in the history, the first event of the rest), nothing else fetched; offline \
             (or with aggregations off) the events from the history start on, oldest first, with \
             one entry per distinct tuple in memory",
            n.fields.join(", "),
            crate::source::elasticsearch::NEW_TERMS_PAGE
        )
    } else if matches!(rule.kind, RuleKind::Threshold(_)) {
        "groups of the window's events that reach the threshold (an event an earlier alert of \
         its group counted is not counted again)"
            .to_string()
    } else if kind == PlanKind::Event {
        format!(
            "events at or after {}; those the previous window also saw come back as duplicates by id",
            iso(&search.offer_from)
        )
    } else {
        let mut s = format!(
            "matches whose last event is at or after {}",
            iso(&search.offer_from)
        );
        if reach.undecided > chrono::TimeDelta::zero() {
            s.push_str(
                " (a trailing missing-event stage is decided once maxspan has passed: what the \
                 previous run could not decide is offered again)",
            );
        }
        s
    };
    row(out, "offered", &offered);
    match &rule.schedule.cron {
        Some(cron) => {
            let next = cron
                .next_after(opts.now)
                .map_or_else(|| "never".to_string(), |t| iso(&t));
            row(
                out,
                "schedule",
                &format!(
                    "cron `{}` in {}: runs at its fires (next after {}: {next}), not at start \
                     and not spread by schedule.first_run; at most {} apart",
                    cron.expression(),
                    cron.timezone().name(),
                    iso(&opts.now),
                    text::duration(rule.schedule.interval)
                ),
            );
            row(
                out,
                "catch-up",
                &format!(
                    "each run covers the time since the checkpoint, one window per {}: the time \
                     between two fires is caught up, not a gap; downtime beyond that goes back \
                     at most {} (catch_up_horizon), older time is recorded as a gap",
                    text::duration(rule.schedule.interval),
                    text::duration(opts.runner.catch_up_horizon)
                ),
            );
        }
        None => {
            let offset =
                crate::daemon::scheduler::jitter_offset(&rule.rule_id, rule.schedule.interval);
            row(
                out,
                "first run",
                &format!(
                    "{} after the daemon starts with schedule.first_run = \"spread\" (the default: \
                     an offset from the rule_id), at start with \"now\"; then every {}",
                    offset_text(offset),
                    text::duration(rule.schedule.interval)
                ),
            );
            row(
                out,
                "catch-up",
                &format!(
                    "after downtime, one window per {} since the checkpoint, back to at most {} \
                     (catch_up_horizon); older time is recorded as a gap",
                    text::duration(rule.schedule.interval),
                    text::duration(opts.runner.catch_up_horizon)
                ),
            );
        }
    }
    NextRun { search, window }
}

fn ids(out: &mut String, rule: &Rule, opts: &ExplainOptions, kind: PlanKind) {
    let _ = writeln!(
        out,
        "\nAlert ids (Kibana's recipes, src/alert/ids.rs: a match always gets the same ids, so a \
         match seen by two runs is written once)"
    );
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<17}{v}");
    };
    let uuid = rule.uuid();
    row(
        out,
        "rule uuid",
        &match &rule.kibana_id {
            Some(_) => format!("{uuid} (the Kibana rule's id)"),
            None => format!("{uuid} (the rule_id: no Kibana rule id, [metadata] kibana_rule_id)"),
        },
    );
    if matches!(rule.kind, RuleKind::NewTerms(_)) {
        row(
            out,
            "new_terms alert",
            &format!(
                "sha256(_index ‖ _id ‖ \"undefined\" ‖ \"{}:{uuid}\" ‖ the tuple as a JSON \
                 array): per event and tuple, so overlapping windows make the same alert",
                opts.space_id
            ),
        );
    } else if matches!(rule.kind, RuleKind::Threshold(_)) {
        row(
            out,
            "group",
            "sha256(uuid ‖ window end (epoch ms) ‖ per field: field ‖ value): the made-up \
             event of the group (Kibana hashes the run's start instead)",
        );
        row(
            out,
            "threshold alert",
            &format!(
                "sha256(indices joined by \",\" ‖ group ‖ \"undefined\" ‖ \"{}:{uuid}\")",
                opts.space_id
            ),
        );
    } else if kind == PlanKind::Event {
        row(
            out,
            "event alert",
            &format!(
                "sha256(_index ‖ _id ‖ \"undefined\" ‖ \"{}:{uuid}\")",
                opts.space_id
            ),
        );
    } else {
        row(
            out,
            "building block i",
            "sha256(ev1._id ‖ ev1._index ‖ uuid ‖ ev2._id ‖ ev2._index ‖ uuid ‖ … ‖ i), i from 0",
        );
        row(
            out,
            "shell",
            "sha256(ev1._id ‖ ev1._index ‖ bb0 ‖ \"\" ‖ ev2._id ‖ ev2._index ‖ bb1 ‖ \"\" ‖ … ‖ uuid)",
        );
    }
    row(
        out,
        "written to",
        &format!(
            "{} (`_bulk` create, require_alias)",
            opts.runner.alerts_index
        ),
    );
}

/// What explaining a rule file came to, for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileVerdict {
    /// Every rule of the file explained.
    Explained,
    /// The file is invalid, or holds no rule detectd runs (the diagnostics
    /// are in the output).
    NotExplained,
}

/// Explains every rule of a rule file (a TOML rule, or each rule line of a
/// Kibana export) into `out`, and with `events` what they do against it;
/// the file's errors, or why it is skipped, otherwise. The events are
/// evaluated with `schemas` (`--mapping`); without any, with the cluster's
/// mappings of their indices when there is a cluster.
pub async fn explain_file(
    path: &std::path::Path,
    opts: &ExplainOptions,
    source: Option<&ElasticsearchSource>,
    events: Option<(&[EventInput], &InputSchemas)>,
    out: &mut String,
) -> Result<FileVerdict, ExplainError> {
    let mut verdict = FileVerdict::Explained;
    let mut explained = 0usize;
    // Loaded as `run` loads it: with its exception lists.
    let loaded = crate::rule::load_with_lists(&[path.to_path_buf()], &opts.exceptions, opts.now);
    for e in &loaded.list_errors {
        let _ = writeln!(out, "{e}");
        verdict = FileVerdict::NotExplained;
    }
    for file in loaded.files {
        match &file.outcome {
            crate::rule::LoadOutcome::Loaded { rule, warnings } => {
                out.push_str(&crate::rule::render_errors(&file, warnings));
                if explained > 0 {
                    out.push('\n');
                }
                let explained_rule = explain(rule, &file.location(), opts, source).await?;
                out.push_str(&explained_rule.text);
                if let Some((events, schemas)) = events {
                    let from_cluster;
                    let schemas = match &explained_rule.mappings {
                        Some(m) if schemas.is_empty() => {
                            from_cluster = InputSchemas::of_schemas(
                                m.iter().map(|(i, s)| (i.to_string(), s.clone())).collect(),
                            );
                            &from_cluster
                        }
                        _ => schemas,
                    };
                    out.push_str(&explain_events(rule, events, schemas, opts)?);
                }
                explained += 1;
            }
            crate::rule::LoadOutcome::Skipped { reason, .. } => {
                let _ = writeln!(out, "{}: note: skipped: {reason}", file.location());
            }
            crate::rule::LoadOutcome::Failed(errors) => {
                out.push_str(&crate::rule::render_errors(&file, errors));
                verdict = FileVerdict::NotExplained;
            }
        }
    }
    if explained == 0 {
        verdict = FileVerdict::NotExplained;
    }
    Ok(verdict)
}

/// The cluster's event source for `settings` (its URLs and credentials):
/// what resolves the indices and field types of an explanation.
pub async fn cluster_source(
    settings: &crate::config::Settings,
) -> Result<ElasticsearchSource, crate::cluster::ClusterError> {
    let cluster = crate::cluster::Cluster::connect_with(
        &settings.cluster,
        crate::cluster::RetryPolicy::default(),
    )
    .await?;
    Ok(ElasticsearchSource::new(cluster))
}
