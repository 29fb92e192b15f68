//! The EQL parser: tokens -> [`ast::Query`], syntax only.
//!
//! Recursive descent for queries, a Pratt loop for expressions, following the
//! precedence of Elasticsearch's `EqlBase.g4` (loosest first):
//!
//! | level | operators                                   | notes                              |
//! |-------|---------------------------------------------|------------------------------------|
//! | 1     | `or`                                        | left-associative                   |
//! | 2     | `and`                                       | left-associative                   |
//! | 3     | `not` (prefix)                              | looser than comparisons            |
//! | 4     | `== != < <= > >=`                           | not chainable (`a < b < c` fails)  |
//! | 5     | `+ -`                                       | left-associative                   |
//! | 6     | `* / %`                                     | left-associative                   |
//! | 7     | unary `-` / `+`                             |                                    |
//! | 8     | `in`, `not in`, `in~`, `:`, `like`, `regex` | applies to a primary only          |
//!
//! The parser rejects what Elasticsearch's grammar rejects and reports what
//! it parses but does not run (`join`, lineage, pipes other than `head` and
//! `tail`, array indexes) as [`ErrorKind::Unsupported`]. Semantic rules
//! (functions, arity, sequence shape) belong to [`super::verify`].
//!
//! A hostile query is an error, never a crash: the query text is capped at
//! [`MAX_QUERY_BYTES`], recursion at [`MAX_DEPTH`] and the height of any
//! expression tree at [`MAX_EXPR_HEIGHT`], so later passes that recurse over
//! the tree are bounded too.

use super::ast::*;
use super::error::{EqlError, ErrorKind};
use super::lexer;
use super::token::{Token, TokenKind};

/// A longer query is an error, not a crash.
pub const MAX_QUERY_BYTES: usize = 1 << 20;
/// Nesting (parentheses, `not`, unary minus, calls, lists) deeper than this
/// is [`ErrorKind::TooDeep`].
pub const MAX_DEPTH: usize = 200;
/// The tallest expression tree accepted; it bounds long `and`/`or` chains,
/// which the parser builds without recursing but later passes walk
/// recursively.
pub const MAX_EXPR_HEIGHT: usize = 1000;

/// Parses one EQL query (syntax only; see [`super::verify`] for semantics).
pub fn parse(src: &str) -> Result<Query, EqlError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(EqlError::new(
            ErrorKind::Lex,
            Span::new(MAX_QUERY_BYTES, src.len()),
            format!(
                "query is too long, expected at most {MAX_QUERY_BYTES} bytes, found {}",
                src.len()
            ),
        ));
    }
    let tokens = lexer::lex(src)?;
    let mut parser = Parser {
        src,
        tokens,
        pos: 0,
        prev_end: 0,
        depth: 0,
    };
    parser.statement()
}

type PResult<T> = Result<T, EqlError>;

/// An expression with the height of its tree (a leaf is 1).
type Parsed = (Expr, usize);

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// End of the last consumed token, for node spans.
    prev_end: u32,
    depth: usize,
}

fn syntax(span: Span, message: impl Into<String>) -> EqlError {
    EqlError::new(ErrorKind::Syntax, span, message)
}

fn unsupported(span: Span, message: impl Into<String>) -> EqlError {
    EqlError::new(ErrorKind::Unsupported, span, message)
}

/// Pipes Elasticsearch's grammar knows of but does not run.
const KNOWN_PIPES: &[&str] = &[
    "count",
    "filter",
    "sort",
    "unique",
    "unique_count",
    "window",
];

impl<'a> Parser<'a> {
    // ---- token access -------------------------------------------------

    fn tok(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek(&self) -> &TokenKind {
        &self.tok().kind
    }

    fn peek_nth(&self, n: usize) -> &TokenKind {
        let i = (self.pos + n).min(self.tokens.len() - 1);
        &self.tokens[i].kind
    }

    fn at(&self, kind: &TokenKind) -> bool {
        self.peek() == kind
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
            self.prev_end = token.span.end;
        }
        token
    }

