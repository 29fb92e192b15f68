#!/usr/bin/env bash
# The demo: detectd catches an attack, with nothing but this repository,
# Rust and Python (no Docker, no cluster of your own). It
#   1. builds detectd (cargo build --release),
#   2. installs osmem-server with pip if needed (an in-memory
#      OpenSearch-compatible server, the one the tests use) and starts it on
#      a free loopback port,
#   3. writes the demo events (docker/demo-loader.sh): a founding-rule attack
#      and a loopback look-alike that must not alert,
#   4. runs the daemon, `detectd run` over rules/ with schedule.first_run =
#      "now", until the founding rule has run once,
#   5. prints the alert (a shell and its two building blocks) and the curl
#      commands to see it,
#   6. stops everything it started, also on Ctrl-C or a failure.
#
#   bash scripts/demo.sh          run it, print the alert, stop
#   bash scripts/demo.sh --keep   leave the server and detectd running until
#                                 Ctrl-C, to try the curl commands
#
# DETECTD=/path/to/detectd uses that binary instead of building one.
# Needs: cargo, python3 with pip (once, to install osmem-server), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
case "${1:-}" in
    "") ;;
    --keep) KEEP=1 ;;
    *) echo "usage: bash scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac

FOUNDING_RULE_ID=5cd55388-a19c-47c7-8ec4-f41656c2fded
ALERTS_INDEX=.alerts-security.alerts-default
STARTED_AT=$(date +%s)

# shellcheck source=lib/osmem.sh
source scripts/lib/osmem.sh

WORK=$(mktemp -d -t detectd-demo.XXXXXX)
DETECTD_PID=

stop_detectd() {
    if [[ -n "$DETECTD_PID" ]]; then
        # SIGTERM: runs in flight finish their writes, then detectd exits 0
        kill -TERM "$DETECTD_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$DETECTD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DETECTD_PID" 2>/dev/null || true
        wait "$DETECTD_PID" 2>/dev/null || true
        DETECTD_PID=
    fi
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    stop_detectd
    stop_osmem
    rm -rf "$WORK"
    echo "== stopped everything the demo started"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "error: $*" >&2
    exit 1
}

command -v curl >/dev/null || fail "curl is needed (the demo loader and the commands shown use it)"
command -v python3 >/dev/null || fail "python3 is needed (to install and start osmem-server)"

if [[ -n "${DETECTD:-}" ]]; then
    BIN=$DETECTD
