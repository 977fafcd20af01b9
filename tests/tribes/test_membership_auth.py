"""Membership records under AuthInterceptor, and the bounded member table.

Anyone who can reach the multicast group can announce members, and a made-up record whose port
is any listening socket passes TcpFailureDetector's probe. With an AuthInterceptor in the
channel, records are signed under the cluster secret and the others ignored; without one (the
positive control) the flood gets in, but only up to maxMembers.
"""
import logging
import os
import socket as pysocket

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer
from waiting import unique_mcast_group, wait_for

from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.group.interceptors.auth import AuthInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from pycat.tribes.member import SHUTDOWN_PAYLOAD, Member
from pycat.tribes.membership.mcast import McastService
from pycat.tribes.transport.receiver import NioReceiver

from _channel_fakes import MemberWatch

pytestmark = pytest.mark.timeout(90)
SECRET = "cluster secret"


def auth(secret=SECRET, **attrs):
    a = AuthInterceptor()
    a.secret = secret
    for k, v in attrs.items():
        setattr(a, k, v)
    return a


def local(payload=b"", port=4000):
    return Member.local("127.0.0.1", port, payload=payload)


# -- the record signature (pure) -----------------------------------------------------------------
def test_signed_record_verifies_and_gives_back_the_configured_payload():
    me = local(b"node-a")
    record = auth().sign_record(me)
    seen = Member.decode(record)
    assert seen == me and seen.payload != b"node-a"  # the signature travels in the payload field
    assert auth().verify_record(seen) == (b"node-a", None)
    assert me.payload == b"node-a" and Member.decode(me.encode()).payload == b"node-a"  # our own member untouched


def test_unsigned_wrong_secret_tampered_and_stale_records_are_refused():
    me = local(b"node-a")
    now = 1_700_000_000_000
    signed = Member.decode(auth().sign_record(me, now=now))
    checker = auth()
    assert checker.verify_record(signed, now=now + 59_000)[0] == b"node-a"  # positive control
    assert checker.verify_record(Member.decode(me.encode()), now=now) == (None, "unsigned member record")
    assert checker.verify_record(Member.decode(auth("guess").sign_record(me, now=now)), now=now)[1] \
        == "member record with a wrong signature"
    # every field is covered: another port, a goodbye, another alive time, another payload
    for field, value in (("port", 4001), ("command", SHUTDOWN_PAYLOAD), ("alive_time", 10 ** 9)):
        forged = signed.copy()
        setattr(forged, field, value)
        assert checker.verify_record(Member.decode(forged.encode(refresh_alive=False)), now=now)[0] is None, field
    forged = signed.copy()
    forged.payload = b"node-b" + signed.payload[6:]
    assert checker.verify_record(Member.decode(forged.encode(refresh_alive=False)), now=now)[0] is None
    # a replay once the window has passed (either way: clocks apart look the same)
    assert "away from our clock" in checker.verify_record(signed, now=now + 61_000)[1]
    assert "away from our clock" in checker.verify_record(signed, now=now - 61_000)[1]
    assert auth(member_window_time=-1).verify_record(signed, now=now + 10 ** 9)[0] == b"node-a"


def test_service_ignores_unverified_records_without_sockets(caplog):
    """McastService's handling of datagrams, driven directly: signed records join, the rest are
    ignored and counted, and the warnings come once per source host."""
    svc = McastService()
    svc.set_local_member_properties("127.0.0.1", 4000)
    svc.record_authenticator = auth()
    good = local(b"peer", port=4001)
    with caplog.at_level(logging.WARNING):
        for i in range(20):
            svc.datagram_received(local(port=5000 + i).encode(), ("127.0.0.5", 45564))
        svc.datagram_received(auth("guess").sign_record(local(port=6000)), ("127.0.0.6", 45564))
        svc.datagram_received(auth().sign_record(good), ("127.0.0.1", 45564))
    assert svc.get_members() == [good] and svc.get_members()[0].payload == b"peer"
    assert svc.unauthenticated == 21
    ignoring = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(ignoring) == 2 and "unsigned" in ignoring[0] and "wrong signature" in ignoring[1]


# -- over real multicast -------------------------------------------------------------------------
@pytest.fixture
def group():
    return unique_mcast_group()


