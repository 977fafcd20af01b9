"""The TCP transport on 127.0.0.1: NioReceiver, PooledParallelSender, ACK semantics, keep-alive."""
import random
import time

import gevent
import pytest
from gevent import socket

from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.io import framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member
from pycat.tribes.transport import receiver as receiver_mod
from pycat.tribes.transport.receiver import NioReceiver
from pycat.tribes.transport.sender import PooledParallelSender, RemoteProcessError

from _channel_fakes import Collect, FakeNetwork, real_channel, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def net():
    return FakeNetwork()


def start_all(*chans):
    for c in chans:
        c.start()


def stop_all(*chans):
    for c in chans:
        c.stop()


@pytest.fixture
def trio(net):
    chans = [real_channel(net) for _ in range(3)]
    listeners = [Collect() for _ in chans]
    for c, l in zip(chans, listeners):
        c.add_channel_listener(l)
    start_all(*chans)
    yield chans, listeners
    stop_all(*chans)


# -- ACK semantics on the wire ------------------------------------------------------------------
class RawPeer:
    """A hand-made sender: writes frames and reads whatever the receiver answers."""

    def __init__(self, receiver):
        self.sock = socket.create_connection(("127.0.0.1", receiver.bound_port), timeout=2)
        self.me = Member.local("127.0.0.1", 1)

    def send(self, options, data=b"x"):
        self.sock.sendall(ChannelData.create(options, self.me, data).encode_frame())

    def read_ack(self, timeout=1.0):
        self.sock.settimeout(timeout)
        got = b""
        try:
            while len(got) < 21:
                chunk = self.sock.recv(21 - len(got))
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


def _receiver_with(listener):
    r = NioReceiver()
    r.address, r.port = "127.0.0.1", 0

    class Coordinator:
        def message_received(self, msg):
            listener(msg)
    r.message_listener = Coordinator()
    r.start()
    return r


def test_no_ack_option_writes_nothing_back():
    r = _receiver_with(lambda m: None)
    peer = RawPeer(r)
    peer.send(0)
    assert peer.read_ack(0.3) == b""
    r.stop()


def test_use_ack_acks_before_processing():
    order = []
    r = _receiver_with(lambda m: (gevent.sleep(0.3), order.append("processed")))
    peer = RawPeer(r)
    peer.send(ch.USE_ACK)
    assert peer.read_ack(0.2) == framing.ACK_FRAME
    order.append("acked")
    wait_for(lambda: "processed" in order)
    assert order == ["acked", "processed"]
    r.stop()


def test_sync_ack_after_processing_and_fail_ack_on_error():
    def listener(msg):
        gevent.sleep(0.1)
        if msg.message == b"boom":
            raise ValueError("listener failure")
    r = _receiver_with(listener)
    peer = RawPeer(r)
    peer.send(ch.USE_ACK | ch.SYNCHRONIZED_ACK)
    assert peer.read_ack(0.05) == b""           # not before processing
    assert peer.read_ack(1.0) == framing.ACK_FRAME
    peer.send(ch.USE_ACK | ch.SYNCHRONIZED_ACK, b"boom")
    assert peer.read_ack(1.0) == framing.FAIL_ACK_FRAME
    peer.send(ch.SYNCHRONIZED_ACK, b"boom")     # sync alone has no effect: no ack
    assert peer.read_ack(0.3) == b""
    r.stop()


def test_fail_ack_reaches_the_sender_naming_the_member(trio):
    (a, b, c), (la, lb, lc) = trio
    lb.fail = lambda m: m == b"bad"
    with pytest.raises(ChannelError) as info:
        a.send([b.get_local_member(), c.get_local_member()], b"bad", 6)
    assert list(info.value.faulty) == [b.get_local_member()]
    assert isinstance(info.value.faulty[b.get_local_member()], RemoteProcessError)
    assert lc.messages == [b"bad"]           # the other member still got it
    a.send([b.get_local_member()], b"fine", 6)  # the connection stays usable after a FAIL_ACK
    assert lb.messages == [b"fine"]


