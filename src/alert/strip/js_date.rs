//! Whether `new Date(string)` is a valid date in Node.js: a port of V8's
//! date parser (`src/date/dateparser.h`, `dateparser-inl.h`,
//! `dateparser.cc`), which Kibana's `isValidDateType` relies on.
//!
//! V8 first reads as much of an ES5 ISO date-time
//! (`[+-yy]yyyy[-MM[-DD]][THH:mm[:ss[.sss]][Z|+hh:mm]]`) as it can and then
//! goes on with its legacy parser, which is lenient: words before the first
//! number are ignored, `(comments)` are skipped, month names and a few
//! zone names are known, a lone number is a month or a year, and a missing
//! year is 2001. Only validity is computed here, not the time value: a
//! time without a zone is taken as UTC, which can differ from Node.js only
//! within a day of the ±8.64e15 ms limit.

use super::values::is_js_space;

/// `TimeClip`: a time value is valid when finite and within ±8.64e15 ms.
pub fn time_clip_ok(ms: f64) -> bool {
    ms.is_finite() && ms.abs() <= 8.64e15
}

/// The UTC time value of `new Date(s)`, if valid.
pub fn parse(s: &str) -> Option<f64> {
    let chars: Vec<char> = s.chars().collect();
    let mut scanner = Scanner::new(&chars);
    let mut day = DayComposer::default();
    let mut time = TimeComposer::default();
    let mut tz = TimeZoneComposer::default();

    let unhandled = parse_es5(&mut scanner, &mut day, &mut time, &mut tz);
    if unhandled == Token::Invalid {
        return None;
    }
    let mut has_read_number = !day.is_empty();
    let mut token = unhandled;
    while token != Token::End {
        match token {
            Token::Number { value: n, .. } => {
                has_read_number = true;
                if scanner.skip_symbol(':') {
                    if scanner.skip_symbol(':') {
                        if !time.is_empty() {
                            return None;
                        }
                        time.add(n);
                        time.add(0);
                    } else {
                        if !time.add(n) {
                            return None;
                        }
                        if scanner.peek() == Token::Symbol('.') {
                            scanner.next();
                        }
                    }
                } else if scanner.skip_symbol('.') && time.is_expecting(n) {
                    // (V8 skips the '.' even when the time does not take n.)
                    time.add(n);
                    let Token::Number { value, length } = scanner.peek() else {
                        return None;
                    };
                    scanner.next();
                    time.add_final(read_milliseconds(value, length));
                } else if tz.is_expecting(n) {
                    tz.minute = Some(n);
                } else if time.is_expecting(n) {
                    time.add_final(n);
                    let peek = scanner.peek();
                    let ok = matches!(peek, Token::End | Token::Space)
                        || peek.is_keyword_z()
                        || peek.is_sign();
                    if !ok {
                        return None;
                    }
                } else {
                    if !day.add(n) {
                        return None;
                    }
                    scanner.skip_symbol('-');
                }
            }
            Token::Word { kind, value, .. } => match kind {
                WordKind::AmPm if !time.is_empty() => time.hour_offset = Some(value),
                WordKind::Month => {
                    day.named_month = Some(value);
                    scanner.skip_symbol('-');
                }
                WordKind::Zone if has_read_number => tz.set(value),
                _ => {
                    // Garbage words are only allowed before the first
                    // number, and must be separated from it.
                    if has_read_number {
                        return None;
                    }
                    if matches!(scanner.peek(), Token::Number { .. }) {
                        return None;
                    }
                }
            },
            Token::Symbol(c @ ('+' | '-')) if tz.is_utc() || !time.is_empty() => {
                tz.sign = Some(if c == '-' { -1 } else { 1 });
                let (mut n, mut length) = (0, 0);
                if let Token::Number { value, length: l } = scanner.peek() {
                    scanner.next();
                    n = value;
                    length = l;
                }
                has_read_number = true;
                if scanner.peek() == Token::Symbol(':') {
                    tz.hour = Some(n);
                    tz.minute = None;
                } else if length == 1 || length == 2 {
                    tz.hour = Some(n);
                    tz.minute = Some(0);
                } else if length == 3 || length == 4 {
                    tz.hour = Some(n / 100);
                    tz.minute = Some(n % 100);
                } else {
                    return None;
                }
            }
            Token::Symbol('+' | '-' | ')') if has_read_number => return None,
            _ => {}
        }
        token = scanner.next();
    }

    let (year, month, day_of_month) = day.write()?;
    let (hour, minute, second, ms) = time.write()?;
    let offset_seconds = tz.write();
    let days = days_from_civil(year, month, day_of_month);
    let t = days as f64 * 86_400_000.0
        + (hour as f64 * 3_600_000.0
            + minute as f64 * 60_000.0
            + second as f64 * 1000.0
            + ms as f64)
        - offset_seconds as f64 * 1000.0;
    time_clip_ok(t).then_some(t)
}

