//! Canonical EQL: [`std::fmt::Display`] for the AST.
//!
//! The output re-parses to the same tree (ignoring spans) for every tree the
//! parser can produce: parentheses only where precedence needs them, strings
//! always double-quoted with escapes (never raw), floats in Rust's shortest
//! round-trip form (always with `.` or an exponent), field parts that are not
//! plain identifiers (or are keywords) in backquotes, and everything on one
//! line. Trees the parser never builds (negative literals, NaN, empty lists)
//! print as readable text that may not round-trip.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
use super::parser::with_stack;
use super::token::is_plain_identifier;

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.body)?;
        for pipe in &self.pipes {
            write!(f, " | {pipe}")?;
        }
        Ok(())
    }
}

impl Display for QueryBody {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            QueryBody::Event(q) => q.fmt(f),
            QueryBody::Sequence(s) => s.fmt(f),
            QueryBody::Sample(s) => s.fmt(f),
        }
    }
}

impl Display for EventQuery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} where {}", self.category, self.condition)
    }
}

impl Display for Category {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Category::Any(_) => f.write_str("any"),
            // `"any"` names the category "any", unlike the keyword `any`.
            Category::Named(name, _) if is_plain_identifier(name) => f.write_str(name),
            Category::Named(name, _) => write_string(f, name),
        }
    }
}

fn write_keys(f: &mut Formatter<'_>, keys: &[Expr]) -> fmt::Result {
    if keys.is_empty() {
        return Ok(());
    }
    f.write_str(" by ")?;
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{key}")?;
    }
    Ok(())
}

impl Display for Sequence {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("sequence")?;
        write_keys(f, &self.by)?;
        if let Some(maxspan) = &self.maxspan {
            write!(f, " with maxspan={maxspan}")?;
        }
        for stage in &self.stages {
            write!(f, " {stage}")?;
        }
        if let Some(until) = &self.until {
            write!(f, " until {until}")?;
        }
        Ok(())
    }
}

impl Display for SequenceStage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let open = if self.missing { "![" } else { "[" };
        write!(f, "{open}{}]", self.query)?;
        write_keys(f, &self.by)?;
        if let Some(runs) = &self.runs {
            write!(f, " with runs={}", runs.count)?;
        }
        Ok(())
    }
}

impl Display for Sample {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("sample")?;
        write_keys(f, &self.by)?;
        for filter in &self.filters {
            write!(f, " {filter}")?;
        }
        Ok(())
    }
}

impl Display for SampleFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.query)?;
        write_keys(f, &self.by)
    }
}

impl Display for TimeSpan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, self.unit.suffix())
    }
}

impl Display for Pipe {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Pipe::Head(n, _) => write!(f, "head {n}"),
            Pipe::Tail(n, _) => write!(f, "tail {n}"),
        }
    }
}

// Binding strength of each node when printed, matching the parser's table:
// a child weaker than its position requires gets parentheses.
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const UNARY: u8 = 7;
const PREDICATE: u8 = 8;
const PRIMARY: u8 = 9;

fn strength(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::Or(..) => OR,
        ExprKind::And(..) => AND,
        ExprKind::Not(_) => NOT,
        ExprKind::Compare { .. } => CMP,
        ExprKind::Arith {
            op: ArithOp::Add | ArithOp::Sub,
            ..
        } => ADD,
        ExprKind::Arith { .. } => MUL,
        ExprKind::Neg(_) => UNARY,
        // A negative literal prints with a leading `-`, which binds like unary minus.
        ExprKind::Literal(Literal::Int(n)) if *n < 0 => UNARY,
        ExprKind::Literal(Literal::Float(x)) if x.is_sign_negative() => UNARY,
        ExprKind::In { .. } | ExprKind::Match { .. } => PREDICATE,
        ExprKind::Literal(_) | ExprKind::Field(_) | ExprKind::Call { .. } => PRIMARY,
    }
}

