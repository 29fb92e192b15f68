//! The Lucene query syntax subset detectd evaluates offline, parsed as
//! Lucene's classic `QueryParser` (which Elasticsearch's `query_string`
//! extends) reads it: `field:value`, `field:"phrase"`, `field:(a OR b)`,
//! wildcards `*` `?`, backslash escapes, ranges `[a TO b]` `{a TO b}` (mixed
//! brackets, `*` for an open end) and Elasticsearch's `field:>=v`,
//! `_exists_:field`, `field:*`, groups, `AND` `OR` `NOT` `&&` `||` `!` `+`
//! `-`, boosts `^n` (they change scores, not matches).
//!
//! Boolean operators follow the classic parser's clause rules with
//! Elasticsearch's default operator `OR`: `AND` makes both neighbours
//! required, `+` required, `-`/`NOT` prohibited, other clauses optional; a
//! group with a required clause ignores its optional ones.
//!
//! Outside the subset (regular expressions `/.../`, fuzzy and proximity
//! `~`, field-name patterns) the parser answers [`LuceneError::Unsupported`]:
//! the query still runs on the cluster, but cannot be evaluated offline.

use crate::eql::Span;

/// How a clause takes part in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occur {
    Must,
    Should,
    MustNot,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// A word as written (escapes kept): may hold wildcards.
    Word(String),
    /// A quoted phrase, unescaped.
    Phrase(String),
    Range {
        lower: Option<String>,
        upper: Option<String>,
        include_lower: bool,
        include_upper: bool,
    },
    /// `_exists_:field` or `field:*`.
    Exists,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LQuery {
    Bool {
        clauses: Vec<(Occur, LQuery)>,
        span: Span,
    },
    /// A term on a field, or on the default fields (`None`).
    Term {
        field: Option<String>,
        term: Term,
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LuceneError {
    #[error("expected {expected}, found {found}")]
    Syntax {
        expected: &'static str,
        found: String,
        span: Span,
    },
    #[error("cannot evaluate offline: {what} is outside the Lucene subset detectd evaluates")]
    Unsupported { what: String, span: Span },
    #[error("the query nests deeper than {0} levels of parentheses")]
    TooDeep(usize),
}

const MAX_DEPTH: usize = 100;

/// Parses a Lucene query.
pub fn parse(text: &str) -> Result<LQuery, LuceneError> {
    let mut p = P {
        s: text,
        pos: 0,
        depth: 0,
    };
    let q = p.query(None)?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.err("an operator or a term"));
    }
    Ok(q)
}

struct P<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conj {
    None,
    And,
    Or,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mods {
    None,
    Req,
    Not,
}

fn is_ws(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}'
}

/// Characters that cannot start a term.
fn is_special(c: char) -> bool {
    "+-!():^[]\"{}~/\\".contains(c) || is_ws(c)
}

