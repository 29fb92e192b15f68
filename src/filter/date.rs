//! Dates as Elasticsearch reads them in range queries and documents: the
//! mapping's formats, date math (`now-1d/d`, `2024-01-01||+1M`), a query
//! `time_zone`, and rounding.
//!
//! Rounding follows Elasticsearch's range semantics: a bound parsed for
//! `gt` or `lte` rounds *up* (missing date parts and `/unit` rounding take
//! their last value, so `lte: "2018-04-03"` ends at 23:59:59.999), `gte` and
//! `lt` round down.
//!
//! Limits: the ISO formats (`strict_date_optional_time`, `date_optional_time`,
//! their `_nanos` and `date_time` variants, `iso8601`), `epoch_millis` and
//! `epoch_second` are read; other formats (custom Java patterns) are
//! refused with [`DateError::Format`]. Time zones are UTC (`Z`, `UTC`,
//! `Zulu`, `Etc/UTC`, `GMT`) or fixed offsets (`+01:00`); named regional
//! zones are refused ([`DateError::TimeZone`]).

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

/// Nanoseconds since the epoch.
pub type Nanos = i128;

pub const NANOS_PER_MILLI: Nanos = 1_000_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("expected a date in format `{format}`, found `{text}`")]
    Parse { text: String, format: String },
    #[error("date format `{0}` cannot be evaluated offline (ISO formats, epoch_millis and epoch_second can)")]
    Format(String),
    #[error(
        "time zone `{0}` cannot be evaluated offline (UTC, Zulu or a fixed offset like +01:00 can)"
    )]
    TimeZone(String),
    #[error("expected date math like `now-1d/d`, found `{0}`")]
    Math(String),
}

/// A time zone detectd can apply offline: a fixed offset east of UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeZone {
    offset_secs: i32,
}

impl TimeZone {
    pub const UTC: TimeZone = TimeZone { offset_secs: 0 };

    pub fn parse(s: &str) -> Result<TimeZone, DateError> {
        let t = s.trim();
        const UTC_NAMES: &[&str] = &[
            "Z",
            "UTC",
            "Zulu",
            "GMT",
            "UCT",
            "Universal",
            "Etc/UTC",
            "Etc/GMT",
            "Etc/UCT",
            "Etc/Zulu",
            "Etc/Universal",
        ];
        if UTC_NAMES.iter().any(|n| n.eq_ignore_ascii_case(t)) {
            return Ok(TimeZone::UTC);
        }
        let body = t
            .strip_prefix("UTC")
            .or_else(|| t.strip_prefix("GMT"))
            .unwrap_or(t);
        parse_offset(body.as_bytes())
            .filter(|(_, used)| *used == body.len())
            .map(|(offset_secs, _)| TimeZone { offset_secs })
            .ok_or_else(|| DateError::TimeZone(s.to_string()))
    }

    fn offset_nanos(self) -> Nanos {
        Nanos::from(self.offset_secs) * 1_000_000_000
    }
}

/// `+HH`, `+HH:mm`, `+HHmm` (or `-`): seconds east and bytes used.
fn parse_offset(b: &[u8]) -> Option<(i32, usize)> {
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hh = two_digits(b, 1)?;
    let mut used = 3;
    let mut mm = 0;
    if b.get(3) == Some(&b':') {
        mm = two_digits(b, 4)?;
        used = 6;
    } else if let Some(m) = two_digits(b, 3) {
        mm = m;
        used = 5;
    }
    (hh <= 18 && mm < 60).then_some((sign * (hh as i32 * 3600 + mm as i32 * 60), used))
}

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit())
        .then(|| u32::from(x - b'0') * 10 + u32::from(y - b'0'))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Iso { strict: bool },
    EpochMillis,
    EpochSecond,
}

/// A mapping's date formats (`||`-separated), tried in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateFormats {
    spec: String,
    formats: Vec<Format>,
}

/// Elasticsearch's default for `date` fields.
pub const DEFAULT_FORMAT: &str = "strict_date_optional_time||epoch_millis";

impl DateFormats {
    pub fn epoch_millis() -> DateFormats {
        DateFormats {
            spec: "epoch_millis".to_string(),
            formats: vec![Format::EpochMillis],
        }
    }