else
    echo "== building detectd (cargo build --release; the first build takes a few minutes)"
    cargo build --release --locked --quiet
    TARGET=$(cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    BIN=$TARGET/release/detectd
fi
[[ -x "$BIN" ]] || fail "no detectd binary at $BIN"

echo "== starting the test cluster (osmem-server $OSMEM_VERSION)"
start_osmem "$WORK/osmem.log"
echo "== osmem-server at $OSMEM_URL (pid $OSMEM_PID)"

echo "== writing the demo events: an attack and a look-alike (docker/demo-loader.sh)"
ELASTICSEARCH_URL=$OSMEM_URL sh docker/demo-loader.sh >"$WORK/loader.log" 2>&1 \
    || { cat "$WORK/loader.log" >&2; fail "the demo events were not written"; }
HOST_ID=$(sed -n 's/^demo events written (host.id \([^)]*\)).*/\1/p' "$WORK/loader.log")
[[ -n "$HOST_ID" ]] || { cat "$WORK/loader.log" >&2; fail "the loader did not say which host it wrote"; }
echo "   host.id $HOST_ID: powershell.exe loads taskschd.dll, then connects to 10.0.0.5:135 (the attack)"
echo "   and the same process pair connecting to 127.0.0.1:135 (a look-alike the rule must ignore)"

cat >"$WORK/detectd.toml" <<TOML
rules = ["$PWD/rules"]
[elasticsearch]
urls = ["$OSMEM_URL"]
[schedule]
# at once, not at the rule's offset in its first 5 minutes
first_run = "now"
[state]
backend = "file"
path = "$WORK/state"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
TOML

echo "== starting detectd: $BIN run --config detectd.toml (first_run = \"now\")"
"$BIN" run --config "$WORK/detectd.toml" 2>"$WORK/detectd.log" &
DETECTD_PID=$!
echo "   detectd started (pid $DETECTD_PID)"

# The log says where /healthz and /rules listen (port 0 picked one).
log_field() { # message field: the field of the first JSON log line with that message
    python3 - "$WORK/detectd.log" "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if v.get("message", "").startswith(sys.argv[2]) and sys.argv[3] in v:
        print(v[sys.argv[3]])
        break
PY
}
LISTEN=
for _ in $(seq 1 300); do
    kill -0 "$DETECTD_PID" 2>/dev/null || { cat "$WORK/detectd.log" >&2; fail "detectd exited"; }
    LISTEN=$(log_field "serving /healthz" listen)
    [[ -n "$LISTEN" ]] && break
    sleep 0.1
done
[[ -n "$LISTEN" ]] || { cat "$WORK/detectd.log" >&2; fail "detectd did not start serving /healthz"; }

# Wait until the founding rule's first run has finished (GET /rules).
last_status() {
    curl -fsS "http://$LISTEN/rules" 2>/dev/null | python3 -c '
import json, sys
for r in json.load(sys.stdin)["rules"]:
    if r["rule_id"] == sys.argv[1] and r["last_run"]:
        print(r["last_run"]["status"])' "$FOUNDING_RULE_ID" || true
}
STATUS=
for _ in $(seq 1 600); do
    kill -0 "$DETECTD_PID" 2>/dev/null || { cat "$WORK/detectd.log" >&2; fail "detectd exited"; }
    STATUS=$(last_status)
    [[ -n "$STATUS" ]] && break
    sleep 0.1
done
[[ -n "$STATUS" ]] || { cat "$WORK/detectd.log" >&2; fail "the founding rule did not run within 60 s"; }

echo "== what detectd logged"
python3 - "$WORK/detectd.log" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    m = v.get("message")
    short = lambda t: (t or "")[:19] + "Z"
    if m == "rule scheduled":
        when = "at once" if v["next_run_in"] == "now" else "in " + v["next_run_in"]
        print(f'   rule scheduled: {v["name"]}, every {v["interval"]}, next run {short(v["next_run"])} ({when})')
    elif m == "rule run finished":
        print(f'   rule run finished: {v["status"]}, window {short(v.get("window_start"))} .. '
              f'{short(v.get("window_end"))}, {v["events_fetched"]} events fetched, '
              f'{v["alerts_created"]} alerts created, {v["duration_ms"]} ms')
PY
[[ "$STATUS" == "succeeded" ]] || { cat "$WORK/detectd.log" >&2; fail "the founding rule's run ended '$STATUS'"; }

# The alerts of the demo host, shells and building blocks (the write is
# not refreshed at once on Elasticsearch: poll a little).
SEARCH_URL="$OSMEM_URL/$ALERTS_INDEX/_search?q=host.id:$HOST_ID&size=100"
for _ in $(seq 1 100); do
    curl -fsS "$SEARCH_URL" >"$WORK/alerts.json" 2>/dev/null || true
    python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["hits"]["hits"] else 1)' \
        "$WORK/alerts.json" 2>/dev/null && break
    sleep 0.1
done

echo "== the alert in $ALERTS_INDEX"
python3 - "$WORK/alerts.json" <<'PY' || fail "no alert was written"
import json, sys
hits = json.load(open(sys.argv[1]))["hits"]["hits"]
docs = [(h["_id"], h["_source"]) for h in hits]
shells = [(i, d) for i, d in docs if d.get("kibana.alert.depth") == 2]
if not shells:
    sys.exit(1)
print(f"   {len(shells)} alert group{'s' if len(shells) != 1 else ''} for the demo host "
      f"(the look-alike to 127.0.0.1 raised none)")
for shell_id, s in shells:
    print(f'   shell           {s["kibana.alert.rule.name"]}: severity {s["kibana.alert.severity"]}, '
          f'risk {s["kibana.alert.risk_score"]}, host {s["host"]["name"]}')
    print(f'                   id {shell_id}')
    print(f'                   {s["kibana.alert.reason"]}')
    blocks = sorted((d for _, d in docs if d.get("kibana.alert.group.id") == s["kibana.alert.group.id"]
                     and d.get("kibana.alert.depth") == 1),
                    key=lambda d: d["kibana.alert.group.index"])
    for b in blocks:
        what = b["event"]["category"]
        if isinstance(what, list):
            what = what[0]
        if what == "library":
            detail = f'{b["process"]["name"]} loads {b["dll"]["name"]}'
        else:
            detail = f'{b["process"]["name"]} connects to {b["destination"]["address"]}:{b["destination"]["port"]}'
        print(f'   building block {b["kibana.alert.group.index"]}  {b["kibana.alert.original_time"]}  {detail}')
PY

echo "== see it yourself"
echo "   curl -s '$SEARCH_URL&pretty'"
echo "   curl -s http://$LISTEN/rules         # each rule's last and next run"
echo "   curl -s http://$LISTEN/healthz"
echo "   $BIN explain rules/execution_scheduled_task_powershell.toml   # what the rule asks the cluster"
echo "== the demo took $(( $(date +%s) - STARTED_AT )) s"

if [[ "$KEEP" == 1 ]]; then
    echo "== the server and detectd keep running; Ctrl-C stops them"
    wait "$DETECTD_PID" || true
else
    echo "   (the demo stops the server and detectd now: bash scripts/demo.sh --keep leaves them running)"
fi
