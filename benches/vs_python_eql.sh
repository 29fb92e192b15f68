#!/usr/bin/env bash
# detectd query against the Python `eql` engine (PyPI `eql`), end to end on
# the same NDJSON file: an event query and a 2-stage sequence with maxspan.
#
#   bash benches/vs_python_eql.sh [EVENTS]       (default 1,000,000)
#
# Installs `eql` into a virtualenv (EQL_VENV, default /tmp/detectd-eql-venv)
# on first use. The file is `detectd generate` output with the two keys
# the Python engine reads added to each event (benches/vs_python_eql/
# prepare.py): `event_type` and `timestamp`. Prints wall and CPU seconds
# (to the millisecond) of each engine (the whole process: start, read, parse, evaluate, print;
# detectd on every core and on one thread, the run with the median wall
# time of five, as a fraction of a second varies from run to run; Python
# once) and their ratios; asserts only that both find the same number of
# results.
set -euo pipefail
cd "$(dirname "$0")/.."

events=${1:-1000000}
target=${CARGO_TARGET_DIR:-target}
venv=${EQL_VENV:-/tmp/detectd-eql-venv}
here=benches/vs_python_eql
cargo build --release --quiet
bin="$target/release/detectd"
if ! "$venv/bin/python" -c "import eql" 2> /dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet eql
fi
py="$venv/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" generate --count "$events" | "$py" "$here/prepare.py" > "$work/events.ndjson"
# Written out before the clock starts: the kernel's writeback of a file
# just made would otherwise take a core from whichever engine runs first.
sync "$work/events.ndjson"
# Then read as a file at rest is: dropped from the page cache and read
# back once from disk, so readahead caches it in large folios. Just written
# through a pipe it sits in the page cache in 4 KiB pages, from which
# detectd's `pread` copies ~15% slower (the sequence 89 against 69 ms
# median in one A/B); Python, which parses for seconds, hardly notices.
# With FRESH=1 the file is timed as written.
if [[ ${FRESH:-0} != 1 ]]; then
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$work/events.ndjson"
  cat "$work/events.ndjson" > /dev/null
fi
bytes=$(stat -c %s "$work/events.ndjson")
echo "input: $events events, $((bytes / 1000000)) MB; detectd $("$bin" --version | cut -d' ' -f2)," \
  "Python eql $("$py" -c 'import eql; print(eql.__version__)'), $(nproc) cores"

# Lower-case data: Python eql compares strings case-insensitively, detectd
# (as Elasticsearch) with == case-sensitively; these agree on this data.
event_query='process where process.name in ("powershell.exe", "pwsh.exe", "cmd.exe") and user.name == "user60"'
sequence='sequence by host.id, process.entity_id with maxspan=5s
  [library where dll.name == "taskschd.dll" and process.name in ("powershell.exe", "pwsh.exe", "powershell_ise.exe")]
  [network where process.name in ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")]'

run() { # prints "wall cpu" seconds of the command; its stdout goes to $work/out
  # timed from Python around the child alone: the clock's wall time and the
  # child's own CPU time (wait4), in microseconds (time(1)'s %e truncates
  # to hundredths)
  python3 - "$work/out" "$@" <<'PY'
import os, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    start = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=out)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
if status != 0:
    sys.exit(f"{sys.argv[2]} failed: {status}")
print(wall, usage.ru_utime + usage.ru_stime)
PY
}

median() { # "wall cpu" of the run with the median wall time of 5
  for _ in 1 2 3 4 5; do run "$@"; done | sort -n | sed -n 3p
}

status=0
for name in event_query sequence; do
  query=${!name}
  d=$(median "$bin" query -e "$work/events.ndjson" --size 1000000 "$query")
  d_count=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['hits']['total']['value'])" "$work/out")
  d1=$(median "$bin" query --threads 1 -e "$work/events.ndjson" --size 1000000 "$query")
  p=$(run "$py" "$here/run_eql.py" "$work/events.ndjson" "$query")
  p_count=$(cat "$work/out")
  python3 - "$name" $d $d1 $p "$d_count" "$p_count" <<'PY'
import sys
name, dw, dc, d1w, d1c, pw, pc, dn, pn = sys.argv[1:]
dw, dc, d1w, d1c, pw, pc = map(float, (dw, dc, d1w, d1c, pw, pc))
print(f"{name}: results detectd {dn}, Python eql {pn}")
print(f"  detectd, every core  wall {dw:7.3f} s  cpu {dc:7.3f} s   Python eql wall {pw:7.3f} s  cpu {pc:7.3f} s")
print(f"  detectd, 1 thread    wall {d1w:7.3f} s  cpu {d1c:7.3f} s")
print(f"  ratio (Python / detectd): wall {pw / dw:5.1f}x every core, {pw / d1w:5.1f}x one thread; "
      f"cpu {pc / dc:5.1f}x, {pc / d1c:5.1f}x")
PY
  if [[ $d_count != "$p_count" ]]; then
    echo "$name: result counts differ: detectd $d_count, Python eql $p_count" >&2
    status=1
  fi
done
exit $status
