#!/usr/bin/env python3
"""Load test of the daemon: the rule corpus scheduled at a fixed interval
over a cluster receiving a steady stream of events.

    python3 benches/load.py [--cycles 3] [--rate 100] [--rules 1000] ...

What it does:
  1. builds detectd (release) unless --detectd is given;
  2. uses ELASTICSEARCH_URL, or starts osmem-server on a free port;
  3. copies the detection-rules corpus (../shared/detection-rules-eql),
     every rule's interval set to --interval (rules repeated under new
     rule_ids if fewer than --rules);
  4. loads the last 10 minutes of generated events (`detectd generate`, at
     --rate events/s, spread over endpoint, winlogbeat and sysmon indices)
     and keeps feeding the same rate in real time while the daemon runs;
  5. runs `detectd run` (daemon mode, JSON logs) for --cycles intervals
     after the first full interval (the first interval only spreads the
     first runs), sampling the process's RSS and CPU time every 5 s;
  6. prints figures: runs per cycle, failed runs, start delay (p50, p99,
     max, runs later than their interval), CPU seconds per cycle, RSS per
     cycle and peak, the slowest rules.

Figures only: nothing is asserted; the exit status says whether the
measurement itself worked. A cycle is 5 minutes by default, so the default
run takes about 22 minutes.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OSMEM_VERSION = "0.1.6"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Where generated events go, by event.category: the endpoint data streams,
# plus every event again in one of the Windows sources the corpus reads.
ENDPOINT_INDEX = {
    "process": "logs-endpoint.events.process-load",
    "network": "logs-endpoint.events.network-load",
    "file": "logs-endpoint.events.file-load",
    "library": "logs-endpoint.events.library-load",
}
EXTRA_INDICES = ["winlogbeat-load", "logs-windows.sysmon_operational-load"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=3, help="intervals measured (default 3)")
    p.add_argument("--interval", default="5m", help="every rule's interval (default 5m)")
    p.add_argument("--rate", type=int, default=20, help="events per second fed (default 20)")
    p.add_argument("--retain", default="15m",
                   help="events older than this are deleted each minute, as rollover/ILM would (default 15m)")
    p.add_argument("--rules", type=int, default=1000, help="at least this many rules (default 1000)")
    p.add_argument("--concurrency", type=int, default=None, help="[schedule] concurrency (default: detectd's)")
    p.add_argument("--corpus", default=os.path.join(REPO, "..", "shared", "detection-rules-eql"))
    p.add_argument("--detectd", default=None, help="a built detectd binary (default: cargo build --release)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, samples)")
    return p.parse_args()


def seconds(text):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(text[:-1]) * units[text[-1]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, method="GET", body=None, content_type="application/json"):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def detectd_binary(given):
    """`given`, or detectd built in release (CARGO_TARGET_DIR honoured)."""
    if given:
        return given
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", "detectd")


# ---------------------------------------------------------------- cluster


def start_osmem(work):
    try:
        import osmem_server  # noqa: F401
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--user", f"osmem-server=={OSMEM_VERSION}"],
            check=True,
        )
        # a user site created just now is not on the path yet
        import importlib
        import site

        site.addsitedir(site.getusersitepackages())
        importlib.invalidate_caches()
    import osmem_server

    log = open(os.path.join(work, "osmem.log"), "w+")
    proc = subprocess.Popen(
        [osmem_server.resolve_binary(), "-addr", "127.0.0.1:0", "-no-stdin-watch", "-parent-pid", str(os.getpid())],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        log.seek(0)
        first = log.readline()
        try:
            url = json.loads(first)["url"]
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    sys.exit("osmem-server did not start: " + open(log.name).read())


# ----------------------------------------------------------------- events


class Feeder:
    """Generated events re-stamped to wall-clock time at a fixed rate."""

    def __init__(self, detectd, url, rate, retain_s):
        self.url, self.rate, self.retain_s = url, rate, retain_s
        self.gen = subprocess.Popen(
            [detectd, "generate", "--count", "100000000", "--attacks-per-10k", "5", "--seed", "7"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.fed = 0
        self.expired = 0
        self.stop = threading.Event()

    def events(self, n):
        for _ in range(n):
            line = self.gen.stdout.readline()
            yield json.loads(line)

    def load(self, start_ms, end_ms):
        """Events evenly over [start_ms, end_ms), bulk-indexed in order."""
        n = max(1, (end_ms - start_ms) * self.rate // 1000)
        step = (end_ms - start_ms) / n
        lines = []
        for i, ev in enumerate(self.events(n)):
            ts = datetime.fromtimestamp((start_ms + i * step) / 1000, tz=timezone.utc)
            ev["@timestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
            action = ev.get("event", {}).get("action")
            if action:
                # most corpus rules test event.type; the generator sets action only
                ev["event"]["type"] = [action]
            doc = json.dumps(ev)
            category = ev.get("event", {}).get("category", "process")
            for index in (ENDPOINT_INDEX.get(category, ENDPOINT_INDEX["process"]), EXTRA_INDICES[i % 2]):
                lines.append(json.dumps({"create": {"_index": index}}))
                lines.append(doc)
        body = ("\n".join(lines) + "\n").encode()
        r = http(self.url + "/_bulk", "POST", body, "application/x-ndjson")
        if r.get("errors"):
            bad = next(i for i in r["items"] if list(i.values())[0].get("error"))
            raise RuntimeError(f"bulk errors: {bad}")
        self.fed += n

    def expire(self):
        """Deletes events older than the retention. An in-memory server scans
        every document it holds on each search, so without this its cost (not
        detectd's) would grow with the length of the test."""
        indices = ",".join(list(ENDPOINT_INDEX.values()) + EXTRA_INDICES)
        query = {"query": {"range": {"@timestamp": {"lt": f"now-{self.retain_s}s"}}}}
        r = http(f"{self.url}/{indices}/_delete_by_query?ignore_unavailable=true", "POST",
                 json.dumps(query).encode())
        self.expired += r.get("deleted", 0)

    def run(self, every=5.0):
        """Feeds each `every` seconds the events of the seconds just passed;
        expires old events once a minute."""
        last = int(time.time() * 1000)
        last_expiry = time.time()
        while not self.stop.wait(every):
            now = int(time.time() * 1000)
            try:
                self.load(last, now)
                if time.time() - last_expiry >= 60:
                    self.expire()
                    last_expiry = time.time()
            except Exception as e:  # keep feeding; say so
                print(f"feeder: {e}", file=sys.stderr)
            last = now

    def close(self):
        self.stop.set()
        self.gen.kill()


# ------------------------------------------------------------------ rules


def copy_rules(corpus, dest, interval, at_least):
    files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs if f.endswith(".toml")
    )
    if not files:
        sys.exit(f"no rules under {corpus}")
    os.makedirs(dest)
    written, copy = 0, 0
    while written < at_least:
        for path in files:
            text = open(path, encoding="utf-8").read()
            lines = [l for l in text.splitlines() if not l.startswith("interval = ")]
            out = []
            for l in lines:
                if copy and l.startswith("rule_id = "):
                    rid = l.split('"')[1]
                    l = f'rule_id = "{rid}-copy{copy}"'
                out.append(l)
                if l.strip() == "[rule]":
                    out.append(f'interval = "{interval}"')
            with open(os.path.join(dest, f"{copy}-{os.path.basename(path)}"), "w") as f:
                f.write("\n".join(out) + "\n")
            written += 1
        copy += 1
    return written


