"""Interceptors over the in-memory network (reference section 8.2; no sockets)."""
import logging
import os

import gevent
import gevent.event
import pytest

from pycat.errors import ChannelError, LifecycleError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor
from pycat.tribes.group.interceptors.auth import AuthInterceptor
from pycat.tribes.group.interceptors.coordinator import NonBlockingCoordinator
from pycat.tribes.group.interceptors.domain_filter import DomainFilterInterceptor, parse_domain
from pycat.tribes.group.interceptors.fragmentation import FragmentationInterceptor
from pycat.tribes.group.interceptors.gzip import GzipInterceptor, compress, decompress
from pycat.tribes.group.interceptors.message_dispatch import MessageDispatchInterceptor
from pycat.tribes.group.interceptors.order import OrderInterceptor
from pycat.tribes.group.interceptors.throughput import ThroughputInterceptor

from _channel_fakes import Collect, FakeNetwork, MemberWatch, wait_for


def started_pair(make_stack, net=None):
    net = net or FakeNetwork()
    a, b = net.channel(*make_stack()), net.channel(*make_stack())
    la, lb = Collect(), Collect()
    a.add_channel_listener(la)
    b.add_channel_listener(lb)
    a.start()
    b.start()
    return net, a, b, la, lb


# -- MessageDispatchInterceptor ---------------------------------------------------------------
class Gate(ChannelInterceptor):
    """Holds every send until opened, to fill the dispatch queue."""

    def __init__(self):
        super().__init__()
        self.open = gevent.event.Event()

    def send_message(self, members, msg, payload):
        self.open.wait(5)
        super().send_message(members, msg, payload)


def _dispatch(always_send, size=1000):
    d = MessageDispatchInterceptor()
    d.max_queue_size = size
    d.always_send = always_send
    d.max_threads = 1
    return d


def test_async_send_returns_before_delivery_and_arrives():
    gate = Gate()
    net, a, b, la, lb = started_pair(lambda: [MessageDispatchInterceptor(), Gate()])
    a.iter_interceptors  # noqa
    gate = list(a.iter_interceptors())[1]
    a.send(a.get_members(), b"x" * 10, ch.ASYNCHRONOUS)
    assert lb.messages == []
    gate.open.set()
    wait_for(lambda: lb.messages == [b"x" * 10])
    a.stop(), b.stop()


def test_queue_full_raises_without_always_send():
    net, a, b, la, lb = started_pair(lambda: [_dispatch(False), Gate()])
    members = a.get_members()
    a.send(members, b"1" * 400, 8)          # taken by the single worker, blocked at the gate
    gevent.sleep(0)
    a.send(members, b"2" * 400, 8)          # queued: 800 of 1000 bytes, counting the one in flight
    with pytest.raises(ChannelError, match="queue full"):
        a.send(members, b"3" * 400, 8)
    list(a.iter_interceptors())[1].open.set()
    wait_for(lambda: len(lb.messages) == 2)
    a.stop(), b.stop()


def test_queue_full_sends_synchronously_with_always_send():
    net, a, b, la, lb = started_pair(lambda: [_dispatch(True), Gate()])
    members = a.get_members()
    gate = list(a.iter_interceptors())[1]
    a.send(members, b"1" * 400, 8)
    gevent.sleep(0)
    a.send(members, b"2" * 400, 8)
    gevent.spawn_later(0.05, gate.open.set)
    a.send(members, b"3" * 400, 8)          # blocks on the caller until the gate opens
    assert b"3" * 400 in lb.messages
    wait_for(lambda: len(lb.messages) == 3)
    a.stop(), b.stop()


def test_async_error_reaches_the_error_handler():
    net, a, b, la, lb = started_pair(lambda: [MessageDispatchInterceptor()])
    errors, done = [], []

    class Handler(ch.ErrorHandler):
        def handle_error(self, error, uid):
            errors.append(error)

        def handle_completion(self, uid):
            done.append(uid)
    uid = a.send(a.get_members(), b"ok", 8, Handler())
    wait_for(lambda: done == [uid])
    b.stop()
    from pycat.tribes.member import Member
    a.send([Member("127.0.0.1", 1)], b"lost", 8, Handler())
    wait_for(lambda: len(errors) == 1)
    assert isinstance(errors[0], ChannelError)
    a.stop()


