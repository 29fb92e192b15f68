//! Per-type semantics: how a field type indexes a `_source` value, and the
//! compiled tests a leaf runs on those indexed values.

use std::net::IpAddr;

use serde_json::Value;

use super::super::analyzer;
use super::super::date::{DateFormats, Nanos, TimeZone, NANOS_PER_MILLI};
use super::super::pattern::Pattern;
use super::EvalError;

/// How a field type stores values, for evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// keyword, constant_keyword, wildcard: the whole value is one term.
    Keyword,
    /// text, match_only_text: the standard analyzer's tokens.
    Text,
    /// long, integer, short, byte, unsigned_long (fractions truncated).
    Integer,
    /// double, float, half_float, scaled_float: values at the type's
    /// precision.
    Float(FloatKind),
    Date {
        nanos: bool,
        formats: DateFormats,
    },
    Ip,
    Boolean,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FloatKind {
    Double,
    Float,
    Half,
    Scaled(f64),
}

impl Family {
    /// The family of an Elasticsearch type; `Err(type)` when detectd cannot
    /// evaluate it.
    pub fn of(
        es_type: &str,
        format: Option<&str>,
        scaling: Option<f64>,
    ) -> Result<Family, EvalError> {
        Ok(match es_type {
            "keyword" | "constant_keyword" | "wildcard" => Family::Keyword,
            "text" | "match_only_text" => Family::Text,
            "long" | "integer" | "short" | "byte" | "unsigned_long" => Family::Integer,
            "double" => Family::Float(FloatKind::Double),
            "float" => Family::Float(FloatKind::Float),
            "half_float" => Family::Float(FloatKind::Half),
            "scaled_float" => match scaling {
                Some(f) => Family::Float(FloatKind::Scaled(f)),
                None => {
                    return Err(EvalError::Unsupported(
                        "a scaled_float without its scaling_factor (give the mapping)".into(),
                    ))
                }
            },
            "date" | "date_nanos" => Family::Date {
                nanos: es_type == "date_nanos",
                formats: DateFormats::parse(format)?,
            },
            "ip" => Family::Ip,
            "boolean" => Family::Boolean,
            other => return Err(EvalError::Unsupported(format!("fields of type `{other}`"))),
        })
    }

    fn resolution(&self) -> Nanos {
        match self {
            Family::Date { nanos: true, .. } => 1,
            _ => NANOS_PER_MILLI,
        }
    }
}

/// One indexed value of a document field.
#[derive(Clone, Debug, PartialEq)]
pub enum Indexed {
    Term(String),
    Tokens(Vec<String>),
    Num(f64),
    Date(Nanos),
    Ip(u128),
    Bool(bool),
}

/// The value as the field type indexes it; `None` when the type would
/// refuse it (a malformed value the cluster would not have indexed).
pub fn index(family: &Family, v: &Value, ignore_above: Option<usize>) -> Option<Indexed> {
    match family {
        Family::Keyword => {
            let s = text_of(v)?;
            if ignore_above.is_some_and(|n| s.chars().count() > n) {
                return None;
            }
            Some(Indexed::Term(s))
        }
        Family::Text => Some(Indexed::Tokens(analyzer::tokens(&text_of(v)?))),
        Family::Integer => number_of(v).map(|n| Indexed::Num(n.trunc())),
        Family::Float(kind) => number_of(v).map(|n| Indexed::Num(round_float(*kind, n))),
        Family::Date { formats, .. } => {
            let n = match v {
                Value::Number(n) => formats.from_number(n.as_f64()?)?,
                Value::String(s) => formats.parse_date(s, TimeZone::UTC, false).ok()?,
                _ => return None,
            };
            Some(Indexed::Date(floor_to(n, family.resolution())))
        }
        Family::Ip => match v {
            Value::String(s) => s
                .trim()
                .parse::<IpAddr>()
                .ok()
                .map(|ip| Indexed::Ip(ip_key(ip))),
            _ => None,
        },
        Family::Boolean => match v {
            Value::Bool(b) => Some(Indexed::Bool(*b)),
            Value::String(s) if s == "true" => Some(Indexed::Bool(true)),
            Value::String(s) if s == "false" || s.is_empty() => Some(Indexed::Bool(false)),
            _ => None,
        },
    }
}

/// A scalar as a keyword or text field reads it.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A numeric field's value: JSON numbers and numeric strings (coerced).
fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

