"""SimpleTcpCluster in-process over real loopback sockets: attributes, default channel, membership,
cluster listeners, graceful leave, static membership (members known when the start returns)."""
import logging
import socket

import gevent
import pytest
from waiting import unique_mcast_group, wait_for

from pycat import attrs
from pycat.errors import ConfigError
from pycat.ha.cluster import (AFTER_MEMBER_REGISTER, AFTER_MEMBER_UNREGISTER, RECEIVE_MESSAGE_FAILURE,
                              SEND_MESSAGE_FAILURE, SimpleTcpCluster)
from pycat.ha.cluster_listener import ClusterListener
from pycat.ha.cluster_message import ClusterMessage
from pycat.lifecycle import LifecycleState
from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.membership.mcast import McastService
from pycat.tribes.membership.static import StaticMember, StaticMembershipService
from pycat.tribes.transport.receiver import NioReceiver

pytestmark = pytest.mark.timeout(60)




@pytest.fixture
def group():
    """A test-unique multicast group and port: parallel runs and real clusters never meet."""
    return unique_mcast_group()


def loopback(channel, group, drop_time=10000):
    """Point a channel's membership and receiver at loopback, keeping everything else."""
    mcast = channel.membership_service
    mcast.address, mcast.port = group
    mcast.bind, mcast.frequency, mcast.drop_time = "127.0.0.1", 100, drop_time
    receiver = channel.receiver
    receiver.address, receiver.port, receiver.auto_bind = "127.0.0.1", 0, 1
    return channel


def mcast_cluster(group, **attributes):
    channel = GroupChannel()
    channel.set_membership(McastService())
    channel.set_receiver(NioReceiver())
    cluster = SimpleTcpCluster()
    cluster.set_channel(loopback(channel, group))
    for name, value in attributes.items():
        assert attrs.set_property(cluster, name, value)
    return cluster


class Inbox(ClusterListener):
    kinds = ("test",)

    def __init__(self, fail=False):
        super().__init__()
        self.messages = []
        self.fail = fail

    def message_received(self, msg):
        self.messages.append(msg)
        if self.fail:
            raise RuntimeError("listener refuses %s" % msg.body)


class Events:
    def __init__(self):
        self.events = []

    def lifecycle_event(self, event):
        self.events.append((event.type, event.data))

    def of(self, kind):
        return [data for t, data in self.events if t == kind]


@pytest.fixture
def started():
    clusters = []

    def start(*new):
        clusters.extend(new)
        gevent.joinall([gevent.spawn(c.start) for c in new], raise_error=True)
        return new
    yield start
    for c in clusters:
        c.stop()


def test_attributes_follow_tomcat():
    c = SimpleTcpCluster()
    assert (c.channel_send_options, c.channel_start_options) == (8, 15)
    assert c.heartbeat_background_enabled is False and c.notify_lifecycle_listener_on_failure is False
    for text, value in (("8", 8), ("async", 8), ("use_ack,sync", 6), ("async, multicast", 72)):
        assert attrs.set_property(c, "channelSendOptions", text) and c.channel_send_options == value
    assert c.get_channel_send_options_name() == "multicast, async"
    attrs.set_property(c, "channelSendOptions", "0")  # Tomcat ignores a parsed 0
    assert c.channel_send_options == 72
    with pytest.raises(ConfigError, match="unknown channel send option 'bogus'"):
        attrs.set_property(c, "channelSendOptions", "async,bogus")
    assert attrs.set_property(c, "channelStartOptions", "3") and c.channel_start_options == 3
    assert attrs.set_property(c, "heartbeatBackgroundEnabled", "TRUE") and c.heartbeat_background_enabled
    assert attrs.set_property(c, "clusterName", "shop") and c.get_cluster_name() == "shop"


def test_default_channel_is_tomcats():
    c = SimpleTcpCluster()
    channel = c.get_channel()
    assert type(channel) is GroupChannel
    c._check_defaults()
    assert [type(i).__name__ for i in channel.interceptors] == ["MessageDispatchInterceptor", "TcpFailureDetector"]
    mcast, receiver = channel.membership_service, channel.receiver
    assert (type(mcast).__name__, mcast.address, mcast.port, mcast.frequency, mcast.drop_time) == (
        "McastService", "228.0.0.4", 45564, 500, 3000)
    assert (type(receiver).__name__, receiver.address, receiver.port, receiver.auto_bind) == (
        "NioReceiver", "auto", 4000, 100)
    # a configured channel keeps its own interceptors
    own = GroupChannel()
    from pycat.tribes.group.interceptors.throughput import ThroughputInterceptor
    own.add_interceptor(ThroughputInterceptor())
    c2 = SimpleTcpCluster()
    c2.set_channel(own)
    c2._check_defaults()
    assert [type(i).__name__ for i in own.interceptors] == ["ThroughputInterceptor"]


