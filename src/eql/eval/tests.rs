//! Unit tests of the evaluator, on hand-built syntax trees.
use super::*;
use crate::eql::ast::{
    self, Category, EventQuery, Expr, ExprKind, Field, Literal, MatchOp, Query, QueryBody,
};
use crate::eql::compile::{compile, CompileOptions, Plan};
use crate::eql::schema::Schema;
use crate::eql::span::Span;
use serde_json::json;

// Small AST builders (the parser lives elsewhere).
fn e(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}
fn f(name: &str) -> Expr {
    e(ExprKind::Field(Field {
        name: name.into(),
        optional: false,
    }))
}
fn of(name: &str) -> Expr {
    e(ExprKind::Field(Field {
        name: name.into(),
        optional: true,
    }))
}
fn s(v: &str) -> Expr {
    e(ExprKind::Literal(Literal::String(v.into())))
}
fn i(v: i64) -> Expr {
    e(ExprKind::Literal(Literal::Int(v)))
}
fn null() -> Expr {
    e(ExprKind::Literal(Literal::Null))
}
fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
    e(ExprKind::Compare {
        op,
        lhs: Box::new(a),
        rhs: Box::new(b),
    })
}
fn not(a: Expr) -> Expr {
    e(ExprKind::Not(Box::new(a)))
}
fn and_(a: Expr, b: Expr) -> Expr {
    e(ExprKind::And(Box::new(a), Box::new(b)))
}
fn or_(a: Expr, b: Expr) -> Expr {
    e(ExprKind::Or(Box::new(a), Box::new(b)))
}
fn matching(op: MatchOp, ci: bool, x: Expr, pats: Vec<Expr>) -> Expr {
    e(ExprKind::Match {
        op,
        insensitive: ci,
        expr: Box::new(x),
        patterns: pats,
    })
}
fn in_(x: Expr, list: Vec<Expr>, negated: bool, ci: bool) -> Expr {
    e(ExprKind::In {
        expr: Box::new(x),
        list,
        negated,
        insensitive: ci,
    })
}
fn call(name: &str, ci: bool, args: Vec<Expr>) -> Expr {
    e(ExprKind::Call {
        name: name.into(),
        insensitive: ci,
        args,
    })
}
fn query(cond: Expr) -> Query {
    Query {
        body: QueryBody::Event(EventQuery {
            category: Category::Any(Span::default()),
            condition: cond,
            span: Span::default(),
        }),
        pipes: vec![],
        span: Span::default(),
    }
}
fn plan(cond: Expr) -> Plan {
    compile(&query(cond), &Schema::default(), &CompileOptions::default()).unwrap()
}
fn hit(cond: Expr, doc: serde_json::Value) -> bool {
    let p = plan(cond);
    let ev = p.event(&doc);
    p.stages[0].matches(&ev)
}
fn tri(cond: Expr, doc: serde_json::Value) -> Option<bool> {
    let p = plan(cond);
    let ev = p.event(&doc);
    p.stages[0].predicate.eval(&ev, false)
}

fn tri_script(cond: Expr, doc: serde_json::Value) -> Option<bool> {
    let p = plan(cond);
    let ev = p.event(&doc);
    p.stages[0].predicate.eval(&ev, true)
}

