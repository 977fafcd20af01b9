"""A second ``pycat run`` on the CATALINA_BASE of a live node fails on its ports *before* it
deploys anything: the live node's deploy channel token, its saved sessions and its apps stay
exactly as they were. Real processes, real sockets."""
import hashlib
import os
import subprocess

import pytest

from node_helpers import free_port, pycat_cmd

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="${shutdown.port}" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${http.port}" address="127.0.0.1" protocol="HTTP/1.1"/>
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


def count(node, cookie=None):
    """(body, session id) of one visit to the counter."""
    resp = node.get("/sess/count", headers={"Cookie": "JSESSIONID=" + cookie} if cookie else {})
    assert resp.status == 200, (resp.status, resp.text)
    return resp.text, resp.cookies.get("JSESSIONID", cookie)


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


@pytest.mark.timeout(180)
@pytest.mark.parametrize("conflict", ["http", "shutdown", "none"])
def test_second_run_on_a_live_base_fails_on_its_port_and_touches_nothing(pycat_node, conflict):
    node = pycat_node(server_xml=SERVER_XML, start=False)
    base, port, shutdown = node.base, node.http_port, node.shutdown_port
    write_app(os.path.join(node.app_base, "sess"), COUNTER)
    sessions_file = os.path.join(node.work_dir, "Catalina", "localhost", "sess", "SESSIONS.ser")

    # a first run leaves a real SESSIONS.ser behind (StandardManager saves on a clean stop)
    node.start()
    assert count(node)[0] == "1"
    assert node.stop() == 0, node.log()
    saved = open(sessions_file, "rb").read()

    # node A: restores that file at start (and deletes it, as Tomcat does); a session of its own
    node.start()
    a_pid = node.pid
    body, sid = count(node)
    assert body == "1"
    assert count(node, sid)[0] == "2"
    assert node.cli("list").returncode == 0
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
    b = subprocess.run(pycat_cmd("run", "--base", base, *args), env=node.env(), capture_output=True,
                       text=True, timeout=60)
    assert b.returncode == 1, b.stdout + b.stderr
    lines = [line for line in b.stderr.splitlines() if line.startswith("pycat:")]
    assert len(lines) == 1, b.stderr
    if conflict == "none":
        assert "another pycat server (pid %d) is running on CATALINA_BASE" % a_pid in lines[0], lines
    else:
        busy = port if conflict == "http" else shutdown
        assert "Address already in use" in lines[0] and str(busy) in lines[0], lines
    # B failed before deploying: nothing of A's base changed, A's deploy channel and apps work
    assert "deploying" not in b.stderr and "Deploy channel" not in b.stderr, b.stderr
    assert snapshot(base) == before
    result = node.cli("list")
    assert result.returncode == 0 and "/sess:running:2:" in result.stdout, result.stdout + result.stderr
    assert count(node, sid)[0] == "3"
    assert node.alive

    # positive control: once A is gone, the same command starts, takes the deploy channel over and
    # restores the sessions A saved -- this is what B would have touched
    assert node.stop() == 0, node.log()
    assert open(sessions_file, "rb").read() != saved       # A saved its own session over it
    assert not os.path.exists(node.token_path)             # A removed its own token file
    node.args = list(args)
    node.http_port = b_port
    node.start()
    assert count(node, sid)[0] == "4"
    assert not os.path.exists(sessions_file)
    assert node.cli("list").returncode == 0
    assert node.stop() == 0, node.log()
