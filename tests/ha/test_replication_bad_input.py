"""Garbage and hostile frames on a node's cluster receiver port: node B of a two-node cluster
(DeltaManager, no AuthInterceptor or EncryptInterceptor) drops them, logs a line saying so, and
keeps serving.

The frames are built with pycat's own codecs, as node A would build them: a ClusterMessage of kind
"session" whose body is ``SessionMessage.to_plain()`` with a ``DeltaRequest.to_plain()`` payload,
encoded by the codec, inside a ChannelData from A's member identity (read from B's log: host,
receiver port and unique id), framed. Options 6 (use_ack,sync), so B's ACK or FAIL_ACK says it has
finished with the message. Every case ends with a positive control: a well-formed delta over the
same route changes the session (peek shows it), so the negative assertions could fail.

Each case runs on a fresh cluster: the receiver's warnings are rate-limited per peer host, and the
drop line must be this case's own.
"""
import itertools
import os
import pickle
import re
import secrets
import shlex
import socket
import uuid

import pytest

from cluster_harness import ASYNC, User, cluster_factory  # noqa: F401  (cluster_factory: a fixture)
from pycat.ha.cluster_message import ClusterMessage
from pycat.ha.session import attr_values
from pycat.ha.session.delta import EVT_SESSION_DELTA, SET, DeltaRequest, SessionMessage
from pycat.tribes.io import codec, framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member

SYNC_ACK_OPTIONS = 6
#: what a drop line says (the receiver's "dropping connection ...", the manager's "... dropped: <why>",
#: "attribute 'x' ... not applied: <why>")
DROP_LINE = re.compile(r"(?i)\b(drop|refus|reject|discard|ignor)\w*|\bnot (applied|loaded)\b")
# per-session versions well above anything the nodes reach by themselves, increasing
_versions = itertools.count(10 ** 9)


# -- building messages --------------------------------------------------------------------------
def delta_plain(app, sid, sets=()):
    delta = DeltaRequest(app, sid, (next(_versions), "node1"))
    for name, value in sets:
        delta.set_attribute(name, value)
    return delta.to_plain()


def session_message(app, sid, payload, event=EVT_SESSION_DELTA):
    return SessionMessage(app, event, sid, payload=payload, unique_id=uuid.uuid4().hex).to_plain()


def _with(plain, index, value):
    """A copy of the flat list ``plain`` with field ``index`` replaced."""
    copy = list(plain)
    copy[index] = value
    return copy


def cluster_value(body, kind="session"):
    """The codec value a cluster sends: the ClusterMessage envelope around ``body``."""
    return ClusterMessage(kind, body, unique_id=uuid.uuid4().hex).to_wire()


def delta_value(app, sid, sets=()):
    return cluster_value(session_message(app, sid, delta_plain(app, sid, sets)))


class Injector:
    """Frames to one receiver port, sent as ``sender`` (a Member)."""

    def __init__(self, port, sender):
        self.port = port
        self.sender = sender

    def channel_data(self, value):
        return ChannelData.create(SYNC_ACK_OPTIONS, self.sender, codec.dumps(value))

    def frame(self, value):
        return self.channel_data(value).encode_frame()

    def _connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def send(self, value):
        """One well-framed message; returns B's answer (ACK or FAIL_ACK) once it processed it."""
        answer = self.exchange(self.frame(value))
        assert answer in (framing.ACK_DATA, framing.FAIL_ACK_DATA), answer
        return answer

    def exchange(self, data):
        """Send bytes and return the first frame body read back; AssertionError if the
        connection closes first or nothing comes within 10 s."""
        with self._connect() as s:
            s.sendall(data)
            decoder = framing.FrameDecoder()
            while True:
                chunk = s.recv(4096)
                assert chunk, "the receiver closed the connection without an acknowledgement"
                frames = decoder.feed(chunk)
                if frames:
                    return frames[0]

    def until_closed(self, data):
        """Send bytes the receiver must refuse; return once it closed the connection."""
        with self._connect() as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return
            while True:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    return
                except socket.timeout:
                    raise AssertionError("the receiver kept the connection open after bad input") from None
                assert chunk == b"" or framing.ACK_DATA not in chunk, "bad input was acknowledged: %r" % chunk
                if not chunk:
                    return

    def send_and_close(self, data):
        """Send bytes and hang up (a peer dying mid-frame)."""
        with self._connect() as s:
            s.sendall(data)


