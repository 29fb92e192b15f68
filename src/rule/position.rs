//! Mapping byte offsets in a decoded string back to the rule file.
//!
//! The EQL parser reports spans into the query *value*; a person needs them
//! in the *file*. The two differ by the opening delimiter, the newline TOML
//! trims after `'''` / `"""`, and by escapes (`\"`, `\u00e9`, in JSON also
//! `\n` and surrogate pairs) and TOML's line-ending backslashes, so the raw
//! token is re-scanned here and every decoded byte is paired with the file
//! offset it came from.

use crate::eql::Span;

/// Decoded-offset -> file-offset table for one TOML or JSON string token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringMap {
    /// `offsets[i]` is the file offset of decoded byte `i`; the last entry
    /// (index = decoded length) is the closing delimiter.
    offsets: Vec<usize>,
    decoded: String,
}

impl StringMap {
    /// Scans `token` (the whole string token as written, delimiters
    /// included) that starts at file offset `token_start`. Returns `None` if
    /// `token` is not a TOML string.
    pub fn scan(token: &str, token_start: usize) -> Option<StringMap> {
        let (delim, multiline) = if token.starts_with("'''") {
            ("'''", true)
        } else if token.starts_with("\"\"\"") {
            ("\"\"\"", true)
        } else if token.starts_with('\'') {
            ("'", false)
        } else if token.starts_with('"') {
            ("\"", false)
        } else {
            return None;
        };
        if token.len() < 2 * delim.len() || !token.ends_with(delim) {
            return None;
        }
        let literal = delim.starts_with('\'');
        let mut start = delim.len();
        let end = token.len() - delim.len();
        if multiline {
            // TOML trims a newline immediately after the opening delimiter.
            if token[start..].starts_with("\r\n") {
                start += 2;
            } else if token[start..].starts_with('\n') {
                start += 1;
            }
        }
        let body = &token[start..end];
        let mut map = StringMap {
            offsets: Vec::with_capacity(body.len() + 1),
            decoded: String::with_capacity(body.len()),
        };
        let base = token_start + start;
        if literal {
            let mut i = 0;
            while i < body.len() {
                i += map.push_char(body, i, base, multiline)?;
            }
        } else {
            map.scan_basic(body, base, multiline)?;
        }
        map.offsets.push(token_start + end);
        Some(map)
    }

    /// Scans a JSON string token (quotes included) that starts at file
    /// offset `token_start`. Returns `None` if `token` is not a valid JSON
    /// string (an unknown escape, a lone surrogate, a control character).
    pub fn scan_json(token: &str, token_start: usize) -> Option<StringMap> {
        let body = token.strip_prefix('"')?.strip_suffix('"')?;
        let base = token_start + 1;
        let mut map = StringMap {
            offsets: Vec::with_capacity(body.len() + 1),
            decoded: String::with_capacity(body.len()),
        };
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < body.len() {
            match bytes[i] {
                b'\\' => {}
                b'"' => return None,
                b if b < 0x20 => return None,
                _ => {
                    i += map.push_char(body, i, base, false)?;
                    continue;
                }
            }
            let at = base + i;
            let simple = match *bytes.get(i + 1)? {
                b'"' => Some('"'),
                b'\\' => Some('\\'),
                b'/' => Some('/'),
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'n' => Some('\n'),
                b'r' => Some('\r'),
                b't' => Some('\t'),
                b'u' => None,
                _ => return None,
            };
            if let Some(c) = simple {
                map.push_decoded(c, at);
                i += 2;
                continue;
            }
            // Exactly four hex digits (`from_str_radix` alone would take a sign).
            let unit = |at: usize| -> Option<u32> {
                let hex = body.get(at + 2..at + 6)?;
                hex.bytes().all(|b| b.is_ascii_hexdigit()).then_some(())?;
                u32::from_str_radix(hex, 16).ok()
            };
            let high = unit(i)?;
            let (c, len) = if (0xD800..0xDC00).contains(&high) {
                // A high surrogate must be followed by `\u` and a low one.
                if body.get(i + 6..i + 8)? != "\\u" {
                    return None;
                }
                let low = unit(i + 6)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                (char::from_u32(c)?, 12)
            } else {
                (char::from_u32(high)?, 6)
            };
            map.push_decoded(c, at);
            i += len;
        }
        map.offsets.push(token_start + token.len() - 1);
        Some(map)
    }

