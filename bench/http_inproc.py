#!/usr/bin/env python3
"""bench/http_inproc: what pycat's container costs per request, in one process, with no network.

bench/http.py measures real servers under wrk; its numbers move with whatever else the machine
runs. This driver asks the same question without sockets, load generator or scheduler noise, so
the answer can be counted in instructions (valgrind's callgrind) and profiled (cProfile):

  full       the node of bench/http.py (same server.xml: Engine/Host/Context, AccessLogValve
             "common" on the Host; the ROOT app's HttpServlet at /hello), loaded and started by
             ``Catalina`` as ``pycat run`` does (monkey.patch_all, conf/logging.ini, gc.freeze);
             requests go to its Connector's own PycatWSGIServer and Adapter.
  wsgi       the same node, /wsgi: the bare WSGI callable run by a WsgiServlet.
  transport  a PycatWSGIServer set up as bench/http.py's transport (the Connector's defaults, no
             container) serving that bare callable: full - transport is the container.

Each connection is a fake socket (``FakeSocket``): ``makefile()`` gives the handler a buffer of
``--keep-alive`` (100, the Connector's maxKeepAliveRequests) pipelined requests as wrk sends them
(``GET /hello HTTP/1.1`` + ``Host: 127.0.0.1:<port>``), ``sendall`` collects the answer. The
connection goes through ``server.handle(sock, address)`` in a greenlet of its own, as an accepted
one does, so everything the server process runs per request is in the count except the kernel's
socket work and the hub's polling (both the same with or without the container). The first
connection's answers are checked (100 x ``200`` with the 14-byte body). After --warmup requests
the measured --requests run:

    python bench/http_inproc.py                       # wall time per request (noisy on a busy box)
    python bench/http_inproc.py --instructions        # instructions per request, under callgrind
    python bench/http_inproc.py --profile full        # cProfile of the full pipeline, top functions
    PYTHONPATH=/tmp/pycat-before python bench/http_inproc.py --instructions   # another tree

--instructions re-runs this script under ``valgrind --tool=callgrind`` (Debian package
``valgrind``); the child zeroes the counters before and dumps them after each phase's measured
requests (``callgrind_control``, while the child sleeps in the hub so it answers at once) and
subtracts the cost of an empty zero/dump pair. Instructions per request are deterministic to a
few hundred, whatever else the machine does. A real transport also runs gevent's socket code per
request (not here), so the ratio transport / full comes out lower here than bench/http.py's: on
2026-12-02, 0.84 here against 0.88 for its servers under callgrind and 0.87 (CPU per request)
to 0.90 (req/s) timed; use this script to compare trees and find where the cost is, and
bench/http.py for the figure. As there, full - transport is the container net of the WSGI
response work its buffered responses skip (PycatHandler.send_whole). The pycat package
measured is whichever ``import pycat`` finds, so PYTHONPATH selects a tree (say a ``git
archive`` of the previous commit); the script prints which one.
"""
import os
import sys

# this folder holds bench/http.py: as a script's folder it would shadow the stdlib's http package
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

from gevent import monkey  # noqa: E402

monkey.patch_all()      # as `pycat run` does, before anything else is imported

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 8080      # only written into server.xml and the Host header; nothing listens on it for long