    pub fn parse(spec: Option<&str>) -> Result<DateFormats, DateError> {
        let spec = spec.unwrap_or(DEFAULT_FORMAT);
        let mut formats = Vec::new();
        for f in spec.split("||") {
            formats.push(match f.trim() {
                "strict_date_optional_time"
                | "strict_date_optional_time_nanos"
                | "strict_date_time"
                | "strict_date_time_no_millis"
                | "strict_date"
                | "strict_date_hour_minute_second"
                | "strict_date_hour_minute_second_millis"
                | "strict_date_hour_minute_second_fraction" => Format::Iso { strict: true },
                "date_optional_time" | "date_time" | "date_time_no_millis" | "date" | "iso8601" => {
                    Format::Iso { strict: false }
                }
                "epoch_millis" => Format::EpochMillis,
                "epoch_second" => Format::EpochSecond,
                other => return Err(DateError::Format(other.to_string())),
            });
        }
        Ok(DateFormats {
            spec: spec.to_string(),
            formats,
        })
    }

    /// A date string (no math), in `tz` unless it carries an offset.
    pub fn parse_date(&self, text: &str, tz: TimeZone, round_up: bool) -> Result<Nanos, DateError> {
        self.formats
            .iter()
            .find_map(|f| match f {
                Format::Iso { strict } => parse_iso(text, *strict, tz, round_up),
                Format::EpochMillis => parse_epoch(text, NANOS_PER_MILLI),
                Format::EpochSecond => parse_epoch(text, 1_000_000_000),
            })
            .ok_or_else(|| DateError::Parse {
                text: text.to_string(),
                format: self.spec.clone(),
            })
    }

    /// A JSON number in a document: epoch millis (epoch seconds when that
    /// is the only epoch format).
    pub fn from_number(&self, n: f64) -> Option<Nanos> {
        let unit = if self.formats.contains(&Format::EpochSecond)
            && !self.formats.contains(&Format::EpochMillis)
        {
            1e9
        } else {
            1e6
        };
        let v = n * unit;
        (v.is_finite() && v.abs() < 1e30).then_some(v as Nanos)
    }

    /// A range bound: date math (`now`, `<date>||<ops>`) or a date, rounded
    /// as Elasticsearch rounds for the bound's side.
    pub fn resolve(
        &self,
        text: &str,
        now: Nanos,
        tz: TimeZone,
        round_up: bool,
    ) -> Result<Nanos, DateError> {
        let (anchor, ops) = if let Some(rest) = text.strip_prefix("now") {
            (now, rest)
        } else if let Some((date, rest)) = text.split_once("||") {
            (self.parse_date(date, tz, round_up)?, rest)
        } else {
            return self.parse_date(text, tz, round_up);
        };
        apply_math(anchor, ops, tz, round_up).ok_or_else(|| DateError::Math(text.to_string()))
    }
}

fn parse_epoch(text: &str, unit: Nanos) -> Option<Nanos> {
    let t = text.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if int.len() > 20 {
        return None;
    }
    let whole: Nanos = int.parse::<i128>().ok()?.checked_mul(unit)?;
    let mut frac_n: Nanos = 0;
    let mut scale = unit;
    for d in frac.bytes().take(18) {
        scale /= 10;
        frac_n += Nanos::from(d - b'0') * scale;
    }
    let v = whole + frac_n;
    Some(if t.starts_with('-') { -v } else { v })
}

