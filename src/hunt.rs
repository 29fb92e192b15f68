//! `detectd hunt`: run rules over NDJSON files, offline, and print the
//! alerts they would raise, one JSON document per line.
//!
//! A hunt is a rule run: the same [`Runner`], detectors, dedup, cap and
//! alert documents as `detectd run`, over an [`NdjsonSource`] instead of
//! the cluster and into an [`NdjsonSink`] instead of the alerts index, so
//! every rule type and feature that runs online runs here alike. Each rule
//! runs once over one window covering all time ([`Runner::run_range`] with
//! [`Window::ALL`]): every event with a time in the rule's time field is
//! searched, and no checkpoint is kept. Offline every file is the rule's
//! data, whatever its `index` patterns say.
//!
//! Each line printed is `{"_index": <alerts index>, "_id": <alert id>,
//! "_source": <alert document>}`: the document `detectd run` writes with
//! that `_id`. Events are identified like `detectd query` does: `_index` is
//! the file name, `_id` the line number, so the ids are stable for the same
//! files; two files with the same name are an error. Execution ids are
//! derived from the rule and `--now`, so the same `--now` gives the same
//! bytes.
//!
//! Diagnostics: lines that are not JSON objects are reported once per hunt
//! (when the files are opened), a run that fails is an error of its rule,
//! and what a run warns about (events without a usable time, a rule that
//! reached `max_signals`) is a warning of its rule.
//!
//! With `--mapping` (see `offline::mappings`) each events file is evaluated
//! with its mapping, as `run` evaluates each index with the cluster's.
//!
//! threat_match rules take their indicators from `--indicators` files only
//! (`source::indicators`), all of them whatever `threat_index` says, as
//! every events file is every rule's data.

