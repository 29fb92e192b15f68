use super::*;
use crate::eql::parse;

fn errors(src: &str) -> Vec<(ErrorKind, String, String)> {
    let query = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    verify(&query)
        .into_iter()
        .map(|e| (e.kind, src[e.span.range()].to_string(), e.message))
        .collect()
}

fn messages(src: &str) -> Vec<String> {
    errors(src).into_iter().map(|(_, _, m)| m).collect()
}

fn ok(src: &str) {
    assert_eq!(errors(src), vec![], "{src}");
}

#[test]
fn valid_queries_have_no_errors() {
    for src in [
        "process where startsWith(process.name, \"cmd\") and length(x) > 2",
        "process where STARTSWITH~(process.name, \"CMD\") and endsWith~(a, \"b\")",
        "process where between(a, \"x\", \"y\") == \"z\" and between~(a, \"x\", \"y\", true) == \"\"",
        "process where cidrMatch(source.ip, \"10.0.0.0/8\", \"192.168.0.0/16\")",
        "process where concat(a) == \"x\" and concat(a, 1, b, null) == \"y\"",
        "process where indexOf(a, \"x\") == 1 and indexOf~(a, \"x\", 2) == 3",
        "process where number(a) == 1 and number(a, 16) == 2 and string(1) == \"1\"",
        "process where substring(a, 1) == \"x\" and substring(a, 1, -1) == \"x\"",
        "process where add(1, 2) == subtract(a, 1) and multiply(a, 2) == 4 and divide(a, 2) + modulo(a, 2) < 1.5",
        "process where stringContains~(a, \"b\")",
        "process where a == null and null == b and (a + 1) * 2 > -3",
        "process where ?x == ?y and ?a in (?b, \"c\") and a == ?b",
        "process where length(a) == 3 and startsWith(a, b)",
        "process where a",
        "process where null",
        "sequence by user.name with maxspan=1m [a where true] by x [b where true] by y until [c where true] by z | head 0",
        "sequence [a where true] with runs=2",
        "sequence with maxspan=1s [a where true] ![b where true] [c where true] with runs=100",
        "sample by host [a where true] [b where true]",
        "sample [a where true] by x [b where true] by y [c where true] by z [d where true] by w [e where true] by v",
    ] {
        ok(src);
    }
}

#[test]
fn unknown_functions_suggest_close_names() {
    assert_eq!(
        errors("process where startWith(a, \"b\")"),
        vec![(
            ErrorKind::Semantic,
            "startWith(a, \"b\")".into(),
            "unknown function [startWith], did you mean [startsWith]?".into()
        )]
    );
    assert_eq!(
        messages("process where frobnicate(a)"),
        vec!["unknown function [frobnicate]"]
    );
}

#[test]
fn arity() {
    let cases = [
        (
            "between(a, \"b\")",
            "function [between] expects 3 to 4 arguments, found [2]",
        ),
        (
            "between(a, \"b\", \"c\", true, 1)",
            "function [between] expects 3 to 4 arguments, found [5]",
        ),
        (
            "cidrMatch(a)",
            "function [cidrMatch] expects at least 2 arguments, found [1]",
        ),
        (
            "concat()",
            "function [concat] expects at least 1 arguments, found [0]",
        ),
        (
            "indexOf(a)",
            "function [indexOf] expects 2 to 3 arguments, found [1]",
        ),
        (
            "length(a, b)",
            "function [length] expects exactly 1 argument, found [2]",
        ),
        (
            "number(a, 1, 2)",
            "function [number] expects 1 to 2 arguments, found [3]",
        ),
        (
            "substring(a)",
            "function [substring] expects 2 to 3 arguments, found [1]",
        ),
        (
            "add(1)",
            "function [add] expects exactly 2 arguments, found [1]",
        ),
        (
            "string()",
            "function [string] expects exactly 1 argument, found [0]",
        ),
    ];
    for (call, message) in cases {
        let src = format!("process where {call} == 1");
        assert_eq!(messages(&src), vec![message.to_string()], "{src}");
    }
}

