#!/usr/bin/env python3
"""bench/farm: time from dropping a WAR into node1's watchDir to all three nodes serving it, for a
1 MB and a 100 MB WAR, and the peak memory of the sender and the receivers during the 100 MB one.

Three real ``pycat run`` subprocesses on 127.0.0.1 (the bench imports nothing from tests/), each a
temporary CATALINA_BASE whose Host holds a <Cluster> (multicast group of its own) with
``<Deployer className="org.apache.catalina.ha.deploy.FarmWarDeployer" watchEnabled= (node1 only)
processDeployFrequency="1">`` and an Engine ``backgroundProcessorDelay="1"``. A WAR is a small
servlet plus incompressible padding (``os.urandom``, stored), so the transfer moves its full size.
Each round writes ``app.war`` with a new body under a temporary name and renames it into node1's
watchDir, then polls ``/app/`` on every node every 10 ms until all three answer the new body.
Reported, median of --repeat rounds: drop -> node1 logs "publishing" (the watcher: a WAR must
look the same at two background runs, so 1..2 s of this is the stability wait by design), and
drop -> all three serving. Memory: each process's VmHWM (peak RSS) from /proc after the 100 MB
rounds, minus its VmRSS just before them.

    python bench/farm.py [--repeat 3] [--sizes 1,100] [--chunk 1048576]
"""
import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import http.client  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{http}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" backgroundProcessorDelay="1">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true">
        <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster">
          <Channel className="org.apache.catalina.tribes.group.GroupChannel">
            <Membership className="org.apache.catalina.tribes.membership.McastService" address="{group}"
                        port="{mcast}" bind="127.0.0.1" frequency="500" dropTime="3000"/>
            <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="127.0.0.1"
                      port="{rx}" autoBind="1"/>
          </Channel>
          <Deployer className="org.apache.catalina.ha.deploy.FarmWarDeployer" tempDir="war-temp"
                    watchDir="war-listen" watchEnabled="{watch}" processDeployFrequency="1" chunkSize="{chunk}"/>
        </Cluster>
      </Host>
    </Engine>
  </Service>
</Server>
"""
WEB_XML = """<web-app>
  <servlet><servlet-name>s</servlet-name><servlet-class>app:application</servlet-class></servlet>
  <servlet-mapping><servlet-name>s</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"""
APP = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [{body!r}]
"""


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_war(path, body, size_mb):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("WEB-INF/web.xml", WEB_XML)
        zf.writestr("WEB-INF/classes/app.py", APP.format(body=body))
        left = size_mb * 1024 * 1024
        n = 0
        while left > 0:                      # 8 MB entries: the bench's own memory stays small
            part = min(left, 8 * 1024 * 1024)
            zf.writestr("WEB-INF/pad%d.bin" % n, os.urandom(part))
            left -= part
            n += 1


def answer(port, path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return None, b""
    finally:
        conn.close()


def proc_kb(pid, field):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Node:
    def __init__(self, root, i, group, mcast, chunk):
        self.name = "node%d" % i
        self.base = os.path.join(root, self.name)
        self.http = free_port()
        for d in ("conf", "logs", "webapps", "war-listen", "work", "temp"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        for name in ("web.xml", "logging.ini"):
            shutil.copy(os.path.join(HOME, "conf", name), os.path.join(self.base, "conf", name))
        with open(os.path.join(self.base, "conf", "server.xml"), "w") as fh:
            fh.write(SERVER_XML.format(http=self.http, group=group, mcast=mcast, rx=free_port(),
                                       watch="true" if i == 1 else "false", chunk=chunk))
        self.out = os.path.join(self.base, "logs", "out")
        self.proc = None

    def start(self):
        env = dict(os.environ, CATALINA_BASE=self.base, CATALINA_HOME=HOME,
                   PYTHONPATH=HOME + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "pycat", "run"], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self):
        with open(self.out, errors="replace") as fh:
            return fh.read()

    def wait_log(self, pattern, timeout=60, since=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()[since:]):
                return
            if self.proc.poll() is not None:
                raise SystemExit("%s exited:\n%s" % (self.name, self.log()[-3000:]))
            time.sleep(0.05)
        raise SystemExit("%s: no %r within %ds:\n%s" % (self.name, pattern, timeout, self.log()[-3000:]))


def one_round(nodes, tmp, size_mb, n):
    body = b"round %d of %d MB" % (n, size_mb)
    war = os.path.join(tmp, "app.war")
    make_war(war, body, size_mb)
    marks = len(nodes[0].log())
    target = os.path.join(nodes[0].base, "war-listen", "app.war")
    t0 = time.monotonic()
    os.replace(war, target)                  # the same file system: an atomic drop
    published = None
    waiting = list(nodes)
    while waiting:
        if published is None and "Farm: publishing app.war" in nodes[0].log()[marks:]:
            published = time.monotonic() - t0
        waiting = [node for node in waiting if answer(node.http, "/app/") != (200, body)]
        if time.monotonic() - t0 > 300:
            raise SystemExit("round %d: not served everywhere after 300 s" % n)
        time.sleep(0.01)
    total = time.monotonic() - t0
    return published if published is not None else total, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="1,100", help="WAR sizes in MB, comma-separated")
    parser.add_argument("--chunk", type=int, default=1024 * 1024, help="the Deployer's chunkSize")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="pycat-bench-farm-")
    group = "228.%d.%d.%d" % (random.randrange(1, 255), random.randrange(256), random.randrange(1, 255))
    mcast = free_port(socket.SOCK_DGRAM)
    nodes = [Node(root, i, group, mcast, args.chunk) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.start()
            node.wait_log(r"Server startup in")
        for node in nodes:
            node.wait_log(r"Replication member added")
        time.sleep(2)                        # every node has seen the other two (heartbeats every 0.5 s)
        print("pycat farm bench: 3 nodes, chunkSize %d, %d round(s) per size, %s" % (
            args.chunk, args.repeat, os.uname().machine))
        n = 0
        for size in [int(s) for s in args.sizes.split(",")]:
            rss = [proc_kb(node.proc.pid, "VmRSS") for node in nodes]
            results = []
            for _ in range(args.repeat):
                n += 1
                results.append(one_round(nodes, root, size, n))
            hwm = [proc_kb(node.proc.pid, "VmHWM") for node in nodes]
            print("%4d MB WAR: drop -> publishing %.2f s, drop -> all 3 serving %.2f s (median of %d; min %.2f, max %.2f)"
                  % (size, statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
                     len(results), min(r[1] for r in results), max(r[1] for r in results)))
            print("          peak RSS above the RSS before these rounds: sender %.1f MB, receivers %s MB"
                  % ((hwm[0] - rss[0]) / 1024.0, ", ".join("%.1f" % ((h - r) / 1024.0) for h, r in zip(hwm[1:], rss[1:]))))
        for node in nodes:
            speeds = re.findall(r"received app\.war \(([\d.]+) MB in [\d.]+ s, ([\d.]+) MB/s\)", node.log())
            if speeds:
                big = [float(s) for mb, s in speeds if float(mb) >= 50]
                if big:
                    print("  %s: receive speed of the large WARs, median %.1f MB/s" % (node.name, statistics.median(big)))
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(20)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
