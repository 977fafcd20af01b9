"""Session replication between real nodes (DeltaManager, `pycat run` subprocesses), in both send
modes: channelSendOptions="6" (use_ack,sync: a response is written only once every member applied
the change, so a replica is checked at once) and "8" (async: replicas are waited for).

* a session created on A, changed on B (a new attribute, a list appended to in place), read on C;
* no first update lost: 200 new sessions, each created with its first value on A, peeked on B
  right away;
* 50 concurrent writers on one session, alternately on A and B (no JvmRouteBinderValve, the cookie
  never changes): once they are done, A and B settle on the same attributes.
"""
import threading
import time

import pytest

from cluster_harness import ASYNC, SYNC, User, wait_until, cluster_factory  # noqa: F401  (cluster_factory: a fixture)

MODES = [pytest.param(SYNC, id="sync6"), pytest.param(ASYNC, id="async8")]


def _replicated(node, sid, expected, mode, what):
    """sync: ``node`` already holds ``expected``; async: it does within a few seconds."""
    if mode == SYNC:
        got = node.peek(sid)
        assert got["found"] and got["attributes"] == expected, \
            "sync mode: %s on %s right after the response: %r, expected %r" % (what, node.name, got, expected)
    else:
        node.wait_attributes(sid, expected, timeout=5, what=what)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_created_on_a_changed_on_b_read_on_c(cluster_factory, mode):
    cluster = cluster_factory(3, send_options=mode)
    a, b, c = cluster.nodes
    cluster.start()
    user = User()

    sid = user.get(a, "/set?name=user&value=alice").json["id"]
    assert sid.endswith(".node1")
    assert user.get(a, "/append?value=one").json["list"] == ["one"]
    expected = {"user": "alice", "list": ["one"]}
    for node in (b, c):
        _replicated(node, sid, expected, mode, "the session created on A")

    # on B: the id moves to node2 (JvmRouteBinderValve; the user follows), a new attribute, an in-place append
    hexid = sid.rsplit(".", 1)[0]
    assert user.get(b, "/set?name=color&value=blue").json["id"] == hexid + ".node2" == user.sid
    sid_b = user.sid
    assert user.get(b, "/append?value=two").json == {"id": sid_b, "list": ["one", "two"]}
    expected = {"user": "alice", "list": ["one", "two"], "color": "blue"}
    assert b.peek(sid_b)["attributes"] == expected
    for node in (a, c):
        _replicated(node, sid_b, expected, mode, "the session changed on B")
        assert node.peek(sid)["found"] is False, "the old id %s still exists on %s" % (sid, node.name)

    # on C, through ordinary requests
    assert user.get(c, "/get?name=color").json["value"] == "blue"
    assert user.sid == hexid + ".node3"
    assert user.get(c, "/get?name=list").json["value"] == ["one", "two"]
    assert user.get(c, "/get?name=user").json == {"id": hexid + ".node3", "value": "alice"}
    assert c.peek(user.sid)["attributes"] == expected


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_no_first_update_lost(cluster_factory, mode):
    cluster = cluster_factory(2, send_options=mode)
    a, b = cluster.nodes
    cluster.start()
    patience = 0.5 if mode == SYNC else 2.0
    lost, late = [], []
    for i in range(200):
        value = "first-%d" % i
        sid = User().get(a, "/set?name=first&value=%s" % value).json["id"]
        got = b.peek(sid)                      # immediately
        if got["found"] and got["attributes"] == {"first": value}:
            continue
        late.append(sid)
        try:
            wait_until(lambda: b.peek(sid)["attributes"] == {"first": value}, timeout=patience, interval=0.02)
        except AssertionError:
            lost.append((sid, value, b.peek(sid)))
    assert not lost, "%d of 200 first updates never reached B (%d late); first lost: %r" % (
        len(lost), len(late), lost[:3])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_concurrent_writers_on_both_nodes_settle_alike(cluster_factory, mode):
    cluster = cluster_factory(2, send_options=mode, binder=False)
    a, b = cluster.nodes
    cluster.start()
    owner = User(follow=False)
    sid = owner.get(a, "/set?name=x&value=initial").json["id"]
    b.wait_attributes(sid, {"x": "initial"}, what="the session created on A")

    writers, rounds = 50, 4
    barrier = threading.Barrier(writers)
    results, errors = [], []

    def write(i):
        user = User(sid=sid, follow=False)
        try:
            barrier.wait(timeout=30)
            for k in range(rounds):
                node = (a, b)[(i + k) % 2]
                value = "w%d-%d" % (i, k)
                resp = user.request(node, "/set?name=x&value=%s" % value)
                results.append((node.name, value, resp.status,
                                resp.json.get("id") if resp.status == 200 else resp.body))
        except Exception as exc:  # reported below, with the rest
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 40
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "writers still running after 40 s"
    assert not errors, errors[:5]
    assert len(results) == writers * rounds
    bad = [r for r in results if r[2] != 200 or r[3] != sid]
    assert not bad, "requests that failed or did not use the session %s: %r" % (sid, bad[:5])

    def settled():
        pa, pb = a.peek(sid), b.peek(sid)
        return pa["found"] and pb["found"] and pa["attributes"] == pb["attributes"] and pa["attributes"]
    try:
        final = wait_until(settled, timeout=10, interval=0.1)
    except AssertionError:
        raise AssertionError("A and B never agreed after the writers finished: A=%r B=%r"
                             % (a.peek(sid), b.peek(sid))) from None
    assert final == a.peek(sid)["attributes"] == b.peek(sid)["attributes"]
    assert set(final) == {"x"} and final["x"] in {r[1] for r in results}
