//! Property tests for the EQL parser and printer.
//!
//! 1. Round trip: any tree the parser can produce prints as canonical EQL
//!    that parses back to the same tree (spans ignored).
//! 2. Robustness: arbitrary text and token soup never make `parse`, the
//!    printer or `verify` panic, and whatever parses also round-trips.

use detectd::eql::ast::*;
use detectd::eql::{parse, verify};
use proptest::prelude::*;

fn sp() -> Span {
    Span::default()
}

fn expr(kind: ExprKind) -> Expr {
    Expr { kind, span: sp() }
}

const KEYWORDS: &[&str] = &[
    "and", "any", "by", "false", "in", "join", "like", "maxspan", "not", "null", "of", "or",
    "regex", "sample", "sequence", "true", "until", "where", "with",
];

/// Strings of every kind, including quotes, backslashes, control characters
/// and non-ASCII text.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}",
        "[ -~]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
        Just("\"\\\n\r\t\u{0}\u{7f}\u{85}`'".to_string()),
    ]
}

/// Literals the parser can produce: numbers are never negative (`-1` is a
/// negation of `1`) and never NaN or infinite.
fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (0..=i64::MAX).prop_map(Literal::Int),
        any::<f64>().prop_map(|x| Literal::Float(if x.is_finite() { x.abs() } else { 1.5 })),
        Just(Literal::Float(5e-324)),
        Just(Literal::Float(1e20)),
        string().prop_map(Literal::String),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_@][a-z0-9_]{0,5}(\\.[a-zA-Z_][a-z0-9]{0,4}){0,3}",
        // keywords, dashes, digits, spaces, backquotes, empty parts
        "(where|in|any|[a-z]-[0-9]|1x|a b|x`y|)(\\.(not|runs|head|[a-z]{1,3}|)){0,2}",
        string(),
    ]
}

fn function_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("startsWith".to_string()),
        Just("between".to_string()),
        Just("cidrMatch".to_string()),
        "[a-zA-Z][a-zA-Z0-9_]{0,8}",
    ]
    .prop_map(|name| {
        if KEYWORDS.contains(&name.as_str()) {
            format!("{name}X")
        } else {
            name
        }
    })
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
    ]
}

fn arith_op() -> impl Strategy<Value = ArithOp> {
    prop_oneof![
        Just(ArithOp::Add),
        Just(ArithOp::Sub),
        Just(ArithOp::Mul),
        Just(ArithOp::Div),
        Just(ArithOp::Mod),
    ]
}

/// `(op, insensitive)` as the parser builds them: `:` is always insensitive.
fn match_op() -> impl Strategy<Value = (MatchOp, bool)> {
    prop_oneof![
        Just((MatchOp::Colon, true)),
        any::<bool>().prop_map(|i| (MatchOp::Like, i)),
        any::<bool>().prop_map(|i| (MatchOp::Regex, i)),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        literal().prop_map(|l| expr(ExprKind::Literal(l))),
        (field_name(), any::<bool>())
            .prop_map(|(name, optional)| expr(ExprKind::Field(Field { name, optional }))),
    ]
}

/// Random expression trees of bounded depth.
fn expression() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        let boxed = || inner.clone().prop_map(Box::new);
        prop_oneof![
            boxed().prop_map(|e| expr(ExprKind::Not(e))),
            boxed().prop_map(|e| expr(ExprKind::Neg(e))),
            (boxed(), boxed()).prop_map(|(l, r)| expr(ExprKind::And(l, r))),
            (boxed(), boxed()).prop_map(|(l, r)| expr(ExprKind::Or(l, r))),
            (cmp_op(), boxed(), boxed()).prop_map(|(op, lhs, rhs)| expr(ExprKind::Compare {
                op,
                lhs,
                rhs
            })),
            (arith_op(), boxed(), boxed()).prop_map(|(op, lhs, rhs)| expr(ExprKind::Arith {
                op,
                lhs,
                rhs
            })),
            (
                boxed(),
                prop::collection::vec(inner.clone(), 1..4),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(e, list, negated, insensitive)| expr(ExprKind::In {
                    expr: e,
                    list,
                    negated,
                    insensitive,
                })),
            (
                match_op(),
                boxed(),
                prop::collection::vec(literal().prop_map(|l| expr(ExprKind::Literal(l))), 1..4)
            )
                .prop_map(|((op, insensitive), e, patterns)| expr(ExprKind::Match {
                    op,
                    insensitive,
                    expr: e,
                    patterns,
                })),
            (
                function_name(),
                any::<bool>(),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(name, insensitive, args)| expr(ExprKind::Call {
                    name,
                    insensitive,
                    args,
                })),
        ]
    })
}

fn category() -> impl Strategy<Value = Category> {
    prop_oneof![
        Just(Category::Any(sp())),
        prop_oneof![
            Just("any".to_string()),
            Just("process".to_string()),
            string()
        ]
        .prop_map(|name| Category::Named(name, sp())),
    ]
}

