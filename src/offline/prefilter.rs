//! Lines an EQL query cannot match, ruled out from their bytes before they
//! are decoded (`detectd query` without `--mapping`).
//!
//! The query's pushdown filter ([`crate::eql::pushdown`]) is a superset of
//! what the evaluator matches (proptested there). A string leaf of it —
//! `term`, `terms`, `wildcard` — holds only for an event with a value
//! containing the leaf's text (a wildcard's longest literal fragment), and
//! a value's text is in the line as JSON writes it. So a line in which one
//! of the query's required texts appears nowhere cannot match, and is not
//! decoded. Searching a line for a few texts with SIMD (`aho-corasick`'s
//! Teddy, `memchr`) is many times faster than decoding it.
//!
//! What keeps it sound, leaf by leaf:
//! * JSON may spell any character as `\uXXXX` and `/` as `\/`: a line with
//!   either sequence is always decoded. Otherwise a string's only spelling
//!   is the canonical one (`\"`, `\\`, the character itself); texts with
//!   control characters, which have two spellings, are not used.
//! * Numbers have many spellings (`1e3`, `1000.0`) and the evaluator
//!   compares numeric strings by value: a text made only of number
//!   characters, or one that parses as a number, is not used.
//! * Case-insensitive leaves (`:`, `~`) fold Unicode: a non-ASCII character
//!   may lower-case to an ASCII one (the Kelvin sign to `k`), so a line with
//!   any non-ASCII byte is decoded; texts with non-ASCII characters are not
//!   used case-insensitively.
//! * A mapping changes what a leaf means (a normalizer, a `text` field), so
//!   there is no prefilter with `--mapping`.
//!
//! A line ruled out is not decoded, so it is checked only for shape (valid
//! UTF-8, `{` … `}`): a line broken inside its braces that the query could
//! not have matched is not reported as a bad line. An event query's answer,
//! and a sequence's, are the same with and without the prefilter
//! (`tests/offline_prefilter.rs`); a sequence's partial matches may expire
//! later (fewer events advance its clock), which only matters at the
//! `--max-pending` cap.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::eql::ast::Query;
use crate::eql::compile::CompileOptions;
use crate::eql::pushdown::{pushdown, Filter, Scalar};

/// One text a matching line must hold, as found in the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Text {
    /// As JSON writes it inside a string (canonical escaping).
    bytes: Vec<u8>,
    case_insensitive: bool,
}

/// One of these texts must appear.
type Clause = Vec<Text>;

/// A clause ready to search.
#[derive(Debug)]
struct Searcher {
    exact: Option<AhoCorasick>,
    folded: Option<AhoCorasick>,
}

/// What a line must hold to be worth decoding: a text of every clause.
#[derive(Debug)]
pub struct Prefilter {
    clauses: Vec<Searcher>,
    /// Some clause has case-insensitive texts (non-ASCII lines are kept).
    folds: bool,
    /// `\u` and `\/`: other spellings of characters.
    escapes: AhoCorasick,
}

impl Prefilter {
    /// The prefilter of `query` when its pushdown filter requires some
    /// text; `None` when every line may match. Leaves on metadata fields
    /// (`_index` is the file's name, not in the line) and on the time
    /// fields (compared as dates) require nothing.
    pub fn for_query(query: &Query, opts: &CompileOptions) -> Option<Prefilter> {
        let filter = pushdown(query, &opts.event_category_field);
        let special = |field: &str| {
            field.starts_with('_')
                || field == opts.timestamp_field
                || opts.tiebreaker_field.as_deref() == Some(field)
        };
        let clauses = required(&filter, &special);
        if clauses.is_empty() {
            return None;
        }
        let folds = clauses.iter().flatten().any(|t| t.case_insensitive);
        let build = |texts: Vec<&[u8]>, fold: bool| -> Option<AhoCorasick> {
            if texts.is_empty() {
                return None;
            }
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(fold)
                .match_kind(MatchKind::LeftmostFirst)
                .build(texts)
                .ok()
        };
        let mut searchers = Vec::with_capacity(clauses.len());
        for clause in &clauses {
            let pick = |ci: bool| -> Vec<&[u8]> {
                clause
                    .iter()
                    .filter(|t| t.case_insensitive == ci)
                    .map(|t| t.bytes.as_slice())
                    .collect()
            };
            let (exact, folded) = (pick(false), pick(true));
            let searcher = Searcher {
                exact: build(exact.clone(), false),
                folded: build(folded.clone(), true),
            };
            // A clause that failed to build would rule out lines wrongly.
            if searcher.exact.is_none() != exact.is_empty()
                || searcher.folded.is_none() != folded.is_empty()
            {
                return None;
            }
            searchers.push(searcher);
        }
        Some(Prefilter {
            clauses: searchers,
            folds,
            escapes: build(vec![b"\\u", b"\\/"], false)?,
        })
    }

