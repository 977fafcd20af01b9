#!/usr/bin/env python3
"""bench/managers: BackupManager against DeltaManager on 2, 3 and 4 real nodes, same run.

What each session update costs the cluster, and what the sessions cost each node:

* messages and bytes sent per session update, summed over every node (a ThroughputInterceptor in
  each node's channel counts them: one count per destination);
* session-mutating requests per second on node A as a ratio to the same node's no-session rate
  (wrk, interleaved rounds, medians of the per-round ratios);
* memory per node for 10,000 sessions of ~1 KB (bench/replication.py's payload), created through
  the manager and replicated as a request's end does (``request_completed``), spread evenly over
  the nodes: each node's RSS growth, averaged over the nodes, per session.

Expect BackupManager's messages per update to stay flat as nodes are added (one diff to the
backup) where DeltaManager's grow with the node count (one per other node), and its memory per
node to fall (each session on two nodes, a small proxy entry elsewhere) where DeltaManager's stays
(every session everywhere).

METHOD. ``python -m pycat run`` nodes on 127.0.0.1 built with bench/replication.py's Node (its
server.xml, a cluster of their own on a random multicast group), with the <Manager> replaced:
DeltaManager (the how-to's) or BackupManager (the how-to's "Configuration Example":
mapSendOptions 6), channelSendOptions 6 for both (the example's; a request's response waits until
the other nodes acknowledged), and a ThroughputInterceptor added. The app (APP below) answers
/none, /inc (session["count"] += 1), /fill?n=N (N sessions with the payload, each replicated),
/channel (the interceptor's counters), /count.

Usage: python bench/managers.py [--quick] [--nodes 2,3,4] [--rounds 3] [--duration 3]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == HERE:
    del sys.path[0]         # bench/http.py would shadow the standard library's http

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

# bench/replication.py's Node, Client, wrk runner and payload (loaded by path: bench/ is not a package)
_spec = importlib.util.spec_from_file_location("bench_replication", os.path.join(HERE, "replication.py"))
repl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(repl)

MANAGERS = {
    "delta": '<Manager className="org.apache.catalina.ha.session.DeltaManager" expireSessionsOnShutdown="false" '
             'notifyListenersOnReplication="true" stateTransferTimeout="120"/>',
    "backup": '<Manager className="org.apache.catalina.ha.session.BackupManager" expireSessionsOnShutdown="false" '
              'notifyListenersOnReplication="true" mapSendOptions="6"/>',
}
THROUGHPUT = ('<Interceptor className="org.apache.catalina.tribes.group.interceptors.ThroughputInterceptor" '
              'interval="0"/>')

APP = r'''"""bench/managers.py's app."""
import json
import os
import time
from urllib.parse import parse_qs
''' + repl.PAYLOAD + r'''
_filled = [0]