# -- OrderInterceptor (TestOrderInterceptor) ---------------------------------------------------
class Mangler(ChannelInterceptor):
    """Swaps every pair of messages: holds the odd one and sends it after the next."""

    def __init__(self):
        super().__init__()
        self.held = None

    def send_message(self, members, msg, payload):
        if self.held is None:
            self.held = (members, msg, payload)
            return
        held, self.held = self.held, None
        super().send_message(members, msg, payload)
        super().send_message(*held)


def _order():
    o = OrderInterceptor()
    o.expire = 10 ** 9
    return o


def test_order_restored_after_swapping():
    net, a, b, la, lb = started_pair(lambda: [_order(), Mangler()])
    for i in range(100):
        a.send(a.get_members(), i, 0)
    assert lb.messages == list(range(100))


def test_order_with_five_senders():
    net, a, b, la, lb = started_pair(lambda: [_order(), Mangler()])
    lock = gevent.lock.Semaphore()
    members = a.get_members()

    def sender(k):
        for i in range(100):
            with lock:
                a.send(members, (k, i), 0)
            gevent.sleep(0)
    gevent.joinall([gevent.spawn(sender, k) for k in range(5)], raise_error=True)
    assert len(lb.messages) == 500
    for k in range(5):
        assert [m[1] for m in lb.messages if m[0] == k] == list(range(100))


def test_order_expired_gap_is_flushed():
    o = OrderInterceptor()
    o.expire = 0
    got = []
    o.previous = type("Up", (), {"message_received": lambda self, m: got.append(m.message)})()
    from pycat.tribes.io.channel_data import ChannelData
    from pycat.tribes.member import Member
    sender = Member("127.0.0.1", 4000)
    o.message_received(ChannelData(0, 0, b"\x01" * 16, sender, b"second\x00\x00\x00\x02"))
    gevent.sleep(0.01)
    o.heartbeat()
    assert got == [b"second"]


# -- FragmentationInterceptor ------------------------------------------------------------------
def test_fragmentation_round_trip_1mib():
    frag = lambda: FragmentationInterceptor()  # noqa: E731
    net, a, b, la, lb = started_pair(lambda: [frag()])
    data = os.urandom(1024 * 1024)
    a.send(a.get_members(), data, 2)
    assert lb.messages == [data]
    fragments = [m for _, m in net.sent]
    assert len(fragments) == 11
    assert len({m.unique_id for m in fragments}) == 1
    a.send(a.get_members(), b"small", 0)
    assert lb.messages[-1] == b"small"


def test_incomplete_fragments_expire():
    f = FragmentationInterceptor()
    f.expire = 0
    from pycat.tribes.io.channel_data import ChannelData
    from pycat.tribes.member import Member
    f.previous = type("Up", (), {"message_received": lambda self, m: pytest.fail("delivered")})()
    import struct
    part = b"abc" + struct.pack(">ii?", 0, 2, True)
    f.message_received(ChannelData(0, 0, b"\x02" * 16, Member("127.0.0.1", 1), part))
    assert len(f._collections) == 1
    gevent.sleep(0.01)
    f.expire_collections()
    assert not f._collections


# -- GzipInterceptor (TestGzipInterceptor) -----------------------------------------------------
@pytest.mark.parametrize("size", [1024, 2047, 2048, 2049, 4096, 8192, 21480])
def test_gzip_round_trip(size):
    data = bytes([1]) * size
    assert decompress(compress(data)) == data


def test_gzip_through_the_stack_sets_and_clears_its_flag():
    net, a, b, la, lb = started_pair(lambda: [GzipInterceptor()])
    a.send(a.get_members(), b"z" * 5000, 0)
    assert lb.messages == [b"z" * 5000]
    (member, wire), = net.sent
    assert wire.options & 0x100


