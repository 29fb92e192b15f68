//! Loading rule files and folders, and `detectd check`: validate them and
//! print every error with file:line:col and a caret, then a summary.
//!
//! Folders are walked for `*.toml` files in sorted order so output (and the
//! order rules are scheduled in) is the same on every machine.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::{RuleError, RuleErrorKind};
use super::raw::{span_of, RawRuleFile};
use super::validate::{load_str, LoadOutcome};
use crate::diagnostic;
use crate::eql::Span;

/// One file and what loading it gave. `text` is empty when it could not be
/// read (the outcome then holds one [`RuleErrorKind::Io`] error).
#[derive(Clone, Debug)]
pub struct FileOutcome {
    pub path: PathBuf,
    pub text: String,
    pub outcome: LoadOutcome,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Reads and validates one file.
pub fn load_file(path: &Path) -> FileOutcome {
    match std::fs::read(path) {
        Err(e) => io_failure(path, &e.to_string()),
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(e) => not_utf8(path, e),
            Ok(text) => {
                let outcome = load_str(&text);
                FileOutcome {
                    path: path.to_path_buf(),
                    text,
                    outcome,
                }
            }
        },
    }
}

/// TOML files must be UTF-8: the error points at the first invalid byte,
/// shown in a lossy copy of the text (the valid prefix is unchanged, so the
/// line and column are those of the file).
fn not_utf8(path: &Path, e: std::string::FromUtf8Error) -> FileOutcome {
    let at = e.utf8_error().valid_up_to();
    let bytes = e.as_bytes();
    let bad = &bytes[at..(at + e.utf8_error().error_len().unwrap_or(1)).min(bytes.len())];
    let found: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
    let text = String::from_utf8_lossy(bytes).into_owned();
    FileOutcome {
        path: path.to_path_buf(),
        outcome: LoadOutcome::Failed(vec![RuleError::new(
            RuleErrorKind::Toml,
            // U+FFFD, what the bad bytes became in `text`, is 3 bytes long.
            Span::new(at, at + 3),
            format!(
                "expected UTF-8 text (TOML files must be UTF-8), found invalid byte {}",
                found.join(" ")
            ),
        )]),
        text,
    }
}

fn io_failure(path: &Path, message: &str) -> FileOutcome {
    FileOutcome {
        path: path.to_path_buf(),
        text: String::new(),
        outcome: LoadOutcome::Failed(vec![RuleError::new(
            RuleErrorKind::Io,
            Span::new(0, 0),
            format!("cannot read rule file: {message}"),
        )]),
    }
}

/// Every rule file under `paths`: a file is taken as given, a folder is
/// walked for `*.toml` (sorted). A path that does not exist becomes a failed
/// outcome for that path. A `rule_id` seen in an earlier file makes the later
/// file fail, since alert ids and checkpoints are keyed by it.
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
                            let is_toml = entry.path().extension().is_some_and(|x| x == "toml");
                            if entry.file_type().is_file() && is_toml {
                                out.push(load_file(entry.path()));
                            }
                        }
                    }
                }
            }
            Ok(_) => out.push(load_file(path)),
        }
    }
    reject_duplicate_ids(&mut out);
    out
}

fn reject_duplicate_ids(files: &mut [FileOutcome]) {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files.iter_mut() {
        let LoadOutcome::Loaded { rule, .. } = &file.outcome else {
            continue;
        };
        match seen.get(&rule.rule_id) {
            None => {
                seen.insert(rule.rule_id.clone(), file.path.clone());
            }
            Some(first) => {
                let span = RawRuleFile::parse(&file.text)
                    .ok()
                    .and_then(|raw| raw.rule)
                    .and_then(|t| t.get_ref().get("rule_id").map(span_of))
                    .unwrap_or_default();
                let message = format!(
                    "duplicate rule_id {:?}: already used by {}",
                    rule.rule_id,
                    first.display()
                );
                file.outcome =
                    LoadOutcome::Failed(vec![RuleError::new(RuleErrorKind::Value, span, message)]);
            }
        }
    }
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
/// (rendered with a caret), one note per skipped rule, and the summary line
/// `N rules ok, M failed[, K skipped]`. The CLI exits 1 if `failed > 0`.
pub fn check_paths(paths: &[PathBuf], out: &mut dyn Write) -> io::Result<CheckSummary> {
    let mut summary = CheckSummary::default();
    for file in load_paths(paths) {
        match &file.outcome {
            LoadOutcome::Loaded { warnings, .. } => {
                summary.ok += 1;
                write!(out, "{}", render_errors(&file, warnings))?;
            }
            LoadOutcome::Skipped { reason, .. } => {
                summary.skipped += 1;
                writeln!(out, "{}: note: skipped: {reason}", file.path.display())?;
            }
            LoadOutcome::Failed(errors) => {
                summary.failed += 1;
                write!(out, "{}", render_errors(&file, errors))?;
            }
        }
    }
    write!(out, "{} rules ok, {} failed", summary.ok, summary.failed)?;
    if summary.skipped > 0 {
        write!(out, ", {} skipped", summary.skipped)?;
    }
    writeln!(out)?;
    Ok(summary)
}