/// V8's `ParseES5DateTime`: returns the first token it did not take (for
/// the legacy parser), `End` when the whole input was an ES5 date-time, or
/// `Invalid` when a time part started but is malformed.
fn parse_es5(
    scanner: &mut Scanner<'_>,
    day: &mut DayComposer,
    time: &mut TimeComposer,
    tz: &mut TimeZoneComposer,
) -> Token {
    let peek = scanner.peek();
    if peek.is_sign() {
        let sign_token = scanner.next();
        if !scanner.peek().is_fixed_number(6) {
            return sign_token;
        }
        let year = scanner.next().number();
        if sign_token == Token::Symbol('-') && year == 0 {
            return sign_token;
        }
        day.add(if sign_token == Token::Symbol('-') {
            -year
        } else {
            year
        });
    } else if peek.is_fixed_number(4) {
        let year = scanner.next().number();
        day.add(year);
    } else {
        return scanner.next();
    }
    if scanner.skip_symbol('-') {
        let p = scanner.peek();
        if !p.is_fixed_number(2) || !is_month(p.number()) {
            return scanner.next();
        }
        day.add(scanner.next().number());
        if scanner.skip_symbol('-') {
            let p = scanner.peek();
            if !p.is_fixed_number(2) || !is_day(p.number()) {
                return scanner.next();
            }
            day.add(scanner.next().number());
        }
    }
    if !scanner.peek().is_word(WordKind::TimeSeparator) {
        if scanner.peek() != Token::End {
            return scanner.next();
        }
    } else {
        scanner.next();
        let p = scanner.peek();
        if !p.is_fixed_number(2) || !(0..=24).contains(&p.number()) {
            return Token::Invalid;
        }
        let hour_is_24 = p.number() == 24;
        time.add(scanner.next().number());
        if !scanner.skip_symbol(':') {
            return Token::Invalid;
        }
        let p = scanner.peek();
        if !p.is_fixed_number(2) || !is_minute(p.number()) || (hour_is_24 && p.number() > 0) {
            return Token::Invalid;
        }
        time.add(scanner.next().number());
        if scanner.skip_symbol(':') {
            let p = scanner.peek();
            if !p.is_fixed_number(2) || !is_minute(p.number()) || (hour_is_24 && p.number() > 0) {
                return Token::Invalid;
            }
            time.add(scanner.next().number());
            if scanner.skip_symbol('.') {
                let p = scanner.peek();
                let Token::Number { value, length } = p else {
                    return Token::Invalid;
                };
                if hour_is_24 && value > 0 {
                    return Token::Invalid;
                }
                scanner.next();
                time.add(read_milliseconds(value, length));
            }
        }
        if scanner.peek().is_keyword_z() {
            scanner.next();
            tz.set(0);
        } else if scanner.peek().is_sign() {
            let sign = if scanner.next() == Token::Symbol('-') {
                -1
            } else {
                1
            };
            tz.sign = Some(sign);
            if scanner.peek().is_fixed_number(4) {
                let hourmin = scanner.next().number();
                let (hour, min) = (hourmin / 100, hourmin % 100);
                if !is_hour(hour) || !is_minute(min) {
                    return Token::Invalid;
                }
                tz.hour = Some(hour);
                tz.minute = Some(min);
            } else {
                let p = scanner.peek();
                if !p.is_fixed_number(2) || !is_hour(p.number()) {
                    return Token::Invalid;
                }
                tz.hour = Some(scanner.next().number());
                if !scanner.skip_symbol(':') {
                    return Token::Invalid;
                }
                let p = scanner.peek();
                if !p.is_fixed_number(2) || !is_minute(p.number()) {
                    return Token::Invalid;
                }
                tz.minute = Some(scanner.next().number());
            }
        }
        if scanner.peek() != Token::End {
            return Token::Invalid;
        }
    }
    // A date-only ES5 string is UTC; with a time and no zone it is local
    // time (taken as UTC here, see the module doc).
    if tz.sign.is_none() && time.is_empty() {
        tz.set(0);
    }
    day.iso = true;
    Token::End
}

