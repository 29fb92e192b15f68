"""Events for the threshold figure: N authentication events over one day
(1M by default), 60 % failures, 5,000 source ips, 2,000 users, 300 hosts,
and one source (203.0.113.9, 2 % of the events) spraying passwords.

    python3 benches/threshold/gen.py 1000000 > /tmp/events-1m.ndjson
    cargo build --release
    /usr/bin/time -v target/release/detectd hunt --rules benches/threshold \
        --now 2024-05-02T11:00:00Z /tmp/events-1m.ndjson > /tmp/alerts.ndjson

The rule (`spray.toml`: 20 failures from one ip against 10 users, every 5
minutes over 9) alerts the sprayer once per window: 288 alerts a day.
Prints nothing else; asserts nothing.
"""

import json
import random
import sys
import time

random.seed(7)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
base = 1714557600  # 2024-05-01T10:00:00Z
span = 24 * 3600
ips = [f"10.{i // 250}.{i % 250}.{i % 7}" for i in range(5000)]
users = [f"user{i}" for i in range(2000)]
hosts = [f"ws-{i}" for i in range(300)]
out = sys.stdout
for i in range(n):
    t = base + (i * span) // n
    ip = random.choice(ips) if random.random() > 0.02 else "203.0.113.9"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    ev = {
        "@timestamp": f"{stamp}.{i % 1000:03d}Z",
        "event": {
            "category": ["authentication"],
            "outcome": "failure" if random.random() < 0.6 else "success",
        },
        "source": {"ip": ip},
        "user": {"name": random.choice(users)},
        "host": {"name": random.choice(hosts)},
    }
    out.write(json.dumps(ev, separators=(",", ":")) + "\n")
