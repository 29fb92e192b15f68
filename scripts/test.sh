#!/usr/bin/env bash
# The test command: formatting, lints, then every test of the workspace
# (unit, CLI, EQL conformance, rule corpus). Run from anywhere.
#
# The conformance and corpus tests read ../shared (beside the repo); with
# CI=true they fail if it is missing, otherwise they skip with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked
