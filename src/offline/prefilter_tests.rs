use super::*;
use crate::eql::compile::{compile, CompileOptions, Plan};
use crate::eql::schema::Schema;
use crate::eql::search::Matches;
use crate::offline::chunks::Chunk;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};

fn plan_and_prefilter(query: &str) -> Option<(Plan, Option<Prefilter>)> {
    let ast = crate::eql::parse(query).ok()?;
    if !crate::eql::verify(&ast).is_empty() {
        return None;
    }
    let opts = CompileOptions::default();
    let plan = compile(&ast, &Schema::default(), &opts).ok()?;
    let pre = Prefilter::for_query(&ast, &opts);
    Some((plan, pre))
}

/// Whether the offline path (decode the line, evaluate) finds a match.
fn offline_matches(plan: &Plan, line: &[u8]) -> bool {
    match plan.fields().decode_event(line) {
        Ok(event) => Matches::of(plan, &event).any(),
        Err(_) => false,
    }
}

/// The line as JSON writes it, and other legal spellings: every non-ASCII
/// character as `\u` escapes, every `/` as `\/`, every fraction with an
/// exponent, every ASCII letter and digit of a string as a `\u` escape.
pub(crate) fn spellings(doc: &Value) -> Vec<String> {
    let canonical = serde_json::to_string(doc).unwrap();
    let mut escaped = String::new();
    for c in canonical.chars() {
        if c.is_ascii() {
            escaped.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    let slashed = canonical.replace('/', "\\/");
    vec![
        canonical,
        escaped,
        slashed,
        with_exponents(doc),
        with_ascii_escapes(doc),
    ]
}

/// `doc` written with `string` for its strings (keys and values) and
/// `number` for its numbers, the rest as JSON writes it.
fn respelt(
    doc: &Value,
    string: &dyn Fn(&str) -> String,
    number: &dyn Fn(&Value) -> String,
) -> String {
    match doc {
        Value::String(s) => string(s),
        Value::Number(_) => number(doc),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| respelt(v, string, number)).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", string(k), respelt(v, string, number)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        other => other.to_string(),
    }
}

/// `doc` with every ASCII letter and digit of its strings (keys and
/// values) written as a `\u` escape (`a` as `\u0061`).
fn with_ascii_escapes(doc: &Value) -> String {
    let string = |s: &str| {
        let spelt: String = s
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() {
                true => format!("\\u{:04x}", c as u32),
                false => {
                    let quoted = Value::from(c.to_string()).to_string();
                    quoted[1..quoted.len() - 1].to_string()
                }
            })
            .collect();
        format!("\"{spelt}\"")
    };
    respelt(doc, &string, &Value::to_string)
}

/// `doc` with every fraction written with an exponent (`135.0` as
/// `1.35e2`).
fn with_exponents(doc: &Value) -> String {
    let number = |n: &Value| match n.as_f64() {
        Some(f) if n.is_f64() => format!("{f:e}"),
        _ => n.to_string(),
    };
    respelt(doc, &|s| Value::from(s).to_string(), &number)
}

