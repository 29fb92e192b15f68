//! Small renderings shared by the explanation's sections.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::eql::Span;
use crate::rule::Rule;

/// A time as the window bounds are sent (ISO 8601, milliseconds, `Z`).
pub(super) fn iso(t: &DateTime<Utc>) -> String {
    crate::source::elasticsearch::dsl::iso(t)
}

/// A duration as rule files write them (`5m`, `90s`, `1h`).
pub(super) fn duration(d: Duration) -> String {
    crate::daemon::rule_table::duration_text(d)
}

/// An offset to the millisecond: `1m52.405s`, `7.5s`, `0s`.
pub(super) fn offset_text(d: Duration) -> String {
    let ms = d.as_millis();
    let (h, m, s, frac) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac > 0 {
        let f = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", f.trim_end_matches('0')));
    } else if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The part of the rule's query text a span covers (spans are offsets into
/// the query as TOML decoded it).
pub(super) fn span_text(rule: &Rule, span: Span) -> &str {
    rule.query_text()
        .get(span.start as usize..span.end as usize)
        .unwrap_or("")
}

/// Text on one line: runs of white space (a query's line breaks and
/// indentation) become one space.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_to_the_millisecond() {
        let ms = Duration::from_millis;
        assert_eq!(offset_text(ms(112_405)), "1m52.405s");
        assert_eq!(offset_text(ms(7_500)), "7.5s");
        assert_eq!(offset_text(ms(0)), "0s");
        assert_eq!(offset_text(ms(3_600_000)), "1h");
        assert_eq!(offset_text(ms(60_000)), "1m");
        assert_eq!(one_line("a\n  b  c\n"), "a b c");
    }
}
