"""Indicators and events for the threat_match figure.

    python3 benches/threat_match/gen.py indicators 1000000 > /tmp/ti-1m.ndjson
    python3 benches/threat_match/gen.py events 1000000 > /tmp/events-1m.ndjson

Indicator k: `threat.indicator.ip` = 10.x.y.z from 2k (even addresses),
and for every other one a `threat.indicator.file.hash.sha256`; all with
`event.kind: enrichment`. Events: network events of one day whose
destination is an odd 10.x.y.z address (no indicator) or, for every
2,000th event, indicator (i * 7919) mod N's address; every 5,000th event
also carries the hash of indicator (i * 104729) mod N when it has one. The
rule (`ip_or_hash.toml`) alerts exactly those events: 500 for 1M events
(100 of them with two indicators). Prints nothing else; asserts nothing.
"""

import hashlib
import json
import sys
import time

what = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
out = sys.stdout


def addr(a):
    return f"10.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"


def sha(k):
    return hashlib.sha256(str(k).encode()).hexdigest()


if what == "indicators":
    for k in range(n):
        ind = {"type": "ipv4-addr", "ip": addr(2 * k)}
        if k % 2 == 0:
            ind["file"] = {"hash": {"sha256": sha(k)}}
        doc = {
            "@timestamp": "2024-04-01T00:00:00.000Z",
            "event": {"kind": "enrichment", "category": "threat"},
            "threat": {"feed": {"name": "Bench"}, "indicator": ind},
        }
        out.write(json.dumps(doc, separators=(",", ":")) + "\n")
elif what == "events":
    indicators = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    base = 1714557600  # 2024-05-01T10:00:00Z
    span = 24 * 3600
    for i in range(n):
        t = base + (i * span) // n
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        if i % 2000 == 0:
            dst = addr(2 * ((i * 7919) % indicators))
        else:
            dst = addr(2 * (i % 8_000_000) + 1)
        ev = {
            "@timestamp": f"{stamp}.{i % 1000:03d}Z",
            "event": {"category": ["network"], "kind": "event"},
            "destination": {"ip": dst, "port": 443},
            "source": {"ip": f"192.168.{(i >> 8) & 255}.{i & 255}"},
            "host": {"name": f"ws-{i % 300}"},
        }
        if i % 5000 == 0:
            ev["file"] = {"hash": {"sha256": sha(2 * ((i * 104729) % (indicators // 2)))}}
        out.write(json.dumps(ev, separators=(",", ":")) + "\n")
else:
    sys.exit("usage: gen.py indicators|events N [INDICATORS]")
