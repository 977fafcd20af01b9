#!/usr/bin/env python3
"""bench/http: what pycat's container costs per request, measured against the same HTTP layer without it.

Servers (each its own process; started one at a time, then loaded in turn):

  pycat       the full pipeline: ``pycat run`` on a temporary CATALINA_BASE whose server.xml has
              Engine/Host/Context and an AccessLogValve (pattern "common", buffered as shipped) on
              the Host; ROOT app, an HttpServlet at /hello writing a 14-byte body:
              Connector -> Adapter -> Engine -> Host (AccessLogValve, ErrorReportValve) -> Context
              -> Wrapper -> servlet.
  pycat-wsgi  the same node, the bare WSGI callable below at /wsgi, run by a WsgiServlet.
  transport   pycat's own HTTP layer with no container: the Connector's PycatWSGIServer and
              PycatHandler, set up as Connector._start does (TCP_NODELAY, one send for headers and
              a small body, the same timeouts, maxKeepAliveRequests and header limit), serving the
              bare WSGI callable directly. pycat / transport is what the container costs, net
              of one saving the bare callable cannot have: the container's buffered responses
              leave through PycatHandler.send_whole (the same bytes, checked as WSGI's
              start_response checks them) instead of start_response + write.
  gunicorn    gunicorn's gevent worker (1 worker, no access log) serving the same callable; skipped
              with a note when gunicorn is not installed (``pip install gunicorn``, or the ``bench``
              extra: ``pip install -e .[bench]``); --no-gunicorn leaves it out.
  pywsgi      stock gevent.pywsgi (TCP_NODELAY on accepted sockets, no request log); --no-pywsgi
              leaves it out.

All answer ``200``, ``Content-Type: text/plain``, ``Content-Length: 14``, ``Hello, World!\\n``; each
server's response head is printed, so differences in header bytes are visible.

Method. Each server is warmed up (--warmup seconds of load, untimed), then the rounds are
interleaved: round 1 loads A, B, C, ..., round 2 again A, B, C, ... (--rounds times), so drift in
the machine's load (other processes, thermal) hits every server alike. Reported per server: the
median over rounds of req/s, p50 and p99 latency, and of the server's CPU time per request
(utime+stime from /proc over the round / requests: a process that another one crowds off its
core loses req/s but hardly CPU/req). For the pairs that matter, the median over rounds of the
*per-round* ratio of req/s, with its min and max; pycat / transport is the headline (target >=
0.85), and the same ratio of CPU per request is printed under it. Medians of per-round ratios,
not ratios of medians nor best runs: a neighbour's burst spoils one round, not the result. Also:
RSS after the rounds (for gunicorn its worker), the time from spawn to the first 200, and, after
pycat's orderly stop, the access log's line count against the requests the load generator
counted (every request must have been logged).

--also HOME adds another pycat source tree (say a checkout of the previous commit) to the same
rounds: its node and its transport appear as pycat@1 / transport@1, each tree's node compared
with its own transport, so a before/after comparison shares every round's conditions.

--instructions N replaces the timing by a count: each tree's node and transport run under
valgrind's callgrind (Debian package ``valgrind``), get a warm-up, then N requests between a
zero and a dump of the counters. Instructions per request do not move with the machine's load,
and their transport / node ratio tracked the req/s ratio within a few hundredths here (both run
the same interpreter on the same kind of code, so about the same instructions per cycle): use
it to compare changes on a busy machine. It takes minutes (valgrind runs ~50x slower).

bench/http_inproc.py asks the same question in one process, without sockets or a load generator:
the node and the transport fed keep-alive requests through fake sockets, counted under callgrind
in about a minute (``--instructions``) or profiled (``--profile full``); use it to find and weigh
a change, and this script to confirm it with real servers.

Load: wrk (Debian package ``wrk``) if it is on PATH, else (or with --load python) a load
generator written in Python with gevent, in its own process: --connections keep-alive
connections, reconnecting when the server closes one (pycat's maxKeepAliveRequests is 100). That
generator is slower than the servers, so with it read the CPU/req ratios, not req/s.

    python bench/http.py                        # 7 rounds x 3 s, 50 connections, wrk -t1
    python bench/http.py --rounds 15 --duration 2 --no-pywsgi --no-gunicorn
    python bench/http.py --also ../pycat-before  # before/after in the same rounds
    python bench/http.py --load python          # no wrk
    python bench/http.py --instructions 2000 --also ../pycat-before   # instruction counts
    python bench/http.py --verbose --keep       # servers' stderr; keep the CATALINA_BASEs

On a 2-core machine wrk takes one core and the server under load the other; the idle servers
sleep. Figures worth quoting need a quiet machine; on a busy one use more, shorter rounds and
rely on the ratios.
"""
import os
import sys

