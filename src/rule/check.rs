//! Loading rule files and folders, and `detectd check`: validate them and
//! print every error with file:line:col and a caret, then a summary.
//!
//! A `*.toml` file is one detection-rules rule; a `*.ndjson` file is a
//! Kibana rule export with one rule per line (`export`). Folders are walked
//! for both in sorted order so output (and the order rules are scheduled
//! in) is the same on every machine.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{RuleError, RuleErrorKind};
use super::export::{load_export_str, value_span};
use super::raw::{span_of, RawRuleFile};
use super::validate::{load_str, LoadOutcome};
use crate::diagnostic;
use crate::eql::Span;

/// One rule (a TOML file, or one line of an export) and what loading it
/// gave. `text` is the whole file, shared by the rules of an export, so
/// spans are file offsets; it is empty when the file could not be read (the
/// outcome then holds one [`RuleErrorKind::Io`] error).
#[derive(Clone, Debug)]
pub struct FileOutcome {
    pub path: PathBuf,
    /// The 1-based line of an export the outcome is about; `None` for a
    /// TOML file (one rule per file) or an export that failed as a whole.
    pub line: Option<usize>,
    pub text: Arc<str>,
    pub outcome: LoadOutcome,
}

impl FileOutcome {
    /// `path`, or `path:line` for a line of an export: where notes about
    /// the rule point.
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// Whether the rule came from a Kibana export.
    fn is_export(&self) -> bool {
        self.line.is_some()
    }
}

/// Files named `<rule>.tests.toml` hold the tests of the rule file beside
/// them (`detectd test`), not a rule: folders are walked without them.
pub const TESTS_SUFFIX: &str = ".tests.toml";

/// Events files of rule tests kept among the rules are named
/// `<anything>.tests.ndjson`, so that they are not read as Kibana exports.
pub const TEST_EVENTS_SUFFIX: &str = ".tests.ndjson";

/// Whether `path` names a rule's tests file rather than a rule.
pub fn is_tests_path(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(TESTS_SUFFIX))
}

/// Whether a folder walk leaves `path` out as part of rule tests (a tests
/// file, or the events of one).
fn is_test_data(path: &Path) -> bool {
    is_tests_path(path)
        || path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(TEST_EVENTS_SUFFIX))
}

/// Whether `path` names a Kibana rule export rather than a TOML rule.
fn is_export_path(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "ndjson")
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    /// The skipped rules of Kibana types not supported yet, by type.
    pub not_supported: TypeCounts,
    /// Problems in the exception files (`check --exceptions`).
    pub list_errors: usize,
    /// The loaded rules only Elasticsearch runs (ES|QL, ML), by type.
    pub need_elasticsearch: TypeCounts,
}

/// Rules counted by their Kibana type, shown as `threshold 12, esql 3`
/// (most first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeCounts(std::collections::BTreeMap<String, usize>);

impl TypeCounts {
    pub fn add(&mut self, rule_type: &str) {
        *self.0.entry(rule_type.to_string()).or_default() += 1;
    }

    pub fn get(&self, rule_type: &str) -> usize {
        self.0.get(rule_type).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for TypeCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut counts: Vec<(&String, &usize)> = self.0.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, (t, n)) in counts.into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t} {n}")?;
        }
        Ok(())
    }
}

/// Reads and validates one TOML rule file.
pub fn load_file(path: &Path) -> FileOutcome {
    match read_text(path) {
        Err(failed) => *failed,
        Ok(text) => FileOutcome {
            path: path.to_path_buf(),
            line: None,
            outcome: load_str(&text),
            text: text.into(),
        },
    }
}

/// Reads and validates a Kibana rule export: one outcome per rule line (and
/// per note or summary error, see `export`), in line order.
pub fn load_export_file(path: &Path) -> Vec<FileOutcome> {
    let text: Arc<str> = match read_text(path) {
        Err(failed) => return vec![*failed],
        Ok(text) => text.into(),
    };
    load_export_str(&text)
        .into_iter()
        .map(|entry| FileOutcome {
            path: path.to_path_buf(),
            line: Some(entry.line),
            text: Arc::clone(&text),
            outcome: entry.outcome,
        })
        .collect()
}

/// Every outcome of one file: an export (`*.ndjson`) or a TOML rule.
pub fn load_rules_file(path: &Path) -> Vec<FileOutcome> {
    if is_export_path(path) {
        load_export_file(path)
    } else {
        vec![load_file(path)]
    }
}