impl P<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| is_ws(*c)) {
            self.pos += c.len_utf8();
        }
    }

    fn err(&self, expected: &'static str) -> LuceneError {
        let found = self
            .peek()
            .map_or("end of input".to_string(), |c| format!("`{c}`"));
        let end = self.pos + self.peek().map_or(0, char::len_utf8);
        LuceneError::Syntax {
            expected,
            found,
            span: Span::new(self.pos, end),
        }
    }

    fn unsupported(&self, what: &str, from: usize) -> LuceneError {
        LuceneError::Unsupported {
            what: what.to_string(),
            span: Span::new(from, self.pos.max(from + 1).min(self.s.len())),
        }
    }

    /// An operator word at the current position (`AND`, `OR`, `NOT`,
    /// `TO`), only when a term could not continue it.
    fn word_is(&self, w: &str) -> bool {
        self.rest().starts_with(w)
            && self.rest()[w.len()..]
                .chars()
                .next()
                .is_none_or(|c| is_ws(c) || c == '(' || c == ')' || c == '"')
    }

    fn conj(&mut self) -> Conj {
        self.skip_ws();
        for (w, c) in [
            ("AND", Conj::And),
            ("&&", Conj::And),
            ("OR", Conj::Or),
            ("||", Conj::Or),
        ] {
            if (w.starts_with(['&', '|']) && self.rest().starts_with(w)) || self.word_is(w) {
                self.pos += w.len();
                return c;
            }
        }
        Conj::None
    }

    fn mods(&mut self) -> Mods {
        self.skip_ws();
        if self.rest().starts_with('+') {
            self.pos += 1;
            Mods::Req
        } else if self.rest().starts_with('-') || self.rest().starts_with('!') {
            self.pos += 1;
            Mods::Not
        } else if self.word_is("NOT") {
            self.pos += 3;
            Mods::Not
        } else {
            Mods::None
        }
    }

    /// `Query := (Conj? Mods? Clause)*` with the classic `addClause` rules.
    fn query(&mut self, field: Option<&str>) -> Result<LQuery, LuceneError> {
        let start = self.pos;
        let mut clauses: Vec<(Occur, LQuery)> = Vec::new();
        loop {
            let save = self.pos;
            let conj = if clauses.is_empty() {
                Conj::None
            } else {
                self.conj()
            };
            let mods = self.mods();
            self.skip_ws();
            if self.peek().is_none() || self.peek() == Some(')') {
                if conj != Conj::None || mods != Mods::None {
                    return Err(self.err("a term"));
                }
                self.pos = save;
                break;
            }
            let q = self.clause(field)?;
            if conj == Conj::And {
                if let Some(last) = clauses.last_mut() {
                    if last.0 != Occur::MustNot {
                        last.0 = Occur::Must;
                    }
                }
            }
            let prohibited = mods == Mods::Not;
            let required = mods == Mods::Req || (conj == Conj::And && !prohibited);
            let occur = match (required, prohibited) {
                (_, true) => Occur::MustNot,
                (true, false) => Occur::Must,
                (false, false) => Occur::Should,
            };
            clauses.push((occur, q));
        }
        if clauses.len() == 1 && clauses[0].0 != Occur::MustNot {
            return Ok(clauses.pop().map(|(_, q)| q).unwrap_or(LQuery::Bool {
                clauses: Vec::new(),
                span: Span::default(),
            }));
        }
        Ok(LQuery::Bool {
            clauses,
            span: Span::new(start, self.pos),
        })
    }

    /// `Clause := (field ':')? (Term | '(' Query ')')`
    fn clause(&mut self, field: Option<&str>) -> Result<LQuery, LuceneError> {
        let start = self.pos;
        let mut field_name = field.map(str::to_string);
        // A field name is a term followed by `:`.
        if let Some(name) = self.field_prefix() {
            field_name = Some(name);
        }
        self.skip_ws();
        let q = if self.rest().starts_with('(') {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(LuceneError::TooDeep(MAX_DEPTH));
            }
            let inner = self.query(field_name.as_deref())?;
            self.depth -= 1;
            self.skip_ws();
            if !self.rest().starts_with(')') {
                return Err(self.err("`)`"));
            }
            self.pos += 1;
            inner
        } else {
            let term = self.term()?;
            if field_name.as_deref() == Some("_exists_") {
                let Term::Word(w) = term else {
                    return Err(self.err("a field name after `_exists_:`"));
                };
                return Ok(LQuery::Term {
                    field: Some(unescape(&w)),
                    term: Term::Exists,
                    span: Span::new(start, self.pos),
                });
            }
            let term = match term {
                Term::Word(w) if w == "*" && field_name.is_some() => Term::Exists,
                t => t,
            };
            if field_name
                .as_deref()
                .is_some_and(|f| f.contains('*') || f.contains('?'))
            {
                return Err(self.unsupported("a field name pattern", start));
            }
            LQuery::Term {
                field: field_name,
                term,
                span: Span::new(start, self.pos),
            }
        };
        // `^2` boosts change scores only.
        if self.rest().starts_with('^') {
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                self.pos += 1;
            }
        }
        Ok(q)
    }

    /// Reads `name:` if present (escapes removed), else leaves the position.
    fn field_prefix(&mut self) -> Option<String> {
        let save = self.pos;
        let mut name = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                if let Some((_, n)) = chars.next() {
                    name.push(n);
                    continue;
                }
                return None;
            }
            if c == ':' && !name.is_empty() {
                self.pos = save + i + 1;
                return Some(name);
            }
            let inner_ok = !name.is_empty() && (c == '-' || c == '+');
            if is_special(c) && !inner_ok {
                return None;
            }
            name.push(c);
        }
        None
    }

    fn term(&mut self) -> Result<Term, LuceneError> {
        let start = self.pos;
        match self.peek() {
            Some('"') => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err("a closing `\"`")),
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some('\\') => {
                            self.pos += 1;
                            if let Some(c) = self.peek() {
                                text.push(c);
                                self.pos += c.len_utf8();
                            }
                        }
                        Some(c) => {
                            text.push(c);
                            self.pos += c.len_utf8();
                        }
                    }
                }
                if self.rest().starts_with('~') {
                    return Err(self.unsupported("a proximity search (`\"...\"~n`)", start));
                }
                Ok(Term::Phrase(text))
            }
            Some('[') | Some('{') => self.range(),
            Some('/') => Err(self.unsupported("a regular expression (`/.../`)", start)),
            Some(c) if is_special(c) && c != '\\' => Err(self.err("a term")),
            None => Err(self.err("a term")),
            Some(_) => {
                let word = self.word();
                if word.is_empty() {
                    return Err(self.err("a term"));
                }
                if self.rest().starts_with('~') {
                    return Err(self.unsupported("a fuzzy search (`~`)", start));
                }
                Ok(Term::Word(word))
            }
        }
    }

    /// A bare term as written, escapes kept.
    fn word(&mut self) -> String {
        let start = self.pos;
        let mut chars = self.rest().char_indices().peekable();
        let mut end = 0;
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some((j, n)) => end = j + n.len_utf8(),
                    None => end = i + 1,
                }
                continue;
            }
            let inner_ok = i > 0 && (c == '-' || c == '+');
            if is_special(c) && !inner_ok {
                break;
            }
            end = i + c.len_utf8();
        }
        self.pos = start + end;
        self.s[start..self.pos].to_string()
    }

    fn range(&mut self) -> Result<Term, LuceneError> {
        let include_lower = self.rest().starts_with('[');
        self.pos += 1;
        self.skip_ws();
        let lower = self.range_bound()?;
        self.skip_ws();
        if !self.word_is("TO") {
            return Err(self.err("`TO`"));
        }
        self.pos += 2;
        self.skip_ws();
        let upper = self.range_bound()?;
        self.skip_ws();
        let include_upper = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => return Err(self.err("`]` or `}`")),
        };
        self.pos += 1;
        Ok(Term::Range {
            lower,
            upper,
            include_lower,
            include_upper,
        })
    }

    fn range_bound(&mut self) -> Result<Option<String>, LuceneError> {
        if self.peek() == Some('"') {
            return match self.term()? {
                Term::Phrase(p) => Ok(Some(p)),
                _ => Err(self.err("a range bound")),
            };
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !is_ws(c) && c != ']' && c != '}')
        {
            self.pos += self.peek().map_or(1, char::len_utf8);
        }
        let raw = &self.s[start..self.pos];
        if raw.is_empty() {
            return Err(self.err("a range bound"));
        }
        Ok((raw != "*").then(|| unescape(raw)))
    }
}