# this file is named http.py: when run as a script its folder must not shadow the stdlib's http package
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = b"Hello, World!\n"

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="localhost_access_log" suffix=".txt" pattern="common"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <servlet>
    <servlet-name>hello</servlet-name>
    <servlet-class>hello:HelloServlet</servlet-class>
  </servlet>
  <servlet-mapping>
    <servlet-name>hello</servlet-name>
    <url-pattern>/hello</url-pattern>
  </servlet-mapping>
  <servlet>
    <servlet-name>wsgi</servlet-name>
    <servlet-class>benchapp:hello</servlet-class>
  </servlet>
  <servlet-mapping>
    <servlet-name>wsgi</servlet-name>
    <url-pattern>/wsgi</url-pattern>
  </servlet-mapping>
</web-app>
"""

SERVLET = '''from pycat.webapp.servlet import HttpServlet

BODY = %r


class HelloServlet(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write(BODY)
''' % BODY

# the bare WSGI callable every baseline serves (and pycat-wsgi runs through the container)
BENCHAPP = '''BODY = %r
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def hello(environ, start_response):
    start_response("200 OK", list(HEADERS))
    return [BODY]
''' % BODY

# pycat's transport alone: PycatWSGIServer exactly as Connector._start sets it up, minus the Adapter
TRANSPORT_SERVER = '''
from gevent import monkey
monkey.patch_all()   # as `pycat run` does
import logging, sys
import gevent.pool
from pycat.connector.connector import Connector, _ms
from pycat.connector.handler import PycatWSGIServer
from benchapp import hello

c = Connector()      # the defaults a <Connector> gets, plus what the bench's server.xml sets
c.port, c.address, c.connection_timeout = int(sys.argv[1]), "127.0.0.1", 20000
listener = c._bind()
server = PycatWSGIServer(listener, application=hello, spawn=gevent.pool.Pool(c.connection_limit()),
                         log=None, error_log=logging.getLogger("pycat.connector.pywsgi"))
server.connection_timeout = _ms(c.connection_timeout)
kat = c.keep_alive_timeout
server.keep_alive_timeout = server.connection_timeout if kat is None else _ms(kat)
server.max_keep_alive_requests = c.max_keep_alive_requests
server.max_header_size = c.header_limit()
server.set_environ({"SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(c.bound_port), "SERVER_SOFTWARE": "pycat"})
server.serve_forever()
'''

PYWSGI_SERVER = '''
import socket, sys
from gevent import pywsgi
from benchapp import hello

class NoDelayServer(pywsgi.WSGIServer):
    def handle(self, sock, address):
        # headers and body go out in two writes: without this, Nagle waits for the delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle(sock, address)

NoDelayServer(("127.0.0.1", int(sys.argv[1])), hello, log=None).serve_forever()
'''

# the fallback load generator: its own process, gevent, keep-alive connections
PY_LOADGEN = r'''
import json, sys, time
from gevent import monkey
monkey.patch_all()
import gevent, socket

host, port, path, conns, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
left = [int(sys.argv[6]) if len(sys.argv) > 6 else float("inf")]     # optional: this many requests in all
REQ = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode()
lat, stats = [], {"non2xx": 0, "errors": 0}
deadline = time.monotonic() + duration

def one():
    sock, buf = None, b""
    while time.monotonic() < deadline and left[0] > 0:
        left[0] -= 1
        try:
            if sock is None:
                sock = socket.create_connection((host, port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = b""
            t0 = time.perf_counter()
            sock.sendall(REQ)
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            while len(buf) < length:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                buf += data
            buf = buf[length:]
            lat.append(time.perf_counter() - t0)
            if not lines[0].split(b" ")[1].startswith((b"2", b"3")):
                stats["non2xx"] += 1
            if close:
                sock.close()
                sock = None
        except OSError:
            stats["errors"] += 1
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()

t0 = time.monotonic()
gevent.joinall([gevent.spawn(one) for _ in range(conns)])
elapsed = time.monotonic() - t0
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")
print(json.dumps({"requests": len(lat), "rps": len(lat) / elapsed, "p50": pct(0.50), "p99": pct(0.99),
                  "non2xx": stats["non2xx"], "socket_errors": ("errors %d" % stats["errors"]) if stats["errors"] else ""}))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_base(root, port):
    for d in ("conf", "logs", "work", "temp", "webapps/ROOT/WEB-INF/classes"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name in ("web.xml", "context.xml", "logging.ini"):
        src = os.path.join(HOME, "conf", name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(root, "conf", name))
    with open(os.path.join(root, "conf", "server.xml"), "w") as fh:
        fh.write(SERVER_XML.format(port=port))
    with open(os.path.join(root, "webapps", "ROOT", "WEB-INF", "web.xml"), "w") as fh:
        fh.write(WEB_XML)
    classes = os.path.join(root, "webapps", "ROOT", "WEB-INF", "classes")
    with open(os.path.join(classes, "hello.py"), "w") as fh:
        fh.write(SERVLET)
    with open(os.path.join(classes, "benchapp.py"), "w") as fh:
        fh.write(BENCHAPP)


def get_once(port, path, timeout=1.0):
    """One raw HTTP/1.1 GET: (status, header block bytes, body) or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                       % (path, port)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
    return status, head, body