/// ISO-8601 as Elasticsearch's `(strict_)date_optional_time` reads it:
/// `yyyy[-MM[-dd[THH[:mm[:ss[.fraction]]]][offset]]]`.
fn parse_iso(text: &str, strict: bool, tz: TimeZone, round_up: bool) -> Option<Nanos> {
    let b = text.as_bytes();
    let mut i = 0;
    let num = |i: &mut usize, min: usize, max: usize| -> Option<u32> {
        let start = *i;
        while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
            *i += 1;
        }
        if *i - start < min {
            return None;
        }
        text[start..*i].parse().ok()
    };
    let year = num(&mut i, 4, 4)? as i32;
    let two = if strict { 2 } else { 1 };
    let mut month = None;
    let mut day = None;
    let (mut hour, mut minute, mut second, mut nanos) = (None, None, None, None);
    let mut offset = None;
    if b.get(i) == Some(&b'-') {
        i += 1;
        month = Some(num(&mut i, two, 2)?);
        if b.get(i) == Some(&b'-') {
            i += 1;
            day = Some(num(&mut i, two, 2)?);
            if b.get(i) == Some(&b'T') {
                i += 1;
                if b.get(i).is_some_and(u8::is_ascii_digit) {
                    hour = Some(num(&mut i, two, 2)?);
                    if b.get(i) == Some(&b':') {
                        i += 1;
                        minute = Some(num(&mut i, two, 2)?);
                        if b.get(i) == Some(&b':') {
                            i += 1;
                            second = Some(num(&mut i, two, 2)?);
                            if matches!(b.get(i), Some(b'.') | Some(b',')) {
                                i += 1;
                                let start = i;
                                let digits = num(&mut i, 1, 9)?;
                                let len = (i - start) as u32;
                                nanos = Some(digits * 10u32.pow(9 - len));
                            }
                        }
                    }
                }
                if b.get(i) == Some(&b'Z') {
                    i += 1;
                    offset = Some(0);
                } else if let Some((secs, used)) = parse_offset(&b[i..]) {
                    i += used;
                    offset = Some(secs);
                }
            }
        }
    }
    if i != b.len() {
        return None;
    }
    let month_v = month.unwrap_or(if round_up { 12 } else { 1 });
    let first = NaiveDate::from_ymd_opt(year, month_v, 1)?;
    let day_v = match day {
        Some(d) => d,
        None if round_up => last_day_of_month(first),
        None => 1,
    };
    let date = NaiveDate::from_ymd_opt(year, month_v, day_v)?;
    let fill = |v: Option<u32>, max: u32| v.unwrap_or(if round_up { max } else { 0 });
    let (h, m, s) = (fill(hour, 23), fill(minute, 59), fill(second, 59));
    let n = fill(nanos, 999_999_999);
    let local = date.and_hms_nano_opt(h, m, s, n)?;
    let offset_nanos = match offset {
        Some(secs) => Nanos::from(secs) * 1_000_000_000,
        None => tz.offset_nanos(),
    };
    Some(naive_nanos(local) - offset_nanos)
}

fn last_day_of_month(first: NaiveDate) -> u32 {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

fn naive_nanos(dt: NaiveDateTime) -> Nanos {
    let utc = dt.and_utc();
    Nanos::from(utc.timestamp()) * 1_000_000_000 + Nanos::from(utc.timestamp_subsec_nanos())
}

fn from_nanos(n: Nanos) -> Option<NaiveDateTime> {
    let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
    let sub = n.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, sub).map(|d| d.naive_utc())
}

/// Date math operations (`+1d`, `-2h`, `/d`) applied in `tz`.
fn apply_math(anchor: Nanos, ops: &str, tz: TimeZone, round_up: bool) -> Option<Nanos> {
    let mut local = from_nanos(anchor + tz.offset_nanos())?;
    let b = ops.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let op = b[i];
        i += 1;
        match op {
            b'/' => {
                let unit = *b.get(i)?;
                i += 1;
                local = round_down(local, unit)?;
                if round_up {
                    local = add(local, unit, 1)? - Duration::milliseconds(1);
                }
            }
            b'+' | b'-' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n: i64 = if start == i {
                    1
                } else {
                    ops[start..i].parse().ok()?
                };
                let unit = *b.get(i)?;
                i += 1;
                local = add(local, unit, if op == b'-' { -n } else { n })?;
            }
            _ => return None,
        }
    }
    Some(naive_nanos(local) - tz.offset_nanos())
}

fn add(t: NaiveDateTime, unit: u8, n: i64) -> Option<NaiveDateTime> {
    let months = |m: i64| -> Option<NaiveDateTime> {
        let m32 = u32::try_from(m.unsigned_abs()).ok()?;
        if m >= 0 {
            t.checked_add_months(chrono::Months::new(m32))
        } else {
            t.checked_sub_months(chrono::Months::new(m32))
        }
    };
    match unit {
        b'y' => months(n.checked_mul(12)?),
        b'M' => months(n),
        b'w' => t.checked_add_signed(Duration::try_weeks(n)?),
        b'd' => t.checked_add_signed(Duration::try_days(n)?),
        b'h' | b'H' => t.checked_add_signed(Duration::try_hours(n)?),
        b'm' => t.checked_add_signed(Duration::try_minutes(n)?),
        b's' => t.checked_add_signed(Duration::try_seconds(n)?),
        _ => None,
    }
}

