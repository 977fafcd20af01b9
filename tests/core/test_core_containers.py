"""Container tree lifecycle, background processing, shutdown port, executors."""
import socket

import gevent
import gevent.socket
import pytest

from pycat.core.context import Context
from pycat.core.engine import Engine
from pycat.core.executor import Executor
from pycat.core.host import Host
from pycat.core.naming import NamingResources, ResourceRecord
from pycat.core.server import Server
from pycat.core.service import Service
from pycat.errors import LifecycleError
from pycat.lifecycle import LifecycleState
from pycat.realm.realms import LockOutRealm, UserDatabaseRealm
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, get, wait_for


class Hello(HttpServlet):
    def do_get(self, request, response):
        response.write("hello from %s" % (request.context_path or "/"))


def test_every_contract_class_builds_with_no_arguments():
    from pycat import reflect
    for path in ["pycat.core.server:Server", "pycat.core.service:Service", "pycat.core.engine:Engine",
                 "pycat.core.host:Host", "pycat.core.context:Context", "pycat.core.executor:Executor",
                 "pycat.core.listeners:VersionLoggerListener", "pycat.core.listeners:NoopListener",
                 "pycat.connector.connector:Connector", "pycat.valves.access_log:AccessLogValve",
                 "pycat.valves.error_report:ErrorReportValve", "pycat.valves.remote_addr:RemoteAddrValve",
                 "pycat.valves.remote_addr:RemoteHostValve", "pycat.valves.remote_ip:RemoteIpValve",
                 "pycat.realm.realms:LockOutRealm", "pycat.realm.realms:CombinedRealm",
                 "pycat.realm.realms:UserDatabaseRealm", "pycat.realm.realms:MemoryRealm",
                 "pycat.core.naming:NamingResources", "pycat.core.naming:ResourceRecord",
                 "pycat.connector.ssl:SSLHostConfig", "pycat.connector.ssl:Certificate"]:
        reflect.load_class(path)()


def test_attrs_follow_tomcat_conversions():
    from pycat.attrs import set_property
    c = Context()
    assert set_property(c, "reloadable", "TRUE") and c.reloadable is True
    assert set_property(c, "cookies", "yes") and c.cookies is False
    h = Host()
    assert set_property(h, "unpackWARs", "false") and h.unpack_wars is False
    assert set_property(h, "appBase", "apps") and h.app_base == "apps"
    from pycat.connector.connector import Connector
    conn = Connector()
    assert set_property(conn, "URIEncoding", "ISO-8859-1") and conn.uri_encoding == "ISO-8859-1"
    assert set_property(conn, "SSLEnabled", "true") and conn.ssl_enabled is True
    assert set_property(conn, "maxThreads", "7") and conn.max_threads == 7
    assert set_property(conn, "socket.soKeepAlive", "true")          # accepted, unused
    assert not set_property(conn, "noSuchThing", "1")                  # → digester warning


@pytest.mark.timeout(20)
def test_contexts_added_to_a_started_host_start_and_serve_and_removal_stops(tmp_path):
    tree = Tree(tmp_path, contexts={"": {"servlets": [("h", Hello(), ["/h"])]}})
    try:
        ctx = Context()
        ctx.path = "/late"
        (tmp_path / "webapps" / "late").mkdir()
        ctx.add_servlet("h", Hello(), ["/h"])
        tree.host.add_child(ctx)
        assert ctx.state is LifecycleState.STARTED
        assert get(tree.port, "/late/h")[2] == b"hello from /late"
        tree.host.remove_child(ctx)
        assert ctx.state is LifecycleState.STOPPED
        assert get(tree.port, "/late/h")[0] == 404       # falls to ROOT, which has no such file
    finally:
        tree.stop()


@pytest.mark.timeout(20)
def test_aliases_and_default_host(tmp_path):
    other = Host()
    other.name = "other.test"
    other.app_base = "otherapps"
    ctx = Context()
    ctx.path = ""
    ctx.add_servlet("h", Hello(), ["/h"])
    ctx.doc_base = str(tmp_path / "otherroot")
    (tmp_path / "otherroot").mkdir()
    ctx.name = "other-root"
    other.add_child(ctx)
    tree = Tree(tmp_path, contexts={"/main": {"servlets": [("h", Hello(), ["/h"])]}},
                aliases=["alias.test"], extra_hosts=[other])
    try:
        assert get(tree.port, "/main/h", host="alias.test:80")[2] == b"hello from /main"
        assert get(tree.port, "/main/h", host="nobody.test")[2] == b"hello from /main"
        assert get(tree.port, "/h", host="other.test")[2] == b"hello from /"
        assert get(tree.port, "/main/h", host="other.test")[0] == 404
    finally:
        tree.stop()


