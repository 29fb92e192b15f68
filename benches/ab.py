#!/usr/bin/env python3
"""Two or more detectd builds run alternately on one query and one file.

    python3 benches/ab.py RUNS EVENTS.ndjson QUERY BUILD [BUILD ...]

QUERY is an EQL query or a file holding one. Each round runs every build
once, in turn, so a machine that speeds up or slows down during the
measurement moves every build alike (this project's VM moves by a quarter
within minutes). Prints per build the median and the minimum wall time and
the median CPU time (the child's own, from wait4), and checks that every
build printed the same answer (md5 of stdout). Set SIZE for `--size`
(default 1,000,000) and THREADS for `--threads`.
"""

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(build, args, out_path):
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen([build, *args], stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{build} failed with status {status}")
    with open(out_path, "rb") as out:
        digest = hashlib.md5(out.read()).hexdigest()
    return wall, usage.ru_utime + usage.ru_stime, digest


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    runs, events, query, builds = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    if os.path.isfile(query):
        with open(query) as f:
            query = f.read()
    args = ["query", "-e", events, "--size", os.environ.get("SIZE", "1000000")]
    if "THREADS" in os.environ:
        args += ["--threads", os.environ["THREADS"]]
    args.append(query)
    times = {b: [] for b in builds}
    answers = set()
    with tempfile.TemporaryDirectory() as work:
        out_path = os.path.join(work, "out")
        for _ in range(runs):
            for build in builds:
                wall, cpu, digest = run(build, args, out_path)
                times[build].append((wall, cpu))
                answers.add(digest)
    for build in builds:
        walls = [w for w, _ in times[build]]
        cpus = [c for _, c in times[build]]
        print(
            f"{build}: wall median {statistics.median(walls) * 1000:6.1f} ms, "
            f"min {min(walls) * 1000:6.1f} ms; CPU median {statistics.median(cpus) * 1000:6.1f} ms"
        )
    if len(answers) != 1:
        sys.exit(f"the builds printed {len(answers)} different answers")
    print(f"same answer from every build and run (md5 {answers.pop()})")


if __name__ == "__main__":
    main()
