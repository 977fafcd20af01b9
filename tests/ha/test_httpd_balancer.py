"""A real Apache httpd (mod_proxy_balancer, stickysession=JSESSIONID) in front of two plain pycat
nodes (no cluster; Engine jvmRoute node1 / node2) serving a session counter: sessions stick to the
node named by their id's route suffix, and when node1 is SIGKILLed its clients fail over to node2
within a bounded time. Without session replication (not there yet) they start new sessions there;
the replication tests will reuse tests/ha/httpd.py to assert that counters carry on instead."""
import collections
import os
import sys
import time

import pytest

from httpd import Httpd, LoadClients, install_counter_app, require_apache2, route_of, run_clients

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from node_helpers import free_port, wait_until  # noqa: E402

ROUTES = ("node1", "node2")
# from SIGKILL of node1 to the last node1-bound client's first 200 from node2 (retry=1s on the
# member; a connect to a dead loopback port is refused at once, so this is normally well under 1s)
FAILOVER_BOUND = 10.0


@pytest.fixture
def nodes(pycat_node):
    """Two `pycat run` nodes with the counter app at /app: {route: Node}."""
    require_apache2()               # skip before starting anything when there is no httpd
    made = {route: pycat_node(name=route, start=False) for route in ROUTES}
    for node in made.values():
        install_counter_app(node.base)
        node.start(wait=False)
    for node in made.values():
        node.wait_ready("/app/")
    return made


def balancer(tmp_path, nodes, **kwargs):
    return Httpd(tmp_path / "httpd", free_port(), [(route, nodes[route].http_port) for route in ROUTES], **kwargs)


def no_tracebacks(nodes, *routes):
    for route in routes or ROUTES:
        log = nodes[route].log()
        assert "Traceback" not in log, log[-4000:]


@pytest.mark.timeout(90)
def test_sessions_stick_to_the_node_named_by_their_route(tmp_path, nodes):
    with balancer(tmp_path, nodes) as httpd:
        url = httpd.url("/app/count")
        # positive control: a client that never sends its cookie is spread over both nodes, and
        # gets a new session (count 1) on every request
        (loose,) = run_clients(url, clients=1, requests=10, cookies=False)
        assert [(r.status, r.error) for r in loose] == [(200, None)] * 10, loose
        assert {r.node for r in loose} == set(ROUTES), loose
        assert [r.count for r in loose] == [1] * 10 and all(r.sent_sid is None for r in loose)
        assert all(route_of(r.sid) == r.node for r in loose), loose

        results = run_clients(url, clients=20, requests=10)
        per_node = collections.Counter()
        for i, records in enumerate(results):
            assert [(r.status, r.error) for r in records] == [(200, None)] * 10, (i, records)
            assert [r.count for r in records] == list(range(1, 11)), (i, records)
            (sid,) = {r.sid for r in records}
            route = route_of(sid)
            assert route in ROUTES, sid
            assert [r.node for r in records] == [route] * 10, (i, records)
            assert [r.sent_sid for r in records] == [None] + [sid] * 9, (i, records)
            per_node[route] += 1
        assert set(per_node) == set(ROUTES), per_node       # byrequests spreads the new sessions
        print("clients per node: %s" % dict(per_node))

        # httpd's own record agrees: every request carrying a session went to its route's member
        app = lambda: [e for e in httpd.access_entries() if e["request"].startswith("GET /app/")]  # noqa: E731
        wait_until(lambda: len(app()) >= 210, timeout=10, message="210 /app requests in httpd's access log")
        entries = app()
        sticky = [e for e in entries if e["session_route"]]
        assert len(sticky) == 20 * 9, len(sticky)
        assert all(e["status"] == 200 and e["worker"] == e["session_route"] and e["changed"] is None
                   for e in sticky), sticky
        assert collections.Counter(e["worker"] for e in entries if e["status"] == 200).keys() == set(ROUTES)
    assert not httpd.running
    assert "AH00489" in httpd.error_log_text()          # "configured -- resuming normal operations"
    no_tracebacks(nodes)


@pytest.mark.timeout(90)
def test_clients_of_a_killed_node_fail_over_to_the_survivor(tmp_path, nodes):
    node1 = nodes["node1"]
    with balancer(tmp_path, nodes) as httpd, \
            LoadClients(httpd.url("/app/count"), clients=10, interval=0.02) as load:
        n = len(load.clients)
        load.wait(lambda l: all(len(l.ok(i)) >= 3 for i in range(n))
                  and {l.route_of(i) for i in range(n)} == set(ROUTES),
                  message="every client to have a session, on both nodes")
        bound = {route: [i for i in range(n) if load.route_of(i) == route] for route in ROUTES}

        killed_at = time.monotonic()
        node1.kill()

        def from_node2_after_kill(i):
            return [r for r in load.ok(i) if r.node == "node2" and r.t >= killed_at]

        # every node1 client gets answers from node2 (3, to see it stay there), within the bound
        load.wait(lambda l: all(len(from_node2_after_kill(i)) >= 3 for i in bound["node1"]),
                  timeout=FAILOVER_BOUND + 5, message="node1's clients to be answered by node2")
        results = load.stop()

    gaps = {i: from_node2_after_kill(i)[0].t - killed_at for i in bound["node1"]}
    failed = {i: [r for r in results[i] if r.status != 200 or r.error] for i in bound["node1"]}
    print("fail-over gap after SIGKILL of node1 (s): max %.3f, per client %s; failed requests per client %s"
          % (max(gaps.values()), {i: round(g, 3) for i, g in gaps.items()},
             {i: [r.status or r.error for r in f] for i, f in failed.items()}))
    assert max(gaps.values()) < FAILOVER_BOUND, gaps

    for i in bound["node1"]:
        records = results[i]
        first = records.index(from_node2_after_kill(i)[0])
        # before the kill: node1 only; errors only between the kill and the fail-over
        assert all(r.node == "node1" for r in records if r.status == 200 and r.t < killed_at), records
        assert all(killed_at <= r.t <= killed_at + gaps[i] for r in failed[i]), failed[i]
        # from its first node2 answer on, the client stays on node2 (its new cookie names node2)
        after = records[first:]
        assert all(r.status == 200 and r.node == "node2" and route_of(r.sid) == "node2" for r in after), after
        counts = [r.count for r in after]
        assert counts == list(range(counts[0], counts[0] + len(counts))), after
    # node2's own clients never noticed: every answer from node2, counters without a gap
    for i in bound["node2"]:
        records = results[i]
        assert all(r.status == 200 and r.node == "node2" for r in records), records
        assert [r.count for r in records] == list(range(1, len(records) + 1)), records

    # httpd moved node1 sessions to node2 itself: its log shows session route node1, member node2
    moved = [e for e in httpd.access_entries() if e["session_route"] == "node1" and e["worker"] == "node2"]
    assert moved and all(e["status"] == 200 and e["changed"] == "1" for e in moved), moved
    no_tracebacks(nodes, "node2")