def test_a_deployer_and_a_manager_template_must_be_what_they_say():
    c = SimpleTcpCluster()
    # <Manager> is the manager template (tests/ha/test_ha_manager_seam.py); only a manager will do
    with pytest.raises(ConfigError, match=r"<Manager> inside <Cluster> must be a session manager, not object"):
        c.set_manager_template(object())
    with pytest.raises(ConfigError, match=r"<Deployer> inside <Cluster> must be a cluster deployer \(a "
                                          r"FarmWarDeployer\), not object"):
        c.set_cluster_deployer(object())


def test_two_clusters_meet_talk_and_part(group, started, caplog):
    caplog.set_level(logging.INFO)
    # node a runs Tomcat's default channel (only its addresses moved to loopback), b a configured one
    a = SimpleTcpCluster()
    loopback(a.get_channel(), group)
    a.cluster_name = "shop"
    b = mcast_cluster(group, channelSendOptions="use_ack,sync", notifyLifecycleListenerOnFailure="true")
    events_a, events_b = Events(), Events()
    a.add_lifecycle_listener(events_a)
    b.add_lifecycle_listener(events_b)
    inbox_a, inbox_b = Inbox(), Inbox()
    a.add_cluster_listener(inbox_a)
    b.add_cluster_listener(inbox_b)
    assert inbox_a.cluster is a
    started(a, b)
    assert a.state is LifecycleState.STARTED and a.channel.name == "shop-Channel"
    assert [type(i).__name__ for i in a.channel.interceptors] == ["MessageDispatchInterceptor", "TcpFailureDetector"]
    wait_for(lambda: a.get_members() == [b.get_local_member()] and b.get_members() == [a.get_local_member()],
             what="each cluster to see the other")
    assert a.has_members() and b.has_members()
    assert events_a.of(AFTER_MEMBER_REGISTER) == [b.get_local_member()]
    wait_for(lambda: "Replication member added:[Member(%s" % b.get_local_member().name in caplog.text)
    assert "the channel has no AuthInterceptor or EncryptInterceptor" in caplog.text

    # a -> b with a's default (async), b -> a with b's (use_ack,sync), and b -> a to one member
    assert a.send(ClusterMessage("test", {"n": 1}, "m1")) is not None
    assert b.send(ClusterMessage("test", [2, b"two"])) is not None
    assert b.send(ClusterMessage("test", "direct"), dest=a.get_local_member(), options="use_ack") is not None
    wait_for(lambda: len(inbox_b.messages) == 1 and len(inbox_a.messages) == 2, what="messages")
    got = inbox_b.messages[0]
    assert (got.kind, got.body, got.unique_id, got.address) == ("test", {"n": 1}, "m1", a.get_local_member())
    assert sorted(str(m.body) for m in inbox_a.messages) == ["[2, b'two']", "direct"]
    # to itself: refused and logged, nothing sent
    assert a.send(ClusterMessage("test", 0), dest=a.get_local_member()) is None
    assert "refusing to send" in caplog.text
    # a kind no listener takes: fired as receive_message_failure on b (notifyLifecycleListenerOnFailure)
    a.send(ClusterMessage("nobody-listens", 1))
    wait_for(lambda: events_b.of(RECEIVE_MESSAGE_FAILURE), what="receive failure event")
    assert events_b.of(RECEIVE_MESSAGE_FAILURE)[0].message.kind == "nobody-listens"
    # a failing listener on a, with b's sync ack: b's send fails, is logged, fired, not raised
    inbox_a.fail = True
    assert b.send(ClusterMessage("test", "boom")) is None
    assert "unable to send" in caplog.text
    assert len(events_b.of(SEND_MESSAGE_FAILURE)) == 1
    inbox_a.fail = False

    # b leaves gracefully: a drops it at once (dropTime is 10 s here)
    b_member = b.get_local_member()
    b.stop()
    wait_for(lambda: not a.has_members(), timeout=3, what="a to drop b")
    assert a.get_members() == [] and events_a.of(AFTER_MEMBER_UNREGISTER) == [b_member]
    assert "Replication member removed:[Member(%s" % b_member.name in caplog.text
    assert a.send(ClusterMessage("test", "alone")) is None  # no members: nothing to do


def static_cluster(my_port, peer_port, my_id, peer_id):
    channel = GroupChannel()
    service = StaticMembershipService()
    service.expiration_time = 1000
    for port, uid in ((my_port, my_id), (peer_port, peer_id)):
        member = StaticMember("127.0.0.1", port, unique_id=bytes([uid] * 16))
        service.add_static_member(member)
    channel.set_membership(service)
    receiver = NioReceiver()
    receiver.address, receiver.port, receiver.auto_bind = "127.0.0.1", my_port, 1
    channel.set_receiver(receiver)
    cluster = SimpleTcpCluster()
    cluster.heartbeat_background_enabled = True
    cluster.set_channel(channel)
    return cluster