def test_dead_member_is_reported_and_others_still_get_the_message(trio):
    (a, b, c), (la, lb, lc) = trio
    dead = Member("127.0.0.1", _free_port())
    with pytest.raises(ChannelError) as info:
        a.send([dead, b.get_local_member(), c.get_local_member()], b"hello", 2)
    assert list(info.value.faulty) == [dead]
    assert lb.messages == [b"hello"] and lc.messages == [b"hello"]


def test_ack_and_sync_ack_imply_delivery(trio):
    (a, b, c), (la, lb, lc) = trio
    for options in (2, 6):
        for i in range(50):
            a.send([b.get_local_member()], b"%d" % i, options)
        assert len(lb.messages) == 50  # no waiting: the ack means it was read
        lb.got.clear()


def test_send_timeout_when_the_peer_never_acks():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    accepted = []
    g = gevent.spawn(lambda: accepted.append(listener.accept()))
    sender = PooledParallelSender()
    sender.timeout = 300
    sender.start()
    msg = ChannelData.create(2, Member.local("127.0.0.1", 1), b"x")
    dead = Member("127.0.0.1", port)
    with pytest.raises(ChannelError, match="no ACK within 300 ms") as info:
        sender.send_message(msg, [dead])
    assert dead in info.value.faulty
    sender.stop()
    g.kill()
    listener.close()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- keep-alive (TestGroupChannelSenderConnections) ------------------------------------------------
@pytest.mark.parametrize("count, time_ms, pause", [(-1, -1, 0), (0, -1, 0.05), (-1, 50, 0.1)])
def test_connections_reopen_transparently(net, count, time_ms, pause):
    a, b = real_channel(net), real_channel(net)
    lb = Collect()
    b.add_channel_listener(lb)
    a.start_services(ch.SND_RX | ch.SND_TX)
    b.start_services(ch.SND_RX | ch.SND_TX)
    transport = a.sender.transport
    transport.keep_alive_count, transport.keep_alive_time = count, time_ms
    dest = [Member("127.0.0.1", b.receiver.bound_port, unique_id=b"\0" * 16)]
    for i in range(3):
        a.send(dest, {"i": i, "data": [list(range(50))] * 4}, 0)
        gevent.sleep(pause)
    wait_for(lambda: len(lb.messages) == 3)
    assert [m["i"] for m in lb.messages] == [0, 1, 2]
    stop_all(a, b)


def test_pooled_connection_closed_by_peer_is_replaced(net):
    """The receiver closes an idle pooled connection; the sender notices before reusing it,
    discards it and opens a new one. A no-ack message written into the closed one would be lost
    without an error, so "two" arriving shows the check happened."""
    a, b = real_channel(net), real_channel(net, idle_timeout=100)
    lb = Collect()
    b.add_channel_listener(lb)
    start_all(a, b)
    transport = a.sender.transport
    (member,) = a.get_members()
    a.send([member], b"one", 0)
    wait_for(lambda: lb.messages == [b"one"])
    (old,) = transport._idle[member].queue  # the one pooled connection
    wait_for(lambda: b.receiver.stats["idle_closed"] == 1 and not b.receiver._connections,
             what="the receiver closing the idle connection")
    wait_for(old.peer_closed, what="the close reaching the sender's side")
    a.send([member], b"two", 0)
    wait_for(lambda: lb.messages == [b"one", b"two"])
    (new,) = transport._idle[member].queue
    assert new is not old and old.sock.fileno() == -1  # the stale one was closed, a fresh one pooled
    assert b.receiver.stats["connections"] == 2 and transport._counts[member] == 1  # its slot was reused
    assert not new.peer_closed()
    stop_all(a, b)


# -- data integrity (TestDataIntegrity, scaled for CI) ------------------------------------------
def _payload():
    n = random.randint(0, 65554)
    key = random.randint(0, 255)
    return bytes([key]) * n