@pytest.fixture
def any_listener():
    """A TCP port that accepts and reads anything: what a forged record points at."""
    def swallow(sock, _):
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
    server = StreamServer(("127.0.0.1", 0), swallow)
    server.start()
    yield server.server_port
    server.stop()


@pytest.fixture
def channels():
    made = []
    yield made
    for c in made:
        c.stop()


def make_channel(made, group, *interceptors, payload=b"", max_members=None, drop_time=2000):
    c = GroupChannel()
    c.heartbeat_sleeptime = 200
    m = McastService()
    m.address, m.port = group
    m.bind, m.frequency, m.drop_time = "127.0.0.1", 100, drop_time
    m.payload = payload
    if max_members is not None:
        m.max_members = max_members
    c.set_membership(m)
    r = NioReceiver()
    r.address, r.port = "127.0.0.1", 0
    c.set_receiver(r)
    for i in interceptors:
        c.add_interceptor(i)
    c.watch = MemberWatch()
    c.add_membership_listener(c.watch)
    made.append(c)
    return c


def forge(group, records, seen):
    """Multicast each record to the group, pacing on seen() (records handled so far) so the
    socket buffers never overflow: every record sent is one the node judged."""
    s = socket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
    s.setsockopt(pysocket.IPPROTO_IP, pysocket.IP_MULTICAST_IF, pysocket.inet_aton("127.0.0.1"))
    s.setsockopt(pysocket.IPPROTO_IP, pysocket.IP_MULTICAST_LOOP, 1)
    s.setsockopt(pysocket.IPPROTO_IP, pysocket.IP_MULTICAST_TTL, 1)
    try:
        for i, record in enumerate(records, 1):
            s.sendto(record, group)
            if i % 50 == 0:
                wait_for(lambda: seen() >= i, what="%d forged records handled" % i)
    finally:
        s.close()


def test_forged_member_flood_is_ignored_with_auth(channels, group, any_listener, caplog):
    """1000 made-up records pointing at a live port: none becomes a member of a node running
    AuthInterceptor, while a real node with the secret joins (and its configured payload is
    what listeners see)."""
    a = make_channel(channels, group, TcpFailureDetector(), auth())
    b = make_channel(channels, group, TcpFailureDetector(), auth(), payload=b"node-b")
    svc = a.membership_service
    with caplog.at_level(logging.WARNING):
        gevent.joinall([gevent.spawn(c.start) for c in (a, b)], raise_error=True)
        wait_for(lambda: a.watch.members == [b.get_local_member()], what="the real member joining")
        assert a.watch.members[0].payload == b"node-b"
        forged = [local(os.urandom(8), port=any_listener).encode() for _ in range(1000)]
        forged.append(auth("guess").sign_record(local(port=any_listener)))
        forge(group, forged, lambda: svc.unauthenticated)
        wait_for(lambda: svc.unauthenticated == b.membership_service.unauthenticated == 1001,
                 what="every forged record judged by both nodes")
    assert svc.get_members() == [b.get_local_member()] and len(svc.membership) == 1
    assert a.get_members() == [b.get_local_member()] and a.watch.added == [b.get_local_member()]
    assert b.membership_service.unauthenticated == 1001  # every node ignores them
    # 2002 records ignored, one source host: one line from each of the two nodes
    assert len([r for r in caplog.records if "ignoring" in r.getMessage()]) == 2


def test_forged_member_flood_gets_in_without_auth_but_only_up_to_max_members(channels, group, any_listener,
                                                                             caplog):
    """The positive control: without AuthInterceptor the same flood passes TcpFailureDetector
    (the port answers), and what bounds it is maxMembers; a full table is logged once."""
    # forged records are sent once: a long dropTime keeps them in the table while we look
    a = make_channel(channels, group, TcpFailureDetector(), max_members=50, drop_time=30000)
    svc = a.membership_service
    handled = []
    original = svc.member_data_received
    svc.member_data_received = lambda m, source=None: (handled.append(m), original(m, source))
    with caplog.at_level(logging.WARNING):
        a.start()
        forged = [local(port=any_listener).encode() for _ in range(200)]
        forge(group, forged, lambda: len(handled))
        wait_for(lambda: len(handled) >= 200, what="every forged record handled")
        wait_for(lambda: len(a.get_members()) == 50, timeout=30, what="50 forged members past the probe")
    assert len(svc.membership) == 50 and svc.membership.refused == 150
    assert len([r for r in caplog.records if "member table full" in r.getMessage()]) == 1