pub fn round_float(kind: FloatKind, n: f64) -> f64 {
    match kind {
        FloatKind::Double => n,
        FloatKind::Float => f64::from(n as f32),
        FloatKind::Half => round_half(n),
        FloatKind::Scaled(f) => (n * f).round() / f,
    }
}

/// Rounds to the nearest IEEE half-precision value (ties to even).
fn round_half(n: f64) -> f64 {
    if !n.is_finite() || n == 0.0 {
        return n;
    }
    let a = n.abs();
    if a >= 65520.0 {
        return f64::INFINITY.copysign(n);
    }
    // Below 2^-14 halves are subnormal with a fixed step of 2^-24.
    let exp = a.log2().floor().max(-14.0);
    let step = 2f64.powf(exp - 10.0);
    let q = a / step;
    let r = q.round();
    let r = if (q - q.floor() - 0.5).abs() < f64::EPSILON && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    (r * step).copysign(n)
}

pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn floor_to(n: Nanos, res: Nanos) -> Nanos {
    n.div_euclid(res) * res
}

/// A date bound as written, resolved at match time when it uses `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct DateBound {
    text: String,
    formats: DateFormats,
    tz: TimeZone,
    round_up: bool,
    /// +1 (gt) or -1 (lt) resolution steps; 0 for inclusive bounds.
    shift: i8,
    resolution: Nanos,
    fixed: Option<Nanos>,
}

impl DateBound {
    /// `side` is the range operator: `gt`, `gte`, `lt` or `lte`.
    pub fn new(
        text: &str,
        side: &str,
        family: &Family,
        format_override: Option<&DateFormats>,
        tz: TimeZone,
    ) -> Result<DateBound, EvalError> {
        let Family::Date { formats, .. } = family else {
            return Err(EvalError::Unsupported(
                "a date bound on a non-date field".into(),
            ));
        };
        let (round_up, shift) = match side {
            "gt" => (true, 1),
            "gte" => (false, 0),
            "lt" => (false, -1),
            _ => (true, 0),
        };
        let mut b = DateBound {
            text: text.to_string(),
            formats: format_override.unwrap_or(formats).clone(),
            tz,
            round_up,
            shift,
            resolution: family.resolution(),
            fixed: None,
        };
        // Checks the syntax now (with any `now`), and fixes the bound when
        // it does not depend on the time of the match.
        let probe = b.resolve_at(0)?;
        if !text.contains("now") {
            b.fixed = Some(probe);
        }
        Ok(b)
    }

    /// A numeric bound: epoch millis, no time zone.
    pub fn epoch_millis(ms: f64, side: &str, family: &Family) -> DateBound {
        let mut b = DateBound {
            text: ms.to_string(),
            formats: DateFormats::epoch_millis(),
            tz: TimeZone::UTC,
            round_up: false,
            shift: match side {
                "gt" => 1,
                "lt" => -1,
                _ => 0,
            },
            resolution: family.resolution(),
            fixed: None,
        };
        let n = (ms * 1e6) as Nanos;
        b.fixed = Some(floor_to(n, b.resolution) + Nanos::from(b.shift) * b.resolution);
        b
    }

    fn resolve_at(&self, now: Nanos) -> Result<Nanos, EvalError> {
        let n = self
            .formats
            .resolve(&self.text, now, self.tz, self.round_up)?;
        Ok(floor_to(n, self.resolution) + Nanos::from(self.shift) * self.resolution)
    }

    pub fn at(&self, now: Nanos) -> Option<Nanos> {
        self.fixed.or_else(|| self.resolve_at(now).ok())
    }
}

/// Inclusive string bounds compared by UTF-8 bytes (Lucene term order).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StrBounds {
    pub lower: Option<(String, bool)>,
    pub upper: Option<(String, bool)>,
}

impl StrBounds {
    fn contains(&self, s: &str) -> bool {
        use std::cmp::Ordering::*;
        let lo = self.lower.as_ref().is_none_or(|(b, incl)| {
            matches!(
                (s.as_bytes().cmp(b.as_bytes()), incl),
                (Greater, _) | (Equal, true)
            )
        });
        let hi = self.upper.as_ref().is_none_or(|(b, incl)| {
            matches!(
                (s.as_bytes().cmp(b.as_bytes()), incl),
                (Less, _) | (Equal, true)
            )
        });
        lo && hi
    }
}

