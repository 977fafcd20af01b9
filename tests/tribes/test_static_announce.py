"""Static membership announcements (membership/static_protocol.py, membership/static.py): the wire
form and what a received one does to the member table (pure), then real channels over loopback
(GroupChannel + NioReceiver + StaticMembershipService + TcpFailureDetector): a starting node and
the running ones know each other when its start returns, a restart is seen as one, a stop is
heard at once, and only listed (and, with an AuthInterceptor, signed) members are believed."""
import socket as pysocket

import pytest

from pycat.errors import ProtocolError
from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.group.interceptors.auth import AuthInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from pycat.tribes.member import SHUTDOWN_PAYLOAD, Member
from pycat.tribes.membership import static_protocol as sp
from pycat.tribes.membership.membership import Membership
from pycat.tribes.membership.static import StaticMember, StaticMembershipService
from pycat.tribes.transport.receiver import NioReceiver

from _channel_fakes import MemberWatch

pytestmark = pytest.mark.timeout(60)


# -- pure: wire form and table changes ------------------------------------------------------------
def _peer(uid=1, port=4001, alive=0, command=b""):
    return Member(bytes([127, 0, 0, 1]), port, unique_id=bytes([uid] * 16), alive_time=alive, command=command)


def _announced(member):
    """member as the receiving side decodes it from an announcement."""
    return sp.decode(sp.encode(member.encode(refresh_alive=False)))


def test_wire_form_and_kinds():
    start = _announced(_peer(command=sp.START_COMMAND, alive=7))
    assert (sp.kind_of(start), start.alive_time, start.port) == (sp.START, 7, 4001)
    assert sp.kind_of(_announced(_peer(command=SHUTDOWN_PAYLOAD))) == sp.STOP
    assert sp.kind_of(_announced(_peer())) == sp.PING
    assert sp.encode(b"x").startswith(sp.MAGIC) and sp.is_announcement(sp.MAGIC + b"x")
    assert not sp.is_announcement(b"PCSM\x02\x00")            # another format version is not ours
    for bad in (b"hello", sp.MAGIC, sp.MAGIC + b"TRIBES-B\x01\x00garbage"):
        with pytest.raises(ProtocolError):
            sp.decode(bad)
    listed = [StaticMember("127.0.0.1", 4001, unique_id=bytes([1] * 16))]
    assert sp.listed(listed, start) is listed[0]
    assert sp.listed(listed, _peer(uid=2)) is None            # same address, another identity
    assert sp.listed(listed, _peer(port=4002)) is None


def test_what_an_announcement_does_to_the_table():
    table = Membership(clock=lambda: 0)
    # a ping from an unknown member adds it; its record is what the table keeps
    events = sp.received(table, _announced(_peer(alive=100)))
    assert [(name, m.alive_time) for name, m in events] == [(sp.ADDED, 100)]
    # a ping from a known one refreshes it, no event
    assert sp.received(table, _announced(_peer(alive=200)), now=5) == []
    assert table.get_member(_peer()).alive_time == 200 and table.last_heard(_peer()) == 5
    # our own contact confirms it without overwriting its record with the configured one
    configured = StaticMember("127.0.0.1", 4001, unique_id=bytes([1] * 16))
    assert sp.reached(table, configured, now=6) == []
    assert table.get_member(_peer()).alive_time == 200 and table.last_heard(_peer()) == 6
    # a START from a member still in the table: it restarted; gone (as a graceful departure), then added
    events = sp.received(table, _announced(_peer(alive=3, command=sp.START_COMMAND)))
    assert [(name, m.is_shutdown, m.alive_time) for name, m in events] == [(sp.GONE, True, 200),
                                                                          (sp.ADDED, False, 3)]
    assert table.get_member(_peer()).command == b""           # the kind is not kept as the member's command
    # a STOP removes it; a STOP from someone not in the table changes nothing
    events = sp.received(table, _announced(_peer(command=SHUTDOWN_PAYLOAD)))
    assert [(name, m.is_shutdown) for name, m in events] == [(sp.GONE, True)] and not table.has_members()
    assert sp.received(table, _announced(_peer(command=SHUTDOWN_PAYLOAD))) == []
    # a START from a member not in the table is a plain arrival
    assert [name for name, _ in sp.received(table, _announced(_peer(command=sp.START_COMMAND)))] == [sp.ADDED]
    # reached: a member never heard of is added as configured
    assert sp.reached(table, StaticMember("127.0.0.1", 4002, unique_id=bytes([2] * 16))) == [
        (sp.ADDED, StaticMember("127.0.0.1", 4002, unique_id=bytes([2] * 16)))]