#[test]
fn null_logic_is_three_valued_in_scripts() {
    let missing = json!({});
    let gt = || cmp(CmpOp::Gt, f("x"), i(-1));
    assert_eq!(tri_script(gt(), missing.clone()), None);
    assert_eq!(tri_script(not(gt()), missing.clone()), None);
    assert_eq!(
        tri_script(cmp(CmpOp::Ne, f("x"), s("a")), missing.clone()),
        None
    );
    // null == (x > -1) is true when x is missing
    assert_eq!(
        tri(cmp(CmpOp::Eq, null(), gt()), missing.clone()),
        Some(true)
    );
    assert_eq!(
        tri(cmp(CmpOp::Eq, null(), gt()), json!({"x": 0})),
        Some(false)
    );
    let t = e(ExprKind::Literal(Literal::Bool(true)));
    let fl = e(ExprKind::Literal(Literal::Bool(false)));
    assert_eq!(
        tri_script(and_(gt(), fl.clone()), missing.clone()),
        Some(false)
    );
    assert_eq!(tri_script(and_(gt(), t.clone()), missing.clone()), None);
    assert_eq!(tri_script(or_(gt(), t), missing.clone()), Some(true));
    assert_eq!(tri_script(or_(gt(), fl), missing.clone()), None);
    // functions are scripts in either mode: null stays null under `not`
    let sw = || {
        call(
            "startsWith",
            false,
            vec![call("concat", false, vec![f("x")]), s("a")],
        )
    };
    assert_eq!(tri(sw(), missing.clone()), None);
    assert_eq!(tri(not(sw()), missing), None);
}

#[test]
fn missing_fields_follow_the_query_elasticsearch_builds() {
    let missing = json!({});
    let gt = || cmp(CmpOp::Gt, f("x"), i(-1));
    assert_eq!(tri(gt(), missing.clone()), Some(false));
    // `not x > -1` is optimised to `x <= -1`: still false
    assert_eq!(tri(not(gt()), missing.clone()), Some(false));
    assert_eq!(tri(not(gt()), json!({"x": -5})), Some(true));
    // `!=`, `not in`, `not :` are must_not queries: true when missing
    assert_eq!(
        tri(cmp(CmpOp::Ne, f("x"), s("a")), missing.clone()),
        Some(true)
    );
    assert_eq!(
        tri(not(cmp(CmpOp::Eq, f("x"), s("a"))), missing.clone()),
        Some(true)
    );
    assert_eq!(
        tri(in_(f("x"), vec![s("a")], true, false), missing.clone()),
        Some(true)
    );
    assert_eq!(
        tri(
            not(matching(MatchOp::Colon, true, f("x"), vec![s("a*")])),
            missing.clone()
        ),
        Some(true)
    );
    assert_eq!(
        tri(
            not(call("startsWith", false, vec![f("x"), s("a")])),
            missing.clone()
        ),
        Some(true)
    );
    assert_eq!(
        tri(cmp(CmpOp::Eq, f("x"), null()), missing.clone()),
        Some(true)
    );
    assert_eq!(
        tri(cmp(CmpOp::Ne, f("x"), null()), missing.clone()),
        Some(false)
    );
    assert_eq!(
        tri(cmp(CmpOp::Ne, f("x"), null()), json!({"x": 1})),
        Some(true)
    );
    // a negative literal is still a field-level (query) comparison
    let minus_one = || e(ExprKind::Neg(Box::new(i(1))));
    assert_eq!(
        tri(cmp(CmpOp::Ne, f("x"), minus_one()), missing.clone()),
        Some(true)
    );
    assert_eq!(
        tri(in_(f("x"), vec![minus_one()], true, false), missing.clone()),
        Some(true)
    );
    assert!(hit(
        in_(f("x"), vec![minus_one()], false, false),
        json!({"x": -1})
    ));
    // De Morgan: not (x > 1 and y == 1) is x <= 1 or y != 1
    let both = and_(cmp(CmpOp::Gt, f("x"), i(1)), cmp(CmpOp::Eq, f("y"), i(1)));
    assert_eq!(tri(not(both), json!({"y": 2})), Some(true));
}