def _json(start_response, obj):
    body = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _throughput(context):
    cluster = context.get_cluster()
    for interceptor in cluster.channel.interceptors:
        if type(interceptor).__name__ == "ThroughputInterceptor":
            return interceptor
    return None


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/none":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/inc":
        s = environ["pycat.session"]
        s["count"] = s.get("count", 0) + 1
        body = str(s["count"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    args = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    context = environ["pycat.request"].context
    manager = context.manager
    if path == "/fill":
        t0 = time.perf_counter()
        for _ in range(int(args["n"])):
            session = manager.create_session()
            session.access()
            for name, value in payload(_filled[0]).items():
                session[name] = value
            session.end_access()
            manager.request_completed(session)
            _filled[0] += 1
        return _json(start_response, {"seconds": time.perf_counter() - t0})
    if path == "/channel":
        t = _throughput(context)
        return _json(start_response, {"tx": t.tx_deliveries, "mb_tx": t.mb_tx} if t else {})
    if path == "/count":
        roles = manager.roles() if hasattr(manager, "roles") else {}
        held = len(manager._sessions)
        return _json(start_response, {"held": held, "proxies": sum(1 for r in roles.values() if r == "proxy"),
                                      "pid": os.getpid()})
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
'''


class Node(repl.Node):
    def __init__(self, root, route, group, mcast_port, manager):
        super().__init__(root, route, 6, group, mcast_port, False)
        path = os.path.join(self.base, "conf", "server.xml")
        with open(path) as fh:
            xml = fh.read()
        start = xml.index("<Manager ")
        end = xml.index("/>", start) + 2
        xml = xml[:start] + MANAGERS[manager] + xml[end:]
        xml = xml.replace("</Channel>", "  " + THROUGHPUT + "\n        </Channel>", 1)
        with open(path, "w") as fh:
            fh.write(xml)
        with open(os.path.join(self.base, "webapps", "app", "WEB-INF", "classes", "repl_bench.py"), "w") as fh:
            fh.write(APP)


def rss_kb(pid):
    return repl.proc_status(pid, "VmRSS") * 1024.0      # proc_status gives MB


def channel_totals(nodes):
    tx = mb = 0.0
    for node in nodes:
        got = repl.Client(node.http_port).json("/app/channel")
        tx += got["tx"]
        mb += got["mb_tx"]
    return tx, mb


def wait_counts(nodes, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        counts = [repl.Client(n.http_port).json("/app/count") for n in nodes]
        if condition(counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def one_config(manager, n, args):
    root = tempfile.mkdtemp(prefix="pycat-bench-managers-")
    group, mcast_port = repl.unique_group()
    nodes = [Node(root, "node%d" % (i + 1), group, mcast_port, manager) for i in range(n)]
    try:
        for node in nodes:
            node.start()
            node.wait_started()
        for node in nodes:
            for other in nodes:
                if other is not node:
                    node.wait_member(other)
        a = nodes[0]
        # 1. messages and bytes per update: the pool's sessions are created first (and replicated),
        # then args.updates requests each change one
        script, cookie_file = repl.make_pool(a, root, args.users)
        time.sleep(0.5)           # the pool's creation messages are counted out of what follows
        tx0, mb0 = channel_totals(nodes)
        with open(cookie_file) as fh:
            cookies = fh.read().split()
        client = repl.Client(a.http_port)
        for i in range(args.updates):
            status, _body, _ = client.get("/app/inc", cookies[i % len(cookies)])
            assert status == 200, status
        client.close()
        tx1, mb1 = channel_totals(nodes)
        per_update = ((tx1 - tx0) / args.updates, (mb1 - mb0) * 1024 * 1024 / args.updates)
        # 2. mutating / no-session throughput on A, interleaved rounds
        runs = {"none": [], "inc": []}
        for kind in ("none", "inc"):
            repl.run_wrk(a.http_port, "/app/" + kind, args.warmup, args, script, cookie_file)
        for _ in range(args.rounds):
            for kind in ("none", "inc"):
                runs[kind].append(repl.run_wrk(a.http_port, "/app/" + kind, args.duration, args, script,
                                               cookie_file)["rps"])
        ratio = repl.median([i / z for i, z in zip(runs["inc"], runs["none"])])
        # 3. memory per node for args.sessions sessions, created evenly over the nodes
        before = [rss_kb(node.pid) for node in nodes]
        held0 = sum(c["held"] for c in wait_counts(nodes, lambda c: True))
        share = args.sessions // n
        for node in nodes:
            repl.Client(node.http_port, timeout=600).json("/app/fill?n=%d" % share)
        want = held0 + share * n * (n if manager == "delta" else 2)
        counts = wait_counts(nodes, lambda c: sum(x["held"] for x in c) >= want)
        after = [rss_kb(node.pid) for node in nodes]
        kb_per_session = repl.median([(b - a_) / (share * n) for a_, b in zip(before, after)])
        return {"manager": manager, "nodes": n, "messages": per_update[0], "bytes": per_update[1],
                "ratio": ratio, "rps_none": repl.median(runs["none"]), "rps_inc": repl.median(runs["inc"]),
                "kb_per_session_per_node": kb_per_session,
                "held": [c["held"] for c in counts], "proxies": [c["proxies"] for c in counts]}
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 and 3 nodes, short rounds, 2k sessions")
    parser.add_argument("--nodes", default="2,3,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--users", type=int, default=500, help="sessions the load cycles through")
    parser.add_argument("--updates", type=int, default=1000, help="updates counted for messages/bytes")
    parser.add_argument("--sessions", type=int, default=10000, help="sessions for the memory figure")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.rounds, args.duration, args.sessions, args.updates = "2,3", 2, 2, 2000, 300
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    results = []
    for n in [int(x) for x in args.nodes.split(",")]:
        for manager in ("delta", "backup"):
            r = one_config(manager, n, args)
            results.append(r)
            print("%-6s %d nodes: %.2f messages, %.0f bytes per update; mutating/no-session %.2f (%.0f/%.0f req/s); "
                  "%.2f KB per session per node (held %s, proxies %s)" % (
                      manager, n, r["messages"], r["bytes"], r["ratio"], r["rps_inc"], r["rps_none"],
                      r["kb_per_session_per_node"], r["held"], r["proxies"]), flush=True)
    print("\n| nodes | manager | messages / update | bytes / update | mutating / no-session | KB / session / node |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print("| %d | %s | %.2f | %.0f | %.2f | %.2f |" % (r["nodes"], r["manager"], r["messages"], r["bytes"],
                                                      r["ratio"], r["kb_per_session_per_node"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