# -- real channels ---------------------------------------------------------------------------------
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


class Node:
    """One channel: a receiver on ``port``, static members ``listed`` ((port, uid) pairs, this
    node's own included), a TcpFailureDetector, optionally an AuthInterceptor with ``secret``."""

    def __init__(self, port, uid, listed, secret=None):
        self.channel = GroupChannel()
        self.channel.heartbeat_enabled = False     # the tests beat by hand, if at all
        self.service = StaticMembershipService()
        self.service.connect_timeout = 300
        for p, u in listed:
            self.service.add_static_member(StaticMember("127.0.0.1", p, unique_id=bytes([u] * 16)))
        self.channel.set_membership(self.service)
        receiver = NioReceiver()
        receiver.address, receiver.port, receiver.auto_bind = "127.0.0.1", port, 1
        self.channel.set_receiver(receiver)
        self.channel.add_interceptor(TcpFailureDetector())
        if secret is not None:
            auth = AuthInterceptor()
            auth.secret = secret
            self.channel.add_interceptor(auth)
        self.watch = MemberWatch()
        self.channel.add_membership_listener(self.watch)
        self.port, self.uid = port, uid

    def ports(self):
        """The ports of the members this node's channel (its whole stack) has."""
        return sorted(m.port for m in self.channel.get_members())


@pytest.fixture
def nodes():
    made = []

    def make(*args, **kwargs):
        node = Node(*args, **kwargs)
        made.append(node)
        return node
    yield make
    for node in made:
        node.channel.stop()


def test_members_know_each_other_when_the_start_returns(nodes):
    ports = free_ports(3)
    listed = list(zip(ports, (1, 2, 3)))
    a, b = nodes(ports[0], 1, listed), nodes(ports[1], 2, listed)
    a.channel.start()
    assert a.ports() == [] and a.watch.added == []             # alone: the third one never runs
    b.channel.start()
    # no heartbeat ran: b's START made a add it (through its whole stack), a's answer made b add a
    assert a.ports() == [ports[1]] and [m.port for m in a.watch.added] == [ports[1]]
    assert b.ports() == [ports[0]] and [m.port for m in b.watch.added] == [ports[0]]
    # a answered b's START with a ping: b holds a's own record (its alive time), not the configured one
    assert b.service.get_members()[0].alive_time > 0
    assert b.channel.send(b.channel.get_members(), b"hello", 6)

    # a graceful stop: a has dropped b, as a departure, when b's stop returns
    b.channel.stop()
    assert a.ports() == [] and [(m.port, m.is_shutdown) for m in a.watch.gone] == [(ports[1], True)]
    b.channel.start()
    assert a.ports() == [ports[1]] and b.ports() == [ports[0]]
    assert [m.port for m in a.watch.added] == [ports[1], ports[1]]

    # a crash (no goodbye): a still lists b when b comes back; b's START is a restart, so a's stack
    # sees b go and come back (whatever a held for b's previous run is let go)
    b.service._leave = lambda: None
    b.channel.stop()
    assert a.ports() == [ports[1]]
    b.channel.start()
    assert a.ports() == [ports[1]] and b.ports() == [ports[0]]
    assert [m.port for m in a.watch.gone] == [ports[1], ports[1]]
    assert [m.port for m in a.watch.added] == [ports[1], ports[1], ports[1]]


def test_only_listed_members_are_believed(nodes):
    ports = free_ports(3)
    a = nodes(ports[0], 1, [(ports[0], 1), (ports[1], 2)])            # a lists b, not c
    b = nodes(ports[1], 2, [(ports[0], 1), (ports[1], 2)])
    c = nodes(ports[2], 3, [(ports[0], 1), (ports[2], 3)])            # c lists a
    a.channel.start()
    c.channel.start()
    b.channel.start()
    assert a.ports() == [ports[1]]            # b, listed, is in; c's announcement was ignored
    assert c.ports() == [ports[0]]            # (c itself found a's port answering)
    a.channel.heartbeat()                     # c's pings do not get it in either
    c.channel.heartbeat()
    assert a.ports() == [ports[1]]
    assert a.service.get_member(StaticMember("127.0.0.1", ports[2], unique_id=bytes([3] * 16))) is None


