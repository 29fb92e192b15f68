#!/usr/bin/env bash
# The test command: formatting, lints, then every test of the workspace
# (unit, CLI, EQL conformance, rule corpus, wiremock fault paths, and the
# integration tests against a live cluster). Run from anywhere.
#
# The conformance and corpus tests read ../shared (beside the repo); with
# CI=true they fail if it is missing, otherwise they skip with a notice.
#
# Integration tests run against ELASTICSEARCH_URL. When it is unset, this
# script installs osmem-server (PyPI, an in-memory OpenSearch-compatible
# server) if needed, starts it on a free loopback port, exports the URL for
# `cargo test`, and always stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/osmem.sh
source scripts/lib/osmem.sh

start_test_cluster() {
    local log
    log=$(mktemp -t osmem.XXXXXX)
    trap stop_osmem EXIT
    start_osmem "$log"
    export ELASTICSEARCH_URL="$OSMEM_URL"
    echo "== osmem-server $OSMEM_VERSION at $OSMEM_URL (pid $OSMEM_PID)"
}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ -z "${ELASTICSEARCH_URL:-}" ]]; then
    start_test_cluster
else
    echo "== integration tests against ELASTICSEARCH_URL"
fi

echo "== cargo test"
cargo test --workspace --locked
