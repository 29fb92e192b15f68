#!/usr/bin/env bash
# End-to-end throughput and memory of `detectd query` on generated NDJSON.
#
#   bash benches/e2e.sh [EVENTS]          (default 1,000,000 events)
#   MEMORY_EVENTS=10000000 bash benches/e2e.sh   (also the streaming memory run)
#
# Prints, per query (a: event query, b: founding-rule 2-stage sequence,
# c: 3-stage sequence with until) and mode (a file in time order, which
# streams; stdin without --sorted, which is sorted in memory), once on one
# thread (--threads 1) and once on every core: CPU seconds, MB/s of NDJSON
# per CPU second, wall seconds, MB/s of wall time, and peak RSS; then the
# same for `detectd hunt` of the founding rule over the file. Figures only;
# nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

events=${1:-1000000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
bin="$target/release/detectd"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" generate --count "$events" > "$work/events.ndjson"
bytes=$(stat -c %s "$work/events.ndjson")
echo "input: $events events, $((bytes / 1000000)) MB"

cat > "$work/a.eql" <<'EOF'
process where process.name : ("powershell.exe", "pwsh.exe", "cmd.exe") and process.args == "-arg"
EOF
cat > "$work/b.eql" <<'EOF'
sequence by host.id, process.entity_id with maxspan=5s
  [library where dll.name : "taskschd.dll" and process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe")]
  [network where process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")]
EOF
cat > "$work/c.eql" <<'EOF'
sequence by process.entity_id with maxspan=30s
  [process where process.name : ("powershell.exe", "cmd.exe")]
  [library where dll.name : ("ws2_32.dll", "crypt32.dll")]
  [network where destination.port in (443, 445, 3389)]
until [process where event.action == "end"]
EOF

measure() { # label, then detectd arguments
  local label=$1
  shift
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" "$bin" "$@" > "$work/out.json"
  read -r user sys wall rss < "$work/time"
  local total
  if [[ $1 == hunt ]]; then
    total=$(wc -l < "$work/out.json")
  else
    total=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['hits']['total']['value'])" "$work/out.json")
  fi
  python3 - "$label" "$bytes" "$user" "$sys" "$wall" "$rss" "$total" <<'EOF'
import sys
label, size, user, sys_, wall, rss, total = sys.argv[1:]
cpu, wall = float(user) + float(sys_), float(wall)
mb = int(size) / 1e6
print(f"{label:<44} cpu {cpu:6.2f} s {mb / cpu:6.1f} MB/s/core  "
      f"wall {wall:6.2f} s {mb / wall:6.1f} MB/s  peak RSS {int(rss) / 1024:7.1f} MB  hits {total}")
EOF
}

cores=$(nproc)
for q in a b c; do
  for t in 1 "$cores"; do
    measure "$q file (streams, in order), $t threads" query --threads "$t" -e "$work/events.ndjson" --size 100 --query-file "$work/$q.eql"
    measure "$q stdin (sorted in memory), $t threads" query --threads "$t" --size 100 --query-file "$work/$q.eql" < "$work/events.ndjson"
  done
done
for t in 1 "$cores"; do
  measure "hunt founding rule, $t threads" hunt --threads "$t" --now 2024-01-01T00:00:00Z \
    --rules rules/execution_scheduled_task_powershell.toml "$work/events.ndjson"
done

if [[ -n ${MEMORY_EVENTS:-} ]]; then
  echo "streaming memory: $MEMORY_EVENTS events of query b through a pipe"
  /usr/bin/time -f "query: cpu %U s user, wall %e s, peak RSS %M KB" \
    bash -c "\"$bin\" generate --count $MEMORY_EVENTS | \"$bin\" query --sorted --size 10 --query-file \"$work/b.eql\" > /dev/null" \
    2>&1 | tail -1
  # the line above measures the whole pipeline; measure the query alone too
  "$bin" generate --count "$MEMORY_EVENTS" |
    /usr/bin/time -f "query alone: cpu %U s user, wall %e s, peak RSS %M KB" \
      "$bin" query --sorted --size 10 --query-file "$work/b.eql" 2>&1 >/dev/null | tail -1
fi
