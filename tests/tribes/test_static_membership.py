"""Static membership: configured members, TCP-probe liveness against real listening sockets."""
import time

import gevent
import gevent.server
import pytest
from waiting import wait_for

from pycat.attrs import ConversionError, set_property
from pycat.errors import LifecycleError
from pycat.lifecycle import LifecycleState
from pycat.tribes.membership.base import MBR_RX, MBR_TX
from pycat.tribes.membership.static import StaticMember, StaticMembershipService

pytestmark = pytest.mark.timeout(60)
IDS = ["{%s}" % ",".join(str((i + k) % 16) for i in range(16)) for k in range(4)]


class Recorder:
    def __init__(self):
        self.added, self.gone = [], []

    def member_added(self, member):
        self.added.append(member)

    def member_disappeared(self, member):
        self.gone.append(member)


def wait_until(condition, timeout=5.0, what="condition", tick=None):
    wait_for(condition, timeout, what, interval=0.02, tick=tick)


@pytest.fixture
def static_receivers():
    """Stand-ins for NioReceivers: TCP listeners on free ports that accept and close."""
    servers = []

    def listen(port=0):
        server = gevent.server.StreamServer(("127.0.0.1", port), lambda sock, addr: sock.close())
        server.start()
        servers.append(server)
        return server

    yield listen
    for server in servers:
        server.stop()


def _dead_port():
    server = gevent.server.StreamServer(("127.0.0.1", 0), lambda s, a: None)
    server.init_socket()
    port = server.address[1]
    server.close()
    return port


def _member(port, k, host="127.0.0.1"):
    m = StaticMember()
    for xml, value in (("host", host), ("port", str(port)), ("uniqueId", IDS[k])):
        assert set_property(m, xml, value)
    return m


def _service(ports, me, **attrs):
    svc = StaticMembershipService()
    for xml, value in attrs.items():
        assert set_property(svc, xml, value)
    for k, port in enumerate(ports):
        svc.add_member(_member(port, k))
    svc.set_local_member_properties("127.0.0.1", ports[me])
    svc.membership_listener = Recorder()
    return svc


def test_static_member_attributes():
    m = StaticMember()
    set_property(m, "host", "{127,0,0,1}")
    set_property(m, "port", "4000")
    set_property(m, "securePort", "4443")
    set_property(m, "domain", "{1,2,3}")
    set_property(m, "uniqueId", IDS[0])
    assert (m.hostname, m.port, m.secure_port) == ("127.0.0.1", 4000, 4443)
    assert (m.domain, m.unique_id) == (b"\x01\x02\x03", bytes(range(16)))
    set_property(m, "host", "{-64,-88,0,1}")  # Java bytes
    assert m.hostname == "192.168.0.1"
    set_property(m, "host", "{192,168,0,2}")  # what the Tomcat docs write
    assert m.hostname == "192.168.0.2"
    set_property(m, "host", "localhost")
    assert m.hostname == "127.0.0.1"
    set_property(m, "uniqueId", "{-1,-2,3,4,5,6,7,8,9,10,11,12,13,14,15,255}")
    assert m.unique_id[:2] == b"\xff\xfe" and m.unique_id[-1] == 255
    for bad in ("{1,2,3}", "{%s}" % ",".join(["1"] * 17), "{256,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}", "abc", "{a,b}"):
        with pytest.raises(ConversionError, match="uniqueId"):
            set_property(m, "uniqueId", bad)
    with pytest.raises(ConversionError, match="host"):
        set_property(m, "host", "{1,2,3}")
    assert m.encode(refresh_alive=False)  # a configured member has a valid record


def _timings(svc):
    return svc.connect_timeout, svc.expiration_time, svc.rpc_timeout, svc.use_thread, svc.ping_interval


def test_service_attributes():
    svc = StaticMembershipService()
    assert _timings(svc) == (500, 5000, 3000, False, 1000)
    for xml, value in (("connectTimeout", "200"), ("expirationTime", "700"), ("rpcTimeout", "100"),
                       ("useThread", "true"), ("pingInterval", "50")):
        assert set_property(svc, xml, value)
    assert _timings(svc) == (200, 700, 100, True, 50)


def test_two_services_find_each_other_dead_port_is_not_added(static_receivers):
    ra, rb = static_receivers(), static_receivers()
    ports = [ra.address[1], rb.address[1], _dead_port()]
    a, b = _service(ports, 0), _service(ports, 1)
    try:
        # the local member is the listed entry matching the receiver, with its configured unique id
        assert a.local_member.unique_id == bytes(range(16)) and a.local_member.is_local
        assert [m.port for m in a.static_members] == ports[1:]
        a.start_services(MBR_RX)
        assert not a.has_members()  # like Tomcat: nothing until both levels run
        a.start_services(MBR_TX)
        b.start()
        assert [m.port for m in a.get_members()] == [ports[1]]
        assert [m.port for m in b.get_members()] == [ports[0]]
        assert b.get_members()[0].unique_id == a.local_member.unique_id  # what b knows of a is a's identity
        wait_until(lambda: len(a.membership_listener.added) == 1, what="member_added event")
        a.broadcast(b"ignored")  # no multicast here: a no-op, as in Tomcat
    finally:
        a.stop()
        b.stop()
    assert a.state is LifecycleState.STOPPED


def test_unreachable_member_expires_on_heartbeat(static_receivers):
    ra, rb = static_receivers(), static_receivers()
    ports = [ra.address[1], rb.address[1]]
    a = _service(ports, 0, connectTimeout="200", expirationTime="300")
    a.start()
    try:
        assert a.has_members()
        rb.stop()  # b's receiver goes away
        closed = time.monotonic()
        wait_until(lambda: not a.has_members(), what="expiry", tick=a.heartbeat)
        assert time.monotonic() - closed >= 0.3
        wait_until(lambda: len(a.membership_listener.gone) == 1, what="member_disappeared event")
        # it comes back when its port answers again
        static_receivers(ports[1])
        wait_until(lambda: a.has_members(), what="return", tick=a.heartbeat)
    finally:
        a.stop()


def test_use_thread_pings_by_itself(static_receivers):
    ra = static_receivers()
    late = _dead_port()
    a = _service([ra.address[1], late], 0, useThread="true", pingInterval="50", connectTimeout="200")
    a.start()
    try:
        assert not a.has_members()
        static_receivers(late)
        wait_until(lambda: a.has_members(), what="member found by the ping greenlet")
    finally:
        a.stop()


def test_configured_local_member_and_missing_unique_id(static_receivers):
    ra = static_receivers()
    svc = StaticMembershipService()
    local = StaticMember()
    set_property(local, "uniqueId", IDS[3])
    svc.set_local_member(local)
    svc.add_member(_member(ra.address[1], 1))
    svc.set_local_member_properties("127.0.0.1", 4999)
    assert svc.local_member is local and local.port == 4999 and local.hostname == "127.0.0.1"
    unnamed = StaticMember()
    set_property(unnamed, "host", "127.0.0.1")
    set_property(unnamed, "port", "5000")
    svc.add_member(unnamed)
    with pytest.raises(LifecycleError, match="uniqueId"):
        svc.start()
    assert svc.state is LifecycleState.STOPPED and svc.levels == 0 and all(g.dead for g in svc.greenlets)