    /// Copies the character at `i` as written and returns its length; the
    /// toml crate decodes a CRLF inside a multi-line string as LF.
    fn push_char(&mut self, body: &str, i: usize, base: usize, multiline: bool) -> Option<usize> {
        if multiline && body[i..].starts_with("\r\n") {
            self.push_decoded('\n', base + i);
            return Some(2);
        }
        let c = body[i..].chars().next()?;
        for k in 0..c.len_utf8() {
            self.offsets.push(base + i + k);
        }
        self.decoded.push(c);
        Some(c.len_utf8())
    }

    fn push_decoded(&mut self, c: char, at: usize) {
        for _ in 0..c.len_utf8() {
            self.offsets.push(at);
        }
        self.decoded.push(c);
    }

    fn scan_basic(&mut self, body: &str, base: usize, multiline: bool) -> Option<()> {
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < body.len() {
            if bytes[i] != b'\\' {
                i += self.push_char(body, i, base, multiline)?;
                continue;
            }
            let at = base + i;
            let esc = *bytes.get(i + 1)?;
            let simple = match esc {
                b'b' => Some('\u{8}'),
                b't' => Some('\t'),
                b'n' => Some('\n'),
                b'f' => Some('\u{c}'),
                b'r' => Some('\r'),
                b'e' => Some('\u{1b}'),
                b'"' => Some('"'),
                b'\\' => Some('\\'),
                _ => None,
            };
            if let Some(c) = simple {
                self.push_decoded(c, at);
                i += 2;
                continue;
            }
            let hex_len = match esc {
                b'x' => 2,
                b'u' => 4,
                b'U' => 8,
                _ => 0,
            };
            if hex_len > 0 {
                let hex = body.get(i + 2..i + 2 + hex_len)?;
                let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                self.push_decoded(c, at);
                i += 2 + hex_len;
                continue;
            }
            // A line-ending backslash: skip it, then all whitespace and
            // newlines up to the next visible character.
            if !multiline {
                return None;
            }
            let rest = &body[i + 1..];
            let ws = rest
                .find(|c: char| !matches!(c, ' ' | '\t' | '\n' | '\r'))
                .unwrap_or(rest.len());
            if !rest[..ws].contains('\n') {
                return None;
            }
            i += 1 + ws;
        }
        Some(())
    }

    /// The string value as TOML decodes it.
    pub fn decoded(&self) -> &str {
        &self.decoded
    }

    /// File offset of decoded byte `offset` (clamped to the closing delimiter).
    pub fn file_offset(&self, offset: usize) -> usize {
        let last = self.offsets.len() - 1;
        self.offsets[offset.min(last)]
    }

