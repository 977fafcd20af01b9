"""BackupManager end to end: real `pycat run` nodes on 127.0.0.1 (tests/ha/cluster_harness.py,
``manager="backup"``: the how-to's BackupManager with mapSendOptions="6"), the session counter of
tests/ha/httpd.py behind a real Apache httpd (mod_proxy_balancer, sticky on JSESSIONID, route =
jvmRoute), and each node's map looked at through the test app's /roles (primary, backup or proxy,
as that node's map sees each session).

* Four nodes, two of them killed with SIGKILL one after the other: every session always continues
  on another node with its data (counts a client saw never go back or skip, except across requests
  that failed), and after each kill every live session again has exactly two copies (one primary,
  one backup) and a proxy on every other running node.
* Four nodes, three running the app: the fourth holds none of its sessions; a graceful stop of a
  primary moves its sessions (a new primary and backup each), none lost.
"""
import collections
import os
import pathlib
import re
import time

import pytest
from lxml import etree

from cluster_harness import SYNC, User, cluster_factory, install_app, wait_until  # noqa: F401
from httpd import Httpd, LoadClients, require_apache2
from node_helpers import free_port
from test_failover_httpd import check_counts, failed, hex_of, install_failover_app, ok

CLIENTS = 24
INTERVAL = 0.05
ERROR_WINDOW = 3.0         # seconds after a kill in which failed requests are allowed
SETTLE_TIMEOUT = 20.0


def roles_by_node(nodes, app="app"):
    return {node.name: node.roles(app) for node in nodes}


def layout(nodes, sids, app="app"):
    """{sid: sorted roles over ``nodes``} for each of ``sids``."""
    seen = roles_by_node(nodes, app)
    return {sid: sorted(str(seen[n.name].get(sid)) for n in nodes) for sid in sids}


def settled(nodes, sids, app="app"):
    """Every sid: one primary, one backup, a proxy on each other running node."""
    want = sorted(["primary", "backup"] + ["proxy"] * (len(nodes) - 2))
    return all(r == want for r in layout(nodes, sids, app).values())


def wait_settled(nodes, sids, what, app="app"):
    try:
        wait_until(lambda: settled(nodes, sids, app), timeout=SETTLE_TIMEOUT, interval=0.1, message=what)
    except AssertionError:
        bad = {sid: r for sid, r in layout(nodes, sids, app).items()
               if r != sorted(["primary", "backup"] + ["proxy"] * (len(nodes) - 2))}
        raise AssertionError("%s: not settled: %r" % (what, bad)) from None


def last_ids(load, n):
    return {i: load.ok(i)[-1].sid for i in range(n)}


@pytest.mark.timeout(240)
def test_two_kills_one_after_the_other_lose_nothing_and_two_copies_come_back(tmp_path, cluster_factory):
    require_apache2()
    cluster = cluster_factory(4, send_options=SYNC, apps=(), manager="backup")
    for node in cluster.nodes:
        install_failover_app(node.base)
    cluster.start()
    httpd = Httpd(tmp_path / "httpd", free_port(), [(n.name, n.http_port) for n in cluster.nodes], retry=1)
    load = LoadClients(httpd.url("/app/count"), clients=CLIENTS, interval=INTERVAL, timeout=15.0)
    n = CLIENTS
    kills = []
    try:
        httpd.start()
        load.start()
        load.wait(lambda l: all(len(l.ok(i)) >= 3 for i in range(n)) and len({l.route_of(i) for i in range(n)}) >= 3,
                  timeout=40, message="every client to have a session and 3 answers, on 3 nodes or more")
        running = list(cluster.nodes)
        wait_settled(running, set(last_ids(load, n).values()), "two copies of every session before the kills")
        for round_ in range(2):
            # the node whose map is primary for most live sessions
            ids = last_ids(load, n)
            seen = roles_by_node(running)
            victim = max(running, key=lambda node: sum(1 for sid in ids.values() if seen[node.name].get(sid) == "primary"))
            victim_sids = {sid for sid in ids.values() if seen[victim.name].get(sid) == "primary"}
            assert victim_sids, "the victim is primary of some sessions (a positive control)"
            killed_at = time.monotonic()
            victim.kill()
            kills.append((victim, killed_at, victim_sids))
            running = [node for node in running if node is not victim]
            # 3 answers each from a second after the kill on (the checks below look at those)
            load.wait(lambda l: all(len([r for r in l.ok(i) if r.start > killed_at + 1.0]) >= 3 for i in range(n)),
                      timeout=20, message="every client to get 3 answers after the kill of %s" % victim.name)
            wait_settled(running, set(last_ids(load, n).values()),
                         "two copies of every session again after the kill of %s" % victim.name)
        results = load.stop()
    finally:
        if any(c.is_alive() for c in load.clients):
            load.stop()
        httpd.stop()

    for i, records in enumerate(results):
        check_counts(i, records)
    errors = [(i, r) for i, records in enumerate(results) for r in records if failed(r)]
    late = [(i, r) for i, r in errors if not any(t <= r.t <= t + ERROR_WINDOW for _, t, _ in kills)]
    assert not late, "failed requests outside the windows after the kills: %r" % late[:5]
    # every client kept its session (the same hex; the route may change) from its first answer
    for i, records in enumerate(results):
        hexes = {hex_of(r.sid) for r in records if ok(r)}
        assert len(hexes) == 1, (i, records)
    # the sessions of each victim went on elsewhere with their data
    for victim, killed_at, victim_sids in kills:
        moved = [i for i in range(n) if any(hex_of(r.sid) in {hex_of(s) for s in victim_sids}
                                            for r in results[i] if ok(r))]
        assert moved
        for i in moved:
            after = [r for r in results[i] if ok(r) and r.start > killed_at + 1.0]
            assert after and all(r.node != victim.name for r in after), (i, after)
    # in the end each client's last count is on the primary and on the backup
    final = {i: results[i][max(k for k, r in enumerate(results[i]) if ok(r))] for i in range(n)}
    running = [node for node in cluster.nodes if node.alive]
    seen = roles_by_node(running)
    for i, r in final.items():
        holders = [node for node in running if seen[node.name].get(r.sid) in ("primary", "backup")]
        assert len(holders) == 2, (i, r.sid, {k: v.get(r.sid) for k, v in seen.items()})
        for node in holders:
            node.wait_attributes(r.sid, {"count": r.count}, timeout=5, what="client %d's last count on %s" % (i, node.name))
    for node in cluster.nodes:
        assert "Traceback" not in node.log(), node.tail(200)
    per_node = collections.Counter(r.node for records in results for r in records if ok(r))
    print("BackupManager, 4 nodes, %d clients; killed %s; answers per node %s; failed requests %d"
          % (n, [v.name for v, _, _ in kills], dict(per_node), len(errors)))