def test_start_and_stop_order():
    events = []
    server = Server()
    server.port = -1
    service = Service()
    server.add_service(service)
    engine = Engine()
    engine.background_processor_delay = -1
    service.set_container(engine)

    class FakeConnector:
        def __init__(self):
            self.service = None

        def start(self):
            events.append("connector start")

        def stop(self):
            events.append("connector stop")

        def destroy(self):
            pass
    service.add_connector(FakeConnector())
    engine.add_lifecycle_listener(lambda e: events.append("engine " + e.type)
                                  if e.type in ("start", "stop") else None)
    server.start()
    server.stop()
    assert events == ["engine start", "connector start", "connector stop", "engine stop"]


def test_background_process_reaches_hosts_and_valves(tmp_path):
    tree = Tree(tmp_path, start=False)
    seen = []
    tree.host.add_lifecycle_listener(lambda e: seen.append(e.type) if e.type == "periodic" else None)
    tree.server.start()
    try:
        tree.engine.background_process()
        assert seen == ["periodic"]
    finally:
        tree.stop()


@pytest.mark.timeout(20)
def test_engine_ticker_runs_background_process(tmp_path):
    tree = Tree(tmp_path, start=False)
    tree.engine.background_processor_delay = 1
    seen = []
    tree.host.add_lifecycle_listener(lambda e: seen.append(e.type) if e.type == "periodic" else None)
    tree.server.start()
    try:
        wait_for(lambda: seen, timeout=5)
        greenlets = list(tree.engine.greenlets)
        assert greenlets
    finally:
        tree.stop()
    assert all(g.dead for g in greenlets)


@pytest.mark.timeout(20)
def test_shutdown_port_accepts_only_the_command():
    server = Server()
    server.port = 0
    server.address = "127.0.0.1"
    server.start()
    try:
        port = server.shutdown_bound_port
        s = gevent.socket.create_connection(("127.0.0.1", port))
        s.sendall(b"NOPE\n")
        s.close()
        assert server.await_shutdown(0.3) is False
        s = gevent.socket.create_connection(("127.0.0.1", port))
        s.sendall(b"SHUTDOWN\n")
        s.close()
        assert server.await_shutdown(5) is True
    finally:
        server.stop()


def test_shutdown_port_in_use_is_a_clear_error():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        server = Server()
        server.port = busy.getsockname()[1]
        server.address = "127.0.0.1"
        with pytest.raises(LifecycleError, match="Address already in use: 127.0.0.1:%d" % server.port):
            server.start()
    finally:
        busy.close()


def test_request_shutdown_releases_await():
    server = Server()
    server.port = -1
    server.start()
    gevent.spawn_later(0.05, server.request_shutdown)
    assert server.await_shutdown(5)
    server.stop()


def test_executor_sizes_the_connector_pool(tmp_path):
    ex = Executor()
    ex.name = "pool1"
    ex.max_threads = 7
    tree = Tree(tmp_path, executors=[ex], connector_attrs={"executor": "pool1"})
    try:
        assert tree.connector.worker_count() == 7 and tree.connector.workers is ex.workers
        assert ex.workers.counter == 7
    finally:
        tree.stop()


def test_unknown_executor_fails_the_connector(tmp_path):
    tree = Tree(tmp_path, connector_attrs={"executor": "missing"}, start=False)
    with pytest.raises(LifecycleError, match="missing"):
        tree.server.start()
    tree.server.stop()


def test_realms_and_naming_are_kept(tmp_path):
    outer = LockOutRealm()
    inner = UserDatabaseRealm()
    inner.resource_name = "UserDatabase"
    assert inner.set_property("digest", "sha-256")
    outer.add_realm(inner)
    engine = Engine()
    engine.set_realm(outer)
    assert engine.get_realm() is outer and outer.realms == [inner]
    res = ResourceRecord()
    res.set_property("name", "UserDatabase")
    res.set_property("pathname", "conf/tomcat-users.xml")
    naming = NamingResources()
    naming.add_resource(res)
    assert naming.find_resource("UserDatabase").get("pathname") == "conf/tomcat-users.xml"
    # realms are enforced now (tests/webapp_api): the UserDatabase is read through the Server's naming
    server = Server()
    server.catalina_base = str(tmp_path)
    server.set_global_naming_resources(naming)
    service = Service()
    server.add_service(service)
    service.set_container(engine)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "tomcat-users.xml").write_text('<tomcat-users><user username="a" password="b" roles="r"/></tomcat-users>')
    outer.start()
    assert outer.authenticate("a", "b").roles == {"r"}
    outer.stop()


