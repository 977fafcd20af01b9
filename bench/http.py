#!/usr/bin/env python3
"""bench/http: pycat's full pipeline against raw gevent.pywsgi, in one invocation, one after the other.

(a) pycat: a real ``pycat run`` subprocess on a temporary CATALINA_BASE; a hello-world HttpServlet
    deployed as the ROOT app, reached through Connector -> Engine -> Host -> Context -> servlet with
    an AccessLogValve on the Host.
(b) raw: gevent.pywsgi.WSGIServer (TCP_NODELAY on each accepted socket, no request log) serving
    the same bytes from a plain WSGI callable, in a subprocess.

Each is loaded by wrk on 127.0.0.1; printed: req/s, p50, p99, RSS after the run (VmRSS), and the
time from process spawn to the first HTTP 200. Targets (issue 2): ratio >= 0.85, p99 <= 6 ms,
first 200 <= 0.5 s, RSS <= 40 MB.

    python bench/http.py [--duration 5] [--connections 50] [--threads 1] [--keep]
"""
import os
import sys

# this file is named http.py: when run as a script its folder must not shadow the stdlib's http package
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

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
</web-app>
"""

SERVLET = '''from pycat.webapp.servlet import HttpServlet

BODY = %r


class HelloServlet(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write(BODY)
''' % BODY

RAW_SERVER = '''
import socket, sys
from gevent import pywsgi

BODY = %r

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]

class NoDelayServer(pywsgi.WSGIServer):
    def handle(self, sock, address):
        # headers and body go out in two writes: without this, Nagle waits for the delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle(sock, address)

NoDelayServer(("127.0.0.1", int(sys.argv[1])), hello, log=None).serve_forever()
''' % BODY


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
    with open(os.path.join(root, "webapps", "ROOT", "WEB-INF", "classes", "hello.py"), "w") as fh:
        fh.write(SERVLET)


def wait_first_200(url, proc, t0, timeout=20.0):
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit("server exited with %s before serving" % proc.returncode)
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200 and resp.read() == BODY:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.005)
    raise SystemExit("no 200 from %s within %.0fs" % (url, timeout))


def parse_duration_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url, args):
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.duration, "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = parse_duration_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = parse_duration_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "raw": out}


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def measure(name, cmd, env, url, args, cwd=None):
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=None if args.verbose else subprocess.DEVNULL)
    try:
        first = wait_first_200(url, proc, t0)
        result = run_wrk(url, args)
        result["rss"] = rss_mb(proc.pid)
        result["first"] = first
        result["name"] = name
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary CATALINA_BASE")
    parser.add_argument("--verbose", action="store_true", help="show the servers' stderr")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package 'wrk')")

    base = tempfile.mkdtemp(prefix="pycat-bench-")
    env = dict(os.environ, CATALINA_BASE=base, CATALINA_HOME=HOME,
               PYTHONPATH=HOME + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    env.pop("JAVA_OPTS", None), env.pop("CATALINA_OPTS", None)
    results = []
    try:
        port = free_port()
        make_base(base, port)
        results.append(measure("pycat", [sys.executable, "-m", "pycat", "run"], env,
                               "http://127.0.0.1:%d/hello" % port, args, cwd=base))
        access_log = [f for f in os.listdir(os.path.join(base, "logs")) if f.startswith("localhost_access_log")]
        port = free_port()
        results.append(measure("raw pywsgi", [sys.executable, "-c", RAW_SERVER, str(port)], env,
                               "http://127.0.0.1:%d/hello" % port, args))
    finally:
        if args.keep:
            print("CATALINA_BASE kept: %s" % base)
        else:
            shutil.rmtree(base, ignore_errors=True)

    print("wrk -t%d -c%d -d%ds --latency, 127.0.0.1, Python %s" % (args.threads, args.connections, args.duration,
                                                                   sys.version.split()[0]))
    print("%-11s %10s %9s %9s %9s %11s %s" % ("server", "req/s", "p50 ms", "p99 ms", "RSS MB", "first 200", "errors"))
    for r in results:
        errors = ("non-2xx %d " % r["non2xx"] if r["non2xx"] else "") + (r["socket_errors"] or "")
        print("%-11s %10.0f %9.2f %9.2f %9.1f %9.0fms %s" % (r["name"], r["rps"], r["p50"], r["p99"], r["rss"],
                                                             r["first"] * 1000, errors or "-"))
    pycat, raw = results
    print("ratio pycat/raw req/s: %.2f   (targets: ratio >= 0.85, p99 <= 6 ms, first 200 <= 500 ms, RSS <= 40 MB)"
          % (pycat["rps"] / raw["rps"]))
    print("access log written by pycat: %s" % (", ".join(access_log) or "NONE"))


if __name__ == "__main__":
    main()