def test_gzip_bomb_is_bounded():
    with pytest.raises(ValueError):
        decompress(compress(b"\0" * 100000), limit=1000)


# -- DomainFilterInterceptor (TestDomainFilterInterceptor) --------------------------------------
def test_domain_parse():
    assert parse_domain("{1,2,3}") == b"\x01\x02\x03"
    assert parse_domain("staging") == b"staging"


def test_different_domains_see_no_one():
    net = FakeNetwork()
    watches, chans = [], []
    for i in range(10):
        d = DomainFilterInterceptor()
        d.domain = "domain-%d" % i
        c = net.channel(d, domain=b"domain-%d" % i)
        w = MemberWatch()
        c.add_membership_listener(w)
        chans.append(c)
        watches.append(w)
    for c in chans:
        c.start()
    assert all(w.members == [] for w in watches)
    assert all(c.get_members() == [] for c in chans)
    for c in chans:
        c.stop()


def test_same_domain_members_and_foreign_messages_dropped(caplog):
    net = FakeNetwork()

    def filt(name):
        d = DomainFilterInterceptor()
        d.domain = name
        return d
    a = net.channel(filt("x"), domain=b"x")
    b = net.channel(filt("x"), domain=b"x")
    c = net.channel(filt("y"), domain=b"y")
    lb = Collect()
    b.add_channel_listener(lb)
    for n in (a, b, c):
        n.start()
    assert a.get_members() == [b.get_local_member()]
    a.send(a.get_members(), b"hi", 0)
    with caplog.at_level(logging.WARNING):
        c.send([b.get_local_member()], b"intruder", 0)
    assert lb.messages == [b"hi"]
    assert "other domains" in caplog.text


# -- ThroughputInterceptor ---------------------------------------------------------------------
def test_throughput_reports_in_the_log(caplog):
    def make():
        t = ThroughputInterceptor()
        t.interval = 5
        return [t]
    with caplog.at_level(logging.INFO, logger="pycat.tribes.group.interceptors.throughput"):
        net, a, b, la, lb = started_pair(make)
        for _ in range(10):
            a.send(a.get_members(), b"x" * 100, 0)
    assert "Tx Msg:5 messages" in caplog.text and "Rx Msg:10 messages" in caplog.text
    t = list(a.iter_interceptors())[0]
    assert t.tx_count == 10 and t.tx_deliveries == 10 * len(a.get_members())


# -- AuthInterceptor ---------------------------------------------------------------------------
def _auth(secret):
    a = AuthInterceptor()
    a.secret = secret
    return a


def test_auth_round_trip_and_wrong_secret_dropped_before_decoding(caplog, monkeypatch):
    net = FakeNetwork()
    a = net.channel(_auth("s3cret"))
    b = net.channel(_auth("s3cret"))
    evil = net.channel(_auth("guess"))
    lb = Collect()
    b.add_channel_listener(lb)
    for n in (a, b, evil):
        n.start()
    a.send([b.get_local_member()], {"v": 1}, 6)
    assert lb.messages == [{"v": 1}]
    from pycat.tribes.io import codec
    calls = []
    monkeypatch.setattr(codec, "loads", lambda *a, **k: calls.append(a) or pytest.fail("decoded"))
    with caplog.at_level(logging.WARNING):
        evil.send([b.get_local_member()], {"v": 2}, 6)
    assert lb.messages == [{"v": 1}] and not calls
    assert "wrong MAC" in caplog.text