def wait_first_200(server, t0, timeout=30.0):
    while time.monotonic() - t0 < timeout:
        if server.proc.poll() is not None:
            raise SystemExit("%s exited with %s before serving" % (server.name, server.proc.returncode))
        got = get_once(server.port, server.path)
        if got is not None and got[0] == 200 and got[2] == BODY:
            return time.monotonic() - t0, got[1]
        time.sleep(0.005)
    raise SystemExit("%s: no 200 from port %d within %.0fs" % (server.name, server.port, timeout))


def parse_duration_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port, path, duration, args):
    url = "http://127.0.0.1:%d%s" % (port, path)
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % duration, "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = parse_duration_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = parse_duration_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "requests": requests,
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def run_python_load(port, path, duration, args):
    cmd = [sys.executable, "-c", PY_LOADGEN, "127.0.0.1", str(port), path, str(args.connections), str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_python_count(port, path, count, connections):
    """Exactly ``count`` requests (the Python generator with a request budget instead of a time)."""
    cmd = [sys.executable, "-c", PY_LOADGEN, "127.0.0.1", str(port), path, str(connections), "3600", str(count)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_instructions(trees, args):
    """--instructions N: each tree's node and transport run under valgrind's callgrind; after a
    warm-up the counters are zeroed, N requests are sent (Python generator, --connections
    connections), the counters dumped. Instructions per request do not depend on what else the
    machine runs, so this is the measurement to trust on a busy machine; the transport / node
    ratio of instructions predicted the req/s ratio within a few hundredths here (IPC is about
    the same for both: the same interpreter running the same kind of code)."""
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            raise SystemExit("--instructions needs %s (Debian package 'valgrind')" % tool)
    rows = []
    for tree in trees:
        paths = ["/hello"] + ([] if args.no_wsgi_app else ["/wsgi"])
        for server, server_paths in ((tree.pycat, paths), (tree.transport, ["/hello"])):
            out = os.path.join(tree.base, "callgrind.%p")
            env = dict(server.env, PYTHONHASHSEED="0")
            proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--cache-sim=no", "--callgrind-out-file=" + out]
                                    + server.cmd, env=env, cwd=server.cwd, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            server.proc = proc
            try:
                wait_first_200(server, time.monotonic(), timeout=600)
                for path in server_paths:
                    run_python_count(server.port, path, 300, 10)            # warm: valgrind translates code once
                    subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    run_python_count(server.port, path, args.instructions, args.connections)
                    before = set(os.listdir(tree.base))
                    subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    dumps = sorted(set(os.listdir(tree.base)) - before)
                    with open(os.path.join(tree.base, dumps[-1])) as fh:
                        total = next(int(line.split()[1]) for line in fh if line.startswith("summary:"))
                    rows.append((tree, server, path, total / args.instructions))
                    print("%s %s: %.0f instructions/request" % (server.name.split("@")[0] + tree.suffix, path,
                                                                 rows[-1][3]), flush=True)
            finally:
                server.stop()
    print()
    print("instructions per request, %d requests after a warm-up, valgrind callgrind" % args.instructions)
    for tree in trees:
        ir = {(s.name, p): v for t, s, p, v in rows if t is tree}
        base = ir[(tree.transport.name, "/hello")]
        for path in ["/hello"] + ([] if args.no_wsgi_app else ["/wsgi"]):
            node = ir[(tree.pycat.name, path)]
            print("%-12s %-7s node %8.0f  transport %8.0f  container %7.0f  transport / node %.2f   target >= 0.85"
                  % ("pycat" + tree.suffix, path, node, base, node - base, base / node))


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pids):
    """utime + stime of these processes (Linux /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                fields = fh.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def child_pids(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


class Server:
    def __init__(self, name, cmd, port, path, env, cwd=None, shares=None):
        self.name, self.cmd, self.port, self.path, self.env, self.cwd = name, cmd, port, path, env, cwd
        self.shares = shares      # another Server whose process this one is (pycat-wsgi)
        self.proc = None
        self.first = None
        self.head = b""
        self.results = []
        self.rss = float("nan")

    def start(self, verbose):
        if self.shares is not None:
            self.proc = self.shares.proc
            return
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                     stderr=None if verbose else subprocess.DEVNULL)

    def ready(self):
        t0 = self.shares._t0 if self.shares is not None else self._t0
        self.first, self.head = wait_first_200(self, t0)

    def measure_rss(self):
        pid = self.proc.pid
        kids = child_pids(pid)
        # gunicorn's arbiter forks the worker that serves: that one's memory is the comparable figure
        self.rss = rss_mb(kids[0]) if self.name == "gunicorn" and kids else rss_mb(pid)

    def stop(self):
        if self.shares is not None or self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def median(values):
    return statistics.median(values) if values else float("nan")


class Tree:
    """One pycat source tree under test: its node (pycat, pycat-wsgi) and its bare transport."""

    def __init__(self, home, suffix):
        self.home, self.suffix = home, suffix
        self.base = tempfile.mkdtemp(prefix="pycat-bench-")
        self.classes = os.path.join(self.base, "webapps", "ROOT", "WEB-INF", "classes")
        extra = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
        env = dict(os.environ, CATALINA_BASE=self.base, CATALINA_HOME=home)
        env.pop("JAVA_OPTS", None), env.pop("CATALINA_OPTS", None)
        # the node imports benchapp through its webapp loader; the baselines from PYTHONPATH
        self.node_env = dict(env, PYTHONPATH=os.pathsep.join([home] + extra))
        self.env = dict(env, PYTHONPATH=os.pathsep.join([home, self.classes] + extra))
        port = free_port()
        make_base(self.base, port)
        self.pycat = Server("pycat" + suffix, [sys.executable, "-m", "pycat", "run"], port, "/hello",
                            self.node_env, cwd=self.base)
        self.pycat_wsgi = Server("pycat-wsgi" + suffix, None, port, "/wsgi", self.node_env, shares=self.pycat)
        port = free_port()
        self.transport = Server("transport" + suffix, [sys.executable, "-c", TRANSPORT_SERVER, str(port)], port,
                                "/hello", self.env)
        self.requests = 0          # counted by the load generator for the node (for the access log check)

    def access_lines(self):
        logs = os.path.join(self.base, "logs")
        if not os.path.isdir(logs):
            return None
        total = 0
        for name in os.listdir(logs):
            if name.startswith("localhost_access_log"):
                with open(os.path.join(logs, name), "rb") as fh:
                    total += sum(1 for _ in fh)
        return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median over them)")
    parser.add_argument("--duration", type=int, default=3, help="seconds of load per server per round")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of untimed load per server first")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--also", action="append", default=[], metavar="HOME",
                        help="another pycat source tree (e.g. a checkout of the previous commit) whose node "
                             "and transport join the same interleaved rounds, as pycat@1, transport@1, ...")
    parser.add_argument("--no-pywsgi", action="store_true", help="leave stock gevent.pywsgi out")
    parser.add_argument("--no-gunicorn", action="store_true", help="leave gunicorn out")
    parser.add_argument("--no-wsgi-app", action="store_true", help="leave the pycat-wsgi variant out")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="instead of timing: count instructions per request under valgrind (N requests "
                             "per server after a warm-up; immune to a busy machine, takes minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary CATALINA_BASEs")
    parser.add_argument("--verbose", action="store_true", help="show the servers' stderr")
    args = parser.parse_args()

    load = args.load
    if load == "auto":
        load = "wrk" if shutil.which("wrk") else "python"
    elif load == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package 'wrk'); or use --load python")
    loader = run_wrk if load == "wrk" else run_python_load
    notes = []
    if load == "python":
        notes.append("%sPython load generator: it is slower than the servers, so they idle between requests and "
                     "req/s ratios say little; read the CPU/req ratios" % ("wrk not found: " if args.load == "auto"
                                                                           else ""))

    trees = [Tree(HOME, "")] + [Tree(os.path.abspath(h), "@%d" % (i + 1)) for i, h in enumerate(args.also)]
    if args.instructions:
        try:
            measure_instructions(trees, args)
        finally:
            for tree in trees:
                if args.keep:
                    print("CATALINA_BASE kept: %s" % tree.base)
                else:
                    shutil.rmtree(tree.base, ignore_errors=True)
        return
    servers = []
    for tree in trees:
        servers.append(tree.pycat)
        if not args.no_wsgi_app:
            servers.append(tree.pycat_wsgi)
        servers.append(tree.transport)
    main_tree = trees[0]
    if args.no_gunicorn:
        pass
    elif importlib.util.find_spec("gunicorn") is not None:
        port = free_port()
        servers.append(Server("gunicorn", [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
                                           "--worker-connections", "1000", "--keep-alive", "20",
                                           "--log-level", "warning", "-b", "127.0.0.1:%d" % port,
                                           "benchapp:hello"], port, "/hello", main_tree.env,
                              cwd=main_tree.classes))
    else:
        notes.append("gunicorn not installed: its baseline is skipped (pip install gunicorn, or .[bench])")
    if not args.no_pywsgi:
        port = free_port()
        servers.append(Server("pywsgi", [sys.executable, "-c", PYWSGI_SERVER, str(port)], port, "/hello",
                              main_tree.env))
    node_of = {}
    for tree in trees:
        node_of[tree.pycat.name] = node_of[tree.pycat_wsgi.name] = tree

    access = {}
    try:
        for s in servers:
            # one at a time, so each "first 200" is its own start-up and not a share of a crowd's
            s.start(args.verbose)
            s.ready()
        for s in servers:
            if args.warmup > 0:
                r = loader(s.port, s.path, args.warmup, args)
                if s.name in node_of:
                    node_of[s.name].requests += r.get("requests", 0)
        for rnd in range(args.rounds):
            for s in servers:
                pids = [s.proc.pid] + child_pids(s.proc.pid)
                cpu0 = cpu_seconds(pids)
                r = loader(s.port, s.path, args.duration, args)
                # CPU time the server spent per request: unlike req/s, hardly moved by other
                # processes competing for the cores (they take wall time, not this process's CPU time)
                r["cpu_us"] = (cpu_seconds(pids) - cpu0) * 1e6 / max(1, r["requests"])
                s.results.append(r)
                if s.name in node_of:
                    node_of[s.name].requests += r.get("requests", 0)
            print("round %d/%d: %s" % (rnd + 1, args.rounds, "  ".join(
                "%s %.0f" % (s.name, s.results[-1]["rps"]) for s in servers)), flush=True)
        for s in servers:
            s.measure_rss()
    finally:
        for s in servers:
            s.stop()         # SIGTERM: the node stops in order and flushes its access log
        for tree in trees:
            access[tree.suffix] = tree.access_lines()
            if args.keep:
                print("CATALINA_BASE kept: %s" % tree.base)
            else:
                shutil.rmtree(tree.base, ignore_errors=True)

    print()
    if load == "wrk":
        print("wrk -t%d -c%d, %d rounds x %ds interleaved (%ds warm-up each), 127.0.0.1, Python %s, %d CPUs"
              % (args.threads, args.connections, args.rounds, args.duration, args.warmup,
                 sys.version.split()[0], os.cpu_count() or 0))
    else:
        print("python load generator, %d connections, %d rounds x %ds interleaved (%ds warm-up each), "
              "Python %s, %d CPUs" % (args.connections, args.rounds, args.duration, args.warmup,
                                      sys.version.split()[0], os.cpu_count() or 0))
    for tree in trees[1:]:
        print("@%s = %s" % (tree.suffix[1:], tree.home))
    width = max(11, max(len(s.name) for s in servers))
    print("%-*s %10s %9s %9s %10s %9s %11s %6s  %s" % (width, "server", "req/s", "p50 ms", "p99 ms", "CPU us/req",
                                                      "RSS MB", "first 200", "hdr B", "errors"))
    for s in servers:
        rs = s.results
        non2xx = sum(r["non2xx"] for r in rs)
        sock_err = "; ".join(r["socket_errors"] for r in rs if r["socket_errors"])
        errors = ("non-2xx %d " % non2xx if non2xx else "") + sock_err
        print("%-*s %10.0f %9.2f %9.2f %10.1f %9.1f %9.0fms %6d  %s" % (
            width, s.name, median([r["rps"] for r in rs]), median([r["p50"] for r in rs]),
            median([r["p99"] for r in rs]), median([r["cpu_us"] for r in rs]), s.rss, s.first * 1000,
            len(s.head), errors or "-"))
    print()
    by_name = {s.name: s for s in servers}
    pairs = []
    for tree in trees:
        x = tree.suffix
        pairs += [("pycat" + x, "transport" + x, True), ("pycat-wsgi" + x, "transport" + x, True)]
    pairs += [("pycat", "gunicorn", False), ("transport", "gunicorn", False), ("pycat", "pywsgi", False)]
    for a, b, _ in pairs:
        if a in by_name and b in by_name:
            ratios = [x["rps"] / y["rps"] for x, y in zip(by_name[a].results, by_name[b].results)]
            target = "   target >= 0.85" if a.startswith("pycat") and b.startswith("transport") else ""
            print("req/s   %-*s / %-*s  median %.2f  (min %.2f, max %.2f over %d rounds)%s"
                  % (width, a, width - 2, b, median(ratios), min(ratios), max(ratios), len(ratios), target))
    for a, b, container in pairs:
        if container and a in by_name and b in by_name:
            # the same question asked of CPU time: the transport's CPU per request / the node's
            ratios = [y["cpu_us"] / x["cpu_us"] for x, y in zip(by_name[a].results, by_name[b].results)
                      if x["cpu_us"] > 0]
            if ratios:
                print("CPU/req %-*s vs %-*s  median %.2f  (min %.2f, max %.2f)   (transport's CPU per request / "
                      "the node's)" % (width, a, width - 2, b, median(ratios), min(ratios), max(ratios)))
    print()
    for tree in trees:
        lines = access.get(tree.suffix)
        if lines is not None:
            # the load generator's count leaves out requests still in flight when it stops, hence ">="
            print("access log of pycat%s: %d lines, %d requests counted%s" % (
                tree.suffix, lines, tree.requests, "" if lines >= tree.requests else "   (LINES MISSING)"))
    for s in servers:
        print("%-*s response head: %s" % (width, s.name, s.head.decode("latin-1").replace("\r\n", " | ")))
    for note in notes:
        print("note: " + note)


if __name__ == "__main__":
    main()
