//! Byte spans into the query text, and turning them into line:column.
//!
//! Every AST node and every diagnostic carries a [`Span`]. Spans are byte
//! offsets into the query source; they compare equal regardless of position
//! only through [`crate::eql::ast`]'s span-insensitive equality helpers, never
//! implicitly.

use serde::{Deserialize, Serialize};

/// A half-open byte range `start..end` into the query text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span that covers both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// A 1-based line and column (column counted in characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

/// Line and column of byte `offset` in `src`. Offsets past the end (or inside
/// a multi-byte character) are clamped to the nearest character boundary.
pub fn line_col(src: &str, offset: usize) -> LineCol {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset].chars().count() + 1;
    LineCol { line, col }
}

/// The full text of the (1-based) line `line` of `src`, without its newline.
pub fn line_text(src: &str, line: usize) -> &str {
    src.split('\n')
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim_end_matches('\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_chars() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_col(src, 0), LineCol { line: 1, col: 1 });
        assert_eq!(line_col(src, 3), LineCol { line: 2, col: 1 });
        // 'é' is two bytes; offset 7 is after it
        assert_eq!(line_col(src, 7), LineCol { line: 2, col: 4 });
        assert_eq!(line_col(src, 99), LineCol { line: 3, col: 2 });
        assert_eq!(line_text(src, 2), "cdé");
    }
}
