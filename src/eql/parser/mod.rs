//! The EQL parser: tokens -> [`Query`], syntax only.
//!
//! Recursive descent for queries (here), a Pratt loop for expressions
//! (`parser/expr.rs`), following the precedence of Elasticsearch's `EqlBase.g4`
//! (loosest first):
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
//! (functions, arity, sequence shape) belong to [`super::verify`](mod@super::verify).
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

/// Parses one EQL query (syntax only; see [`super::verify`](mod@super::verify) for semantics).
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

mod expr;

#[cfg(test)]
mod tests;
