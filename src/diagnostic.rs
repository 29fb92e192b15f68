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
    let (shown, from, to) = window(line, line_chars, from, to);
    let width = to.saturating_sub(from).max(1);
    // Keep tabs so the caret lines up under tab-indented text.
    let indent: String = shown
        .chars()
        .take(from)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();

    format!(
        "{source_name}:{}:{}: {level}: {message}\n{pad} |\n{number} | {shown}\n{pad} | {indent}{}\n",
        start.line,
        start.col,
        "^".repeat(width)
    )
}

/// Longest source line shown whole; longer ones (a 5 MB query on one line)
/// are cut to a window around the span, marked with `…`.
const MAX_SHOWN_CHARS: usize = 160;
const CONTEXT_BEFORE: usize = 60;

/// The part of `line` to print and the span's columns within it.
fn window(line: &str, line_chars: usize, from: usize, to: usize) -> (String, usize, usize) {
    if line_chars <= MAX_SHOWN_CHARS {
        return (line.to_string(), from, to);
    }
    let begin = from.saturating_sub(CONTEXT_BEFORE);
    let end = (begin + MAX_SHOWN_CHARS).min(line_chars);
    let mut shown = String::new();
    let mut offset = 0;
    if begin > 0 {
        shown.push('…');
        offset = 1;
    }
    shown.extend(line.chars().skip(begin).take(end - begin));
    if end < line_chars {
        shown.push('…');
    }
    let from = from - begin + offset;
    let to = to.min(end).saturating_sub(begin) + offset;
    (shown, from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_to_a_window_around_the_span() {
        let src = format!("{}BAD{}", "a".repeat(5000), "b".repeat(5000));
        let out = render("<query>", &src, Span::new(5000, 5003), "bad");
        assert!(out.starts_with("<query>:1:5001: error: bad\n"));
        assert!(out.len() < 600, "rendered {} bytes", out.len());
        let lines: Vec<&str> = out.lines().collect();
        let code = lines[2].trim_start_matches("1 | ");
        let caret = lines[3].trim_start_matches("  | ");
        let col = caret.find('^').unwrap();
        // the carets sit under BAD (the leading `…` is one char, 3 bytes)
        let shown: Vec<char> = code.chars().collect();
        let caret_chars = caret[..col].chars().count();
        assert_eq!(
            shown[caret_chars..caret_chars + 3]
                .iter()
                .collect::<String>(),
            "BAD"
        );
        assert_eq!(caret.matches('^').count(), 3);
        assert!(code.starts_with('…') && code.ends_with('…'));
    }

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
