"""Whole channels on 127.0.0.1: McastService (a test-unique port) + NioReceiver + PooledParallelSender.

Mirrors TestGroupChannelMemberArrival, TestDomainFilterInterceptor and TestTcpFailureDetector.
"""
import os
import socket as pysocket

import gevent
import pytest

from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.group.interceptors.domain_filter import DomainFilterInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from pycat.tribes.membership.mcast import McastService
from pycat.tribes.transport.receiver import NioReceiver

from _channel_fakes import Collect, MemberWatch, wait_for

pytestmark = pytest.mark.timeout(90)


def mcast_port():
    s = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fixed_tcp_port():
    """A free TCP port for a receiver that must bind exactly the port it was given (autoBind 0).
    Taken below the kernel's ephemeral range: a port from bind(0) is ephemeral, so any outgoing
    connection on the machine may take it between our check and the receiver's bind (EADDRINUSE)."""
    import random
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with pysocket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below %d" % low)


def make_channel(port, *interceptors, frequency=100, drop_time=1000, domain=None, payload=None):
    c = GroupChannel()
    c.heartbeat_sleeptime = 200
    m = McastService()
    m.address, m.port, m.bind = "228.0.0.4", port, "127.0.0.1"
    m.frequency, m.drop_time = frequency, drop_time
    if domain is not None:
        m.domain = domain
    if payload is not None:
        m.payload = payload
    c.set_membership(m)
    r = NioReceiver()
    r.address, r.port, r.auto_bind = "127.0.0.1", 0, 1
    c.set_receiver(r)
    for i in interceptors:
        c.add_interceptor(i)
    c.watch = MemberWatch()
    c.add_membership_listener(c.watch)
    c.inbox = Collect()
    c.add_channel_listener(c.inbox)
    return c


def start_parallel(chans, flags=ch.DEFAULT):
    gevent.joinall([gevent.spawn(c.start_services, flags) for c in chans], raise_error=True)


def stop_all(chans):
    for c in chans:
        try:
            c.stop()
        except ChannelError:
            pass


def test_member_arrival_of_10_channels():
    port = mcast_port()
    chans = [make_channel(port, frequency=500, drop_time=3000, payload=b"Channel-%d" % i) for i in range(10)]
    try:
        start_parallel(chans)
        wait_for(lambda: all(len(c.watch.members) == 9 for c in chans), timeout=5)
        assert all(len(c.get_members()) == 9 for c in chans)
        a, b = chans[0], chans[1]
        a.send([b.get_local_member()], b"hello", 6)
        assert b.inbox.messages == [b"hello"]
        assert b.inbox.got[0][1].payload == b"Channel-0"
    finally:
        stop_all(chans)


def test_different_domains_see_no_members():
    """Two domains of two channels each on one group and port. Positive control: each channel
    sees the other of its own domain, and its membership service heard all three (so the
    foreign heartbeats did arrive); the DomainFilterInterceptor keeps the foreign two out."""
    port = mcast_port()
    chans = []
    for domain in [os.urandom(16)] * 2 + [os.urandom(16)] * 2:
        d = DomainFilterInterceptor()
        d.domain = domain
        chans.append(make_channel(port, d, domain=domain))
    try:
        start_parallel(chans)
        partner = {0: 1, 1: 0, 2: 3, 3: 2}
        for i, c in enumerate(chans):
            mine = chans[partner[i]].get_local_member()
            wait_for(lambda: c.watch.members == [mine], what="channel %d seeing its own domain" % i)
            wait_for(lambda: len(c.membership_service.get_members()) == 3, what="channel %d hearing all" % i)
        for i, c in enumerate(chans):
            mine = chans[partner[i]].get_local_member()
            assert c.get_members() == [mine] and c.watch.added == [mine]
            assert {m.domain for m in c.membership_service.get_members()} == {chans[0].get_local_member().domain,
                                                                              chans[2].get_local_member().domain}
    finally:
        stop_all(chans)


def test_graceful_departure_is_immediate_crash_after_drop_time():
    port = mcast_port()
    a, b, c = (make_channel(port, drop_time=1500) for _ in range(3))
    try:
        start_parallel([a, b, c])
        wait_for(lambda: len(a.watch.members) == 2)
        b.stop()
        wait_for(lambda: len(a.watch.members) == 1, timeout=0.5)  # BABY-ALEX: no drop time wait
        assert a.watch.gone[-1].is_shutdown
        c.stop_services(ch.MBR_TX)  # silent: heartbeats stop, no goodbye
        gevent.sleep(0.8)
        assert len(a.watch.members) == 1   # still within dropTime
        wait_for(lambda: a.watch.members == [], timeout=3)
    finally:
        stop_all([a, b, c])


def test_tcp_failure_detector_keeps_a_member_whose_heartbeats_stopped():
    port = mcast_port()
    a, b = make_channel(port, TcpFailureDetector()), make_channel(port, TcpFailureDetector())
    try:
        start_parallel([a, b])
        wait_for(lambda: len(a.watch.members) == 1 and len(b.watch.members) == 1)
        b.stop_services(ch.MBR_TX)
        gevent.sleep(1.6)  # > dropTime: the multicast layer dropped b, TCP says it is alive
        assert len(a.watch.members) == 1 and len(a.get_members()) == 1
        a.send(a.get_members(), b"still there", 2)
        assert b.inbox.messages == [b"still there"]
    finally:
        stop_all([a, b])