def test_cluster_is_started_and_stopped_with_its_container(tmp_path):
    class FakeCluster:
        def __init__(self):
            self.calls = []
            self.container = None

        def start(self):
            self.calls.append("start")

        def stop(self):
            self.calls.append("stop")

        def background_process(self):
            self.calls.append("bg")
    cluster = FakeCluster()
    tree = Tree(tmp_path, start=False)
    tree.engine.set_cluster(cluster)
    tree.server.start()
    tree.engine.background_process()
    tree.stop()
    assert cluster.container is tree.engine
    assert cluster.calls == ["start", "bg", "stop"]


@pytest.mark.timeout(20)
def test_context_reload_serves_again_with_fresh_modules(tmp_path):
    classes = tmp_path / "webapps" / "app" / "WEB-INF" / "classes"
    classes.mkdir(parents=True)
    (classes / "mod.py").write_text(
        "from pycat.webapp.servlet import HttpServlet\n"
        "class S(HttpServlet):\n    def do_get(self, rq, rs):\n        rs.write('v1')\n")
    (tmp_path / "webapps" / "app" / "WEB-INF" / "web.xml").write_text(
        "<web-app><servlet><servlet-name>s</servlet-name><servlet-class>mod:S</servlet-class></servlet>"
        "<servlet-mapping><servlet-name>s</servlet-name><url-pattern>/s</url-pattern></servlet-mapping></web-app>")
    tree = Tree(tmp_path, contexts={"/app": {}})
    try:
        assert get(tree.port, "/app/s")[2] == b"v1"
        ctx = tree.contexts["/app"]
        ctx.stop()
        assert get(tree.port, "/app/s")[0] == 503
        (classes / "mod.py").write_text(
            "from pycat.webapp.servlet import HttpServlet\n"
            "class S(HttpServlet):\n    def do_get(self, rq, rs):\n        rs.write('v2')\n")
        ctx.start()
        assert get(tree.port, "/app/s")[2] == b"v2"
    finally:
        tree.stop()


@pytest.mark.timeout(20)
def test_a_broken_web_app_does_not_stop_the_host(tmp_path, caplog):
    broken = tmp_path / "webapps" / "broken" / "WEB-INF"
    broken.mkdir(parents=True)
    (broken / "web.xml").write_text("<web-app><servlet>\n</web-app>")
    tree = Tree(tmp_path, contexts={"/broken": {}, "/ok": {"servlets": [("h", Hello(), ["/h"])]}})
    try:
        assert not tree.contexts["/broken"].state.available      # failed, then stopped by Lifecycle
        assert "line 2" in caplog.text
        assert get(tree.port, "/ok/h")[2] == b"hello from /ok"
        assert get(tree.port, "/broken/x")[0] == 503
    finally:
        tree.stop()


def test_get_real_path_stays_inside_the_app(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"files": {"a/b.txt": "x"}}})
    try:
        ctx = tree.contexts["/app"]
        assert ctx.get_real_path("/a/b.txt") == str((tmp_path / "webapps" / "app" / "a" / "b.txt").resolve())
        assert ctx.get_real_path("/../secret") is None
    finally:
        tree.stop()


def test_no_matching_host_and_no_default_is_400(tmp_path):
    tree = Tree(tmp_path, start=False)
    tree.engine.default_host = "nowhere"
    tree.server.start()
    try:
        assert get(tree.port, "/", host="unknown.test")[0] == 400
        assert get(tree.port, "/", host="localhost")[0] == 404      # empty ROOT: no welcome file
    finally:
        tree.stop()


def test_listeners(caplog):
    from pycat.core.listeners import NoopListener, VersionLoggerListener
    server = Server()
    server.port = -1
    server.add_lifecycle_listener(VersionLoggerListener())
    noop = NoopListener()
    assert noop.set_property("SSLEngine", "on") and noop.properties == {"SSLEngine": "on"}
    server.add_lifecycle_listener(noop)
    with caplog.at_level("INFO"):
        server.start()
    server.stop()
    assert "Server version name:   pycat/" in caplog.text