# --------------------------------------------------------------- sampling


def proc_sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return cpu, rss, hwm


def sampler(pid, samples, stop, every=5.0):
    while True:
        try:
            samples.append((time.time(), *proc_sample(pid)))
        except FileNotFoundError:
            return
        if stop.wait(every):
            return


# ----------------------------------------------------------------- report


def pct(values, q):
    if not values:
        return 0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(log_path, samples, t0, interval_s, cycles, rules, feeder, osmem_cpu):
    runs = []
    for line in open(log_path):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("message") == "rule run finished":
            runs.append(v)
    print(f"\nrules scheduled: {rules}, interval {interval_s} s, events fed: {feeder.fed}"
          f" (each in 2 indices), expired: {feeder.expired} documents")
    print(f"runs finished: {len(runs)}  failed: {sum(r['status'] == 'failed' for r in runs)}"
          f"  partial failure: {sum(r['status'] == 'partial failure' for r in runs)}")
    errors = {}
    for r in runs:
        if r["status"] == "failed":
            errors[r.get("error", "")[:120]] = errors.get(r.get("error", "")[:120], 0) + 1
    for e, n in sorted(errors.items(), key=lambda x: -x[1])[:5]:
        print(f"  {n} x failed: {e}")

    def at(ts):
        # the sample nearest before `ts`
        best = samples[0]
        for s in samples:
            if s[0] <= ts:
                best = s
        return best

    print("\ncycle  window(s)      runs  late>interval  delay p50/p99/max (s)  CPU s  RSS end (MB)")
    for c in range(cycles + 1):
        lo, hi = t0 + c * interval_s, t0 + (c + 1) * interval_s
        in_cycle = [
            r for r in runs
            if lo <= datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp() < hi
        ]
        delays = [r.get("start_delay_ms", 0) / 1000 for r in in_cycle]
        late = sum(d > interval_s for d in delays)
        cpu = at(hi)[1] - at(lo)[1]
        label = "0 (spread)" if c == 0 else str(c)
        print(f"{label:<6} {int(lo - t0):>5}-{int(hi - t0):<6} {len(in_cycle):>6}  {late:>13}  "
              f"{pct(delays, .5):6.2f} {pct(delays, .99):6.2f} {max(delays, default=0):6.2f}  "
              f"{cpu:5.1f}  {at(hi)[2] / 1e6:8.1f}")
    steady = [r for r in runs
              if datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp() >= t0 + interval_s]
    delays = [r.get("start_delay_ms", 0) / 1000 for r in steady]
    print(f"\nsteady state (cycles 1..{cycles}): {len(steady)} runs, start delay p50 {pct(delays, .5):.2f} s,"
          f" p99 {pct(delays, .99):.2f} s, max {max(delays, default=0):.2f} s,"
          f" runs later than the interval: {sum(d > interval_s for d in delays)}")
    cpu_total = samples[-1][1] - samples[0][1]
    print(f"detectd CPU: {cpu_total:.1f} s over {samples[-1][0] - samples[0][0]:.0f} s wall"
          f" ({100 * cpu_total / max(1, samples[-1][0] - samples[0][0]):.1f}% of one core);"
          f" osmem CPU: {osmem_cpu:.1f} s")
    print(f"peak RSS (VmHWM): {max(s[3] for s in samples) / 1e6:.1f} MB;"
          f" RSS min/max over the run: {min(s[2] for s in samples) / 1e6:.1f}/{max(s[2] for s in samples) / 1e6:.1f} MB")
    fetched = sum(r.get("events_fetched", 0) for r in runs)
    alerts = sum(r.get("alerts_created", 0) for r in runs)
    print(f"events fetched over all runs: {fetched}; alerts created: {alerts}")
    print("\nslowest runs (duration, search, index, rule):")
    for r in sorted(runs, key=lambda r: -r.get("duration_ms", 0))[:5]:
        print(f"  {r.get('duration_ms', 0) / 1000:7.2f} s  search {r.get('search_ms', 0) / 1000:6.2f} s"
              f"  index {r.get('index_ms', 0) / 1000:5.2f} s  {r['rule_name']} ({r['events_fetched']} events)")


