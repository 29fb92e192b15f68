#!/usr/bin/env python3
"""Near-real-time tails: how long from an event's arrival to its alert.

    python3 benches/realtime/run.py [--minutes 10] [--rate 20] [--rules 50]

What it does:
  1. builds detectd (release) unless --detectd is given; starts osmem-server
     on a free port unless ELASTICSEARCH_URL is set;
  2. rules: the founding rule (a 2-stage sequence, maxspan 5s) plus --rules
     EQL rules of the corpus (../shared/detection-rules-eql), all at their
     5m interval;
  3. starts `detectd run` with `[realtime] enabled = true` (--every,
     --lag), through a counting proxy;
  4. feeds --rate generated events per second for --minutes, in real time
     (`detectd generate`, with planted founding-rule attacks), each bulk
     with `refresh=true` so that an event's arrival is when it became
     searchable, and notes each event's arrival time;
  5. polls the alerts index every 0.5 s and notes when each alert group (a
     sequence's shell and building blocks, or one event alert) first
     appears, and its events;
  6. prints the latency from the arrival of an alert's last event to the
     alert's first sight (median, p90, p99, max; the alerts of the feed's
     first minute left out: warm-up), how many alerts came from tails
     (detectd's /metrics), the cluster requests per minute and the events
     searches transferred (per minute, per event fed).

Figures only; the exit status says whether the measurement worked.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "benches"))
import load  # noqa: E402
from support.proxy import Tally, field, make_proxy  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=int, default=20)
    p.add_argument("--rules", type=int, default=50)
    p.add_argument("--every", default="5s")
    p.add_argument("--lag", default="2s")
    p.add_argument("--detectd")
    p.add_argument("--keep", action="store_true")
    return p.parse_args()


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Feed:
    """Generated events at `rate` per second, stamped with the wall clock."""

    def __init__(self, detectd, url, rate):
        self.url, self.rate = url, rate
        self.gen = subprocess.Popen(
            [detectd, "generate", "--count", "100000000", "--attacks-per-10k", "40", "--seed", "11"],
            stdout=subprocess.PIPE, text=True)
        self.arrived = {}
        self.n = 0
        self.ticks = 0
        self.attacks = 0
        self.stop = threading.Event()

    def tick(self, count):
        lines, ids = [], []
        now = time.time()
        for i in range(count):
            # the second just passed, evenly, in the generator's order
            at = now - 1 + i / max(1, count)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
            ev = json.loads(self.gen.stdout.readline())
            ev["@timestamp"] = stamp
            ev.setdefault("event", {})["ingested"] = stamp
            action = ev["event"].get("action")
            if action:
                ev["event"]["type"] = [action]
            self.n += 1
            doc_id = f"rt{self.n}"
            index = load.ENDPOINT_INDEX.get(ev["event"].get("category"), load.ENDPOINT_INDEX["process"])
            lines.append(json.dumps({"create": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps(ev))
            ids.append(doc_id)
        self.ticks += 1
        if self.ticks % 10 == 0:
            # a founding-rule attack: the generator's own pairs are
            # milliseconds apart in its time, minutes apart at this rate
            self.attacks += 1
            who = {"host": {"id": f"rt-host-{self.attacks}", "name": "rt"},
                   "process": {"entity_id": f"rt-proc-{self.attacks}", "name": "powershell.exe", "pid": 4242}}
            pair = [
                (now - 0.6, "library", {"dll": {"name": "taskschd.dll", "path": "C:\\Windows\\System32\\taskschd.dll"}}),
                (now - 0.3, "network", {"destination": {"port": 135, "address": "10.9.9.9"}}),
            ]
            for at, category, extra in pair:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
                ev = {"@timestamp": stamp, "event": {"category": category, "kind": "event", "ingested": stamp}, **who, **extra}
                self.n += 1
                doc_id = f"rt{self.n}"
                lines.append(json.dumps({"create": {"_index": load.ENDPOINT_INDEX[category], "_id": doc_id}}))
                lines.append(json.dumps(ev))
                ids.append(doc_id)
        body = ("\n".join(lines) + "\n").encode()
        r = load.http(self.url + "/_bulk?refresh=true", "POST", body, "application/x-ndjson")
        if r.get("errors"):
            raise RuntimeError("bulk errors")
        arrived = time.time()
        for i in ids:
            self.arrived[i] = arrived

    def run(self, seconds):
        end = time.time() + seconds
        while time.time() < end and not self.stop.is_set():
            started = time.time()
            self.tick(self.rate)
            time.sleep(max(0.0, 1.0 - (time.time() - started)))

    def close(self):
        self.stop.set()
        self.gen.kill()


def poll_alerts(url, index, seen, stop):
    """Notes when each alert group (a sequence's shell and building blocks,
    or one event alert) is first searchable, with its events' ids."""
    body = json.dumps({"size": 10000, "query": {"match_all": {}},
                       "_source": ["kibana.alert.ancestors", "kibana.alert.group.id",
                                   "kibana.alert.building_block_type"]}).encode()
    while not stop.is_set():
        try:
            r = load.http(f"{url}/{index}/_search", "POST", body)
            t = time.time()
            for h in r["hits"]["hits"]:
                src = h["_source"]
                group = field(src, "kibana.alert.group.id") or h["_id"]
                first, events = seen.setdefault(group, (t, set()))
                if field(src, "kibana.alert.building_block_type") or not field(src, "kibana.alert.group.id"):
                    # an event alert's or a building block's ancestor is its event
                    events.update(a.get("id") for a in field(src, "kibana.alert.ancestors") or [])
        except Exception:
            pass
        stop.wait(0.5)


