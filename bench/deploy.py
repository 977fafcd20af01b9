#!/usr/bin/env python3
"""bench/deploy: deploy / redeploy / undeploy time of a 200-module app, and the req/s a
neighbouring app keeps while another app is redeployed 20 times (ratio against no redeploys,
in the same run, under the same load).

A real ``pycat run`` subprocess on a temporary CATALINA_BASE (autoDeploy off: only the deploy
channel deploys). The big app is a WAR of 200 modules in WEB-INF/classes/big/ that its
load-on-startup servlet imports, so each (re)deploy pays expansion, compilation and import of
all of them. Times are measured from this process through the deploy channel
(pycat.startup.manager_api.call: copy + expand + start + verify + swap), median of --repeat.
The neighbour is a hello-world servlet kept under load by one wrk run from before the first
window to after the last. Its req/s is counted by the neighbour itself (a request counter read
through /neighbour/count at the start and end of each window), so each window holds exactly
the requests served in it: quiet windows of --duration seconds before and after, and the busy
window from the start of the first redeploy to the end of the 20th -- not wrk's whole run, whose
warm-up and tail would dilute the busy figure with quiet time.

    python bench/deploy.py [--modules 200] [--redeploys 20] [--duration 5] [--connections 20] [--repeat 5]
"""
import os
import sys

# bench/http.py sits next to this file: as a script, this folder must not shadow the stdlib's http
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import zipfile  # noqa: E402

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HOME)

from pycat.startup.manager_api import call  # noqa: E402

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
"""
WEB_XML = """<web-app>
  <servlet><servlet-name>s</servlet-name><servlet-class>{cls}</servlet-class>
    <load-on-startup>1</load-on-startup></servlet>
  <servlet-mapping><servlet-name>s</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
</web-app>
"""
NEIGHBOUR_XML = """<web-app>
  <servlet><servlet-name>s</servlet-name><servlet-class>hello:Hello</servlet-class>
    <load-on-startup>1</load-on-startup></servlet>
  <servlet><servlet-name>c</servlet-name><servlet-class>hello:Count</servlet-class></servlet>
  <servlet-mapping><servlet-name>s</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>c</servlet-name><url-pattern>/count</url-pattern></servlet-mapping>
</web-app>
"""
HELLO = """from pycat.webapp.servlet import HttpServlet

SERVED = [0]


class Hello(HttpServlet):
    def do_get(self, request, response):
        SERVED[0] += 1
        response.set_header("Content-Type", "text/plain")
        response.write("hello\\n")


class Count(HttpServlet):
    def do_get(self, request, response):
        response.set_header("Content-Type", "text/plain")
        response.write("%d\\n" % SERVED[0])
