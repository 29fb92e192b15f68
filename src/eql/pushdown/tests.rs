//! Unit and property tests of the pushdown filter. The property test checks
//! soundness against the real evaluator (`compile` + `Stage::matches`): every
//! generated event a generated query matches passes the query's filter.

use super::*;
use crate::eql::ast::{Field, Span};
use proptest::prelude::*;
use serde_json::{json, Value};

fn sp() -> Span {
    Span::default()
}

fn ex(kind: ExprKind) -> Expr {
    Expr { kind, span: sp() }
}

fn field(name: &str) -> Expr {
    ex(ExprKind::Field(Field {
        name: name.to_string(),
        optional: false,
    }))
}

fn s(v: &str) -> Expr {
    ex(ExprKind::Literal(Literal::String(v.to_string())))
}

fn int(v: i64) -> Expr {
    ex(ExprKind::Literal(Literal::Int(v)))
}

fn null() -> Expr {
    ex(ExprKind::Literal(Literal::Null))
}

fn cmp(op: CmpOp, l: Expr, r: Expr) -> Expr {
    ex(ExprKind::Compare {
        op,
        lhs: Box::new(l),
        rhs: Box::new(r),
    })
}

fn not(e: Expr) -> Expr {
    ex(ExprKind::Not(Box::new(e)))
}

fn and(a: Expr, b: Expr) -> Expr {
    ex(ExprKind::And(Box::new(a), Box::new(b)))
}

fn or(a: Expr, b: Expr) -> Expr {
    ex(ExprKind::Or(Box::new(a), Box::new(b)))
}

fn colon(f: Expr, pats: Vec<Expr>) -> Expr {
    ex(ExprKind::Match {
        op: MatchOp::Colon,
        insensitive: true,
        expr: Box::new(f),
        patterns: pats,
    })
}

fn in_(f: Expr, list: Vec<Expr>, negated: bool) -> Expr {
    ex(ExprKind::In {
        expr: Box::new(f),
        list,
        negated,
        insensitive: false,
    })
}

fn event(cat: &str, cond: Expr) -> EventQuery {
    EventQuery {
        category: Category::Named(cat.to_string(), sp()),
        condition: cond,
        span: sp(),
    }
}

fn founding_rule() -> Query {
    use crate::eql::ast::{Sequence, SequenceStage, TimeSpan, TimeUnit};
    let ps = || vec![s("powershell.exe"), s("pwsh.exe"), s("powershell_ise.exe")];
    let stage = |q: EventQuery| SequenceStage {
        query: q,
        by: vec![],
        runs: None,
        missing: false,
        span: sp(),
    };
    Query {
        body: QueryBody::Sequence(Sequence {
            by: vec![field("host.id"), field("process.entity_id")],
            maxspan: Some(TimeSpan {
                value: 5,
                unit: TimeUnit::Seconds,
                span: sp(),
            }),
            stages: vec![
                stage(event(
                    "library",
                    and(
                        colon(field("dll.name"), vec![s("taskschd.dll")]),
                        colon(field("process.name"), ps()),
                    ),
                )),
                stage(event(
                    "network",
                    and(
                        and(
                            colon(field("process.name"), ps()),
                            cmp(CmpOp::Eq, field("destination.port"), int(135)),
                        ),
                        not(in_(
                            field("destination.address"),
                            vec![s("127.0.0.1"), s("::1")],
                            false,
                        )),
                    ),
                )),
            ],
            until: None,
            span: sp(),
        }),
        pipes: vec![],
        span: sp(),
    }
}

