"""The manager seam (issue 9 item 2, Tomcat's ClusterManager contract), in-process with a real
Host, HostConfig, HTTP connector and a started <Cluster> on a test-unique multicast group:
a distributable app under a Cluster gets its manager from the cluster (a clone of the template,
registered by app name, unregistered when it stops); a non-distributable app keeps its
StandardManager; a Context's own <Manager> wins; a redeploy hands the sessions over through
Manager.take_over."""
import os
import shutil

import pytest
from waiting import unique_mcast_group

from deploy_helpers import Node, bump_mtime, write_folder, write_war
from pycat.ha.cluster import SimpleTcpCluster
from pycat.ha.session.delta_manager import DeltaManager
from pycat.session.manager import StandardManager

pytestmark = pytest.mark.timeout(60)

COUNTER = """from pycat.webapp.servlet import HttpServlet


class Count(HttpServlet):
    def do_get(self, request, response):
        session = request.get_session(True)
        n = (session.get_attribute("n") or 0) + 1
        session.set_attribute("n", n)
        response.set_header("Content-Type", "text/plain")
        response.write("%s %d" % (CODE, n))
"""
WEB = """<web-app>%s
  <servlet><servlet-name>c</servlet-name><servlet-class>count:Count</servlet-class></servlet>
  <servlet-mapping><servlet-name>c</servlet-name><url-pattern>/count</url-pattern></servlet-mapping>
</web-app>"""


def counter_files(code="v1", distributable=True, context_xml=None):
    files = {"WEB-INF/web.xml": WEB % ("\n  <distributable/>" if distributable else ""),
             "WEB-INF/classes/count.py": "CODE = %r\n" % code + COUNTER}
    if context_xml:
        files["META-INF/context.xml"] = context_xml
    return files


def loopback_cluster():
    cluster = SimpleTcpCluster()
    channel = cluster.get_channel()
    mcast = channel.membership_service
    mcast.address, mcast.port = unique_mcast_group()
    mcast.bind, mcast.frequency, mcast.drop_time = "127.0.0.1", 100, 10000
    receiver = channel.receiver
    receiver.address, receiver.port, receiver.auto_bind = "127.0.0.1", 0, 1
    return cluster


@pytest.fixture
def clustered(tmp_path):
    """A Node whose Host has a started <Cluster>; yields (node, cluster)."""
    cluster = loopback_cluster()
    node = Node(tmp_path, configure=lambda host: host.set_cluster(cluster))
    try:
        yield node, cluster
    finally:
        node.stop()


def cookie_of(headers):
    return headers["set-cookie"].split(";")[0].split("=", 1)[1]


def test_distributable_app_gets_its_manager_from_the_cluster(clustered):
    node, cluster = clustered
    assert cluster.state.available
    write_folder(os.path.join(node.app_base, "dist"), counter_files(distributable=True))
    write_folder(os.path.join(node.app_base, "local"), counter_files(distributable=False))
    node.config.check()
    dist, local = node.host.find_child("/dist"), node.host.find_child("/local")
    # positive: the cluster made the distributable app's manager and knows it by the app's name
    assert cluster.get_manager("/dist") is dist.manager
    assert dist.manager is not cluster.get_manager_template()
    assert dist.manager.state.available and dist.manager.distributable
    # negative control: the other app has a plain StandardManager the cluster never heard of
    assert type(local.manager) is StandardManager and not local.manager.distributable
    assert list(cluster.managers) == ["/dist"]
    # the cluster's manager serves sessions
    status, headers, body = node.get("/dist/count")
    assert (status, body) == (200, b"v1 1")
    status, _, body = node.get("/dist/count", headers={"Cookie": "JSESSIONID=" + cookie_of(headers)})
    assert (status, body) == (200, b"v1 2")
    # undeploy: the manager stops and is unregistered
    manager = dist.manager
    shutil.rmtree(os.path.join(node.app_base, "dist"))
    node.config.check()
    assert node.host.find_child("/dist") is None
    assert not manager.state.available
    assert cluster.get_manager("/dist") is None and cluster.managers == {}


def test_the_template_is_cloned_and_a_contexts_own_manager_wins(tmp_path):
    cluster = loopback_cluster()
    template = StandardManager()
    template.max_active_sessions = 7
    template.process_expires_frequency = 3
    cluster.set_manager_template(template)
    node = Node(tmp_path, configure=lambda host: host.set_cluster(cluster))
    try:
        write_folder(os.path.join(node.app_base, "a"), counter_files())
        write_folder(os.path.join(node.app_base, "b"), counter_files())
        own = ('<Context><Manager className="org.apache.catalina.session.StandardManager" '
               'maxActiveSessions="2"/></Context>')
        write_folder(os.path.join(node.app_base, "own"), counter_files(context_xml=own))
        node.config.check()
        a, b, mine = (node.host.find_child(p).manager for p in ("/a", "/b", "/own"))
        # one clone per app, configured as the template, none of them the template itself
        assert len({id(a), id(b), id(template)}) == 3
        assert (a.max_active_sessions, a.process_expires_frequency) == (7, 3)
        assert (b.max_active_sessions, b.process_expires_frequency) == (7, 3)
        assert a.session_id_generator is not template.session_id_generator
        assert template.state.value == "NEW"          # the template itself never runs
        # the Context's own <Manager> is used, not a clone, and the cluster learns of it
        assert mine.max_active_sessions == 2
        assert cluster.get_manager("/own") is mine
        assert sorted(cluster.managers) == ["/a", "/b", "/own"]
    finally:
        node.stop()
    # stopping the server stops every manager: all unregistered
    assert cluster.managers == {}


def test_an_engine_cluster_names_managers_host_hash_app(tmp_path):
    cluster = loopback_cluster()
    node = Node(tmp_path, configure=lambda host: host.parent.set_cluster(cluster))
    try:
        write_folder(os.path.join(node.app_base, "dist"), counter_files())
        node.config.check()
        ctx = node.host.find_child("/dist")
        assert cluster.get_manager("%s#/dist" % node.host.name) is ctx.manager
        assert list(cluster.managers) == ["%s#/dist" % node.host.name]
    finally:
        node.stop()
    assert cluster.managers == {}


def test_a_redeploy_keeps_sessions_through_take_over(clustered, monkeypatch):
    node, cluster = clustered
    calls = []
    real = DeltaManager.take_over

    def spy(self, old):
        calls.append((self, old, old.state.value))
        return real(self, old)
    monkeypatch.setattr(DeltaManager, "take_over", spy)
    war = write_war(os.path.join(node.app_base, "shop.war"), counter_files("v1"))
    node.config.check(), node.config.check()
    status, headers, body = node.get("/shop/count")
    sid = cookie_of(headers)
    assert (status, body) == (200, b"v1 1")
    first = node.host.find_child("/shop").manager
    write_war(war, counter_files("v2"))
    bump_mtime(war, 4)
    node.config.check(), node.config.check()
    second = node.host.find_child("/shop").manager
    assert second is not first
    # the new manager took the old one's sessions explicitly, after the old Context stopped
    assert [(new, old, state) for new, old, state in calls] == [(second, first, "STOPPED")]
    status, headers, body = node.get("/shop/count", headers={"Cookie": "JSESSIONID=" + sid})
    assert (status, body) == (200, b"v2 2") and "set-cookie" not in headers
    # the new manager holds the name; the old one's stop did not unregister it
    assert cluster.get_manager("/shop") is second
