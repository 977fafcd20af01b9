"""Real processes on 127.0.0.1: generated CATALINA_BASE folders, free ports, waits on conditions.

Starting a node is pycat.testing's job (the plugin's ``pycat_node`` / ``pycat_cluster`` fixtures,
or ``pycat.testing.Node``); what stays here serves the tests that drive the bin/ scripts,
``pycat start`` and other processes by hand."""
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from pycat.testing import free_port as _held_port

HOME = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(HOME, "bin")
HELLO = b"hello from pycat\n"

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="{shutdown_port}" shutdown="SHUTDOWN">
  <Listener className="org.apache.catalina.startup.VersionLoggerListener"/>
  <Listener className="org.apache.catalina.core.JreMemoryLeakPreventionListener"/>
  <Service name="Catalina">
    <Connector port="${{http.port}}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="${{jvm.route:-node0}}">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="localhost_access_log" suffix=".txt" pattern="common"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""


def free_port():
    """A port held for this test process (pycat.testing.ports: unique across xdist workers)."""
    return _held_port()


def wait_until(condition, timeout=15.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, message))
        time.sleep(interval)


def http_get(port, path="/", timeout=2.0):
    """(status, body) or None if nothing answers yet."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def is_alive(pid):
    from pycat.startup.control import is_alive as alive
    return alive(pid)


def make_base(root, http_port, shutdown_port=None, server_xml=None, properties=""):
    """A node folder: conf/ (server.xml with the given ports), webapps/ROOT with a static page, logs/."""
    root = str(root)
    for d in ("conf", "logs", "work", "temp", "webapps/ROOT"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name in ("web.xml", "context.xml", "logging.ini", "tomcat-users.xml"):
        src = os.path.join(HOME, "conf", name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(root, "conf", name))
    if server_xml is None:
        server_xml = SERVER_XML.format(shutdown_port=free_port() if shutdown_port is None else shutdown_port)
    with open(os.path.join(root, "conf", "server.xml"), "w") as fh:
        fh.write(server_xml)
    with open(os.path.join(root, "conf", "catalina.properties"), "w") as fh:
        fh.write("http.port=%d\n%s" % (http_port, properties))
    with open(os.path.join(root, "webapps", "ROOT", "index.html"), "wb") as fh:
        fh.write(HELLO)
    return root


def node_env(base, **extra):
    env = dict(os.environ)
    for key in ("CATALINA_PID", "CATALINA_OUT", "JAVA_OPTS", "CATALINA_OPTS"):
        env.pop(key, None)
    env.update(CATALINA_BASE=str(base), CATALINA_HOME=HOME, PYTHON=sys.executable)
    env.update(extra)
    return env


def run_script(name, env, *args, timeout=30):
    return subprocess.run([os.path.join(BIN, name), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def pycat_cmd(*args):
    return [sys.executable, "-m", "pycat", *args]


def read(path):
    with open(path, errors="replace") as fh:
        return fh.read()


class Procs:
    """Processes a test started; whatever is still alive at teardown is killed (by pid, only ours),
    and the pycat.testing Nodes given to ``add`` are closed."""

    def __init__(self):
        self.pids = []
        self.popens = []
        self.nodes = []

    def add(self, node):
        self.nodes.append(node)
        return node

    def popen(self, cmd, **kwargs):
        proc = subprocess.Popen(cmd, **kwargs)
        self.popens.append(proc)
        return proc

    def track(self, pid):
        self.pids.append(pid)

    def cleanup(self):
        for node in self.nodes:
            node.close()
        for proc in self.popens:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for pid in self.pids:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
