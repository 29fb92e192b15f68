# osmem-server (PyPI: an in-memory OpenSearch-compatible server), the
# stand-in cluster of scripts/test.sh and scripts/demo.sh: install it with
# pip if needed, start it on a free loopback port, stop it. Sourced, not run.
#
#   install_osmem            pip-installs OSMEM_VERSION unless it is there
#   start_osmem LOG          starts it; sets OSMEM_URL and OSMEM_PID
#   stop_osmem               stops it (no-op when not started)
#
# The server is started with -parent-pid $$, so it exits even if the
# sourcing script is killed without running its traps.

OSMEM_VERSION=0.1.6
OSMEM_PID=
OSMEM_URL=

osmem_installed() {
    python3 - "$OSMEM_VERSION" <<'PY' 2>/dev/null
import sys, osmem_server
sys.exit(0 if osmem_server.__version__ == sys.argv[1] else 1)
PY
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

stop_osmem() {
    if [[ -n "$OSMEM_PID" ]]; then
        kill "$OSMEM_PID" 2>/dev/null || true
        wait "$OSMEM_PID" 2>/dev/null || true
        OSMEM_PID=
    fi
}

start_osmem() {
    local log=$1 bin url
    install_osmem
    bin=$(python3 -c "import osmem_server; print(osmem_server.resolve_binary())")
    # Port 0: the server picks a free port and prints its URL as the first
    # line of JSON.
    "$bin" -addr 127.0.0.1:0 -no-stdin-watch -parent-pid $$ >"$log" 2>&1 &
    OSMEM_PID=$!
    for _ in $(seq 1 100); do
        url=$(python3 -c 'import json,sys
try:
    print(json.loads(open(sys.argv[1]).readline())["url"])
except Exception:
    pass' "$log")
        if [[ -n "$url" ]] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
            OSMEM_URL=$url
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
