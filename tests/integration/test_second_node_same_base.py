"""A second ``pycat run`` on the CATALINA_BASE of a live node fails on its ports *before* it
deploys anything: the live node's deploy channel token, its saved sessions and its apps stay
exactly as they were. Real processes, real sockets."""
import hashlib
import http.client
import os
import subprocess

import pytest

from node_helpers import free_port, http_get, make_base, node_env, pycat_cmd, read, wait_until

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="${{shutdown.port:-{shutdown}}}" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${{http.port}}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" backgroundProcessorDelay="0.2">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true"/>
    </Engine>
  </Service>
</Server>
"""

COUNTER = {
    "WEB-INF/web.xml": """<web-app>
  <servlet><servlet-name>count</servlet-name><servlet-class>count:Count</servlet-class></servlet>
  <servlet-mapping><servlet-name>count</servlet-name><url-pattern>/count</url-pattern></servlet-mapping>
</web-app>""",
    "WEB-INF/classes/count.py": """from pycat.webapp.servlet import HttpServlet


class Count(HttpServlet):
    def do_get(self, request, response):
        session = request.get_session()
        n = (session.get_attribute("n") or 0) + 1
        session.set_attribute("n", n)
        response.write(str(n))
""",
}


def write_app(folder, files):
    for rel, content in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(content)


def count(port, cookie=None):
    """(body, session id) of one visit to the counter."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/sess/count", headers={"Cookie": "JSESSIONID=" + cookie} if cookie else {})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, (resp.status, body)
        set_cookie = resp.getheader("Set-Cookie") or ""
        sid = set_cookie.split("JSESSIONID=")[1].split(";")[0] if "JSESSIONID=" in set_cookie else cookie
        return body, sid
    finally:
        conn.close()


def snapshot(base):
    """Every file of the base but logs/ (which a failed start may append to, as Tomcat's does):
    path -> (size, mtime_ns, sha256)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        if rel_dir.split(os.sep)[0] == "logs":
            dirnames[:] = []
            continue
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, base)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return out


class Node:
    def __init__(self, procs, base, log, *args):
        self.base, self.log_path = base, log
        with open(log, "ab") as out:
            self.proc = procs.popen(pycat_cmd("run", "--base", base, *args), env=node_env(base),
                                    stdout=out, stderr=subprocess.STDOUT)

    def log(self):
        return read(self.log_path)

    def cli(self, *args):
        return subprocess.run(pycat_cmd(*args, "--base", self.base), env=node_env(self.base),
                              capture_output=True, text=True, timeout=60)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        return self.proc.returncode


def start(procs, base, port, log, *args):
    node = Node(procs, base, log, *args)
    wait_until(lambda: node.proc.poll() is not None or http_get(port, "/"), timeout=30, message="node up")
    assert node.proc.poll() is None, node.log()
    token = os.path.join(base, "work", "pycat-manager.json")
    wait_until(lambda: os.path.exists(token), message="deploy channel")
    return node


@pytest.mark.timeout(180)
@pytest.mark.parametrize("conflict", ["http", "shutdown", "none"])
def test_second_run_on_a_live_base_fails_on_its_port_and_touches_nothing(tmp_path, procs, conflict):
    port, shutdown = free_port(), free_port()
    base = make_base(tmp_path / "base", port, server_xml=SERVER_XML.format(shutdown=shutdown))
    write_app(os.path.join(base, "webapps", "sess"), COUNTER)
    sessions_file = os.path.join(base, "work", "Catalina", "localhost", "sess", "SESSIONS.ser")
    token_file = os.path.join(base, "work", "pycat-manager.json")

    # a first run leaves a real SESSIONS.ser behind (StandardManager saves on a clean stop)
    first = start(procs, base, port, str(tmp_path / "first.log"))
    assert count(port)[0] == "1"
    assert first.stop() == 0, first.log()
    saved = open(sessions_file, "rb").read()

    # node A: restores that file at start (and deletes it, as Tomcat does); a session of its own
    a = start(procs, base, port, str(tmp_path / "a.log"))
    body, sid = count(port)
    assert body == "1"
    assert count(port, sid)[0] == "2"
    assert a.cli("list").returncode == 0
    # a sessions file A owns in its work folder while it runs (here: put back from the first run)
    with open(sessions_file, "wb") as fh:
        fh.write(saved)
    before = snapshot(base)
    assert "work/pycat-manager.json" in before and "work/Catalina/localhost/sess/SESSIONS.ser" in before

    # node B on the same base: the HTTP port (or, with another HTTP port, the shutdown port) is A's;
    # or B has ports of its own and only the base is shared (the base lock refuses it)
    b_port = port if conflict == "http" else free_port()
    args = () if conflict == "http" else ("-Dhttp.port=%d" % b_port,)
    if conflict == "none":
        args += ("-Dshutdown.port=%d" % free_port(),)
    b = subprocess.run(pycat_cmd("run", "--base", base, *args), env=node_env(base), capture_output=True,
                       text=True, timeout=60)
    assert b.returncode == 1, b.stdout + b.stderr
    lines = [line for line in b.stderr.splitlines() if line.startswith("pycat:")]
    assert len(lines) == 1, b.stderr
    if conflict == "none":
        assert "another pycat server (pid %d) is running on CATALINA_BASE" % a.proc.pid in lines[0], lines
    else:
        busy = port if conflict == "http" else shutdown
        assert "Address already in use" in lines[0] and str(busy) in lines[0], lines
    # B failed before deploying: nothing of A's base changed, A's deploy channel and apps work
    assert "deploying" not in b.stderr and "Deploy channel" not in b.stderr, b.stderr
    assert snapshot(base) == before
    result = a.cli("list")
    assert result.returncode == 0 and "/sess:running:2:" in result.stdout, result.stdout + result.stderr
    assert count(port, sid)[0] == "3"
    assert a.proc.poll() is None

    # positive control: once A is gone, the same command starts, takes the deploy channel over and
    # restores the sessions A saved -- this is what B would have touched
    assert a.stop() == 0, a.log()
    assert open(sessions_file, "rb").read() != saved       # A saved its own session over it
    assert not os.path.exists(token_file)                  # A removed its own token file
    b2 = start(procs, base, b_port, str(tmp_path / "b2.log"), *args)
    assert count(b_port, sid)[0] == "4"
    assert not os.path.exists(sessions_file)
    assert b2.cli("list").returncode == 0
    assert b2.stop() == 0, b2.log()
