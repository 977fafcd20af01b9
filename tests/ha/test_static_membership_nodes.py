"""Static membership with real nodes (the plugin's ``pycat_cluster(..., membership="static")``: a
StaticMembershipService listing every node, no multicast): a node restarted into a running cluster
knows its peers when its channel's start returns, so

* a DeltaManager on it asks them for the sessions and gets every one (after a graceful stop and
  after a kill -9, when the peers may still hold the old incarnation as a member);
* a BackupManager's map on it knows every key that existed before (its INIT/STATE/START exchange
  happens with the members already known), and every session stays readable on every node.

The app is cluster_harness's test app (``/set``, ``/get`` never creates a session, ``/roles`` is
the BackupManager map's view on that node).
"""
import os

import pytest
from cluster_harness import REPL_APP, WEB_XML

pytestmark = pytest.mark.timeout(240)


def write_app(folder):
    classes = os.path.join(folder, "WEB-INF", "classes")
    os.makedirs(classes, exist_ok=True)
    with open(os.path.join(folder, "WEB-INF", "web.xml"), "w") as fh:
        fh.write(WEB_XML.format(session_config=""))
    with open(os.path.join(classes, "repl_app.py"), "w") as fh:
        fh.write(REPL_APP)
    return folder


def value_on(user, node):
    """The session's "k" as ``node`` has it (None: that node has no such session; /get never creates)."""
    return user.get("/app/get?name=k", node=node, expect=200).json()["value"]


def test_a_restarted_delta_node_gets_the_sessions(pycat_cluster, pycat_user, tmp_path):
    cluster = pycat_cluster(2, membership="static", send_options=6, apps=[write_app(str(tmp_path / "app"))])
    node1, node2 = cluster
    users = []
    for i in range(4):
        user = pycat_user(node1)
        assert user.get("/app/set?name=k&value=v%d" % i, expect=200).json()["id"]
        users.append(user)
    cluster.wait_replicated()
    # node2 ran when they were made: it has them (the replication itself works)
    assert [value_on(u, node2) for u in users] == ["v0", "v1", "v2", "v3"]

    for graceful in (True, False):
        # a graceful stop tells node1 it left; a kill does not, and node1 may still list node2
        # (same uniqueId, same port) when the new incarnation announces itself
        cluster.restart(node2, graceful=graceful)     # waits until node2's state transfer ran
        assert node2.starts == (2 if graceful else 3)
        assert [value_on(u, node2) for u in users] == ["v0", "v1", "v2", "v3"], graceful
        # and what node2 does now reaches node1 (node1 took the new incarnation in)
        users[0].get("/app/set?name=later&value=%d" % node2.starts, node=node2, expect=200)
        cluster.wait_replicated()
        assert users[0].get("/app/get?name=later", node=node1).json()["value"] == str(node2.starts)


def test_a_restarted_backup_node_knows_every_session(pycat_cluster, pycat_user, tmp_path):
    cluster = pycat_cluster(3, manager="backup", membership="static", send_options=6,
                            apps=[write_app(str(tmp_path / "app"))])
    users = {}                                             # user -> the value of its session
    for i, node in enumerate(list(cluster) * 2):           # two sessions made on each node
        user = pycat_user(node)
        user.get("/app/set?name=k&value=v%d" % i, expect=200)
        users[user] = "v%d" % i
    cluster.wait_replicated()

    for restarted, graceful in ((cluster[1], True), (cluster[2], False)):
        cluster.restart(restarted, graceful=graceful)
        cluster.wait_replicated()
        # the restarted node's map knows every key that existed before it came back (from the
        # STATE it asked at start, with the members known): no request needed to find them. (The
        # ids are the users' current ones: the JvmRouteBinderValve renames a session read on
        # another node.)
        roles = pycat_user(restarted).get("/app/roles", expect=200).json()
        sids = {user.session_id for user in users}
        assert len(sids) == 6 and sids <= set(roles), (graceful, sorted(sids - set(roles)))
        # every session readable on every node, its value intact
        for node in cluster:
            for user, value in users.items():
                assert value_on(user, node) == value, (node.name, user.session_id, graceful)
