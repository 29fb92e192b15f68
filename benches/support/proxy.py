"""A counting HTTP proxy between detectd and the cluster, for benchmarks:
requests per kind, hits returned by searches and the distinct events among
them. Standard library only."""

import http.client
import http.server
import json
import threading
import urllib.parse
from collections import Counter


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = Counter()
            self.hits = 0
            self.distinct = set()


def kind(method, path):
    p = urllib.parse.urlparse(path).path
    for key in ("_search", "_pit", "_resolve", "_mapping", "_mget", "_bulk", "_field_caps", "_count", "_doc", "_update"):
        if key in p:
            return f"{method} {key}"
    return f"{method} other"


def make_proxy(upstream, tally):
    target = urllib.parse.urlparse(upstream)

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            k = kind(self.command, self.path)
            hits, ids = 0, []
            if k == "POST _search" and resp.status == 200:
                try:
                    for h in json.loads(data).get("hits", {}).get("hits", []):
                        hits += 1
                        ids.append((h.get("_index"), h.get("_id")))
                except ValueError:
                    pass
            with tally.lock:
                tally.requests[k] += 1
                tally.hits += hits
                tally.distinct.update(ids)
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except BrokenPipeError:
                pass  # detectd gave up waiting (its request timeout): counted anyway
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"




def field(doc, name):
    """`name` of a `_source`, whether stored with dotted keys (as detectd
    writes alerts) or returned nested (source filtering)."""
    if name in doc:
        return doc[name]
    head, _, rest = name.partition(".")
    while rest:
        if head in doc and isinstance(doc[head], dict):
            return field(doc[head], rest)
        nxt, _, rest = rest.partition(".")
        head = f"{head}.{nxt}"
    return doc.get(head)