def test_tcp_failure_detector_drops_member_after_send_failure():
    port = mcast_port()
    a, b = make_channel(port, TcpFailureDetector()), make_channel(port, TcpFailureDetector())
    try:
        start_parallel([a, b])
        wait_for(lambda: len(a.watch.members) == 1 and len(b.watch.members) == 1)
        b.stop_services(ch.SND_RX)
        target = b.get_local_member()
        failed = None
        for _ in range(5):
            try:
                a.send([target], b"x" * 1024, 0)
            except ChannelError as exc:
                failed = exc
                break
            gevent.sleep(0.5)
        assert failed is not None and target in failed.faulty
        assert a.watch.members == [] and a.get_members() == []
        assert len(b.watch.members) == 1
        gevent.sleep(0.5)  # heartbeats keep coming, but the TCP port is dead: not re-added
        assert a.watch.members == []
    finally:
        stop_all([a, b])


def test_tcp_failure_detector_refuses_member_with_dead_port():
    port = mcast_port()
    a, b = make_channel(port, TcpFailureDetector()), make_channel(port, TcpFailureDetector())
    try:
        a.start()
        b.start_services(ch.SND_RX)
        b.start_services(ch.SND_TX)
        b.start_services(ch.MBR_RX)
        b.stop_services(ch.SND_RX)
        b.start_services(ch.MBR_TX)  # heartbeats now advertise a dead TCP port
        wait_for(lambda: len(b.watch.members) == 1)
        for _ in range(10):
            gevent.sleep(0.1)
            assert a.watch.members == [] and a.get_members() == []
    finally:
        stop_all([a, b])


def test_without_detector_a_silent_member_is_dropped():
    port = mcast_port()
    a, b = make_channel(port), make_channel(port)
    try:
        start_parallel([a, b])
        wait_for(lambda: len(a.watch.members) == 1)
        b.stop_services(ch.MBR_TX)
        wait_for(lambda: a.watch.members == [], timeout=3)
        assert not a.watch.gone[-1].is_shutdown
    finally:
        stop_all([a, b])


def test_multicast_send_option():
    port = mcast_port()
    a, b = make_channel(port), make_channel(port)
    try:
        start_parallel([a, b])
        wait_for(lambda: len(a.watch.members) == 1)
        a.send(a.get_members(), b"over multicast", ch.MULTICAST)
        wait_for(lambda: b.inbox.messages == [b"over multicast"])
        gevent.sleep(0.2)
        assert a.inbox.messages == []  # our own broadcast is not delivered back to us
    finally:
        stop_all([a, b])


def test_start_stop_rules_with_real_components_and_restart():
    port = mcast_port()
    c = make_channel(port)
    c.receiver.udp_port = 45543  # advertised only; starting and stopping must not fail
    c.receiver.max_threads = 1
    try:
        c.start_services(ch.SND_RX)
        with pytest.raises(ChannelError):
            c.start_services(ch.SND_RX)
        c.start_services(ch.MBR_RX)
        with pytest.raises(ChannelError):
            c.start_services(ch.MBR_RX)
        c.start_services(ch.MBR_TX)
        c.start_services(ch.SND_TX)
        c.start_services(ch.DEFAULT)      # fully started: a no-op
        c.start_services(0xFFF0)          # no known flag: a no-op
        assert c.coordinator.start_level == ch.DEFAULT
        assert c.get_local_member().udp_port == 45543
        c.stop()
        assert c.state.value == "STOPPED"
        other = make_channel(port)
        other.start()
        c.start()                # a stopped channel starts again
        wait_for(lambda: len(c.watch.members) == 1 and len(other.watch.members) == 1)
        c.send(c.get_members(), b"again", 6)
        assert other.inbox.messages == [b"again"]
        other.stop()
    finally:
        c.stop()


def test_failure_detector_probe_modes():
    from gevent import socket
    from pycat.tribes.member import Member
    port = mcast_port()
    a, b = make_channel(port, TcpFailureDetector()), make_channel(port)
    try:
        a.start_services(ch.SND_RX | ch.SND_TX)
        b.start_services(ch.SND_RX | ch.SND_TX)
        detector = a.interceptors[0]
        target = b.get_local_member()
        assert detector.member_alive(target)
        detector.perform_read_test, detector.read_test_timeout = True, 300
        assert detector.member_alive(target)          # the probe's ACK came back
        assert b.inbox.messages == []                  # probes never reach listeners
        mute = socket.socket()
        mute.bind(("127.0.0.1", 0))
        mute.listen(5)                                 # accepts, never answers
        assert not detector.member_alive(Member("127.0.0.1", mute.getsockname()[1]))
        mute.close()
        assert not detector.member_alive(Member("127.0.0.1", mcast_port()))  # refused
        gone = target.copy()
        gone.command = b"BABY-ALEX"
        assert not detector.member_alive(gone)        # a member saying goodbye is not probed
    finally:
        stop_all([a, b])


def test_membership_may_start_before_the_receiver():
    port = mcast_port()
    a, b = make_channel(port), make_channel(port)
    try:
        a.start()
        b.receiver.port = fixed_tcp_port()      # a port we know before binding
        b.start_services(ch.MBR_RX | ch.MBR_TX)          # heartbeats advertise the configured address
        wait_for(lambda: len(a.watch.members) == 1)
        assert a.watch.members[0].port == b.receiver.port
        b.start_services(ch.SND_RX | ch.SND_TX)
        a.send(a.get_members(), b"late receiver", 6)
        assert b.inbox.messages == [b"late receiver"]
    finally:
        stop_all([a, b])
