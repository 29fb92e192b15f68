use super::*;
use crate::filter::{compile, EvalOptions, FieldTypes, Unmapped};
use crate::kql::lucene::{self, LuceneOptions};
use crate::kql::{self, KqlOptions};
use crate::offline::prefilter::tests::spellings;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};

/// A KQL or Lucene query as a query rule's tree, without a mapping.
fn tree(language: &str, query: &str) -> Option<Filter> {
    match language {
        "kql" => {
            let node = kql::parse(query).ok()?;
            kql::lower(&node, None, &KqlOptions::detection_rules()).ok()
        }
        _ => Some(lucene::to_filter(query, &LuceneOptions::detection_rules())),
    }
}

fn prefilter(tree: &Filter) -> Option<Prefilter> {
    Prefilter::for_tree(tree, &Pushdown::MatchAll, &CompileOptions::default())
}

/// Whether the evaluator (dynamic mapping, as `hunt` without `--mapping`)
/// matches `doc`; `None` when it cannot evaluate the tree.
fn evaluator_matches(tree: &Filter, doc: &Value) -> Option<bool> {
    let opts = EvalOptions {
        unmapped: Unmapped::Dynamic,
    };
    let m = compile(tree, &FieldTypes::default(), &opts).ok()?;
    let now = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
    Some(m.matches(doc, now))
}

fn kql_prefilter(query: &str) -> Prefilter {
    prefilter(&tree("kql", query).unwrap()).unwrap()
}