fn round_down(t: NaiveDateTime, unit: u8) -> Option<NaiveDateTime> {
    let d = t.date();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    match unit {
        b'y' => midnight(NaiveDate::from_ymd_opt(d.year(), 1, 1)?),
        b'M' => midnight(NaiveDate::from_ymd_opt(d.year(), d.month(), 1)?),
        b'w' => midnight(d - Duration::days(i64::from(d.weekday().num_days_from_monday()))),
        b'd' => midnight(d),
        b'h' | b'H' => d.and_hms_opt(t.hour(), 0, 0),
        b'm' => d.and_hms_opt(t.hour(), t.minute(), 0),
        b's' => d.and_hms_opt(t.hour(), t.minute(), t.second()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Nanos {
        naive_nanos(NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f").unwrap())
    }

    #[test]
    fn rounding_fills_missing_parts() {
        let f = DateFormats::parse(None).unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(
            f.parse_date("2018-04-03", utc, false).unwrap(),
            ms("2018-04-03T00:00:00.000")
        );
        assert_eq!(
            f.parse_date("2018-04-03", utc, true).unwrap(),
            ms("2018-04-03T23:59:59.999") + 999_999
        );
        assert_eq!(
            f.parse_date("2018-02", utc, true).unwrap() / NANOS_PER_MILLI,
            ms("2018-02-28T23:59:59.999") / NANOS_PER_MILLI
        );
        assert_eq!(
            f.parse_date("2018-04-03T19:04:17+02:00", utc, false)
                .unwrap(),
            ms("2018-04-03T17:04:17.000")
        );
        assert_eq!(
            f.parse_date("2018-04-03T19:04:17.5Z", utc, false).unwrap(),
            ms("2018-04-03T19:04:17.500")
        );
        assert_eq!(
            f.parse_date("1522782257000", utc, false).unwrap(),
            ms("2018-04-03T19:04:17.000")
        );
        let plus2 = TimeZone::parse("+02:00").unwrap();
        assert_eq!(
            f.parse_date("2018-04-03T19:04:17", plus2, false).unwrap(),
            ms("2018-04-03T17:04:17.000")
        );
        assert!(f.parse_date("2018-13-01", utc, false).is_err());
        assert!(f.parse_date("yesterday", utc, false).is_err());
    }

    #[test]
    fn date_math() {
        let f = DateFormats::parse(None).unwrap();
        let now = ms("2024-03-15T10:20:30.000");
        let utc = TimeZone::UTC;
        assert_eq!(
            f.resolve("now-1d", now, utc, false).unwrap(),
            ms("2024-03-14T10:20:30.000")
        );
        assert_eq!(
            f.resolve("now/d", now, utc, false).unwrap(),
            ms("2024-03-15T00:00:00.000")
        );
        assert_eq!(
            f.resolve("now/d", now, utc, true).unwrap(),
            ms("2024-03-15T23:59:59.999")
        );
        assert_eq!(
            f.resolve("now-30d/d", now, utc, false).unwrap(),
            ms("2024-02-14T00:00:00.000")
        );
        assert_eq!(
            f.resolve("2024-01-31||+1M", now, utc, false).unwrap(),
            ms("2024-02-29T00:00:00.000")
        );
        assert_eq!(
            f.resolve("now/w", now, utc, false).unwrap(),
            ms("2024-03-11T00:00:00.000")
        );
        assert!(f.resolve("now-1x", now, utc, false).is_err());
    }

    #[test]
    fn zones_and_formats() {
        assert_eq!(TimeZone::parse("Zulu").unwrap(), TimeZone::UTC);
        assert!(TimeZone::parse("-0530").is_ok());
        assert!(TimeZone::parse("America/Phoenix").is_err());
        assert!(DateFormats::parse(Some("yyyy/MM/dd")).is_err());
        let secs = DateFormats::parse(Some("epoch_second")).unwrap();
        assert_eq!(secs.from_number(1.0), Some(1_000_000_000));
    }
}
