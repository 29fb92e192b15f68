//! Runtime values of the EQL evaluator and their Elasticsearch semantics.
//!
//! A [`Value`] is what a field or an expression yields for one event: null,
//! a boolean, a long, a double, a string, or one of the mapped types EQL
//! compares specially (ip, date as epoch millis, version). Values are
//! `Hash + Eq` (doubles by their bits) so they can be sequence join keys,
//! serialise (sequence state is persisted), and render as Java's `toString`
//! because that is how Elasticsearch prints join keys.
//!
//! This module does not know about events or fields; see `event` and `eval`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One runtime value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(Arc<str>),
    Ip(IpAddr),
    /// Epoch milliseconds of a `date` field.
    Date(i64),
    /// The text of a `version` field (compared as a version, printed verbatim).
    Version(Arc<str>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string of a string-like value (keyword or version text).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Version(s) => Some(s),
            _ => None,
        }
    }

    /// Numbers as a double (longs, doubles, dates as epoch millis).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Long(n) | Value::Date(n) => Some(*n as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Long(_) => "long",
            Value::Double(_) => "double",
            Value::Str(_) => "keyword",
            Value::Ip(_) => "ip",
            Value::Date(_) => "date",
            Value::Version(_) => "version",
        }
    }

    /// Elasticsearch equality: `None` when either side is null or the two
    /// values are of types that cannot be compared.
    pub fn es_eq(&self, other: &Value) -> Option<bool> {
        self.es_cmp(other).map(|o| o == Ordering::Equal)
    }

    /// Elasticsearch ordering: numbers compare numerically across long and
    /// double, strings by code point, ips and dates against their own kind
    /// (and against strings that parse as one), versions as versions.
    /// `None` when either side is null or the kinds do not compare.
    pub fn es_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Long(a), Long(b)) => Some(a.cmp(b)),
            (Long(a), Double(b)) => (*a as f64).partial_cmp(b),
            (Double(a), Long(b)) => a.partial_cmp(&(*b as f64)),
            (Double(a), Double(b)) => a.partial_cmp(b),
            (Str(a), Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Ip(a), Ip(b)) => Some(ip_cmp(a, b)),
            (Ip(a), Str(b)) => b.parse::<IpAddr>().ok().map(|b| ip_cmp(a, &b)),
            (Str(a), Ip(b)) => a.parse::<IpAddr>().ok().map(|a| ip_cmp(&a, b)),
            (Date(a), Date(b)) | (Date(a), Long(b)) | (Long(a), Date(b)) => Some(a.cmp(b)),
            (Date(a), Double(b)) => (*a as f64).partial_cmp(b),
            (Double(a), Date(b)) => a.partial_cmp(&(*b as f64)),
            (Date(a), Str(b)) => parse_date_literal(b).map(|b| a.cmp(&b)),
            (Str(a), Date(b)) => parse_date_literal(a).map(|a| a.cmp(b)),
            (Version(a), Version(b)) | (Version(a), Str(b)) | (Str(a), Version(b)) => {
                Some(version_cmp(a, b))
            }
            _ => None,
        }
    }

    /// Elasticsearch's truthiness of a condition result: only `true` is true.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }
}

/// Java's `Double.toString` closely enough for join keys and `string()`:
/// integral values keep a `.0`, large and tiny magnitudes use `E` notation.
pub fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = d.abs();
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{d}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Rust prints `1.5e10`; Java prints `1.5E10` and always has a fraction.
        let s = format!("{d:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Renders as Java's `toString` of the value Elasticsearch holds: `null`,
/// `true`, `1234`, `1.5`, the string itself, `10.0.0.1`, and dates in ISO
/// form with milliseconds (`1970-01-01T00:00:00.000Z`).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Long(n) => write!(f, "{n}"),
            Value::Double(d) => f.write_str(&java_double(*d)),
            Value::Str(s) | Value::Version(s) => f.write_str(s),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Date(ms) => f.write_str(&format_date_millis(*ms)),
        }
    }
}