fn event_query() -> impl Strategy<Value = EventQuery> {
    (category(), expression()).prop_map(|(category, condition)| EventQuery {
        category,
        condition,
        span: sp(),
    })
}

fn keys() -> impl Strategy<Value = Vec<Expr>> {
    prop::collection::vec(expression(), 0..3)
}

fn stage() -> impl Strategy<Value = SequenceStage> {
    (
        event_query(),
        keys(),
        prop::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(query, by, runs, missing)| SequenceStage {
            query,
            by,
            runs: runs.map(|count| Runs { count, span: sp() }),
            missing,
            span: sp(),
        })
}

fn time_span() -> impl Strategy<Value = TimeSpan> {
    (
        any::<u64>(),
        prop_oneof![
            Just(TimeUnit::Millis),
            Just(TimeUnit::Seconds),
            Just(TimeUnit::Minutes),
            Just(TimeUnit::Hours),
            Just(TimeUnit::Days),
        ],
    )
        .prop_map(|(value, unit)| TimeSpan {
            value,
            unit,
            span: sp(),
        })
}

fn body() -> impl Strategy<Value = QueryBody> {
    prop_oneof![
        event_query().prop_map(QueryBody::Event),
        (
            keys(),
            prop::option::of(time_span()),
            prop::collection::vec(stage(), 1..4),
            prop::option::of(stage())
        )
            .prop_map(
                |(by, maxspan, stages, until)| QueryBody::Sequence(Sequence {
                    by,
                    maxspan,
                    stages,
                    until: until.map(Box::new),
                    span: sp(),
                })
            ),
        (keys(), prop::collection::vec((event_query(), keys()), 1..4)).prop_map(|(by, filters)| {
            QueryBody::Sample(Sample {
                by,
                filters: filters
                    .into_iter()
                    .map(|(query, by)| SampleFilter {
                        query,
                        by,
                        span: sp(),
                    })
                    .collect(),
                span: sp(),
            })
        }),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    let pipe = prop_oneof![
        any::<u64>().prop_map(|n| Pipe::Head(n, sp())),
        any::<u64>().prop_map(|n| Pipe::Tail(n, sp())),
    ];
    (body(), prop::collection::vec(pipe, 0..3)).prop_map(|(body, pipes)| Query {
        body,
        pipes,
        span: sp(),
    })
}

/// Pieces of EQL, valid and not, to glue into token soup.
const FRAGMENTS: &[&str] = &[
    "sequence",
    "sample",
    "by",
    "with",
    "maxspan",
    "=",
    "5s",
    "10ms",
    "runs",
    "until",
    "[",
    "]",
    "![",
    "any",
    "process",
    "where",
    "and",
    "or",
    "not",
    "(",
    ")",
    "==",
    "!=",
    "<",
    ">=",
    ":",
    "in",
    "in~",
    "like~",
    "regex",
    ",",
    "-",
    "+",
    "*",
    "/",
    "%",
    "\"x\"",
    "\"\"\"r\"\"\"",
    "1",
    "1.5",
    "1e400",
    "a",
    "b.c",
    "?",
    ".",
    "`q`",
    "|",
    "head",
    "tail",
    "filter",
    "2",
    "startsWith~",
    "length",
    "of",
    "join",
    "'s'",
    "//c\n",
    "/*",
    "*/",
    "\\",
    "\"\\u{41}\"",
    "é",
    "\n",
    "9223372036854775808",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(FRAGMENTS),
            prop_oneof![Just(" "), Just("")],
        ),
        0..40,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(fragment, sep)| format!("{fragment}{sep}"))
            .collect()
    })
}

/// Everything a caller does with a query must not panic, and a parsed query
/// must survive printing and re-parsing.
fn exercise(src: &str) -> Result<(), TestCaseError> {
    if let Ok(query) = parse(src) {
        let _ = verify(&query);
        let printed = query.to_string();
        let again = parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{printed:?} does not re-parse: {e:?}")))?;
        prop_assert!(
            again.eq_ignoring_spans(&query),
            "{src:?} printed as {printed:?} re-parses differently"
        );
    }
    Ok(())
}

/// 512 cases by default; `PROPTEST_CASES` raises it for a longer soak.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        // Failures print their minimal input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(query in query()) {
        let printed = query.to_string();
        let parsed = parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{printed:?}: {e:?}")))?;
        prop_assert!(
            parsed.eq_ignoring_spans(&query),
            "{printed:?} parsed as {:?}",
            parsed.without_spans()
        );
        // canonical text is a fixed point
        prop_assert_eq!(parsed.to_string(), printed);
        let _ = verify(&parsed);
    }

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        exercise(&src)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        exercise(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn token_soup_never_panics(src in token_soup()) {
        exercise(&src)?;
    }

    #[test]
    fn soup_after_a_valid_prefix_never_panics(
        prefix in prop::sample::select(&[
            "process where ",
            "sequence by a with maxspan=1s [x where ",
            "sample by h [x where true] [y where ",
            "any where a in (",
            "any where f(",
        ][..]),
        soup in token_soup(),
    ) {
        exercise(&format!("{prefix}{soup}"))?;
    }
}
