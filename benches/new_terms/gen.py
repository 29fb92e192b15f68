"""Events for the new_terms figure: a history of H distinct (host.id,
process.executable) tuples (1M by default: 1,000 hosts x 1,000
executables, each seen once) spread over days 1 to 10, then one day of W
process starts (100,000 by default) that repeat history tuples, and NEW of
them (50 by default) run a tuple never seen before, the first one twice.
One event at day 0 starts the files, so `hunt` (whose first 10 days are
history only) looks at exactly the last day, and every repeat's earlier
event is inside its window's 10-day history.

    python3 benches/new_terms/gen.py > /tmp/nt-events.ndjson
    sh benches/new_terms/run.sh /tmp/nt-events.ndjson

The rule (`new_parent.toml`: history from now-10d, every 5 minutes over 9)
alerts each new tuple once, on its first event: NEW alerts. Events are
written in time order. Prints nothing else; asserts nothing.
"""

import json
import random
import sys
import time

random.seed(11)
history = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
window = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
new = int(sys.argv[3]) if len(sys.argv) > 3 else 50
base = 1714557600  # 2024-05-01T10:00:00Z
days10 = 10 * 24 * 3600
day = 24 * 3600
hosts = 1000
execs = (history + hosts - 1) // hosts
out = sys.stdout


def event(t, i, host, exe):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    ev = {
        "@timestamp": f"{stamp}.{i % 1000:03d}Z",
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"id": f"host-{host:04d}", "name": f"ws-{host}"},
        "process": {"executable": f"C:\\Program Files\\app{exe}\\app{exe}.exe",
                    "name": f"app{exe}.exe"},
    }
    out.write(json.dumps(ev, separators=(",", ":")) + "\n")


event(base, 0, hosts, 0)
start = base + day + 3600
length = days10 - day - 3600 - 600
for i in range(history):
    event(start + (i * length) // history, i, i % hosts, i // hosts)
# the new tuples' events, at these positions of the window day
new_at = {int(window * (k + 0.5) / new): k for k in range(new)}
for j in range(window):
    t = base + days10 + (j * day) // window
    k = new_at.get(j)
    if k is not None:
        event(t, j, k % hosts, execs + k)
        if k == 0:
            event(t + 1, j + 1, k % hosts, execs + k)
    else:
        seen = random.randrange(history)
        event(t, j, seen % hosts, seen // hosts)