def test_with_an_auth_interceptor_only_signed_announcements_count(nodes):
    ports = free_ports(3)
    listed = list(zip(ports, (1, 2, 3)))
    a = nodes(ports[0], 1, listed, secret="s3cret")
    b = nodes(ports[1], 2, listed)                              # signs nothing
    c = nodes(ports[2], 3, listed, secret="s3cret")
    a.channel.start()
    b.channel.start()
    c.channel.start()
    assert a.ports() == [ports[2]]            # c signed its START under the secret; b did not
    assert a.service.unauthenticated >= 1
    assert c.ports() == [ports[0]]            # c has a from a's signed answer; b's port answering is not enough
    for node in (a, b, c):                    # nor do pings change that, either way
        node.channel.heartbeat()
    assert a.ports() == [ports[2]] and c.ports() == [ports[0]]
    assert b.ports() == sorted([ports[0], ports[2]])  # (b, which authenticates nothing, takes answering ports)


# -- the older form: StaticMembershipInterceptor ----------------------------------------------------
def legacy_channel(port, uid, peer_port, peer_uid):
    """The how-to's legacy static channel: TcpPing, TcpFailureDetector, StaticMembershipInterceptor,
    started with SND_RX | SND_TX only (no membership service at all)."""
    from pycat.tribes.group.interceptors.static_membership import StaticMembershipInterceptor
    from pycat.tribes.group.interceptors.tcp_ping import TcpPingInterceptor
    channel = GroupChannel()
    channel.heartbeat_enabled = False
    receiver = NioReceiver()
    receiver.address, receiver.port, receiver.auto_bind = "127.0.0.1", port, 1
    channel.set_receiver(receiver)
    channel.add_interceptor(TcpPingInterceptor())
    channel.add_interceptor(TcpFailureDetector())
    static = StaticMembershipInterceptor()
    static.set_local_member(StaticMember(unique_id=bytes([uid] * 16)))
    static.add_member(StaticMember("127.0.0.1", peer_port, unique_id=bytes([peer_uid] * 16)))
    channel.add_interceptor(static)
    watch = MemberWatch()
    channel.add_membership_listener(watch)
    return channel, watch


def test_the_interceptor_form_knows_the_members_when_the_start_returns():
    from pycat.tribes import channel as ch
    ports = free_ports(2)
    a, seen_by_a = legacy_channel(ports[0], 1, ports[1], 2)
    b, seen_by_b = legacy_channel(ports[1], 2, ports[0], 1)
    try:
        a.start_services(ch.SND_RX | ch.SND_TX)
        assert seen_by_a.members == [] and a.get_members() == []   # b is down: checked, not added
        b.start_services(ch.SND_RX | ch.SND_TX)
        # b's start checked a and told it (synchronously): both know each other now
        assert [m.port for m in b.get_members()] == [ports[0]] and [m.port for m in seen_by_b.members] == [ports[0]]
        assert [m.port for m in a.get_members()] == [ports[1]] and [m.port for m in seen_by_a.members] == [ports[1]]
        b.stop_services(ch.SND_RX | ch.SND_TX)
        assert seen_by_a.members == [] and [m.is_shutdown for m in seen_by_a.gone] == [True]
        b.start_services(ch.SND_RX | ch.SND_TX)
        assert [m.port for m in seen_by_a.members] == [ports[1]] and len(seen_by_a.added) == 2
        # a crash (no shutdown notification): a still has b; b's next start is seen as a restart
        static = b.interceptors[-1]
        static._notify = lambda members, data, options=0: None
        b.stop_services(ch.SND_RX | ch.SND_TX)
        del static._notify
        assert [m.port for m in seen_by_a.members] == [ports[1]] and len(seen_by_a.gone) == 1
        b.start_services(ch.SND_RX | ch.SND_TX)
        assert [m.port for m in seen_by_a.members] == [ports[1]]
        assert (len(seen_by_a.gone), len(seen_by_a.added)) == (2, 3)
    finally:
        a.stop()
        b.stop()
