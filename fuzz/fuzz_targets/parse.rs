//! Fuzz target: arbitrary bytes as an EQL query. See `../checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses half of the shared checks
mod checks;

fuzz_target!(|data: &[u8]| checks::check_parse(data));
