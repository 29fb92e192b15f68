"""Runs one query with the Python `eql` engine over an NDJSON file, as its
`eql query` command does (stream_file_events + PythonEngine), and prints
the number of results (events, or sequences) on stdout.

    python run_eql.py FILE QUERY
"""
import sys

import eql
from eql.utils import stream_file_events

path, text = sys.argv[1], sys.argv[2]
# timestamps are epoch milliseconds: maxspan=5s is 5,000 of them
engine = eql.PythonEngine({"time_unit": 1000})
results = 0


def count(_events):
    global results
    results += 1


engine.add_output_hook(count)
with engine.schema:
    engine.add_query(eql.parse_query(text, implied_any=True, implied_base=True))
engine.stream_events(stream_file_events(path, "jsonl"), finalize=False)
engine.finalize()
print(results)
