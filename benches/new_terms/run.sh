#!/bin/sh
# The new_terms figure: hunt of benches/new_terms/new_parent.toml over the
# events of gen.py (a history of 1M distinct tuples, then a day with 50 new
# ones), release build; prints wall time, peak RSS and the alerts. Asserts
# nothing.
#   python3 benches/new_terms/gen.py > /tmp/nt-events.ndjson
#   sh benches/new_terms/run.sh /tmp/nt-events.ndjson
set -eu
events=${1:-/tmp/nt-events.ndjson}
target=${CARGO_TARGET_DIR:-target}
here=$(dirname "$0")
cargo build --release --quiet --bin detectd
out=$(mktemp)
/usr/bin/time -v "$target/release/detectd" hunt --rules "$here" \
    --now 2024-05-12T11:00:00Z "$events" > "$out" 2> "$out.time"
echo "events:       $(wc -l < "$events") ($(du -m "$events" | cut -f1) MB)"
echo "wall:         $(grep 'Elapsed (wall clock)' "$out.time" | sed 's/.*): //')"
echo "user+sys:     $(grep 'User time' "$out.time" | sed 's/.*: //') s + $(grep 'System time' "$out.time" | sed 's/.*: //') s"
echo "peak RSS:     $(grep 'Maximum resident' "$out.time" | sed 's/.*: //') kB"
echo "alerts:       $(wc -l < "$out")"
rm -f "$out" "$out.time"