#[test]
fn founding_rule_filter_selects_the_two_stages() {
    let f = pushdown(&founding_rule(), "event.category");
    let lib = json!({"event":{"category":"library"},"dll":{"name":"TaskSchd.DLL"},"process":{"name":"PowerShell.EXE"}});
    let net = json!({"event":{"category":["network"]},"process":{"name":"pwsh.exe"},"destination":{"port":135,"address":"10.0.0.5"}});
    assert!(f.matches(&lib));
    assert!(f.matches(&net));
    // Irrelevant events are filtered out.
    assert!(!f.matches(&json!({"event":{"category":"library"},"dll":{"name":"kernel32.dll"},"process":{"name":"powershell.exe"}})));
    assert!(!f.matches(&json!({"event":{"category":"network"},"process":{"name":"pwsh.exe"},"destination":{"port":445,"address":"10.0.0.5"}})));
    assert!(!f.matches(&json!({"event":{"category":"process"},"process":{"name":"pwsh.exe"}})));
    // `not destination.address in (...)` is a must_not: a missing address passes.
    assert!(f.matches(&json!({"event":{"category":"network"},"process":{"name":"pwsh.exe"},"destination":{"port":135}})));
    let fields = referenced_fields(&founding_rule(), "event.category");
    let want: BTreeSet<String> = [
        "destination.address",
        "destination.port",
        "dll.name",
        "event.category",
        "host.id",
        "process.entity_id",
        "process.name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(fields, want);
}

#[test]
fn negation_is_pushed_down_and_negated_leaves_match_all() {
    // `not a == "x"` is a must_not: true where `a` is missing.
    assert_eq!(
        when_true(&not(cmp(CmpOp::Eq, field("a"), s("x")))),
        Filter::MatchAll
    );
    assert_eq!(
        when_true(&cmp(CmpOp::Ne, field("a"), s("x"))),
        Filter::MatchAll
    );
    // double negation gives the term back
    let f = when_true(&not(not(cmp(CmpOp::Eq, field("a"), s("x")))));
    assert!(matches!(f, Filter::Term { .. }));
    assert!(matches!(
        when_true(&not(cmp(CmpOp::Ne, field("a"), s("x")))),
        Filter::Term { .. }
    ));
    // not (a < 5 or b < 5) = a >= 5 and b >= 5
    let f = when_true(&not(or(
        cmp(CmpOp::Lt, field("a"), int(5)),
        cmp(CmpOp::Lt, field("b"), int(5)),
    )));
    let ge = |f: &str| Filter::Range {
        field: f.into(),
        bounds: Bounds {
            gte: Some(Scalar::Int(5)),
            ..Bounds::default()
        },
    };
    assert_eq!(f, Filter::and(vec![ge("a"), ge("b")]));
    // not (a and b): either negation, each match-all here
    let f = when_true(&not(and(
        cmp(CmpOp::Eq, field("a"), s("x")),
        cmp(CmpOp::Eq, field("b"), s("y")),
    )));
    assert_eq!(f, Filter::MatchAll);
    assert_eq!(
        when_true(&in_(field("a"), vec![s("x")], true)),
        Filter::MatchAll
    );
    assert!(matches!(
        when_true(&not(in_(field("a"), vec![s("x")], true))),
        Filter::Terms { .. }
    ));
}

#[test]
fn nulls_functions_and_field_comparisons_widen() {
    assert_eq!(
        when_true(&cmp(CmpOp::Eq, field("a"), null())),
        Filter::MatchAll
    );
    assert_eq!(when_true(&cmp(CmpOp::Ne, field("a"), null())), exists("a"));
    assert_eq!(
        when_true(&not(cmp(CmpOp::Ne, field("a"), null()))),
        Filter::MatchAll
    );
    assert_eq!(
        when_true(&cmp(CmpOp::Eq, field("a"), field("b"))),
        Filter::MatchAll
    );
    let call = ex(ExprKind::Call {
        name: "startsWith".into(),
        insensitive: false,
        args: vec![field("a"), s("x")],
    });
    assert_eq!(when_true(&not(call.clone())), Filter::MatchAll);
    let f = when_true(&call);
    assert!(f.matches(&json!({"a": "xyz"})));
    assert!(!f.matches(&json!({"a": "Xyz"})), "case-sensitive without ~");
    assert!(!f.matches(&json!({"a": "yx"})));
    let cidr = ex(ExprKind::Call {
        name: "cidrMatch".into(),
        insensitive: false,
        args: vec![field("a"), s("10.0.0.0/8")],
    });
    assert_eq!(when_true(&cidr), Filter::MatchAll);
    // AND keeps the translatable part
    let f = when_true(&and(cidr.clone(), cmp(CmpOp::Eq, field("b"), int(3))));
    assert!(matches!(f, Filter::Term { ref field, .. } if field == "b"));
    // OR with an untranslatable part is match-all
    assert_eq!(
        when_true(&or(cidr, cmp(CmpOp::Eq, field("b"), int(3)))),
        Filter::MatchAll
    );
    // `in` with null in the list matches missing fields
    assert_eq!(
        when_true(&in_(field("a"), vec![s("x"), null()], false)),
        Filter::MatchAll
    );
}

#[test]
fn patterns_become_wildcards_or_terms_case_insensitive() {
    let f = when_true(&colon(field("f"), vec![s("*.EXE"), s("cmd.exe"), s("a?c")]));
    assert!(f.matches(&json!({"f":"x.exe"})));
    assert!(f.matches(&json!({"f":"CMD.EXE"})));
    assert!(f.matches(&json!({"f":"abc"})));
    assert!(!f.matches(&json!({"f":"abbc"})));
    // escapes are left to the evaluator
    assert_eq!(
        when_true(&colon(field("f"), vec![s("a\\*b")])),
        Filter::MatchAll
    );
    let re = ex(ExprKind::Match {
        op: MatchOp::Regex,
        insensitive: false,
        expr: Box::new(field("f")),
        patterns: vec![s("a.*")],
    });
    assert_eq!(when_true(&re), Filter::MatchAll);
    assert_eq!(when_true(&not(re)), Filter::MatchAll);
}

#[test]
fn ranges_flip_when_the_literal_is_on_the_left() {
    let f = when_true(&cmp(CmpOp::Lt, int(5), field("n")));
    assert!(f.matches(&json!({"n": 6})));
    assert!(!f.matches(&json!({"n": 5})));
    // a negated range is the opposite range
    let f = when_true(&not(cmp(CmpOp::Le, field("n"), int(5))));
    assert!(f.matches(&json!({"n": 6})));
    assert!(!f.matches(&json!({"n": 5})));
    assert!(!f.matches(&json!({})));
}

/// The property test is only worth something if the evaluator matches a
/// fair share of the generated cases and the filter still narrows.
#[test]
fn generated_cases_exercise_the_property() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (arb_category(), arb_expr(), arb_event_doc());
    let (mut matched, mut filtered_out) = (0, 0);
    for _ in 0..3000 {
        let (cat, e, doc) = strategy.new_tree(&mut runner).unwrap().current();
        let query = Query {
            body: QueryBody::Event(EventQuery {
                category: cat,
                condition: e,
                span: sp(),
            }),
            pipes: vec![],
            span: sp(),
        };
        if evaluator_matches(&query, &doc) == Some(true) {
            matched += 1;
        }
        if !pushdown(&query, "event.category").matches(&doc) {
            filtered_out += 1;
        }
    }
    assert!(matched > 300, "only {matched} of 3000 cases match");
    assert!(
        filtered_out > 300,
        "only {filtered_out} of 3000 cases are filtered out"
    );
}

