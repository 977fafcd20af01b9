#!/usr/bin/env python3
"""bench/ajp: requests per second through Apache httpd to pycat over AJP, against HTTP, in the same run.

Targets (one pycat node, ``pycat run`` on a temporary CATALINA_BASE with an HTTP and an AJP
connector on 127.0.0.1, the AJP one with a secret; the WSGI app of tests/ajp/ajp_front.py at
/app/small, a 16-byte answer, no session):

  direct      wrk → pycat's HTTP connector
  proxy_http  wrk → httpd (mod_proxy_http, a balancer of one member) → pycat HTTP
  proxy_ajp   wrk → httpd (mod_proxy_ajp, the same balancer, secret=) → pycat AJP
  jk          wrk → httpd (mod_jk, an lb worker over one ajp13 worker with the secret) → pycat AJP

Each httpd is its own process (the event MPM, its own config in a temporary folder, as the
tests start it). Method: a warm-up of every target, then interleaved rounds (round 1 loads
direct, proxy_http, proxy_ajp, jk; round 2 again...), so drift in the machine's load hits every
target alike. Reported: the median over rounds of req/s and p99 latency per target, and the
median (min..max) over rounds of the per-round ratios proxy_ajp / proxy_http, jk / proxy_http and
proxy_ajp / direct. Medians of per-round ratios: a neighbour's burst spoils one round, not the
result. Every wrk run must see only 2xx answers (non-2xx or socket errors are printed and fail
the run).

    python bench/ajp.py                          # 5 rounds x 3 s, 20 connections, wrk -t1
    python bench/ajp.py --rounds 9 --duration 2 --connections 50

wrk (Debian package ``wrk``) and apache2 with libapache2-mod-jk are needed (mod_jk absent: the jk
target is skipped with a note). On a 2-core machine wrk, httpd and pycat share the cores: read
the ratios, not the absolute figures.
"""
import os
import sys

# bench/http.py would shadow the stdlib's http package (httpd helpers use http.cookiejar)
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HOME = os.path.dirname(HERE)
sys.path.insert(0, HOME)
sys.path.insert(0, os.path.join(HOME, "tests", "ajp"))
from ajp_front import JK_MODULE, AjpFront, make_ajp_node, start_nodes  # noqa: E402
from node_helpers import Procs, free_port  # noqa: E402

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")


def wrk(url, duration, connections):
    out = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration, "--latency", url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    bad = _NON2XX.search(out)
    errors = _ERRORS.search(out)
    if bad or (errors and "timeout 0" not in errors.group(0)):
        raise SystemExit("%s: errors under load:\n%s" % (url, out))
    p99 = _P99.search(out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return float(_RPS.search(out).group(1)), (float(p99.group(1)) * scale[p99.group(2)] if p99 else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds per target per round")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of untimed load per target")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    root = tempfile.mkdtemp(prefix="pycat-bench-ajp-")
    procs = Procs()
    fronts = []
    try:
        node = make_ajp_node(os.path.join(root, "node"), "node1")
        start_nodes(procs, [node])
        targets = {"direct": "http://127.0.0.1:%d/app/small" % node.http_port}
        modes = ["proxy_http", "proxy_ajp"] + (["jk"] if os.path.exists(JK_MODULE) else [])
        if "jk" not in modes:
            print("note: mod_jk is not installed (libapache2-mod-jk): the jk target is skipped")
        for mode in modes:
            port = free_port()
            member = node.http_port if mode == "proxy_http" else node.ajp_port
            front = AjpFront(os.path.join(root, mode), port, mode, [("node1", member)])
            fronts.append(front)
            front.start()
            targets[mode] = front.url("/app/small")
        print("pycat %s, %d rounds x %d s, %d connections, wrk -t1" % (sys.version.split()[0], args.rounds,
                                                                   args.duration, args.connections))
        for name, url in targets.items():
            wrk(url, args.warmup, args.connections)
        results = {name: [] for name in targets}
        for r in range(args.rounds):
            line = []
            for name, url in targets.items():
                rps, p99 = wrk(url, args.duration, args.connections)
                results[name].append((rps, p99))
                line.append("%s %.0f" % (name, rps))
            print("round %d: %s" % (r + 1, ", ".join(line)))
        print()
        print("%-11s %10s %10s" % ("target", "req/s", "p99 ms"))
        for name, runs in results.items():
            p99s = [p for _, p in runs if p is not None]
            print("%-11s %10.0f %10.2f" % (name, statistics.median(r for r, _ in runs),
                                           statistics.median(p99s) if p99s else float("nan")))
        print()
        pairs = [("proxy_ajp", "proxy_http"), ("jk", "proxy_http"), ("proxy_ajp", "direct"), ("jk", "direct"),
                 ("proxy_http", "direct")]
        for a, b in pairs:
            if a in results and b in results:
                ratios = [x[0] / y[0] for x, y in zip(results[a], results[b])]
                print("%-24s %.2f (%.2f..%.2f)" % ("%s / %s" % (a, b), statistics.median(ratios), min(ratios),
                                                   max(ratios)))
    finally:
        for front in fronts:
            front.stop()
        procs.cleanup()
        if args.keep:
            print("kept", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