def _check(msg):
    return not msg or msg.count(msg[:1]) == len(msg)


@pytest.mark.timeout(120)
def test_data_integrity_20_greenlets_x_500_all_options(net):
    from pycat.tribes.group.interceptors.message_dispatch import MessageDispatchInterceptor
    a = real_channel(net, MessageDispatchInterceptor())
    b = real_channel(net, MessageDispatchInterceptor())
    lb = Collect()
    b.add_channel_listener(lb)
    start_all(a, b)
    dest = a.get_members()
    payloads = [_payload() for _ in range(64)]
    options = [0, 8, 2, 6, 10, 14]

    def worker(k):
        for i in range(500):
            a.send(dest, payloads[(k * 7 + i) % 64], options[(k + i) % len(options)])
    gevent.joinall([gevent.spawn(worker, k) for k in range(20)], raise_error=True)
    wait_for(lambda: len(lb.got) == 10000, timeout=30)
    assert all(_check(m) for m in lb.messages)
    stop_all(a, b)


# -- address auto ----------------------------------------------------------------------------
class _FakeSocketModule:
    """Stands in for the socket module inside receiver.auto_address."""
    AF_INET, SOCK_DGRAM = 2, 2

    def __init__(self, hostname_addr, route_addr):
        self.hostname_addr, self.route_addr = hostname_addr, route_addr

    def gethostname(self):
        return "node"

    def gethostbyname(self, name):
        return self.hostname_addr

    def socket(self, *args):
        fake = self

        class S:
            def connect(self, addr):
                if fake.route_addr is None:
                    raise OSError("network unreachable")

            def getsockname(self):
                return (fake.route_addr, 5555)

            def close(self):
                pass
        return S()


@pytest.mark.parametrize("hostname_addr, route_addr, expected", [
    ("127.0.1.1", "10.1.2.3", "10.1.2.3"),       # Debian's /etc/hosts maps the host name to loopback
    ("192.168.7.9", "10.1.2.3", "192.168.7.9"),
    ("127.0.0.1", None, "127.0.0.1"),            # really nothing else: loopback, with a warning
])
def test_auto_address_never_advertises_loopback_when_another_exists(monkeypatch, caplog, hostname_addr,
                                                                     route_addr, expected):
    monkeypatch.setattr(receiver_mod, "pysocket", _FakeSocketModule(hostname_addr, route_addr))
    assert receiver_mod.auto_address() == expected
    if expected.startswith("127."):
        assert "no non-loopback interface" in caplog.text


def test_auto_address_on_this_machine():
    addr = receiver_mod.auto_address()
    r = NioReceiver()  # address defaults to auto
    r.port = 0
    r.start()
    try:
        assert r.advertised_host == addr
    finally:
        r.stop()


def test_explicit_loopback_is_respected_and_autobind_moves_on():
    first = NioReceiver()
    first.address, first.port = "127.0.0.1", _free_port()
    first.start()
    second = NioReceiver()
    second.address, second.port, second.auto_bind = "127.0.0.1", first.bound_port, 10
    second.start()
    assert second.advertised_host == "127.0.0.1"
    assert first.bound_port < second.bound_port < first.bound_port + 10
    second.stop()
    third = NioReceiver()
    third.address, third.port, third.auto_bind = "127.0.0.1", first.bound_port, 1
    with pytest.raises(Exception, match="no free port"):
        third.start()
    first.stop()


