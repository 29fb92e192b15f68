//! Kibana's scheduling strings: date math for `from` / `to` (`now-9m`,
//! `now`) and durations for `interval` (`5m`, `1h`, `30s`).
//!
//! Only what has a fixed length is accepted: Kibana also allows calendar units
//! (`M`, `y`) and rounding (`now/d`) in date math, but a look-back that
//! changes with the calendar cannot become one [`Duration`], and no rule in
//! the detection-rules corpus uses them (its tests enforce
//! `^now-\d+[yMwdhHms]$`), so they are rejected with a clear message rather
//! than approximated.

use std::fmt;
use std::time::Duration;

/// A date-math expression relative to the run's start time: `now` plus a
/// signed offset (`now-9m` is an offset of -540 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateMath {
    offset_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("expected date math like `now-9m`, found `{0}`")]
    NotDateMath(String),
    #[error("expected a duration like `5m` (a number then s, m, h or d), found `{0}`")]
    NotDuration(String),
    #[error(
        "unsupported unit `{unit}` in `{text}`: months and years have no fixed length, use d or w"
    )]
    CalendarUnit { unit: char, text: String },
    #[error("unsupported rounding `/{0}` in date math: detectd needs a fixed offset from now")]
    Rounding(String),
    #[error("expected a positive duration, found `{0}`")]
    Zero(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl DateMath {
    pub const NOW: DateMath = DateMath { offset_ms: 0 };

    /// Parses `now`, `now-9m`, `now+1h`, `now-1d-12h`; units `ms`, `s`, `m`,
    /// `h`/`H`, `d`, `w` (as in Kibana's `@kbn/datemath`).
    pub fn parse(text: &str) -> Result<DateMath, TimeError> {
        let not_math = || TimeError::NotDateMath(text.to_string());
        let mut rest = text.trim().strip_prefix("now").ok_or_else(not_math)?;
        let mut offset_ms: i64 = 0;
        while !rest.is_empty() {
            if let Some(round) = rest.strip_prefix('/') {
                return Err(TimeError::Rounding(round.to_string()));
            }
            let sign: i64 = match rest.as_bytes()[0] {
                b'-' => -1,
                b'+' => 1,
                _ => return Err(not_math()),
            };
            rest = &rest[1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(not_math());
            }
            let amount: i64 = rest[..digits]
                .parse()
                .map_err(|_| TimeError::Overflow(text.to_string()))?;
            rest = &rest[digits..];
            let (unit_ms, unit_len) = unit(rest, text, true)?;
            rest = &rest[unit_len..];
            let step = amount
                .checked_mul(unit_ms)
                .and_then(|v| v.checked_mul(sign))
                .ok_or_else(|| TimeError::Overflow(text.to_string()))?;
            offset_ms = offset_ms
                .checked_add(step)
                .ok_or_else(|| TimeError::Overflow(text.to_string()))?;
        }
        Ok(DateMath { offset_ms })
    }

    /// `now` shifted by `offset_ms` (negative = in the past).
    pub fn from_offset_ms(offset_ms: i64) -> DateMath {
        DateMath { offset_ms }
    }

    /// Signed offset from `now` in milliseconds (negative = in the past).
    pub fn offset_ms(self) -> i64 {
        self.offset_ms
    }
}

impl fmt::Display for DateMath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.offset_ms;
        if ms == 0 {
            return f.write_str("now");
        }
        let sign = if ms < 0 { '-' } else { '+' };
        let abs = ms.unsigned_abs();
        let (n, u) = if abs % 86_400_000 == 0 {
            (abs / 86_400_000, "d")
        } else if abs % 3_600_000 == 0 {
            (abs / 3_600_000, "h")
        } else if abs % 60_000 == 0 {
            (abs / 60_000, "m")
        } else if abs % 1000 == 0 {
            (abs / 1000, "s")
        } else {
            (abs, "ms")
        };
        write!(f, "now{sign}{n}{u}")
    }
}

