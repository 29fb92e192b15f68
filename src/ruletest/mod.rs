//! `detectd test`: unit tests of rules, for rules-as-code CI. Each case's
//! events go through the same path as `hunt` and `run` (the [`Runner`] and
//! the rule's detector over an [`NdjsonSource`], alerts into a
//! [`MemorySink`]), and the alerts are compared with what the case expects.
//!
//! # Where tests live
//!
//! The tests of rule file `foo.toml` (or Kibana export `foo.ndjson`) are in
//! `foo.tests.toml` beside it. Beside the rule rather than in a separate
//! tree: a rule and its tests are reviewed, moved and deleted together, and
//! nothing has to mirror the rules' folders. Folders of rules are walked
//! without `*.tests.toml` files (`detectd run`, `check` and `hunt` never
//! take them for rules), and a tests file without its rule file is an
//! error.
//!
//! # Format
//!
//! ```toml
//! # Optional defaults of every case (a case may give its own):
//! # for a file of several rules (a Kibana export), which one
//! rule_id = "5cd55388-a19c-47c7-8ec4-f41656c2fded"
//! # the alerts' time, and what `now` in a query means (default: the time
//! # the tests run)
//! now = "2024-05-01T10:00:00Z"
//! # a mapping for the events, as `hunt --mapping FILE` (relative to this
//! # file)
//! mapping = "mapping.json"
//!
//! [[case]]
//! name = "the attack"                 # unique in the file
//! events = '''
//! {"@timestamp": "2024-05-01T09:55:00Z", "event": {"category": "library"}, ...}
//! {"@timestamp": "2024-05-01T09:55:02Z", "event": {"category": "network"}, ...}
//! '''                                 # or events_file = "attack.ndjson"
//! alerts = [[1, 2]]                   # the matches, exactly
//! not_alerting = []                   # lines in no alert
//! alert_count = 1                     # how many matches
//! ```
//!
//! Events are NDJSON, one event per line, numbered from 1 (blank lines
//! count): inline in `events`, or in `events_file` (relative to the tests
//! file; name it `*.tests.ndjson` when it sits among the rules, or it is
//! read as a Kibana export). A line that is not a JSON object fails the
//! case. The rule sees every event, whatever its `index` patterns, over
//! all time (as `hunt`); an event without a usable time in the rule's time
//! field is in no range, and the case says so in a warning.
//!
//! A case expects at least one of:
//!
//! * `alerts`: exactly these matches, in any order. A match is a line
//!   number (an event alert) or a list of them (a sequence's events in
//!   order: `[[1, 2], [5, 6]]`; for a sample its events in order). A
//!   sequence with its shell and building blocks is one match.
//! * `alert_count`: this many matches.
//! * `not_alerting`: lines that must be in no alert (the negatives: the
//!   wrong dll, the wrong port, too far apart).
//!
//! `alerts = []` (or `alert_count = 0`) says nothing may alert.
//!
//! # Output
//!
//! One line per case, `<tests file>:<line>: <name> ... ok` or `... FAILED`,
//! the failures followed by what was expected and what the run alerted, a
//! diff (`- not alerted, expected: lines 1, 2`, `+ alerted, not expected:
//! line 4`, `! line 5 must not alert, but is in the alert of lines 5, 6`)
//! and the events it names. Rules without tests are listed (`no tests`);
//! last a summary, `N cases passed, M failed`. The command fails (exit 1)
//! on a failed case, a broken tests or rule file, and with
//! `--require-tests` on a rule without tests.

pub mod compare;
pub mod spec;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;

use crate::offline::mappings::{self, MappingArg};
use crate::rule::{load_with_lists, render_errors, FileOutcome, LoadOutcome, Rule};
use crate::runner::{ExecutionIds, RunStatus, Runner, RunnerSettings};
use crate::schedule::window::Window;
use crate::sink::memory::MemorySink;
use crate::source::ndjson::{EventsInput, NdjsonSource};
use crate::state::memory::MemoryStateStore;
use compare::Difference;
use spec::{Case, Events};

/// The `_index` of a case's inline events.
const INLINE: &str = "inline";
/// Excerpts of events longer than this many characters are cut.
const EXCERPT_CHARS: usize = 160;

