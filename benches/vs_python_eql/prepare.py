"""Adds the two keys the Python `eql` engine reads to every event of an
NDJSON file: `event_type` (= event.category) and `timestamp` (epoch ms of
@timestamp). detectd ignores them; both engines then query the same file.

    python prepare.py < generated.ndjson > events.ndjson
"""
import json
import sys
from datetime import datetime

out = sys.stdout
for line in sys.stdin:
    doc = json.loads(line)
    ts = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
    doc["event_type"] = doc["event"]["category"]
    doc["timestamp"] = int(ts.timestamp() * 1000 + 0.5)
    out.write(json.dumps(doc, separators=(",", ":")))
    out.write("\n")