def test_sender_record_cache_follows_a_changing_sender():
    got = []
    r = _receiver_with(lambda m: got.append((m.address, m.message)))
    sock = socket.create_connection(("127.0.0.1", r.bound_port), timeout=2)
    one, two = Member.local("127.0.0.1", 1), Member.local("127.0.0.1", 2)
    frames = [ChannelData.create(1, m, b"%d" % i).encode_frame() for i, m in enumerate([one, one, two, one])]
    sock.sendall(b"".join(frames))
    wait_for(lambda: len(got) == 4)
    assert [(a.port, msg) for a, msg in got] == [(1, b"0"), (1, b"1"), (2, b"2"), (1, b"3")]
    assert got[0][0] == one and got[2][0] == two
    # same sender record but a lying message length: the full decoder rejects it, connection closed
    bad = bytearray(ChannelData.create(1, one, b"abc").encode())
    bad[-7] ^= 0x40
    sock.sendall(framing.encode_frame(bytes(bad)))
    sock.settimeout(2)
    assert sock.recv(10) == b""
    assert len(got) == 4 and r.stats["errors"] == 1
    r.stop()


def test_pool_size_bounds_connections_per_member(net):
    a, b = real_channel(net), real_channel(net)
    slow = Collect()
    slow.fail = lambda m: gevent.sleep(0.01) and False
    b.add_channel_listener(slow)
    start_all(a, b)
    a.sender.transport.pool_size = 2
    dest = a.get_members()
    gevent.joinall([gevent.spawn(a.send, dest, b"%d" % i, 6) for i in range(20)], raise_error=True)
    assert len(slow.messages) == 20
    assert b.receiver.stats["connections"] <= 2
    stop_all(a, b)


def test_a_waiting_sender_is_not_starved_by_a_busy_one(net):
    """Pool of one connection: a greenlet sending back to back gives the connection back and at
    once asks for it again, without yielding in between. A sender already waiting must get it
    first (the one that waits longest, next), not time out after maxWait while the busy one
    keeps barging in; under load that lost async messages (the 20 x 500 integrity test)."""
    a, b = real_channel(net), real_channel(net)
    lb = Collect()
    b.add_channel_listener(lb)
    start_all(a, b)
    transport = a.sender.transport
    transport.pool_size, transport.max_wait = 1, 300
    dest = a.get_members()
    events = []

    def busy():
        stop = time.monotonic() + 1.5  # well past maxWait
        while time.monotonic() < stop:
            a.send(dest, b"busy", 2)
        events.append("busy done")

    def waiter(name):
        a.send(dest, name, 2)
        events.append(name)
    hog = gevent.spawn(busy)
    gevent.sleep(0.05)  # the busy one holds the connection now
    waiters = [gevent.spawn(waiter, b"w%d" % i) for i in range(3)]
    gevent.joinall(waiters + [hog], raise_error=True)
    assert events == [b"w0", b"w1", b"w2", "busy done"]  # served in the order they asked, long before the end
    assert [m for m in lb.messages if m != b"busy"] == [b"w0", b"w1", b"w2"]
    assert b.receiver.stats["connections"] == 1
    stop_all(a, b)


def test_a_killed_waiter_does_not_take_the_connection_with_it(net):
    """A sender killed while waiting in line leaves it: the connection given back next goes to
    the sender behind it, and the pool still holds its one connection."""
    a, b = real_channel(net), real_channel(net)
    lb = Collect(fail=lambda m: m == b"slow" and gevent.sleep(0.3))
    b.add_channel_listener(lb)
    start_all(a, b)
    transport = a.sender.transport
    transport.pool_size, transport.max_wait = 1, 2000
    dest = a.get_members()
    hog = gevent.spawn(a.send, dest, b"slow", 6)  # holds the one connection for 0.3 s
    gevent.sleep(0.05)
    victim = gevent.spawn(a.send, dest, b"victim", 6)
    gevent.sleep(0.05)
    victim.kill()
    a.send(dest, b"after", 6)
    hog.get()
    assert lb.messages == [b"slow", b"after"]
    assert transport._counts[dest[0]] == 1 and b.receiver.stats["connections"] == 1
    stop_all(a, b)