/// The file as UTF-8 text, or the outcome saying why not.
fn read_text(path: &Path) -> Result<String, Box<FileOutcome>> {
    let bytes = std::fs::read(path).map_err(|e| Box::new(io_failure(path, &e.to_string())))?;
    String::from_utf8(bytes).map_err(|e| Box::new(not_utf8(path, e)))
}

/// Rule files must be UTF-8 (TOML and JSON both require it): the error
/// points at the first invalid byte, shown in a lossy copy of the text (the
/// valid prefix is unchanged, so the line and column are those of the file).
fn not_utf8(path: &Path, e: std::string::FromUtf8Error) -> FileOutcome {
    let at = e.utf8_error().valid_up_to();
    let bytes = e.as_bytes();
    let bad = &bytes[at..(at + e.utf8_error().error_len().unwrap_or(1)).min(bytes.len())];
    let found: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (kind, format) = if is_export_path(path) {
        (RuleErrorKind::Json, "JSON")
    } else {
        (RuleErrorKind::Toml, "TOML")
    };
    FileOutcome {
        path: path.to_path_buf(),
        line: None,
        outcome: LoadOutcome::Failed(vec![RuleError::new(
            kind,
            // U+FFFD, what the bad bytes became in `text`, is 3 bytes long.
            Span::new(at, at + 3),
            format!(
                "expected UTF-8 text ({format} files must be UTF-8), found invalid byte {}",
                found.join(" ")
            ),
        )]),
        text: text.into(),
    }
}

fn io_failure(path: &Path, message: &str) -> FileOutcome {
    FileOutcome {
        path: path.to_path_buf(),
        line: None,
        text: "".into(),
        outcome: LoadOutcome::Failed(vec![RuleError::new(
            RuleErrorKind::Io,
            Span::new(0, 0),
            format!("cannot read rule file: {message}"),
        )]),
    }
}

/// Every rule under `paths`: a file is taken as given (`*.ndjson` as a
/// Kibana export, anything else as TOML), a folder is walked for `*.toml`
/// and `*.ndjson` (sorted), leaving out rule tests (`*.tests.toml`,
/// `*.tests.ndjson`). A path that does not exist becomes a failed outcome
/// for that path. A `rule_id` or Kibana id ([`Rule::uuid`]) seen in an
/// earlier rule makes the later one fail, since alert ids and checkpoints
/// are keyed by them.
///
/// [`Rule::uuid`]: super::Rule::uuid
pub fn load_paths(paths: &[PathBuf]) -> Vec<FileOutcome> {
    let mut out = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => out.push(io_failure(path, &e.to_string())),
            Ok(meta) if meta.is_dir() => {
                let walk = walkdir::WalkDir::new(path)
                    .follow_links(true)
                    .sort_by_file_name();
                for entry in walk {
                    match entry {
                        Err(e) => {
                            let at = e.path().unwrap_or(path).to_path_buf();
                            out.push(io_failure(&at, &e.to_string()));
                        }
                        Ok(entry) => {
                            let rules = entry
                                .path()
                                .extension()
                                .is_some_and(|x| x == "toml" || x == "ndjson")
                                && !is_test_data(entry.path());
                            if entry.file_type().is_file() && rules {
                                out.extend(load_rules_file(entry.path()));
                            }
                        }
                    }
                }
            }
            Ok(_) => out.extend(load_rules_file(path)),
        }
    }
    reject_duplicate_ids(&mut out);
    out
}

/// Fails every rule whose `rule_id`, or whose Kibana id ([`Rule::uuid`]:
/// it keys alert ids), an earlier rule already has.
///
/// [`Rule::uuid`]: super::Rule::uuid
fn reject_duplicate_ids(files: &mut [FileOutcome]) {
    let mut rule_ids: HashMap<String, String> = HashMap::new();
    let mut uuids: HashMap<String, String> = HashMap::new();
    for file in files.iter_mut() {
        let LoadOutcome::Loaded { rule, .. } = &file.outcome else {
            continue;
        };
        let error = if let Some(first) = rule_ids.get(&rule.rule_id) {
            let message = format!(
                "duplicate rule_id {:?}: already used by {first}",
                rule.rule_id
            );
            Some(("rule_id", message))
        } else if let Some(first) = uuids.get(rule.uuid()) {
            let key = if file.is_export() {
                "id"
            } else {
                "kibana_rule_id"
            };
            let message = format!(
                "duplicate Kibana rule id {:?}: already used by {first} \
                 (alert ids would collide)",
                rule.uuid()
            );
            Some((key, message))
        } else {
            None
        };
        match error {
            None => {
                rule_ids.insert(rule.rule_id.clone(), file.location());
                uuids.insert(rule.uuid().to_string(), file.location());
            }
            Some((key, message)) => {
                let span = key_span(file, key).unwrap_or_default();
                file.outcome =
                    LoadOutcome::Failed(vec![RuleError::new(RuleErrorKind::Value, span, message)]);
            }
        }
    }
}