def test_auth_detects_tampering_and_missing_mac():
    b_auth = _auth("k")
    got = []
    b_auth.previous = type("Up", (), {"message_received": lambda self, m: got.append(m.message)})()
    from pycat.tribes.io.channel_data import ChannelData
    from pycat.tribes.member import Member
    me = Member.local("127.0.0.1", 4000)
    sent = []
    a_auth = _auth("k")
    a_auth.next = type("Down", (), {"send_message": lambda self, ms, m, p: sent.append(m)})()
    a_auth.send_message([], ChannelData.create(1, me, b"payload"), None)
    good = sent[0]
    flipped = ChannelData(good.options | 8, good.timestamp, good.unique_id, good.address, good.message)
    b_auth.message_received(flipped)
    bare = ChannelData(good.options, good.timestamp, good.unique_id, good.address, b"payload")
    b_auth.message_received(bare)
    assert got == [] and b_auth.dropped == 2
    b_auth.message_received(ChannelData(good.options, good.timestamp, good.unique_id, good.address, good.message))
    assert got == [b"payload"]


def test_auth_requires_a_secret():
    c = FakeNetwork().channel(AuthInterceptor())
    with pytest.raises(ChannelError, match="secret"):
        c.start_services(ch.DEFAULT)
    with pytest.raises(LifecycleError, match="secret") as info:
        c.start()
    assert isinstance(info.value.__cause__, ChannelError) and c.coordinator.start_level == 0


# -- NonBlockingCoordinator --------------------------------------------------------------------
def test_coordinators_agree():
    net = FakeNetwork()
    chans = [net.channel(NonBlockingCoordinator()) for _ in range(5)]
    for c in chans:
        c.start()
    coords = {list(c.iter_interceptors())[0].get_coordinator() for c in chans}
    assert len(coords) == 1
    leader = coords.pop()
    for c in chans:
        if c.get_local_member() == leader:
            c.stop()
    rest = [c for c in chans if c.get_local_member() != leader]
    coords = {list(c.iter_interceptors())[0].get_coordinator() for c in rest}
    assert len(coords) == 1 and leader not in coords
    for c in rest:
        c.stop()


# -- TcpPingInterceptor ------------------------------------------------------------------------
def test_tcp_ping_is_sent_on_heartbeat_and_swallowed():
    from pycat.tribes.group.interceptors.tcp_ping import TCP_PING_DATA, TcpPingInterceptor
    net, a, b, la, lb = started_pair(lambda: [TcpPingInterceptor()])
    a.heartbeat()
    pings = [m for _, m in net.sent if m.message == TCP_PING_DATA]
    assert len(pings) == 1 and lb.messages == []
    a.send(a.get_members(), b"real", 0)
    assert lb.messages == [b"real"]


def test_tcp_ping_uses_the_failure_detector_below():
    from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
    from pycat.tribes.group.interceptors.tcp_ping import TcpPingInterceptor
    checks = []

    class Detector(TcpFailureDetector):
        def check_members(self, force=False):
            checks.append(force)
    net, a, b, la, lb = started_pair(lambda: [TcpPingInterceptor(), Detector()])
    a.heartbeat()
    assert True in checks
    assert not [m for _, m in net.sent]  # the detector probes instead of pinging


def test_static_membership_wants_a_pinger_above_it(caplog):
    """It finds one by the ``pings_members`` flag TcpPingInterceptor sets, not by importing it."""
    from pycat.tribes.group.interceptors.static_membership import StaticMembershipInterceptor
    from pycat.tribes.group.interceptors.tcp_ping import TcpPingInterceptor
    wanted = "needs a TcpPingInterceptor above it"
    alone = FakeNetwork().channel(StaticMembershipInterceptor())
    with caplog.at_level(logging.WARNING):
        alone.start()
    alone.stop()
    assert wanted in caplog.text
    caplog.clear()
    # below a pinger: no warning (and a pinger below it does not count)
    pinged = FakeNetwork().channel(TcpPingInterceptor(), StaticMembershipInterceptor())
    with caplog.at_level(logging.WARNING):
        pinged.start()
    pinged.stop()
    assert wanted not in caplog.text
    upside_down = FakeNetwork().channel(StaticMembershipInterceptor(), TcpPingInterceptor())
    with caplog.at_level(logging.WARNING):
        upside_down.start()
    upside_down.stop()
    assert wanted in caplog.text