/// Removes backslash escapes.
pub fn unescape(t: &str) -> String {
    let mut out = String::new();
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().unwrap_or('\\'));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurs(q: &str) -> Vec<Occur> {
        match parse(q).unwrap() {
            LQuery::Bool { clauses, .. } => clauses.into_iter().map(|c| c.0).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn classic_clause_rules() {
        use Occur::*;
        assert_eq!(occurs("a b"), [Should, Should]);
        assert_eq!(occurs("a AND b OR c"), [Must, Must, Should]);
        assert_eq!(occurs("a OR b AND c"), [Should, Must, Must]);
        assert_eq!(occurs("+a -b c"), [Must, MustNot, Should]);
        assert_eq!(occurs("a AND NOT b"), [Must, MustNot]);
        assert_eq!(occurs("NOT a"), [MustNot]);
        assert_eq!(occurs("a && !b || c"), [Must, MustNot, Should]);
    }

    #[test]
    fn terms_fields_and_ranges() {
        let q = parse(r#"process.name:cmd.exe AND file.path:C\:\\Windows\\* AND n:[1 TO *} AND _exists_:x AND m:"a \"b\"""#).unwrap();
        let LQuery::Bool { clauses, .. } = q else {
            panic!()
        };
        assert_eq!(clauses.len(), 5);
        assert!(
            matches!(&clauses[1].1, LQuery::Term { field: Some(f), term: Term::Word(w), .. }
            if f == "file.path" && w == r"C\:\\Windows\\*")
        );
        assert!(
            matches!(&clauses[2].1, LQuery::Term { term: Term::Range { lower: Some(l), upper: None, include_lower: true, include_upper: false }, .. } if l == "1")
        );
        assert!(
            matches!(&clauses[3].1, LQuery::Term { field: Some(f), term: Term::Exists, .. } if f == "x")
        );
        assert!(
            matches!(&clauses[4].1, LQuery::Term { term: Term::Phrase(p), .. } if p == "a \"b\"")
        );
        assert!(
            matches!(parse("f:(a OR b)").unwrap(), LQuery::Bool { ref clauses, .. } if clauses.len() == 2)
        );
        assert!(
            matches!(parse("process.args:g+s").unwrap(), LQuery::Term { term: Term::Word(w), .. } if w == "g+s")
        );
        assert!(
            matches!(parse("a-b:x").unwrap(), LQuery::Term { field: Some(f), .. } if f == "a-b")
        );
    }

    #[test]
    fn outside_the_subset() {
        for q in ["f:/2[0-9]{3}/", "f:foo~", "f:\"a b\"~2", "process.*:x"] {
            assert!(
                matches!(parse(q), Err(LuceneError::Unsupported { .. })),
                "{q}"
            );
        }
        assert!(matches!(parse("f:(a"), Err(LuceneError::Syntax { .. })));
    }
}