#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// A rule without tests fails the command.
    pub require_tests: bool,
    /// Exception list files or folders the rules' `exceptions_list` is
    /// resolved from, as `run --exceptions` (with the lists of exports).
    pub exceptions: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestSummary {
    pub passed: usize,
    pub failed: usize,
    /// Cases of rules of a type that does not run yet.
    pub skipped: usize,
    /// Broken tests files, broken rule files, tests files without a rule.
    pub errors: usize,
    /// Rules without a case.
    pub untested: usize,
}

impl TestSummary {
    /// Whether the command succeeds.
    pub fn ok(&self, opts: &TestOptions) -> bool {
        self.failed == 0 && self.errors == 0 && !(opts.require_tests && self.untested > 0)
    }
}

impl std::fmt::Display for TestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cases passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        if self.errors > 0 {
            write!(f, ", {} errors", self.errors)?;
        }
        if self.untested > 0 {
            write!(f, "; {} rules without tests", self.untested)?;
        }
        Ok(())
    }
}

/// Runs the tests of every rule under `paths` (rule files, their tests
/// files, or folders), reporting to `out`.
pub fn run_tests(
    paths: &[PathBuf],
    opts: &TestOptions,
    out: &mut dyn Write,
) -> io::Result<TestSummary> {
    let mut summary = TestSummary::default();
    // A tests file given stands for its rule; each rule file once.
    let mut rule_paths: Vec<PathBuf> = Vec::new();
    for p in paths {
        let p = if p.is_file() && spec::is_tests_path(p) {
            spec::rule_path(p)
        } else {
            p.clone()
        };
        if !rule_paths.contains(&p) {
            rule_paths.push(p);
        }
    }
    for orphan in orphans(&rule_paths) {
        summary.errors += 1;
        writeln!(
            out,
            "{}: error: no rule file beside it (expected {})",
            orphan.display(),
            spec::rule_path(&orphan).display()
        )?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let loaded = load_with_lists(&rule_paths, &opts.exceptions, chrono::Utc::now());
    for e in &loaded.list_errors {
        summary.errors += 1;
        writeln!(out, "{e}")?;
    }
    for (path, outcomes) in by_file(loaded.files) {
        test_file(&path, &outcomes, opts, &runtime, &mut summary, out)?;
    }
    writeln!(out)?;
    writeln!(out, "{summary}")?;
    Ok(summary)
}

/// Outcomes grouped by file, in load order.
fn by_file(outcomes: Vec<FileOutcome>) -> Vec<(PathBuf, Vec<FileOutcome>)> {
    let mut out: Vec<(PathBuf, Vec<FileOutcome>)> = Vec::new();
    for o in outcomes {
        match out.last_mut() {
            Some((p, list)) if *p == o.path => list.push(o),
            _ => out.push((o.path.clone(), vec![o])),
        }
    }
    out
}

/// Tests files in the folders of `paths` whose rule file does not exist.
fn orphans(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    for p in paths.iter().filter(|p| p.is_dir()) {
        for entry in walkdir::WalkDir::new(p)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            let path = entry.path();
            if entry.file_type().is_file()
                && spec::is_tests_path(path)
                && !spec::rule_path(path).exists()
            {
                out.insert(path.to_path_buf());
            }
        }
    }
    out.into_iter().collect()
}

