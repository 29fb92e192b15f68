//! What a pushdown filter requires of a line, as texts: per branch (a
//! sequence's stage) clauses, each a set of texts one of which a matching
//! line holds, as JSON spells them ([`super::prefilter`] searches for
//! them).
//!
//! A string leaf — `term`, `terms`, `wildcard` — holds only for an event
//! with a value containing the leaf's text (a wildcard's longest literal
//! fragment). Strings made of number characters, or that parse as
//! numbers, give no text (numbers have many spellings and the evaluator
//! compares numeric strings by value), nor do texts with control
//! characters (two spellings), case-insensitive texts with non-ASCII
//! characters, or leaves on metadata and time fields. A whole number
//! compared by value gives its digits, with the rule of
//! [`number_text`]; a `must_not` gives nothing.

use crate::eql::compile::CompileOptions;
use crate::eql::pushdown::{parse_number, Filter, Scalar};

/// One text a matching line must hold, as found in the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Text {
    /// As JSON writes it inside a string (canonical escaping).
    pub bytes: Vec<u8>,
    pub case_insensitive: bool,
    /// A value of the event category field.
    pub category: bool,
    /// The digits of a number compared by value ([`number_text`]).
    pub numeric: bool,
}

/// One of these texts must appear.
pub(super) type Clause = Vec<Text>;

/// A branch's clauses, those that rule out most lines first: category
/// names are also the names of ECS objects (`"process":{…}` is in most
/// lines), so they go last but for clauses with a number's digits, which
/// are only ever searched in a line; then the longest shortest text first.
pub(super) fn sorted(mut clauses: Vec<Clause>) -> Vec<Clause> {
    clauses.sort_by_key(|c| {
        (
            numeric(c),
            c.iter().all(|t| t.category),
            std::cmp::Reverse(shortest(c)),
        )
    });
    clauses
}

/// Whether a clause holds a number's digits (it is then never searched
/// in a chunk: a line without its texts may still hold it).
pub(super) fn numeric(clause: &Clause) -> bool {
    clause.iter().any(|t| t.numeric)
}