#[test]
fn equality_is_case_sensitive_and_never_expands_wildcards() {
    let doc = json!({"name": "CMD.exe"});
    assert!(hit(cmp(CmpOp::Eq, f("name"), s("CMD.exe")), doc.clone()));
    assert!(!hit(cmp(CmpOp::Eq, f("name"), s("cmd.exe")), doc.clone()));
    assert!(!hit(cmp(CmpOp::Eq, f("name"), s("CMD*")), doc.clone()));
    assert!(hit(
        cmp(CmpOp::Eq, f("name"), s("CMD*")),
        json!({"name": "CMD*"})
    ));
    assert!(hit(
        matching(MatchOp::Colon, true, f("name"), vec![s("cmd*")]),
        doc.clone()
    ));
    assert!(hit(
        matching(MatchOp::Colon, true, f("name"), vec![s("cmd.exe")]),
        doc.clone()
    ));
    assert!(!hit(
        matching(MatchOp::Like, false, f("name"), vec![s("cmd*")]),
        doc.clone()
    ));
    assert!(hit(
        matching(MatchOp::Like, true, f("name"), vec![s("cmd*")]),
        doc.clone()
    ));
    assert!(hit(
        matching(MatchOp::Like, false, f("name"), vec![s("CMD?exe")]),
        doc.clone()
    ));
    assert!(hit(
        in_(f("name"), vec![s("x"), s("cmd.EXE")], false, true),
        doc.clone()
    ));
    assert!(!hit(
        in_(f("name"), vec![s("cmd*")], false, true),
        doc.clone()
    ));
    assert!(!hit(
        in_(f("name"), vec![s("cmd.exe")], false, false),
        doc.clone()
    ));
    assert!(hit(
        in_(f("name"), vec![s("cmd.exe")], true, false),
        doc.clone()
    ));
    assert!(hit(
        matching(MatchOp::Regex, false, f("name"), vec![s("CMD\\.[a-z]+")]),
        doc.clone()
    ));
    assert!(!hit(
        matching(MatchOp::Regex, false, f("name"), vec![s("cmd\\.[a-z]+")]),
        doc.clone()
    ));
    assert!(hit(
        matching(MatchOp::Regex, true, f("name"), vec![s("cmd\\.[a-z]+")]),
        doc
    ));
}

#[test]
fn multi_valued_fields_match_any_value() {
    let doc = json!({"tags": ["a", "b"]});
    assert!(hit(cmp(CmpOp::Eq, f("tags"), s("b")), doc.clone()));
    assert!(!hit(cmp(CmpOp::Ne, f("tags"), s("b")), doc.clone()));
    assert!(hit(cmp(CmpOp::Ne, f("tags"), s("c")), doc.clone()));
    assert!(hit(
        in_(f("tags"), vec![s("x"), s("a")], false, false),
        doc.clone()
    ));
    assert!(!hit(
        in_(f("tags"), vec![s("x"), s("a")], true, false),
        doc.clone()
    ));
    assert!(hit(
        matching(MatchOp::Colon, true, f("tags"), vec![s("B")]),
        doc
    ));
}

#[test]
fn numbers_compare_across_long_and_double() {
    let doc = json!({"n": 4, "d": 4.5});
    assert!(hit(
        cmp(CmpOp::Lt, f("n"), e(ExprKind::Literal(Literal::Float(4.5)))),
        doc.clone()
    ));
    assert!(hit(cmp(CmpOp::Gt, f("d"), i(4)), doc.clone()));
    assert!(hit(cmp(CmpOp::Le, i(4), f("n")), doc.clone()));
    let div = e(ExprKind::Arith {
        op: ast::ArithOp::Div,
        lhs: Box::new(f("n")),
        rhs: Box::new(i(3)),
    });
    assert!(hit(cmp(CmpOp::Eq, div, i(1)), doc.clone()));
    let div0 = e(ExprKind::Arith {
        op: ast::ArithOp::Div,
        lhs: Box::new(f("n")),
        rhs: Box::new(i(0)),
    });
    assert_eq!(tri(cmp(CmpOp::Eq, div0, i(1)), doc.clone()), None);
    // without a mapping, numeric strings and numbers compare by value
    assert!(hit(cmp(CmpOp::Eq, f("n"), s("4")), doc.clone()));
    assert!(hit(cmp(CmpOp::Gt, f("s"), i(9)), json!({"s": "10"})));
    assert!(!hit(cmp(CmpOp::Eq, f("s"), i(9)), json!({"s": "nine"})));
    assert!(hit(
        cmp(CmpOp::Eq, f("b"), e(ExprKind::Literal(Literal::Bool(true)))),
        json!({"b": "true"})
    ));
}