#[test]
fn field_values_reads_nested_flat_and_arrays() {
    let doc = json!({"a":{"b":[1,{"c":2}], "b.c": 3}, "a.b": {"c": [4, null]}});
    let vals: Vec<i64> = field_values(&doc, "a.b.c")
        .into_iter()
        .filter_map(Value::as_i64)
        .collect();
    let mut sorted = vals.clone();
    sorted.sort();
    assert_eq!(sorted, vec![2, 3, 4]);
    assert!(field_values(&doc, "a.x").is_empty());
}

#[test]
fn wildcard_matcher() {
    assert!(wildcard_match("*", "", false));
    assert!(wildcard_match("a*b*c", "axxbyyc", false));
    assert!(!wildcard_match("a*b*c", "axxbyy", false));
    assert!(wildcard_match("A?C", "abc", true));
    assert!(!wildcard_match("A?C", "abc", false));
    assert!(wildcard_match("*\u{e9}*", "CAF\u{c9}", true));
}

// ---- property test against the real evaluator ----

const FIELDS: &[&str] = &["a", "b", "c.d"];

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("x")),
        Just(json!("X")),
        Just(json!("xy")),
        Just(json!("y")),
        (-2i64..3).prop_map(|i| json!(i)),
        Just(Value::Null),
    ]
}

fn arb_doc() -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (
            0..FIELDS.len(),
            prop_oneof![
                3 => arb_value(),
                1 => proptest::collection::vec(arb_value(), 0..3).prop_map(Value::Array)
            ],
        ),
        0..4,
    )
    .prop_map(|pairs| {
        let mut m = serde_json::Map::new();
        for (i, v) in pairs {
            m.insert(FIELDS[i].to_string(), v);
        }
        Value::Object(m)
    })
}

fn arb_lit() -> impl Strategy<Value = Expr> {
    prop_oneof![
        prop_oneof![Just("x"), Just("X"), Just("y"), Just("x*"), Just("?y")].prop_map(s),
        (-2i64..3).prop_map(int),
        Just(null()),
    ]
}

fn arb_field() -> impl Strategy<Value = Expr> {
    (0..FIELDS.len()).prop_map(|i| field(FIELDS[i]))
}