def _bench_http():
    """bench/http.py as a module (its server.xml, web.xml, servlet and WSGI callable)."""
    spec = importlib.util.spec_from_file_location("bench_http", os.path.join(HERE, "http.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeSocket:
    """Enough of a socket for PycatHandler: the requests are all there, the answer is kept."""

    def __init__(self, data, keep):
        self._data = data
        self.sent = [] if keep else None
        self.count = 0

    def makefile(self, mode, bufsize=-1):
        return io.BufferedReader(io.BytesIO(self._data))

    def sendall(self, data):
        self.count += 1
        if self.sent is not None:
            self.sent.append(bytes(data))

    def setsockopt(self, *args):
        pass

    def settimeout(self, timeout):
        pass

    def getsockname(self):
        return ("127.0.0.1", PORT)

    def shutdown(self, how):
        pass

    def close(self):
        pass


class Phase:
    def __init__(self, name, server, path, body):
        self.name, self.server, self.path, self.body = name, server, path, body

    def connection(self, count, keep=False):
        request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (self.path, PORT)).encode()
        sock = FakeSocket(request * count, keep)
        # a greenlet per connection, as the Connector's pool runs an accepted socket
        gevent.spawn(self.server.handle, sock, ("127.0.0.1", 40000)).join()
        return sock

    def run(self, requests, per_connection):
        while requests > 0:
            n = min(per_connection, requests)
            self.connection(n)
            requests -= n

    def check(self, per_connection):
        sock = self.connection(per_connection, keep=True)
        wire = b"".join(sock.sent)
        answers = wire.count(b"HTTP/1.1 200 ")
        if answers != per_connection or wire.count(self.body) != per_connection:
            raise SystemExit("%s: expected %d answers 200 with the body, got:\n%r"
                             % (self.name, per_connection, wire[:600]))
        return wire.split(b"\r\n\r\n", 1)[0]


def make_node(bench, base):
    """The node of bench/http.py, started as ``pycat run`` starts it."""
    from pycat.startup.catalina import Catalina, configure_logging
    import pycat
    home = os.path.dirname(os.path.dirname(os.path.abspath(pycat.__file__)))
    bench.make_base(base, 0)     # port 0: bound but never accepted from (the fake sockets bypass it)
    configure_logging(base, home)
    os.chdir(base)
    catalina = Catalina(base, home)
    catalina.load()
    catalina.start()
    connector = catalina.server.services[0].connectors[0]
    return catalina, connector.wsgi_server


def make_transport(hello):
    """bench/http.py's transport server (no container), not listening: the fake sockets feed it."""
    from pycat.connector.connector import Connector, _ms
    from pycat.connector.handler import PycatWSGIServer
    c = Connector()
    c.port, c.address, c.connection_timeout = PORT, "127.0.0.1", 20000
    server = PycatWSGIServer(("127.0.0.1", 0), application=hello, spawn=None, log=None,
                             error_log=logging.getLogger("pycat.connector.pywsgi"))
    server.connection_timeout = _ms(c.connection_timeout)
    kat = c.keep_alive_timeout
    server.keep_alive_timeout = server.connection_timeout if kat is None else _ms(kat)
    server.max_keep_alive_requests = c.max_keep_alive_requests
    server.max_header_size = c.header_limit()
    server.set_environ({"SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(PORT), "SERVER_SOFTWARE": "pycat"})
    return server


# -- callgrind control from inside the measured process -----------------------------------------
def _callgrind(command, tmp):
    """Run ``callgrind_control <command> <our pid>`` and wait for it while sleeping in the hub
    (callgrind answers a request when the process runs or wakes; a busy loop would be counted)."""
    flag = os.path.join(tmp, "done")
    if os.path.exists(flag):
        os.remove(flag)
    subprocess.Popen(["sh", "-c", "callgrind_control %s %d >/dev/null 2>&1; touch %s" % (command, os.getpid(), flag)])
    while not os.path.exists(flag):
        time.sleep(0.01)


def _counted(tmp, out_dir, fn):
    """Instructions of ``fn()``: zero, run, dump, read the newest dump's summary."""
    before = set(os.listdir(out_dir))
    _callgrind("-z", tmp)
    fn()
    _callgrind("-d", tmp)
    dumps = sorted(set(os.listdir(out_dir)) - before, key=lambda n: int(n.rsplit(".", 1)[1]))
    with open(os.path.join(out_dir, dumps[-1])) as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("summary:"))


def measure(args, phases):
    """Run each phase; per request: wall time, or (under callgrind) instructions."""
    out_dir = os.environ.get("PYCAT_INPROC_CALLGRIND")
    tmp = tempfile.mkdtemp(prefix="inproc-ctl-")
    results = {}
    try:
        empty = 0
        if out_dir:
            empty = min(_counted(tmp, out_dir, lambda: None) for _ in range(3))
        for phase in phases:
            phase.run(args.warmup, args.keep_alive)
            gc.collect()
            if out_dir:
                total = _counted(tmp, out_dir, lambda: phase.run(args.requests, args.keep_alive))
                results[phase.name] = (total - empty) / args.requests
            else:
                samples = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    phase.run(args.requests, args.keep_alive)
                    samples.append((time.perf_counter() - t0) * 1e6 / args.requests)
                results[phase.name] = sorted(samples)[len(samples) // 2]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def report(results, unit, label):
    width = max(len(n) for n in results)
    for name, value in results.items():
        print("%-*s %10.1f %s/request" % (width, name, value, unit))
    base = results.get("transport")
    if base:
        for name in ("full", "wsgi"):
            if name in results:
                print("%s - transport: %.1f %s/request (the container); transport / %s = %.2f   (target >= 0.85)"
                      % (name, results[name] - base, unit, name, base / results[name]))
    print(label)


def profile(args, phase):
    import cProfile
    import pstats
    phase.run(args.warmup, args.keep_alive)
    prof = cProfile.Profile()
    prof.enable()
    phase.run(args.requests, args.keep_alive)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


def under_callgrind(args):
    """Re-run this script (same arguments) under callgrind and relay its output."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("--instructions needs valgrind and callgrind_control (Debian package 'valgrind')")
    out_dir = tempfile.mkdtemp(prefix="inproc-cg-")
    argv = [a for a in sys.argv[1:] if a != "--instructions"]
    env = dict(os.environ, PYCAT_INPROC_CALLGRIND=out_dir, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--cache-sim=no", "--callgrind-out-file=%s/callgrind.%%p" % out_dir,
           os.path.realpath(sys.executable), os.path.abspath(__file__)] + argv
    try:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(proc.returncode)
        if args.keep_dumps:
            print("callgrind dumps kept in %s (callgrind_annotate <file>)" % out_dir)
    finally:
        if not args.keep_dumps:
            shutil.rmtree(out_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=None,
                        help="measured requests per phase (default 20000, 2000 with --instructions)")
    parser.add_argument("--warmup", type=int, default=500, help="requests per phase before measuring")
    parser.add_argument("--keep-alive", type=int, default=100, help="requests per connection (maxKeepAliveRequests)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per phase (median)")
    parser.add_argument("--phases", default="transport,full,wsgi", help="comma-separated: transport,full,wsgi")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--keep-dumps", action="store_true", help="with --instructions: keep the callgrind dumps")
    parser.add_argument("--profile", metavar="PHASE", help="cProfile one phase instead of measuring")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    args = parser.parse_args()
    if args.requests is None:
        args.requests = 2000 if (args.instructions or os.environ.get("PYCAT_INPROC_CALLGRIND")) else 20000
    if args.instructions:
        under_callgrind(args)
        return

    import pycat
    bench = _bench_http()
    namespace = {}
    exec(bench.BENCHAPP, namespace)
    hello = namespace["hello"]
    base = tempfile.mkdtemp(prefix="pycat-inproc-")
    catalina = None
    try:
        catalina, node_server = make_node(bench, base)
        transport = make_transport(hello)
        all_phases = {"transport": Phase("transport", transport, "/hello", bench.BODY),
                      "full": Phase("full", node_server, "/hello", bench.BODY),
                      "wsgi": Phase("wsgi", node_server, "/wsgi", bench.BODY)}
        phases = [all_phases[n.strip()] for n in args.phases.split(",") if n.strip()]
        print("pycat from %s; Python %s" % (os.path.dirname(pycat.__file__), sys.version.split()[0]))
        for phase in phases:
            head = phase.check(args.keep_alive)
            print("%-9s %s" % (phase.name, head.decode("latin-1").replace("\r\n", " | ")))
        if args.profile:
            profile(args, all_phases[args.profile])
            return
        results = measure(args, phases)
        if os.environ.get("PYCAT_INPROC_CALLGRIND"):
            report(results, "instructions", "callgrind: %d requests per phase after %d of warm-up, %d per connection"
                   % (args.requests, args.warmup, args.keep_alive))
        else:
            report(results, "us", "wall time: median of %d runs of %d requests per phase, %d per connection"
                   % (args.repeat, args.requests, args.keep_alive))
    finally:
        if catalina is not None:
            catalina.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