/// A compiled leaf test on one indexed value.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    TermEq {
        value: String,
        case_insensitive: bool,
    },
    TermWildcard(Pattern),
    TermRange(StrBounds),
    /// Some token equals one of these (a `match` is any of its tokens).
    TokenAny(Vec<String>),
    TokenPhrase(Vec<String>),
    TokenWildcard(Pattern),
    TokenRange(StrBounds),
    NumIn(Vec<f64>),
    NumRange {
        lower: Option<(f64, bool)>,
        upper: Option<(f64, bool)>,
    },
    DateRange {
        lower: Option<DateBound>,
        upper: Option<DateBound>,
    },
    IpIn(Vec<(u128, u128)>),
    BoolIn(Vec<bool>),
    Exists,
    Never,
}

impl Test {
    pub fn matches(&self, v: &Indexed, now: Nanos) -> bool {
        match (self, v) {
            (Test::Exists, _) => true,
            (Test::Never, _) => false,
            (
                Test::TermEq {
                    value,
                    case_insensitive,
                },
                Indexed::Term(t),
            ) => {
                if *case_insensitive {
                    t.to_lowercase() == value.to_lowercase()
                } else {
                    t == value
                }
            }
            (Test::TermWildcard(p), Indexed::Term(t)) => p.matches(t),
            (Test::TermRange(b), Indexed::Term(t)) => b.contains(t),
            (
                Test::TermEq {
                    value,
                    case_insensitive,
                },
                Indexed::Tokens(toks),
            ) => toks.iter().any(|t| {
                if *case_insensitive {
                    t.to_lowercase() == value.to_lowercase()
                } else {
                    t == value
                }
            }),
            (Test::TokenAny(vals), Indexed::Tokens(toks)) => toks.iter().any(|t| vals.contains(t)),
            (Test::TokenPhrase(p), Indexed::Tokens(toks)) => analyzer::contains_phrase(toks, p),
            (Test::TokenWildcard(p), Indexed::Tokens(toks)) => toks.iter().any(|t| p.matches(t)),
            (Test::TokenRange(b), Indexed::Tokens(toks)) => toks.iter().any(|t| b.contains(t)),
            (Test::NumIn(vals), Indexed::Num(n)) => vals.contains(n),
            (Test::NumIn(vals), Indexed::Bool(b)) => vals.contains(&f64::from(u8::from(*b))),
            (Test::NumRange { lower, upper }, Indexed::Num(n)) => num_in(*n, lower, upper),
            (Test::NumRange { lower, upper }, Indexed::Bool(b)) => {
                num_in(f64::from(u8::from(*b)), lower, upper)
            }
            (Test::DateRange { lower, upper }, Indexed::Date(d)) => {
                lower
                    .as_ref()
                    .is_none_or(|b| b.at(now).is_some_and(|l| *d >= l))
                    && upper
                        .as_ref()
                        .is_none_or(|b| b.at(now).is_some_and(|u| *d <= u))
            }
            (Test::IpIn(ranges), Indexed::Ip(ip)) => {
                ranges.iter().any(|(lo, hi)| ip >= lo && ip <= hi)
            }
            (Test::BoolIn(vals), Indexed::Bool(b)) => vals.contains(b),
            _ => false,
        }
    }
}

fn num_in(n: f64, lower: &Option<(f64, bool)>, upper: &Option<(f64, bool)>) -> bool {
    lower.is_none_or(|(b, incl)| n > b || (incl && n == b))
        && upper.is_none_or(|(b, incl)| n < b || (incl && n == b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexing_by_family() {
        assert_eq!(
            index(&Family::Keyword, &json!(5), None),
            Some(Indexed::Term("5".into()))
        );
        assert_eq!(index(&Family::Keyword, &json!("abcdef"), Some(3)), None);
        assert_eq!(
            index(&Family::Integer, &json!("5.7"), None),
            Some(Indexed::Num(5.0))
        );
        assert_eq!(index(&Family::Integer, &json!("x"), None), None);
        assert_eq!(
            index(&Family::Float(FloatKind::Float), &json!(0.1), None),
            Some(Indexed::Num(f64::from(0.1f32)))
        );
        assert_eq!(
            index(&Family::Boolean, &json!(""), None),
            Some(Indexed::Bool(false))
        );
        assert!(matches!(
            index(&Family::Ip, &json!("10.0.0.1"), None),
            Some(Indexed::Ip(_))
        ));
    }

    #[test]
    fn half_float_rounding() {
        assert_eq!(round_half(1.0), 1.0);
        assert_eq!(round_half(0.1), 0.0999755859375);
        assert_eq!(round_half(2049.0), 2048.0);
        assert_eq!(round_half(2051.0), 2052.0);
    }
}
