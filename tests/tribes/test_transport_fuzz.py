"""Bad input on the receiver: it drops, logs, closes the connection and stays a healthy member."""
import logging
import os
import random
import struct

import gevent
import pytest
from gevent import socket

from pycat.tribes.io import framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member

from _channel_fakes import Collect, FakeNetwork, real_channel, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair():
    net = FakeNetwork()
    a = real_channel(net)
    b = real_channel(net, timeout=300, max_message_size=1 << 20)
    lb = Collect()
    b.add_channel_listener(lb)
    a.start()
    b.start()
    yield a, b, lb
    a.stop()
    b.stop()


def connect(b):
    return socket.create_connection(("127.0.0.1", b.receiver.bound_port), timeout=2)


def closed_by_peer(sock, timeout=2.0):
    """True once the receiver closed the connection."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def healthy(a, b, lb, tag):
    assert b.receiver.state.value == "STARTED" and b.state.value == "STARTED"
    a.send(a.get_members(), tag, 6)
    assert lb.messages[-1] == tag


def good_frame(data=b"ok"):
    return ChannelData.create(3, Member.local("127.0.0.1", 9), data).encode_frame()  # byte message, ack


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\n\r\n",
    b"FLT2002" + struct.pack(">I", 3) + b"abc" + b"XXX2003",           # wrong end marker
    b"FLT2002" + struct.pack(">I", 0xFFFFFFF0),                          # absurd length
    b"FLT2002" + struct.pack(">I", 5) + b"hello" + b"TLF2003",          # not a ChannelData
    b"XLT2002",                                                          # wrong start marker
])
def test_bad_frames_close_the_connection(pair, garbage, caplog):
    a, b, lb = pair
    with caplog.at_level(logging.WARNING):
        s = connect(b)
        s.sendall(garbage)
        assert closed_by_peer(s)
        s.close()
    assert "dropping" in caplog.text
    healthy(a, b, lb, b"after garbage")


def test_random_bytes(pair):
    a, b, lb = pair
    rnd = random.Random(7)
    for i in range(30):
        s = connect(b)
        try:
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))))
        except OSError:
            pass
        s.close()
    healthy(a, b, lb, b"after random bytes")


def test_good_frames_before_garbage_are_delivered(pair):
    a, b, lb = pair
    s = connect(b)
    s.sendall(good_frame(b"first") + b"garbage!")
    assert closed_by_peer(s)
    wait_for(lambda: b"first" in lb.messages)


def test_frame_split_byte_by_byte_is_delivered(pair):
    a, b, lb = pair
    s = connect(b)
    for byte in good_frame(b"slow but steady"):
        s.sendall(bytes([byte]))
    assert framing.ACK_FRAME == s.recv(21, socket.MSG_WAITALL)
    assert lb.messages == [b"slow but steady"]


def test_truncated_frame_then_stall_times_out(pair, caplog):
    a, b, lb = pair
    frame = good_frame(b"never completed")
    with caplog.at_level(logging.WARNING):
        s = connect(b)
        s.sendall(frame[:-5])
        assert closed_by_peer(s, timeout=3)     # receiver timeout=300 ms mid-frame
    assert "stalled" in caplog.text
    assert b"never completed" not in lb.messages
    healthy(a, b, lb, b"after stall")


def test_silent_peers_do_not_block_others(pair):
    a, b, lb = pair
    idle = [connect(b) for _ in range(50)]
    healthy(a, b, lb, b"with idle peers")
    for s in idle:
        s.close()


def test_garbage_flood(pair):
    a, b, lb = pair

    def flood():
        for _ in range(200):
            try:
                s = connect(b)
                s.sendall(os.urandom(512))
                s.close()
            except OSError:
                pass
    gs = [gevent.spawn(flood) for _ in range(4)]
    for i in range(20):
        a.send(a.get_members(), b"during flood %d" % i, 2)
    gevent.joinall(gs)
    wait_for(lambda: len(lb.messages) == 20)
    assert b.receiver.stats["errors"] > 0
    healthy(a, b, lb, b"after flood")


def test_memory_bounded_by_max_message_size(pair):
    a, b, lb = pair
    s = connect(b)
    # announce 2 MiB (> 1 MiB max): refused at the header, nothing buffered
    s.sendall(b"FLT2002" + struct.pack(">I", 2 << 20) + b"\0" * 1000)
    assert closed_by_peer(s)
    healthy(a, b, lb, b"after oversize")


def test_udp_garbage_is_dropped():
    net = FakeNetwork()
    a, b = real_channel(net), real_channel(net, udp_port=0)
    lb = Collect()
    b.add_channel_listener(lb)
    a.start()
    b.start()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rnd = random.Random(5)
        for i in range(300):
            junk = [os.urandom(rnd.randint(1, 1500)), b"FLT2002" + struct.pack(">I", 0xFFFFFF00),
                    good_frame(b"ok")[:-3]][i % 3]
            s.sendto(junk, ("127.0.0.1", b.receiver.bound_udp_port))
            if i % 10 == 0:
                gevent.sleep(0.001)  # a flood beyond the socket buffer is dropped by the kernel
        s.close()
        wait_for(lambda: b.receiver.stats["errors"] >= 250)
        a.send(a.get_members(), b"after udp garbage", ch_udp_ack())
        assert lb.messages == [b"after udp garbage"]
    finally:
        a.stop()
        b.stop()


def ch_udp_ack():
    from pycat.tribes import channel as ch
    return ch.UDP | ch.USE_ACK


def test_connection_flood_is_capped():
    net = FakeNetwork()
    a, b = real_channel(net), real_channel(net, max_connections=20)
    lb = Collect()
    b.add_channel_listener(lb)
    a.start()
    b.start()
    try:
        idle = [connect(b) for _ in range(40)]
        wait_for(lambda: b.receiver.stats["connections"] >= 40)
        assert len(b.receiver._connections) == 20
        refused = sum(closed_by_peer(s, timeout=0.2) for s in idle)
        assert refused == 20
        for s in idle:
            s.close()
        wait_for(lambda: len(b.receiver._connections) == 0)
        healthy(a, b, lb, b"after connection flood")
    finally:
        a.stop()
        b.stop()