#[test]
fn functions_read_the_smallest_of_several_values() {
    let doc = json!({"tags": ["b", "a", "c"], "n": [3, 1, 2]});
    let concat_is = |field: &str, n: i64| {
        cmp(
            CmpOp::Eq,
            call("concat", false, vec![f(field)]),
            s(&n.to_string()),
        )
    };
    assert!(hit(concat_is("n", 1), doc.clone()));
    let first = cmp(CmpOp::Eq, call("string", false, vec![f("tags")]), s("a"));
    assert!(hit(first, doc));
}

#[test]
fn functions_take_fields_anywhere() {
    let doc = json!({"host": "Alice-PC", "user": "alicex"});
    let inner = call("substring", false, vec![f("user"), i(0), i(-1)]);
    assert!(hit(
        call("startswith", true, vec![f("host"), inner.clone()]),
        doc.clone()
    ));
    assert!(!hit(
        call("startswith", false, vec![f("host"), inner]),
        doc.clone()
    ));
    assert!(hit(
        cmp(CmpOp::Eq, call("length", false, vec![f("host")]), i(8)),
        doc.clone()
    ));
    // startsWith on a field is a prefix query: a missing field is false
    let sw = || call("startsWith", false, vec![f("nope"), s("a")]);
    assert_eq!(tri(sw(), doc.clone()), Some(false));
    assert_eq!(tri_script(sw(), doc), None);
}

#[test]
fn optional_and_mapping_typed_fields() {
    let schema = Schema::from_mapping(&json!({"properties": {
        "ip": {"type": "ip"}, "v": {"type": "version"}, "d": {"type": "date"},
        "opt": {"type": "keyword", "null_value": "NULL"},
        "k": {"type": "keyword"}, "n": {"type": "long"},
        "pretty": {"type": "date", "format": "dd-MM-yyyy"}
    }}))
    .unwrap();
    let run = |cond: Expr, doc: serde_json::Value| {
        let p = compile(&query(cond), &schema, &CompileOptions::default()).unwrap();
        let ev = p.event(&doc);
        p.stages[0].matches(&ev)
    };
    assert!(run(
        call("cidrMatch", false, vec![f("ip"), s("10.0.0.0/8")]),
        json!({"ip": "10.1.2.3"})
    ));
    assert!(run(
        cmp(CmpOp::Gt, f("v"), s("1.5.0")),
        json!({"v": "1.11.3"})
    ));
    assert!(!run(
        cmp(CmpOp::Lt, f("v"), s("1.5.0")),
        json!({"v": "bad"})
    ));
    assert!(run(
        cmp(CmpOp::Gt, f("d"), s("1970-01-01T00:00:00.000Z")),
        json!({"d": 5})
    ));
    assert!(run(
        cmp(CmpOp::Eq, f("d"), i(5)),
        json!({"d": "1970-01-01T00:00:00.005Z"})
    ));
    assert!(run(
        cmp(CmpOp::Eq, f("opt"), s("NULL")),
        json!({"opt": null})
    ));
    assert!(!run(cmp(CmpOp::Eq, f("opt"), null()), json!({"opt": null})));
    assert!(run(cmp(CmpOp::Eq, of("unknown"), null()), json!({})));
    // unknown optional fields are null, and null == null
    assert!(run(cmp(CmpOp::Eq, of("u1"), of("u2")), json!({})));
    assert!(!run(cmp(CmpOp::Ne, of("u1"), of("u2")), json!({})));
    assert!(!run(cmp(CmpOp::Eq, of("u1"), of("u2")), json!({"u1": 1})));
    assert!(run(
        cmp(CmpOp::Eq, f("pretty"), s("02-01-1970")),
        json!({"pretty": "02-01-1970"})
    ));
    assert!(run(
        cmp(CmpOp::Gt, f("pretty"), s("1970-01-01")),
        json!({"pretty": "02-01-1970"})
    ));
    // literals take the mapped field's type, as a term query would
    assert!(run(cmp(CmpOp::Eq, f("k"), i(123)), json!({"k": "123"})));
    assert!(run(cmp(CmpOp::Eq, f("n"), s("5")), json!({"n": 5})));
    assert!(run(
        in_(f("n"), vec![s("5"), i(6)], false, false),
        json!({"n": 6})
    ));
}