#[test]
fn tilde_only_on_case_aware_functions() {
    for name in [
        "between",
        "endsWith",
        "indexOf",
        "startsWith",
        "stringContains",
    ] {
        let src = format!("process where {name}~(a, \"b\", \"c\") != null");
        let errs = messages(&src);
        assert!(
            errs.iter().all(|m| !m.contains("case-insensitive")),
            "{src}: {errs:?}"
        );
    }
    for (call, name) in [
        ("length~(a)", "length"),
        ("concat~(a)", "concat"),
        ("cidrMatch~(a, \"10.0.0.0/8\")", "cidrMatch"),
        ("number~(a)", "number"),
        ("add~(1, 2)", "add"),
    ] {
        let src = format!("process where {call} != null");
        assert_eq!(
            messages(&src),
            vec![format!(
                "function [{name}] does not support case-insensitive matching [~]"
            )],
            "{src}"
        );
    }
}

#[test]
fn argument_and_operand_types() {
    assert_eq!(
        errors("process where length(5) == 1"),
        vec![(
            ErrorKind::Semantic,
            "5".into(),
            "first argument of [length] must be [string], found [5] of type [integer]".into()
        )]
    );
    assert_eq!(
        messages("process where substring(a, 1.5) == \"x\""),
        vec!["second argument of [substring] must be [integer], found [1.5] of type [double]"]
    );
    assert_eq!(
        messages("process where cidrMatch(ip, range) and between(a, \"b\", \"c\", 1) == \"\""),
        vec![
            "second argument of [cidrMatch] must be a constant, found [range]",
            "fourth argument of [between] must be [boolean], found [1] of type [integer]",
        ]
    );
    assert_eq!(
        messages("process where \"a\" + 1 == 2 and -true == 1"),
        vec![
            "operand of [+] must be numeric, found [\"a\"] of type [string]",
            "operand of [-] must be numeric, found [true] of type [boolean]",
        ]
    );
    assert_eq!(
        messages("process where 1 and not \"x\""),
        vec![
            "operand of [and] must be boolean, found [1] of type [integer]",
            "operand of [not] must be boolean, found [\"x\"] of type [string]",
        ]
    );
    assert_eq!(
        messages("process where length(a)"),
        vec!["condition must be boolean, found [length(a)] of type [integer]"]
    );
}

#[test]
fn comparisons_between_fields() {
    assert_eq!(
        errors("process where (a < 9 and b >= 7) or opcode == pid"),
        vec![(
            ErrorKind::Unsupported,
            "pid".into(),
            "comparisons against fields are not supported by Elasticsearch EQL, found [pid] in [==]"
                .into()
        )]
    );
    assert_eq!(
        messages("process where not a + 1 > b"),
        vec!["comparisons against fields are not supported by Elasticsearch EQL, found [b] in [>]"]
    );
    assert_eq!(
        messages("process where name in (parent_name, \"SYSTEM\")"),
        vec!["comparisons against fields are not supported by Elasticsearch EQL, found [parent_name] in [name in (...)]"]
    );
    // optional fields may resolve to null, and function arguments run as scripts
    ok("process where ?x == ?y and a == ?b and stringContains(a, b)");
    ok("process where string(a == b) == \"true\"");
}

#[test]
fn join_keys_must_be_fields() {
    assert_eq!(
        errors("sequence by a, length(b) [x where true] [y where true]"),
        vec![(
            ErrorKind::Unsupported,
            "length(b)".into(),
            "join keys must be field names, found [length(b)]".into()
        )]
    );
}

