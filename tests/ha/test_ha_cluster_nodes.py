"""Two real nodes (`pycat run` subprocesses) whose server.xml Engine holds the cluster how-to's
<Cluster> with each of its three <Channel> configurations: they see each other, and a graceful stop
is seen at once. `pycat configtest --strict` takes the full how-to block (DeltaManager, FarmWarDeployer...)."""
import pathlib
import socket
import subprocess
import sys
import time

import pytest
from lxml import etree
from waiting import free_udp_port

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from node_helpers import SERVER_XML, free_port, make_base, node_env, pycat_cmd  # noqa: E402

HOWTO_CHANNELS = pathlib.Path(__file__).parents[1] / "fixtures" / "howto-channels.xml"
CLUSTER_OPEN = '<Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="8">'
# dropTime far above the wait below: a removal seen in time can only be the graceful goodbye
DROP_TIME = 30000


def howto_channels():
    root = etree.parse(str(HOWTO_CHANNELS)).getroot()
    return [etree.tostring(el, encoding="unicode") for el in root if el.tag == "Channel"]


def loopback_channel(xml, group, mcast_port, receiver_port):
    """The how-to's <Channel> with Membership on a test-unique loopback group and the Receiver on
    127.0.0.1:receiver_port; every other attribute stays as the how-to wrote it."""
    channel = etree.fromstring(xml)
    membership = channel.find("Membership")
    membership.set("address", group)
    membership.set("port", str(mcast_port))
    membership.set("bind", "127.0.0.1")
    membership.set("dropTime", str(DROP_TIME))
    receiver = channel.find("Receiver")
    receiver.set("address", "127.0.0.1")
    receiver.set("port", str(receiver_port))
    return etree.tostring(channel, encoding="unicode")


def server_xml_with(cluster_body, shutdown_port=None):
    xml = SERVER_XML.format(shutdown_port=shutdown_port or free_port())
    cluster = "\n      %s\n        %s\n      </Cluster>" % (CLUSTER_OPEN, cluster_body)
    return xml.replace('jvmRoute="${jvm.route:-node0}">', 'jvmRoute="${jvm.route:-node0}">' + cluster, 1)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("index", range(3))
def test_two_nodes_run_the_howto_channel(pycat_cluster, index):
    # the how-to's <Channel> as written but for dropTime: the plugin moves its Membership to the
    # cluster's own group and port and its Receiver to 127.0.0.1 and a free port on each node
    channel = etree.fromstring(howto_channels()[index])
    channel.find("Membership").set("dropTime", str(DROP_TIME))
    xml = server_xml_with(etree.tostring(channel, encoding="unicode"), shutdown_port=8005)
    cluster = pycat_cluster(2, server_xml=xml)        # started: each sees the other
    node1, node2 = cluster.nodes
    for me, other in ((node1, node2), (node2, node1)):
        assert "Replication member added:[Member(tcp://127.0.0.1:%d," % other.receiver_port in me.log()
    for node in cluster.nodes:
        text = node.log()
        assert "Server startup in" in text
        assert "the channel has no AuthInterceptor or EncryptInterceptor" in text
        assert "Traceback" not in text, text

    # node 2 stops gracefully: node 1 hears its goodbye long before dropTime
    stopped_at = time.monotonic()
    assert node2.stop() == 0, node2.log()
    node1.wait_log("Replication member removed:[Member(tcp://127.0.0.1:%d," % node2.receiver_port, timeout=10)
    assert time.monotonic() - stopped_at < DROP_TIME / 1000.0 / 3
    removed = [line for line in node1.log().splitlines() if "Replication member removed" in line]
    assert len(removed) == 1 and "BABY-ALEX" in removed[0]  # the goodbye record, not a dropTime expiry
    assert node1.stop() == 0, node1.log()
    assert "Server stopped" in node1.log() and "Traceback" not in node1.log()


# the how-to's full <Cluster> body (Manager on one line: lxml gives an element the line where its start tag ends)
FULL_HOWTO = """<Manager className="org.apache.catalina.ha.session.DeltaManager" expireSessionsOnShutdown="false" notifyListenersOnReplication="true"/>
        {channel}
        <Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter=""/>
        <Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve"/>
        <Deployer className="org.apache.catalina.ha.deploy.FarmWarDeployer" tempDir="/tmp/war-temp/"
                  deployDir="/tmp/war-deploy/" watchDir="/tmp/war-listen/" watchEnabled="false"/>
        <ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener"/>"""


@pytest.mark.timeout(60)
def test_configtest_takes_the_full_howto_block(tmp_path):
    """The how-to's whole <Cluster> loads (DeltaManager, both valves, the FarmWarDeployer, the
    listener): configtest --strict passes; a misspelt attribute of the Deployer is named at its line."""
    xml = server_xml_with(FULL_HOWTO.format(channel=howto_channels()[0]))
    base = make_base(tmp_path / "full", free_port(), server_xml=xml)
    result = subprocess.run(pycat_cmd("configtest", "--strict"), env=node_env(base), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # positive control: --strict does look at the Deployer's attributes
    bad = xml.replace('watchEnabled="false"', 'watchEnabeld="false"')
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "watchEnabeld=" in text)
    base = make_base(tmp_path / "typo", free_port(), server_xml=bad)
    result = subprocess.run(pycat_cmd("configtest", "--strict"), env=node_env(base), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "server.xml:%d" % line in result.stderr and "watchEnabeld" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_configtest_accepts_the_one_line_cluster(tmp_path):
    xml = SERVER_XML.format(shutdown_port=free_port()).replace(
        'jvmRoute="${jvm.route:-node0}">',
        'jvmRoute="${jvm.route:-node0}"><Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster"/>', 1)
    base = make_base(tmp_path / "one", free_port(), server_xml=xml)
    result = subprocess.run(pycat_cmd("configtest", "--strict"), env=node_env(base), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration OK" in result.stdout


@pytest.mark.timeout(60)
def test_receiver_port_in_use_stops_the_node_with_one_clear_line(pycat_node):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        channel = loopback_channel(howto_channels()[0], "228.9.9.9", free_udp_port(), holder.getsockname()[1])
        channel = channel.replace('autoBind="100"', 'autoBind="1"')  # no next port to fall back on
        assert 'autoBind="1"' in channel
        # isolate=False: the Receiver keeps the busy port (the HTTP port is still a free one)
        node = pycat_node(server_xml=server_xml_with(channel), isolate=False, start=False)
        node.start(wait=False)
        assert node.proc.wait(30) == 1
    finally:
        holder.close()
    lines = [line for line in node.log().splitlines() if line.startswith("pycat:")]
    assert len(lines) == 1 and "Address already in use" in lines[0], node.log()