class Pair:
    """Node B under test, A whose identity the frames carry, a session owned by B."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.a, self.b = cluster.nodes
        self.user = User()
        self.sid = self.user.get(self.b, "/set?name=owner&value=bob").json["id"]
        self.app = self.b.info()["manager_name"]
        sender = Member(host="127.0.0.1", port=self.a.rx_port, unique_id=self.a.member_id_seen_by(self.b))
        self.inject = Injector(self.b.rx_port, sender)
        self.mark = self.b.mark()

    def attributes(self):
        got = self.b.peek(self.sid)
        assert got["found"], "the session %s is gone from B: %r" % (self.sid, got)
        return got["attributes"]

    def wait_drop_line(self, what, timeout=10):
        """A drop line in B's log since the bad input was sent."""
        self.b.wait_log(DROP_LINE, since=self.mark, timeout=timeout, what="B to log that it dropped %s" % what)

    def control(self, tag="control"):
        """Positive control: a well-formed delta over the same route does change the session."""
        value = "%s-%s" % (tag, secrets.token_hex(4))
        answer = self.inject.send(delta_value(self.app, self.sid, [(tag, value)]))
        assert answer == framing.ACK_DATA, "a well-formed delta was not acknowledged: %r" % answer
        self.b.wait_peek(self.sid, lambda p: p["found"] and p["attributes"].get(tag) == value,
                         what="the well-formed delta to set %s=%s" % (tag, value))
        return value

    def still_serving(self):
        assert self.b.alive
        resp = self.user.get(self.b, "/get?name=owner")
        assert resp.status == 200 and resp.json == {"id": self.sid, "value": "bob"}
        assert self.b.request("/").status == 200
        for node in (self.a, self.b):
            assert "Replication member removed" not in node.log(node.start_mark), \
                "%s lost a member:\n%s" % (node.name, node.tail())


@pytest.fixture
def pair(cluster_factory):
    cluster = cluster_factory(2, send_options=ASYNC)
    cluster.start()
    return Pair(cluster)


# -- the cases ----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_random_bytes(pair):
    junk = b"\x00not a frame\x00" + os.urandom(8192)
    assert not junk.startswith(framing.START_DATA)
    pair.inject.until_closed(junk)
    pair.wait_drop_line("random bytes")
    pair.still_serving()
    pair.control()
    assert pair.attributes().keys() == {"owner", "control"}