/// V8's `ReadMilliseconds`: the first three significant digits.
fn read_milliseconds(value: i64, length: usize) -> i64 {
    match length {
        1 => value * 100,
        2 => value * 10,
        3 => value,
        _ => {
            let mut length = length.min(MAX_SIGNIFICANT_DIGITS);
            let mut factor = 1;
            while length > 3 {
                factor *= 10;
                length -= 1;
            }
            value / factor
        }
    }
}

const MAX_SIGNIFICANT_DIGITS: usize = 9;

fn is_month(n: i64) -> bool {
    (1..=12).contains(&n)
}
fn is_day(n: i64) -> bool {
    (1..=31).contains(&n)
}
fn is_hour(n: i64) -> bool {
    (0..=23).contains(&n)
}
fn is_minute(n: i64) -> bool {
    (0..=59).contains(&n)
}
fn is_millisecond(n: i64) -> bool {
    (0..=999).contains(&n)
}
fn is_hour12(n: i64) -> bool {
    (0..=12).contains(&n)
}

#[derive(Default)]
struct DayComposer {
    comp: Vec<i64>,
    named_month: Option<i64>,
    iso: bool,
}

impl DayComposer {
    fn is_empty(&self) -> bool {
        self.comp.is_empty()
    }

    fn add(&mut self, n: i64) -> bool {
        if self.comp.len() < 3 {
            self.comp.push(n);
            true
        } else {
            false
        }
    }

    /// `(year, month 1-12, day)`.
    fn write(&mut self) -> Option<(i64, i64, i64)> {
        if self.comp.is_empty() {
            return None;
        }
        // Day and month default to 1; V8 then always has three parts.
        while self.comp.len() < 3 {
            self.comp.push(1);
        }
        let c = &self.comp;
        let (mut year, month, day) = match self.named_month {
            None if self.iso || !is_day(c[0]) => (c[0], c[1], c[2]),
            None => (c[2], c[0], c[1]),
            Some(month) if !is_day(c[0]) => (c[0], month, c[1]),
            Some(month) => (c[1], month, c[0]),
        };
        if !self.iso {
            if (0..=49).contains(&year) {
                year += 2000;
            } else if (50..=99).contains(&year) {
                year += 1900;
            }
        }
        (is_month(month) && is_day(day)).then_some((year, month, day))
    }
}

#[derive(Default)]
struct TimeComposer {
    comp: Vec<i64>,
    hour_offset: Option<i64>,
}

impl TimeComposer {
    fn is_empty(&self) -> bool {
        self.comp.is_empty()
    }

    fn add(&mut self, n: i64) -> bool {
        if self.comp.len() < 4 {
            self.comp.push(n);
            true
        } else {
            false
        }
    }

    fn add_final(&mut self, n: i64) -> bool {
        if !self.add(n) {
            return false;
        }
        while self.comp.len() < 4 {
            self.comp.push(0);
        }
        true
    }

    fn is_expecting(&self, n: i64) -> bool {
        match self.comp.len() {
            1 | 2 => is_minute(n),
            3 => is_millisecond(n),
            _ => false,
        }
    }

    fn write(&mut self) -> Option<(i64, i64, i64, i64)> {
        while self.comp.len() < 4 {
            self.comp.push(0);
        }
        let (mut hour, minute, second, ms) =
            (self.comp[0], self.comp[1], self.comp[2], self.comp[3]);
        if let Some(offset) = self.hour_offset {
            if !is_hour12(hour) {
                return None;
            }
            hour = hour % 12 + offset;
        }
        let in_range =
            is_hour(hour) && is_minute(minute) && is_minute(second) && is_millisecond(ms);
        // 24:00:00.000 is midnight at the end of the day.
        if !in_range && (hour != 24 || minute != 0 || second != 0 || ms != 0) {
            return None;
        }
        Some((hour, minute, second, ms))
    }
}