def test_remote_failures_are_reported_once_and_never_retried(net):
    """pycat's retry rule: only connection errors are retried; a FAIL_ACK means the listener ran."""
    a, b = real_channel(net), real_channel(net)
    lb = Collect(fail=lambda m: m.startswith(b"error"))
    calls = []
    b.add_channel_listener(type("Spy", (), {"accept": lambda s, m, x: calls.append(m) and False})())
    b.add_channel_listener(lb)
    start_all(a, b)
    rnd = random.Random(3)
    flagged = raised = 0
    for i in range(300):
        error = rnd.random() < 0.3
        flagged += error
        try:
            a.send(a.get_members(), (b"error %d" if error else b"ok %d") % i, 6)
        except ChannelError as exc:
            assert error and isinstance(list(exc.faulty.values())[0], RemoteProcessError)
            raised += 1
    assert raised == flagged and len(calls) == 300 and len(lb.messages) == 300 - flagged
    stop_all(a, b)


def test_no_ack_message_not_lost_after_peer_restart(net):
    a, b = real_channel(net), real_channel(net)
    lb = Collect()
    b.add_channel_listener(lb)
    start_all(a, b)
    b.receiver.port, b.receiver.auto_bind = b.receiver.bound_port, 1
    a.send(a.get_members(), b"before", 0)
    wait_for(lambda: lb.messages == [b"before"])
    b.stop_services(ch.SND_RX)
    b.start_services(ch.SND_RX)  # same port; the pooled connection in A now leads nowhere
    gevent.sleep(0.2)
    a.send(a.get_members(), b"after", 0)
    wait_for(lambda: lb.messages == [b"before", b"after"])
    stop_all(a, b)


# -- send option UDP (TestUdpPackages, scaled) --------------------------------------------------
@pytest.fixture
def udp_pair(net):
    a, b = real_channel(net, udp_port=0), real_channel(net, udp_port=0, udp_rx_buf_size=1 << 20)
    lb = Collect(fail=lambda m: m == b"fail")
    b.add_channel_listener(lb)
    start_all(a, b)
    yield a, b, lb
    stop_all(a, b)


def test_udp_port_is_advertised(udp_pair):
    a, b, lb = udp_pair
    assert b.get_local_member().udp_port == b.receiver.bound_udp_port > 0


def test_udp_send_without_and_with_acks(udp_pair):
    a, b, lb = udp_pair
    dest = a.get_members()
    for i in range(50):
        a.send(dest, b"udp %d" % i, ch.UDP)
        gevent.sleep(0)
    wait_for(lambda: len(lb.messages) == 50)
    a.send(dest, b"udp ack", ch.UDP | ch.USE_ACK)
    a.send(dest, b"udp sync", ch.UDP | ch.USE_ACK | ch.SYNCHRONIZED_ACK)
    assert lb.messages[-2:] == [b"udp ack", b"udp sync"]
    with pytest.raises(ChannelError) as info:
        a.send(dest, b"fail", ch.UDP | ch.USE_ACK | ch.SYNCHRONIZED_ACK)
    assert isinstance(info.value.faulty[dest[0]], RemoteProcessError)
    a.send(dest, {"async": "udp"}, ch.UDP | ch.ASYNCHRONOUS)
    wait_for(lambda: {"async": "udp"} in lb.messages)
    # TCP still works beside it
    a.send(dest, b"tcp", 6)
    assert lb.messages[-1] == b"tcp"


def test_udp_bulk_with_acks(udp_pair):
    a, b, lb = udp_pair
    dest = a.get_members()
    payload = b"k" * 1024

    def worker(k):
        for i in range(100):
            a.send(dest, payload, ch.UDP | ch.USE_ACK)
    gevent.joinall([gevent.spawn(worker, k) for k in range(20)], raise_error=True)
    assert len(lb.messages) == 2000


def test_udp_limits(udp_pair, net):
    a, b, lb = udp_pair
    with pytest.raises(ChannelError, match="does not fit"):
        a.send(a.get_members(), b"x" * 70000, ch.UDP)
    with pytest.raises(ChannelError, match="no UDP port"):
        a.send([Member("127.0.0.1", 1)], b"x", ch.UDP)