/// Where `key` is written in the rule of `file`: in an export's line, or in
/// a TOML file's `[rule]` (`kibana_rule_id` in `[metadata]`).
pub(super) fn key_span(file: &FileOutcome, key: &str) -> Option<Span> {
    if let Some(line) = file.line {
        return value_span(&file.text, line, key);
    }
    let raw = RawRuleFile::parse(&file.text).ok()?;
    let table = if key == "kibana_rule_id" {
        raw.metadata?
    } else {
        raw.rule?
    };
    table.get_ref().get(key).map(span_of)
}

/// Renders every error (and warning) of one file.
pub fn render_errors(file: &FileOutcome, errors: &[RuleError]) -> String {
    let name = file.path.display().to_string();
    let mut s = String::new();
    for e in errors {
        let level = if e.is_warning() { "warning" } else { "error" };
        if e.kind == RuleErrorKind::Io {
            s.push_str(&format!("{name}: {level}: {}\n", e.message));
        } else {
            s.push_str(&diagnostic::render_level(
                level, &name, &file.text, e.span, &e.message,
            ));
        }
    }
    s
}

/// `detectd check`: validates `paths`, prints each error and warning
/// (rendered with a caret), one note per skipped rule (and per kind of
/// non-rule line of an export, counted as skipped too), and the summary
/// line `N rules ok, M failed[, K skipped (not supported yet: TYPE N, ...)]`.
/// The CLI exits 1 if `failed > 0` (or an exception file has errors).
pub fn check_paths(paths: &[PathBuf], out: &mut dyn Write) -> io::Result<CheckSummary> {
    check_paths_with(paths, None, out)
}

/// [`check_paths`], with the rules' exception lists resolved from the
/// folders `exceptions` names (and the rule exports) when given: a missing
/// list is then an error of its rule, a broken exception file an error of
/// its own. Without it, `exceptions_list` entries are checked in shape
/// only.
pub fn check_paths_with(
    paths: &[PathBuf],
    exceptions: Option<&[PathBuf]>,
    out: &mut dyn Write,
) -> io::Result<CheckSummary> {
    let mut summary = CheckSummary::default();
    let files = match exceptions {
        None => load_paths(paths),
        Some(dirs) => {
            let loaded = super::lists::load_with_lists(paths, dirs, chrono::Utc::now());
            for e in &loaded.list_errors {
                let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
                writeln!(out, "{}{line}: error: {}", e.file.display(), e.kind)?;
            }
            summary.list_errors = loaded.list_errors.len();
            loaded.files
        }
    };
    for file in files {
        match &file.outcome {
            LoadOutcome::Loaded { warnings, rule } => {
                summary.ok += 1;
                write!(out, "{}", render_errors(&file, warnings))?;
                if let Some(needs) = rule.needs() {
                    summary.need_elasticsearch.add(rule.rule_type());
                    writeln!(
                        out,
                        "{}: note: needs {needs}: not runnable on OpenSearch",
                        file.location()
                    )?;
                }
            }
            LoadOutcome::Skipped {
                reason, rule_type, ..
            } => {
                summary.skipped += 1;
                if let Some(t) = rule_type {
                    summary.not_supported.add(t);
                }
                writeln!(out, "{}: note: skipped: {reason}", file.location())?;
            }
            LoadOutcome::Failed(errors) => {
                summary.failed += 1;
                write!(out, "{}", render_errors(&file, errors))?;
            }
        }
    }
    write!(out, "{} rules ok, {} failed", summary.ok, summary.failed)?;
    if summary.list_errors > 0 {
        write!(out, ", {} exception file errors", summary.list_errors)?;
    }
    if summary.skipped > 0 {
        write!(out, ", {} skipped", summary.skipped)?;
        if !summary.not_supported.is_empty() {
            write!(out, " (not supported yet: {})", summary.not_supported)?;
        }
    }
    if !summary.need_elasticsearch.is_empty() {
        write!(out, "; Elasticsearch only: {}", summary.need_elasticsearch)?;
    }
    writeln!(out)?;
    Ok(summary)
}