    /// A span in the decoded value as a span in the file.
    pub fn file_span(&self, span: Span) -> Span {
        let start = self.file_offset(span.start as usize);
        let end = self.file_offset(span.end as usize).max(start);
        Span::new(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds `prefix + token`, checks the decoded value against the toml
    /// crate's, then maps the decoded offset of `needle` back to the file.
    fn check(token: &str, needle: &str) {
        let file = format!("x = \"é\"\nq = {token}\n");
        let start = file.find(token).unwrap();
        let value: toml::Table = toml::from_str(&file).unwrap();
        let decoded = value["q"].as_str().unwrap();
        let map = StringMap::scan(token, start).expect("a string token");
        assert_eq!(map.decoded(), decoded, "decoding {token}");
        let q = decoded.find(needle).unwrap();
        let span = map.file_span(Span::new(q, q + needle.len()));
        assert_eq!(&file[span.range()], needle, "mapping `{needle}` in {token}");
    }

    #[test]
    fn literal_multiline_trims_first_newline() {
        check("'''\nprocess where name == \"é\" and ~bad'''", "~bad");
        check("'''\r\nprocess where \"ü\" ~x\r\n'''", "~x");
        check("'''no newline é ~x'''", "~x");
    }

    #[test]
    fn literal_single_line() {
        check("'any where a : \"ñ\\\\\" and ~x'", "~x");
    }

    #[test]
    fn basic_single_line_with_escapes() {
        // \" and \u00e9 shift offsets: the decoded text is shorter than the token.
        check(r#""any where a == \"\u00e9\" and ~x""#, "~x");
        check("\"é\\t\\\\ ~x\"", "~x");
    }

    #[test]
    fn basic_multiline_with_line_ending_backslash() {
        check(
            "\"\"\"\nany where a == \\\"é\\\" \\\n      and ~x and b\"\"\"",
            "~x",
        );
        check("\"\"\"\né \\U0001F600 \\\r\n\r\n  ~x\n\"\"\"", "~x");
    }

    #[test]
    fn escaped_char_maps_to_escape_start() {
        let token = r#""a\u00e9b""#;
        let map = StringMap::scan(token, 10).unwrap();
        assert_eq!(map.decoded(), "aéb");
        // 'é' is decoded bytes 1..3, written at token offset 2 ("\u00e9")
        assert_eq!(map.file_span(Span::new(1, 3)), Span::new(12, 18));
        // the end of the value maps to the closing quote
        assert_eq!(map.file_offset(4), 10 + token.len() - 1);
        assert_eq!(map.file_offset(99), 10 + token.len() - 1);
    }

    /// Like `check` for a JSON string token: decoded as serde_json decodes
    /// it, and `needle` mapped back to where it is written.
    fn check_json(token: &str, needle: &str) {
        let file = format!("{{\"x\":\"é\",\"q\":{token}}}");
        let start = file.find(token).unwrap();
        let value: serde_json::Value = serde_json::from_str(&file).unwrap();
        let decoded = value["q"].as_str().unwrap();
        let map = StringMap::scan_json(token, start).expect("a JSON string token");
        assert_eq!(map.decoded(), decoded, "decoding {token}");
        let q = decoded.find(needle).unwrap();
        let span = map.file_span(Span::new(q, q + needle.len()));
        assert_eq!(&file[span.range()], needle, "mapping `{needle}` in {token}");
    }

    #[test]
    fn json_strings_with_escapes() {
        check_json(
            r#""sequence\n [any where a == \"é\"]\n [any where ~x]""#,
            "~x",
        );
        check_json(r#""a\t\/\\ \u00e9 \ud83d\ude00 ~x""#, "~x");
        check_json(r#""é ü ~x""#, "~x");
        // an escaped character maps to its whole escape
        let token = r#""a\u00e9b""#;
        let map = StringMap::scan_json(token, 10).unwrap();
        assert_eq!(map.decoded(), "aéb");
        assert_eq!(map.file_span(Span::new(1, 3)), Span::new(12, 18));
        assert_eq!(map.file_offset(99), 10 + token.len() - 1);
    }

    #[test]
    fn invalid_json_strings_are_rejected() {
        for bad in [
            r#""bad \q""#,
            r#""lone \ud83d""#,
            r#""lone \ude00""#,
            r#""short \u12""#,
            r#""signed \u+123""#,
            "\"tab\tinside\"",
            r#""a"b""#,
            "'single'",
            r#""unterminated"#,
        ] {
            assert_eq!(StringMap::scan_json(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn non_strings_are_rejected() {
        assert_eq!(StringMap::scan("42", 0), None);
        assert_eq!(StringMap::scan("'", 0), None);
        assert_eq!(StringMap::scan(r#""bad \q""#, 0), None);
    }
}
