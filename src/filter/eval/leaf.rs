//! The test a leaf runs on one indexed value, per field family: the query
//! value parsed as the field type parses it (a number for `long`, an
//! address or CIDR block for `ip`, date math for `date`), text analyzed,
//! patterns compiled.

use std::net::IpAddr;

use super::super::date::{DateFormats, TimeZone};
use super::super::pattern::{normalize_lowercase, Pattern};
use super::super::tree::{Bounds, Filter, Scalar};
use super::typed::{self, DateBound, Family, StrBounds, Test};
use super::EvalError;

fn query_err(message: impl Into<String>) -> EvalError {
    EvalError::Query {
        field: String::new(),
        message: message.into(),
    }
}

/// The test a leaf runs on one indexed value of a field of this family.
pub(super) fn leaf_test(f: &Filter, family: &Family) -> Result<Test, EvalError> {
    match f {
        Filter::Term {
            value,
            case_insensitive,
            ..
        } => exact(value, family, case_insensitive.unwrap_or(false)),
        Filter::Match { query, .. } => match family {
            Family::Text => Ok(token_test(query, false)?),
            _ => exact(query, family, false),
        },
        Filter::MatchPhrase { query, .. } => match family {
            Family::Text => Ok(token_test(query, true)?),
            _ => exact(query, family, false),
        },
        Filter::Wildcard {
            pattern,
            case_insensitive,
            ..
        } => {
            let p = Pattern::new(pattern, case_insensitive.unwrap_or(false));
            match family {
                Family::Keyword => Ok(Test::TermWildcard(p)),
                Family::Text => Ok(Test::TokenWildcard(p)),
                _ => Err(query_err("wildcard queries need a keyword or text field")),
            }
        }
        Filter::QueryStringWildcard {
            pattern, analyze, ..
        } => match family {
            Family::Keyword => Ok(Test::TermWildcard(Pattern::new(pattern, false))),
            Family::Text if *analyze && !analyzer_keeps_whole(pattern) => {
                Err(EvalError::Unsupported(format!(
                    "the wildcard term `{pattern}` on a text field, which analyze_wildcard splits"
                )))
            }
            Family::Text => Ok(Test::TokenWildcard(Pattern::new(
                &normalize_lowercase(pattern),
                false,
            ))),
            _ => Err(query_err("wildcard terms need a keyword or text field")),
        },
        Filter::Range {
            bounds,
            time_zone,
            format,
            ..
        } => range_test(bounds, time_zone.as_deref(), format.as_deref(), family),
        Filter::Exists { .. } => Ok(Test::Exists),
        other => Err(EvalError::Unsupported(format!("a leaf {other:?}"))),
    }
}

/// Whether the standard analyzer leaves each literal piece of a wildcard
/// pattern whole (one token, only lowercased), so `analyze_wildcard` does
/// not change it.
fn analyzer_keeps_whole(pattern: &str) -> bool {
    let mut pieces = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => pieces.push(String::new()),
            c => {
                let c = if c == '\\' {
                    chars.next().unwrap_or('\\')
                } else {
                    c
                };
                if let Some(p) = pieces.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    pieces
        .iter()
        .filter(|p| !p.is_empty())
        .all(|p| super::super::analyzer::tokens(p) == [p.to_lowercase()])
}

/// `match`/`match_phrase` on text: the query's tokens (none: no match).
fn token_test(query: &Scalar, phrase: bool) -> Result<Test, EvalError> {
    let text = query
        .as_text()
        .ok_or_else(|| query_err("a match query needs a value, found null"))?;
    let toks = super::super::analyzer::tokens(&text);
    Ok(match (toks.is_empty(), phrase) {
        (true, _) => Test::Never,
        (false, true) => Test::TokenPhrase(toks),
        (false, false) => Test::TokenAny(toks),
    })
}

/// A term (not analyzed) as the field type parses it.
fn exact(value: &Scalar, family: &Family, ci: bool) -> Result<Test, EvalError> {
    let text = value
        .as_text()
        .ok_or_else(|| query_err("a term query needs a value, found null"))?;
    Ok(match family {
        Family::Keyword | Family::Text => Test::TermEq {
            value: text,
            case_insensitive: ci,
        },
        Family::Integer => {
            let n = parse_number(&text)?;
            if n.fract() != 0.0 {
                Test::Never
            } else {
                Test::NumIn(vec![n])
            }
        }
        Family::Float(kind) => Test::NumIn(vec![typed::round_float(*kind, parse_number(&text)?)]),
        Family::Date { .. } => Test::DateRange {
            lower: Some(DateBound::new(&text, "gte", family, None, TimeZone::UTC)?),
            upper: Some(DateBound::new(&text, "lte", family, None, TimeZone::UTC)?),
        },
        Family::Ip => Test::IpIn(vec![parse_cidr(&text)?]),
        Family::Boolean => Test::BoolIn(vec![parse_bool(&text)?]),
    })
}

fn parse_number(s: &str) -> Result<f64, EvalError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| query_err(format!("expected a number, found `{s}`")))
}

