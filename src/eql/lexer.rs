//! The EQL lexer: query text -> tokens with byte spans.
//!
//! It follows the lexer rules of Elasticsearch's `EqlBase.g4`: `//` and
//! (nestable) `/* */` comments, whitespace limited to space, tab, CR and LF,
//! ASCII identifiers, backquoted identifiers with doubled backquotes,
//! double-quoted strings with the escapes `\b \t \n \f \r \" \' \\` and
//! `\u{X..}` (2 to 8 hex digits), and `"""raw"""` strings on one line.
//! Single-quoted and `?"..."` strings lex, as in Elasticsearch, only to be
//! rejected with a hint. The lexer knows nothing of the grammar.

use super::error::{EqlError, ErrorKind};
use super::span::Span;
use super::token::{is_ident_continue, is_ident_start, keyword, tilde_keyword, Token, TokenKind};

/// Splits `src` into tokens, ending with [`TokenKind::Eof`]. The first
/// character that cannot start or continue a token is an error.
pub fn lex(src: &str) -> Result<Vec<Token>, EqlError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let eof = token.kind == TokenKind::Eof;
        tokens.push(token);
        if eof {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn lex_error(start: usize, end: usize, message: impl Into<String>) -> EqlError {
    EqlError::new(ErrorKind::Lex, Span::new(start, end), message)
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn token(&self, kind: TokenKind, start: usize) -> Token {
        Token {
            kind,
            span: Span::new(start, self.pos),
        }
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), EqlError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.pos += 1;
                }
                Some('/') if self.rest().starts_with("//") => {
                    let len = self.rest().find('\n').unwrap_or(self.rest().len());
                    self.pos += len;
                }
                Some('/') if self.rest().starts_with("/*") => self.skip_block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// `/* ... */`, nested like Elasticsearch's `BRACKETED_COMMENT`.
    fn skip_block_comment(&mut self) -> Result<(), EqlError> {
        let start = self.pos;
        let mut depth = 0usize;
        while self.pos < self.src.len() {
            let rest = self.rest();
            if rest.starts_with("/*") {
                depth += 1;
                self.pos += 2;
            } else if rest.starts_with("*/") {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    return Ok(());
                }
            } else {
                self.bump();
            }
        }
        Err(lex_error(
            start,
            start + 2,
            "unterminated comment, expected [*/] before end of query",
        ))
    }

    fn next_token(&mut self) -> Result<Token, EqlError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(self.token(TokenKind::Eof, start));
        };
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            '[' => TokenKind::LBracket,
            ']' => TokenKind::RBracket,
            ',' => TokenKind::Comma,
            '|' => TokenKind::Pipe,
            ':' => TokenKind::Colon,
            '+' => TokenKind::Plus,
            '-' => TokenKind::Minus,
            '*' => TokenKind::Star,
            '/' => TokenKind::Slash,
            '%' => TokenKind::Percent,
            '=' => self.either('=', TokenKind::EqEq, TokenKind::Assign),
            '<' => self.either('=', TokenKind::LtEq, TokenKind::Lt),
            '>' => self.either('=', TokenKind::GtEq, TokenKind::Gt),
            '!' => match self.peek() {
                Some('=') => {
                    self.pos += 1;
                    TokenKind::NotEq
                }
                Some('[') => {
                    self.pos += 1;
                    TokenKind::MissingOpen
                }
                _ => {
                    return Err(lex_error(
                        start,
                        self.pos,
                        "unexpected character [!], expected [!=] or [![",
                    ))
                }
            },
            '?' => match self.peek() {
                Some(q @ ('"' | '\'')) => {
                    self.skip_old_string(q);
                    return Err(lex_error(
                        start,
                        self.pos,
                        format!(
                            "use triple double quotes [\"\"\"] to define unescaped string literals, not [?{q}]"
                        ),
                    ));
                }
                _ => TokenKind::Question,
            },
            '\'' => {
                self.pos = start;
                self.skip_old_string('\'');
                return Err(lex_error(
                    start,
                    self.pos,
                    "use double quotes [\"] to define string literals, not single quotes [']",
                ));
            }
            '"' => {
                self.pos = start;
                return self.string();
            }
            '`' => return self.quoted_identifier(start),
            '.' if self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                self.pos = start;
                return self.number();
            }
            '.' => TokenKind::Dot,
            c if c.is_ascii_digit() => {
                self.pos = start;
                return self.number();
            }
            c if is_ident_start(c) => return Ok(self.identifier(start)),
            c => {
                let hint = if c.is_alphabetic() {
                    "; names with characters other than ASCII letters, digits and [_] must be quoted with backquotes"
                } else {
                    ""
                };
                return Err(lex_error(
                    start,
                    self.pos,
                    format!("unexpected character [{c}]{hint}"),
                ));
            }
        };
        Ok(self.token(kind, start))
    }

    fn either(&mut self, next: char, two: TokenKind, one: TokenKind) -> TokenKind {
        if self.peek() == Some(next) {
            self.pos += next.len_utf8();
            two
        } else {
            one
        }
    }

    /// Skips over an old-style `'...'` or `?"..."` string (the quote char
    /// `q` is next) so the error span covers it; stops at end of line.
    fn skip_old_string(&mut self, q: char) {
        if self.peek() == Some('?') {
            self.pos += 1;
        }
        self.pos += q.len_utf8();
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                return;
            }
            self.pos += c.len_utf8();
            if c == '\\' {
                if let Some(escaped) = self.peek().filter(|c| *c != '\n' && *c != '\r') {
                    self.pos += escaped.len_utf8();
                }
            } else if c == q {
                return;
            }
        }
    }

    fn identifier(&mut self, start: usize) -> Token {
        while self.peek().is_some_and(is_ident_continue) {
            self.pos += 1;
        }
        let word = &self.src[start..self.pos];
        if self.peek() == Some('~') {
            if let Some(kind) = tilde_keyword(word) {
                self.pos += 1;
                return self.token(kind, start);
            }
            // Elasticsearch's TILDE_IDENTIFIER starts with a letter.
            if word.starts_with(|c: char| c.is_ascii_alphabetic()) {
                self.pos += 1;
                return self.token(TokenKind::TildeIdent(word.to_string()), start);
            }
        }
        let kind = keyword(word).unwrap_or_else(|| TokenKind::Ident(word.to_string()));
        self.token(kind, start)
    }

    /// `` `...` `` with ``` `` ``` standing for one backquote.
    fn quoted_identifier(&mut self, start: usize) -> Result<Token, EqlError> {
        let mut name = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(lex_error(
                        start,
                        self.pos,
                        "unterminated quoted identifier, expected a closing [`]",
                    ))
                }
                Some('`') if self.peek() == Some('`') => {
                    self.pos += 1;
                    name.push('`');
                }
                Some('`') => return Ok(self.token(TokenKind::QuotedIdent(name), start)),
                Some(c) => name.push(c),
            }
        }
    }

    /// INTEGER_VALUE or DECIMAL_VALUE. An exponent needs at least one digit,
    /// so `5e` is the integer `5` followed by the identifier `e` (as in `5s`).
    fn number(&mut self) -> Result<Token, EqlError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let digits = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let mut end = digits(start);
        let mut decimal = false;
        if end < bytes.len() && bytes[end] == b'.' {
            decimal = true;
            end = digits(end + 1);
        }
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut exp = end + 1;
            if exp < bytes.len() && (bytes[exp] == b'+' || bytes[exp] == b'-') {
                exp += 1;
            }
            if exp < bytes.len() && bytes[exp].is_ascii_digit() {
                decimal = true;
                end = digits(exp);
            }
        }
        self.pos = end;
        let kind = if decimal {
            TokenKind::Decimal
        } else {
            TokenKind::Integer
        };
        Ok(self.token(kind, start))
    }

    /// A `"..."` string with escapes, or a `"""..."""` raw string.
    fn string(&mut self) -> Result<Token, EqlError> {
        let start = self.pos;
        if self.rest().starts_with("\"\"\"") {
            if let Some(token) = self.raw_string(start) {
                return Ok(token);
            }
            let line_len = self.rest().find(['\r', '\n']).unwrap_or(self.rest().len());
            return Err(lex_error(
                start,
                start + line_len,
                "unterminated raw string, expected a closing [\"\"\"] on the same line",
            ));
        }
        self.pos += 1;
        let mut value = String::new();
        loop {
            let char_start = self.pos;
            match self.bump() {
                None | Some('\n' | '\r') => {
                    return Err(lex_error(
                        start,
                        char_start,
                        "unterminated string, expected a closing [\"] on the same line",
                    ))
                }
                Some('"') => return Ok(self.token(TokenKind::String(value), start)),
                Some('\\') => self.escape(char_start, &mut value)?,
                Some(c) => value.push(c),
            }
        }
    }

    /// `"""` raw text `"""`, up to two extra closing quotes belonging to the
    /// text (Elasticsearch: `'"""' (~[\r\n])*? '"""' '"'? '"'?`). None when
    /// there is no closing `"""` on the line.
    fn raw_string(&mut self, start: usize) -> Option<Token> {
        let body_start = start + 3;
        // Find the closing quotes first and only then look for a line break
        // before them: scanning each raw string's whole line would make a
        // long line of raw strings quadratic.
        let body = &self.src[body_start..];
        let close = body.find("\"\"\"")?;
        if body[..close].contains(['\r', '\n']) {
            return None;
        }
        let run = body[close..]
            .bytes()
            .take_while(|b| *b == b'"')
            .count()
            .min(5);
        let end = body_start + close + run;
        let value = self.src[body_start..end - 3].to_string();
        self.pos = end;
        Some(self.token(TokenKind::String(value), start))
    }

    /// One escape sequence; the backslash at `esc_start` is consumed.
    fn escape(&mut self, esc_start: usize, value: &mut String) -> Result<(), EqlError> {
        let c = match self.peek() {
            Some(c) if c != '\n' && c != '\r' => c,
            _ => {
                return Err(lex_error(
                    esc_start,
                    self.pos,
                    "unterminated string, expected a closing [\"] on the same line",
                ))
            }
        };
        self.pos += c.len_utf8();
        let decoded = match c {
            't' => '\t',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            '"' => '"',
            '\'' => '\'',
            '\\' => '\\',
            'u' => return self.unicode_escape(esc_start, value),
            other => {
                return Err(lex_error(
                    esc_start,
                    self.pos,
                    format!(
                        "unknown escape sequence [\\{other}], expected one of [\\b \\t \\n \\f \\r \\\" \\' \\\\ \\u{{...}}]"
                    ),
                ))
            }
        };
        value.push(decoded);
        Ok(())
    }

    /// `\u{XXXX}`: 2 to 8 hex digits naming a Unicode scalar value.
    fn unicode_escape(&mut self, esc_start: usize, value: &mut String) -> Result<(), EqlError> {
        let bad = |lexer: &Self| {
            lex_error(
                esc_start,
                lexer.pos,
                "invalid unicode escape, expected [\\u{...}] with 2 to 8 hex digits",
            )
        };
        if self.peek() != Some('{') {
            return Err(bad(self));
        }
        self.pos += 1;
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let digits = &self.src[digits_start..self.pos];
        if self.peek() != Some('}') {
            return Err(bad(self));
        }
        self.pos += 1;
        if !(2..=8).contains(&digits.len()) {
            return Err(lex_error(
                esc_start,
                self.pos,
                format!(
                    "unicode escape must use 2 to 8 hex digits, found [{}] in [\\u{{{digits}}}]",
                    digits.len()
                ),
            ));
        }
        let code = u32::from_str_radix(digits, 16).map_err(|_| bad(self))?;
        if (0xD800..=0xDFFF).contains(&code) {
            return Err(lex_error(
                esc_start,
                self.pos,
                format!("invalid unicode character code [{digits}], it is a surrogate code"),
            ));
        }
        let Some(decoded) = char::from_u32(code) else {
            return Err(lex_error(
                esc_start,
                self.pos,
                format!("invalid unicode character code [{digits}]"),
            ));
        };
        value.push(decoded);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn err(src: &str) -> EqlError {
        lex(src).unwrap_err()
    }

    fn s(v: &str) -> TokenKind {
        TokenKind::String(v.to_string())
    }

    fn id(v: &str) -> TokenKind {
        TokenKind::Ident(v.to_string())
    }

    use TokenKind::*;

    #[test]
    fn operators_and_punctuation() {
        assert_eq!(
            kinds("== != < <= > >= = : + - * / % . , [ ] ( ) | ? !["),
            vec![
                EqEq,
                NotEq,
                Lt,
                LtEq,
                Gt,
                GtEq,
                Assign,
                Colon,
                Plus,
                Minus,
                Star,
                Slash,
                Percent,
                Dot,
                Comma,
                LBracket,
                RBracket,
                LParen,
                RParen,
                Pipe,
                Question,
                MissingOpen,
                Eof
            ]
        );
    }

    #[test]
    fn keywords_identifiers_and_tilde_names() {
        assert_eq!(
            kinds("process where AND in~ like~ regex~ startsWith~( @timestamp _id"),
            vec![
                id("process"),
                Where,
                id("AND"),
                InTilde,
                LikeTilde,
                RegexTilde,
                TildeIdent("startsWith".into()),
                LParen,
                id("@timestamp"),
                id("_id"),
                Eof
            ]
        );
        // `_x~` cannot be a function name (Elasticsearch: letter first)
        assert_eq!(err("_x~").span, Span::new(2, 3));
    }

    #[test]
    fn spans_are_byte_ranges() {
        let tokens = lex("a  ==\n \"é\"").unwrap();
        let spans: Vec<_> = tokens.iter().map(|t| t.span).collect();
        assert_eq!(
            spans,
            vec![
                Span::new(0, 1),
                Span::new(3, 5),
                Span::new(7, 11),
                Span::new(11, 11)
            ]
        );
    }

    #[test]
    fn numbers() {
        let src = "1 1.5 .5 1. 1e5 1E-2 2.5e+3 5s 5e 10ms";
        let tokens = lex(src).unwrap();
        let texts: Vec<_> = tokens
            .iter()
            .map(|t| (t.kind.clone(), &src[t.span.range()]))
            .collect();
        assert_eq!(
            texts,
            vec![
                (Integer, "1"),
                (Decimal, "1.5"),
                (Decimal, ".5"),
                (Decimal, "1."),
                (Decimal, "1e5"),
                (Decimal, "1E-2"),
                (Decimal, "2.5e+3"),
                (Integer, "5"),
                (id("s"), "s"),
                (Integer, "5"),
                (id("e"), "e"),
                (Integer, "10"),
                (id("ms"), "ms"),
                (Eof, ""),
            ]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#""a\"b\\c\n\r\t\'\b\f" "" "é€""#),
            vec![s("a\"b\\c\n\r\t'\u{8}\u{c}"), s(""), s("é€"), Eof]
        );
        assert_eq!(
            kinds(r#""\u{41}\u{20AC}\u{0001F600}""#),
            vec![s("A€😀"), Eof]
        );
    }

    #[test]
    fn raw_strings_are_verbatim() {
        assert_eq!(
            kinds(r#""""C:\Windows\*.exe""" """a"b""" """x"""" "#),
            vec![s(r"C:\Windows\*.exe"), s("a\"b"), s("x\""), Eof]
        );
        assert_eq!(kinds(r#""""""""#), vec![s(""), Eof]);
        let e = err("x == \"\"\"abc\n\"\"\"");
        assert_eq!(e.kind, ErrorKind::Lex);
        assert_eq!(e.span, Span::new(5, 11));
        assert!(
            e.message.contains("unterminated raw string"),
            "{}",
            e.message
        );
    }

    #[test]
    fn string_errors() {
        let e = err(r#"a == "x\w""#);
        assert_eq!(e.kind, ErrorKind::Lex);
        assert_eq!(e.span, Span::new(7, 9));
        assert!(
            e.message.starts_with("unknown escape sequence [\\w]"),
            "{}",
            e.message
        );

        let e = err("a == \"abc");
        assert_eq!(e.span, Span::new(5, 9));
        assert!(
            e.message.starts_with("unterminated string"),
            "{}",
            e.message
        );

        let e = err("a == \"ab\ncd\"");
        assert!(
            e.message.starts_with("unterminated string"),
            "{}",
            e.message
        );

        let e = err(r#""\u{1}""#);
        assert_eq!(
            e.message,
            "unicode escape must use 2 to 8 hex digits, found [1] in [\\u{1}]"
        );
        assert!(err(r#""\u{123456789}""#).message.contains("found [9]"));
        assert!(err(r#""\u{D800}""#).message.contains("surrogate"));
        assert!(err(r#""\u{110000}""#)
            .message
            .starts_with("invalid unicode character code"));
        assert!(err(r#""\u0041""#)
            .message
            .starts_with("invalid unicode escape"));
        assert!(err(r#""\u{4x}""#)
            .message
            .starts_with("invalid unicode escape"));
    }

    #[test]
    fn old_style_strings_are_rejected_with_a_hint() {
        let e = err("name == 'abc' and x");
        assert_eq!(e.kind, ErrorKind::Lex);
        assert_eq!(e.span, Span::new(8, 13));
        assert_eq!(
            e.message,
            "use double quotes [\"] to define string literals, not single quotes [']"
        );
        let e = err(r#"name == ?"abc""#);
        assert_eq!(e.span, Span::new(8, 14));
        assert!(e.message.contains("not [?\"]"), "{}", e.message);
        assert!(err("name == ?'abc'").message.contains("not [?']"));
    }

    #[test]
    fn quoted_identifiers() {
        assert_eq!(
            kinds("`a-b` `x``y` `` `where`"),
            vec![
                QuotedIdent("a-b".into()),
                QuotedIdent("x`y".into()),
                QuotedIdent("".into()),
                QuotedIdent("where".into()),
                Eof
            ]
        );
        assert!(err("`abc")
            .message
            .starts_with("unterminated quoted identifier"));
    }

    #[test]
    fn comments_and_whitespace() {
        assert_eq!(
            kinds("a // c1 \n /* c2 /* nested */ still */ b\t\r\n//end"),
            vec![id("a"), id("b"), Eof]
        );
        assert_eq!(
            kinds("\"http://x\" /**/ c"),
            vec![s("http://x"), id("c"), Eof]
        );
        let e = err("a /* open /* inner */");
        assert_eq!(e.span, Span::new(2, 4));
        assert!(e.message.starts_with("unterminated comment"));
    }

    #[test]
    fn unexpected_characters() {
        let e = err("a ~ b");
        assert_eq!(e.span, Span::new(2, 3));
        assert_eq!(e.message, "unexpected character [~]");
        let e = err("proc\u{e9}s");
        assert_eq!(e.span, Span::new(4, 6));
        assert!(e.message.contains("backquotes"), "{}", e.message);
        assert!(err("a ! b").message.contains("[!]"));
        // non-breaking space is not EQL whitespace
        assert!(err("a\u{a0}b").message.starts_with("unexpected character"));
    }
}
