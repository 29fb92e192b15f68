//! Fuzz target: arbitrary bytes as NDJSON events run against a fixed set of
//! corpus queries. See `../checks.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses half of the shared checks
mod checks;

// Compiled once per process, not per input.
static HARNESS: OnceLock<checks::EvalHarness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    HARNESS.get_or_init(checks::EvalHarness::new).check(data);
});
