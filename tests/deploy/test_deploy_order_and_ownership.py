"""When HostConfig deploys (after the Host's cluster, realm and valves started, as in Tomcat) and who
owns the deployer state: the Host holds its deployer, the Server its deploy channel, no module does."""
import json
import os
import socket

import pytest

from deploy_helpers import Node, app_files, write_folder
from pycat_harness import in_thread
from pycat.errors import LifecycleError
from pycat.ha.cluster import SimpleTcpCluster
from pycat.lifecycle import LifecycleState
from pycat.realm.realms import MemoryRealm
from pycat.startup import manager_api
from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.transport.receiver import NioReceiver
from pycat.valves.remote_addr import RemoteAddrValve

pytestmark = pytest.mark.timeout(60)

WEB_XML = """<web-app>
  <servlet><servlet-name>p</servlet-name><servlet-class>probe:Probe</servlet-class>
    <load-on-startup>1</load-on-startup></servlet>
  <servlet-mapping><servlet-name>p</servlet-name><url-pattern>/seen</url-pattern></servlet-mapping>
</web-app>
"""

# a servlet that notes, while its app is being deployed (load-on-startup), what of its Host runs
PROBE = """import json
import os

from pycat.webapp.servlet import HttpServlet

SEEN = {}


class Probe(HttpServlet):
    def init(self, config):
        super().init(config)
        ctx = self.servlet_context
        host = ctx.parent
        SEEN.update(host=host.state.value, cluster=host.cluster.state.value, realm=host.realm.state.value,
                    valves=[(type(v).__name__, v.state.value) for v in host.pipeline.all_valves()])
        with open(os.path.join(ctx.doc_base_path, "deployed"), "w") as fh:
            fh.write("yes")

    def do_get(self, request, response):
        response.set_header("Content-Type", "application/json")
        response.write(json.dumps(SEEN))
"""

USERS = '<tomcat-users><user username="u" password="p" roles="r"/></tomcat-users>\n'


def host_parts(base, receiver_port=0, auto_bind=1):
    """A real realm, valve and cluster for the Host (the cluster's channel only starts its TCP
    receiver and sender: channelStartOptions 3, on loopback)."""
    users = os.path.join(str(base), "users.xml")
    with open(users, "w") as fh:
        fh.write(USERS)

    def configure(host):
        realm = MemoryRealm()
        realm.pathname = users
        host.set_realm(realm)
        valve = RemoteAddrValve()
        valve.allow = r"127\.0\.0\.1"
        host.add_valve(valve)
        receiver = NioReceiver()
        receiver.address, receiver.port, receiver.auto_bind = "127.0.0.1", receiver_port, auto_bind
        channel = GroupChannel()
        channel.set_receiver(receiver)
        cluster = SimpleTcpCluster()
        cluster.channel_start_options = 3
        cluster.set_channel(channel)
        host.set_cluster(cluster)
    return configure


def probe_app(base):
    return write_folder(os.path.join(str(base), "webapps", "order"),
                        {"WEB-INF/web.xml": WEB_XML, "WEB-INF/classes/probe.py": PROBE})


def test_apps_deploy_once_the_hosts_cluster_realm_and_valves_run(tmp_path):
    folder = probe_app(tmp_path)
    node = Node(tmp_path, configure=host_parts(tmp_path))
    try:
        status, seen = node.body("/order/seen")
        assert status == 200, seen
        seen = json.loads(seen)
        # Tomcat's order: ContainerBase fires START_EVENT (HostConfig deploys) after its cluster,
        # realm, children and pipeline started, before the Host itself is STARTED; the cluster's
        # default valves joined the Host's pipeline after the Host's own (as in Tomcat)
        assert seen == {"host": "STARTING", "cluster": "STARTED", "realm": "STARTED",
                        "valves": [["RemoteAddrValve", "STARTED"], ["ErrorReportValve", "STARTED"],
                                   ["JvmRouteBinderValve", "STARTED"], ["ReplicationValve", "STARTED"],
                                   ["StandardHostValve", "STARTED"]]}
        assert os.path.exists(os.path.join(folder, "deployed"))
        assert node.host.state is LifecycleState.STARTED
    finally:
        node.stop()


def test_a_host_whose_cluster_cannot_start_deploys_nothing(tmp_path):
    folder = probe_app(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(LifecycleError) as info:
            Node(tmp_path, configure=host_parts(tmp_path, receiver_port=port, auto_bind=1))
    text = str(info.value)
    assert "SimpleTcpCluster" in text, text
    # the app was never started (its servlet would have left this file), nor left in the Host
    assert not os.path.exists(os.path.join(folder, "deployed"))
    # positive control: the same base with a free port deploys the app
    node = Node(tmp_path, configure=host_parts(tmp_path))
    try:
        assert node.body("/order/seen")[0] == 200
        assert os.path.exists(os.path.join(folder, "deployed"))
    finally:
        node.stop()


def token_file(base):
    return os.path.join(str(base), "work", manager_api.FILE_NAME)


def test_each_server_owns_its_deploy_channel_and_each_host_its_deployer(tmp_path):
    a_base, b_base = tmp_path / "a", tmp_path / "b"
    write_folder(a_base / "webapps" / "only-a", app_files("a"))
    write_folder(b_base / "webapps" / "only-b", app_files("b"))
    a, b = Node(a_base), Node(b_base)
    try:
        for node in (a, b):
            # the Host holds its deployer, the Server its channel, which knows the Host
            assert node.host.deployer is node.config
            channel = node.tree.server.deploy_channel
            assert isinstance(channel, manager_api.DeployChannel) and channel.hosts == [node.host]
            assert channel.endpoint.state is LifecycleState.STARTED
        assert a.tree.server.deploy_channel is not b.tree.server.deploy_channel
        # two servers in one process: two listeners, each answering for its own apps only
        for base, name in ((a_base, "/only-a"), (b_base, "/only-b")):
            reply = in_thread(manager_api.call, str(base), {"cmd": "list"})
            assert reply["ok"] and [app["name"] for app in reply["apps"]] == [name]
        a.stop()
        assert a.host.deployer is None and a.tree.server.deploy_channel.hosts == []
        assert a.tree.server.deploy_channel.endpoint is None and not os.path.exists(token_file(a_base))
        # the other server's channel is untouched
        reply = in_thread(manager_api.call, str(b_base), {"cmd": "list"})
        assert [app["name"] for app in reply["apps"]] == ["/only-b"]
    finally:
        a.stop()
        b.stop()
    assert b.host.deployer is None and not os.path.exists(token_file(b_base))


def test_a_restarted_host_gets_its_deployer_and_channel_back(tmp_path):
    write_folder(tmp_path / "webapps" / "app", app_files("v"))
    node = Node(tmp_path)
    try:
        first_token = json.load(open(token_file(tmp_path)))["token"]
        node.tree.server.stop()
        assert node.host.deployer is None and not os.path.exists(token_file(tmp_path))
        node.tree.server.start()
        assert node.host.deployer is node.config
        assert json.load(open(token_file(tmp_path)))["token"] != first_token
        reply = in_thread(manager_api.call, str(tmp_path), {"cmd": "list"})
        assert [app["name"] for app in reply["apps"]] == ["/app"]
    finally:
        node.stop()