#[test]
fn compile_rejects_wrong_types_and_unknown_functions() {
    let schema = Schema::from_mapping(&json!({"properties": {"pid": {"type": "long"}}})).unwrap();
    let bad = [
        call("length", false, vec![f("pid")]),
        call("nope", false, vec![]),
        call("add", false, vec![i(1)]),
        call("concat", true, vec![s("a")]),
        matching(MatchOp::Regex, false, f("x"), vec![s("~a")]),
        matching(MatchOp::Colon, true, f("x"), vec![f("y")]),
        cmp(CmpOp::Eq, f("a"), f("b")),
        cmp(CmpOp::Lt, call("length", false, vec![f("a")]), f("b")),
        i(1),
    ];
    for cond in bad {
        assert!(compile(&query(cond), &schema, &CompileOptions::default()).is_err());
    }
}

#[test]
fn category_filter_is_case_sensitive() {
    let q = Query {
        body: QueryBody::Event(EventQuery {
            category: Category::Named("process".into(), Span::default()),
            condition: e(ExprKind::Literal(Literal::Bool(true))),
            span: Span::default(),
        }),
        pipes: vec![],
        span: Span::default(),
    };
    let p = compile(&q, &Schema::default(), &CompileOptions::default()).unwrap();
    assert!(p.stages[0].matches(&p.event(&json!({"event": {"category": ["network", "process"]}}))));
    assert!(!p.stages[0].matches(&p.event(&json!({"event": {"category": "Process"}}))));
    assert!(!p.stages[0].matches(&p.event(&json!({}))));
}

#[test]
fn join_keys_fan_out_multi_values() {
    let seq = ast::Sequence {
        by: vec![f("a"), of("b")],
        maxspan: None,
        stages: vec![ast::SequenceStage {
            query: EventQuery {
                category: Category::Any(Span::default()),
                condition: e(ExprKind::Literal(Literal::Bool(true))),
                span: Span::default(),
            },
            by: vec![f("c")],
            runs: Some(ast::Runs {
                count: 2,
                span: Span::default(),
            }),
            missing: false,
            span: Span::default(),
        }],
        until: None,
        span: Span::default(),
    };
    let q = Query {
        body: QueryBody::Sequence(seq),
        pipes: vec![],
        span: Span::default(),
    };
    let p = compile(&q, &Schema::default(), &CompileOptions::default()).unwrap();
    assert_eq!(p.stages[0].runs, 2);
    let st = &p.stages[0];
    let mut keys = Vec::new();
    st.join_keys(
        &p.event(&json!({"a": [1, 2, 1, null], "c": ["x", "y"]})),
        &mut keys,
    );
    assert_eq!(keys.len(), 4);
    assert!(keys.contains(&vec![Value::Long(2), Value::Null, Value::str("y")]));
    st.join_keys(&p.event(&json!({"a": 1})), &mut keys);
    assert!(keys.is_empty(), "missing non-optional key gives no keys");
    st.join_keys(&p.event(&json!({"a": 1, "b": "q", "c": "x"})), &mut keys);
    assert_eq!(
        keys,
        vec![vec![Value::Long(1), Value::str("q"), Value::str("x")]]
    );
    assert!(p.fields().source_paths().contains(&"c"));
}