/// Writes `expr`, in parentheses when it binds weaker than `min`.
fn write_expr(f: &mut Formatter<'_>, expr: &Expr, min: u8) -> fmt::Result {
    // Trees can be MAX_EXPR_HEIGHT tall.
    with_stack(|| write_expr_here(f, expr, min))
}

fn write_expr_here(f: &mut Formatter<'_>, expr: &Expr, min: u8) -> fmt::Result {
    if strength(expr) < min {
        f.write_char('(')?;
        write_bare(f, expr)?;
        f.write_char(')')
    } else {
        write_bare(f, expr)
    }
}

fn write_list(f: &mut Formatter<'_>, items: &[Expr]) -> fmt::Result {
    f.write_char('(')?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_expr(f, item, OR)?;
    }
    f.write_char(')')
}

fn write_bare(f: &mut Formatter<'_>, expr: &Expr) -> fmt::Result {
    match &expr.kind {
        ExprKind::Literal(literal) => literal.fmt(f),
        ExprKind::Field(field) => field.fmt(f),
        ExprKind::Or(lhs, rhs) => {
            write_expr(f, lhs, OR)?;
            f.write_str(" or ")?;
            write_expr(f, rhs, AND)
        }
        ExprKind::And(lhs, rhs) => {
            write_expr(f, lhs, AND)?;
            f.write_str(" and ")?;
            write_expr(f, rhs, NOT)
        }
        ExprKind::Not(operand) => {
            f.write_str("not ")?;
            write_expr(f, operand, NOT)
        }
        ExprKind::Compare { op, lhs, rhs } => {
            write_expr(f, lhs, ADD)?;
            write!(f, " {} ", op.symbol())?;
            write_expr(f, rhs, ADD)
        }
        ExprKind::Arith { op, lhs, rhs } => {
            let own = strength(expr);
            write_expr(f, lhs, own)?;
            write!(f, " {} ", op.symbol())?;
            write_expr(f, rhs, own + 1)
        }
        ExprKind::Neg(operand) => {
            f.write_char('-')?;
            write_expr(f, operand, UNARY)
        }
        ExprKind::In {
            expr,
            list,
            negated,
            insensitive,
        } => {
            write_expr(f, expr, PRIMARY)?;
            f.write_str(if *negated { " not in" } else { " in" })?;
            f.write_str(if *insensitive { "~ " } else { " " })?;
            write_list(f, list)
        }
        ExprKind::Match {
            op,
            insensitive,
            expr,
            patterns,
        } => {
            write_expr(f, expr, PRIMARY)?;
            let op = match (op, insensitive) {
                (MatchOp::Colon, _) => " : ",
                (MatchOp::Like, false) => " like ",
                (MatchOp::Like, true) => " like~ ",
                (MatchOp::Regex, false) => " regex ",
                (MatchOp::Regex, true) => " regex~ ",
            };
            f.write_str(op)?;
            match patterns.as_slice() {
                [single] => write_expr(f, single, PRIMARY),
                many => write_list(f, many),
            }
        }
        ExprKind::Call {
            name,
            insensitive,
            args,
        } => {
            f.write_str(name)?;
            if *insensitive {
                f.write_char('~')?;
            }
            write_list(f, args)
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_bare(f, self)
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(n) => write!(f, "{n}"),
            // `{:?}` is the shortest text that parses back to the same f64,
            // and always has a `.` or an exponent (`1.0`, `1e20`), so it
            // re-lexes as a decimal, not an integer.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::String(s) => write_string(f, s),
        }
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.optional {
            f.write_char('?')?;
        }
        for (i, part) in self.name.split('.').enumerate() {
            if i > 0 {
                f.write_char('.')?;
            }
            if is_plain_identifier(part) {
                f.write_str(part)?;
            } else {
                write!(f, "`{}`", part.replace('`', "``"))?;
            }
        }
        Ok(())
    }
}

