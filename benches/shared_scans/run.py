#!/usr/bin/env python3
"""Shared scans, side by side with sharing off, in one run of this script.

    python3 benches/shared_scans/run.py [--events 30000] [--corpus DIR ...]

What it does:
  1. builds detectd (release) unless --detectd is given; starts osmem-server
     on a free port unless ELASTICSEARCH_URL is set;
  2. copies the rule corpus (default: ../shared/detection-rules-eql) with
     every rule's look-back set to `--from` (default now-15m) and interval 5m,
     so both runs below see the same windows however long the first takes;
  3. loads --events generated events (`detectd generate`) spread over
     [T-8m, T-4m] (T: the end of loading), each in its
     `logs-endpoint.events.*` data stream and in `winlogbeat-*` or
     `logs-windows.sysmon_operational-*`, as benches/load.py does;
  4. puts a counting proxy between detectd and the cluster: requests per
     kind, hits returned by searches, distinct events among them;
  5. runs `detectd run --once` with `--no-shared-scans`, then with sharing
     (default settings), each into its own Kibana space and state directory,
     and reads the cluster's own CPU time (/proc of the server) around each;
  6. prints, per mode: events transferred, distinct events, their ratio,
     search requests, all requests, cluster CPU s, detectd wall s; the
     alerts of both runs compared as (rule, events) sets.

Figures only; the exit status says whether the measurement worked and the
alert sets are identical (exit 1 otherwise).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "benches"))
import load  # noqa: E402  (benches/load.py: osmem start-up, event loading)
from support.proxy import Tally, field, make_proxy  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=30000)
    p.add_argument("--corpus", nargs="+", default=[os.path.join(REPO, "..", "shared", "detection-rules-eql")])
    p.add_argument("--from", dest="lookback", default="now-15m")
    p.add_argument("--detectd")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-rules", type=int, help="[sharing] max_rules (default: detectd's)")
    p.add_argument("--keep", action="store_true")
    return p.parse_args()


# ------------------------------------------------------------ the runs


def copy_rules(corpora, dest, lookback):
    os.makedirs(dest)
    n = 0
    for corpus in corpora:
        for d, _, fs in os.walk(corpus):
            for f in sorted(fs):
                if not f.endswith(".toml"):
                    continue
                lines = open(os.path.join(d, f), encoding="utf-8").read().splitlines()
                out = []
                for line in lines:
                    if line.startswith("interval = ") or line.startswith("from = "):
                        continue
                    out.append(line)
                    if line.strip() == "[rule]":
                        out.append('interval = "5m"')
                        out.append(f'from = "{lookback}"')
                with open(os.path.join(dest, f"{n}-{f}"), "w") as fh:
                    fh.write("\n".join(out) + "\n")
                n += 1
    return n


def cpu_seconds(pid):
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(detectd, work, name, url, rules_dir, concurrency, sharing, max_rules):
    config = os.path.join(work, f"{name}.toml")
    with open(config, "w") as f:
        f.write(f'rules = ["{rules_dir}"]\nspace_id = "{name}"\n[elasticsearch]\nurls = ["{url}"]\n')
        f.write(f'[state]\nbackend = "file"\npath = "{os.path.join(work, name + "-state")}"\n')
        f.write(f"[schedule]\nconcurrency = {concurrency}\n[log]\nformat = \"json\"\n")
        if max_rules:
            f.write(f"[sharing]\nmax_rules = {max_rules}\n")
    args = [detectd, "run", "--once", "--config", config]
    if not sharing:
        args.append("--no-shared-scans")
    log = os.path.join(work, f"{name}.log")
    t = time.time()
    with open(log, "w") as err:
        rc = subprocess.run(args, stderr=err, stdout=subprocess.DEVNULL).returncode
    return time.time() - t, rc, log


def alert_set(url, space):
    """The space's alerts as (rule id, ids of the events) pairs."""
    index = f".alerts-security.alerts-{space}"
    load.http(f"{url}/{index}/_refresh", "POST")
    body = {"size": 10000, "query": {"match_all": {}},
            "_source": ["kibana.alert.rule.rule_id", "kibana.alert.ancestors"]}
    hits = load.http(f"{url}/{index}/_search", "POST", json.dumps(body).encode())["hits"]["hits"]
    if len(hits) >= 10000:
        sys.exit("more than 10,000 alerts: use fewer events")
    out = set()
    for h in hits:
        s = h["_source"]
        anc = field(s, "kibana.alert.ancestors") or []
        out.add((field(s, "kibana.alert.rule.rule_id"), tuple(a.get("id") for a in anc)))
    if any(rule is None for rule, _ in out):
        sys.exit("alerts without kibana.alert.rule.rule_id: the comparison would mean nothing")
    return out