/// Parses a rule `interval`: a positive whole number then `s`, `m`, `h` or
/// `d` (Kibana's alerting schedule format).
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits == t.len() {
        return Err(TimeError::NotDuration(text.to_string()));
    }
    let amount: u64 = t[..digits]
        .parse()
        .map_err(|_| TimeError::Overflow(text.to_string()))?;
    let (unit_ms, unit_len) = unit(&t[digits..], text, false)?;
    if unit_len != t.len() - digits {
        return Err(TimeError::NotDuration(text.to_string()));
    }
    if amount == 0 {
        return Err(TimeError::Zero(text.to_string()));
    }
    let ms = amount
        .checked_mul(unit_ms as u64)
        .ok_or_else(|| TimeError::Overflow(text.to_string()))?;
    Ok(Duration::from_millis(ms))
}

/// The unit at the start of `rest`: its length in ms and in bytes.
fn unit(rest: &str, text: &str, date_math: bool) -> Result<(i64, usize), TimeError> {
    let bad = || {
        if date_math {
            TimeError::NotDateMath(text.to_string())
        } else {
            TimeError::NotDuration(text.to_string())
        }
    };
    if date_math && rest.starts_with("ms") {
        return Ok((1, 2));
    }
    let c = rest.chars().next().ok_or_else(bad)?;
    let ms = match c {
        's' => 1000,
        'm' => 60_000,
        'h' => 3_600_000,
        'H' if date_math => 3_600_000,
        'd' => 86_400_000,
        'w' if date_math => 7 * 86_400_000,
        'M' | 'y' if date_math => {
            return Err(TimeError::CalendarUnit {
                unit: c,
                text: text.to_string(),
            })
        }
        _ => return Err(bad()),
    };
    Ok((ms, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_math_offsets() {
        assert_eq!(DateMath::parse("now").unwrap().offset_ms(), 0);
        assert_eq!(DateMath::parse("now-9m").unwrap().offset_ms(), -540_000);
        assert_eq!(
            DateMath::parse("now-7205m").unwrap().offset_ms(),
            -7205 * 60_000
        );
        assert_eq!(DateMath::parse("now-1h").unwrap().offset_ms(), -3_600_000);
        assert_eq!(DateMath::parse("now-2H").unwrap().offset_ms(), -7_200_000);
        assert_eq!(
            DateMath::parse("now-5d").unwrap().offset_ms(),
            -5 * 86_400_000
        );
        assert_eq!(
            DateMath::parse("now-1w").unwrap().offset_ms(),
            -7 * 86_400_000
        );
        assert_eq!(DateMath::parse("now+30s").unwrap().offset_ms(), 30_000);
        assert_eq!(DateMath::parse("now-500ms").unwrap().offset_ms(), -500);
        assert_eq!(
            DateMath::parse("now-1d+12h").unwrap().offset_ms(),
            -43_200_000
        );
    }

    #[test]
    fn date_math_display_round_trips() {
        for s in ["now", "now-9m", "now-2h", "now-5d", "now+30s", "now-500ms"] {
            assert_eq!(DateMath::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn date_math_errors() {
        assert!(matches!(
            DateMath::parse("9m"),
            Err(TimeError::NotDateMath(_))
        ));
        assert!(matches!(
            DateMath::parse("now-"),
            Err(TimeError::NotDateMath(_))
        ));
        assert!(matches!(
            DateMath::parse("now-9"),
            Err(TimeError::NotDateMath(_))
        ));
        assert!(matches!(
            DateMath::parse("now-9x"),
            Err(TimeError::NotDateMath(_))
        ));
        assert!(matches!(
            DateMath::parse("now-1M"),
            Err(TimeError::CalendarUnit { unit: 'M', .. })
        ));
        assert!(matches!(
            DateMath::parse("now/d"),
            Err(TimeError::Rounding(_))
        ));
        assert!(matches!(
            DateMath::parse("now-99999999999999999999m"),
            Err(TimeError::Overflow(_))
        ));
        assert!(matches!(
            DateMath::parse("now-999999999999999d"),
            Err(TimeError::Overflow(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "m", "5", "5x", "5 m", "-5m", "5mm", "now-5m", "1w"] {
            assert!(
                matches!(parse_duration(bad), Err(TimeError::NotDuration(_))),
                "{bad}"
            );
        }
        assert!(matches!(parse_duration("0m"), Err(TimeError::Zero(_))));
    }
}