/// Epoch millis as `yyyy-MM-ddTHH:mm:ss.SSSZ` (Elasticsearch's
/// `strict_date_optional_time` output).
pub fn format_date_millis(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// Parses an ISO-8601 date or date-time (as Elasticsearch's default
/// `strict_date_optional_time||epoch_millis` does) into epoch millis; a
/// string of digits is epoch millis.
pub fn parse_date_literal(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(n) = parse_epoch_millis(s) {
        return Some(n);
    }
    parse_iso_date(s)
}

/// A string of (optionally signed) digits, possibly with a fraction, as
/// epoch millis.
pub fn parse_epoch_millis(s: &str) -> Option<i64> {
    let body = s.strip_prefix('-').unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if body.bytes().filter(|&b| b == b'.').count() > 1 {
        return None;
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let d = s.parse::<f64>().ok()?;
    if d.is_finite() && d.abs() < 9.2e18 {
        Some(d.floor() as i64)
    } else {
        None
    }
}

/// ISO-8601 in the shapes Elasticsearch accepts by default: a date, a date
/// with time (seconds and fraction optional), with `Z`, an offset, or none
/// (UTC).
pub fn parse_iso_date(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(naive, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_millis());
    }
    None
}

/// Parses a date with a Java `DateTimeFormatter`-style pattern from a mapping
/// (`dd-MM-yyyy`, `yyyy-MM-dd HH:mm:ss`), or one of the named formats
/// (`epoch_millis`, `epoch_second`, `strict_date_optional_time`, ...).
pub fn parse_date_with_format(s: &str, format: &str) -> Option<i64> {
    let format = format.trim();
    match format {
        "epoch_millis" => return parse_epoch_millis(s),
        "epoch_second" => return parse_epoch_millis(s).and_then(|n| n.checked_mul(1000)),
        "strict_date_optional_time"
        | "date_optional_time"
        | "strict_date_time"
        | "date_time"
        | "strict_date_optional_time_nanos"
        | "iso8601" => return parse_iso_date(s),
        _ => {}
    }
    let chrono_fmt = java_to_chrono_format(format)?;
    use chrono::{NaiveDate, NaiveDateTime};
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, &chrono_fmt) {
        return Some(dt.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, &chrono_fmt)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Translates the common letters of a Java date pattern to chrono's; `None`
/// for letters we do not know (the caller then falls back to ISO parsing).
fn java_to_chrono_format(java: &str) -> Option<String> {
    let mut out = String::new();
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        match c {
            'y' | 'u' => out.push_str(if n == 2 { "%y" } else { "%Y" }),
            'M' => out.push_str(match n {
                1 | 2 => "%m",
                3 => "%b",
                _ => "%B",
            }),
            'd' => out.push_str("%d"),
            'H' => out.push_str("%H"),
            'm' => out.push_str("%M"),
            's' => out.push_str("%S"),
            'S' => out.push_str("%.f"),
            'X' | 'Z' => out.push_str("%#z"),
            '\'' => {
                // quoted literal text
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '\'' {
                    out.push(chars[j]);
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            c if c.is_ascii_alphabetic() => return None,
            '%' => out.push_str("%%"),
            c => {
                for _ in 0..n {
                    out.push(c);
                }
            }
        }
        if c == 'S' {
            // `%.f` consumes the dot too; drop a literal dot we already wrote
            if out.ends_with(".%.f") {
                out.truncate(out.len() - 4);
                out.push_str("%.f");
            }
        }
        i += n;
    }
    Some(out)
}

fn ip_cmp(a: &IpAddr, b: &IpAddr) -> Ordering {
    // Elasticsearch stores every ip as 16 bytes (IPv4 mapped into IPv6).
    let bytes = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    bytes(a).cmp(&bytes(b))
}

/// A parsed semantic version: numeric core, optional pre-release.
struct ParsedVersion<'a> {
    core: Vec<u64>,
    pre: Option<&'a str>,
}

fn parse_version(s: &str) -> Option<ParsedVersion<'_>> {
    let s = s.split('+').next().unwrap_or(s);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) if !p.is_empty() => (c, Some(p)),
        Some(_) => return None,
        None => (s, None),
    };
    let mut parts = Vec::new();
    for part in core.split('.') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parts.push(part.parse::<u64>().ok()?);
    }
    Some(ParsedVersion { core: parts, pre })
}

/// Version ordering as Elasticsearch's `version` field type: valid semantic
/// versions by their numbers (a pre-release before its release); invalid
/// versions sort after all valid ones, among themselves by text.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => x.core.cmp(&y.core).then_with(|| match (x.pre, y.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(p), Some(q)) => prerelease_cmp(p, q),
        }),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

fn prerelease_cmp(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

// Join keys need exact identity, not Elasticsearch equality: `1` and `1.0`
// are different keys, doubles compare by bits.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Long(a), Long(b)) => a == b,
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Str(a), Str(b)) => a == b,
            (Ip(a), Ip(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Version(a), Version(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Long(n) | Value::Date(n) => n.hash(state),
            Value::Double(d) => d.to_bits().hash(state),
            Value::Str(s) | Value::Version(s) => s.hash(state),
            Value::Ip(ip) => ip.hash(state),
        }
    }
}

