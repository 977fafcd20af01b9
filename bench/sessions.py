"""bench/sessions: memory of 10k/100k sessions of ~1 KB, StandardManager save/restore time, and
req/s over HTTP of session requests against a request without a session (``--http``).

Baseline in the same run: the same attribute payload held in plain dicts (no Session objects,
no manager), so the figure that matters -- what the session model adds per session -- is the
difference. The HTTP part starts one real ``pycat run`` node (the examples' session servlet,
StandardManager without persistence) and loads it with wrk, one scenario after the other:
no session / create (no cookie: every request makes a session) / read (the cookie of one
session) / write (an attribute set each request); ``--store file`` repeats them with a
PersistentManager + FileStore and maxIdleBackup=0 (a store write per request that uses a session).
Usage: python bench/sessions.py [--sizes 10000,100000] [--persist 100000] [--http] [--store file]
"""
import os
import sys

# bench/http.py sits next to this file: run as a script, this folder must not shadow the stdlib's http
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import gc  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import urllib.request  # noqa: E402

from pycat.session import persistence  # noqa: E402
from pycat.session.manager import StandardManager  # noqa: E402
from pycat.session.persistent import PersistentManager  # noqa: E402
from pycat.session.store_jdbc import JDBCStore  # noqa: E402


def payload(i):
    """About 1 KB of typical attributes, distinct objects per session."""
    return {
        "user": "user%07d" % i,
        "roles": ["user", "reader", "team-%d" % (i % 50)],
        "prefs": {"lang": "en", "tz": "UTC", "page_size": 20, "theme": "dark", "visits": i},
        "cart": [{"sku": "SKU-%06d" % (i + k), "qty": k + 1} for k in range(4)],
        "blob": ("%08d" % i) * 96,  # 768 chars
    }


def fill(manager, n, ids=None):
    """Create n sessions holding payload(i); their ids go to ``ids`` when a list is given."""
    for i in range(n):
        s = manager.create_session()
        if ids is not None:
            ids.append(s.id)
        for k, v in payload(i).items():
            s.set_attribute(k, v)


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(build):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return kept, after - before


def bench_memory(n):
    baseline, base_bytes = measure(lambda: [payload(i) for i in range(n)])
    del baseline

    def build():
        m = StandardManager()
        m.pathname = ""
        fill(m, n)
        return m
    rss0 = rss_kb()
    manager, total = measure(build)
    rss1 = rss_kb()
    sample = next(iter(manager.find_sessions()))
    record = len(persistence.encode_session(sample))
    print("memory  %7d sessions: %8.1f MB traced (%5.0f B/session); payload alone %7.1f MB "
          "(%4.0f B); session model adds %4.0f B/session; RSS delta %7.1f MB; record %d B"
          % (n, total / 1e6, total / n, base_bytes / 1e6, base_bytes / n, (total - base_bytes) / n,
             (rss1 - rss0) / 1024, record))
    del manager
    gc.collect()


def bench_persist(n):
    with tempfile.TemporaryDirectory() as work:
        m = StandardManager()
        m.work_dir = work
        m.start()
        fill(m, n)
        t0 = time.perf_counter()
        m.stop()
        save = time.perf_counter() - t0
        size = os.path.getsize(os.path.join(work, "SESSIONS.ser"))
        del m
        gc.collect()
        m2 = StandardManager()
        m2.work_dir = work
        t0 = time.perf_counter()
        m2.start()
        load = time.perf_counter() - t0
        assert m2.active_sessions == n, m2.active_sessions
        print("persist %7d sessions: save %.2f s (%.1f us/session), restore %.2f s (%.1f us/session), "
              "file %.1f MB" % (n, save, save / n * 1e6, load, load / n * 1e6, size / 1e6))
        m2.pathname = ""
        m2.stop()


def bench_persist_jdbc(n):
    """PersistentManager + JDBCStore on a SQLite file: stop-save of n sessions, then every one
    swapped back in by id (a PersistentManager restores lazily, so this is the full restore)."""
    with tempfile.TemporaryDirectory() as work:
        def manager():
            m = PersistentManager()
            m.work_dir = work
            m.name = "/bench"
            store = JDBCStore()
            store.connection_url = "sqlite:" + os.path.join(work, "sessions.db")
            m.set_store(store)
            m.start()
            return m
        m = manager()
        ids = []
        fill(m, n, ids)
        t0 = time.perf_counter()
        m.stop()
        save = time.perf_counter() - t0
        size = os.path.getsize(os.path.join(work, "sessions.db"))
        del m
        gc.collect()
        m2 = manager()
        t0 = time.perf_counter()
        found = sum(1 for sid in ids if m2.find_session(sid) is not None)
        load = time.perf_counter() - t0
        assert found == n, found
        print("JDBCStore(sqlite) %7d sessions: save %.2f s (%.1f us/session), restore %.2f s "
              "(%.1f us/session), db %.1f MB" % (n, save, save / n * 1e6, load, load / n * 1e6, size / 1e6))
        m2.save_on_restart = False
        m2.stop()