/// The clauses a document must satisfy for `filter` to match it; empty
/// when nothing is required.
pub(super) fn required(filter: &Filter, opts: &CompileOptions) -> Vec<Clause> {
    let special = |field: &str| {
        field.starts_with('_')
            || field == opts.timestamp_field
            || opts.tiebreaker_field.as_deref() == Some(field)
    };
    let leaf_text = |field: &str, s: &str, case_insensitive: bool| {
        text(s, case_insensitive).map(|mut t| {
            t.category = field == opts.event_category_field;
            t
        })
    };
    match filter {
        Filter::Term { field, .. }
        | Filter::Terms { field, .. }
        | Filter::Wildcard { field, .. }
            if special(field) =>
        {
            Vec::new()
        }
        Filter::Term {
            field,
            value: Scalar::String(s),
            case_insensitive,
        } => leaf_text(field, s, *case_insensitive)
            .map(|t| vec![vec![t]])
            .unwrap_or_default(),
        Filter::Term {
            value: Scalar::Int(n),
            ..
        } => number_text(*n as f64)
            .map(|t| vec![vec![t]])
            .unwrap_or_default(),
        Filter::Term {
            value: Scalar::Float(n),
            ..
        } => number_text(*n).map(|t| vec![vec![t]]).unwrap_or_default(),
        Filter::Terms { field, values } => values
            .iter()
            .map(|v| match v {
                Scalar::String(s) => leaf_text(field, s, false),
                Scalar::Int(n) => number_text(*n as f64),
                Scalar::Float(n) => number_text(*n),
                Scalar::Bool(_) => None,
            })
            .collect::<Option<Clause>>()
            .map(|c| vec![c])
            .unwrap_or_default(),
        Filter::Wildcard {
            field,
            pattern,
            case_insensitive,
        } => pattern
            .split(['*', '?'])
            .filter_map(|fragment| leaf_text(field, fragment, *case_insensitive))
            .max_by_key(|t| t.bytes.len())
            .map(|t| vec![vec![t]])
            .unwrap_or_default(),
        Filter::Bool { must, should, .. } => {
            let mut out: Vec<Clause> = must.iter().flat_map(|m| required(m, opts)).collect();
            if !should.is_empty() {
                // Some branch matches: one text of its best clause, for
                // every branch; nothing if a branch requires nothing.
                let union: Option<Clause> = should
                    .iter()
                    .map(|b| best(required(b, opts)))
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
    clauses
        .into_iter()
        .max_by_key(|c| (shortest(c), std::cmp::Reverse(c.len())))
}

/// The length of a clause's shortest text: the likelier a line holds it.
fn shortest(clause: &Clause) -> usize {
    clause.iter().map(|t| t.bytes.len()).min().unwrap_or(0)
}

/// `s` as a required text, when its presence in a matching line is certain.
fn text(s: &str, case_insensitive: bool) -> Option<Text> {
    let number_like = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if s.is_empty() || number_like || parse_number(s).is_some() {
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
        category: false,
        numeric: false,
    })
}

/// The digits of a whole number below 10^15 as a required text: a
/// number (or a numeric string, compared by value) equal to it is spelt
/// with them — leading zeros, a sign, `.0` and spaces aside — unless it
/// has an exponent (`1.35e2`) or more significant digits than a double
/// tells apart (`134.99999999999999999` reads as 135): up to 15 digits a
/// decimal reads back to itself, so one equal to the number is the number.
/// Lines with those are kept ([`spells_numbers_otherwise`]).
fn number_text(n: f64) -> Option<Text> {
    if !n.is_finite() || n.fract() != 0.0 || n.abs() >= 1e15 {
        return None;
    }
    Some(Text {
        bytes: format!("{}", n.abs() as u64).into_bytes(),
        case_insensitive: false,
        category: false,
        numeric: true,
    })
}

/// Whether `line` may spell a number other than by its digits: an `e` or
/// `E` after a digit or `.` and before a digit or a sign and a digit, or a
/// run of 16 or more digits (`.` within it counted as part of it).
///
/// Asked of every line holding the rest of a branch but not a number's
/// digits, so it does not branch on every byte: one pass without early
/// exit (which the compiler turns into SIMD) looks for a digit or `.`,
/// an `e` and a digit or sign in a row, and only a line with those is
/// searched for a whole exponent; a run of 16 digits, 16 bytes or longer,
/// covers a multiple of 16, so only the runs through those places are
/// measured.
pub(super) fn spells_numbers_otherwise(line: &[u8]) -> bool {
    let numeral = |b: &u8| b.is_ascii_digit() || *b == b'.';
    let signed = |b: &u8| b.is_ascii_digit() || *b == b'+' || *b == b'-';
    let from = |i: usize| &line[i.min(line.len())..];
    let may_have_exponent = line
        .iter()
        .zip(from(1))
        .zip(from(2))
        .fold(false, |any, ((before, e), after)| {
            any | (numeral(before) & (*e | 0x20 == b'e') & signed(after))
        });
    let exponent = may_have_exponent
        && memchr::memchr2_iter(b'e', b'E', line).any(|i| {
            let after = match line.get(i + 1) {
                Some(b'+' | b'-') => line.get(i + 2),
                other => other,
            };
            i > 0 && numeral(&line[i - 1]) && after.is_some_and(u8::is_ascii_digit)
        });
    if exponent {
        return true;
    }
    let mut at = 0;
    while at < line.len() {
        if !numeral(&line[at]) {
            at += 16;
            continue;
        }
        let start = line[..at]
            .iter()
            .rposition(|b| !numeral(b))
            .map_or(0, |i| i + 1);
        let end = line[at..]
            .iter()
            .position(|b| !numeral(b))
            .map_or(line.len(), |i| at + i);
        if line[start..end]
            .iter()
            .filter(|b| b.is_ascii_digit())
            .count()
            >= 16
        {
            return true;
        }
        // the next multiple of 16 past this run
        at = (end / 16 + 1) * 16;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::spells_numbers_otherwise;
    use proptest::prelude::*;

    /// The plain reading of [`spells_numbers_otherwise`]'s contract, byte
    /// by byte.
    fn byte_by_byte(line: &[u8]) -> bool {
        let mut run = 0;
        for (i, &b) in line.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    run += 1;
                    if run >= 16 {
                        return true;
                    }
                }
                b'.' => {}
                b'e' | b'E' => {
                    let after = match line.get(i + 1) {
                        Some(b'+' | b'-') => line.get(i + 2),
                        other => other,
                    };
                    let before = i > 0 && (line[i - 1].is_ascii_digit() || line[i - 1] == b'.');
                    if before && after.is_some_and(u8::is_ascii_digit) {
                        return true;
                    }
                    run = 0;
                }
                _ => run = 0,
            }
        }
        false
    }

    #[test]
    fn runs_and_exponents_anywhere_in_the_line() {
        for (line, spells) in [
            (&b"1234567890123456"[..], true),
            (b"123456789012345", false),
            (b"x:123456789.0123456,", true),
            (b"x:12345678.9012345,", false),
            (b"..............1234567890123456..", true),
            (b"{\"a\":1e5}", true),
            (b"{\"a\":1.E-5}", true),
            (b"{\"a\":.e+1}", true),
            (b"{\"a\":1e}", false),
            (b"{\"a\":1e+}", false),
            (b"e5", false),
            (b"msedge.exe 1e", false),
            (b"", false),
        ] {
            assert_eq!(
                spells_numbers_otherwise(line),
                spells,
                "{:?}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                byte_by_byte(line),
                spells,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        // a run of 16 digits at every place relative to the multiples of 16
        for pad in 0..40 {
            let mut line = vec![b'x'; pad];
            line.extend_from_slice(b"1234567890123456");
            line.push(b'x');
            assert!(spells_numbers_otherwise(&line), "pad {pad}");
            line.remove(pad);
            assert!(!spells_numbers_otherwise(&line), "pad {pad}, 15 digits");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_byte_by_byte_reading(
            line in proptest::collection::vec(
                prop_oneof![
                    6 => proptest::sample::select(b"0123456789".to_vec()),
                    2 => proptest::sample::select(b".eE+-".to_vec()),
                    1 => any::<u8>(),
                ],
                0..120,
            )
        ) {
            prop_assert_eq!(spells_numbers_otherwise(&line), byte_by_byte(&line));
        }
    }
}
