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
    let q = parse("// leading\nprocess /* inline */ where // trailing\n true /* end */").unwrap();
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
