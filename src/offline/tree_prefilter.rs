//! The prefilter of a filter tree ([`crate::filter::Filter`]: a query
//! rule's query, a rule's filters and exceptions, `detectd query
//! --language kql|lucene`), read without a mapping.
//!
//! The tree is turned into a pushdown filter it implies — every document
//! the tree matches passes it — and that filter's required texts are
//! searched for as for an EQL query ([`super::prefilter`], which keeps
//! them sound against JSON's other spellings). Implied, leaf by leaf, with
//! the evaluator's dynamic mapping (`Unmapped::Dynamic`: a string is
//! `text`, or `date` when it reads as one; `x.keyword` is its raw value;
//! numbers and booleans keep their types):
//! * `term`, `terms`, `match`, `match_phrase`, `multi_match` on a string
//!   hold only where a value holds the string or a token of it: a `text`
//!   token is a lower-cased piece of the value, a keyword the value itself.
//!   So every text is searched case-insensitively, `match` needs one of the
//!   query's tokens, `match_phrase` all of them.
//! * A string that may read as a date (it starts with a digit, a sign or
//!   a space, or with `now`: ISO dates, epoch numbers, date math) matches a
//!   date value spelt otherwise, so it requires nothing; nor do numbers,
//!   which have many spellings ([`super::prefilter`] leaves out number-like
//!   texts).
//! * A wildcard needs its longest literal piece (case-insensitively);
//!   a pattern with `\` escapes requires nothing.
//! * `not`, `range`, `exists` and leaves the evaluator cannot read
//!   (a `query_string` it does not model) require nothing; `nested`,
//!   `query_string` and verbatim queries require what their local meaning
//!   requires.
//!
//! With a mapping a leaf means something else (an `ip` spelt `::1` or
//! `0:0::1`, a date format, a normalizer), so there is no prefilter then.
//! Proptested against the evaluator in `tree_prefilter_tests.rs`.

use super::prefilter::Prefilter;
use crate::eql::compile::CompileOptions;
use crate::eql::pushdown::{Filter as Pushdown, Scalar as PushScalar};
use crate::filter::analyzer::tokens;
use crate::filter::{Filter, Local, Scalar};

impl Prefilter {
    /// The prefilter of `tree` for inputs without a mapping, beside the
    /// request's own pushdown filter `with` (both must pass); `None` when
    /// every line may match.
    pub fn for_tree(tree: &Filter, with: &Pushdown, opts: &CompileOptions) -> Option<Prefilter> {
        Prefilter::for_filter(&Pushdown::and(vec![with.clone(), implied(tree)]), opts)
    }
}

/// A pushdown filter every document `tree` matches (without a mapping)
/// passes.
pub fn implied(tree: &Filter) -> Pushdown {
    match tree {
        Filter::And(parts) => Pushdown::and(parts.iter().map(implied).collect()),
        // An empty OR matches nothing; requiring nothing is still sound.
        Filter::Or(parts) => Pushdown::or(parts.iter().map(implied).collect()),
        Filter::Term { field, value, .. } => {
            string(value).map_or(Pushdown::MatchAll, |s| term(field, s))
        }
        Filter::Terms { field, values } => Pushdown::or(
            values
                .iter()
                .map(|v| string(v).map_or(Pushdown::MatchAll, |s| term(field, s)))
                .collect(),
        ),
        Filter::Match { field, query } => analyzed(field, query, false),
        Filter::MatchPhrase { field, query } => analyzed(field, query, true),
        Filter::MultiMatch { query, phrase, .. } => analyzed("*", query, *phrase),
        Filter::Wildcard { field, pattern, .. }
        | Filter::QueryStringWildcard { field, pattern, .. } => wildcard(field, pattern),
        Filter::Nested { query, .. } => implied(query),
        Filter::QueryString(q) => local(&q.local),
        Filter::Verbatim(v) => local(&v.local),
        Filter::MatchAll
        | Filter::MatchNone
        | Filter::Not(_)
        | Filter::Range { .. }
        | Filter::Exists { .. } => Pushdown::MatchAll,
    }
}

fn local(l: &Local) -> Pushdown {
    match l {
        Local::Tree(tree) => implied(tree),
        Local::Unsupported(_) => Pushdown::MatchAll,
    }
}

/// A string value no value of another type can match spelt otherwise.
fn string(v: &Scalar) -> Option<&str> {
    match v {
        Scalar::String(s) if !may_read_as_date(s) => Some(s),
        _ => None,
    }
}

/// Whether `s` may parse as a date, or as date math, where a date value is
/// compared: the default formats (`strict_date_optional_time`,
/// `epoch_millis`) start with a digit or a sign, date math with `now` (or
/// a date). Leading space is left to the parser's judgement.
fn may_read_as_date(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit() || c.is_whitespace() || matches!(c, '+' | '-'))
        || s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("now"))
}

fn term(field: &str, s: &str) -> Pushdown {
    Pushdown::Term {
        field: field.to_string(),
        value: PushScalar::String(s.to_string()),
        case_insensitive: true,
    }
}

/// A `match` (any token) or `match_phrase` (every token) of `query`.
fn analyzed(field: &str, query: &Scalar, phrase: bool) -> Pushdown {
    let Some(q) = string(query) else {
        return Pushdown::MatchAll;
    };
    let each: Vec<Pushdown> = tokens(q).iter().map(|t| term(field, t)).collect();
    match (each.is_empty(), phrase) {
        (true, _) => Pushdown::MatchAll,
        (false, true) => Pushdown::and(each),
        (false, false) => Pushdown::or(each),
    }
}

fn wildcard(field: &str, pattern: &str) -> Pushdown {
    if pattern.contains('\\') {
        return Pushdown::MatchAll;
    }
    Pushdown::Wildcard {
        field: field.to_string(),
        pattern: pattern.to_string(),
        case_insensitive: true,
    }
}

#[cfg(test)]
#[path = "tree_prefilter_tests.rs"]
mod tests;
