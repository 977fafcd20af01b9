"""McastService over real loopback multicast: arrival, graceful and crashed departure, levels, floods.

Each test uses its own random group and port, so parallel runs never see each other. Timing
values are small (frequency 100 ms) and every wait polls a condition with a deadline.
"""
import random
import socket
import time

import gevent
import gevent.pool
import pytest
from waiting import unique_mcast_group, wait_for

from pycat.attrs import set_property
from pycat.errors import ChannelError, LifecycleError
from pycat.lifecycle import LifecycleState
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.io.framing import encode_frame
from pycat.tribes.member import MEMBER_BEGIN, Member
from pycat.tribes.membership.mcast import MBR_RX, MBR_TX, McastService

pytestmark = pytest.mark.timeout(60)
FREQ, DROP = 100, 1000


class Recorder:
    def __init__(self):
        self.added, self.gone, self.messages = [], [], []

    def member_added(self, member):
        self.added.append(member)

    def member_disappeared(self, member):
        self.gone.append(member)


wait_until = wait_for


@pytest.fixture
def mcast_group():
    return unique_mcast_group()


@pytest.fixture
def make_mcast(mcast_group):
    made = []

    def make(tcp_port, **attrs):
        svc = McastService()
        svc.address, svc.port = mcast_group
        svc.bind, svc.frequency, svc.drop_time = "127.0.0.1", FREQ, DROP
        for name, value in attrs.items():
            setattr(svc, name, value)
        svc.set_local_member_properties("127.0.0.1", tcp_port)
        svc.membership_listener = Recorder()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop()


def start_all(services, level=None):
    group = gevent.pool.Group()
    for svc in services:
        if level is None:
            group.spawn(svc.start)
        else:
            group.spawn(svc.start_services, level)
    group.join(raise_error=True)


def test_attributes_follow_tomcat():
    svc = McastService()
    assert (svc.address, svc.port, svc.frequency, svc.drop_time, svc.bind) == ("228.0.0.4", 45564, 500, 3000, None)
    assert (svc.recovery_enabled, svc.recovery_counter, svc.recovery_sleep_time) == (True, 10, 5000)
    assert (svc.local_loopback_disabled, svc.domain, svc.ttl, svc.so_timeout) == (False, b"", 1, -1)
    for xml, value in (("mcastAddr", "228.1.2.3"), ("port", "45000"), ("frequency", "250"), ("dropTime", "900"),
                       ("bind", "127.0.0.1"), ("soTimeout", "50"), ("localLoopbackDisabled", "true"),
                       ("recoveryEnabled", "false"), ("domain", "{1,2,-3}")):
        assert set_property(svc, xml, value)
    assert (svc.address, svc.port, svc.frequency, svc.drop_time, svc.so_timeout) == ("228.1.2.3", 45000, 250, 900, 50)
    assert svc.local_loopback_disabled and not svc.recovery_enabled and svc.domain == b"\x01\x02\xfd"
    set_property(svc, "domain", "cluster-\xe9")
    assert svc.domain == b"cluster-\xe9"


def test_two_services_find_each_other_and_graceful_stop_is_immediate(make_mcast):
    # a long dropTime, so "at once" is unmistakable even on a loaded machine
    a = make_mcast(4000, domain="{1,2,3}", payload=b"node-a", drop_time=5000)
    b = make_mcast(4001, domain="other", drop_time=5000)
    started = time.monotonic()
    start_all([a, b])
    assert time.monotonic() - started >= 2 * FREQ / 1000.0  # start waits 2 x frequency, like Tomcat
    wait_until(lambda: a.has_members() and b.has_members(), what="mutual discovery")
    (seen_b,) = a.get_members()
    (seen_a,) = b.get_members()
    assert seen_b == b.local_member and seen_a == a.local_member  # never ourselves
    assert seen_a.domain == b"\x01\x02\x03" and seen_a.payload == b"node-a" and seen_b.domain == b"other"
    assert a.get_member(b.local_member) is seen_b and a.find_member_by_name("tcp://127.0.0.1:4001") is seen_b
    wait_until(lambda: a.membership_listener.added == [seen_b], what="member_added event")

    # a payload change goes out with the next heartbeat
    a.payload = b"changed"
    wait_until(lambda: seen_a.payload == b"changed", what="payload update")

    stopped = time.monotonic()
    b.stop()
    assert b.state is LifecycleState.STOPPED and b.levels == 0
    wait_until(lambda: not a.has_members(), timeout=2.0, what="immediate removal")
    wait_until(lambda: a.membership_listener.gone, what="member_disappeared event")
    assert time.monotonic() - stopped < 2.0  # well before dropTime (5 s)
    assert a.membership_listener.gone[0].is_shutdown


def test_crashed_member_is_dropped_after_drop_time(make_mcast):
    a, b = make_mcast(4000), make_mcast(4001)
    start_all([a, b])
    wait_until(lambda: a.has_members(), what="discovery")
    crashed = time.monotonic()
    b.greenlets.kill()  # heartbeats stop, no goodbye
    wait_until(lambda: not a.has_members(), timeout=DROP / 1000.0 * 5, what="expiry")
    elapsed = time.monotonic() - crashed
    assert elapsed >= DROP / 1000.0 - 2 * FREQ / 1000.0  # not before dropTime (less the last heartbeat's age)
    wait_until(lambda: len(a.membership_listener.gone) == 1, what="member_disappeared event")
    assert not a.membership_listener.gone[0].is_shutdown