#[test]
fn texts_are_required_as_json_spells_them_and_only_where_certain() {
    let (_, pre) =
        plan_and_prefilter(r#"process where process.name == "cmd.exe" and user.name == "a\"b""#)
            .unwrap();
    let pre = pre.unwrap();
    assert!(pre.may_match(br#"{"process":{"name":"cmd.exe"},"user":{"name":"a\"b"}}"#));
    // one of the two texts missing
    assert!(!pre.may_match(br#"{"process":{"name":"cmd.exe"},"user":{"name":"ab"}}"#));
    assert!(!pre.may_match(br#"{"process":{"name":"bash"},"user":{"name":"a\"b"}}"#));
    // another spelling of a character: decoded, whatever it holds
    assert!(pre.may_match(br#"{"process":{"name":"bash\u0021"}}"#));
    assert!(pre.may_match(br#"{"x":"C:\\\u0041"}"#));
    // an escaped backslash before `u` is no escape, nor `\u` without a
    // hex digit; `\/` spells only `/`, which no text holds
    assert!(!pre.may_match(br#"{"x":"C:\\users\\user32.dll"}"#));
    assert!(!pre.may_match(br#"{"x":"\user"}"#));
    assert!(!pre.may_match(br#"{"x":"a\/b"}"#));
    let (_, pre) = plan_and_prefilter(r#"any where url.path == "a/b""#).unwrap();
    let pre = pre.unwrap();
    assert!(pre.may_match(br#"{"url":{"path":"a\/b"}}"#));
    assert!(!pre.may_match(br#"{"url":{"path":"a\\/b"}}"#));
    // not an object: decoded, to say why it is a bad line
    assert!(pre.may_match(br#"["cmd.exe"]"#));
    assert!(pre.may_match(br#"{"process":"#));

    // numbers, numeric strings and metadata fields require nothing
    for q in [
        "any where destination.port == 135",
        r#"any where destination.port == "135""#,
        r#"any where destination.port : "1*5""#,
        r#"any where @timestamp == "2020-01-01""#,
        r#"any where _index == "winlogbeat""#,
    ] {
        let (_, pre) = plan_and_prefilter(q).unwrap();
        assert!(pre.is_none(), "{q}");
    }
    // a category is a text like any other; a number's digits are
    // required beside other texts, but kept where a line may spell the
    // number otherwise (an exponent, more digits than a double holds)
    let (plan, pre) = plan_and_prefilter("network where destination.port == 135").unwrap();
    let pre = pre.unwrap();
    assert!(!pre.may_match(br#"{"event":{"category":"process"},"destination":{"port":135}}"#));
    assert!(!pre.may_match(br#"{"event":{"category":"network"},"destination":{"port":1}}"#));
    assert!(!pre.may_match(br#"{"event":{"category":"network"},"destination":{"port":"13 5"}}"#));
    for line in [
        r#"{"event":{"category":"network"},"destination":{"port":135}}"#,
        r#"{"event":{"category":"network"},"destination":{"port":"0135"}}"#,
        r#"{"event":{"category":"network"},"destination":{"port":1.35e2}}"#,
        r#"{"event":{"category":"network"},"destination":{"port":"13.5E+1"}}"#,
        r#"{"event":{"category":"network"},"destination":{"port":134.99999999999999999}}"#,
    ] {
        assert!(offline_matches(&plan, line.as_bytes()), "{line}");
        assert!(pre.may_match(line.as_bytes()), "{line}");
    }
    // an `or` with a branch that requires nothing requires nothing
    let (_, pre) =
        plan_and_prefilter(r#"any where process.name == "cmd.exe" or process.pid > 4"#).unwrap();
    assert!(pre.is_none());
    // a sequence: a text of any stage
    let (_, pre) = plan_and_prefilter(
        r#"sequence [process where process.name == "cmd.exe"] [file where file.name : "*.dll"]"#,
    )
    .unwrap();
    let pre = pre.unwrap();
    assert!(pre.may_match(br#"{"file":{"name":"A.DLL"}}"#));
    assert!(pre.may_match(br#"{"event":{"category":"process"},"process":{"name":"cmd.exe"}}"#));
    assert!(!pre.may_match(br#"{"event":{"category":"file"},"file":{"name":"a.exe"}}"#));
}

#[test]
fn case_insensitive_texts_keep_every_non_ascii_line() {
    let (plan, pre) = plan_and_prefilter(r#"any where user.name : "kelvin""#).unwrap();
    let pre = pre.unwrap();
    // the Kelvin sign lower-cases to `k`: the evaluator matches
    let line = "{\"user\":{\"name\":\"\u{212A}elvin\"}}";
    assert!(offline_matches(&plan, line.as_bytes()));
    assert!(pre.may_match(line.as_bytes()));
    assert!(pre.may_match(br#"{"user":{"name":"KELVIN"}}"#));
    assert!(!pre.may_match(br#"{"user":{"name":"kevin"}}"#));
}

const FIELDS: &[&str] = &["a", "b.c", "process.name"];
const VALUES: &[&str] = &[
    "cmd.exe",
    "CMD.EXE",
    "a/b",
    "a\\b",
    "a\"b",
    "C:\\users",
    "C:\\u0x",
    "x y",
    "ünï",
    "ÜNÏ",
    "\u{212A}",
    "k",
    "K",
    "1",
    "1.0",
    "true",
];
const LITERALS: &[&str] = &[
    "cmd.exe",
    "cmd",
    "d.ex",
    "Cmd.Exe",
    "a/b",
    "a\\\\b",
    "a\\\"b",
    "C:\\\\users",
    "\\\\u",
    "x y",
    "ünï",
    "k",
    "1",
    "1.0",
    "true",
    "*.exe",
    "a?b",
    "*/*",
    "*u0x*",
    "K*",
];

/// Numbers, and strings the evaluator reads as numbers, equal to 135 but
/// for the last two.
const NUMBERS: &[&str] = &[
    "135",
    "135.0",
    "\"135\"",
    "\"1.35e2\"",
    "\"13.5E+1\"",
    "\"134.99999999999999999\"",
    "\" 0135 \"",
    "1350e-1",
    "134.999999999999999999",
    "136",
    "\"13 5\"",
];

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0..VALUES.len()).prop_map(|i| json!(VALUES[i])),
        4 => (0..NUMBERS.len()).prop_map(|i| serde_json::from_str(NUMBERS[i]).unwrap()),
        1 => prop_oneof![Just(json!(1)), Just(json!(1.0)), Just(json!(true)), Just(Value::Null)],
        1 => proptest::collection::vec((0..VALUES.len()).prop_map(|i| json!(VALUES[i])), 0..3)
            .prop_map(Value::Array),
    ]
}

fn arb_doc() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec((0..FIELDS.len(), arb_value(), any::<bool>()), 0..4),
        prop_oneof![Just("process"), Just("file"), Just("Process")],
    )
        .prop_map(|(pairs, category)| {
            let mut doc = json!({ "event": { "category": category } });
            for (i, v, flat) in pairs {
                let name = FIELDS[i];
                match name.split_once('.') {
                    Some((head, tail)) if !flat => {
                        doc[head] = json!({ tail: v });
                    }
                    _ => doc[name] = v,
                }
            }
            doc
        })
}

fn arb_condition() -> impl Strategy<Value = String> {
    let leaf = (
        0..FIELDS.len(),
        prop_oneof![
            Just("=="),
            Just(":"),
            Just("like~"),
            Just("like"),
            Just("in"),
            Just("in~"),
            Just("!=")
        ],
        proptest::collection::vec(0..LITERALS.len(), 1..3),
    )
        .prop_map(|(f, op, lits)| {
            let lits: Vec<String> = lits
                .iter()
                .map(|&i| format!("\"{}\"", LITERALS[i]))
                .collect();
            match op {
                "in" | "in~" => format!("{} {op} ({})", FIELDS[f], lits.join(", ")),
                _ => format!("{} {op} {}", FIELDS[f], lits[0]),
            }
        });
    let number = (
        0..FIELDS.len(),
        prop_oneof![Just("=="), Just("!="), Just("in")],
        prop_oneof![4 => Just("135"), 1 => Just("135.0"), 1 => Just("7"), 1 => Just("0")],
    )
        .prop_map(|(f, op, n)| match op {
            "in" => format!("{} in ({n}, 7)", FIELDS[f]),
            _ => format!("{} {op} {n}", FIELDS[f]),
        });
    let leaf = prop_oneof![3 => leaf, 2 => number];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("not ({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
        ]
    })
}

fn arb_query() -> impl Strategy<Value = String> {
    let category = prop_oneof![Just("process"), Just("any"), Just("file")];
    prop_oneof![
        (category.clone(), arb_condition()).prop_map(|(c, e)| format!("{c} where {e}")),
        (category.clone(), arb_condition(), category, arb_condition())
            .prop_map(|(c1, e1, c2, e2)| format!("sequence [{c1} where {e1}] [{c2} where {e2}]")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    /// Every line the offline path matches, in any spelling, passes the
    /// prefilter.
    #[test]
    fn no_line_the_query_matches_is_ruled_out(query in arb_query(), doc in arb_doc()) {
        let Some((plan, Some(pre))) = plan_and_prefilter(&query) else {
            return Ok(());
        };
        for line in spellings(&doc) {
            if offline_matches(&plan, line.as_bytes()) {
                prop_assert!(pre.may_match(line.as_bytes()), "{query} ruled out {line}");
            }
        }
    }

    /// The same of the pushdown filter's own matches (the NDJSON source
    /// selects with the filter before any query sees an event).
    #[test]
    fn no_line_the_pushdown_filter_passes_is_ruled_out(query in arb_query(), doc in arb_doc()) {
        let Ok(ast) = crate::eql::parse(&query) else { return Ok(()) };
        let opts = CompileOptions::default();
        let filter = crate::eql::pushdown::pushdown(&ast, &opts.event_category_field);
        let Some(pre) = Prefilter::for_filter(&filter, &opts) else { return Ok(()) };
        if filter.matches(&doc) {
            for line in spellings(&doc) {
                prop_assert!(pre.may_match(line.as_bytes()), "{query} ruled out {line}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    /// Judged a chunk at a time (one search of the chunk, then only the
    /// lines with a hit), every line gets the verdict it gets alone: in
    /// every spelling, with lines that are broken, blank or not UTF-8
    /// between them.
    #[test]
    fn a_chunk_rules_out_what_its_lines_rule_out(
        query in arb_query(),
        docs in prop::collection::vec(arb_doc(), 1..6),
        junk in prop::collection::vec(0usize..4, 1..6),
    ) {
        let Some((_, Some(pre))) = plan_and_prefilter(&query) else {
            return Ok(());
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for (doc, j) in docs.iter().zip(junk.iter().cycle()) {
            lines.extend(spellings(doc).into_iter().map(String::into_bytes));
            lines.push(match j {
                0 => b"{\"cut\": \"taskschd".to_vec(),
                1 => b"{\"bad\": \"\xff\"}".to_vec(),
                2 => b"[1]".to_vec(),
                _ => b"{\"x\":\"C:\\\\users\\\\a\"}".to_vec(),
            });
        }
        let chunk = lines.join(&b'\n');
        let mut hits = pre.hits(&chunk);
        let mut start = 0usize;
        for line in &lines {
            let alone = !pre.may_match(line);
            if let Some(hits) = hits.as_mut() {
                prop_assert_eq!(
                    pre.rules_out(line, start, hits),
                    alone,
                    "{} on {}",
                    query,
                    String::from_utf8_lossy(line)
                );
            }
            start += line.len() + 1;
        }
    }
}

/// A line as a chunk gives it: its place, offset and bytes.
type Given = (u64, u64, Vec<u8>);

/// The lines `for_each_kept` gives of `chunk` (at byte 1000 of its input),
/// and those `for_each_line` gives that `may_match` keeps.
fn kept_and_expected(pre: &Prefilter, chunk: &[u8]) -> (Vec<Given>, Vec<Given>) {
    let chunk = Chunk::new(1000, std::borrow::Cow::Borrowed(chunk));
    let mut kept = Vec::new();
    for_each_kept(Some(pre), &chunk, |line, offset, bytes| {
        kept.push((line, offset, bytes.to_vec()))
    });
    let counted = chunk.lines();
    let mut expected = Vec::new();
    let fresh = Chunk::new(1000, chunk.bytes.clone());
    fresh.for_each_line(|line, offset, bytes| {
        if pre.may_match(bytes) {
            expected.push((line, offset, bytes.to_vec()));
        }
    });
    assert_eq!(counted, fresh.lines(), "lines counted");
    (kept, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    /// A chunk's kept lines are those kept alone, with the same numbers
    /// and offsets (and the chunk counts its lines alike): plainly laid out
    /// chunks, whose lines without a hit are not walked over, and others
    /// (a broken, blank or spaced line among them).
    #[test]
    fn a_chunk_keeps_the_lines_kept_alone(
        query in arb_query(),
        docs in prop::collection::vec(arb_doc(), 1..8),
        junk in prop::collection::vec(prop::option::weighted(0.2, 0usize..5), 1..8),
        terminated in any::<bool>(),
    ) {
        let Some((_, Some(pre))) = plan_and_prefilter(&query) else {
            return Ok(());
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for (doc, j) in docs.iter().zip(junk.iter().cycle()) {
            lines.extend(spellings(doc).into_iter().map(String::into_bytes));
            if let Some(j) = j {
                lines.push(match j {
                    0 => b"{\"cut\": \"taskschd".to_vec(),
                    1 => b"{\"bad\": \"\xff\"}".to_vec(),
                    2 => b"".to_vec(),
                    3 => b"  {\"x\":\"powershell.exe\"} \r".to_vec(),
                    _ => b"{\"accent\": \"\xc3\xa9\"}".to_vec(),
                });
            }
        }
        let mut chunk = lines.join(&b'\n');
        if terminated {
            chunk.push(b'\n');
        }
        let (kept, expected) = kept_and_expected(&pre, &chunk);
        prop_assert_eq!(kept, expected, "{}", query);
    }
}

#[test]
fn a_plain_chunk_gives_the_lines_with_texts_and_counts_the_others() {
    let pre = plan_and_prefilter(r#"process where process.name == "taskschd.exe""#)
        .unwrap()
        .1
        .unwrap();
    let other = br#"{"process":{"name":"cmd.exe"}}"#;
    let hit = br#"{"process":{"name":"taskschd.exe"}}"#;
    let near = br#"{"process":{"name":"cmd.exe"},"file":"taskschd.exe"}"#;
    let lines: Vec<&[u8]> = vec![other, hit, other, other, near, other, hit, other];
    let chunk = lines.join(&b'\n');
    assert!(Chunk::new(0, std::borrow::Cow::Borrowed(&chunk[..]))
        .plain_lines()
        .is_some());
    let (kept, expected) = kept_and_expected(&pre, &chunk);
    let numbers: Vec<u64> = kept.iter().map(|k| k.0).collect();
    // the line holding the text where the query does not look is kept too:
    // the prefilter needs the text, not its place
    assert_eq!(numbers, [1, 4, 6]);
    assert_eq!(kept, expected);
    assert_eq!(
        kept[1].1,
        1000 + (4 * (other.len() + 1) - other.len() + hit.len()) as u64
    );
}

#[test]
fn the_generated_cases_exercise_both_sides() {
    // The property above says nothing if no line is ruled out or no query
    // has a prefilter: count both over a fixed sample.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut with_prefilter, mut ruled_out, mut matched) = (0, 0, 0);
    for _ in 0..2000 {
        let query = arb_query().new_tree(&mut runner).unwrap().current();
        let doc = arb_doc().new_tree(&mut runner).unwrap().current();
        let Some((plan, Some(pre))) = plan_and_prefilter(&query) else {
            continue;
        };
        with_prefilter += 1;
        let line = serde_json::to_string(&doc).unwrap();
        if !pre.may_match(line.as_bytes()) {
            ruled_out += 1;
        }
        if offline_matches(&plan, line.as_bytes()) {
            matched += 1;
        }
    }
    assert!(with_prefilter > 500, "{with_prefilter}");
    assert!(ruled_out > 200, "{ruled_out}");
    assert!(matched > 50, "{matched}");
}

/// Whether a chunk of an object line without texts and then `line`
/// rules out each: the verdicts from the chunk's one search.
fn chunk_verdicts(pre: &Prefilter, line: &[u8]) -> (bool, bool) {
    let other = br#"{"a":1}"#;
    let chunk = [&other[..], line].join(&b'\n');
    let mut hits = pre.hits(&chunk).unwrap();
    let first = pre.rules_out(other, 0, &mut hits);
    (first, pre.rules_out(line, other.len() + 1, &mut hits))
}

#[test]
fn a_text_starting_inside_an_escaped_backslash_and_u_is_found() {
    // `C:\\u0x` is `C:\u0x`: `\u0` there is no escape, and the text
    // `u0x` starts within it
    let (plan, pre) = plan_and_prefilter(r#"any where process.name like "*u0x*""#).unwrap();
    let line = br#"{"process":{"name":"C:\\u0x"}}"#;
    assert!(offline_matches(&plan, line));
    assert_eq!(chunk_verdicts(&pre.unwrap(), line), (true, false));
}

#[test]
fn a_text_found_within_a_longer_one_at_the_same_place_counts() {
    // `cmd` is searched for as stage 1's text and counts for stage 2's
    // second clause; where `cmd.exe` is found, `cmd` is there too (in any
    // case, for case-insensitive texts)
    for (query, line) in [
        (
            r#"sequence [any where a == "cmd"] [any where b.c == "cmd.exe" and a == "cmd"]"#,
            &br#"{"b":{"c":"cmd.exe"}}"#[..],
        ),
        (
            r#"sequence [any where a : "cmd"] [any where b.c : "cmd.exe" and a : "cmd"]"#,
            &br#"{"b":{"c":"CMD.Exe"}}"#[..],
        ),
    ] {
        let pre = plan_and_prefilter(query).unwrap().1.unwrap();
        assert!(pre.may_match(line), "{query}");
        assert_eq!(chunk_verdicts(&pre, line), (true, false), "{query}");
    }
}
