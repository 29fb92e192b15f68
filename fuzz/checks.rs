//! The checks behind the fuzz targets, shared with the smoke test.
//!
//! This file is compiled twice: into the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, nightly, libFuzzer) and into the ordinary
//! test `tests/fuzz_smoke.rs`, which replays every committed seed and crash
//! reproducer on stable. Keeping one copy means a seed that passes the smoke
//! test passes exactly the checks the fuzzer ran.
//!
//! A check "fails" by panicking: that is what libFuzzer records as a crash
//! and what a `#[test]` reports as a failure.

use detectd::eql::compile::{compile, CompileOptions, Plan, PlanKind};
use detectd::eql::event::Event;
use detectd::eql::schema::Schema;
use detectd::eql::search::{self, SearchOptions, Stream};
use detectd::eql::sequence::Ordinal;
use serde_json::Value as Json;

/// Parser round trip: bytes that are UTF-8 and parse must verify and print
/// without panicking, and the printed text must parse back to the same tree
/// (spans aside). Bytes that are not UTF-8 or do not parse are fine as long
/// as nothing panicked on the way.
pub fn check_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = detectd::eql::parse(text) else {
        return;
    };
    // Verification may report problems; it must not panic.
    let _ = detectd::eql::verify(&query);
    let printed = query.to_string();
    let again = match detectd::eql::parse(&printed) {
        Ok(q) => q,
        Err(e) => panic!(
            "printed query does not parse again: {e}\n input: {text:?}\n printed: {printed:?}"
        ),
    };
    assert!(
        again.eq_ignoring_spans(&query),
        "round trip changed the query\n input: {text:?}\n printed: {printed:?}\n reprinted: {:?}",
        again.to_string()
    );
}

/// The fixed queries of the `eval` target: corpus rules chosen for variety
/// (event queries, sequences with `maxspan`/`until`, the founding rule,
/// samples, functions, regex, `cidrmatch`, wildcards), separated by `%%`
/// lines; a leading `# path` line names the rule file.
const EVAL_QUERIES: &str = include_str!("eval_queries.txt");

/// The `eval` target's compiled plans: built once per process.
pub struct EvalHarness {
    plans: Vec<(String, Plan)>,
}

impl Default for EvalHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl EvalHarness {
    /// Parses and compiles every query of `eval_queries.txt` with no mapping
    /// (as for an index without one). These are known-good corpus rules: one
    /// that fails to compile is a bug in the harness, so it panics.
    pub fn new() -> Self {
        let schema = Schema::default();
        let opts = CompileOptions::default();
        let plans = EVAL_QUERIES
            .split("\n%%\n")
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|block| {
                let (name, text) = match block.strip_prefix("# ") {
                    Some(rest) => rest.split_once('\n').unwrap_or((rest, "")),
                    None => ("<unnamed>", block),
                };
                let query = detectd::eql::parse(text)
                    .unwrap_or_else(|e| panic!("{name}: does not parse: {e}"));
                let plan = compile(&query, &schema, &opts)
                    .unwrap_or_else(|e| panic!("{name}: does not compile: {e}"));
                (name.to_string(), plan)
            })
            .collect();
        EvalHarness { plans }
    }

    /// How many queries the harness runs.
    pub fn query_count(&self) -> usize {
        self.plans.len()
    }

    /// Runs `data`, split into NDJSON lines, through every plan: each line
    /// is decoded with `decode_event` and, when serde_json parses it, built
    /// with `plan.event`; the two must agree (both reject, or both give the
    /// same event). Every stage's condition is evaluated on each event, and
    /// the events go through a [`Stream`] in the order Elasticsearch would
    /// see them (time order, untimed last; input order for samples), which
    /// is then finished and turned into hits. Nothing may panic. Returns
    /// each query's name (its rule file) and hit total.
    pub fn check(&self, data: &[u8]) -> Vec<(&str, u64)> {
        let lines: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .collect();
        self.plans
            .iter()
            .map(|(name, plan)| (name.as_str(), run_plan(name, plan, &lines)))
            .collect()
    }
}

fn run_plan(name: &str, plan: &Plan, lines: &[&[u8]]) -> u64 {
    let mut events: Vec<(usize, Event)> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let decoded = plan.fields().decode_event(line);
        let parsed = serde_json::from_slice::<Json>(line);
        let event = match (decoded, parsed) {
            (Ok(decoded), Ok(doc @ Json::Object(_))) => {
                let built = plan.event(&doc);
                assert_eq!(
                    decoded,
                    built,
                    "{name}: decode_event and plan.event disagree on line {n}: {:?}",
                    String::from_utf8_lossy(line)
                );
                decoded
            }
            (Err(e), Ok(Json::Object(_))) => panic!(
                "{name}: decode_event rejected line {n} ({e}) that serde_json parses as an object: {:?}",
                String::from_utf8_lossy(line)
            ),
            // Not JSON, or JSON but not an object: both reject it.
            (Err(_), _) => continue,
            (Ok(_), parsed) => panic!(
                "{name}: decode_event accepted line {n} that serde_json gives as {parsed:?}: {:?}",
                String::from_utf8_lossy(line)
            ),
        };
        for stage in plan.stages.iter().chain(plan.until.as_ref()) {
            let _ = stage.matches(&event);
        }
        events.push((n, event));
    }

    let ordinals: Vec<Option<Ordinal>> =
        events.iter().map(|(n, e)| search::ordinal(e, *n)).collect();
    let mut order: Vec<usize> = (0..events.len()).collect();
    if plan.kind != PlanKind::Sample {
        // Time order, events without a timestamp last (sorting is stable,
        // so those stay in input order).
        order.sort_by(|&a, &b| match (&ordinals[a], &ordinals[b]) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    let mut stream: Stream<'_, usize> = Stream::new(plan, &SearchOptions::default())
        .unwrap_or_else(|e| panic!("{name}: stream: {e}"));
    for i in order {
        stream.push(plan, events[i].0, ordinals[i].as_ref(), &events[i].1);
    }
    let found = stream.finish();
    search::hits(plan.kind, found, |_| search::HitEvent::placeholder())
        .total
        .value
}
