"""Two real nodes (`pycat run` subprocesses) whose server.xml Engine holds the cluster how-to's
<Cluster> with each of its three <Channel> configurations: they see each other, and a graceful stop
is seen at once. `pycat configtest --strict` takes the full how-to block (DeltaManager, FarmWarDeployer...)."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from lxml import etree
from waiting import free_udp_port, unique_mcast_group

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from node_helpers import (SERVER_XML, Procs, free_port, make_base, node_env, pycat_cmd,  # noqa: E402
                          read, wait_until)

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


def server_xml_with(cluster_body):
    xml = SERVER_XML.format(shutdown_port=free_port())
    cluster = "\n      %s\n        %s\n      </Cluster>" % (CLUSTER_OPEN, cluster_body)
    return xml.replace('jvmRoute="${jvm.route:-node0}">', 'jvmRoute="${jvm.route:-node0}">' + cluster, 1)


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


def log_of(base):
    path = os.path.join(base, "logs", "out")
    return read(path) if os.path.exists(path) else ""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("index", range(3))
def test_two_nodes_run_the_howto_channel(tmp_path, procs, index):
    group, mcast_port = unique_mcast_group()
    rx_ports = [free_port(), free_port()]
    bases, nodes = [], []
    for i, rx_port in enumerate(rx_ports):
        channel = loopback_channel(howto_channels()[index], group, mcast_port, rx_port)
        base = make_base(tmp_path / ("node%d" % (i + 1)), free_port(), server_xml=server_xml_with(channel),
                         properties="jvm.route=node%d\n" % (i + 1))
        out = open(os.path.join(base, "logs", "out"), "w")
        nodes.append(procs.popen(pycat_cmd("run"), env=node_env(base), stdout=out, stderr=subprocess.STDOUT))
        out.close()
        bases.append(base)
    names = ["Member(tcp://127.0.0.1:%d," % port for port in rx_ports]
    # each node logs the other's arrival
    for me, other in ((0, 1), (1, 0)):
        wait_until(lambda: "Replication member added:[%s" % names[other] in log_of(bases[me]), timeout=30,
                   message="node%d to log node%d's arrival" % (me + 1, other + 1))
    for base in bases:
        wait_until(lambda: "Server startup in" in log_of(base), timeout=30, message="startup of %s" % base)
        text = log_of(base)
        assert "the channel has no AuthInterceptor or EncryptInterceptor" in text
        assert "Traceback" not in text, text

    # node 2 stops gracefully: node 1 hears its goodbye long before dropTime
    stopped_at = time.monotonic()
    nodes[1].send_signal(signal.SIGTERM)
    assert nodes[1].wait(30) == 0, log_of(bases[1])
    wait_until(lambda: "Replication member removed:[%s" % names[1] in log_of(bases[0]), timeout=10,
               message="node1 to log node2's removal")
    assert time.monotonic() - stopped_at < DROP_TIME / 1000.0 / 3
    removed = [line for line in log_of(bases[0]).splitlines() if "Replication member removed" in line]
    assert len(removed) == 1 and "BABY-ALEX" in removed[0]  # the goodbye record, not a dropTime expiry
    nodes[0].send_signal(signal.SIGTERM)
    assert nodes[0].wait(30) == 0, log_of(bases[0])
    assert "Server stopped" in log_of(bases[0]) and "Traceback" not in log_of(bases[0])


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
def test_receiver_port_in_use_stops_the_node_with_one_clear_line(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        channel = loopback_channel(howto_channels()[0], "228.9.9.9", free_udp_port(), holder.getsockname()[1])
        channel = channel.replace('autoBind="100"', 'autoBind="1"')  # no next port to fall back on
        assert 'autoBind="1"' in channel
        base = make_base(tmp_path / "busy", free_port(), server_xml=server_xml_with(channel))
        result = subprocess.run(pycat_cmd("run"), env=node_env(base), capture_output=True, text=True, timeout=30)
    finally:
        holder.close()
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("pycat:")]
    assert len(lines) == 1 and "Address already in use" in lines[0], result.stderr