    /// Whether `line` (one NDJSON line, trimmed) may match: `false` only
    /// when it cannot.
    pub fn may_match(&self, line: &[u8]) -> bool {
        // Not an object on one line, or not UTF-8: decoding says why.
        if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
            return true;
        }
        if self.escapes.is_match(line) {
            return true;
        }
        let ascii = line.is_ascii();
        if !ascii && std::str::from_utf8(line).is_err() {
            return true;
        }
        if self.folds && !ascii {
            return true;
        }
        self.clauses.iter().all(|c| {
            c.exact.as_ref().is_some_and(|a| a.is_match(line))
                || c.folded.as_ref().is_some_and(|a| a.is_match(line))
        })
    }
}

/// The clauses a document must satisfy for `filter` to match it; empty
/// when nothing is required.
fn required(filter: &Filter, special: &dyn Fn(&str) -> bool) -> Vec<Clause> {
    match filter {
        Filter::Term { field, .. }
        | Filter::Terms { field, .. }
        | Filter::Wildcard { field, .. }
            if special(field) =>
        {
            Vec::new()
        }
        Filter::Term {
            value: Scalar::String(s),
            case_insensitive,
            ..
        } => text(s, *case_insensitive)
            .map(|t| vec![vec![t]])
            .unwrap_or_default(),
        Filter::Terms { values, .. } => values
            .iter()
            .map(|v| match v {
                Scalar::String(s) => text(s, false),
                _ => None,
            })
            .collect::<Option<Clause>>()
            .map(|c| vec![c])
            .unwrap_or_default(),
        Filter::Wildcard {
            pattern,
            case_insensitive,
            ..
        } => pattern
            .split(['*', '?'])
            .filter_map(|fragment| text(fragment, *case_insensitive))
            .max_by_key(|t| t.bytes.len())
            .map(|t| vec![vec![t]])
            .unwrap_or_default(),
        Filter::Bool { must, should, .. } => {
            let mut out: Vec<Clause> = must.iter().flat_map(|m| required(m, special)).collect();
            if !should.is_empty() {
                // Some branch matches: one text of its best clause, for
                // every branch; nothing if a branch requires nothing.
                let union: Option<Clause> = should
                    .iter()
                    .map(|b| best(required(b, special)))
                    .collect::<Option<Vec<Clause>>>()
                    .map(|cs| cs.into_iter().flatten().collect());
                out.extend(union);
            }
            out
        }
        // `must_not` and the rest require no text.
        _ => Vec::new(),
    }
}

/// The most selective of a conjunction's clauses, as far as text length
/// tells: its shortest text the longest, then the fewest texts.
fn best(clauses: Vec<Clause>) -> Option<Clause> {
    clauses.into_iter().max_by_key(|c| {
        let shortest = c.iter().map(|t| t.bytes.len()).min().unwrap_or(0);
        (shortest, std::cmp::Reverse(c.len()))
    })
}

/// `s` as a required text, when its presence in a matching line is certain.
fn text(s: &str, case_insensitive: bool) -> Option<Text> {
    let number_like = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if s.is_empty() || number_like || s.trim().parse::<f64>().is_ok() {
        return None;
    }
    if s.chars().any(char::is_control) || (case_insensitive && !s.is_ascii()) {
        return None;
    }
    // serde_json escapes only `"`, `\` and control characters.
    let quoted = serde_json::to_string(s).ok()?;
    let bytes = quoted.as_bytes()[1..quoted.len() - 1].to_vec();
    Some(Text {
        bytes,
        case_insensitive,
    })
}

#[cfg(test)]
#[path = "prefilter_tests.rs"]
mod tests;
