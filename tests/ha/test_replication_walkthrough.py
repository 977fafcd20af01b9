"""The "How it Works" walk-through of Tomcat's cluster how-to, end to end, as one story with two real
nodes A (node1) and B (node2), DeltaManager and channelSendOptions="8" (asynchronous):

1. A starts (alone) and a user gets a session there.
2. B starts and receives the state: its first successful HTTP answer already shows A's session.
3. A creates S1 (attributes set, one list changed in place); B's copy shows the data.
4. A crashes (kill -9).
5. B serves S1 with its data; JvmRouteBinderValve rewrites the id `<hex>.node1` to `<hex>.node2`
   (new Set-Cookie, the old id exists nowhere); the user goes on changing S1 on B.
6. A restarts: at its first successful HTTP answer it already holds S1, under its new id, with
   the changes made while it was down.
7. S1 is invalidated on A: it disappears from B.
8. S2 is created on B with a max inactive interval of a few seconds: A holds it (positive control,
   before its expiry time), then B's expiry removes it from A too, before A's copy (a backup, which
   expires by itself only at twice the interval) could have gone on its own.
"""
import time

import pytest

from cluster_harness import ASYNC, User, q, wait_until, cluster_factory  # noqa: F401  (cluster_factory: a fixture)

SHORT = 6     # S2's max inactive interval, seconds


def _attrs(node, sid):
    return node.peek(sid)["attributes"]


@pytest.mark.timeout(90)
def test_howto_walkthrough_two_nodes_async(cluster_factory):
    cluster = cluster_factory(2, send_options=ASYNC)
    a, b = cluster.nodes

    # 1. A starts alone; a first user gets a session there (nobody to replicate it to yet)
    cluster.start([a])
    early = User()
    s0 = early.get(a, "/set?name=early&value=before-b").json["id"]
    assert s0.endswith(".node1")

    # 2. B starts and asks A for every session while it starts: its FIRST successful answer has S0
    b.start()
    first = b.wait_http("/app/peek?id=%s" % q(s0))
    assert first.json["found"] is True, "B answered before it held A's sessions: %r" % first.json
    assert first.json["attributes"] == {"early": "before-b"}
    b.wait_started()
    cluster.wait_mesh()

    # 3. A creates S1: set attributes and change a list in place; B's copy follows
    alice = User()
    s1 = alice.get(a, "/set?name=user&value=alice").json["id"]
    assert s1.endswith(".node1") and alice.sid == s1
    assert alice.get(a, "/append?value=book").json["list"] == ["book"]
    assert alice.get(a, "/inc").json["count"] == 1
    expected = {"user": "alice", "list": ["book"], "count": 1}
    assert _attrs(a, s1) == expected
    b.wait_attributes(s1, expected, what="B's copy of S1")

    # 4. A crashes
    a.kill()

    # 5. B serves S1 with its data; the id moves to B's jvmRoute and the user follows the new cookie
    hex1 = s1.rsplit(".", 1)[0]
    answer = alice.get(b, "/get?name=user")
    assert answer.json["value"] == "alice"
    assert answer.cookie == hex1 + ".node2", "no Set-Cookie with the rewritten id: %r %r" % (answer, answer.headers)
    assert answer.cookie_path == "/app"
    s1b = alice.sid
    assert answer.json["id"] == s1b
    assert b.peek(s1)["found"] is False, "the old id %s still exists on B" % s1
    assert _attrs(b, s1b) == expected
    assert alice.get(b, "/append?value=pen").json["list"] == ["book", "pen"]
    alice.get(b, "/inc")
    expected = {"user": "alice", "list": ["book", "pen"], "count": 2}
    assert _attrs(b, s1b) == expected

    # 6. A restarts; its first successful HTTP answer already shows S1 (new id, B's changes included)
    first = cluster.restart(a, wait_http="/app/peek?id=%s" % q(s1b))
    assert first.json["found"] is True, "A answered before it held the sessions: %r" % first.json
    assert first.json["attributes"] == expected
    assert a.peek(s1)["found"] is False, "the pre-crash id %s came back on A" % s1
    assert a.peek(s0)["attributes"] == {"early": "before-b"}

    # 7. invalidating S1 on A removes it from B (positive control first: B holds it now)
    assert b.peek(s1b)["found"] is True
    done = alice.get(a, "/invalidate").json
    assert done["invalidated"] is True
    ids = {s1, s1b, hex1 + ".node1"}   # A's binder may move the id back to .node1 before invalidating
    wait_until(lambda: not any(b.peek(sid)["found"] for sid in ids), timeout=5,
               message="S1 to disappear from B after its invalidation on A")
    assert not any(a.peek(sid)["found"] for sid in ids)
    assert not [sid for sid in a.ids() + b.ids() if sid.startswith(hex1)]
    assert alice.get(b, "/get?name=user").json == {"id": None, "value": None}

    # 8. S2, created on B with a short max inactive interval, expires on A too
    bob = User()
    created = time.monotonic()
    s2 = bob.get(b, "/set?name=kind&value=short-lived&mii=%d" % SHORT).json["id"]
    assert s2.endswith(".node2")
    assert b.peek(s2)["max_inactive_interval"] == SHORT
    a.wait_peek(s2, lambda p: p["found"], timeout=3, what="A to hold S2")
    assert time.monotonic() - created < SHORT, "positive control too late: S2 may already have expired"
    assert _attrs(a, s2) == {"kind": "short-lived"}
    # B (the primary) expires S2 after SHORT s and tells A; A's own copy would wait 2 x SHORT
    left = 2 * SHORT - 0.5 - (time.monotonic() - created)
    a.wait_peek(s2, lambda p: not p["found"], timeout=left,
                what="S2 (max inactive %d s, created on B) to be removed from A by B's expiry" % SHORT)
    assert time.monotonic() - created >= SHORT - 0.5, "S2 went before its time"
    b.wait_peek(s2, lambda p: not p["found"], timeout=3, what="S2 to be gone from B (its primary) too")
