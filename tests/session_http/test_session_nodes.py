"""Sessions across real `pycat run` processes: a graceful restart keeps sessions (StandardManager),
and two nodes sharing a FileStore folder / a SQLite file / a PostgreSQL database fail over
(PersistentManager maxIdleBackup=0): node 1 is SIGKILLed, node 2 serves the same session."""
import os
import signal
import subprocess
import uuid

import pytest

from apps import session_app
from http_client import request
from node_helpers import free_port, http_get, make_base, node_env, pycat_cmd, read, wait_until
from pg_server import pg_server  # noqa: F401  (session-scoped fixture; skips with its reason)

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${{http.port}}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{route}">
      <Host name="localhost" appBase="webapps" autoDeploy="false">
        <Context path="/app" docBase="app">
          <CookieProcessor className="org.apache.tomcat.util.http.Rfc6265CookieProcessor" sameSiteCookies="lax"/>
          {manager}
        </Context>
      </Host>
    </Engine>
  </Service>
</Server>
"""

PERSISTENT = """<Manager className="org.apache.catalina.session.PersistentManager" maxIdleBackup="0"
                   saveOnRestart="false">
            {store}
          </Manager>"""


def make_node(root, route, manager=""):
    port = free_port()
    base = make_base(root, port, server_xml=SERVER_XML.format(route=route, manager=manager))
    for rel, content in session_app().items():
        full = os.path.join(base, "webapps", "app", rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as fh:
            fh.write(content)
    return base, port


def start(procs, base, port):
    out = open(os.path.join(base, "logs", "run.out"), "ab")
    proc = procs.popen(pycat_cmd("run"), env=node_env(base), stdout=out, stderr=subprocess.STDOUT)
    out.close()
    wait_until(lambda: proc.poll() is not None or http_get(port, "/app/session?op=get"), timeout=30,
               message="node on port %d" % port)
    assert proc.poll() is None, read(os.path.join(base, "logs", "run.out"))
    return proc


def session(port, op="inc", sid=None):
    reply = request(port, "/app/session?op=" + op, cookie="JSESSIONID=%s" % sid if sid else None)
    assert reply.status == 200, reply
    return reply.fields()


@pytest.mark.timeout(120)
def test_graceful_restart_keeps_sessions_with_standard_manager(tmp_path, procs):
    base, port = make_node(tmp_path / "node", "node1")
    proc = start(procs, base, port)
    first = request(port, "/app/session?op=inc")
    sid = first.fields()["id"]
    assert sid.endswith(".node1")
    (header,) = first.set_cookies           # server.xml: <CookieProcessor sameSiteCookies="lax">
    assert header == "JSESSIONID=%s; Path=/app; HttpOnly; SameSite=Lax" % sid
    assert session(port, sid=sid)["count"] == "2"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    saved = os.path.join(base, "work", "Catalina", "localhost", "app", "SESSIONS.ser")
    assert os.path.isfile(saved)
    start(procs, base, port)
    assert not os.path.exists(saved)        # loaded, then deleted (StandardManager)
    assert session(port, sid=sid) == {"id": sid, "new": "False", "count": "3"}
    log = read(os.path.join(base, "logs", "run.out"))
    assert "restored 1 sessions" in log and "Traceback" not in log


def failover(tmp_path, procs, store_xml):
    manager = PERSISTENT.format(store=store_xml)
    (base1, port1), (base2, port2) = (make_node(tmp_path / "n1", "node1", manager),
                                      make_node(tmp_path / "n2", "node2", manager))
    node1 = start(procs, base1, port1)
    start(procs, base2, port2)
    sid = session(port1)["id"]
    assert session(port1, sid=sid)["count"] == "2"
    node1.send_signal(signal.SIGKILL)
    node1.wait(10)
    assert http_get(port1, "/app/session") is None
    # same cookie, other node: the session comes from the shared store
    assert session(port2, sid=sid) == {"id": sid, "new": "False", "count": "3"}
    assert session(port2, sid=sid)["count"] == "4"
    # a forged id is still just a new session on node 2
    fresh = session(port2, op="inc", sid="DEADBEEF" + sid[8:])
    assert fresh["id"] != sid and fresh["count"] == "1" and fresh["id"].endswith(".node2")
    log = read(os.path.join(base2, "logs", "run.out"))
    assert "Traceback" not in log, log


@pytest.mark.timeout(120)
def test_filestore_failover_between_two_nodes(tmp_path, procs):
    shared = tmp_path / "shared-sessions"
    failover(tmp_path, procs, '<Store className="org.apache.catalina.session.FileStore" directory="%s"/>' % shared)
    assert any(name.endswith(".session") for name in os.listdir(shared))


@pytest.mark.timeout(120)
def test_jdbcstore_failover_on_a_shared_sqlite_file(tmp_path, procs):
    db = tmp_path / "sessions.db"
    failover(tmp_path, procs, '<Store className="org.apache.catalina.session.JDBCStore" '
                              'connectionURL="sqlite:%s"/>' % db)
    assert db.exists()


@pytest.mark.timeout(180)
def test_jdbcstore_failover_on_postgresql(tmp_path, procs, pg_server):
    table = "pycat$http_%s" % uuid.uuid4().hex[:10]
    failover(tmp_path, procs, '<Store className="org.apache.catalina.session.JDBCStore" '
                              'connectionURL="%s" sessionTable="%s"/>' % (pg_server.url, table))
