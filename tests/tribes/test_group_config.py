"""Every <Channel> of the seed cluster-howto builds from XML (className + attributes + parent
methods, as the startup digester will do it) and runs: two nodes find each other and talk."""
import pathlib
import socket as pysocket

import gevent
import pytest
from lxml import etree

from pycat import attrs, reflect
from pycat.tribes import channel as ch

from _channel_fakes import Collect, MemberWatch, wait_for

pytestmark = pytest.mark.timeout(60)

# the seed how-to's three <Channel> configurations (tests/fixtures/README.md)
HOWTO_CHANNELS = pathlib.Path(__file__).parents[1] / "fixtures" / "howto-channels.xml"

# element -> (default className, parent method), as the startup rule table will say
RULES = {
    "Channel": ("org.apache.catalina.tribes.group.GroupChannel", None),
    "Membership": ("org.apache.catalina.tribes.membership.McastService", "set_membership"),
    "Receiver": ("org.apache.catalina.tribes.transport.nio.NioReceiver", "set_receiver"),
    "Sender": ("org.apache.catalina.tribes.transport.ReplicationTransmitter", "set_sender"),
    "Transport": ("org.apache.catalina.tribes.transport.nio.PooledParallelSender", "set_transport"),
    "Interceptor": (None, "add_interceptor"),
    "Member": ("org.apache.catalina.tribes.membership.StaticMember", "add_member"),
    "LocalMember": ("org.apache.catalina.tribes.membership.StaticMember", "set_local_member"),
}


def howto_channels():
    root = etree.parse(str(HOWTO_CHANNELS)).getroot()
    return [etree.tostring(el, encoding="unicode") for el in root if el.tag == "Channel"]


def build(element, overrides):
    default, _ = RULES[element.tag]
    cls = reflect.load_class(element.get("className") or default)
    obj = cls()
    for name, value in element.attrib.items():
        if name == "className":
            continue
        value = overrides.get((element.tag, name), value)
        assert attrs.set_property(obj, name, value), "%s has no attribute %s" % (cls.__name__, name)
    for name, value in overrides.items():
        if name[0] == element.tag and name[1] not in element.attrib:
            attrs.set_property(obj, name[1], value)
    for child in element:
        if not isinstance(child.tag, str):
            continue
        method = RULES[child.tag][1]
        if method == "add_member" and not hasattr(obj, method):
            method = "add_static_member"  # <Member> under <Membership> (Tomcat's addStaticMember)
        getattr(obj, method)(build(child, overrides))
    return obj


def mcast_port():
    s = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_the_seed_has_channels():
    assert len(howto_channels()) == 3


@pytest.mark.parametrize("index", range(3))
def test_howto_channel_builds_and_runs(index):
    xml = howto_channels()[index]
    # a test-unique multicast port on loopback, so parallel runs and real clusters never meet
    overrides = {("Membership", "port"): str(mcast_port()), ("Membership", "bind"): "127.0.0.1",
                 ("Membership", "frequency"): "100"}
    nodes = [build(etree.fromstring(xml), overrides) for _ in range(2)]
    a, b = nodes
    kinds = [type(i).__name__ for i in a.interceptors]
    assert kinds[:2] == ["TcpFailureDetector", "MessageDispatchInterceptor"]
    assert a.membership_service.drop_time == 3000 and a.receiver.max_threads == 6
    inbox, watch = Collect(), MemberWatch()
    b.add_channel_listener(inbox)
    a.add_membership_listener(watch)
    try:
        gevent.joinall([gevent.spawn(n.start_services, ch.DEFAULT) for n in nodes], raise_error=True)
        local = a.get_local_member()
        if not a.receiver.advertised_host.startswith("127."):
            assert not local.hostname.startswith("127.")  # address="auto" never advertises loopback
        wait_for(lambda: len(watch.members) == 1, timeout=5)
        a.send(a.get_members(), b"howto %d" % index, 6)
        a.send(a.get_members(), {"async": True}, 8)
        wait_for(lambda: len(inbox.messages) == 2)
    finally:
        for n in nodes:
            n.stop()


LEGACY_STATIC = """
<Channel className="org.apache.catalina.tribes.group.GroupChannel">
  <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="127.0.0.1"
            port="{my_port}" autoBind="1"/>
  <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpPingInterceptor"/>
  <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
  <Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor"/>
  <Interceptor className="org.apache.catalina.tribes.group.interceptors.StaticMembershipInterceptor">
    <LocalMember className="org.apache.catalina.tribes.membership.StaticMember" uniqueId="{my_id}"/>
    <Member className="org.apache.catalina.tribes.membership.StaticMember" host="127.0.0.1"
            port="{peer_port}" uniqueId="{peer_id}"/>
  </Interceptor>
</Channel>
"""


MODERN_STATIC = """
<Channel className="org.apache.catalina.tribes.group.GroupChannel">
  <Membership className="org.apache.catalina.tribes.membership.StaticMembershipService"
              expirationTime="1000">
    <Member className="org.apache.catalina.tribes.membership.StaticMember"
            host="127.0.0.1" port="{port0}" uniqueId="{{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}}"/>
    <Member className="org.apache.catalina.tribes.membership.StaticMember"
            host="127.0.0.1" port="{port1}" uniqueId="{{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,0}}"/>
  </Membership>
  <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="127.0.0.1"
            port="{my_port}" autoBind="1"/>
  <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
  <Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor"/>
</Channel>
"""


def free_ports(n):
    socks = []
    for _ in range(n):
        s = pysocket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _uid(i):
    return "{%s}" % ",".join(str((i * 16 + k) % 256) for k in range(16))


def run_pair(xmls, start_flags=ch.DEFAULT):
    nodes = [build(etree.fromstring(x), {}) for x in xmls]
    inbox, watch = Collect(), MemberWatch()
    nodes[1].add_channel_listener(inbox)
    nodes[0].add_membership_listener(watch)
    for n in nodes:
        n.heartbeat_sleeptime = 100
    try:
        gevent.joinall([gevent.spawn(n.start_services, start_flags) for n in nodes], raise_error=True)
        wait_for(lambda: len(watch.members) == 1, timeout=5)
        nodes[0].send(nodes[0].get_members(), b"static hello", 6)
        assert inbox.messages == [b"static hello"]
        assert inbox.got[0][1] == nodes[0].get_local_member()
        nodes[1].stop()
        wait_for(lambda: watch.members == [], timeout=8)
    finally:
        for n in nodes:
            n.stop()


def test_modern_static_membership_service():
    p0, p1 = free_ports(2)
    run_pair([MODERN_STATIC.format(port0=p0, port1=p1, my_port=p) for p in (p0, p1)])


def test_legacy_static_membership_interceptor():
    p0, p1 = free_ports(2)
    xmls = [LEGACY_STATIC.format(my_port=p0, my_id=_uid(1), peer_port=p1, peer_id=_uid(2)),
            LEGACY_STATIC.format(my_port=p1, my_id=_uid(2), peer_port=p0, peer_id=_uid(1))]
    # channelStartOptions="3": no multicast membership at all
    run_pair(xmls, start_flags=ch.SND_RX | ch.SND_TX)