# ------------------------------------------------------------------- main


def main():
    args = parse_args()
    interval_s = seconds(args.interval)
    work = tempfile.mkdtemp(prefix="detectd-load-")
    detectd = detectd_binary(args.detectd)

    osmem = None
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        osmem, url = start_osmem(work)
    print(f"cluster: {url}; work dir: {work}")

    rules_dir = os.path.join(work, "rules")
    rules = copy_rules(args.corpus, rules_dir, args.interval, args.rules)

    feeder = Feeder(detectd, url, args.rate, seconds(args.retain))
    now = int(time.time() * 1000)
    print(f"loading the last 10 minutes of events ({args.rate * 600} events x 2 indices) ...")
    for start in range(now - 600_000, now, 60_000):
        feeder.load(start, start + 60_000)
    http(url + "/_refresh", "POST")
    feed_thread = threading.Thread(target=feeder.run, daemon=True)
    feed_thread.start()

    tag = random.randrange(1 << 30)
    config = os.path.join(work, "detectd.toml")
    with open(config, "w") as f:
        f.write(f'rules = ["{rules_dir}"]\n[elasticsearch]\nurls = ["{url}"]\n')
        f.write(f'[indices]\nalerts = "load-alerts-{tag}"\nstate = "load-state-{tag}"\n'
                f'executions = "load-exec-{tag}"\n')
        f.write("[schedule]\n")
        if args.concurrency:
            f.write(f"concurrency = {args.concurrency}\n")
        f.write(f'[server]\nlisten = "127.0.0.1:{free_port()}"\n[log]\nformat = "json"\n')
    log_path = os.path.join(work, "detectd.log")
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    daemon = subprocess.Popen([detectd, "run", "--config", config], stderr=open(log_path, "w"), env=env)
    t0 = time.time()
    samples, stop = [], threading.Event()
    sample_thread = threading.Thread(target=sampler, args=(daemon.pid, samples, stop), daemon=True)
    sample_thread.start()

    total = (args.cycles + 1) * interval_s
    print(f"detectd pid {daemon.pid}: {rules} rules every {args.interval}; measuring for {total} s ...")
    try:
        while time.time() - t0 < total + 5:
            if daemon.poll() is not None:
                sys.exit(f"detectd exited early ({daemon.returncode}); see {log_path}")
            time.sleep(1)
    finally:
        osmem_cpu = proc_sample(osmem.pid)[0] if osmem else float("nan")
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=300)
        except subprocess.TimeoutExpired:
            daemon.kill()
        stop.set()
        feeder.close()
        if osmem:
            osmem.kill()

    report(log_path, samples, t0, interval_s, args.cycles, rules, feeder, osmem_cpu)
    print(f"\ndetectd exit status: {daemon.returncode}")
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
