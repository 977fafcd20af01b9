"""RpcChannel: reply modes, timeout, NoRpcChannelReply, left-overs (in memory and over TCP)."""
import time

import gevent
import pytest

from pycat.tribes import channel as ch
from pycat.tribes.group import rpc
from pycat.tribes.group.rpc import RpcChannel

from _channel_fakes import FakeNetwork, real_channel


class Echo:
    def __init__(self, name, delays=None):
        self.name, self.delays = name, delays or {}  # request -> seconds to think
        self.left = []

    def reply_request(self, msg, sender):
        if self.delays.get(msg):
            gevent.sleep(self.delays[msg])
        return {"from": self.name, "echo": msg}

    def left_over(self, msg, sender):
        self.left.append(msg)


def cluster(n, real=False, delays=None):
    net = FakeNetwork()
    chans = [real_channel(net) if real else net.channel() for _ in range(n)]
    for c in chans:
        c.start()
    rpcs = [RpcChannel(b"echo", c, Echo("n%d" % i, (delays or {}).get(i))) for i, c in enumerate(chans)]
    return chans, rpcs


@pytest.mark.parametrize("real", [False, True])
def test_all_reply(real):
    chans, rpcs = cluster(4, real)
    replies = rpcs[0].send(chans[0].get_members(), "ping", rpc.ALL_REPLY, ch.USE_ACK, 2000)
    assert sorted(r.message["from"] for r in replies) == ["n1", "n2", "n3"]
    assert all(r.message["echo"] == "ping" for r in replies)
    assert {r.source for r in replies} == set(chans[0].get_members())
    for c in chans:
        c.stop()


@pytest.mark.timeout(60)
def test_first_majority_no_reply_modes_and_timeout():
    # a slow listener holds its connection (as in Tomcat: one connection's messages are processed
    # in order), so requests go async (8): the caller never waits for a busy node's ACK.
    # All five nodes share this process's hub, so the margins between "answers in time" and "too
    # slow" are whole seconds: a loaded CI box or a GC pause must not move a node across the line.
    slow = 1.5   # n4 thinks this long about requests 1 and 4 (so answers 4 at about 2 * slow)
    chans, rpcs = cluster(5, real=True, delays={2: {4: 0.2}, 3: {4: 0.2}, 4: {1: slow, 4: slow}})
    members = chans[0].get_members()
    t = time.monotonic()
    first = rpcs[0].send(members, 1, rpc.FIRST_REPLY, 8, 3000)
    assert len(first) >= 1 and time.monotonic() - t < slow * 0.75  # n4's thinking is not waited for
    majority = rpcs[0].send(members, 2, rpc.MAJORITY_REPLY, 8, 3000)
    assert len(majority) >= 2
    gevent.sleep(0.1)  # let the stragglers of 1 and 2 answer (they become left-overs)
    assert rpcs[0].send(members, 3, rpc.NO_REPLY, 8, 3000) == []
    t = time.monotonic()
    partial = rpcs[0].send(members, 4, rpc.ALL_REPLY, 8, 1000)
    # returns at the 1 s timeout: not earlier, and not when n4 answers (about 2 s later still)
    assert 0.95 < time.monotonic() - t < 1.0 + slow * 0.75
    assert sorted(r.message["from"] for r in partial) == ["n1", "n2", "n3"]  # n4 too slow
    late = {"from": "n4", "echo": 4}  # n4's answer to the request that timed out
    wait_until = time.monotonic() + 15
    while late not in rpcs[0].callback.left and time.monotonic() < wait_until:
        gevent.sleep(0.05)
    assert late in rpcs[0].callback.left
    for c in chans:
        c.stop()


def test_node_without_rpc_listener_answers_no_reply():
    net = FakeNetwork()
    a, b, c = net.channel(), net.channel(), net.channel()
    for x in (a, b, c):
        x.start()
    caller = RpcChannel(b"svc", a, Echo("a"))
    RpcChannel(b"svc", b, Echo("b"))
    # c has no RpcChannel for b"svc": it answers NoRpcChannelReply, so ALL completes at once
    t = time.monotonic()
    replies = caller.send(a.get_members(), "q", rpc.ALL_REPLY, 2, 5000)
    assert time.monotonic() - t < 1.0
    assert [r.message["from"] for r in replies] == ["b"]
    for x in (a, b, c):
        x.stop()


def test_requests_never_carry_sync_ack():
    net = FakeNetwork()
    a, b = net.channel(), net.channel()
    a.start(), b.start()
    caller = RpcChannel(b"x", a, Echo("a"))
    RpcChannel(b"x", b, Echo("b"), reply_options=6)
    caller.send(a.get_members(), "q", rpc.ALL_REPLY, 6, 1000)
    assert all(not m.options & ch.SYNCHRONIZED_ACK for _, m in net.sent)
    a.stop(), b.stop()


def test_wire_form_round_trip():
    m = rpc.RpcMessage(b"id", b"u" * 16, {"a": 1}, True)
    back = rpc.from_wire(rpc.to_wire(m))
    assert (back.rpc_id, back.uuid, back.message, back.reply) == (b"id", b"u" * 16, {"a": 1}, True)
    nr = rpc.from_wire(rpc.to_wire(rpc.NoRpcChannelReply(b"id", b"u" * 16)))
    assert isinstance(nr, rpc.NoRpcChannelReply) and nr.reply
    assert rpc.from_wire({"plain": 1}) == {"plain": 1}