"""
MODULE = '''"""Module {i} of the big app."""
import json

TABLE = {{"n": {i}, "square": {i} * {i}, "name": "m{i:03d}"}}


class Thing{i}:
    def __init__(self, value):
        self.value = value

    def render(self):
        return json.dumps({{"thing": {i}, "value": self.value}})


def helper_{i}(x):
    total = 0
    for k in range(x):
        total += k * {i}
    return total
'''


def big_servlet(n, generation):
    imports = "\n".join("from big import m%03d" % i for i in range(n))
    return '''{imports}
from pycat.webapp.servlet import HttpServlet

GENERATION = {gen}
COUNT = {n}


class Big(HttpServlet):
    def do_get(self, request, response):
        response.set_header("Content-Type", "text/plain")
        response.write("big %d %d\\n" % (GENERATION, COUNT))
'''.format(imports=imports, gen=generation, n=n)


def write_war(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def big_war(path, n, generation):
    files = {"WEB-INF/web.xml": WEB_XML.format(cls="bigapp:Big"),
             "WEB-INF/classes/bigapp.py": big_servlet(n, generation),
             "WEB-INF/classes/big/__init__.py": ""}
    for i in range(n):
        files["WEB-INF/classes/big/m%03d.py" % i] = MODULE.format(i=i)
    return write_war(path, files)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


def timed(base, request):
    t0 = time.perf_counter()
    reply = call(base, request, timeout=120)
    elapsed = time.perf_counter() - t0
    if not reply.get("ok"):
        raise SystemExit("deploy channel: %s" % reply.get("error"))
    return elapsed


def served(port):
    """How many /neighbour/hello requests the neighbour has served so far."""
    return int(get("http://127.0.0.1:%d/neighbour/count" % port)[1])


def window(port, work):
    """req/s the neighbour served while ``work()`` ran (its own counter, read before and after)."""
    c0, t0 = served(port), time.perf_counter()
    work()
    c1, t1 = served(port), time.perf_counter()
    return {"rps": (c1 - c0) / (t1 - t0), "seconds": t1 - t0, "requests": c1 - c0}


def wrk_under(url, connections, work):
    """Run ``work()`` while wrk loads ``url``; wrk's non-2xx and socket errors over the whole run."""
    cmd = ["wrk", "-t1", "-c%d" % connections, "-d3600s", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result = work()
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if not re.search(r"Requests/sec:\s+([\d.]+)", out):
        raise SystemExit("wrk failed: %s %s" % (out, err))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return result, {"non2xx": int(non2xx.group(1)) if non2xx else 0,
                    "socket_errors": sock.group(1) if sock else "none"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", type=int, default=200)
    parser.add_argument("--redeploys", type=int, default=20)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package 'wrk')")
    base = tempfile.mkdtemp(prefix="pycat-bench-deploy-")
    port = free_port()
    for d in ("conf", "logs", "work", "webapps/neighbour/WEB-INF/classes"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    shutil.copy(os.path.join(HOME, "conf", "web.xml"), os.path.join(base, "conf", "web.xml"))
    with open(os.path.join(base, "conf", "server.xml"), "w") as fh:
        fh.write(SERVER_XML.format(port=port))
    with open(os.path.join(base, "webapps", "neighbour", "WEB-INF", "web.xml"), "w") as fh:
        fh.write(NEIGHBOUR_XML)
    with open(os.path.join(base, "webapps", "neighbour", "WEB-INF", "classes", "hello.py"), "w") as fh:
        fh.write(HELLO)
    wars = os.path.join(base, "wars")
    os.makedirs(wars)
    env = dict(os.environ, CATALINA_BASE=base, CATALINA_HOME=HOME)
    proc = subprocess.Popen([sys.executable, "-m", "pycat", "run"], env=env, cwd=base,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get("http://127.0.0.1:%d/neighbour/hello" % port)[0] == 200 and \
                        os.path.exists(os.path.join(base, "work", "pycat-manager.json")):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the node did not start")
            time.sleep(0.05)
        n = args.modules
        war_paths = [big_war(os.path.join(wars, "big-%d.war" % g), n, g) for g in range(args.redeploys + 1)]
        size = os.path.getsize(war_paths[0])

        deploy_t, redeploy_t, undeploy_t = [], [], []
        for _ in range(args.repeat):
            deploy_t.append(timed(base, {"cmd": "deploy", "war": war_paths[0], "name": "big"}))
            assert get("http://127.0.0.1:%d/big/hello" % port)[1] == b"big 0 %d\n" % n
            redeploy_t.append(timed(base, {"cmd": "deploy", "war": war_paths[1], "name": "big"}))
            assert get("http://127.0.0.1:%d/big/hello" % port)[1] == b"big 1 %d\n" % n
            undeploy_t.append(timed(base, {"cmd": "undeploy", "name": "big"}))
        timed(base, {"cmd": "deploy", "war": war_paths[0], "name": "big"})

        url = "http://127.0.0.1:%d/neighbour/hello" % port

        def redeploy_all():
            for g in range(1, args.redeploys + 1):
                timed(base, {"cmd": "deploy", "war": war_paths[g], "name": "big"})

        def measure():
            time.sleep(1.0)         # wrk connected and the neighbour warm before the first window
            before = window(port, lambda: time.sleep(args.duration))
            busy = window(port, redeploy_all)
            after = window(port, lambda: time.sleep(args.duration))
            return before, busy, after
        (before, busy, after), errors = wrk_under(url, args.connections, measure)
        final = get("http://127.0.0.1:%d/big/hello" % port)[1]
        assert final == b"big %d %d\n" % (args.redeploys, n), final
        quiet_rps = (before["rps"] + after["rps"]) / 2

        ms = lambda values: "%.0f ms (min %.0f, max %.0f)" % (statistics.median(values) * 1000,  # noqa: E731
                                                             min(values) * 1000, max(values) * 1000)
        print("bench/deploy: app of %d modules (WAR %.0f KiB), median of %d" % (n, size / 1024, args.repeat))
        print("  deploy   : %s" % ms(deploy_t))
        print("  redeploy : %s" % ms(redeploy_t))
        print("  undeploy : %s" % ms(undeploy_t))
        print("neighbour app req/s (wrk -c%d; counted by the neighbour in each window):" % args.connections)
        print("  before, quiet      : %8.0f req/s over %.1fs" % (before["rps"], before["seconds"]))
        print("  during %2d redeploys: %8.0f req/s over %.1fs (only while they ran)"
              % (args.redeploys, busy["rps"], busy["seconds"]))
        print("  after, quiet       : %8.0f req/s over %.1fs" % (after["rps"], after["seconds"]))
        print("  ratio              : %.2f (during / mean of before and after)" % (busy["rps"] / quiet_rps))
        print("  whole wrk run      : non-2xx %d, socket errors %s" % (errors["non2xx"], errors["socket_errors"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if args.keep:
            print("CATALINA_BASE kept in %s" % base)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
