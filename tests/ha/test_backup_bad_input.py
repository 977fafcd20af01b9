"""Hostile map messages on a BackupManager node's cluster port: node B of a two-node cluster drops
them, logs a line saying so, keeps serving, and still takes well-formed map messages.

Frames are built as node A would build them (tests/ha/test_replication_bad_input.py's Injector:
ChannelData from A's member identity, options 6 so B's ACK says it has finished with the message),
carrying map messages of pycat.tribes.tipis.map_message. Well-formed PROXY messages for a new key
are the positive controls: B's map then knows the key as a proxy (the test app's /roles shows it).
An RPC is answered to the sender's address, so the RETRIEVE case sends as a fake member whose
"receiver" is a socket of this test, which reads B's answer.
"""
import secrets
import socket
import threading
import uuid

import pytest

from cluster_harness import SYNC, User, cluster_factory  # noqa: F401  (cluster_factory: a fixture)
from pycat.tribes.group import rpc
from pycat.tribes.io import codec, framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member
from pycat.tribes.tipis import map_message as mm
from test_replication_bad_input import DROP_LINE, Injector


def fake_key():
    return "%s.node1" % secrets.token_hex(16).upper()


class MapPair:
    def __init__(self, cluster):
        self.a, self.b = cluster.nodes
        self.user = User()
        self.sid = self.user.get(self.b, "/set?name=owner&value=bob").json["id"]
        self.map_id = (self.b.info()["manager_name"] + "-map").encode("iso-8859-1")
        a_id = self.a.member_id_seen_by(self.b)
        self.a_member = Member(host="127.0.0.1", port=self.a.rx_port, unique_id=a_id)
        self.inject = Injector(self.b.rx_port, self.a_member)
        self.b.wait_peek(self.sid, lambda p: p["role"] == "primary", what="B primary of its session")
        self.a.wait_peek(self.sid, lambda p: p["role"] == "backup", what="A the backup")
        self.mark = self.b.mark()

    def message(self, kind, key=None, map_id=None, **fields):
        return mm.MapMessage(map_id or self.map_id, kind, key, fields.get("value"), fields.get("diff", False),
                             fields.get("primary"), fields.get("backups", ()), fields.get("state"),
                             fields.get("version", 0)).to_plain()

    def proxy(self, key, map_id=None):
        """A well-formed PROXY from A: key lives on A (primary), no backup."""
        return self.message(mm.PROXY, key, map_id, primary=self.a_member, version=10 ** 9)

    def control(self):
        key = fake_key()
        assert self.inject.send(self.proxy(key)) == framing.ACK_DATA
        self.b.wait_peek(key, lambda p: p["role"] == "proxy", what="B's map to take a well-formed PROXY")

    def wait_drop_line(self, what):
        self.b.wait_log(DROP_LINE, since=self.mark, timeout=10, what="B to log that it dropped %s" % what)

    def still_serving(self):
        assert self.b.alive and self.a.alive
        resp = self.user.get(self.b, "/get?name=owner")
        assert resp.status == 200 and resp.json == {"id": self.sid, "value": "bob"}
        assert self.b.peek(self.sid)["role"] == "primary"
        for node in (self.a, self.b):
            assert "Traceback" not in node.log(), node.tail(100)


@pytest.fixture
def pair(cluster_factory):
    cluster = cluster_factory(2, send_options=SYNC, manager="backup")
    cluster.start()
    return MapPair(cluster)


@pytest.mark.timeout(60)
def test_malformed_map_messages_are_dropped(pair):
    good = pair.proxy(fake_key())
    bad = [
        good[:5],                                                    # too few fields
        tuple(good[:3]) + (99,) + tuple(good[4:]),                   # unknown type
        tuple(good[:4]) + (["not", "a", "key"],) + tuple(good[5:]),  # key of a wrong type
        tuple(good[:7]) + (("127.0.0.1", "x", b""),) + tuple(good[8:]),   # a broken member
        tuple(good[:9]) + (-5,) + tuple(good[10:]),                  # a negative version
        tuple(good[:3]) + (mm.BACKUP, pair.sid, "garbage", True) + tuple(good[7:]),   # a diff B cannot read
    ]
    for value in bad:
        assert pair.inject.send(value) == framing.ACK_DATA     # taken and dropped, not a FAIL_ACK
    pair.wait_drop_line("malformed map messages")
    pair.still_serving()
    assert pair.b.peek(pair.sid)["attributes"] == {"owner": "bob"}
    pair.control()


@pytest.mark.timeout(60)
def test_a_message_for_a_map_this_node_does_not_run_is_dropped(pair):
    key = fake_key()
    assert pair.inject.send(pair.proxy(key, map_id=b"localhost#/nope-map")) == framing.ACK_DATA
    pair.b.wait_log("no listener took a message", since=pair.mark, timeout=10,
                    what="B to log the message nobody took")
    assert pair.b.peek(key)["role"] is None
    pair.still_serving()
    # positive control: the same message for B's map is taken
    assert pair.inject.send(pair.proxy(key)) == framing.ACK_DATA
    pair.b.wait_peek(key, lambda p: p["role"] == "proxy", what="the PROXY for B's own map")


class FakeReceiver:
    """A member's receiver port: acknowledges each frame and keeps the decoded values."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.values = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        decoder = framing.FrameDecoder()
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                for body in decoder.feed(data):
                    message = ChannelData.decode(body)
                    conn.sendall(framing.ACK_FRAME)
                    with self.arrived:
                        self.values.append(rpc.from_wire(codec.loads(message.message)))
                        self.arrived.notify_all()

    def wait_reply(self, uuid_bytes, timeout=10.0):
        with self.arrived:
            ok = self.arrived.wait_for(lambda: any(isinstance(v, rpc.RpcMessage) and v.uuid == uuid_bytes
                                                   for v in self.values), timeout)
            assert ok, "no RPC reply arrived: %r" % self.values
            return next(v for v in self.values if isinstance(v, rpc.RpcMessage) and v.uuid == uuid_bytes)

    def close(self):
        self.sock.close()


@pytest.mark.timeout(60)
def test_a_retrieve_for_an_unknown_key_is_answered_empty(pair):
    fake = FakeReceiver()
    try:
        me = Member(host="127.0.0.1", port=fake.port, unique_id=uuid.uuid4().bytes)
        inject = Injector(pair.b.rx_port, me)

        def retrieve(key):
            request = rpc.RpcMessage(pair.map_id, uuid.uuid4().bytes, pair.message(mm.RETRIEVE_BACKUP, key))
            assert inject.send(rpc.to_wire(request)) == framing.ACK_DATA
            return fake.wait_reply(request.uuid)

        empty = retrieve(fake_key())
        assert empty.reply and empty.message is None
        # positive control: the same request for B's session is answered with the session
        full = mm.MapMessage.from_plain(retrieve(pair.sid).message)
        assert full.type == mm.RETRIEVE_BACKUP and full.key == pair.sid and full.value is not None
        pair.still_serving()
    finally:
        fake.close()