/// The tests of one rule file.
fn test_file(
    path: &Path,
    outcomes: &[FileOutcome],
    opts: &TestOptions,
    runtime: &tokio::runtime::Runtime,
    summary: &mut TestSummary,
    out: &mut dyn Write,
) -> io::Result<()> {
    for o in outcomes {
        match &o.outcome {
            LoadOutcome::Failed(errors) => {
                summary.errors += 1;
                write!(out, "{}", render_errors(o, errors))?;
            }
            LoadOutcome::Loaded { warnings, .. } if !warnings.is_empty() => {
                write!(out, "{}", render_errors(o, warnings))?;
            }
            _ => {}
        }
    }
    let loaded: Vec<(&FileOutcome, &Rule)> = outcomes
        .iter()
        .filter_map(|o| match &o.outcome {
            LoadOutcome::Loaded { rule, .. } => Some((o, rule.as_ref())),
            _ => None,
        })
        .collect();
    let tests_path = spec::tests_path(path);
    let mut tested: BTreeSet<&str> = BTreeSet::new();
    if tests_path.exists() {
        match spec::read(&tests_path) {
            Err(errors) => {
                summary.errors += 1;
                for e in errors {
                    write!(out, "{e}")?;
                }
                // its rules are tested, if badly: not "no tests" as well
                tested.extend(loaded.iter().map(|(_, r)| r.rule_id.as_str()));
            }
            Ok(tests) => {
                for case in &tests.cases {
                    let at = format!(
                        "{}:{}: {}",
                        tests.path.display(),
                        crate::eql::span::line_col(&tests.text, case.span.start as usize).line,
                        case.name
                    );
                    match pick(case, outcomes, &loaded) {
                        Pick::Rule(rule) => {
                            tested.insert(rule.rule_id.as_str());
                            let result = runtime.block_on(run_case(rule, case));
                            report(&at, &result, summary, out)?;
                        }
                        Pick::Skipped(reason) => {
                            summary.skipped += 1;
                            writeln!(out, "{at} ... skipped: {reason}")?;
                        }
                        Pick::Error(message) => {
                            summary.failed += 1;
                            writeln!(out, "{at} ... FAILED\n    {message}")?;
                        }
                    }
                }
            }
        }
    }
    for (o, rule) in loaded {
        if !tested.contains(rule.rule_id.as_str()) {
            summary.untested += 1;
            if opts.require_tests {
                writeln!(out, "{}: error: no tests (--require-tests)", o.location())?;
            } else {
                writeln!(out, "{}: no tests", o.location())?;
            }
        }
    }
    Ok(())
}

/// Which rule of the file a case tests.
enum Pick<'r> {
    Rule(&'r Rule),
    /// A rule of a type that does not run yet.
    Skipped(String),
    Error(String),
}

fn pick<'r>(
    case: &Case,
    outcomes: &'r [FileOutcome],
    loaded: &[(&FileOutcome, &'r Rule)],
) -> Pick<'r> {
    let skipped = |id: Option<&str>| {
        outcomes.iter().find_map(|o| match &o.outcome {
            LoadOutcome::Skipped {
                rule_id,
                reason,
                rule_type: Some(_),
                ..
            } if id.is_none() || rule_id.as_deref() == id => Some(reason.clone()),
            _ => None,
        })
    };
    match &case.rule_id {
        Some(id) => match loaded.iter().find(|(_, r)| r.rule_id == *id) {
            Some((_, rule)) => Pick::Rule(rule),
            None => match skipped(Some(id)) {
                Some(reason) => Pick::Skipped(reason),
                None => Pick::Error(format!(
                    "no rule with rule_id {id:?} loads from the rule file"
                )),
            },
        },
        None => match loaded {
            [(_, rule)] => Pick::Rule(rule),
            [] => match skipped(None) {
                Some(reason) if outcomes.len() == 1 => Pick::Skipped(reason),
                _ => Pick::Error("the rule file has no rule that loads".to_string()),
            },
            more => Pick::Error(format!(
                "the rule file holds {} rules: say which with `rule_id`",
                more.len()
            )),
        },
    }
}

/// What running one case gave.
#[derive(Debug)]
enum CaseResult {
    Passed { warnings: Vec<String> },
    Failed { lines: Vec<String> },
}

fn failed(message: impl Into<String>) -> CaseResult {
    CaseResult::Failed {
        lines: vec![message.into()],
    }
}