/// A double-quoted EQL string. Control characters are escaped because EQL
/// strings cannot span lines and raw control bytes are unreadable.
fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:02x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use crate::eql::parse;

    /// Prints the parsed query canonically.
    fn canon(src: &str) -> String {
        parse(src)
            .unwrap_or_else(|e| panic!("{src}: {e:?}"))
            .to_string()
    }

    #[test]
    fn event_queries_print_canonically() {
        assert_eq!(
            canon("process   where  process.name :  \"cmd.exe\"|head 5"),
            "process where process.name : \"cmd.exe\" | head 5"
        );
        assert_eq!(canon("any where true | tail 3"), "any where true | tail 3");
        assert_eq!(canon("\"any\" where true"), "\"any\" where true");
        assert_eq!(canon("\"my cat\" where true"), "\"my cat\" where true");
        assert_eq!(canon("\"proc\" where true"), "proc where true");
    }

    #[test]
    fn minimal_parentheses() {
        let cases = [
            ("a where (x or y) and z", "a where (x or y) and z"),
            ("a where x or (y and z)", "a where x or y and z"),
            ("a where (x or y) or z", "a where x or y or z"),
            ("a where x or (y or z)", "a where x or (y or z)"),
            ("a where not (x == 1)", "a where not x == 1"),
            ("a where not (x and y)", "a where not (x and y)"),
            ("a where (not x) == y", "a where (not x) == y"),
            ("a where (a == b) == c", "a where (a == b) == c"),
            ("a where (1 + 2) * 3 == 9", "a where (1 + 2) * 3 == 9"),
            ("a where 1 + (2 * 3) == 7", "a where 1 + 2 * 3 == 7"),
            ("a where 1 - (2 - 3) == 2", "a where 1 - (2 - 3) == 2"),
            ("a where -(x + 1) < 0", "a where -(x + 1) < 0"),
            ("a where - -x < 0", "a where --x < 0"),
            ("a where (x + 1) in (1, 2)", "a where (x + 1) in (1, 2)"),
            ("a where -x in (1)", "a where -x in (1)"),
            ("a where (-x) in (1)", "a where (-x) in (1)"),
            ("a where (x : \"a\") == true", "a where x : \"a\" == true"),
        ];
        for (src, want) in cases {
            assert_eq!(canon(src), want, "{src}");
        }
    }

    #[test]
    fn predicates_and_calls() {
        assert_eq!(
            canon("a where x not in~ (1,2) and y in (\"a\")"),
            "a where x not in~ (1, 2) and y in (\"a\")"
        );
        assert_eq!(
            canon("a where x : (\"a\") and y like~ (\"b\", \"c\") and z regex \"d\""),
            "a where x : \"a\" and y like~ (\"b\", \"c\") and z regex \"d\""
        );
        assert_eq!(
            canon("a where startsWith~(x, \"a\") and length() == 0"),
            "a where startsWith~(x, \"a\") and length() == 0"
        );
    }

    #[test]
    fn literals() {
        assert_eq!(
            canon(r#"a where x in (1, 1.5, .5, 1e3, 1., null, true, false, 99999999999999999999)"#),
            "a where x in (1, 1.5, 0.5, 1000.0, 1.0, null, true, false, 1e20)"
        );
        assert_eq!(
            canon(r#"a where x == """C:\a"b""" and y == "tab\there\u{01}\u{1F600}é""#),
            r#"a where x == "C:\\a\"b" and y == "tab\there\u{01}😀é""#
        );
    }

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(
            canon("a where ?x.`a-b`.`where`.@timestamp.`1`.`` .`x``y` == 1"),
            "a where ?x.`a-b`.`where`.@timestamp.`1`.``.`x``y` == 1"
        );
        assert_eq!(canon("a where `a.b` == 1"), "a where a.b == 1");
    }

    #[test]
    fn sequences_and_samples() {
        assert_eq!(
            canon(
                "sequence by user.name with maxspan = 5 m [process where true] by a with runs = 3 \
                 ![file where true] by b until [x where true] by c | tail 2"
            ),
            "sequence by user.name with maxspan=5m [process where true] by a with runs=3 \
             ![file where true] by b until [x where true] by c | tail 2"
        );
        assert_eq!(
            canon("sample by host [a where true] by x [b where true]"),
            "sample by host [a where true] by x [b where true]"
        );
    }
}