def test_ten_services_each_see_nine(make_mcast):
    services = [make_mcast(4000 + i, payload=("Channel-%d" % i).encode()) for i in range(10)]
    start_all(services)
    for svc in services:
        wait_until(lambda: len(svc.get_members()) == 9, what="9 members")
        assert {m.payload for m in svc.get_members()} == {("Channel-%d" % i).encode() for i in range(10)} - {svc.payload}
    # longest-running first
    members = services[0].get_members()
    assert [m.alive_time for m in members] == sorted((m.alive_time for m in members), reverse=True)
    for svc in services:
        assert len(svc.membership_listener.added) == 9


def test_levels_like_tomcat(make_mcast):
    a, b = make_mcast(4000), make_mcast(4001)
    a.start()
    b.start_services(MBR_RX)
    with pytest.raises(LifecycleError):
        b.start_services(MBR_RX)  # the same level twice is an error when asked for explicitly
    with pytest.raises(ValueError):
        b.start_services(1)
    assert not a.has_members()  # b only listens: nobody hears of it
    wait_until(lambda: b.has_members(), what="b hears a")
    b.start_services(MBR_TX)
    assert b.levels == MBR_RX | MBR_TX
    b.start()  # Lifecycle start: idempotent
    wait_until(lambda: a.has_members(), what="a hears b")
    assert b.stop_services(MBR_TX) is False and b.state is LifecycleState.STARTED
    wait_until(lambda: not a.has_members(), timeout=DROP / 1000.0 * 3, what="expiry of a silent member")
    assert b.has_members()  # still receiving
    assert b.stop_services(MBR_RX) is True and b.state is LifecycleState.STOPPED
    # and it can start again, with a new socket
    b.start()
    wait_until(lambda: a.has_members() and b.has_members(), what="rediscovery")


def test_start_needs_a_local_member():
    with pytest.raises(LifecycleError):
        McastService().start()


def test_broadcast_reaches_others_only(make_mcast):
    a, b = make_mcast(4000), make_mcast(4001)
    got_a, got_b = [], []
    a.message_listener, b.message_listener = got_a.append, got_b.append
    with pytest.raises(ChannelError):
        a.broadcast(ChannelData.create(64, a.local_member, b"too early"))
    start_all([a, b])
    a.broadcast(ChannelData.create(64, a.local_member, b"hello"))
    a.broadcast(ChannelData.create(64, a.local_member, b"framed").encode_frame())
    a.broadcast(ChannelData.create(64, a.local_member, b"body").encode())
    wait_until(lambda: len(got_b) == 3, what="3 broadcasts")
    assert [m.message for m in got_b] == [b"hello", b"framed", b"body"]
    assert got_b[0].address == a.local_member and got_a == []
    with pytest.raises(ChannelError):
        a.broadcast(ChannelData.create(64, a.local_member, b"x" * 70000))


def test_garbage_flood_is_dropped_and_members_stay(make_mcast, mcast_group):
    a, b = make_mcast(4000), make_mcast(4001)
    start_all([a, b])
    wait_until(lambda: a.has_members() and b.has_members(), what="discovery")
    rng = random.Random(11)
    forged = Member("127.0.0.1", 4999).encode()
    kinds = [lambda: rng.randbytes(rng.randint(0, 1400)),
             lambda: MEMBER_BEGIN + rng.randbytes(rng.randint(0, 200)),
             lambda: b"FLT2002" + rng.randbytes(rng.randint(0, 200)),
             lambda: encode_frame(rng.randbytes(100)),
             lambda: forged[:-1]]
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sent = 0
    try:
        deadline = time.monotonic() + 1.5 * DROP / 1000.0  # longer than dropTime: members must survive it
        while time.monotonic() < deadline:
            for _ in range(100):
                flood.sendto(rng.choice(kinds)(), mcast_group)
                sent += 1
            gevent.sleep(0.002)
    finally:
        flood.close()
    wait_until(lambda: a.dropped > sent // 4, what="drops counted")
    assert a.state is LifecycleState.STARTED and b.state is LifecycleState.STARTED
    assert [m.port for m in a.get_members()] == [4001] and [m.port for m in b.get_members()] == [4000]
    assert a.membership_listener.gone == [] and b.membership_listener.gone == []
    a.datagram_received(b"")  # an empty datagram is garbage too, never an exception


def test_listener_objects_and_failing_listeners_do_not_break_the_service(make_mcast):
    a, b = make_mcast(4000), make_mcast(4001)

    class Channelish:
        def __init__(self):
            self.got = []

        def message_received(self, message):
            self.got.append(message)
            raise RuntimeError("listener bug")

    class BadMembershipListener:
        def member_added(self, member):
            raise RuntimeError("listener bug")

        member_disappeared = member_added

    b.message_listener = Channelish()
    b.membership_listener = BadMembershipListener()
    start_all([a, b])
    a.broadcast(ChannelData.create(64, a.local_member, b"one"))
    a.broadcast(ChannelData.create(64, a.local_member, b"two"))
    wait_until(lambda: len(b.message_listener.got) == 2, what="both broadcasts despite the failing listener")
    assert b.has_members() and b.state is LifecycleState.STARTED


def test_socket_recovery_after_repeated_errors(make_mcast):
    a = make_mcast(4000, recovery_counter=2, recovery_sleep_time=100)
    b = make_mcast(4001)
    start_all([a, b])
    wait_until(lambda: a.has_members() and b.has_members(), what="discovery")
    broken = a._sock
    broken.close()  # the interface went away under us
    wait_until(lambda: a._sock is not broken and a._sock is not None, what="a new socket")
    a.membership.clear()
    wait_until(lambda: a.has_members(), what="a hears b again")
    b.membership.clear()
    wait_until(lambda: b.has_members(), what="b hears a again")
    assert a.state is LifecycleState.STARTED
