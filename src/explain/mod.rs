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
//!
//! The sections, in order: the rule (`header`), the next run (here), how
//! the daemon reads it (`daemon`), the search (`search`), the alert ids
//! (here).

mod daemon;
pub mod event;
mod exact;
mod header;
pub mod input;
mod search;
mod text;
mod threat;

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::eql::ast::QueryBody;
use crate::eql::compile::{compile, PlanKind};
use crate::eql::schema::Schema;
use crate::eql::EqlError;
use crate::offline::mappings::InputSchemas;
use crate::rule::{Rule, RuleKind};
use crate::runner::{Detector, RunnerSettings};
use crate::schedule::window::plan_windows;
use crate::source::elasticsearch::ElasticsearchSource;
use crate::source::{Mappings, SourceError};
use text::{iso, offset_text};

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
    /// How the daemon's config file reads rules; `None`: its defaults.
    pub daemon: Option<DaemonConfig>,
}

/// What `detectd.toml` says of how `detectd run` reads rules (`explain
/// --config`, or `./detectd.toml` when it exists).
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    /// The file, as named in the output.
    pub file: String,
    pub sharing: crate::config::SharingSettings,
    /// `None`: `[realtime]` is off.
    pub realtime: Option<crate::config::RealtimeSettings>,
}

impl ExplainOptions {
    pub fn at(now: DateTime<Utc>) -> ExplainOptions {
        ExplainOptions {
            now,
            space_id: crate::config::DEFAULT_SPACE_ID.to_string(),
            runner: RunnerSettings::default(),
            exceptions: Vec::new(),
            daemon: None,
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
            header::section(&mut out, rule, origin, Some((eql, &plan)));
            (plan.kind, Some(options))
        }
        // A query rule's match is one event, as an EQL event query's.
        None => {
            header::section(&mut out, rule, origin, None);
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