@pytest.mark.timeout(60)
def test_truncated_frames(pair):
    one = pair.inject.frame(delta_value(pair.app, pair.sid, [("cut", "one")]))
    two = pair.inject.frame(delta_value(pair.app, pair.sid, [("cut", "two")]))
    assert len(one) == len(two)
    # half a frame, then the peer hangs up
    pair.inject.send_and_close(one[:len(one) // 2])
    # half a frame, then a whole one on the same connection: the framing is lost, both go
    pair.inject.until_closed(one[:len(one) // 2] + two)
    pair.wait_drop_line("a truncated frame")
    # a whole frame around a truncated ChannelData
    body = pair.inject.channel_data(delta_value(pair.app, pair.sid, [("cut", "three")])).encode()
    pair.inject.until_closed(framing.encode_frame(body[:len(body) - 20]))
    pair.still_serving()
    pair.control()
    assert "cut" not in pair.attributes()
    assert pair.attributes().keys() == {"owner", "control"}


@pytest.mark.timeout(60)
def test_malformed_session_payloads(pair):
    app, sid = pair.app, pair.sid
    good = delta_plain(app, sid, [("partial", "x")])
    # plain forms by position: SessionMessage [2, app, evt, sid, ts, uid, payload], DeltaRequest
    # [2, app, id, counter, writer, actions]
    bad_messages = {
        "body is not a session message": cluster_value("not a session message"),
        "session message of an unknown event": cluster_value(_with(session_message(app, sid, good), 2, 999)),
        "delta without payload": cluster_value(session_message(app, sid, None)),
        "delta missing its actions": cluster_value(session_message(app, sid, good[:5])),
        # a valid SET, then an unknown action code: the delta is refused whole, the SET too
        "delta with an unknown action": cluster_value(session_message(
            app, sid, _with(good, 5, good[5] + [[99, "boom"]]))),
        "delta with a malformed value": cluster_value(session_message(
            app, sid, _with(good, 5, [[SET, "partial", ("zz", 1)]]))),
        "delta for another session than its envelope": cluster_value(session_message(
            app, sid, delta_plain(app, secrets.token_hex(16).upper() + ".node1", [("partial", "x")]))),
    }
    for what, value in bad_messages.items():
        pair.inject.send(value)     # ACK or FAIL_ACK: B is done with it
        assert pair.b.alive, what
    pair.wait_drop_line("malformed session messages")
    pair.still_serving()
    pair.control()
    assert "partial" not in pair.attributes(), "part of a malformed delta was applied"
    assert pair.attributes().keys() == {"owner", "control"}


@pytest.mark.timeout(60)
def test_delta_for_an_unknown_session(pair):
    ghost = secrets.token_hex(16).upper() + ".node1"
    pair.inject.send(delta_value(pair.app, ghost, [("ghost", "boo")]))
    # a delta may overtake its session's creation on another connection: it waits a few seconds first
    pair.wait_drop_line("a delta for an unknown session", timeout=20)
    pair.still_serving()
    pair.control()
    assert pair.b.peek(ghost)["found"] is False, "a delta without CREATE made a session"
    assert ghost not in pair.b.ids()
    assert "ghost" not in pair.attributes()


@pytest.mark.timeout(60)
def test_message_for_an_unknown_app(pair):
    pair.inject.send(delta_value("localhost#/no-such-app", pair.sid, [("stray", "x")]))
    pair.wait_drop_line("a message for an unknown app")
    pair.still_serving()
    pair.control()
    assert "stray" not in pair.attributes(), "a message for another app changed /app's session"


class _Exploit:
    """Unpickling this runs ``touch <path>`` (os.system through __reduce__)."""

    def __init__(self, path):
        self.command = "touch %s" % shlex.quote(str(path))

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.timeout(60)
def test_dill_blob_from_an_unauthenticated_channel_is_not_loaded(pair, tmp_path):
    marker = tmp_path / "blob-was-loaded"
    code, blob = attr_values.encode(_Exploit(marker))
    assert code == "B" and isinstance(blob, bytes)
    # the blob is potent: loading one like it (another path) creates the file
    proof = tmp_path / "proof"
    pickle.loads(attr_values.encode(_Exploit(proof))[1])
    assert proof.exists()

    value = delta_value(pair.app, pair.sid, [("evil", attr_values.Blob(blob)), ("sibling", "applied")])
    actions = value[5][6][5]        # the envelope's body, the session message's payload, the delta's actions
    assert ("B", blob) in [tuple(action[2]) for action in actions
                           if action[0] == SET and type(action[2]) is tuple]
    pair.inject.send(value)
    # the delta's plain attribute applies; the blob is neither loaded nor stored
    pair.b.wait_peek(pair.sid, lambda p: p["found"] and p["attributes"].get("sibling") == "applied",
                     what="the delta's plain attribute to apply beside the blob")
    assert not marker.exists(), "B unpickled a blob from an unauthenticated channel"
    attrs = pair.attributes()
    assert "evil" not in attrs, "the blob became an attribute: %r" % attrs
    assert attrs == {"owner": "bob", "sibling": "applied"}
    pair.wait_drop_line("a dill blob from an unauthenticated peer")
    pair.still_serving()
    pair.control()
    assert not marker.exists()
