//! A small, test-only EQL parser for event queries (`<category> where
//! <condition> | head N | tail N`), used by the conformance harness until
//! the real parser (`detectd::eql::parse`) is available on this branch.
//! Sequences and samples are recognised but not parsed: the harness skips
//! them. It is deliberately minimal and is not the project's parser.

use detectd::eql::ast::*;

pub enum Parsed {
    Query(Query),
    /// A sequence or sample query (not handled here).
    NotAnEventQuery,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    OptIdent(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(&'static str),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        let start = i;
        if c == '"' {
            if b.get(i + 1) == Some(&'"') && b.get(i + 2) == Some(&'"') {
                let mut j = i + 3;
                let mut s = String::new();
                while j + 2 < b.len() && !(b[j] == '"' && b[j + 1] == '"' && b[j + 2] == '"') {
                    s.push(b[j]);
                    j += 1;
                }
                out.push((Tok::Str(s), start));
                i = j + 3;
                continue;
            }
            let mut j = i + 1;
            let mut s = String::new();
            while j < b.len() && b[j] != '"' {
                if b[j] == '\\' {
                    j += 1;
                    match b.get(j) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some(&o) => s.push(o),
                        None => return Err("bad escape".into()),
                    }
                } else {
                    s.push(b[j]);
                }
                j += 1;
            }
            out.push((Tok::Str(s), start));
            i = j + 1;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == '.') {
                j += 1;
            }
            let t: String = b[i..j].iter().collect();
            if t.contains('.') {
                out.push((Tok::Float(t.parse().map_err(|_| "bad float")?), start));
            } else {
                out.push((Tok::Int(t.parse().map_err(|_| "bad int")?), start));
            }
            i = j;
            continue;
        }
        let ident_char = |c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == '@';
        if ident_char(c)
            || c == '`'
            || (c == '?' && b.get(i + 1).is_some_and(|&n| ident_char(n) || n == '`'))
        {
            let optional = c == '?';
            let mut j = if optional { i + 1 } else { i };
            let mut s = String::new();
            while j < b.len() && (ident_char(b[j]) || b[j] == '`') {
                if b[j] == '`' {
                    j += 1;
                    while j < b.len() && b[j] != '`' {
                        s.push(b[j]);
                        j += 1;
                    }
                    j += 1;
                } else {
                    s.push(b[j]);
                    j += 1;
                }
            }
            out.push((
                if optional {
                    Tok::OptIdent(s)
                } else {
                    Tok::Ident(s)
                },
                start,
            ));
            i = j;
            continue;
        }
        let two: String = b[i..(i + 2).min(b.len())].iter().collect();
        let op: &'static str = match two.as_str() {
            "==" => "==",
            "!=" => "!=",
            "<=" => "<=",
            ">=" => ">=",
            _ => match c {
                '<' => "<",
                '>' => ">",
                ':' => ":",
                '~' => "~",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '+' => "+",
                '-' => "-",
                '*' => "*",
                '/' => "/",
                '%' => "%",
                '|' => "|",
                '=' => "=",
                '!' => "!",
                '[' => "[",
                ']' => "]",
                _ => return Err(format!("unexpected character {c:?}")),
            },
        };
        i += op.len();
        out.push((Tok::Op(op), start));
    }
    Ok(out)
}

