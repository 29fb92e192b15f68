//! The character level of KQL: whitespace, the `or`/`and`/`not` keywords,
//! quoted and unquoted literals with their escapes and wildcards, range
//! operators.
//!
//! Kibana's grammar (`kuery/grammar/grammar.peggy`) is scannerless: an
//! unquoted value may hold spaces (`foo bar` is one value) and ends only at
//! a special character or a keyword between spaces, so there is no token
//! stream. This file holds those terminal rules and the machinery the
//! parser shares with them: the position, packrat memoization per (rule,
//! position), and the farthest-failure bookkeeping that yields the
//! expectations of a syntax error. Kibana generates its parser with
//! peggy's `cache: true`; a rule answered from the cache records no
//! expectation again, and detectd memoizes the same way so its errors list
//! exactly what Kibana's list.

use std::collections::HashMap;

use super::ast::{LitValue, Literal, Node, Part, RangeOp};
use super::error::{Expected, ParseError};
use crate::eql::Span;

/// Grammar rules, as memo keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Rule {
    OrQuery,
    AndQuery,
    NotQuery,
    SubQuery,
    NestedQuery,
    Expression,
    Field,
    FieldRange,
    FieldValue,
    ValueExpression,
    ListOfValues,
    OrList,
    AndList,
    NotList,
    Value,
    Or,
    And,
    Not,
    Literal,
    QuotedString,
    QuotedChar,
    UnquotedLiteral,
    UnquotedChar,
    Wildcard,
    OptionalSpace,
    EscapedWhitespace,
    EscapedSpecial,
    EscapedKeyword,
    Keyword,
    SpecialChar,
    EscapedUnicode,
    UnicodeSequence,
    HexDigit,
    RangeOperator,
    Space,
}

/// A value list before its field is known (`field: (a or not b)`).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum VTree {
    Or(Vec<VTree>, Span),
    And(Vec<VTree>, Span),
    Not(Box<VTree>, Span),
    Value(Literal),
}

/// One character of an unquoted literal: text, or an unescaped `*`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Piece {
    Char(char),
    Star,
}

/// What a rule yields.
#[derive(Clone, Debug)]
pub(super) enum Val {
    Unit,
    Char(char),
    Pieces(Vec<Piece>),
    Lit(Literal),
    Node(Node),
    Values(VTree),
    Op(RangeOp),
}

/// Deepest nesting of parentheses and braces accepted.
pub(super) const MAX_DEPTH: usize = 100;

pub(super) struct Parser {
    pub chars: Vec<char>,
    offsets: Vec<usize>,
    pub pos: usize,
    silent: u32,
    max_fail: usize,
    expected: Vec<Expected>,
    memo: HashMap<(Rule, usize), (Option<Val>, usize)>,
    pub depth: usize,
    pub abort: Option<ParseError>,
    pub allow_leading_wildcards: bool,
}

