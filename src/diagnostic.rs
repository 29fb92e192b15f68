//! Rendering errors for people: `file:line:col: error: message`, then the
//! source line and a caret under the span, like rustc and ruff.
//!
//! Library code returns structured errors with byte spans; this is the edge
//! where they become text (`detectd check`, the `query` command, daemon logs).
//! Columns count characters, not bytes, so a line with `é` before the error
//! still puts the caret in the right place.

use crate::eql::span::{line_col, line_text};
use crate::eql::Span;

/// Renders one error. `source_name` is a path, or e.g. `<query>` for a bare
/// query; `span` is a byte span into `source_text`.
///
/// ```text
/// rules/x.toml:3:5: error: expected a value, found `=`
///   |
/// 3 | x = = 3
///   |     ^
/// ```
pub fn render(source_name: &str, source_text: &str, span: Span, message: &str) -> String {
    render_level("error", source_name, source_text, span, message)
}

/// Like [`render`] with another level word (`warning`, `note`).
pub fn render_level(
    level: &str,
    source_name: &str,
    source_text: &str,
    span: Span,
    message: &str,
) -> String {
    let start = line_col(source_text, span.start as usize);
    let end = line_col(source_text, span.end.max(span.start) as usize);
    let line = line_text(source_text, start.line);
    let number = start.line.to_string();
    let pad = " ".repeat(number.len());

    // The caret stays on the first line of a multi-line span, and never runs
    // past the line's last character (a span at the end of input gets one
    // caret just after it).
    let line_chars = line.chars().count();
    let from = start.col - 1;
    let to = if end.line == start.line {
        end.col - 1
    } else {
        line_chars
    };
    let width = to.saturating_sub(from).max(1);
    // Keep tabs so the caret lines up under tab-indented text.
    let indent: String = line
        .chars()
        .take(from)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();

    format!(
        "{source_name}:{}:{}: {level}: {message}\n{pad} |\n{number} | {line}\n{pad} | {indent}{}\n",
        start.line,
        start.col,
        "^".repeat(width)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_span() {
        let src = "a = 1\nx = = 3\n";
        let out = render("f.toml", src, Span::new(10, 11), "invalid string");
        assert_eq!(
            out,
            "f.toml:2:5: error: invalid string\n  |\n2 | x = = 3\n  |     ^\n"
        );
    }

    #[test]
    fn multibyte_before_span_counts_chars() {
        let src = "name = \"é ü\" + 1";
        let start = src.find('+').unwrap();
        let out = render(
            "<query>",
            src,
            Span::new(start, start + 3),
            "unexpected `+`",
        );
        assert!(
            out.starts_with("<query>:1:14: error: unexpected `+`\n"),
            "{out}"
        );
        assert!(out.ends_with("\n  |              ^^^\n"), "{out}");
    }

    #[test]
    fn multiline_span_is_clamped_to_first_line() {
        let src = "query = '''\nabc\ndef'''";
        let out = render("r.toml", src, Span::new(13, 19), "bad");
        assert!(out.starts_with("r.toml:2:2: error: bad\n"), "{out}");
        assert!(out.ends_with("2 | abc\n  |  ^^\n"), "{out}");
    }

    #[test]
    fn empty_span_and_end_of_input() {
        let src = "abc";
        let out = render("<query>", src, Span::new(3, 3), "expected more");
        assert!(out.starts_with("<query>:1:4: error"), "{out}");
        assert!(out.ends_with("1 | abc\n  |    ^\n"), "{out}");
        // span past the end and inside a multi-byte char do not panic
        let out = render("<query>", "é", Span::new(1, 9), "x");
        assert!(out.starts_with("<query>:1:1: error: x"), "{out}");
    }

    #[test]
    fn tabs_are_kept_for_alignment() {
        let src = "\tx = ~";
        let out = render("f", src, Span::new(5, 6), "bad");
        assert!(out.ends_with("1 | \tx = ~\n  | \t    ^\n"), "{out}");
    }

    #[test]
    fn line_numbers_widen_the_gutter() {
        let src = "\n".repeat(11) + "bad";
        let out = render("f", &src, Span::new(11, 14), "m");
        assert_eq!(out, "f:12:1: error: m\n   |\n12 | bad\n   | ^^^\n");
    }
}