def test_static_members_know_each_other_when_start_returns(started):
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    a = static_cluster(ports[0], ports[1], 1, 2)
    b = static_cluster(ports[1], ports[0], 2, 1)
    inbox, events = Inbox(), Events()
    a.add_cluster_listener(inbox)
    a.add_lifecycle_listener(events)
    started(a)
    assert a.channel.heartbeat_enabled is False  # the container's background thread beats instead
    assert not a.has_members()                   # b is not up yet
    started(b)
    # b's start announced it and waited for a's answer: no heartbeat needed on either side
    assert [m.port for m in b.get_members()] == [ports[0]]
    assert [m.port for m in a.get_members()] == [ports[1]]
    assert events.of(AFTER_MEMBER_REGISTER) == a.get_members()   # a's listeners had it too
    b.send(ClusterMessage("test", "static"))
    wait_for(lambda: [m.body for m in inbox.messages] == ["static"])
    a.background_process()                       # a heartbeat pings b: still there
    assert [m.port for m in a.get_members()] == [ports[1]]
    # b stops: it tells a, which has dropped it (a graceful departure) when b's stop returns
    b.stop()
    assert not a.has_members() and [m.port for m in events.of(AFTER_MEMBER_UNREGISTER)] == [ports[1]]
    # and a restarted b is back on both sides when its start returns
    b.start()
    assert [m.port for m in a.get_members()] == [ports[1]] and b.has_members()


def test_one_line_cluster_from_server_xml_runs_its_channel(group, started, caplog):
    """<Cluster className="...SimpleTcpCluster"/> alone: Tomcat's default channel, started with the
    Engine's cluster; only its addresses are moved to loopback for the test."""
    from pycat.startup.digester import Digester
    caplog.set_level(logging.INFO)
    xml = ('<Server port="-1"><Service name="Catalina"><Engine name="Catalina" defaultHost="localhost">'
           '<Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster"/>'
           '</Engine></Service></Server>')
    digester = Digester()
    server = digester.parse_string(xml, source="server.xml")
    assert digester.warnings == []
    engine = server.services[0].container
    cluster = engine.cluster
    assert type(cluster) is SimpleTcpCluster and cluster.container is engine and cluster.channel is None
    assert cluster.get_cluster_name() == "Catalina"
    loopback(cluster.get_channel(), group)
    other = mcast_cluster(group)
    started(cluster, other)
    assert cluster.channel.name == "Catalina-Channel"
    wait_for(lambda: cluster.get_members() == [other.get_local_member()], what="the default channel to meet a peer")
    # the one-line cluster gets Tomcat's defaults: a DeltaManager template, the session listener, the valves
    assert type(cluster.get_manager_template()).__name__ == "DeltaManager"
    assert [type(l).__name__ for l in cluster.cluster_listeners] == ["ClusterSessionListener"]
    assert [type(v).__name__ for v in cluster.valves] == ["JvmRouteBinderValve", "ReplicationValve"]


def test_cluster_listener_element_is_attached():
    from pycat.startup.digester import Digester
    xml = ('<Server port="-1"><Service name="Catalina"><Engine name="Catalina" defaultHost="localhost">'
           '<Host name="localhost" appBase="webapps">'
           '<Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="6" clusterName="c1">'
           '<ClusterListener className="pycat.ha.cluster_listener:ClusterListener"/>'
           '</Cluster></Host></Engine></Service></Server>')
    server = Digester().parse_string(xml, source="server.xml")
    host = server.services[0].container.find_child("localhost")
    cluster = host.cluster
    assert cluster.container is host and cluster.channel_send_options == 6 and cluster.get_cluster_name() == "c1"
    [listener] = cluster.cluster_listeners
    assert type(listener) is ClusterListener and listener.cluster is cluster
    assert not listener.accept(ClusterMessage("session"))


def test_replication_valve_filter_takes_a_tomcat6_list_and_a_regex():
    from pycat.ha.replication_valve import ReplicationValve
    valve = ReplicationValve()
    # the cluster how-to's example (Tomcat 6: a ";"-separated list of patterns)
    assert attrs.set_property(valve, "filter", r".*\.gif;.*\.js;.*\.jpg;.*\.png;.*\.htm;.*\.html;.*\.css;.*\.txt;")
    assert valve.filter.fullmatch("/app/logo.gif") and valve.filter.fullmatch("/app/x/site.css")
    assert not valve.filter.fullmatch("/app/count") and not valve.filter.fullmatch("/app/a.gif.py")
    # Tomcat 7+: one regex
    assert attrs.set_property(valve, "filter", r".*\.(gif|css)")
    assert valve.filter.fullmatch("/app/logo.gif") and not valve.filter.fullmatch("/app/count")
