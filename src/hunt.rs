//! `detectd hunt`: run rules over NDJSON files, offline, and print the
//! alerts they would raise, one JSON document per line.
//!
//! Each line printed is `{"_index": <alerts index>, "_id": <alert id>,
//! "_source": <alert document>}`: the document `detectd run` writes with
//! that `_id` (the same builders, the same deterministic ids). Events are
//! identified like `detectd query` does: `_index` is the file name, `_id`
//! the line number, so the ids are stable for the same files.
//!
//! There is no time window: every event of the files is searched, in
//! timestamp order. Like a run, a rule raises at most `max_signals` alerts
//! (events, or sequences for sequence rules), oldest first; a rule that
//! reaches it is reported on the diagnostics stream.
//!
//! With `--mapping` (see `offline::mappings`) each events file is evaluated
//! with its mapping, as `run` evaluates each index with the cluster's.

use std::io::{self, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::alert::{event_alert, sequence_alerts, AlertContext, SourceEvent};
use crate::eql::compile::{CompileOptions, PlanSet};
use crate::eql::search::{HitEvent, ResultPosition, SearchOptions};
use crate::offline::mappings::{self, MappingArg, MappingFileError};
use crate::offline::{run_query, Input, OfflineError};
use crate::rule::{load_paths, render_errors, LoadOutcome, Rule};
use crate::runner::alert_rule;

/// Bad input lines are reported one by one up to this many per rule set.
const MAX_BAD_LINE_REPORTS: u64 = 20;

#[derive(Clone, Debug)]
pub struct HuntOptions {
    pub space_id: String,
    /// Printed as each document's `_index`.
    pub alerts_index: String,
    /// Stamped on the alerts (`@timestamp`, `kibana.alert.start`, ...).
    pub now: DateTime<Utc>,
    /// `kibana.version` of the alerts.
    pub kibana_version: String,
    /// `--mapping` arguments: the mapping each events file is evaluated
    /// with (none: typed from the JSON).
    pub mappings: Vec<MappingArg>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HuntSummary {
    pub rules_run: usize,
    /// Rule files with errors, and loaded rules whose query does not compile.
    pub rules_failed: usize,
    pub rules_skipped: usize,
    /// Alert documents printed (shells and building blocks count one each).
    pub alerts: usize,
    /// Rules that reached `max_signals`.
    pub rules_capped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error(transparent)]
    Mapping(#[from] MappingFileError),
    #[error("cannot write the output: {0}")]
    Write(#[from] io::Error),
}

/// Runs every EQL rule under `rules` over `files`; alerts go to `out`,
/// diagnostics (rule errors, skipped rules, bad lines, caps) to `diag`.
pub fn hunt(
    rules: &[PathBuf],
    files: &[PathBuf],
    opts: &HuntOptions,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<HuntSummary, HuntError> {
    let mut summary = HuntSummary::default();
    let inputs: Vec<Input> = files.iter().cloned().map(Input::File).collect();
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let schemas = mappings::load(&opts.mappings, &names)?;
    let mut bad_lines = 0u64;
    for file in load_paths(rules) {
        let rule = match &file.outcome {
            LoadOutcome::Loaded { rule, warnings } => {
                write!(diag, "{}", render_errors(&file, warnings))?;
                rule
            }
            LoadOutcome::Skipped { reason, .. } => {
                summary.rules_skipped += 1;
                writeln!(diag, "{}: note: skipped: {reason}", file.location())?;
                continue;
            }
            LoadOutcome::Failed(errors) => {
                summary.rules_failed += 1;
                write!(diag, "{}", render_errors(&file, errors))?;
                continue;
            }
        };
        if !rule.enabled {
            summary.rules_skipped += 1;
            writeln!(diag, "{}: note: skipped: disabled", file.location())?;
            continue;
        }
        let plans = match PlanSet::compile(
            &rule.query,
            &compile_options(rule),
            &schemas.fallback,
            schemas.per_input.iter().map(|(n, s)| (n.as_str(), s)),
        ) {
            Ok(plans) => plans,
            Err(e) => {
                summary.rules_failed += 1;
                let with = e
                    .key
                    .map(|k| format!(" with the mapping of {k}"))
                    .unwrap_or_default();
                writeln!(
                    diag,
                    "{}: error: the query does not compile{with}: {}",
                    file.location(),
                    e.error.message
                )?;
                continue;
            }
        };
        let search = SearchOptions {
            size: rule.max_signals as usize,
            // oldest first, as a run caps
            result_position: ResultPosition::Head,
            ..SearchOptions::default()
        };
        // Every rule reads the same lines: report unreadable ones for the
        // first only; events a rule's sequence cannot order, for that rule.
        let first = summary.rules_run == 0;
        let mut unordered = 0u64;
        let outcome = run_query(&plans, &inputs, &search, false, |bad| {
            if bad.unreadable {
                if first {
                    bad_lines += 1;
                    if bad_lines <= MAX_BAD_LINE_REPORTS {
                        let _ = writeln!(diag, "warning: {bad}");
                    }
                }
            } else {
                unordered += 1;
                if unordered <= MAX_BAD_LINE_REPORTS {
                    let _ = writeln!(diag, "{}: warning: {bad}", file.location());
                }
            }
        })?;
        if unordered > MAX_BAD_LINE_REPORTS {
            writeln!(
                diag,
                "{}: warning: {} more events skipped",
                file.location(),
                unordered - MAX_BAD_LINE_REPORTS
            )?;
        }
        summary.rules_run += 1;
        if outcome.dropped_partial_sequences > 0 {
            writeln!(
                diag,
                "{}: warning: {} partial sequences were dropped at the pending-state limit; \
                 sequences may be missing",
                file.location(),
                outcome.dropped_partial_sequences
            )?;
        }
        let response = outcome.response;

        let alert_rule = alert_rule(rule, opts.now);
        let ctx = AlertContext {
            now: opts.now,
            space_id: opts.space_id.clone(),
            execution_uuid: execution_uuid(&rule.rule_id, opts.now),
            kibana_version: opts.kibana_version.clone(),
            public_base_url: None,
        };
        let mut found = 0usize;
        if let Some(events) = &response.hits.events {
            found = events.len();
            for hit in events {
                if let Some(alert) = event_alert(&alert_rule, &ctx, &source_event(hit)) {
                    print(out, &opts.alerts_index, &alert.id, &alert.source)?;
                    summary.alerts += 1;
                }
            }
        }
        if let Some(sequences) = &response.hits.sequences {
            found = sequences.len();
            for seq in sequences {
                let events: Vec<Option<SourceEvent>> = seq
                    .events
                    .iter()
                    .map(|e| (!e.missing).then(|| source_event(e)))
                    .collect();
                let refs: Vec<Option<&SourceEvent>> = events.iter().map(Option::as_ref).collect();
                for alert in sequence_alerts(&alert_rule, &ctx, &refs) {
                    print(out, &opts.alerts_index, &alert.id, &alert.source)?;
                    summary.alerts += 1;
                }
            }
        }
        if found >= search.size && search.size > 0 {
            summary.rules_capped += 1;
            writeln!(
                diag,
                "{}: warning: rule {:?} reached max_signals ({}); later matches are not shown",
                file.location(),
                rule.rule_id,
                rule.max_signals
            )?;
        }
    }
    if bad_lines > MAX_BAD_LINE_REPORTS {
        writeln!(
            diag,
            "warning: {} more lines skipped",
            bad_lines - MAX_BAD_LINE_REPORTS
        )?;
    }
    out.flush()?;
    Ok(summary)
}

/// The compile options a rule asks for (its timestamp, tiebreaker and
/// category fields).
pub fn compile_options(rule: &Rule) -> CompileOptions {
    let defaults = CompileOptions::default();
    CompileOptions {
        timestamp_field: rule
            .timestamp_field
            .clone()
            .unwrap_or(defaults.timestamp_field),
        tiebreaker_field: rule.tiebreaker_field.clone(),
        event_category_field: rule
            .event_category_override
            .clone()
            .unwrap_or(defaults.event_category_field),
    }
}

fn source_event(hit: &HitEvent) -> SourceEvent {
    SourceEvent {
        index: hit.index.clone(),
        id: hit.id.clone(),
        source: hit.source.clone(),
    }
}

fn print(out: &mut dyn Write, index: &str, id: &str, source: &Value) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &json!({"_index": index, "_id": id, "_source": source}),
    )?;
    out.write_all(b"\n")
}

/// A UUID-shaped execution id, stable for a rule and a time (so the same
/// `--now` reproduces the same output).
fn execution_uuid(rule_id: &str, now: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update(now.to_rfc3339().as_bytes());
    let hex: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