def bench_codec(n=10_000):
    """Why values go through pickle first and dill only as a fallback."""
    import dill
    import pickle
    values = [v for i in range(n) for v in payload(i).values()]
    t0 = time.perf_counter()
    for v in values:
        dill.dumps(v, pickle.HIGHEST_PROTOCOL)
    dill_t = time.perf_counter() - t0
    t0 = time.perf_counter()
    for v in values:
        persistence.dump_value(v)
    ours = time.perf_counter() - t0
    print("codec   %7d values: dill.dumps %.1f us/value, dump_value (pickle, dill fallback) %.1f us/value"
          % (len(values), dill_t / len(values) * 1e6, ours / len(values) * 1e6))


HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="bench">
      <Host name="localhost" appBase="webapps" autoDeploy="false">
        <Context path="/app" docBase="app">{manager}</Context>
      </Host>
    </Engine>
  </Service>
</Server>
"""
MANAGERS = {
    "memory": '<Manager pathname=""/>',
    "file": '<Manager className="org.apache.catalina.session.PersistentManager" maxIdleBackup="0" '
            'saveOnRestart="false"><Store className="org.apache.catalina.session.FileStore" '
            'directory="{base}/store"/></Manager>',
}
WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app>
  <servlet><servlet-name>s</servlet-name><servlet-class>session_servlets:SessionServlet</servlet-class></servlet>
  <servlet-mapping><servlet-name>s</servlet-name><url-pattern>/session</url-pattern></servlet-mapping>
</web-app>
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_base(base, port, store):
    classes = os.path.join(base, "webapps", "app", "WEB-INF", "classes")
    for d in ("conf", "logs", "work", classes):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    shutil.copy(os.path.join(HOME, "conf", "web.xml"), os.path.join(base, "conf", "web.xml"))
    with open(os.path.join(base, "conf", "server.xml"), "w") as fh:
        fh.write(SERVER_XML.format(port=port, manager=MANAGERS[store].format(base=base)))
    with open(os.path.join(base, "webapps", "app", "WEB-INF", "web.xml"), "w") as fh:
        fh.write(WEB_XML)
    shutil.copy(os.path.join(HOME, "webapps", "examples", "WEB-INF", "classes", "session_servlets.py"), classes)


def wrk(url, args, cookie=None):
    cmd = ["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.duration, "--latency", url]
    if cookie:
        cmd[1:1] = ["-H", "Cookie: JSESSIONID=%s" % cookie]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(bad.group(1)) if bad else 0


def bench_http(args, store):
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package 'wrk')")
    base = tempfile.mkdtemp(prefix="pycat-bench-sessions-")
    port = free_port()
    make_base(base, port, store)
    env = dict(os.environ, CATALINA_BASE=base, CATALINA_HOME=HOME)
    proc = subprocess.Popen([sys.executable, "-m", "pycat", "run"], env=env, cwd=base,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d/app/session?op=" % port
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "inc", timeout=1) as resp:
                    sid = resp.read().decode().split()[0].split("=", 1)[1]
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the node did not start (see %s/logs)" % base)
                time.sleep(0.05)
        warm = argparse.Namespace(connections=args.connections, duration=1)
        wrk(url + "none", warm)    # imports, first allocations, caches: not part of any figure
        results = {}
        # interleaved rounds, best of each: on a shared machine a neighbour's burst hits one run, not all
        for _ in range(max(1, args.rounds)):
            for name, op, cookie in (("no session", "none", None), ("create", "inc", None),
                                     ("read", "get", sid), ("write attribute", "set&name=a&value=b", sid)):
                got = wrk(url + op, args, cookie)
                if name not in results or got[0] > results[name][0]:
                    results[name] = got
        base_rps = results["no session"][0]
        for name, (rps, p99, bad) in results.items():
            print("http    %-6s %-16s %8.0f req/s (%5.1f%% of no session), p99 %s%s"
                  % (store, name, rps, 100.0 * rps / base_rps, p99, ", %d non-2xx" % bad if bad else ""))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--persist", type=int, default=100_000)
    p.add_argument("--http", action="store_true", help="also measure req/s over HTTP with wrk")
    p.add_argument("--store", default="", help="with --http: also 'file' (PersistentManager + FileStore)")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2, help="with --http: interleaved rounds, best kept")
    args = p.parse_args()
    for n in (int(x) for x in args.sizes.split(",") if x):
        bench_memory(n)
    if args.persist:
        bench_persist(args.persist)
        bench_persist_jdbc(args.persist)
    if args.sizes or args.persist:
        bench_codec()
    if args.http:
        bench_http(args, "memory")
        for store in (x for x in args.store.split(",") if x):
            bench_http(args, store)


if __name__ == "__main__":
    main()