fn parse_bool(s: &str) -> Result<bool, EvalError> {
    match s {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(query_err(format!("expected true or false, found `{s}`"))),
    }
}

/// An address or a CIDR block, as the inclusive range of keys it covers.
fn parse_cidr(s: &str) -> Result<(u128, u128), EvalError> {
    let bad = || query_err(format!("expected an IP address or CIDR block, found `{s}`"));
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let key = typed::ip_key(ip);
    let bits = match (ip, len) {
        (_, None) => return Ok((key, key)),
        (IpAddr::V4(_), Some(l)) if l <= 32 => 96 + l,
        (IpAddr::V6(_), Some(l)) if l <= 128 => l,
        _ => return Err(bad()),
    };
    let host_mask = u128::MAX.checked_shr(bits).unwrap_or(0);
    Ok((key & !host_mask, key | host_mask))
}

fn parse_ip(s: &str) -> Result<u128, EvalError> {
    s.trim()
        .parse::<IpAddr>()
        .map(typed::ip_key)
        .map_err(|_| query_err(format!("expected an IP address, found `{s}`")))
}

fn range_test(
    b: &Bounds,
    tz: Option<&str>,
    format: Option<&str>,
    family: &Family,
) -> Result<Test, EvalError> {
    let sides = [
        ("gt", &b.gt),
        ("gte", &b.gte),
        ("lt", &b.lt),
        ("lte", &b.lte),
    ];
    let text = |v: &Scalar| {
        v.as_text()
            .ok_or_else(|| query_err("a range bound cannot be null"))
    };
    match family {
        Family::Keyword | Family::Text => {
            let mut sb = StrBounds::default();
            for (side, v) in sides {
                if let Some(v) = v {
                    let t = text(v)?;
                    match side {
                        "gt" => sb.lower = Some((t, false)),
                        "gte" => sb.lower = Some((t, true)),
                        "lt" => sb.upper = Some((t, false)),
                        _ => sb.upper = Some((t, true)),
                    }
                }
            }
            Ok(if matches!(family, Family::Text) {
                Test::TokenRange(sb)
            } else {
                Test::TermRange(sb)
            })
        }
        Family::Integer | Family::Float(_) | Family::Boolean => {
            let (mut lower, mut upper) = (None, None);
            for (side, v) in sides {
                if let Some(v) = v {
                    let t = text(v)?;
                    let n = match family {
                        Family::Boolean => f64::from(u8::from(parse_bool(&t)?)),
                        Family::Float(kind) => typed::round_float(*kind, parse_number(&t)?),
                        _ => parse_number(&t)?,
                    };
                    match side {
                        "gt" => lower = Some((n, false)),
                        "gte" => lower = Some((n, true)),
                        "lt" => upper = Some((n, false)),
                        _ => upper = Some((n, true)),
                    }
                }
            }
            Ok(Test::NumRange { lower, upper })
        }
        Family::Date { .. } => {
            let tz = tz
                .map(TimeZone::parse)
                .transpose()?
                .unwrap_or(TimeZone::UTC);
            let fmt = format.map(|f| DateFormats::parse(Some(f))).transpose()?;
            let (mut lower, mut upper) = (None, None);
            for (side, v) in sides {
                let Some(v) = v else { continue };
                let bound = match v {
                    Scalar::Int(i) => DateBound::epoch_millis(*i as f64, side, family),
                    Scalar::Float(f) => DateBound::epoch_millis(*f, side, family),
                    other => DateBound::new(&text(other)?, side, family, fmt.as_ref(), tz)?,
                };
                if side.starts_with('g') {
                    lower = Some(bound);
                } else {
                    upper = Some(bound);
                }
            }
            Ok(Test::DateRange { lower, upper })
        }
        Family::Ip => {
            let (mut lo, mut hi) = (0u128, u128::MAX);
            for (side, v) in sides {
                let Some(v) = v else { continue };
                let ip = parse_ip(&text(v)?)?;
                match side {
                    "gt" => lo = ip.saturating_add(1),
                    "gte" => lo = ip,
                    "lt" => hi = ip.saturating_sub(1),
                    _ => hi = ip,
                }
            }
            Ok(Test::IpIn(vec![(lo, hi)]))
        }
    }
}