/// Runs `rule` over the case's events as a hunt does, and compares.
async fn run_case(rule: &Rule, case: &Case) -> CaseResult {
    let (name, text): (String, Arc<[u8]>) = match &case.events {
        Events::Inline(t) => (INLINE.to_string(), Arc::from(t.as_bytes())),
        Events::File(path) => match std::fs::read(path) {
            Ok(bytes) => (
                crate::source::files::index_name(path),
                Arc::from(bytes.into_boxed_slice()),
            ),
            Err(e) => return failed(format!("cannot read events file {}: {e}", path.display())),
        },
    };
    let lines: Vec<&str> = std::str::from_utf8(&text)
        .map(|t| t.lines().collect())
        .unwrap_or_default();
    if let Events::File(path) = &case.events {
        for line in case.expect.lines() {
            let usable = line >= 1
                && lines
                    .get((line - 1) as usize)
                    .is_some_and(|l| !l.trim().is_empty());
            if !usable {
                return failed(format!(
                    "line {line} is not an event of {} ({} lines)",
                    path.display(),
                    lines.len()
                ));
            }
        }
    }
    let mut bad = Vec::new();
    let source = NdjsonSource::open(
        vec![EventsInput::Text {
            name: name.clone(),
            text: text.clone(),
        }],
        |b| bad.push(b.to_string()),
    );
    let source = match source {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    if !bad.is_empty() {
        let mut out = vec!["the events hold lines that are not JSON objects:".to_string()];
        out.extend(bad.into_iter().map(|b| format!("  {b}")));
        return CaseResult::Failed { lines: out };
    }
    let mapped = match &case.mapping {
        None => None,
        Some(path) => {
            let arg = MappingArg {
                name: None,
                path: path.clone(),
            };
            match mappings::load(&[arg], std::slice::from_ref(&name)) {
                Ok(schemas) => Some(schemas.mappings()),
                Err(e) => return failed(e.to_string()),
            }
        }
    };
    let now = case.now.unwrap_or_else(Utc::now);
    let mut source = source.with_now(now);
    if let Some(m) = mapped {
        source = source.with_mappings(m);
    }
    let settings = RunnerSettings::default();
    let index = settings.alerts_index.clone();
    let runner = Runner::new(source, MemorySink::new(), MemoryStateStore::new(), settings)
        .with_execution_ids(ExecutionIds::Derived);
    let record = runner.run_range(rule, Window::ALL, now).await;
    if record.status == RunStatus::Failed {
        return failed(format!(
            "the run failed: {}",
            record.error.as_deref().unwrap_or("no reason given")
        ));
    }
    let got = compare::matches(&runner.sink().alerts(&index));
    let diffs = compare::differences(&case.expect, &got);
    if diffs.is_empty() {
        return CaseResult::Passed {
            warnings: record.warnings,
        };
    }
    let mut out = vec![
        format!("expected: {}", describe_expect(&case.expect)),
        format!("got:      {}", describe(&got)),
    ];
    out.extend(diffs.iter().map(ToString::to_string));
    let mut named: BTreeSet<u64> = BTreeSet::new();
    for d in &diffs {
        match d {
            Difference::Missing(m) | Difference::Unexpected(m) => named.extend(m),
            Difference::Alerted { in_match, .. } => named.extend(in_match),
            Difference::Count { .. } => named.extend(got.iter().flatten()),
        }
    }
    if !named.is_empty() {
        out.push("events:".to_string());
        for line in named {
            let text = lines.get((line - 1) as usize).copied().unwrap_or("").trim();
            out.push(format!("  {line}: {}", excerpt(text)));
        }
    }
    out.extend(record.warnings.iter().map(|w| format!("warning: {w}")));
    CaseResult::Failed { lines: out }
}

fn report(
    at: &str,
    result: &CaseResult,
    summary: &mut TestSummary,
    out: &mut dyn Write,
) -> io::Result<()> {
    match result {
        CaseResult::Passed { warnings } => {
            summary.passed += 1;
            writeln!(out, "{at} ... ok")?;
            for w in warnings {
                writeln!(out, "    warning: {w}")?;
            }
        }
        CaseResult::Failed { lines } => {
            summary.failed += 1;
            writeln!(out, "{at} ... FAILED")?;
            for l in lines {
                writeln!(out, "    {l}")?;
            }
        }
    }
    Ok(())
}

/// Matches as `[1, 2], [4]`, or `no alerts`.
fn describe(matches: &[Vec<u64>]) -> String {
    if matches.is_empty() {
        return "no alerts".to_string();
    }
    matches
        .iter()
        .map(|m| {
            let l: Vec<String> = m.iter().map(u64::to_string).collect();
            format!("[{}]", l.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_expect(expect: &spec::Expect) -> String {
    let mut parts = Vec::new();
    if let Some(alerts) = &expect.alerts {
        let mut sorted = alerts.clone();
        sorted.sort();
        parts.push(describe(&sorted));
    }
    if let Some(n) = expect.alert_count {
        parts.push(format!("{n} alerts"));
    }
    if !expect.not_alerting.is_empty() {
        let l: Vec<String> = expect.not_alerting.iter().map(u64::to_string).collect();
        parts.push(format!("none of lines {} alerting", l.join(", ")));
    }
    parts.join("; ")
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(EXCERPT_CHARS).collect();
    format!("{cut}…")
}
