//! EQL tokens: what the lexer produces and the parser consumes.
//!
//! The token set follows Elasticsearch's ANTLR grammar (`EqlBase.g4`):
//! keywords are lower-case only (`AND` is an identifier, as in Elasticsearch),
//! `in~`, `like~` and `regex~` are single tokens, and `name~` (a letter-led
//! identifier glued to `~`) is the name of a case-insensitive function call.
//! Comments and whitespace never become tokens.

use super::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub enum TokenKind {
    // Keywords.
    And,
    Any,
    By,
    False,
    In,
    /// `in~`
    InTilde,
    Join,
    Like,
    /// `like~`
    LikeTilde,
    Maxspan,
    Not,
    Null,
    Of,
    Or,
    Regex,
    /// `regex~`
    RegexTilde,
    Sample,
    Sequence,
    True,
    Until,
    Where,
    With,

    // Operators and punctuation.
    /// `:`
    Colon,
    /// `=` (only in `with maxspan=` and `with runs=`)
    Assign,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
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
    /// `?`, the optional-field prefix.
    Question,
    /// `![`, the start of a missing-event stage.
    MissingOpen,

    // Literals and names.
    /// A string literal, escapes already processed.
    String(String),
    /// Digits only; the text is in the source at the token's span.
    Integer,
    /// A number with a fraction or an exponent; the text is in the source.
    Decimal,
    /// A plain identifier (`process`, `@timestamp`, `_id`, `head`).
    Ident(String),
    /// A backquoted identifier, backquotes removed and doubled ones collapsed.
    QuotedIdent(String),
    /// `name~`: the name of a case-insensitive function call, without the `~`.
    TildeIdent(String),

    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Every keyword with its token. Keywords are case-sensitive in Elasticsearch EQL.
const KEYWORDS: &[(&str, TokenKind)] = &[
    ("and", TokenKind::And),
    ("any", TokenKind::Any),
    ("by", TokenKind::By),
    ("false", TokenKind::False),
    ("in", TokenKind::In),
    ("join", TokenKind::Join),
    ("like", TokenKind::Like),
    ("maxspan", TokenKind::Maxspan),
    ("not", TokenKind::Not),
    ("null", TokenKind::Null),
    ("of", TokenKind::Of),
    ("or", TokenKind::Or),
    ("regex", TokenKind::Regex),
    ("sample", TokenKind::Sample),
    ("sequence", TokenKind::Sequence),
    ("true", TokenKind::True),
    ("until", TokenKind::Until),
    ("where", TokenKind::Where),
    ("with", TokenKind::With),
];

/// The keyword token for `word`, if it is one.
pub fn keyword(word: &str) -> Option<TokenKind> {
    KEYWORDS
        .iter()
        .find(|(k, _)| *k == word)
        .map(|(_, kind)| kind.clone())
}

/// The token for `word~` when it is one of the tilde keywords (`in~`, `like~`, `regex~`).
pub fn tilde_keyword(word: &str) -> Option<TokenKind> {
    match word {
        "in" => Some(TokenKind::InTilde),
        "like" => Some(TokenKind::LikeTilde),
        "regex" => Some(TokenKind::RegexTilde),
        _ => None,
    }
}

pub fn is_keyword(word: &str) -> bool {
    keyword(word).is_some()
}

/// First character of an identifier: ASCII letter, `_` or `@` (so `@timestamp`
/// needs no quoting). Elasticsearch's grammar allows ASCII letters only.
pub fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

pub fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// True when `s` lexes as one plain identifier that is not a keyword, i.e. it
/// can be printed without backquotes.
pub fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_ident_start(c) => {}
        _ => return false,
    }
    chars.all(is_ident_continue) && !is_keyword(s)
}

impl TokenKind {
    /// A short description for "expected X, found Y" messages when the
    /// source text is not at hand (the parser prefers the source text).
    pub fn describe(&self) -> &'static str {
        match self {
            TokenKind::String(_) => "a string",
            TokenKind::Integer => "an integer",
            TokenKind::Decimal => "a number",
            TokenKind::Ident(_) | TokenKind::QuotedIdent(_) => "an identifier",
            TokenKind::TildeIdent(_) => "a function name",
            TokenKind::Eof => "end of query",
            _ => "a symbol",
        }
    }

    /// Comparison operators (`==`, `!=`, `<`, `<=`, `>`, `>=`).
    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            TokenKind::EqEq
                | TokenKind::NotEq
                | TokenKind::Lt
                | TokenKind::LtEq
                | TokenKind::Gt
                | TokenKind::GtEq
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_lower_case_only() {
        assert_eq!(keyword("and"), Some(TokenKind::And));
        assert_eq!(keyword("AND"), None);
        assert_eq!(keyword("runs"), None);
        assert_eq!(tilde_keyword("like"), Some(TokenKind::LikeTilde));
        assert_eq!(tilde_keyword("startsWith"), None);
    }

    #[test]
    fn plain_identifiers() {
        assert!(is_plain_identifier("process"));
        assert!(is_plain_identifier("@timestamp"));
        assert!(is_plain_identifier("_id"));
        assert!(is_plain_identifier("a1_b"));
        assert!(!is_plain_identifier(""));
        assert!(!is_plain_identifier("1a"));
        assert!(!is_plain_identifier("a-b"));
        assert!(!is_plain_identifier("a@b"));
        assert!(!is_plain_identifier("where"));
        assert!(!is_plain_identifier("é"));
    }
}