def main():
    args = parse_args()
    work = tempfile.mkdtemp(prefix="detectd-shared-")
    detectd = load.detectd_binary(args.detectd)

    osmem, url = None, os.environ.get("ELASTICSEARCH_URL")
    if not url:
        osmem, url = load.start_osmem(work)
    pid = osmem.pid if osmem else None
    rules_dir = os.path.join(work, "rules")
    n_rules = copy_rules(args.corpus, rules_dir, args.lookback)

    feeder = load.Feeder(detectd, url, 1, 0)
    now = int(time.time() * 1000)
    span = 240_000  # [T-8m, T-4m]
    feeder.rate = max(1, args.events * 1000 // span)
    for start in range(now - 480_000, now - 240_000, 60_000):
        feeder.load(start, start + 60_000)
    load.http(url + "/_refresh", "POST")
    feeder.close()
    print(f"cluster {url}; {n_rules} rules (look-back {args.lookback}); {feeder.fed} events "
          f"in two indices each ({2 * feeder.fed} documents) over [T-8m, T-4m]")

    tally = Tally()
    proxy, proxy_url = make_proxy(url, tally)
    rows = {}
    for name, sharing in (("sharing-off", False), ("sharing-on", True)):
        tally.reset()
        cpu0 = cpu_seconds(pid)
        wall, rc, log = run_once(detectd, work, name, proxy_url, rules_dir, args.concurrency, sharing,
                                 args.max_rules)
        cpu = cpu_seconds(pid) - cpu0
        with tally.lock:
            rows[name] = dict(requests=dict(tally.requests), hits=tally.hits, distinct=len(tally.distinct),
                              cpu=cpu, wall=wall, rc=rc, log=log)
    proxy.shutdown()

    sets = {name: alert_set(url, name) for name in rows}
    print()
    print(f"{'':34}{'sharing off':>16}{'sharing on':>16}")
    def line(label, f):
        print(f"{label:34}{f(rows['sharing-off']):>16}{f(rows['sharing-on']):>16}")
    line("events transferred (search hits)", lambda r: f"{r['hits']:,}")
    line("distinct events among them", lambda r: f"{r['distinct']:,}")
    line("transferred / distinct", lambda r: f"{r['hits'] / max(1, r['distinct']):.2f}")
    line("search requests (POST _search)", lambda r: f"{r['requests'].get('POST _search', 0):,}")
    line("all requests to the cluster", lambda r: f"{sum(r['requests'].values()):,}")
    line("cluster CPU seconds", lambda r: f"{r['cpu']:.1f}")
    line("detectd wall seconds", lambda r: f"{r['wall']:.1f}")
    line("exit status", lambda r: str(r["rc"]))
    line("alerts (rule, events)", lambda r: f"{len(sets['sharing-' + ('on' if r is rows['sharing-on'] else 'off')]):,}")
    for name, r in rows.items():
        print(f"{name} requests by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(r["requests"].items())))
    same = sets["sharing-off"] == sets["sharing-on"]
    print(f"\nalert sets identical: {same}")
    if not same:
        only_off = sets["sharing-off"] - sets["sharing-on"]
        only_on = sets["sharing-on"] - sets["sharing-off"]
        print(f"  only without sharing: {len(only_off)}, e.g. {sorted(only_off)[:3]}")
        print(f"  only with sharing: {len(only_on)}, e.g. {sorted(only_on)[:3]}")
    if osmem:
        osmem.kill()
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if same and all(r["rc"] in (0, 1) for r in rows.values()) else 1)


if __name__ == "__main__":
    main()
