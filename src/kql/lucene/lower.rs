//! Lucene tree -> filter tree, for local evaluation only (the cluster gets
//! the query text as a `query_string`).

use super::parser::{unescape, LQuery, Occur, Term};
use crate::filter::{Bounds, Filter, Scalar};

/// What a parsed query selects, or why that cannot be known offline.
pub fn lower(
    q: &LQuery,
    time_zone: Option<&str>,
    analyze_wildcard: bool,
) -> Result<Filter, String> {
    let lw = |q: &LQuery| lower(q, time_zone, analyze_wildcard);
    match q {
        LQuery::Bool { clauses, .. } => {
            let mut must = Vec::new();
            let mut should = Vec::new();
            let mut must_not = Vec::new();
            for (occur, c) in clauses {
                let f = lw(c)?;
                match occur {
                    Occur::Must => must.push(f),
                    Occur::Should => should.push(f),
                    Occur::MustNot => must_not.push(Filter::not(f)),
                }
            }
            if must.is_empty() && should.is_empty() && must_not.is_empty() {
                return Ok(Filter::MatchNone);
            }
            // Optional clauses only count when nothing is required; a
            // purely negative group matches everything else (Elasticsearch
            // adds a match-all to it).
            let mut parts = if must.is_empty() && !should.is_empty() {
                vec![Filter::Or(should)]
            } else {
                must
            };
            parts.extend(must_not);
            Ok(Filter::And(parts))
        }
        LQuery::Term { field, term, .. } => {
            term_filter(field.as_deref(), term, time_zone, analyze_wildcard)
        }
    }
}

fn term_filter(
    field: Option<&str>,
    term: &Term,
    time_zone: Option<&str>,
    analyze_wildcard: bool,
) -> Result<Filter, String> {
    Ok(match (field, term) {
        (None, Term::Word(w)) if w == "*" => Filter::MatchAll,
        (Some(f), Term::Exists) => Filter::exists(f),
        (None, Term::Exists) => Filter::MatchAll,
        (Some(f), Term::Word(w)) if w.len() > 1 && (w.starts_with('>') || w.starts_with('<')) => {
            let (op, rest) = ["<=", ">=", "<", ">"]
                .iter()
                .find_map(|op| w.strip_prefix(op).map(|r| (*op, r)))
                .unwrap_or(("", w));
            let v = Some(Scalar::String(unescape(rest)));
            let mut bounds = Bounds::default();
            match op {
                ">" => bounds.gt = v,
                ">=" => bounds.gte = v,
                "<" => bounds.lt = v,
                _ => bounds.lte = v,
            }
            Filter::Range {
                field: f.to_string(),
                bounds,
                time_zone: time_zone.map(str::to_string),
                format: None,
            }
        }
        (_, Term::Word(w)) if has_wildcard(w) => Filter::QueryStringWildcard {
            field: field.unwrap_or("*").to_string(),
            pattern: w.clone(),
            analyze: analyze_wildcard,
        },
        (Some(f), Term::Word(w)) => Filter::Match {
            field: f.to_string(),
            query: Scalar::String(unescape(w)),
        },
        (None, Term::Word(w)) => Filter::MultiMatch {
            query: Scalar::String(unescape(w)),
            phrase: false,
            lenient: true,
        },
        (Some(f), Term::Phrase(p)) => Filter::MatchPhrase {
            field: f.to_string(),
            query: Scalar::String(p.clone()),
        },
        (None, Term::Phrase(p)) => Filter::MultiMatch {
            query: Scalar::String(p.clone()),
            phrase: true,
            lenient: true,
        },
        (
            Some(f),
            Term::Range {
                lower,
                upper,
                include_lower,
                include_upper,
            },
        ) => {
            let mut bounds = Bounds::default();
            let s = |v: &Option<String>| v.clone().map(Scalar::String);
            if *include_lower {
                bounds.gte = s(lower);
            } else {
                bounds.gt = s(lower);
            }
            if *include_upper {
                bounds.lte = s(upper);
            } else {
                bounds.lt = s(upper);
            }
            Filter::Range {
                field: f.to_string(),
                bounds,
                time_zone: time_zone.map(str::to_string),
                format: None,
            }
        }
        (None, Term::Range { .. }) => {
            return Err("a range on the default fields".to_string());
        }
    })
}

/// An unescaped `*` or `?`.
fn has_wildcard(t: &str) -> bool {
    let mut escaped = false;
    t.chars().any(|c| {
        let hit = !escaped && (c == '*' || c == '?');
        escaped = !escaped && c == '\\';
        hit
    })
}