#[test]
fn sequence_shape() {
    assert_eq!(
        messages("sequence [a where true]"),
        vec!["a sequence requires a minimum of 2 queries, found [1]"]
    );
    assert_eq!(
        messages("sequence with maxspan=1s ![a where true] ![b where true]"),
        vec!["a sequence requires at least one positive event query, found only missing events [![...]]"]
    );
    assert_eq!(
        errors("sequence [a where true] ![b where true] [c where true]"),
        vec![(
            ErrorKind::Semantic,
            "![b where true]".into(),
            "missing events [![...]] require [with maxspan] on the sequence".into()
        )]
    );
    assert_eq!(
        messages(
            "sequence with maxspan=1s [a where true] [b where true] until ![c where true] with runs=2"
        ),
        vec![
            "[until] cannot be a missing event [![...]]",
            "[until] cannot be repeated with [with runs]",
        ]
    );
    assert_eq!(
        messages("sequence with maxspan=0s [a where true] [b where true]"),
        vec!["a positive maxspan value is required, found [0s]"]
    );
    assert_eq!(
        messages("sequence [a where true] with runs=0 [b where true] with runs=101"),
        vec![
            "a positive runs value is required, found [0]",
            "a query cannot be repeated more than 100 times, found [101]",
        ]
    );
}

#[test]
fn join_key_counts() {
    assert_eq!(
        errors("sequence by u [a where true] by x [b where true] by y, z"),
        vec![(
            ErrorKind::Semantic,
            "y, z".into(),
            "inconsistent number of join keys specified, expected [1] but found [2]".into()
        )]
    );
    assert_eq!(
        messages("sequence [a where true] by x [b where true] by y until [c where true]"),
        vec!["inconsistent number of join keys specified, expected [1] but found [0]"]
    );
    assert_eq!(
        messages("sample [a where true] by x [b where true]"),
        vec!["inconsistent number of join keys specified, expected [1] but found [0]"]
    );
}

#[test]
fn sample_shape() {
    assert_eq!(
        messages("sample by h [a where true]"),
        vec!["a sample requires a minimum of 2 queries, found [1]"]
    );
    let six = "[a where true] ".repeat(6);
    assert_eq!(
        messages(&format!("sample by h {six}")),
        vec!["a sample must contain at most 5 queries, found [6]"]
    );
    assert_eq!(
        messages("sample [a where true] [b where true]"),
        vec!["a sample requires at least one join key ([sample by ...] or [...] by ...)"]
    );
}

#[test]
fn pipe_sizes() {
    ok("process where true | head 2147483647 | tail 0");
    assert_eq!(
        messages("process where true | head 2147483648"),
        vec!["pipe [head] expects an integer up to 2147483647, found [2147483648]"]
    );
}

#[test]
fn messages_quote_at_most_a_snippet() {
    let list = (0..100)
        .map(|i| format!("f{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let errs = messages(&format!("process where x in ({list})"));
    assert_eq!(errs.len(), 100);
    assert_eq!(
        errs[99],
        "comparisons against fields are not supported by Elasticsearch EQL, found [f99] in [x in (...)]"
    );
    let long = format!("process where length(\"{}\") > \"a\" + 1", "x".repeat(200));
    let errs = messages(&long);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0],
        "operand of [+] must be numeric, found [\"a\"] of type [string]"
    );
    let errs = messages(&format!("process where \"{}\"", "y".repeat(200)));
    assert_eq!(
        errs[0],
        format!(
            "condition must be boolean, found [\"{}...] of type [string]",
            "y".repeat(79)
        )
    );
}

#[test]
fn all_errors_are_reported_in_order() {
    let errs =
        messages("sequence [a where foo(1)] with runs=0 [b where length(1, 2) and startsWith~(x)]");
    assert_eq!(
        errs,
        vec![
            "a sequence requires a minimum of 2 queries, found [1]",
            "unknown function [foo]",
            "a positive runs value is required, found [0]",
            "operand of [and] must be boolean, found [length(1, 2)] of type [integer]",
            "function [length] expects exactly 1 argument, found [2]",
            "function [startsWith] expects exactly 2 arguments, found [1]",
        ]
    );
}