struct P {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

fn sp() -> Span {
    Span::default()
}

fn ex(kind: ExprKind) -> Expr {
    Expr { kind, span: sp() }
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k).map(|t| &t.0)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == kw)
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }
    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.is_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {op}, found {:?}", self.peek()))
        }
    }
    /// `~` immediately after the previous token (no whitespace).
    fn tilde_attached(&mut self) -> bool {
        if self.is_op("~") {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.is_kw("or") {
            self.pos += 1;
            let r = self.and()?;
            l = ex(ExprKind::Or(Box::new(l), Box::new(r)));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.not()?;
        while self.is_kw("and") {
            self.pos += 1;
            let r = self.not()?;
            l = ex(ExprKind::And(Box::new(l), Box::new(r)));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.is_kw("not") {
            self.pos += 1;
            let inner = self.not()?;
            return Ok(ex(ExprKind::Not(Box::new(inner))));
        }
        self.predicate()
    }
    fn list(&mut self) -> Result<Vec<Expr>, String> {
        if self.is_op("(") {
            self.pos += 1;
            let mut items = vec![self.or()?];
            while self.is_op(",") {
                self.pos += 1;
                items.push(self.or()?);
            }
            self.expect_op(")")?;
            Ok(items)
        } else {
            Ok(vec![self.additive()?])
        }
    }
    fn predicate(&mut self) -> Result<Expr, String> {
        let l = self.additive()?;
        let cmp = match self.peek() {
            Some(Tok::Op("==")) => Some(CmpOp::Eq),
            Some(Tok::Op("!=")) => Some(CmpOp::Ne),
            Some(Tok::Op("<")) => Some(CmpOp::Lt),
            Some(Tok::Op("<=")) => Some(CmpOp::Le),
            Some(Tok::Op(">")) => Some(CmpOp::Gt),
            Some(Tok::Op(">=")) => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = cmp {
            self.pos += 1;
            let r = self.additive()?;
            return Ok(ex(ExprKind::Compare {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            }));
        }
        if self.is_op(":") {
            self.pos += 1;
            let patterns = self.list()?;
            return Ok(ex(ExprKind::Match {
                op: MatchOp::Colon,
                insensitive: true,
                expr: Box::new(l),
                patterns,
            }));
        }
        let negated =
            self.is_kw("not") && matches!(self.peek_at(1), Some(Tok::Ident(s)) if s == "in");
        if negated {
            self.pos += 1;
        }
        if self.is_kw("in") {
            self.pos += 1;
            let insensitive = self.tilde_attached();
            let list = self.list()?;
            return Ok(ex(ExprKind::In {
                expr: Box::new(l),
                list,
                negated,
                insensitive,
            }));
        }
        for (kw, op) in [("like", MatchOp::Like), ("regex", MatchOp::Regex)] {
            if self.is_kw(kw) {
                self.pos += 1;
                let insensitive = self.tilde_attached();
                let patterns = self.list()?;
                return Ok(ex(ExprKind::Match {
                    op,
                    insensitive,
                    expr: Box::new(l),
                    patterns,
                }));
            }
        }
        Ok(l)
    }
    fn additive(&mut self) -> Result<Expr, String> {
        let mut l = self.multiplicative()?;
        loop {
            let op = if self.is_op("+") {
                ArithOp::Add
            } else if self.is_op("-") {
                ArithOp::Sub
            } else {
                return Ok(l);
            };
            self.pos += 1;
            let r = self.multiplicative()?;
            l = ex(ExprKind::Arith {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            });
        }
    }
    fn multiplicative(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        loop {
            let op = if self.is_op("*") {
                ArithOp::Mul
            } else if self.is_op("/") {
                ArithOp::Div
            } else if self.is_op("%") {
                ArithOp::Mod
            } else {
                return Ok(l);
            };
            self.pos += 1;
            let r = self.unary()?;
            l = ex(ExprKind::Arith {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            });
        }
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.is_op("-") {
            self.pos += 1;
            let inner = self.unary()?;
            return Ok(ex(ExprKind::Neg(Box::new(inner))));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Int(n)) => Ok(ex(ExprKind::Literal(Literal::Int(n)))),
            Some(Tok::Float(f)) => Ok(ex(ExprKind::Literal(Literal::Float(f)))),
            Some(Tok::Str(s)) => Ok(ex(ExprKind::Literal(Literal::String(s)))),
            Some(Tok::Op("(")) => {
                let e = self.or()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Some(Tok::OptIdent(name)) => Ok(ex(ExprKind::Field(Field {
                name,
                optional: true,
            }))),
            Some(Tok::Ident(name)) => match name.as_str() {
                "true" => Ok(ex(ExprKind::Literal(Literal::Bool(true)))),
                "false" => Ok(ex(ExprKind::Literal(Literal::Bool(false)))),
                "null" => Ok(ex(ExprKind::Literal(Literal::Null))),
                _ => {
                    let insensitive = matches!(self.peek(), Some(Tok::Op("~")))
                        && matches!(self.peek_at(1), Some(Tok::Op("(")));
                    if insensitive {
                        self.pos += 1;
                    }
                    if self.is_op("(") {
                        self.pos += 1;
                        let mut args = Vec::new();
                        if !self.is_op(")") {
                            args.push(self.or()?);
                            while self.is_op(",") {
                                self.pos += 1;
                                args.push(self.or()?);
                            }
                        }
                        self.expect_op(")")?;
                        Ok(ex(ExprKind::Call {
                            name,
                            insensitive,
                            args,
                        }))
                    } else {
                        Ok(ex(ExprKind::Field(Field {
                            name,
                            optional: false,
                        })))
                    }
                }
            },
            other => Err(format!("unexpected token {other:?}")),
        }
    }
}

pub fn parse(src: &str) -> Result<Parsed, String> {
    let toks = lex(src)?;
    let mut p = P { toks, pos: 0 };
    if p.is_kw("sequence") || p.is_kw("sample") {
        return Ok(Parsed::NotAnEventQuery);
    }
    let category = match p.next() {
        Some(Tok::Ident(s)) if s == "any" => Category::Any(sp()),
        Some(Tok::Ident(s)) | Some(Tok::Str(s)) => Category::Named(s, sp()),
        other => return Err(format!("expected a category, found {other:?}")),
    };
    if !p.is_kw("where") {
        return Err("expected where".into());
    }
    p.pos += 1;
    let condition = p.or()?;
    let mut pipes = Vec::new();
    while p.is_op("|") {
        p.pos += 1;
        let kind = match p.next() {
            Some(Tok::Ident(s)) => s,
            other => return Err(format!("expected a pipe, found {other:?}")),
        };
        let n = match p.next() {
            Some(Tok::Int(n)) if n >= 0 => n as u64,
            other => return Err(format!("expected a count, found {other:?}")),
        };
        pipes.push(match kind.as_str() {
            "head" => Pipe::Head(n, sp()),
            "tail" => Pipe::Tail(n, sp()),
            other => return Err(format!("unsupported pipe {other}")),
        });
    }
    if p.pos < p.toks.len() {
        return Err(format!("trailing input at {:?}", p.peek()));
    }
    Ok(Parsed::Query(Query {
        body: QueryBody::Event(EventQuery {
            category,
            condition,
            span: sp(),
        }),
        pipes,
        span: sp(),
    }))
}
