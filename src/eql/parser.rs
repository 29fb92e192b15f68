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
/// The tallest expression tree accepted (a leaf is 1). It bounds long flat
/// `and`/`or`/`+` chains, which the parser builds without recursing but
/// which every later pass (and the derived `Clone`, `PartialEq`, `Debug`,
/// `Drop`) walks recursively. The corpus's tallest tree is far below.
pub const MAX_EXPR_HEIGHT: usize = MAX_DEPTH;

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
    //
    // The recursive path (expr_h -> boolean -> not_expr -> comparison ->
    // arith -> unary -> postfix -> primary -> expr_h) keeps error messages
    // and rarely taken branches in `#[inline(never)]` functions, because
    // frames hold all of a function's temporaries; each level still costs a
    // few KiB unoptimised, so the recursion goes through `with_stack`.

    fn expr(&mut self) -> PResult<Expr> {
        Ok(self.expr_h()?.0)
    }

    /// A full expression (`or` level), one nesting level deeper.
    fn expr_h(&mut self) -> PResult<Parsed> {
        self.enter()?;
        let result = with_stack(|| self.boolean(1));
        self.leave();
        result
    }

    /// Pratt loop over `or` (1) and `and` (2).
    fn boolean(&mut self, min_prec: u8) -> PResult<Parsed> {
        let mut lhs = self.not_expr()?;
        loop {
            let prec = match self.peek() {
                TokenKind::Or => 1,
                TokenKind::And => 2,
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            let rhs = self.boolean(prec + 1)?;
            lhs = self.logical(prec == 2, lhs, rhs)?;
        }
        Ok(lhs)
    }

    #[inline(never)]
    fn logical(&self, is_and: bool, lhs: Parsed, rhs: Parsed) -> PResult<Parsed> {
        let span = lhs.0.span.to(rhs.0.span);
        let height = lhs.1.max(rhs.1) + 1;
        let (l, r) = (Box::new(lhs.0), Box::new(rhs.0));
        let kind = if is_and {
            ExprKind::And(l, r)
        } else {
            ExprKind::Or(l, r)
        };
        self.node(kind, span, height)
    }

    /// `not` binds looser than comparisons: `not a == b` is `not (a == b)`.
    fn not_expr(&mut self) -> PResult<Parsed> {
        match (self.peek(), self.peek_nth(1)) {
            (TokenKind::Not, _) => {
                let not = self.advance().span;
                self.enter()?;
                let operand = with_stack(|| self.not_expr());
                self.leave();
                self.unary_node(not, operand?, true)
            }
            (TokenKind::Ident(_), TokenKind::Of) => Err(self.relationship_error()),
            _ => self.comparison(),
        }
    }

    /// `not x` (`logical`) or `-x`, from the operator's span and the operand.
    #[inline(never)]
    fn unary_node(&self, op: Span, operand: Parsed, logical: bool) -> PResult<Parsed> {
        let span = op.to(operand.0.span);
        let boxed = Box::new(operand.0);
        let kind = if logical {
            ExprKind::Not(boxed)
        } else {
            ExprKind::Neg(boxed)
        };
        self.node(kind, span, operand.1 + 1)
    }

    #[cold]
    #[inline(never)]
    fn relationship_error(&self) -> EqlError {
        let span = self.tok().span.to(self.tokens[self.pos + 1].span);
        unsupported(
            span,
            format!(
                "process relationships ([{}]) are not supported by Elasticsearch EQL",
                &self.src[span.range()]
            ),
        )
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
            TokenKind::Assign => return Err(self.assign_error()),
            _ => return Ok(lhs),
        };
        self.advance();
        let rhs = self.arith(1)?;
        if self.peek().is_comparison() {
            return Err(self.chained_comparison_error());
        }
        self.binary_node(lhs, rhs, |lhs, rhs| ExprKind::Compare { op, lhs, rhs })
    }

    #[inline(never)]
    fn binary_node(
        &self,
        lhs: Parsed,
        rhs: Parsed,
        make: impl FnOnce(Box<Expr>, Box<Expr>) -> ExprKind,
    ) -> PResult<Parsed> {
        let span = lhs.0.span.to(rhs.0.span);
        let height = lhs.1.max(rhs.1) + 1;
        self.node(make(Box::new(lhs.0), Box::new(rhs.0)), span, height)
    }

    #[cold]
    #[inline(never)]
    fn assign_error(&self) -> EqlError {
        syntax(self.tok().span, "expected [==] to compare, found [=]")
    }

    #[cold]
    #[inline(never)]
    fn chained_comparison_error(&self) -> EqlError {
        syntax(
            self.tok().span,
            format!(
                "comparison operators cannot be chained, found {}; add parentheses",
                self.found()
            ),
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
            lhs = self.binary_node(lhs, rhs, |lhs, rhs| ExprKind::Arith { op, lhs, rhs })?;
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
        let sign = self.advance().span;
        self.enter()?;
        let operand = with_stack(|| self.unary());
        self.leave();
        let (operand, height) = operand?;
        if negate {
            self.unary_node(sign, (operand, height), false)
        } else {
            let span = sign.to(operand.span);
            Ok((Expr { span, ..operand }, height))
        }
    }

    /// A primary with an optional predicate (`in`, `:`, `like`, `regex`).
    fn postfix(&mut self) -> PResult<Parsed> {
        let primary = self.primary()?;
        match (self.peek(), self.peek_nth(1)) {
            (TokenKind::In | TokenKind::InTilde, _)
            | (TokenKind::Not, TokenKind::In | TokenKind::InTilde) => self.in_predicate(primary),
            (
                TokenKind::Colon
                | TokenKind::Like
                | TokenKind::LikeTilde
                | TokenKind::Regex
                | TokenKind::RegexTilde,
                _,
            ) => self.match_predicate(primary),
            (
                TokenKind::Not,
                TokenKind::Colon
                | TokenKind::Like
                | TokenKind::LikeTilde
                | TokenKind::Regex
                | TokenKind::RegexTilde,
            ) => Err(self.negated_match_error()),
            _ => Ok(primary),
        }
    }

    /// `x [not] in[~] (e, ...)`; the `not` or `in` is next.
    #[inline(never)]
    fn in_predicate(&mut self, (expr, height): Parsed) -> PResult<Parsed> {
        let negated = self.eat(&TokenKind::Not).is_some();
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
        let kind = ExprKind::In {
            expr: Box::new(expr),
            list,
            negated,
            insensitive,
        };
        self.node(kind, span, max_height + 1)
    }

    /// `x : p`, `x like[~] p`, `x regex[~] p`, or with `(p, ...)`; the
    /// operator is next.
    #[inline(never)]
    fn match_predicate(&mut self, (expr, height): Parsed) -> PResult<Parsed> {
        let (op, insensitive) = match self.advance().kind {
            TokenKind::Like => (MatchOp::Like, false),
            TokenKind::LikeTilde => (MatchOp::Like, true),
            TokenKind::Regex => (MatchOp::Regex, false),
            TokenKind::RegexTilde => (MatchOp::Regex, true),
            _ => (MatchOp::Colon, true),
        };
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
        let kind = ExprKind::Match {
            op,
            insensitive,
            expr: Box::new(expr),
            patterns,
        };
        self.node(kind, span, height + 1)
    }

    #[cold]
    #[inline(never)]
    fn negated_match_error(&self) -> EqlError {
        let span = self.tokens[self.pos + 1].span;
        let op = &self.src[span.range()];
        syntax(
            span,
            format!(
                "expected [in] or [in~] after [not], found [{op}]; write [not x {op} ...] instead"
            ),
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

    #[inline(never)]
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
        match (self.peek(), self.peek_nth(1)) {
            (TokenKind::LParen, _) => self.parenthesized(),
            (
                TokenKind::String(_)
                | TokenKind::Integer
                | TokenKind::Decimal
                | TokenKind::True
                | TokenKind::False
                | TokenKind::Null,
                _,
            ) => self.literal(),
            (TokenKind::TildeIdent(_) | TokenKind::Ident(_), TokenKind::LParen) => self.call(),
            (TokenKind::Ident(_) | TokenKind::QuotedIdent(_) | TokenKind::Question, _) => {
                self.field()
            }
            _ => Err(self.primary_error()),
        }
    }

    #[inline(never)]
    fn parenthesized(&mut self) -> PResult<Parsed> {
        let open = self.advance().span;
        let (inner, height) = self.expr_h()?;
        self.expect(&TokenKind::RParen, "[)]")?;
        let span = self.span_from(open);
        Ok((Expr { span, ..inner }, height))
    }

    #[cold]
    #[inline(never)]
    fn primary_error(&self) -> EqlError {
        match self.peek() {
            TokenKind::TildeIdent(name) => syntax(
                self.tok().span,
                format!(
                    "expected [(] after the case-insensitive function name [{name}~], found {}",
                    self.found_at(self.pos + 1)
                ),
            ),
            TokenKind::Not => syntax(
                self.tok().span,
                "[not] cannot be used inside a comparison or arithmetic; wrap it in parentheses",
            ),
            _ => self.expected("an expression"),
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

    /// `name(args)` or `name~(args)`; the name is next, then `(`.
    #[inline(never)]
    fn call(&mut self) -> PResult<Parsed> {
        let name_token = self.advance();
        let (name, insensitive) = match name_token.kind {
            TokenKind::TildeIdent(name) => (name, true),
            TokenKind::Ident(name) => (name, false),
            _ => return Err(syntax(name_token.span, "expected a function name")),
        };
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
        let span = self.span_from(name_token.span);
        let kind = ExprKind::Call {
            name,
            insensitive,
            args,
        };
        self.node(kind, span, max_height + 1)
    }

    /// `[?]part(.part)*` where a part is an identifier or a backquoted name.
    #[inline(never)]
    fn field(&mut self) -> PResult<Parsed> {
        let start = self.tok().span;
        let optional = self.eat(&TokenKind::Question).is_some();
        let first = if optional {
            "a field name after [?]"
        } else {
            "a field name"
        };
        let mut parts = vec![self.field_part(first)?];
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
        match self.peek() {
            TokenKind::Ident(name) | TokenKind::QuotedIdent(name) => {
                let name = name.clone();
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

/// Runs `f`, first moving to a fresh heap-allocated stack segment when
/// little stack is left, so MAX_DEPTH levels fit on any thread (test and
/// worker threads get 2 MiB; an unoptimised build needs ~9 KiB per level).
pub(crate) fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    const RED_ZONE: usize = 128 * 1024;
    const NEW_SEGMENT: usize = 2 * 1024 * 1024;
    stacker::maybe_grow(RED_ZONE, NEW_SEGMENT, f)
}

fn finite(text: &str, span: Span) -> PResult<f64> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(syntax(span, format!("number [{text}] is too large"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fully parenthesised rendering that shows the tree's structure.
    fn sexp(e: &Expr) -> String {
        let list = |items: &[Expr]| items.iter().map(sexp).collect::<Vec<_>>().join(" ");
        match &e.kind {
            ExprKind::Literal(l) => format!("{l}"),
            ExprKind::Field(f) => format!("{}{}", if f.optional { "?" } else { "" }, f.name),
            ExprKind::Not(x) => format!("(not {})", sexp(x)),
            ExprKind::Neg(x) => format!("(neg {})", sexp(x)),
            ExprKind::And(l, r) => format!("(and {} {})", sexp(l), sexp(r)),
            ExprKind::Or(l, r) => format!("(or {} {})", sexp(l), sexp(r)),
            ExprKind::Compare { op, lhs, rhs } => {
                format!("({} {} {})", op.symbol(), sexp(lhs), sexp(rhs))
            }
            ExprKind::Arith { op, lhs, rhs } => {
                format!("({} {} {})", op.symbol(), sexp(lhs), sexp(rhs))
            }
            ExprKind::In {
                expr,
                list: items,
                negated,
                insensitive,
            } => format!(
                "({}in{} {} [{}])",
                if *negated { "not-" } else { "" },
                if *insensitive { "~" } else { "" },
                sexp(expr),
                list(items)
            ),
            ExprKind::Match {
                op,
                insensitive,
                expr,
                patterns,
            } => format!(
                "({:?}{} {} [{}])",
                op,
                if *insensitive { "~" } else { "" },
                sexp(expr),
                list(patterns)
            ),
            ExprKind::Call {
                name,
                insensitive,
                args,
            } => format!(
                "(call {name}{} [{}])",
                if *insensitive { "~" } else { "" },
                list(args)
            ),
        }
    }

    fn condition(src: &str) -> Expr {
        let query = parse(&format!("any where {src}")).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        match query.body {
            QueryBody::Event(q) => q.condition,
            other => panic!("not an event query: {other:?}"),
        }
    }

    fn tree(src: &str) -> String {
        sexp(&condition(src))
    }

    fn err(src: &str) -> EqlError {
        match parse(src) {
            Ok(q) => panic!("{src} parsed: {q}"),
            Err(e) => e,
        }
    }

    /// The error's span as text of `src`.
    fn err_text(src: &str) -> (ErrorKind, String, String) {
        let e = err(src);
        (e.kind, src[e.span.range()].to_string(), e.message)
    }

    #[test]
    fn boolean_precedence() {
        assert_eq!(tree("a or b and c"), "(or a (and b c))");
        assert_eq!(tree("a and b or c"), "(or (and a b) c)");
        assert_eq!(tree("a or b or c"), "(or (or a b) c)");
        assert_eq!(tree("not a and b"), "(and (not a) b)");
        assert_eq!(tree("not a == b"), "(not (== a b))");
        assert_eq!(tree("not not a"), "(not (not a))");
        assert_eq!(tree("(a or b) and c"), "(and (or a b) c)");
    }

    #[test]
    fn arithmetic_precedence() {
        assert_eq!(tree("a + b * c == d"), "(== (+ a (* b c)) d)");
        assert_eq!(tree("a - b - c < 1"), "(< (- (- a b) c) 1)");
        assert_eq!(tree("a / b % c >= 1"), "(>= (% (/ a b) c) 1)");
        assert_eq!(tree("-a * b != 1"), "(!= (* (neg a) b) 1)");
        assert_eq!(tree("- - a <= 1"), "(<= (neg (neg a)) 1)");
        assert_eq!(tree("+a > 1"), "(> a 1)");
        assert_eq!(tree("(a + b) * c == 1"), "(== (* (+ a b) c) 1)");
        assert_eq!(tree("1 == a"), "(== 1 a)");
    }

    #[test]
    fn predicates_bind_to_a_primary() {
        assert_eq!(tree("a + b in (1, 2)"), "(+ a (in b [1 2]))");
        assert_eq!(tree("-a : \"x\""), "(neg (Colon~ a [\"x\"]))");
        assert_eq!(tree("a not in (1)"), "(not-in a [1])");
        assert_eq!(tree("a not in~ (\"x\")"), "(not-in~ a [\"x\"])");
        assert_eq!(tree("a in~ (b or c)"), "(in~ a [(or b c)])");
        assert_eq!(tree("a : (\"x\", \"y\")"), "(Colon~ a [\"x\" \"y\"])");
        assert_eq!(tree("a like \"x*\""), "(Like a [\"x*\"])");
        assert_eq!(tree("a like~ (\"x\")"), "(Like~ a [\"x\"])");
        assert_eq!(tree("a regex \"x.*\""), "(Regex a [\"x.*\"])");
        assert_eq!(tree("a regex~ (\"x\", \"y\")"), "(Regex~ a [\"x\" \"y\"])");
        assert_eq!(tree("a : \"x\" == true"), "(== (Colon~ a [\"x\"]) true)");
        assert_eq!(tree("not a in (1)"), "(not (in a [1]))");
        assert_eq!(tree("(a + 1) in (2)"), "(in (+ a 1) [2])");
    }

    #[test]
    fn literals() {
        assert_eq!(
            tree("x in (1, 1.5, .5, 1e3, 2., true, false, null, \"s\")"),
            "(in x [1 1.5 0.5 1000.0 2.0 true false null \"s\"])"
        );
        // too large for a long: a double, as in Elasticsearch
        assert_eq!(
            condition("x == 9223372036854775808").to_string(),
            "x == 9.223372036854776e18"
        );
        assert_eq!(
            tree("x == 9223372036854775807"),
            "(== x 9223372036854775807)"
        );
        let (kind, text, message) = err_text("any where x == 1e400");
        assert_eq!((kind, text.as_str()), (ErrorKind::Syntax, "1e400"));
        assert_eq!(message, "number [1e400] is too large");
        assert!(err(&format!("any where x == {}", "9".repeat(400)))
            .message
            .ends_with("is too large"));
    }

    #[test]
    fn fields() {
        assert_eq!(tree("process.parent.name"), "process.parent.name");
        assert_eq!(tree("?process.pid"), "?process.pid");
        assert_eq!(tree("? x"), "?x");
        assert_eq!(tree("`a-b`.c.`d e`"), "a-b.c.d e");
        assert_eq!(tree("`where`.`x``y`"), "where.x`y");
        assert_eq!(tree("@timestamp"), "@timestamp");
        let e = condition("?a.`b-c`.d");
        assert_eq!(e.span, Span::new(10, 20));
        assert_eq!(
            e.kind,
            ExprKind::Field(Field {
                name: "a.b-c.d".into(),
                optional: true
            })
        );
    }

    #[test]
    fn calls() {
        assert_eq!(tree("startsWith(a, \"x\")"), "(call startsWith [a \"x\"])");
        assert_eq!(
            tree("STARTSWITH~(a, \"x\")"),
            "(call STARTSWITH~ [a \"x\"])"
        );
        assert_eq!(tree("length()"), "(call length [])");
        assert_eq!(
            tree("concat(a, b + 1, c == d)"),
            "(call concat [a (+ b 1) (== c d)])"
        );
        let e = condition("between(a, \"x\", \"y\")");
        assert_eq!(e.span, Span::new(10, 30));
    }

    #[test]
    fn spans_cover_what_was_written() {
        let src = "any where (a == 1) and not b";
        let q = parse(src).unwrap();
        assert_eq!(q.span, Span::new(0, src.len()));
        let QueryBody::Event(eq) = &q.body else {
            panic!()
        };
        assert_eq!(eq.span, q.span);
        assert_eq!(eq.category, Category::Any(Span::new(0, 3)));
        let ExprKind::And(l, r) = &eq.condition.kind else {
            panic!()
        };
        assert_eq!(&src[l.span.range()], "(a == 1)");
        assert_eq!(&src[r.span.range()], "not b");
    }

    #[test]
    fn event_query_categories() {
        let category = |src: &str| match parse(src).unwrap().body {
            QueryBody::Event(q) => q.category,
            _ => panic!(),
        };
        assert!(matches!(category("any where true"), Category::Any(_)));
        assert_eq!(
            category("process where true"),
            Category::Named("process".into(), Span::new(0, 7))
        );
        // a quoted "any" is the category named any, not the wildcard
        assert_eq!(
            category("\"any\" where true"),
            Category::Named("any".into(), Span::new(0, 5))
        );
        assert_eq!(
            category("\"\"\"my cat\"\"\" where true"),
            Category::Named("my cat".into(), Span::new(0, 12))
        );
    }

    #[test]
    fn comments_are_ignored() {
        let q =
            parse("// leading\nprocess /* inline */ where // trailing\n true /* end */").unwrap();
        assert_eq!(q.to_string(), "process where true");
    }

    #[test]
    fn sequences() {
        let q = parse(
            "sequence by host.id, user.name with maxspan = 5m \
             [process where true] by process.pid with runs=3 \
             ![file where true] by process.pid \
             [network where true] by process.pid \
             until [process where false] by process.pid | head 5",
        )
        .unwrap();
        let QueryBody::Sequence(s) = &q.body else {
            panic!()
        };
        assert_eq!(s.by.len(), 2);
        let maxspan = s.maxspan.unwrap();
        assert_eq!((maxspan.value, maxspan.unit), (5, TimeUnit::Minutes));
        assert_eq!(maxspan.millis(), 300_000);
        assert_eq!(s.stages.len(), 3);
        assert_eq!(s.stages[0].runs.map(|r| r.count), Some(3));
        assert!(!s.stages[0].missing && s.stages[1].missing);
        assert!(s.stages.iter().all(|st| st.by.len() == 1));
        assert!(s.until.as_ref().is_some_and(|u| u.by.len() == 1));
        assert_eq!(q.pipes.len(), 1);

        for (src, unit) in [
            ("500ms", TimeUnit::Millis),
            ("10s", TimeUnit::Seconds),
            ("1m", TimeUnit::Minutes),
            ("2h", TimeUnit::Hours),
            ("1 d", TimeUnit::Days),
        ] {
            let q = parse(&format!(
                "sequence with maxspan={src} [a where true] [b where true]"
            ))
            .unwrap();
            let QueryBody::Sequence(s) = q.body else {
                panic!()
            };
            assert_eq!(s.maxspan.unwrap().unit, unit, "{src}");
        }
    }

    #[test]
    fn sequence_errors() {
        let stages = "[a where true] [b where true]";
        let cases = [
            (
                format!("sequence with maxspan=1s by k {stages}"),
                "by",
                "sequence [by] must come before [with], not after",
            ),
            (
                format!("sequence with maxspan=30 {stages}"),
                "30",
                "no time unit specified, did you mean [30s]?",
            ),
            (
                format!("sequence with maxspan=3w {stages}"),
                "w",
                "unrecognized time unit [w] in [3w], expected one of [ms, s, m, h, d]",
            ),
            (
                format!("sequence with maxspan=1.5s {stages}"),
                "1.5",
                "decimal time interval [1.5] is not supported, expected a positive integer",
            ),
            (
                format!("sequence with maxspan==1s {stages}"),
                "==",
                "expected [=], found [==]",
            ),
            (
                format!("sequence with runs=2 {stages}"),
                "runs",
                "expected [maxspan], found [runs]",
            ),
            (
                "sequence [a where true] with times=2".to_string(),
                "times",
                "expected [runs], found [times]",
            ),
            (
                "sequence [a where true] with runs=2.5".to_string(),
                "2.5",
                "expected a positive integer, found [2.5]",
            ),
            (
                "sequence by k".to_string(),
                "",
                "expected a sequence stage [...], found end of query",
            ),
            (
                "sequence [a where true".to_string(),
                "",
                "expected []], found end of query",
            ),
            (
                format!("sequence {stages} until"),
                "",
                "expected a stage [...] after [until], found end of query",
            ),
            (
                format!("sequence {stages} until [c where true] until [d where true]"),
                "until",
                "expected at most one [until] stage, found another [until]",
            ),
        ];
        for (src, text, message) in cases {
            let (kind, got_text, got_message) = err_text(&src);
            assert_eq!(kind, ErrorKind::Syntax, "{src}");
            assert_eq!(
                (got_text.as_str(), got_message.as_str()),
                (text, message),
                "{src}"
            );
        }
    }

    #[test]
    fn samples() {
        let q = parse("sample by host [a where true] by x [b where true] by y").unwrap();
        let QueryBody::Sample(s) = &q.body else {
            panic!()
        };
        assert_eq!(s.by.len(), 1);
        assert_eq!(s.filters.len(), 2);
        assert!(s.filters.iter().all(|f| f.by.len() == 1));

        let (kind, text, message) = err_text("sample by h [a where true] ![b where true]");
        assert_eq!((kind, text.as_str()), (ErrorKind::Unsupported, "!["));
        assert!(message.starts_with("missing events"), "{message}");
        let (kind, text, _) = err_text("sample by h [a where true] [b where true] with runs=2");
        assert_eq!((kind, text.as_str()), (ErrorKind::Unsupported, "with"));
        let (kind, text, _) = err_text("sample by h [a where true] until [b where true]");
        assert_eq!((kind, text.as_str()), (ErrorKind::Unsupported, "until"));
        let (_, _, message) = err_text("sample by h");
        assert_eq!(
            message,
            "expected a sample filter [...], found end of query"
        );
    }

    #[test]
    fn pipes() {
        let q = parse("any where true | head 5 | tail 2").unwrap();
        assert!(matches!(
            q.pipes.as_slice(),
            [Pipe::Head(5, _), Pipe::Tail(2, _)]
        ));
        let (kind, text, message) = err_text("any where true | filter a == 1");
        assert_eq!((kind, text.as_str()), (ErrorKind::Unsupported, "filter"));
        assert_eq!(
            message,
            "pipe [filter] is not supported by Elasticsearch EQL, only [head] and [tail] are"
        );
        for pipe in ["unique a", "unique_count a", "count", "sort a", "window 5m"] {
            let e = err(&format!("any where true | {pipe}"));
            assert_eq!(e.kind, ErrorKind::Unsupported, "{pipe}");
        }
        let (kind, _, message) = err_text("any where true | frobnicate");
        assert_eq!(kind, ErrorKind::Unsupported);
        assert!(
            message.starts_with("unknown pipe [frobnicate]"),
            "{message}"
        );
        let (kind, text, message) = err_text("any where true | head -1");
        assert_eq!((kind, text.as_str()), (ErrorKind::Syntax, "-"));
        assert_eq!(
            message,
            "expected a positive integer after [head], found [-]"
        );
        assert_eq!(
            err("any where true | tail").message,
            "expected a positive integer after [tail], found end of query"
        );
        assert!(err("any where true | head 1, 2")
            .message
            .contains("exactly one argument"));
        assert!(err("any where true |")
            .message
            .starts_with("expected a pipe name"));
    }

    #[test]
    fn unsupported_constructs() {
        let (kind, text, message) = err_text("join [a where true] [b where true]");
        assert_eq!((kind, text.as_str()), (ErrorKind::Unsupported, "join"));
        assert_eq!(message, "[join] is not supported by Elasticsearch EQL");

        for relationship in ["descendant", "child", "event"] {
            let src = format!("process where {relationship} of [process where true]");
            let (kind, text, _) = err_text(&src);
            assert_eq!(kind, ErrorKind::Unsupported);
            assert_eq!(text, format!("{relationship} of"));
        }
        let (kind, text, message) = err_text("any where a.b[0] == 1");
        assert_eq!((kind, text.as_str()), (ErrorKind::Unsupported, "0"));
        assert_eq!(
            message,
            "array indexes are not supported by Elasticsearch EQL"
        );
    }

    #[test]
    fn syntax_errors_say_what_was_expected_and_found() {
        let cases = [
            ("process wehre true", "wehre", "expected [where], found [wehre]"),
            ("process where", "", "expected an expression, found end of query"),
            ("process where a ==", "", "expected an expression, found end of query"),
            (
                "process where a == 1 b",
                "b",
                "expected an operator, [|] or end of query, found [b]",
            ),
            ("process where a = 1", "=", "expected [==] to compare, found [=]"),
            (
                "process where a < b < c",
                "<",
                "comparison operators cannot be chained, found [<]; add parentheses",
            ),
            ("process where (a", "", "expected [)], found end of query"),
            ("process where f(a b)", "b", "expected [,] or [)], found [b]"),
            ("process where a in ()", ")", "expected an expression, found [)]"),
            ("process where a in 1", "1", "expected [(], found [1]"),
            (
                "process where a : b",
                "b",
                "expected a constant (a string, number, boolean or null), found [b]",
            ),
            (
                "process where a : -1",
                "-",
                "expected a constant (a string, number, boolean or null), found [-]",
            ),
            (
                "process where a not like \"x\"",
                "like",
                "expected [in] or [in~] after [not], found [like]; write [not x like ...] instead",
            ),
            (
                "process where a == not b",
                "not",
                "[not] cannot be used inside a comparison or arithmetic; wrap it in parentheses",
            ),
            (
                "process where a.where == 1",
                "where",
                "expected a field name after [.], found the keyword [where]; quote it with backquotes",
            ),
            (
                "process where f~ == 1",
                "f~",
                "expected [(] after the case-insensitive function name [f~], found [==]",
            ),
            ("where true", "where", "expected a query (an event category, [any], [sequence] or [sample]), found [where]"),
            ("", "", "expected a query (an event category, [any], [sequence] or [sample]), found end of query"),
            (
                "`process` where true",
                "`process`",
                "expected a query (an event category, [any], [sequence] or [sample]), found [`process`]",
            ),
            // keywords are lower-case only, as in Elasticsearch
            (
                "process where a == 1 AND b == 2",
                "AND",
                "expected an operator, [|] or end of query, found [AND]",
            ),
        ];
        for (src, text, message) in cases {
            let (kind, got_text, got_message) = err_text(src);
            assert_eq!(kind, ErrorKind::Syntax, "{src}");
            assert_eq!(
                (got_text.as_str(), got_message.as_str()),
                (text, message),
                "{src}"
            );
        }
    }

    #[test]
    fn lex_errors_pass_through() {
        let (kind, text, _) = err_text("process where name == 'x'");
        assert_eq!((kind, text.as_str()), (ErrorKind::Lex, "'x'"));
        let (kind, text, _) = err_text(r#"process where name == "a\qb""#);
        assert_eq!((kind, text.as_str()), (ErrorKind::Lex, "\\q"));
    }

    fn too_deep(src: &str) {
        let e = err(src);
        assert_eq!(e.kind, ErrorKind::TooDeep, "{}", e.message);
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_stack_overflow() {
        let n = 10_000;
        too_deep(&format!("any where {}a{}", "(".repeat(n), ")".repeat(n)));
        too_deep(&format!("any where {}a", "not ".repeat(n)));
        too_deep(&format!("any where {}a == 1", "- ".repeat(n)));
        too_deep(&format!("any where {}a == 1", "+".repeat(n)));
        too_deep(&format!(
            "any where f({}1{})",
            "f(".repeat(n),
            ")".repeat(n)
        ));
        too_deep(&format!(
            "any where a in ({}1{})",
            "(".repeat(n),
            ")".repeat(n)
        ));
        // a long flat chain builds a tall tree without recursing: bounded by height
        too_deep(&format!("any where a{}", " or a".repeat(n)));
        too_deep(&format!("any where a{} == 1", " + a".repeat(n)));
        // unclosed
        too_deep(&format!("any where {}", "(".repeat(n)));
    }

    #[test]
    fn nesting_within_the_limits_parses_prints_and_drops() {
        let depth = MAX_DEPTH - 5;
        let src = format!("any where {}a == 1{}", "(".repeat(depth), ")".repeat(depth));
        let q = parse(&src).unwrap();
        assert_eq!(q.to_string(), "any where a == 1");

        let src = format!("any where {}a", "not ".repeat(depth));
        let q = parse(&src).unwrap();
        assert!(parse(&q.to_string()).unwrap().eq_ignoring_spans(&q));

        let chain = format!("any where a{}", " or a".repeat(MAX_EXPR_HEIGHT - 2));
        let q = parse(&chain).unwrap();
        assert_eq!(q.to_string(), chain);
        assert!(parse(&q.to_string()).unwrap().eq_ignoring_spans(&q));
        assert!(crate::eql::verify(&q).is_empty());
    }

    #[test]
    fn huge_queries_are_rejected_before_lexing() {
        let src = format!("any where a == \"{}\"", "x".repeat(5 << 20));
        let e = err(&src);
        assert_eq!(e.kind, ErrorKind::Lex);
        assert_eq!(e.span, Span::new(MAX_QUERY_BYTES, src.len()));
        assert!(e.message.starts_with("query is too long"), "{}", e.message);

        let fits = format!("any where a == \"{}\"", "x".repeat(MAX_QUERY_BYTES - 100));
        assert!(parse(&fits).is_ok());
    }
}