impl Parser {
    pub fn new(src: &str) -> Parser {
        let chars: Vec<char> = src.chars().collect();
        let mut offsets: Vec<usize> = src.char_indices().map(|(i, _)| i).collect();
        offsets.push(src.len());
        Parser {
            chars,
            offsets,
            pos: 0,
            silent: 0,
            max_fail: 0,
            expected: Vec::new(),
            memo: HashMap::new(),
            depth: 0,
            abort: None,
            allow_leading_wildcards: true,
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Byte span of characters `from..to`.
    pub fn span(&self, from: usize, to: usize) -> Span {
        let at = |i: usize| self.offsets[i.min(self.offsets.len() - 1)];
        Span::new(at(from), at(to))
    }

    pub fn fail(&mut self, e: Expected) {
        if self.silent > 0 || self.pos < self.max_fail {
            return;
        }
        if self.pos > self.max_fail {
            self.max_fail = self.pos;
            self.expected.clear();
        }
        self.expected.push(e);
    }

    /// The syntax error at the farthest failure.
    pub fn syntax_error(&mut self) -> ParseError {
        if let Some(e) = self.abort.take() {
            return e;
        }
        let at = self.max_fail;
        let found = self.chars.get(at).copied();
        let end = if found.is_some() { at + 1 } else { at };
        let mut expected = std::mem::take(&mut self.expected);
        expected.sort();
        expected.dedup();
        ParseError::Syntax {
            expected,
            found,
            span: self.span(at, end),
        }
    }

    /// Runs a rule at the current position through the memo.
    pub fn cached(
        &mut self,
        rule: Rule,
        body: impl FnOnce(&mut Self) -> Option<Val>,
    ) -> Option<Val> {
        if self.abort.is_some() {
            return None;
        }
        let start = self.pos;
        if let Some((v, end)) = self.memo.get(&(rule, start)) {
            self.pos = *end;
            return v.clone();
        }
        let v = body(self);
        if v.is_none() {
            self.pos = start;
        }
        self.memo.insert((rule, start), (v.clone(), self.pos));
        v
    }

    /// A rule with a display name: its inner failures are silent and a
    /// failure records the name.
    pub fn named(
        &mut self,
        rule: Rule,
        name: &'static str,
        body: impl FnOnce(&mut Self) -> Option<Val>,
    ) -> Option<Val> {
        self.cached(rule, |p| {
            p.silent += 1;
            let v = body(p);
            p.silent -= 1;
            if v.is_none() {
                p.fail(Expected::Rule(name));
            }
            v
        })
    }

    /// `!X`: true when `x` fails here; consumes nothing, records nothing.
    pub fn not_ahead(&mut self, x: impl FnOnce(&mut Self) -> Option<Val>) -> bool {
        let start = self.pos;
        self.silent += 1;
        let matched = x(self).is_some();
        self.silent -= 1;
        self.pos = start;
        !matched
    }

    /// A literal string, exactly.
    pub fn lit(&mut self, s: &'static str) -> bool {
        let n = s.chars().count();
        if self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            self.fail(Expected::Literal(s));
            false
        }
    }

    /// A literal string, ASCII case-insensitively; the text as written.
    pub fn lit_ci(&mut self, s: &'static str) -> Option<String> {
        let n = s.chars().count();
        let ok = self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .zip(s.chars())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b));
        if ok {
            let text: String = self.chars[self.pos..self.pos + n].iter().collect();
            self.pos += n;
            Some(text)
        } else {
            self.fail(Expected::Literal(s));
            None
        }
    }

    fn class(&mut self, desc: &'static str, pred: impl Fn(char) -> bool) -> Option<char> {
        match self.chars.get(self.pos) {
            Some(&c) if pred(c) => {
                self.pos += 1;
                Some(c)
            }
            _ => {
                self.fail(Expected::Class(desc));
                None
            }
        }
    }

    // ---- terminal rules ----

    /// `Space "whitespace" = [ \t\r\n\u00A0]`
    pub fn space(&mut self) -> Option<Val> {
        self.named(Rule::Space, "whitespace", |p| {
            p.class("[ \\t\\r\\n\\u00A0]", is_space).map(Val::Char)
        })
    }

    /// `Space*`
    pub fn spaces(&mut self) {
        while self.space().is_some() {}
    }

    /// `Space+`
    fn spaces1(&mut self) -> bool {
        if self.space().is_none() {
            return false;
        }
        self.spaces();
        true
    }

    /// `OptionalSpace` (the cursor alternative never applies).
    pub fn optional_space(&mut self) -> Option<Val> {
        self.cached(Rule::OptionalSpace, |p| {
            p.spaces();
            Some(Val::Unit)
        })
    }

    fn keyword_op(&mut self, rule: Rule, name: &'static str, word: &'static str) -> Option<Val> {
        self.named(rule, name, |p| {
            (p.spaces1() && p.lit_ci(word).is_some() && p.spaces1()).then_some(Val::Unit)
        })
    }

    /// `Or "OR" = Space+ 'or'i Space+`
    pub fn or_op(&mut self) -> Option<Val> {
        self.keyword_op(Rule::Or, "OR", "or")
    }

    /// `And "AND" = Space+ 'and'i Space+`
    pub fn and_op(&mut self) -> Option<Val> {
        self.keyword_op(Rule::And, "AND", "and")
    }

    /// `Not "NOT" = 'not'i Space+`
    pub fn not_op(&mut self) -> Option<Val> {
        self.named(Rule::Not, "NOT", |p| {
            (p.lit_ci("not").is_some() && p.spaces1()).then_some(Val::Unit)
        })
    }

    /// `Keyword = Space 'or'i Space / Space 'and'i Space / 'not'i Space`
    fn keyword(&mut self) -> Option<Val> {
        self.cached(Rule::Keyword, |p| {
            let start = p.pos;
            for word in ["or", "and"] {
                if p.space().is_some() && p.lit_ci(word).is_some() && p.space().is_some() {
                    return Some(Val::Unit);
                }
                p.pos = start;
            }
            if p.lit_ci("not").is_some() && p.space().is_some() {
                return Some(Val::Unit);
            }
            p.pos = start;
            None
        })
    }

    /// `SpecialCharacter = [\\():<>"*{}]`
    fn special_char(&mut self) -> Option<Val> {
        self.cached(Rule::SpecialChar, |p| {
            p.class("[\\\\():<>\"*{}]", is_special).map(Val::Char)
        })
    }

    /// `EscapedWhitespace = '\\t' / '\\r' / '\\n'`
    fn escaped_whitespace(&mut self) -> Option<Val> {
        self.cached(Rule::EscapedWhitespace, |p| {
            for (text, c) in [("\\t", '\t'), ("\\r", '\r'), ("\\n", '\n')] {
                if p.lit(text) {
                    return Some(Val::Char(c));
                }
            }
            None
        })
    }

    /// `EscapedSpecialCharacter = '\\' SpecialCharacter`
    fn escaped_special(&mut self) -> Option<Val> {
        self.cached(Rule::EscapedSpecial, |p| {
            if p.lit("\\") {
                p.special_char()
            } else {
                None
            }
        })
    }

    /// `EscapedUnicodeSequence = '\\' UnicodeSequence`
    fn escaped_unicode(&mut self) -> Option<Val> {
        self.cached(Rule::EscapedUnicode, |p| {
            if p.lit("\\") {
                p.unicode_sequence()
            } else {
                None
            }
        })
    }

    /// `UnicodeSequence = "u" HexDigit{4}`
    fn unicode_sequence(&mut self) -> Option<Val> {
        self.cached(Rule::UnicodeSequence, |p| {
            if !p.lit("u") {
                return None;
            }
            let mut code = 0u32;
            for _ in 0..4 {
                let Some(Val::Char(h)) = p.hex_digit() else {
                    return None;
                };
                code = code * 16 + h.to_digit(16).unwrap_or(0);
            }
            // A lone UTF-16 surrogate cannot be a Rust char.
            Some(Val::Char(char::from_u32(code).unwrap_or('\u{FFFD}')))
        })
    }

    fn hex_digit(&mut self) -> Option<Val> {
        self.cached(Rule::HexDigit, |p| {
            p.class("[0-9a-f]i", |c| c.is_ascii_hexdigit())
                .map(Val::Char)
        })
    }

    /// `EscapedKeyword = '\\' ('or'i / 'and'i / 'not'i)`
    fn escaped_keyword(&mut self) -> Option<Val> {
        self.cached(Rule::EscapedKeyword, |p| {
            if !p.lit("\\") {
                return None;
            }
            for word in ["or", "and", "not"] {
                if let Some(text) = p.lit_ci(word) {
                    return Some(Val::Pieces(text.chars().map(Piece::Char).collect()));
                }
            }
            None
        })
    }

    /// `Wildcard = '*'`
    fn wildcard(&mut self) -> Option<Val> {
        self.cached(Rule::Wildcard, |p| {
            p.lit("*").then(|| Val::Pieces(vec![Piece::Star]))
        })
    }

    /// `UnquotedCharacter`: an escape, a wildcard, or any character that is
    /// neither special nor the start of a keyword.
    fn unquoted_char(&mut self) -> Option<Val> {
        self.cached(Rule::UnquotedChar, |p| {
            if let Some(Val::Char(c)) = p.escaped_whitespace() {
                return Some(Val::Pieces(vec![Piece::Char(c)]));
            }
            if let Some(Val::Char(c)) = p.escaped_special() {
                return Some(Val::Pieces(vec![Piece::Char(c)]));
            }
            if let Some(Val::Char(c)) = p.escaped_unicode() {
                return Some(Val::Pieces(vec![Piece::Char(c)]));
            }
            if let Some(v) = p.escaped_keyword() {
                return Some(v);
            }
            if let Some(v) = p.wildcard() {
                return Some(v);
            }
            if p.not_ahead(|p| p.special_char()) && p.not_ahead(|p| p.keyword()) {
                match p.chars.get(p.pos) {
                    Some(&c) => {
                        p.pos += 1;
                        return Some(Val::Pieces(vec![Piece::Char(c)]));
                    }
                    None => p.fail(Expected::AnyChar),
                }
            }
            None
        })
    }

    /// `UnquotedLiteral = UnquotedCharacter+`, trimmed; `null`, `true`,
    /// `false` become those values, a `*` makes a wildcard.
    pub fn unquoted_literal(&mut self) -> Option<Val> {
        self.cached(Rule::UnquotedLiteral, |p| {
            let start = p.pos;
            let mut pieces = Vec::new();
            while let Some(Val::Pieces(ps)) = p.unquoted_char() {
                pieces.extend(ps);
            }
            if pieces.is_empty() {
                return None;
            }
            let mut lit = build_unquoted(&pieces);
            lit.span = p.span(start, p.pos);
            Some(Val::Lit(lit))
        })
    }

    /// `QuotedCharacter`: `\t`, `\r`, `\n`, `\uXXXX`, `\\`, `\"`, or any
    /// character but `"`.
    fn quoted_char(&mut self) -> Option<Val> {
        self.cached(Rule::QuotedChar, |p| {
            if let Some(v) = p.escaped_whitespace() {
                return Some(v);
            }
            if let Some(v) = p.escaped_unicode() {
                return Some(v);
            }
            let start = p.pos;
            if p.lit("\\") {
                if let Some(c) = p.class("[\\\\\"]", |c| c == '\\' || c == '"') {
                    return Some(Val::Char(c));
                }
                p.pos = start;
            }
            p.class("[^\"]", |c| c != '"').map(Val::Char)
        })
    }

    /// `QuotedString = '"' QuotedCharacter* '"'`
    pub fn quoted_string(&mut self) -> Option<Val> {
        self.cached(Rule::QuotedString, |p| {
            let start = p.pos;
            if !p.lit("\"") {
                return None;
            }
            let mut text = String::new();
            while let Some(Val::Char(c)) = p.quoted_char() {
                text.push(c);
            }
            if !p.lit("\"") {
                return None;
            }
            Some(Val::Lit(Literal {
                value: LitValue::Text(text),
                quoted: true,
                span: p.span(start, p.pos),
            }))
        })
    }

    /// `Literal "literal" = QuotedString / UnquotedLiteral`
    pub fn literal(&mut self) -> Option<Val> {
        self.named(Rule::Literal, "literal", |p| {
            p.quoted_string().or_else(|| p.unquoted_literal())
        })
    }

    /// `RangeOperator = '<=' / '>=' / '<' / '>'`
    pub fn range_operator(&mut self) -> Option<Val> {
        self.cached(Rule::RangeOperator, |p| {
            for (text, op) in [
                ("<=", RangeOp::Lte),
                (">=", RangeOp::Gte),
                ("<", RangeOp::Lt),
                (">", RangeOp::Gt),
            ] {
                if p.lit(text) {
                    return Some(Val::Op(op));
                }
            }
            None
        })
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{00A0}')
}

fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'
    )
}

/// JavaScript's `String.prototype.trim` set.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// The literal an unquoted run of characters makes (Kibana trims it first).
pub(super) fn build_unquoted(pieces: &[Piece]) -> Literal {
    let ws = |p: &Piece| matches!(p, Piece::Char(c) if is_js_whitespace(*c));
    let start = pieces.iter().position(|p| !ws(p)).unwrap_or(pieces.len());
    let end = pieces.iter().rposition(|p| !ws(p)).map_or(start, |i| i + 1);
    let trimmed = &pieces[start..end.max(start)];
    if !trimmed.contains(&Piece::Star) {
        let text: String = trimmed
            .iter()
            .filter_map(|p| match p {
                Piece::Char(c) => Some(*c),
                Piece::Star => None,
            })
            .collect();
        let value = match text.as_str() {
            "null" => LitValue::Null,
            "true" => LitValue::Bool(true),
            "false" => LitValue::Bool(false),
            _ => LitValue::Text(text),
        };
        return Literal::new(value, false);
    }
    let mut parts: Vec<Part> = Vec::new();
    for p in trimmed {
        match p {
            Piece::Star => parts.push(Part::Star),
            Piece::Char(c) => match parts.last_mut() {
                Some(Part::Text(t)) => t.push(*c),
                _ => parts.push(Part::Text(c.to_string())),
            },
        }
    }
    Literal::new(LitValue::Wildcard(parts), false)
}