/// A total order for sorting keys (sample results): null first, then by
/// kind, then by Elasticsearch order within a kind.
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Long(_) | Value::Double(_) => 2,
                Value::Date(_) => 3,
                Value::Ip(_) => 4,
                Value::Version(_) => 5,
                Value::Str(_) => 6,
            }
        }
        rank(self)
            .cmp(&rank(other))
            .then_with(|| match (self, other) {
                (Value::Double(a), Value::Double(b)) => a.total_cmp(b),
                (Value::Long(a), Value::Double(b)) => (*a as f64).total_cmp(b),
                (Value::Double(a), Value::Long(b)) => a.total_cmp(&(*b as f64)),
                _ => self.es_cmp(other).unwrap_or(Ordering::Equal),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn renders_like_java_to_string() {
        assert_eq!(Value::Null.to_string(), "null");
        assert_eq!(Value::Long(1234).to_string(), "1234");
        assert_eq!(Value::Bool(true).to_string(), "true");
        assert_eq!(Value::Double(1.0).to_string(), "1.0");
        assert_eq!(Value::Double(2.5).to_string(), "2.5");
        assert_eq!(Value::Double(1.5e10).to_string(), "1.5E10");
        assert_eq!(
            Value::Ip("10.0.0.1".parse().unwrap()).to_string(),
            "10.0.0.1"
        );
        assert_eq!(Value::Date(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Value::Version("1.2.3".into()).to_string(), "1.2.3");
    }

    #[test]
    fn comparisons_follow_elasticsearch() {
        assert_eq!(Value::Long(1).es_eq(&Value::Double(1.0)), Some(true));
        assert_eq!(Value::Long(1).es_eq(&Value::Null), None);
        assert_eq!(
            Value::str("a").es_cmp(&Value::str("b")),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Long(1).es_eq(&Value::str("1")), None);
        let ip = Value::Ip("10.0.0.1".parse().unwrap());
        assert_eq!(ip.es_eq(&Value::str("10.0.0.1")), Some(true));
        assert_eq!(
            Value::Date(86_400_000).es_cmp(&Value::str("1970-01-01")),
            Some(Ordering::Greater)
        );
        assert_eq!(Value::Date(5).es_eq(&Value::Long(5)), Some(true));
    }

    #[test]
    fn versions_compare_semantically_and_invalid_sort_last() {
        assert_eq!(version_cmp("1.11.3", "1.5.0"), Ordering::Greater);
        assert_eq!(version_cmp("1.0.0-alpha", "1.0.0"), Ordering::Less);
        assert_eq!(
            version_cmp("1.0.0-alpha.2", "1.0.0-alpha.10"),
            Ordering::Less
        );
        assert_eq!(version_cmp("bad", "1.5.0"), Ordering::Greater);
        assert_eq!(version_cmp("1.5.0", "1.5.0+build"), Ordering::Equal);
    }

    #[test]
    fn values_hash_by_identity() {
        let mut set = HashSet::new();
        set.insert(Value::Long(1));
        set.insert(Value::Double(1.0));
        set.insert(Value::str("1"));
        set.insert(Value::Long(1));
        assert_eq!(set.len(), 3);
        assert_ne!(Value::Double(0.0), Value::Double(-0.0));
    }

    #[test]
    fn values_round_trip_through_serde() {
        let vals = vec![
            Value::Null,
            Value::Long(-3),
            Value::Double(0.5),
            Value::str("x"),
            Value::Ip("::1".parse().unwrap()),
            Value::Date(17),
            Value::Version("1.2".into()),
        ];
        let json = serde_json::to_string(&vals).unwrap();
        let back: Vec<Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(vals, back);
    }

    #[test]
    fn dates_parse_in_default_and_custom_formats() {
        assert_eq!(parse_date_literal("1970-01-01T00:00:00.001Z"), Some(1));
        assert_eq!(parse_date_literal("100"), Some(100));
        assert_eq!(parse_date_literal("1970-01-02"), Some(86_400_000));
        assert_eq!(
            parse_date_with_format("02-01-1970", "dd-MM-yyyy"),
            Some(86_400_000)
        );
        assert_eq!(
            parse_date_with_format("1970-01-02", "yyyy-MM-dd"),
            Some(86_400_000)
        );
        assert_eq!(parse_date_literal("garbage"), None);
    }
}