def main():
    args = parse_args()
    work = tempfile.mkdtemp(prefix="detectd-realtime-")
    detectd = load.detectd_binary(args.detectd)
    osmem, url = None, os.environ.get("ELASTICSEARCH_URL")
    if not url:
        osmem, url = load.start_osmem(work)

    rules_dir = os.path.join(work, "rules")
    os.makedirs(rules_dir)
    shutil.copy(os.path.join(REPO, "rules", "execution_scheduled_task_powershell.toml"), rules_dir)
    corpus = os.path.join(REPO, "..", "shared", "detection-rules-eql")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs if f.endswith(".toml"))
    random.Random(3).shuffle(files)
    for i, f in enumerate(files[: args.rules]):
        shutil.copy(f, os.path.join(rules_dir, f"{i}-{os.path.basename(f)}"))

    tally = Tally()
    proxy, proxy_url = make_proxy(url, tally)
    port = load.free_port()
    config = os.path.join(work, "detectd.toml")
    with open(config, "w") as f:
        f.write(f'rules = ["{rules_dir}"]\nspace_id = "realtime"\n[elasticsearch]\nurls = ["{proxy_url}"]\n')
        f.write(f'[state]\nbackend = "file"\npath = "{os.path.join(work, "state")}"\n')
        f.write(f'[schedule]\nfirst_run = "now"\n[realtime]\nenabled = true\nevery = "{args.every}"\nlag = "{args.lag}"\n')
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\n[log]\nformat = "json"\n')
    log = os.path.join(work, "detectd.log")
    daemon = subprocess.Popen([detectd, "run", "--config", config], stderr=open(log, "w"))
    time.sleep(5)

    feed = Feed(detectd, url, args.rate)
    seen, stop = {}, threading.Event()
    poller = threading.Thread(target=poll_alerts, args=(url, ".alerts-security.alerts-realtime", seen, stop), daemon=True)
    poller.start()
    tally.reset()
    t0 = time.time()
    seconds = args.minutes * 60
    print(f"feeding {args.rate} events/s for {args.minutes} min to {1 + min(args.rules, len(files))} rules "
          f"(tails every {args.every}, lag {args.lag}) ...")
    try:
        feed.run(seconds)
        time.sleep(15)  # the last tails
        elapsed = time.time() - t0
        with tally.lock:
            requests = dict(tally.requests)
            hits = tally.hits
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        stop.set()
        feed.close()
        daemon.terminate()
        daemon.wait(timeout=120)
        proxy.shutdown()
        if osmem:
            osmem.kill()

    latencies = []
    for _, (first_seen, events) in seen.items():
        arrivals = [feed.arrived[a] for a in events if a in feed.arrived]
        if not arrivals or max(arrivals) < t0 + 60:
            continue
        latencies.append(first_seen - max(arrivals))
    tail_alerts = next((line.split()[-1] for line in metrics.splitlines()
                        if line.startswith("detectd_tail_alerts_created_total")), "?")
    print(f"\nevents fed: {feed.n:,} ({feed.attacks} planted attacks); alert groups: {len(seen):,}; "
          f"measured after the first minute: {len(latencies):,}")
    print(f"alerts created by tails: {tail_alerts}")
    print("latency from the arrival of an alert's last event to the alert being searchable:")
    for q in (0.5, 0.9, 0.99):
        print(f"  p{int(q * 100):<3} {pct(latencies, q):6.2f} s")
    print(f"  max  {max(latencies) if latencies else float('nan'):6.2f} s")
    total = sum(requests.values())
    print(f"cluster requests per minute (detectd only): {total / (elapsed / 60):,.0f} "
          f"(searches {requests.get('POST _search', 0) / (elapsed / 60):,.0f})")
    print("requests by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(requests.items())))
    print(f"events transferred by searches: {hits / (elapsed / 60):,.0f} per minute, "
          f"{hits / max(1, feed.n):.1f} per event fed (tails and scheduled runs)")
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