    fn eat(&mut self, kind: &TokenKind) -> Option<Token> {
        if self.at(kind) {
            Some(self.advance())
        } else {
            None
        }
    }

    /// `[text]` of the current token, or `end of query`.
    fn found(&self) -> String {
        let token = self.tok();
        if token.kind == TokenKind::Eof {
            return "end of query".to_string();
        }
        let text = &self.src[token.span.range()];
        let mut shown: String = text.chars().take(40).collect();
        if shown.len() < text.len() {
            shown.push_str("...");
        }
        format!("[{shown}]")
    }

    fn expected(&self, what: &str) -> EqlError {
        syntax(
            self.tok().span,
            format!("expected {what}, found {}", self.found()),
        )
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> PResult<Token> {
        self.eat(kind).ok_or_else(|| self.expected(what))
    }

    fn span_from(&self, start: Span) -> Span {
        Span {
            start: start.start,
            end: self.prev_end.max(start.end),
        }
    }

    /// Enters one level of nesting; the caller calls [`Self::leave`].
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(EqlError::new(
                ErrorKind::TooDeep,
                self.tok().span,
                format!("query is nested too deeply, expected at most {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn node(&self, kind: ExprKind, span: Span, height: usize) -> PResult<Parsed> {
        if height > MAX_EXPR_HEIGHT {
            return Err(EqlError::new(
                ErrorKind::TooDeep,
                span,
                format!(
                    "expression is too deeply nested, expected at most {MAX_EXPR_HEIGHT} levels"
                ),
            ));
        }
        Ok((Expr { kind, span }, height))
    }

    // ---- queries ------------------------------------------------------

    fn statement(&mut self) -> PResult<Query> {
        let start = self.tok().span;
        let body = match self.peek() {
            TokenKind::Sequence => QueryBody::Sequence(self.sequence()?),
            TokenKind::Sample => QueryBody::Sample(self.sample()?),
            TokenKind::Join => {
                return Err(unsupported(
                    start,
                    "[join] is not supported by Elasticsearch EQL",
                ))
            }
            TokenKind::Any | TokenKind::Ident(_) | TokenKind::String(_) => {
                QueryBody::Event(self.event_query()?)
            }
            _ => {
                return Err(
                    self.expected("a query (an event category, [any], [sequence] or [sample])")
                )
            }
        };
        let mut pipes = Vec::new();
        while self.at(&TokenKind::Pipe) {
            pipes.push(self.pipe()?);
        }
        if !self.at(&TokenKind::Eof) {
            return Err(self.unexpected_after_query(&body));
        }
        Ok(Query {
            body,
            pipes,
            span: self.span_from(start),
        })
    }

    /// The error for a token left over after a complete query, with a hint
    /// for the usual mistakes.
    fn unexpected_after_query(&self, body: &QueryBody) -> EqlError {
        let span = self.tok().span;
        match (body, self.peek()) {
            (QueryBody::Sample(_), TokenKind::With) => unsupported(
                span,
                "[with] is not supported by sample (no [maxspan], no [runs])",
            ),
            (QueryBody::Sample(_), TokenKind::Until) => {
                unsupported(span, "[until] is not supported by sample")
            }
            (QueryBody::Sequence(_), TokenKind::Until) => syntax(
                span,
                "expected at most one [until] stage, found another [until]",
            ),
            (_, TokenKind::Assign) => syntax(span, "expected [==] to compare, found [=]"),
            (_, kind) if kind.is_comparison() => syntax(
                span,
                format!(
                    "comparison operators cannot be chained, found {}; add parentheses",
                    self.found()
                ),
            ),
            _ => self.expected("an operator, [|] or end of query"),
        }
    }

    /// `<category> where <condition>`.
    fn event_query(&mut self) -> PResult<EventQuery> {
        let token = self.tok().clone();
        let category = match token.kind {
            TokenKind::Any => Category::Any(token.span),
            TokenKind::Ident(name) => Category::Named(name, token.span),
            TokenKind::String(name) => Category::Named(name, token.span),
            _ => return Err(self.expected("an event category or [any]")),
        };
        self.advance();
        if !self.at(&TokenKind::Where) {
            return Err(self.expected("[where]"));
        }
        self.advance();
        let condition = self.expr()?;
        let span = token.span.to(condition.span);
        Ok(EventQuery {
            category,
            condition,
            span,
        })
    }

    /// `by k1, k2, ...` (the `by` is next).
    fn join_keys(&mut self) -> PResult<Vec<Expr>> {
        self.advance();
        let mut keys = vec![self.expr()?];
        while self.eat(&TokenKind::Comma).is_some() {
            keys.push(self.expr()?);
        }
        Ok(keys)
    }

    fn sequence(&mut self) -> PResult<Sequence> {
        let start = self.advance().span;
        let mut by = Vec::new();
        let mut maxspan = None;
        if self.at(&TokenKind::By) {
            by = self.join_keys()?;
        }
        if self.at(&TokenKind::With) {
            maxspan = Some(self.maxspan()?);
            if self.at(&TokenKind::By) {
                // Elasticsearch: "Please specify sequence [by] before [with] not after"
                return Err(syntax(
                    self.tok().span,
                    "sequence [by] must come before [with], not after",
                ));
            }
        }
        let mut stages = Vec::new();
        while matches!(self.peek(), TokenKind::LBracket | TokenKind::MissingOpen) {
            stages.push(self.stage()?);
        }
        if stages.is_empty() {
            let what = if by.is_empty() && maxspan.is_none() {
                "[by], [with maxspan] or a sequence stage [...]"
            } else {
                "a sequence stage [...]"
            };
            return Err(self.expected(what));
        }
        let until = if self.eat(&TokenKind::Until).is_some() {
            if !matches!(self.peek(), TokenKind::LBracket | TokenKind::MissingOpen) {
                return Err(self.expected("a stage [...] after [until]"));
            }
            Some(Box::new(self.stage()?))
        } else {
            None
        };
        Ok(Sequence {
            by,
            maxspan,
            stages,
            until,
            span: self.span_from(start),
        })
    }

    /// `with maxspan=<n><unit>` (the `with` is next).
    fn maxspan(&mut self) -> PResult<TimeSpan> {
        self.advance();
        self.expect(&TokenKind::Maxspan, "[maxspan]")?;
        self.expect(&TokenKind::Assign, "[=]")?;
        let number = self.tok().clone();
        let value = match number.kind {
            TokenKind::Integer => self.unsigned("maxspan")?,
            TokenKind::Decimal => {
                return Err(syntax(
                    number.span,
                    format!(
                        "decimal time interval [{}] is not supported, expected a positive integer",
                        &self.src[number.span.range()]
                    ),
                ))
            }
            _ => return Err(self.expected("a time span such as [5s]")),
        };
        let unit_token = self.tok().clone();
        let TokenKind::Ident(unit) = unit_token.kind else {
            return Err(syntax(
                number.span,
                format!("no time unit specified, did you mean [{value}s]?"),
            ));
        };
        let unit = match unit.as_str() {
            "ms" => TimeUnit::Millis,
            "s" => TimeUnit::Seconds,
            "m" => TimeUnit::Minutes,
            "h" => TimeUnit::Hours,
            "d" => TimeUnit::Days,
            _ => {
                return Err(syntax(
                    unit_token.span,
                    format!(
                        "unrecognized time unit [{unit}] in [{value}{unit}], expected one of [ms, s, m, h, d]"
                    ),
                ))
            }
        };
        self.advance();
        Ok(TimeSpan {
            value,
            unit,
            span: number.span.to(unit_token.span),
        })
    }

    /// The integer token at point as a `u64`, for counts and durations.
    fn unsigned(&mut self, what: &str) -> PResult<u64> {
        let token = self.advance();
        let text = &self.src[token.span.range()];
        text.parse::<u64>()
            .map_err(|_| syntax(token.span, format!("{what} value [{text}] is too large")))
    }

    /// `[ query ] [by keys] [with runs=N]` or `![ ... ]`.
    fn stage(&mut self) -> PResult<SequenceStage> {
        let open = self.advance();
        let missing = open.kind == TokenKind::MissingOpen;
        let query = self.event_query()?;
        self.expect(&TokenKind::RBracket, "[]]")?;
        let by = if self.at(&TokenKind::By) {
            self.join_keys()?
        } else {
            Vec::new()
        };
        let runs = if self.at(&TokenKind::With) {
            Some(self.runs()?)
        } else {
            None
        };
        Ok(SequenceStage {
            query,
            by,
            runs,
            missing,
            span: self.span_from(open.span),
        })
    }

    /// `with runs=N` (the `with` is next).
    fn runs(&mut self) -> PResult<Runs> {
        let start = self.advance().span;
        match self.peek() {
            TokenKind::Ident(key) if key == "runs" => {
                self.advance();
            }
            TokenKind::Maxspan => return Err(syntax(
                self.tok().span,
                "[with maxspan] belongs after [sequence] or [sequence by ...], not after a stage",
            )),
            _ => return Err(self.expected("[runs]")),
        }
        self.expect(&TokenKind::Assign, "[=]")?;
        let count = match self.peek() {
            TokenKind::Integer => self.unsigned("runs")?,
            _ => return Err(self.expected("a positive integer")),
        };
        Ok(Runs {
            count,
            span: self.span_from(start),
        })
    }

    fn sample(&mut self) -> PResult<Sample> {
        let start = self.advance().span;
        let by = if self.at(&TokenKind::By) {
            self.join_keys()?
        } else {
            Vec::new()
        };
        let mut filters = Vec::new();
        loop {
            match self.peek() {
                TokenKind::LBracket => {}
                TokenKind::MissingOpen => {
                    return Err(unsupported(
                        self.tok().span,
                        "missing events [![...]] are only supported in sequences, not in sample",
                    ))
                }
                _ => break,
            }
            let open = self.advance();
            let query = self.event_query()?;
            self.expect(&TokenKind::RBracket, "[]]")?;
            let keys = if self.at(&TokenKind::By) {
                self.join_keys()?
            } else {
                Vec::new()
            };
            filters.push(SampleFilter {
                query,
                by: keys,
                span: self.span_from(open.span),
            });
        }
        if filters.is_empty() {
            let what = if by.is_empty() {
                "[by] or a sample filter [...]"
            } else {
                "a sample filter [...]"
            };
            return Err(self.expected(what));
        }
        Ok(Sample {
            by,
            filters,
            span: self.span_from(start),
        })
    }

    /// `| head N`, `| tail N`; other pipes are unsupported.
    fn pipe(&mut self) -> PResult<Pipe> {
        let start = self.advance().span;
        let name_token = self.tok().clone();
        let TokenKind::Ident(name) = name_token.kind else {
            return Err(self.expected("a pipe name such as [head] or [tail]"));
        };
        if name != "head" && name != "tail" {
            let message = if KNOWN_PIPES.contains(&name.as_str()) {
                format!(
                    "pipe [{name}] is not supported by Elasticsearch EQL, only [head] and [tail] are"
                )
            } else {
                format!("unknown pipe [{name}], Elasticsearch EQL supports [head] and [tail]")
            };
            return Err(unsupported(name_token.span, message));
        }
        self.advance();
        if !self.at(&TokenKind::Integer) {
            return Err(self.expected(&format!("a positive integer after [{name}]")));
        }
        let count = self.unsigned(&name)?;
        if self.at(&TokenKind::Comma) {
            return Err(syntax(
                self.tok().span,
                format!("pipe [{name}] expects exactly one argument, found more"),
            ));
        }
        let span = self.span_from(start);
        Ok(if name == "head" {
            Pipe::Head(count, span)
        } else {
            Pipe::Tail(count, span)
        })
    }

    // ---- expressions --------------------------------------------------

    fn expr(&mut self) -> PResult<Expr> {
        Ok(self.expr_h()?.0)
    }

    /// A full expression (`or` level), one nesting level deeper.
    fn expr_h(&mut self) -> PResult<Parsed> {
        self.enter()?;
        let result = self.boolean(1);
        self.leave();
        result
    }

    /// Pratt loop over `or` (1) and `and` (2).
    fn boolean(&mut self, min_prec: u8) -> PResult<Parsed> {
        let mut lhs = self.not_expr()?;
        loop {
            let (prec, is_and) = match self.peek() {
                TokenKind::Or => (1, false),
                TokenKind::And => (2, true),
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            let rhs = self.boolean(prec + 1)?;
            let span = lhs.0.span.to(rhs.0.span);
            let height = lhs.1.max(rhs.1) + 1;
            let (l, r) = (Box::new(lhs.0), Box::new(rhs.0));
            let kind = if is_and {
                ExprKind::And(l, r)
            } else {
                ExprKind::Or(l, r)
            };
            lhs = self.node(kind, span, height)?;
        }
        Ok(lhs)
    }

    /// `not` binds looser than comparisons: `not a == b` is `not (a == b)`.
    fn not_expr(&mut self) -> PResult<Parsed> {
        if self.at(&TokenKind::Not) {
            let not = self.advance();
            self.enter()?;
            let operand = self.not_expr();
            self.leave();
            let (operand, height) = operand?;
            let span = not.span.to(operand.span);
            return self.node(ExprKind::Not(Box::new(operand)), span, height + 1);
        }
        if let (TokenKind::Ident(name), TokenKind::Of) = (self.peek(), self.peek_nth(1)) {
            let span = self.tok().span.to(self.tokens[self.pos + 1].span);
            return Err(unsupported(
                span,
                format!(
                    "process relationships ([{name} of]) are not supported by Elasticsearch EQL"
                ),
            ));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> PResult<Parsed> {
        let lhs = self.arith(1)?;
        let op = match self.peek() {
            TokenKind::EqEq => CmpOp::Eq,
            TokenKind::NotEq => CmpOp::Ne,
            TokenKind::Lt => CmpOp::Lt,
            TokenKind::LtEq => CmpOp::Le,
            TokenKind::Gt => CmpOp::Gt,
            TokenKind::GtEq => CmpOp::Ge,
            TokenKind::Assign => {
                return Err(syntax(
                    self.tok().span,
                    "expected [==] to compare, found [=]",
                ))
            }
            _ => return Ok(lhs),
        };
        self.advance();
        let rhs = self.arith(1)?;
        if self.peek().is_comparison() {
            return Err(syntax(
                self.tok().span,
                format!(
                    "comparison operators cannot be chained, found {}; add parentheses",
                    self.found()
                ),
            ));
        }
        let span = lhs.0.span.to(rhs.0.span);
        let height = lhs.1.max(rhs.1) + 1;
        self.node(
            ExprKind::Compare {
                op,
                lhs: Box::new(lhs.0),
                rhs: Box::new(rhs.0),
            },
            span,
            height,
        )
    }

    /// Pratt loop over `+ -` (1) and `* / %` (2).
    fn arith(&mut self, min_prec: u8) -> PResult<Parsed> {
        let mut lhs = self.unary()?;
        loop {
            let (prec, op) = match self.peek() {
                TokenKind::Plus => (1, ArithOp::Add),
                TokenKind::Minus => (1, ArithOp::Sub),
                TokenKind::Star => (2, ArithOp::Mul),
                TokenKind::Slash => (2, ArithOp::Div),
                TokenKind::Percent => (2, ArithOp::Mod),
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            let rhs = self.arith(prec + 1)?;
            let span = lhs.0.span.to(rhs.0.span);
            let height = lhs.1.max(rhs.1) + 1;
            lhs = self.node(
                ExprKind::Arith {
                    op,
                    lhs: Box::new(lhs.0),
                    rhs: Box::new(rhs.0),
                },
                span,
                height,
            )?;
        }
        Ok(lhs)
    }

    /// Unary minus and plus; Elasticsearch drops a unary plus.
    fn unary(&mut self) -> PResult<Parsed> {
        let negate = match self.peek() {
            TokenKind::Minus => true,
            TokenKind::Plus => false,
            _ => return self.postfix(),
        };
        let sign = self.advance();
        self.enter()?;
        let operand = self.unary();
        self.leave();
        let (operand, height) = operand?;
        let span = sign.span.to(operand.span);
        if negate {
            self.node(ExprKind::Neg(Box::new(operand)), span, height + 1)
        } else {
            Ok((Expr { span, ..operand }, height))
        }
    }

    /// A primary with an optional predicate (`in`, `:`, `like`, `regex`).
    fn postfix(&mut self) -> PResult<Parsed> {
        let (expr, height) = self.primary()?;
        let negated = self.at(&TokenKind::Not)
            && matches!(self.peek_nth(1), TokenKind::In | TokenKind::InTilde);
        if negated || matches!(self.peek(), TokenKind::In | TokenKind::InTilde) {
            if negated {
                self.advance();
            }
            let insensitive = self.advance().kind == TokenKind::InTilde;
            self.expect(&TokenKind::LParen, "[(]")?;
            let mut list = Vec::new();
            let mut max_height = height;
            loop {
                let (item, h) = self.expr_h()?;
                max_height = max_height.max(h);
                list.push(item);
                if self.eat(&TokenKind::Comma).is_none() {
                    break;
                }
            }
            self.expect(&TokenKind::RParen, "[,] or [)]")?;
            let span = self.span_from(expr.span);
            return self.node(
                ExprKind::In {
                    expr: Box::new(expr),
                    list,
                    negated,
                    insensitive,
                },
                span,
                max_height + 1,
            );
        }
        let (op, insensitive) = match self.peek() {
            TokenKind::Colon => (MatchOp::Colon, true),
            TokenKind::Like => (MatchOp::Like, false),
            TokenKind::LikeTilde => (MatchOp::Like, true),
            TokenKind::Regex => (MatchOp::Regex, false),
            TokenKind::RegexTilde => (MatchOp::Regex, true),
            TokenKind::Not
                if matches!(
                    self.peek_nth(1),
                    TokenKind::Colon
                        | TokenKind::Like
                        | TokenKind::LikeTilde
                        | TokenKind::Regex
                        | TokenKind::RegexTilde
                ) =>
            {
                let span = self.tokens[self.pos + 1].span;
                return Err(syntax(
                    span,
                    format!(
                        "expected [in] or [in~] after [not], found [{}]; write [not x {} ...] instead",
                        &self.src[span.range()],
                        &self.src[span.range()]
                    ),
                ));
            }
            _ => return Ok((expr, height)),
        };
        self.advance();
        let mut patterns = Vec::new();
        if self.eat(&TokenKind::LParen).is_some() {
            loop {
                patterns.push(self.constant()?);
                if self.eat(&TokenKind::Comma).is_none() {
                    break;
                }
            }
            self.expect(&TokenKind::RParen, "[,] or [)]")?;
        } else {
            patterns.push(self.constant()?);
        }
        let span = self.span_from(expr.span);
        self.node(
            ExprKind::Match {
                op,
                insensitive,
                expr: Box::new(expr),
                patterns,
            },
            span,
            height + 1,
        )
    }

    /// A pattern of `:`, `like` or `regex`: a literal, never an expression.
    fn constant(&mut self) -> PResult<Expr> {
        match self.peek() {
            TokenKind::String(_)
            | TokenKind::Integer
            | TokenKind::Decimal
            | TokenKind::True
            | TokenKind::False
            | TokenKind::Null => Ok(self.literal()?.0),
            _ => Err(self.expected("a constant (a string, number, boolean or null)")),
        }
    }

    fn literal(&mut self) -> PResult<Parsed> {
        let token = self.advance();
        let text = &self.src[token.span.range()];
        let literal = match token.kind {
            TokenKind::String(value) => Literal::String(value),
            TokenKind::True => Literal::Bool(true),
            TokenKind::False => Literal::Bool(false),
            TokenKind::Null => Literal::Null,
            // Elasticsearch quietly turns an integer too large for a long into a double.
            TokenKind::Integer => match text.parse::<i64>() {
                Ok(value) => Literal::Int(value),
                Err(_) => Literal::Float(finite(text, token.span)?),
            },
            TokenKind::Decimal => Literal::Float(finite(text, token.span)?),
            _ => return Err(syntax(token.span, "expected a literal")),
        };
        self.node(ExprKind::Literal(literal), token.span, 1)
    }

    fn primary(&mut self) -> PResult<Parsed> {
        match self.peek().clone() {
            TokenKind::String(_)
            | TokenKind::Integer
            | TokenKind::Decimal
            | TokenKind::True
            | TokenKind::False
            | TokenKind::Null => self.literal(),
            TokenKind::LParen => {
                let open = self.advance();
                let (inner, height) = self.expr_h()?;
                self.expect(&TokenKind::RParen, "[)]")?;
                let span = self.span_from(open.span);
                Ok((Expr { span, ..inner }, height))
            }
            TokenKind::TildeIdent(name) => {
                if self.peek_nth(1) != &TokenKind::LParen {
                    let span = self.tok().span;
                    return Err(syntax(
                        span,
                        format!(
                            "expected [(] after the case-insensitive function name [{name}~], found {}",
                            self.found_at(self.pos + 1)
                        ),
                    ));
                }
                self.call(name, true)
            }
            TokenKind::Ident(name) if self.peek_nth(1) == &TokenKind::LParen => {
                self.call(name, false)
            }
            TokenKind::Ident(_) | TokenKind::QuotedIdent(_) | TokenKind::Question => self.field(),
            TokenKind::Not => Err(syntax(
                self.tok().span,
                "[not] cannot be used inside a comparison or arithmetic; wrap it in parentheses",
            )),
            _ => Err(self.expected("an expression")),
        }
    }

    fn found_at(&self, index: usize) -> String {
        let token = &self.tokens[index.min(self.tokens.len() - 1)];
        if token.kind == TokenKind::Eof {
            "end of query".to_string()
        } else {
            format!("[{}]", &self.src[token.span.range()])
        }
    }

    /// `name(args)` or `name~(args)`; the name is next.
    fn call(&mut self, name: String, insensitive: bool) -> PResult<Parsed> {
        let start = self.advance().span;
        self.advance(); // `(`
        let mut args = Vec::new();
        let mut max_height = 0;
        if self.eat(&TokenKind::RParen).is_none() {
            loop {
                let (arg, h) = self.expr_h()?;
                max_height = max_height.max(h);
                args.push(arg);
                if self.eat(&TokenKind::Comma).is_none() {
                    break;
                }
            }
            self.expect(&TokenKind::RParen, "[,] or [)]")?;
        }
        let span = self.span_from(start);
        self.node(
            ExprKind::Call {
                name,
                insensitive,
                args,
            },
            span,
            max_height + 1,
        )
    }

    /// `[?]part(.part)*` where a part is an identifier or a backquoted name.
    fn field(&mut self) -> PResult<Parsed> {
        let start = self.tok().span;
        let optional = self.eat(&TokenKind::Question).is_some();
        let mut parts = vec![self.field_part(if optional {
            "a field name after [?]"
        } else {
            "a field name"
        })?];
        loop {
            if self.at(&TokenKind::Dot) {
                self.advance();
                parts.push(self.field_part("a field name after [.]")?);
            } else if self.at(&TokenKind::LBracket) && self.peek_nth(1) == &TokenKind::Integer {
                let span = self.tokens[self.pos + 1].span;
                return Err(unsupported(
                    span,
                    "array indexes are not supported by Elasticsearch EQL",
                ));
            } else {
                break;
            }
        }
        let span = self.span_from(start);
        let field = Field {
            name: parts.join("."),
            optional,
        };
        self.node(ExprKind::Field(field), span, 1)
    }

    fn field_part(&mut self, what: &str) -> PResult<String> {
        match self.peek().clone() {
            TokenKind::Ident(name) | TokenKind::QuotedIdent(name) => {
                self.advance();
                Ok(name)
            }
            _ if super::token::is_keyword(&self.src[self.tok().span.range()]) => Err(syntax(
                self.tok().span,
                format!(
                    "expected {what}, found the keyword {}; quote it with backquotes",
                    self.found()
                ),
            )),
            _ => Err(self.expected(what)),
        }
    }
}

fn finite(text: &str, span: Span) -> PResult<f64> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(syntax(span, format!("number [{text}] is too large"))),
    }
}