fn arb_leaf() -> impl Strategy<Value = Expr> {
    let ops = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge)
    ];
    prop_oneof![
        (ops, arb_field(), arb_lit()).prop_map(|(op, f, l)| cmp(op, f, l)),
        (
            arb_field(),
            proptest::collection::vec(arb_lit(), 1..3),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(f, list, negated, insensitive)| ex(ExprKind::In {
                expr: Box::new(f),
                list,
                negated,
                insensitive
            })),
        (
            arb_field(),
            proptest::collection::vec(
                prop_oneof![Just("x*"), Just("*Y"), Just("x"), Just("?")].prop_map(s),
                1..3
            )
        )
            .prop_map(|(f, p)| colon(f, p)),
        (
            arb_field(),
            prop_oneof![
                Just("startsWith"),
                Just("endswith"),
                Just("stringContains"),
                Just("length")
            ],
            prop_oneof![Just("x"), Just("X"), Just(""), Just("y"), Just("1")],
            any::<bool>()
        )
            .prop_map(|(f, name, p, insensitive)| ex(ExprKind::Call {
                name: name.to_string(),
                insensitive,
                args: vec![f, s(p)],
            })),
    ]
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    arb_leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(not),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| and(a, b)),
            (inner.clone(), inner).prop_map(|(a, b)| or(a, b)),
        ]
    })
}

fn arb_category() -> impl Strategy<Value = Category> {
    prop_oneof![
        Just(Category::Any(sp())),
        Just(Category::Named("process".into(), sp())),
        Just(Category::Named("network".into(), sp())),
    ]
}

fn arb_event_doc() -> impl Strategy<Value = Value> {
    (
        arb_doc(),
        prop_oneof![
            Just(json!("process")),
            Just(json!("network")),
            Just(json!(["network", "process"])),
            Just(json!("Process")),
            Just(Value::Null)
        ],
    )
        .prop_map(|(mut d, cat)| {
            if !cat.is_null() {
                d["event"] = json!({ "category": cat });
            }
            d
        })
}

/// Compiles `category where e` and evaluates it on `doc`; `None` when the
/// query does not compile (the evaluator rejects it as Elasticsearch would).
fn evaluator_matches(query: &Query, doc: &Value) -> Option<bool> {
    use crate::eql::compile::{compile, CompileOptions};
    use crate::eql::schema::Schema;
    let plan = compile(query, &Schema::default(), &CompileOptions::default()).ok()?;
    let event = plan.event(doc);
    Some(plan.stages.iter().any(|s| s.matches(&event)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn filter_is_a_superset_of_what_the_evaluator_matches(
        cat in arb_category(),
        e in arb_expr(),
        doc in arb_event_doc(),
    ) {
        let query = Query {
            body: QueryBody::Event(EventQuery { category: cat, condition: e, span: sp() }),
            pipes: vec![],
            span: sp(),
        };
        let filter = pushdown(&query, "event.category");
        if evaluator_matches(&query, &doc) == Some(true) {
            prop_assert!(filter.matches(&doc), "filter {:?} dropped {} for {}", filter, doc, query_text(&query));
        }
    }
}

fn query_text(q: &Query) -> String {
    format!("{q}")
}

/// `explain` shows what became match-all and why: the parts are the
/// query's own text, the reasons those of the translation.
#[test]
fn explained_stage_filters_name_what_is_not_pushed_down_and_why() {
    let text = r#"network where process.name : "powershell.exe" and destination.port == 135 and not destination.address in ("127.0.0.1", "::1") and length(process.args) > 2 and process.pid != 4 and process.title regex "a.*""#;
    let query = crate::eql::parse(text).unwrap();
    let QueryBody::Event(stage) = &query.body else {
        panic!("an event query")
    };
    let (filter, unpushed) = stage_filter_explained(stage, "event.category");
    assert_eq!(
        filter,
        stage_filter(stage, "event.category"),
        "the same filter"
    );
    let parts: Vec<(&str, &str)> = unpushed
        .iter()
        .map(|u| (&text[u.span.start as usize..u.span.end as usize], u.reason))
        .collect();
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(
        parts[0].0,
        r#"not destination.address in ("127.0.0.1", "::1")"#
    );
    assert!(parts[0].1.contains("negated"), "{parts:?}");
    assert_eq!(parts[1].0, "length(process.args) > 2");
    assert!(parts[1].1.contains("expression"), "{parts:?}");
    assert_eq!(parts[2].0, "process.pid != 4");
    assert!(parts[2].1.starts_with("`!=`"), "{parts:?}");
    assert_eq!(parts[3].0, r#"process.title regex "a.*""#);
    assert!(parts[3].1.contains("regular expressions"), "{parts:?}");
    // what is pushed down stays: the category, the name, the port
    let fields = filter.fields();
    assert_eq!(
        fields.into_iter().collect::<Vec<_>>(),
        ["destination.port", "event.category", "process.name"]
    );
}
