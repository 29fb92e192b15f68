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

OSMEM_VERSION=0.1.6
OSMEM_PID=

stop_osmem() {
    if [[ -n "$OSMEM_PID" ]]; then
        kill "$OSMEM_PID" 2>/dev/null || true
        wait "$OSMEM_PID" 2>/dev/null || true
        OSMEM_PID=
    fi
}

osmem_installed() {
    python3 - "$OSMEM_VERSION" <<'EOF' 2>/dev/null
import sys, osmem_server
sys.exit(0 if osmem_server.__version__ == sys.argv[1] else 1)
EOF
}

install_osmem() {
    osmem_installed && return 0
    echo "== installing osmem-server==$OSMEM_VERSION (pip)"
    local pip=(python3 -m pip install --quiet --disable-pip-version-check "osmem-server==$OSMEM_VERSION")
    # --user where allowed; inside a virtualenv / pyenv plainly; on an
    # externally managed system Python (PEP 668) into the user site.
    "${pip[@]}" --user 2>/dev/null \
        || "${pip[@]}" 2>/dev/null \
        || "${pip[@]}" --user --break-system-packages
    osmem_installed || { echo "error: osmem-server $OSMEM_VERSION did not install" >&2; return 1; }
}

start_osmem() {
    install_osmem
    local bin log url
    bin=$(python3 -c "import osmem_server; print(osmem_server.resolve_binary())")
    log=$(mktemp -t osmem.XXXXXX)
    # Port 0: the server picks a free port and prints its URL as the first
    # line of JSON; -parent-pid makes it exit even if this script is killed.
    "$bin" -addr 127.0.0.1:0 -no-stdin-watch -parent-pid $$ >"$log" 2>&1 &
    OSMEM_PID=$!
    trap stop_osmem EXIT
    for _ in $(seq 1 100); do
        url=$(python3 -c 'import json,sys
try:
    print(json.loads(open(sys.argv[1]).readline())["url"])
except Exception:
    pass' "$log")
        if [[ -n "$url" ]] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
            export ELASTICSEARCH_URL="$url"
            echo "== osmem-server $OSMEM_VERSION at $url (pid $OSMEM_PID)"
            return 0
        fi
        if ! kill -0 "$OSMEM_PID" 2>/dev/null; then
            echo "error: osmem-server exited:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "error: osmem-server did not answer within 10 s" >&2
    cat "$log" >&2
    return 1
}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ -z "${ELASTICSEARCH_URL:-}" ]]; then
    start_osmem
else
    echo "== integration tests against ELASTICSEARCH_URL"
fi

echo "== cargo test"
cargo test --workspace --locked
