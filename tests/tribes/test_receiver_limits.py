"""The receiver's limits across connections, over real sockets: a total buffer budget, a deadline
per frame that trickling bytes do not extend, an idle timeout, and one warning per peer host.

Slowloris-style peers announce big frames and then send slowly; each test configures small
limits so it runs in about a second, and checks that a legitimate peer still gets through.
"""
import logging
import struct
import time

import gevent
import pytest
from gevent import socket

from pycat.tribes.io import framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member
from pycat.tribes.limits import BufferBudget, PeerLog
from pycat.tribes.transport.receiver import NioReceiver

from _channel_fakes import Collect, FakeNetwork, real_channel, wait_for

pytestmark = pytest.mark.timeout(60)
MIB = 1024 * 1024


@pytest.fixture
def make_pair():
    made = []

    def make(**receiver_attrs):
        net = FakeNetwork()
        a, b = real_channel(net), real_channel(net, **receiver_attrs)
        inbox = Collect()
        b.add_channel_listener(inbox)
        a.start()
        b.start()
        made.extend((a, b))
        return a, b, inbox
    yield make
    for c in made:
        c.stop()


def connect(b, source="127.0.0.1"):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", b.receiver.bound_port))
    return s


def is_closed(sock):
    """True when the receiver has closed the connection (no waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(2)


def header(length):
    return framing.START_DATA + struct.pack(">I", length)


def frame(data=b"ok", options=3):
    return ChannelData.create(options, Member.local("127.0.0.1", 9), data).encode_frame()


def lines(caplog, text):
    return [r for r in caplog.records if text in r.getMessage()]


# -- pure bookkeeping --------------------------------------------------------------------------
def test_budget_charges_until_full_and_releases():
    budget = BufferBudget(100)
    assert budget.try_charge(60) and budget.used == 60
    assert not budget.try_charge(41) and budget.used == 60 and budget.refused == 1
    assert budget.try_charge(40) and budget.used == 100
    budget.release(60)
    assert budget.try_charge(50) and budget.used == 90
    assert BufferBudget(0).try_charge(10 ** 12)  # <= 0: unlimited


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_peer_log_writes_once_per_peer_per_interval(caplog):
    clock = FakeClock()
    plog = PeerLog(logging.getLogger("test.peerlog"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.peerlog"):
        assert plog.warning("10.0.0.1", "bad %d", 1)
        assert not any(plog.warning("10.0.0.1", "bad %d", i) for i in range(2, 50))
        assert plog.warning("10.0.0.2", "bad from two")  # another peer has its own line
        clock.now += 61
        assert plog.warning("10.0.0.1", "bad %d", 50)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["bad 1", "bad from two",
                        "bad 50 (48 similar event(s) from this peer not logged in the last 60 s)"]


def test_peer_log_table_is_bounded(caplog):
    clock = FakeClock()
    plog = PeerLog(logging.getLogger("test.peerlog"), interval=60, max_peers=4, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.peerlog"):
        for i in range(1000):
            plog.warning("10.0.%d.%d" % (i // 256, i % 256), "peer %d", i)
        assert len(plog._peers) <= 5  # four peers and the shared entry
        assert len(caplog.records) == 5
        clock.now += 61  # stale entries make room again; the held-back count is reported
        assert plog.warning("10.9.9.9", "late")
    assert any("995 more event(s) from (other peers)" in r.getMessage() for r in caplog.records)


# -- over real sockets -------------------------------------------------------------------------
def test_total_buffer_budget_across_connections(make_pair, caplog):
    """Five peers each announce a 1 MiB frame and send part of it; the budget holds two. The
    other three are closed at once (logged once for the one peer host), the held bytes never
    exceed the budget, small messages still get through meanwhile, and a big one does once the
    hogs are gone."""
    a, b, inbox = make_pair(max_message_size=MIB, max_total_buffer_size=2 * MIB + MIB // 2,
                            timeout=10000, frame_timeout=20000)
    with caplog.at_level(logging.WARNING):
        hogs = [connect(b) for _ in range(5)]
        for s in hogs:
            s.sendall(header(MIB) + b"\0" * (100 * 1024))
        wait_for(lambda: sum(map(is_closed, hogs)) == 3, what="three hogs closed")
        budget = b.receiver.budget
        assert budget.used == 2 * (MIB + framing.OVERHEAD) <= budget.limit
        assert b.receiver.stats["over_budget"] == 3
        for i in range(20):  # frames that fit one read buffer are never refused
            a.send(a.get_members(), b"small %d" % i, 6)
        assert inbox.messages == [b"small %d" % i for i in range(20)]
        assert sum(map(is_closed, hogs)) == 3  # the two within budget are still being served
    assert len(lines(caplog, "buffer budget")) == 1  # three refusals, one peer host, one line
    for s in hogs:
        s.close()
    wait_for(lambda: budget.used == 0, what="the closed connections' charges released")
    big = bytes(range(256)) * 3600  # ~900 KiB: charged like the hogs' frames, and it fits now
    a.send(a.get_members(), big, 6)
    assert inbox.messages[-1] == big and budget.used == 0


def test_frame_deadline_is_not_extended_by_trickling_bytes(make_pair, caplog):
    """A peer that sends a byte every 100 ms never stalls for `timeout` (400 ms), yet its frame
    must be complete within frameTimeout (1.5 s) of its first byte. Positive controls: frames
    sent in slices over 0.7 s each are delivered, three of them on one connection (2.1 s in
    all): each frame has a deadline of its own, the connection has none."""
    a, b, inbox = make_pair(timeout=400, frame_timeout=1500)
    trickler = connect(b)
    steady = connect(b)

    def trickle():
        trickler.sendall(header(1000))
        try:
            for _ in range(200):  # 20 s: far beyond the deadline, never silent for 400 ms
                gevent.sleep(0.1)
                trickler.sendall(b"\0")
        except OSError:
            pass  # closed by the receiver

    def slices(sock, data, parts=6, pause=0.12):
        step = -(-len(data) // parts)
        for i in range(0, len(data), step):
            sock.sendall(data[i:i + step])
            gevent.sleep(pause)
    slow = [b"slow frame %d" % i for i in range(3)]
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        t = gevent.spawn(trickle)
        slices(steady, frame(slow[0]))
        assert not is_closed(trickler)  # 0.7 s in: trickling keeps it clear of the 400 ms stall limit
        for data in slow[1:]:
            slices(steady, frame(data))
        wait_for(lambda: is_closed(trickler), timeout=8, what="the trickler closed")
        took = time.monotonic() - started
        t.kill()
    assert took < 6.0, took  # long before its 20 s of trickling ended
    assert b.receiver.stats["frame_timeouts"] == 1
    assert len(lines(caplog, "frameTimeout")) == 1
    assert steady.recv(63, socket.MSG_WAITALL) == framing.ACK_FRAME * 3  # byte messages with ack
    assert not is_closed(steady)
    assert inbox.messages == slow


def test_idle_connections_are_closed(make_pair):
    """A connection silent between frames for idleTimeout is closed; one that keeps sending
    (positive control) stays open. The default closes idle ones too (after five minutes)."""
    assert NioReceiver().idle_timeout == 300000
    a, b, inbox = make_pair(idle_timeout=300)
    silent, busy = connect(b), connect(b)
    for i in range(12):  # 1.2 s of traffic every 100 ms: never idle for 300 ms
        busy.sendall(frame(b"beat %d" % i, options=1))
        gevent.sleep(0.1)
    assert is_closed(silent)
    assert not is_closed(busy)
    assert inbox.messages == [b"beat %d" % i for i in range(12)]
    assert b.receiver.stats["idle_closed"] == 1
    wait_for(lambda: is_closed(busy), timeout=3, what="the busy connection closed once it went quiet")


def test_one_warning_per_peer_host(make_pair, caplog):
    """Ten bad connections from 127.0.0.1 give one warning line; a second host (127.0.0.2)
    gets a line of its own, so the limiting is per peer and not global."""
    a, b, inbox = make_pair()
    with caplog.at_level(logging.WARNING):
        for source in ["127.0.0.1"] * 10 + ["127.0.0.2"] * 3:
            s = connect(b, source)
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            wait_for(lambda: is_closed(s), what="bad connection closed")
            s.close()
    dropped = lines(caplog, "dropping connection from")
    assert b.receiver.stats["errors"] == 13
    assert [r.getMessage().split("'")[1] for r in dropped] == ["127.0.0.1", "127.0.0.2"]
    a.send(a.get_members(), b"still fine", 6)
    assert inbox.messages == [b"still fine"]