#[derive(Default)]
struct TimeZoneComposer {
    sign: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
}

impl TimeZoneComposer {
    fn set(&mut self, offset_hours: i64) {
        self.sign = Some(if offset_hours < 0 { -1 } else { 1 });
        self.hour = Some(offset_hours.abs());
        self.minute = Some(0);
    }

    fn is_expecting(&self, n: i64) -> bool {
        self.hour.is_some() && self.minute.is_none() && is_minute(n)
    }

    fn is_utc(&self) -> bool {
        self.hour == Some(0) && self.minute == Some(0)
    }

    /// The offset in seconds east of UTC (0 for local time, see the
    /// module doc).
    fn write(&self) -> i64 {
        match self.sign {
            Some(sign) => sign * (self.hour.unwrap_or(0) * 3600 + self.minute.unwrap_or(0) * 60),
            None => 0,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12; a day
/// past the month's end rolls over, as in JavaScript).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WordKind {
    Month,
    AmPm,
    Zone,
    TimeSeparator,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    End,
    Invalid,
    /// Digits: the value of the first nine significant digits and the
    /// length in characters (leading zeros included).
    Number {
        value: i64,
        length: usize,
    },
    Symbol(char),
    Word {
        kind: WordKind,
        value: i64,
        length: usize,
    },
    Space,
    Unknown,
}

impl Token {
    fn number(self) -> i64 {
        match self {
            Token::Number { value, .. } => value,
            _ => -1,
        }
    }

    fn is_fixed_number(self, n: usize) -> bool {
        matches!(self, Token::Number { length, .. } if length == n)
    }

    fn is_sign(self) -> bool {
        matches!(self, Token::Symbol('+' | '-'))
    }

    fn is_word(self, kind: WordKind) -> bool {
        matches!(self, Token::Word { kind: k, .. } if k == kind)
    }

    fn is_keyword_z(self) -> bool {
        matches!(
            self,
            Token::Word {
                kind: WordKind::Zone,
                value: 0,
                length: 1
            }
        )
    }
}

/// V8's `DateStringTokenizer` with one token of look-ahead.
struct Scanner<'a> {
    chars: &'a [char],
    pos: usize,
    next: Token,
}

impl<'a> Scanner<'a> {
    fn new(chars: &'a [char]) -> Scanner<'a> {
        let mut s = Scanner {
            chars,
            pos: 0,
            next: Token::End,
        };
        s.next = s.scan();
        s
    }

    fn peek(&self) -> Token {
        self.next
    }

    fn next(&mut self) -> Token {
        let token = self.next;
        self.next = self.scan();
        token
    }

    fn skip_symbol(&mut self, c: char) -> bool {
        if self.next == Token::Symbol(c) {
            self.next();
            true
        } else {
            false
        }
    }

    fn ch(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn scan(&mut self) -> Token {
        let start = self.pos;
        let Some(c) = self.ch() else {
            return Token::End;
        };
        if c.is_ascii_digit() {
            while self.ch() == Some('0') {
                self.pos += 1;
            }
            let (mut value, mut digits) = (0i64, 0usize);
            while let Some(d) = self.ch().and_then(|c| c.to_digit(10)) {
                if digits < MAX_SIGNIFICANT_DIGITS {
                    value = value * 10 + d as i64;
                }
                digits += 1;
                self.pos += 1;
            }
            return Token::Number {
                value,
                length: self.pos - start,
            };
        }
        if matches!(c, ':' | '-' | '+' | '.' | ')') {
            self.pos += 1;
            return Token::Symbol(c);
        }
        // V8's IsAsciiAlphaOrAbove: any character from 'A' up.
        if c >= 'A' && !is_js_space(c) {
            let mut prefix = [0 as char; 3];
            let mut length = 0;
            while let Some(c) = self.ch().filter(|&c| c >= 'A' && !is_js_space(c)) {
                if length < 3 {
                    prefix[length] = c.to_ascii_lowercase();
                }
                length += 1;
                self.pos += 1;
            }
            let (kind, value) = keyword(prefix, length);
            return Token::Word {
                kind,
                value,
                length,
            };
        }
        if is_js_space(c) {
            while self.ch().is_some_and(is_js_space) {
                self.pos += 1;
            }
            return Token::Space;
        }
        if c == '(' {
            let mut balance = 0;
            loop {
                match self.ch() {
                    Some(')') => balance -= 1,
                    Some('(') => balance += 1,
                    _ => {}
                }
                self.pos += 1;
                if balance <= 0 || self.ch().is_none() {
                    break;
                }
            }
            return Token::Unknown;
        }
        self.pos += 1;
        Token::Unknown
    }
}

/// V8's `KeywordTable::Lookup`: the first three letters must match (with
/// `\0` padding); only month names may be longer than three letters.
fn keyword(prefix: [char; 3], length: usize) -> (WordKind, i64) {
    const TABLE: [(&str, WordKind, i64); 27] = [
        ("jan", WordKind::Month, 1),
        ("feb", WordKind::Month, 2),
        ("mar", WordKind::Month, 3),
        ("apr", WordKind::Month, 4),
        ("may", WordKind::Month, 5),
        ("jun", WordKind::Month, 6),
        ("jul", WordKind::Month, 7),
        ("aug", WordKind::Month, 8),
        ("sep", WordKind::Month, 9),
        ("oct", WordKind::Month, 10),
        ("nov", WordKind::Month, 11),
        ("dec", WordKind::Month, 12),
        ("am", WordKind::AmPm, 0),
        ("pm", WordKind::AmPm, 12),
        ("ut", WordKind::Zone, 0),
        ("utc", WordKind::Zone, 0),
        ("z", WordKind::Zone, 0),
        ("gmt", WordKind::Zone, 0),
        ("cdt", WordKind::Zone, -5),
        ("cst", WordKind::Zone, -6),
        ("edt", WordKind::Zone, -4),
        ("est", WordKind::Zone, -5),
        ("mdt", WordKind::Zone, -6),
        ("mst", WordKind::Zone, -7),
        ("pdt", WordKind::Zone, -7),
        ("pst", WordKind::Zone, -8),
        ("t", WordKind::TimeSeparator, 0),
    ];
    for (word, kind, value) in TABLE {
        let mut padded = [0 as char; 3];
        for (i, c) in word.chars().enumerate() {
            padded[i] = c;
        }
        if padded == prefix && (length <= 3 || kind == WordKind::Month) {
            return (kind, value);
        }
    }
    (WordKind::Other, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es5_dates() {
        assert_eq!(parse("1970-01-01"), Some(0.0));
        assert_eq!(parse("1970-01-01T00:00:01.5Z"), Some(1500.0));
        assert_eq!(parse("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse("1970-01-01T01:00:00+0100"), Some(0.0));
        assert_eq!(parse("+002020-12-12"), parse("2020-12-12"));
        assert!(parse("2024-05-01T24:00:00Z").is_some());
        assert!(parse("2024-05-01T24:01:00Z").is_none());
        assert!(parse("2024-05-01T10:00:00.123456789Z").is_some());
        // not ES5 (year zero may not be negative), so V8's legacy parser
        // reads the digits: 0 -> 2000, then 1, 1 -> 2001-01-01
        assert_eq!(parse("-000000-01-01"), parse("2001-01-01"));
        assert!(parse("2024-05-01T10:00").is_some());
        assert!(parse("2024-05-01T1:00").is_none());
    }

    #[test]
    fn legacy_dates() {
        for ok in [
            "2024-05-01 10:00:00",
            "Tue May 01 2024 10:00:00 GMT+0000 (Coordinated Universal Time)",
            "May 1, 2024",
            "1 May 2024 10:00 PM",
            "2024/05/01",
            "05/01/2024",
            "1",
            "0",
            "32",
            "hello 2020",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "1:2:3:4:5",
        ] {
            assert!(parse(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "",
            "non-valid",
            "13",
            "2024-13-01",
            "2024-13-01T",
            "1714557600000",
            "abc1",
            "2020 hello",
            "invalid-ip",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        // a missing year is 2001, as in V8
        assert_eq!(parse("Jan 1"), parse("2001-01-01T00:00:00Z"));
        assert_eq!(parse("0"), parse("2000-01-01T00:00:00Z"));
    }
}