#[test]
fn a_match_needs_a_token_in_any_case_and_a_phrase_every_token() {
    let pre = kql_prefilter("process.name: cmd.exe");
    assert!(pre.may_match(br#"{"process":{"name":"CMD.EXE"}}"#));
    assert!(pre.may_match(br#"{"process":{"name":"C:\\x\\cmd.exe"}}"#));
    assert!(!pre.may_match(br#"{"process":{"name":"bash"}}"#));
    let pre = kql_prefilter(r#"message: "hello world""#);
    assert!(pre.may_match(br#"{"message":"Hello, World"}"#));
    assert!(!pre.may_match(br#"{"message":"hello there"}"#));
    let pre = kql_prefilter("message: hello world");
    assert!(pre.may_match(br#"{"message":"world"}"#));
    assert!(!pre.may_match(br#"{"message":"other"}"#));
}

#[test]
fn what_may_be_spelt_otherwise_requires_nothing() {
    // dates (epoch, ISO, date math), numbers, negations and ranges
    for q in [
        "event.created: 2024-01-01",
        "event.created: now",
        "destination.port: 135",
        "not process.name: cmd.exe",
        "process.pid >= 4",
        "process.name: *",
        "process.name: (cmd.exe or 4)",
    ] {
        assert!(prefilter(&tree("kql", q).unwrap()).is_none(), "{q}");
    }
    // a wildcard's longest piece, but not across an escape
    let pre = kql_prefilter("process.name: *owersh*");
    assert!(pre.may_match(br#"{"process":{"name":"PowerShell.exe"}}"#));
    assert!(!pre.may_match(br#"{"process":{"name":"cmd.exe"}}"#));
    assert!(prefilter(&tree("lucene", r"process.name:pow\*sh*").unwrap()).is_none());
}

#[test]
fn filters_and_exceptions_narrow_what_the_query_requires() {
    // the query's OR stays whole, the filter's text is added to it, an
    // exception (a NOT) adds nothing
    let t = Filter::and(vec![
        tree("kql", "process.name: (cmd.exe or pwsh.exe)").unwrap(),
        tree("kql", "user.name: admin").unwrap(),
        Filter::Not(Box::new(tree("kql", "host.name: lab").unwrap())),
    ]);
    let pre = prefilter(&t).unwrap();
    assert!(pre.may_match(
        br#"{"process":{"name":"pwsh.exe"},"user":{"name":"admin"},"host":{"name":"lab"}}"#
    ));
    assert!(!pre.may_match(br#"{"process":{"name":"pwsh.exe"},"user":{"name":"root"}}"#));
    assert!(!pre.may_match(br#"{"process":{"name":"bash"},"user":{"name":"admin"}}"#));
}

const FIELDS: &[&str] = &[
    "process.name",
    "process.name.keyword",
    "message",
    "user.name",
    "event.category",
];

const DOC_VALUES: &[&str] = &[
    "cmd.exe",
    "CMD.EXE",
    "C:\\Windows\\cmd.exe",
    "Hello World again",
    "hello-world",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "now",
    "user60",
    "a/b c",
    "café",
    "\u{212A}elvin",
    "true",
    "135",
    "",
];

const QUERY_VALUES: &[&str] = &[
    "cmd.exe",
    "CMD.exe",
    "\"hello world\"",
    "hello",
    "world again",
    "2024-01-01",
    "now-1d",
    "\"now\"",
    "user*",
    "*md.ex*",
    "c?d.exe",
    "135",
    "true",
    "café",
    "kelvin",
    "a/b",
    "*",
    "\"C:\\\\Windows\\\\cmd.exe\"",
];

fn arb_doc_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        5 => (0..DOC_VALUES.len()).prop_map(|i| json!(DOC_VALUES[i])),
        1 => prop_oneof![Just(json!(135)), Just(json!(1.5)), Just(json!(true)), Just(Value::Null)],
        1 => proptest::collection::vec((0..DOC_VALUES.len()).prop_map(|i| json!(DOC_VALUES[i])), 0..3)
            .prop_map(Value::Array),
    ]
}

fn arb_doc() -> impl Strategy<Value = Value> {
    proptest::collection::vec((0..FIELDS.len(), arb_doc_value(), any::<bool>()), 1..7).prop_map(
        |pairs| {
            let mut doc = json!({});
            for (i, v, flat) in pairs {
                // `x.keyword` is read from `x`
                let name = FIELDS[i].trim_end_matches(".keyword");
                match name.split_once('.') {
                    Some((head, tail)) if !flat => doc[head] = json!({ tail: v }),
                    _ => doc[name] = v,
                }
            }
            doc
        },
    )
}

/// A KQL query, or the Lucene one written the same way.
fn arb_query() -> impl Strategy<Value = (&'static str, String)> {
    let leaf = (
        0..FIELDS.len() + 1,
        proptest::collection::vec(0..QUERY_VALUES.len(), 1..3),
    )
        .prop_map(|(f, vs)| {
            let values: Vec<&str> = vs.iter().map(|&i| QUERY_VALUES[i]).collect();
            match FIELDS.get(f) {
                // free text: every field
                None => values[0].to_string(),
                Some(field) if values.len() > 1 => format!("{field}: ({})", values.join(" or ")),
                Some(field) => format!("{field}: {}", values[0]),
            }
        });
    let query = leaf.prop_recursive(3, 10, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("not ({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
        ]
    });
    (prop_oneof![Just("kql"), Just("lucene")], query).prop_map(|(language, q)| {
        let q = match language {
            "lucene" => q
                .replace(": ", ":")
                .replace(" or ", " OR ")
                .replace("not (", "NOT ("),
            _ => q,
        };
        (
            language,
            q.replace(" and ", if language == "kql" { " and " } else { " AND " }),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8000))]
    /// Every line the evaluator matches without a mapping, in any of
    /// JSON's spellings, passes the prefilter of the tree.
    #[test]
    fn no_line_the_tree_matches_is_ruled_out((language, query) in arb_query(), doc in arb_doc()) {
        let Some(t) = tree(language, &query) else { return Ok(()) };
        let Some(pre) = prefilter(&t) else { return Ok(()) };
        if evaluator_matches(&t, &doc) == Some(true) {
            for line in spellings(&doc) {
                prop_assert!(pre.may_match(line.as_bytes()), "{language} {query} ruled out {line}");
            }
        }
    }
}

#[test]
fn the_generated_cases_exercise_both_sides() {
    // The property says nothing if no tree has a prefilter, none rules a
    // line out or none matches: count each over a fixed sample.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut with_prefilter, mut ruled_out, mut matched, mut lucene) = (0, 0, 0, 0);
    for _ in 0..3000 {
        let (language, query) = arb_query().new_tree(&mut runner).unwrap().current();
        let doc = arb_doc().new_tree(&mut runner).unwrap().current();
        let Some(t) = tree(language, &query) else {
            continue;
        };
        let Some(pre) = prefilter(&t) else {
            continue;
        };
        with_prefilter += 1;
        lucene += usize::from(language == "lucene");
        let line = serde_json::to_string(&doc).unwrap();
        if !pre.may_match(line.as_bytes()) {
            ruled_out += 1;
        } else if evaluator_matches(&t, &doc) == Some(true) {
            matched += 1;
        }
    }
    assert!(with_prefilter > 600, "{with_prefilter}");
    assert!(lucene > 250, "{lucene}");
    assert!(ruled_out > 200, "{ruled_out}");
    assert!(matched > 40, "{matched}");
}