use std::io::{self, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::offline::chunks::Threads;
use crate::offline::mappings::{self, MappingArg, MappingFileError};
use crate::rule::{load_with_lists, render_errors, LoadOutcome};
use crate::runner::{
    ExecutionIds, ExecutionRecord, RunStatus, Runner, RunnerSettings, MAX_SIGNALS_WARNING,
};
use crate::schedule::window::Window;
use crate::sink::ndjson::NdjsonSink;
use crate::source::indicators::WithIndicators;
use crate::source::ndjson::{self, NdjsonError, NdjsonSource};
use crate::state::memory::MemoryStateStore;

/// Bad input lines are reported one by one up to this many per hunt.
const MAX_BAD_LINE_REPORTS: u64 = 20;

#[derive(Clone, Debug)]
pub struct HuntOptions {
    pub space_id: String,
    /// Printed as each document's `_index`.
    pub alerts_index: String,
    /// Stamped on the alerts (`@timestamp`, `kibana.alert.start`, ...);
    /// also what date math in queries is relative to.
    pub now: DateTime<Utc>,
    /// `kibana.version` of the alerts.
    pub kibana_version: String,
    /// `--mapping` arguments: the mapping each events file is evaluated
    /// with (none: typed from the JSON).
    pub mappings: Vec<MappingArg>,
    /// `--exceptions`: exception list files or folders the rules'
    /// `exceptions_list` is resolved from (with the lists of rule exports).
    pub exceptions: Vec<PathBuf>,
    /// `--indicators`: NDJSON files threat_match rules take their
    /// indicators from (none: such a rule has none, and says so).
    pub indicators: Vec<PathBuf>,
    /// Threads parsing the files' lines (the alerts are the same on any
    /// number).
    pub threads: Threads,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HuntSummary {
    pub rules_run: usize,
    /// Rule files with errors, and loaded rules whose run failed (a query
    /// that does not compile with a file's mapping).
    pub rules_failed: usize,
    pub rules_skipped: usize,
    /// Problems in the exception files (a list with one is not used).
    pub exception_file_errors: usize,
    /// Alert documents printed (shells and building blocks count one each).
    pub alerts: usize,
    /// Rules that reached `max_signals`.
    pub rules_capped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    #[error(transparent)]
    Events(#[from] NdjsonError),
    #[error(transparent)]
    Mapping(#[from] MappingFileError),
    #[error("cannot write the output: {0}")]
    Write(#[from] io::Error),
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
}

/// Runs every rule under `rules` over `files`; alerts go to `out`,
/// diagnostics (rule errors, skipped rules, bad lines, caps) to `diag`.
pub fn hunt(
    rules: &[PathBuf],
    files: &[PathBuf],
    opts: &HuntOptions,
    out: &mut (dyn Write + Send),
    diag: &mut dyn Write,
) -> Result<HuntSummary, HuntError> {
    let mut summary = HuntSummary::default();
    let inputs = ndjson::files(files);
    let names = ndjson::index_names(&inputs)?;
    let schemas = mappings::load(&opts.mappings, &names)?;
    let mut bad_lines = 0u64;
    let mut reported = Ok(());
    let source = NdjsonSource::open_on(inputs, opts.threads, |bad| {
        bad_lines += 1;
        if bad_lines <= MAX_BAD_LINE_REPORTS && reported.is_ok() {
            reported = writeln!(diag, "warning: {bad}");
        }
    })?;
    reported?;
    if bad_lines > MAX_BAD_LINE_REPORTS {
        writeln!(
            diag,
            "warning: {} more lines skipped",
            bad_lines - MAX_BAD_LINE_REPORTS
        )?;
    }
    let source = source.with_mappings(schemas.mappings()).with_now(opts.now);
    // Indicators are typed from their JSON (no `--mapping` applies).
    let indicators = if opts.indicators.is_empty() {
        None
    } else {
        let mut bad = 0u64;
        let mut reported = Ok(());
        let indicators =
            NdjsonSource::open_on(ndjson::files(&opts.indicators), opts.threads, |line| {
                bad += 1;
                if bad <= MAX_BAD_LINE_REPORTS && reported.is_ok() {
                    reported = writeln!(diag, "warning: indicators: {line}");
                }
            })?;
        reported?;
        Some(indicators.with_now(opts.now))
    };
    let source = WithIndicators {
        events: source,
        indicators,
    };
    let settings = RunnerSettings {
        alerts_index: opts.alerts_index.clone(),
        space_id: opts.space_id.clone(),
        kibana_version: opts.kibana_version.clone(),
        ..RunnerSettings::default()
    };
    let runner = Runner::new(
        source,
        NdjsonSink::new(&mut *out),
        MemoryStateStore::new(),
        settings,
    )
    .with_execution_ids(ExecutionIds::Derived);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(HuntError::Runtime)?;

    let loaded = load_with_lists(rules, &opts.exceptions, opts.now);
    for e in &loaded.list_errors {
        writeln!(diag, "{e}")?;
    }
    summary.exception_file_errors = loaded.list_errors.len();
    for file in loaded.files {
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
        if let Some(needs) = rule.needs() {
            // Elasticsearch evaluates ES|QL and reads the anomaly records
            // of ML jobs: files have neither.
            summary.rules_skipped += 1;
            writeln!(
                diag,
                "{}: note: skipped: needs a cluster ({needs}); hunt reads files",
                file.location()
            )?;
            continue;
        }
        let record = runtime.block_on(runner.run_range(rule, Window::ALL, opts.now));
        if let Some(e) = runner.sink().take_error() {
            return Err(HuntError::Write(e));
        }
        report(&file.location(), &record, &mut summary, diag)?;
    }
    runner.sink().flush()?;
    Ok(summary)
}

/// What one rule's run says on the diagnostics stream, and its counts.
fn report(
    location: &str,
    record: &ExecutionRecord,
    summary: &mut HuntSummary,
    diag: &mut dyn Write,
) -> io::Result<()> {
    summary.alerts += usize::try_from(record.alerts_created).unwrap_or(usize::MAX);
    if record.status == RunStatus::Failed {
        summary.rules_failed += 1;
        let error = record.error.as_deref().unwrap_or("the run failed");
        return writeln!(diag, "{location}: error: {error}");
    }
    summary.rules_run += 1;
    for w in &record.warnings {
        // said below in hunt's own words
        if w != MAX_SIGNALS_WARNING {
            writeln!(diag, "{location}: warning: {w}")?;
        }
    }
    if record.alerts_capped > 0 {
        summary.rules_capped += 1;
        writeln!(
            diag,
            "{location}: warning: rule {:?} reached max_signals; {} later matches are not shown",
            record.rule_id, record.alerts_capped
        )?;
    }
    Ok(())
}
