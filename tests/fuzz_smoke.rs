//! The fuzz targets' checks on every committed seed and crash reproducer
//! (`fuzz/corpus/<target>/`), on stable and in the normal test command, so
//! each input the fuzzer once found interesting stays a regression test.
//! The long libFuzzer runs are a separate command (README, "Fuzzing").

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

#[test]
fn parse_seeds_round_trip() {
    let seeds = seeds("parse");
    assert!(seeds.len() >= 30, "only {} parse seeds", seeds.len());
    let mut parsed = 0;
    for (path, bytes) in &seeds {
        eprintln!("{}", path.display());
        checks::check_parse(bytes);
        let text = String::from_utf8_lossy(bytes);
        parsed += usize::from(detectd::eql::parse(&text).is_ok());
    }
    // The seeds are mostly corpus rules: most must get past the parser, or
    // the round-trip check above checked nothing.
    assert!(parsed * 2 > seeds.len(), "only {parsed} seeds parse");
}

#[test]
fn eval_seeds_run_clean() {
    let harness = checks::EvalHarness::new();
    assert!(
        harness.query_count() >= 25,
        "only {} eval queries",
        harness.query_count()
    );
    let seeds = seeds("eval");
    assert!(seeds.len() >= 20, "only {} eval seeds", seeds.len());
    for (path, bytes) in &seeds {
        eprintln!("{}", path.display());
        harness.check(bytes);
    }
}

/// The seeds reach the matchers, not only the decoders: the founding rule
/// finds its sequence in the matching seed and none when the network event
/// comes after `maxspan`.
#[test]
fn eval_seeds_reach_the_founding_rule() {
    let harness = checks::EvalHarness::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/eval");
    let total = |file: &str| {
        let bytes = fs::read(dir.join(file)).expect("seed");
        harness
            .check(&bytes)
            .into_iter()
            .find(|(name, _)| name.contains("execution_scheduled_task_powershell"))
            .map(|(_, n)| n)
            .expect("the founding rule is among the eval queries")
    };
    assert_eq!(total("founding-rule-match.ndjson"), 1);
    assert_eq!(total("founding-rule-dotted-keys.ndjson"), 1);
    assert_eq!(total("founding-rule-too-late.ndjson"), 0);
    assert_eq!(total("founding-rule-loopback.ndjson"), 0);
}
