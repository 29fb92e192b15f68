//! Kibana rule exports: the NDJSON file `POST /api/detection_engine/rules/_export`
//! writes, one JSON object per line, read line by line into rule outcomes.
//!
//! What an export holds, in order (`rule_management/api/rules/export_rules/route.ts`,
//! `logic/export/get_export_all.ts` in Kibana's security_solution server):
//! the rules in the rule API's response shape (snake_case parameters plus
//! `id`, `revision`, `created_at` ...; `execution_summary` removed by
//! `transformRuleToExportableFormat`), then the exception lists and items
//! the rules reference, then their action connectors (saved objects), then
//! one export summary `{"exported_count": ...}` (left out with
//! `exclude_export_details=true`). Lines are told apart as Kibana's import
//! does (`logic/import/create_rules_stream_from_ndjson.ts`, `sortImports`,
//! `filterExportedCounts`):
//!
//! | line | what detectd does |
//! | --- | --- |
//! | blank | ignored (Kibana skips them too) |
//! | has `exported_count` | the summary: its `exported_rules_count` must equal the rule lines before it, else an error (the file was cut or edited) |
//! | has `list_id`, `item_id` or `entries` | an exception list or item: not a rule, one note per file; `rule::lists` reads the lists |
//! | has `attributes` | an action connector: skipped, one note per file (detectd runs no Kibana actions) |
//! | any other object | a rule, validated exactly as a TOML `[rule]` table, plus its identity |
//! | invalid JSON, or not an object | an error at the position (counted as a rule line) |
//!
//! Reading files and rendering diagnostics is `check`'s job.

use std::ops::Range;

use super::error::{RuleError, RuleErrorKind};
use super::fields::{Fields, Format};
use super::raw::span_of;
use super::raw_json::{parse_object, RawJsonObject};
use super::rule::Metadata;
use super::validate::{validate_rule, LoadOutcome, Origin};
use crate::eql::Span;

/// One outcome of an export and the 1-based line it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportEntry {
    pub line: usize,
    pub outcome: LoadOutcome,
}

/// How messages name the object a rule line holds.
const PLACE: &str = "the exported rule";

/// Every outcome of an export's text, in line order: one per rule line, one
/// note for its exception lists and one for its connectors if it has any,
/// and an error for a summary that does not match the rules.
pub fn load_export_str(text: &str) -> Vec<ExportEntry> {
    let mut out = Vec::new();
    let mut rule_lines = 0u64;
    let mut exceptions = NonRules::default();
    let mut connectors = NonRules::default();
    for (index, range) in lines(text).enumerate() {
        let line = index + 1;
        let content = &text[range.clone()];
        if content.trim().is_empty() {
            continue;
        }
        let object = match parse_object(content, range.start) {
            Ok(object) => object,
            Err(e) => {
                rule_lines += 1;
                out.push(ExportEntry {
                    line,
                    outcome: LoadOutcome::Failed(vec![e]),
                });
                continue;
            }
        };
        let has = |key: &str| object.table.contains_key(key);
        if has("exported_count") {
            if let Some(error) = summary_mismatch(&object, rule_lines) {
                out.push(ExportEntry {
                    line,
                    outcome: LoadOutcome::Failed(vec![error]),
                });
            }
            rule_lines = 0;
        } else if has("item_id") || has("entries") {
            exceptions.add(line, &mut out, 1);
        } else if has("list_id") {
            exceptions.add(line, &mut out, 0);
        } else if has("attributes") {
            connectors.add(line, &mut out, 0);
        } else {
            rule_lines += 1;
            out.push(ExportEntry {
                line,
                outcome: load_rule(text, object),
            });
        }
    }
    exceptions.finish(
        &mut out,
        ["exception list", "exception list item"],
        "not rules: the exception lists the rules' `exceptions_list` can name",
    );
    connectors.finish(
        &mut out,
        ["action connector", ""],
        "detectd runs no Kibana rule actions",
    );
    out
}

/// Validates one rule line; its spans are offsets into the whole `text`.
fn load_rule(text: &str, object: RawJsonObject) -> LoadOutcome {
    let f = Fields {
        table: &object.table,
        header: object.open,
        place: PLACE,
        format: Format::Json,
        text,
        threat_entries: object.threat_entries,
        errors: Vec::new(),
    };
    validate_rule(f, Metadata::default(), Origin::Export)
}

/// The summary's `exported_rules_count` against the rule lines read since
/// the file's start (or the previous summary). Kibana writes the summary
/// last, so a difference means lines were lost or added after the export.
fn summary_mismatch(summary: &RawJsonObject, rule_lines: u64) -> Option<RuleError> {
    let value = summary.table.get("exported_rules_count")?;
    let stated = value.get_ref().as_integer()?;
    if u64::try_from(stated).ok() == Some(rule_lines) {
        return None;
    }
    Some(RuleError::new(
        RuleErrorKind::Value,
        span_of(value),
        format!(
            "expected {stated} rule lines before the export summary (its \
             `exported_rules_count`), found {rule_lines}: the export was cut or edited"
        ),
    ))
}

/// Non-rule lines of one kind: counted, and noted once at the first.
#[derive(Default)]
struct NonRules {
    /// Index in the output of the placeholder for the note.
    first: Option<usize>,
    counts: [u64; 2],
}

impl NonRules {
    /// Counts a line of sub-kind `which` (0 or 1), keeping a place in `out`
    /// at the first one so the note appears in line order.
    fn add(&mut self, line: usize, out: &mut Vec<ExportEntry>, which: usize) {
        if self.first.is_none() {
            self.first = Some(out.len());
            out.push(ExportEntry {
                line,
                outcome: LoadOutcome::Skipped {
                    rule_type: None,
                    rule_id: None,
                    name: None,
                    reason: String::new(),
                },
            });
        }
        self.counts[which] += 1;
    }

    /// Fills in the note: "2 exception lists and 1 exception list item of
    /// a Kibana export: `why`".
    fn finish(self, out: &mut [ExportEntry], names: [&str; 2], why: &str) {
        let Some(at) = self.first else {
            return;
        };
        let what: Vec<String> = names
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| count(n, name))
            .collect();
        if let LoadOutcome::Skipped { reason, .. } = &mut out[at].outcome {
            *reason = format!("{} of a Kibana export: {why}", what.join(" and "));
        }
    }
}

fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The byte range of each line, without its `\n`; a final line without a
/// newline counts, the empty piece after a final newline does not matter
/// (it is blank).
fn lines(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    text.split('\n').map(move |piece| {
        let range = start..start + piece.len();
        start += piece.len() + 1;
        range
    })
}

/// The span of `key`'s value in the rule on 1-based `line` of an export,
/// for errors found after validation (a duplicate `rule_id`).
pub(super) fn value_span(text: &str, line: usize, key: &str) -> Option<Span> {
    let range = lines(text).nth(line.checked_sub(1)?)?;
    let object = parse_object(&text[range.clone()], range.start).ok()?;
    object.table.get(key).map(span_of)
}