@pytest.mark.timeout(180)
def test_node_without_the_app_holds_nothing_and_a_graceful_stop_moves_the_sessions(cluster_factory):
    cluster = cluster_factory(4, send_options=SYNC, apps=(), manager="backup")
    other = cluster.nodes[3]
    for node in cluster.nodes[:3]:
        install_app(node.base, "app")
    install_app(other.base, "other")
    cluster.start()
    node1, node2, node3 = cluster.nodes[:3]
    users = [User() for _ in range(12)]
    sids = []
    for k, user in enumerate(users):
        node = cluster.nodes[k % 3]
        sids.append(user.get(node, "/set?name=k&value=%d" % k).json["id"])
    wait_settled(cluster.nodes[:3], set(sids), "two copies of each session on the three nodes running /app")
    # the node without the app: no map for it, so none of its sessions (its own app's map is empty)
    assert other.roles("other") == {}
    assert other.try_request("/app/roles").status == 404
    # positive control: a session of /other does live there
    own = User(app="other").get(other, "/set?name=x&value=1").json["id"]
    assert other.roles("other") == {own: "primary"}

    # graceful stop of node1: each of its sessions gets a new primary and backup on node2/node3
    on_node1 = {sid for sid in sids if node1.roles().get(sid) == "primary"}
    assert on_node1
    node1.stop()
    rest = [node2, node3]
    wait_settled(rest, set(sids), "every session on node2 and node3 after node1 stopped")
    for k, (user, sid) in enumerate(zip(users, sids)):
        holder = node2 if node2.roles().get(sid) == "primary" else node3
        assert holder.peek(sid)["attributes"] == {"k": str(k)}, (sid, holder.name)
        # and the user goes on with its data on whichever node it reaches
        assert user.get(node2, "/get?name=k").json["value"] == str(k)
    for node in cluster.nodes:
        assert "Traceback" not in node.log(), node.tail(200)


HOWTO_BACKUP = pathlib.Path(__file__).parents[1] / "fixtures" / "howto-backup-example.xml"


def howto_backup_cluster(node, group, mcast_port):
    """The how-to's "Configuration Example" <Cluster>, as printed, with only addresses, ports and
    folders made this node's: Membership on the test's loopback group, Receiver on 127.0.0.1 and
    the node's port, the Deployer's folders under the node's base (deployDir is its appBase)."""
    cluster = etree.parse(str(HOWTO_BACKUP)).getroot()
    membership = cluster.find("Channel/Membership")
    membership.set("address", group)
    membership.set("port", str(mcast_port))
    membership.set("bind", "127.0.0.1")
    receiver = cluster.find("Channel/Receiver")
    receiver.set("address", "127.0.0.1")
    receiver.set("port", str(node.rx_port))
    deployer = cluster.find("Deployer")
    for attr, path in (("tempDir", "temp/war-temp"), ("deployDir", "webapps"), ("watchDir", "war-listen")):
        deployer.set(attr, os.path.join(str(node.base), path))
    return etree.tostring(cluster, encoding="unicode")


@pytest.mark.timeout(120)
def test_the_howto_configuration_example_boots_and_fails_over(cluster_factory):
    cluster = cluster_factory(2, send_options=SYNC, manager="backup")
    for node in cluster.nodes:
        path = os.path.join(str(node.base), "conf", "server.xml")
        with open(path) as fh:
            xml = fh.read()
        group, port = re.search(r'McastService" address="([^"]+)"\s+port="(\d+)"', xml).groups()
        xml = re.sub(r"<Cluster .*?</Cluster>", lambda m: howto_backup_cluster(node, group, port), xml, flags=re.S)
        assert "mapSendOptions" in xml and "FarmWarDeployer" in xml and "ThroughputInterceptor" in xml
        with open(path, "w") as fh:
            fh.write(xml)
    cluster.start()
    node1, node2 = cluster.nodes
    assert node1.info()["manager_class"] == "pycat.ha.session.backup_manager.BackupManager"
    user = User()
    sid = user.get(node1, "/set?name=k&value=v").json["id"]
    node2.wait_peek(sid, lambda p: p["role"] == "backup" and p["attributes"] == {"k": "v"},
                    what="node2 to hold the backup")
    assert node1.peek(sid)["role"] == "primary"
    node1.kill()
    # the example configures only a ReplicationValve, so no JvmRouteBinderValve renames the id: the
    # session goes on under its id, with node2 now its primary
    resp = user.get(node2, "/get?name=k")
    assert resp.json == {"id": sid, "value": "v"}
    assert node2.peek(sid)["role"] == "primary"
    for node in cluster.nodes:
        assert "Traceback" not in node.log(), node.tail(100)
