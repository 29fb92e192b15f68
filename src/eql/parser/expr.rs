//! Expressions: a Pratt loop over the precedence table in [`super`], with
//! the predicates (`in`, `:`, `like`, `regex`), calls, fields and literals.

use super::*;

impl Parser<'_> {
    // ---- expressions --------------------------------------------------
    //
    // The recursive path (expr_h -> boolean -> not_expr -> comparison ->
    // arith -> unary -> postfix -> primary -> expr_h) keeps error messages
    // and rarely taken branches in `#[inline(never)]` functions, because
    // frames hold all of a function's temporaries; each level still costs a
    // few KiB unoptimised, so the recursion goes through `with_stack`.

    pub(super) fn expr(&mut self) -> PResult<Expr> {
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
            _ if crate::eql::token::is_keyword(&self.src[self.tok().span.range()]) => Err(syntax(
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
