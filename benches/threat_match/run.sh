#!/bin/sh
# The threat_match figure: `hunt` of one threat_match rule (destination.ip
# or file.hash.sha256 against the indicators) over N events with M
# indicators from an indicators file (offline: no cluster), printing the
# run time and peak memory from /usr/bin/time -v. Builds the release binary
# into $CARGO_TARGET_DIR (default target/).
#
#   sh benches/threat_match/run.sh [EVENTS] [INDICATORS]   (1000000 1000000)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
events=${1:-1000000}
indicators=${2:-1000000}
tmp=${TMPDIR:-/tmp}/detectd-threat-bench
mkdir -p "$tmp"
target=${CARGO_TARGET_DIR:-$here/../../target}
(cd "$here/../.." && cargo build --release --quiet)
python3 "$here/gen.py" indicators "$indicators" > "$tmp/ti.ndjson"
python3 "$here/gen.py" events "$events" "$indicators" > "$tmp/events.ndjson"
echo "events: $events ($(du -h "$tmp/events.ndjson" | cut -f1)), indicators: $indicators ($(du -h "$tmp/ti.ndjson" | cut -f1))"
/usr/bin/time -v "$target/release/detectd" hunt --rules "$here/ip_or_hash.toml" \
    --now 2024-05-02T11:00:00Z --indicators "$tmp/ti.ndjson" "$tmp/events.ndjson" \
    > "$tmp/alerts.ndjson" 2> "$tmp/time.txt" || { cat "$tmp/time.txt"; exit 1; }
grep -E "rules run|Elapsed \(wall|Maximum resident" "$tmp/time.txt"
echo "alerts: $(wc -l < "$tmp/alerts.ndjson"), with two enrichments or more: $(grep -c '"indicator_match_rule".*"indicator_match_rule"' "$tmp/alerts.ndjson" || true)"
