"""FarmWarDeployer between real nodes (`pycat run` subprocesses on 127.0.0.1, tests/ha/farm_harness.py).

* three nodes, cluster in the Host: a WAR dropped into node1's watchDir is served by all three; its
  version 2 replaces it everywhere while clients hammer every node and never see an error; a bad zip
  and a WAR whose servlet cannot import leave version 2 serving on every node, each logging why; the
  WAR deleted from watchDir is undeployed everywhere; nothing is left in any tempDir;
* the cluster in the Engine (the defaultHost's farm), driven by `pycat farm deploy|list|undeploy`;
* a node started after the WAR was farmed has it before its HTTP port answers (and a newer version
  after a restart);
* a transfer cut by kill -9 of the sender: the receivers drop the partial file after maxValidTime,
  deploy nothing;
* an in-process forger on the cluster's multicast group: an honest transfer deploys (the untrusted
  channel's warning is real), a chunk whose bytes do not match the checksum is refused and logged,
  a hostile name and garbage are dropped, and the node serves on.
"""
import os
import re
import sys
import threading

import gevent
import pytest

from farm_harness import drop, farm_factory, make_war, temp_files
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)
FIXTURES = (farm_factory,)        # pytest finds the fixture by its module-level name


class Hammer:
    """Threads GETting ``path`` on each node until stopped; every answer is recorded."""

    def __init__(self, nodes, path):
        self.nodes, self.path = nodes, path
        self.answers = []           # (node name, status or None, body)
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in nodes]

    def _run(self, node):
        while not self.stop_event.is_set():
            resp = node.try_request(self.path, timeout=10.0)
            self.answers.append((node.name, resp.status if resp else None, resp.body if resp else b""))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(20)


def _war_in_appbase(node, name="app.war"):
    return os.path.exists(os.path.join(node.base, "webapps", name))


def test_three_nodes_drop_replace_break_and_delete(farm_factory, tmp_path):
    farm = farm_factory(3)
    farm.start()
    node1 = farm[0]
    for node in farm.nodes:
        assert "any host that can reach this node's cluster port can deploy code" in node.log()

    drop(node1, make_war(tmp_path / "v1", "app", "version 1"))
    farm.wait_serving("/app/x", b"version 1")

    # version 2 while clients hammer every node: every answer is version 1 or version 2, never an error
    with Hammer(farm.nodes, "/app/x") as hammer:
        wait_for(lambda: {n for n, *_ in hammer.answers} == {n.name for n in farm.nodes}, 10, "hammering")
        drop(node1, make_war(tmp_path / "v2", "app", "version 2"))
        farm.wait_serving("/app/x", b"version 2")
        seen = len(hammer.answers)
        wait_for(lambda: len(hammer.answers) > seen + 30, 10, "more answers after the switch")
    bad = [a for a in hammer.answers if a[1] != 200 or a[2] not in (b"version 1", b"version 2")]
    assert not bad, bad[:5]
    bodies = {a[2] for a in hammer.answers}
    assert bodies == {b"version 1", b"version 2"}, bodies          # positive control: the switch was seen

    # broken versions: every node keeps serving version 2 and says why it did not take the new one
    for broken, why in (("zip", "is not a valid WAR (zip)"), ("import", "cannot be loaded")):
        marks = [n.mark() for n in farm.nodes]
        drop(node1, make_war(tmp_path / broken, "app", "never served", broken=broken))
        for node, mark in zip(farm.nodes, marks):
            node.wait_log("failed", since=mark, timeout=30)
            node.wait_log(why, since=mark, timeout=30)
            assert "the previous version keeps serving" in node.log(mark)
            assert farm.serving(node, "/app/x", b"version 2")
            assert _war_in_appbase(node)

    os.unlink(os.path.join(node1.base, "war-listen", "app.war"))
    farm.wait_gone("/app/x")
    for node in farm.nodes:
        # the context stops (404) before its files are deleted: on a loaded machine the files may
        # still be there for a moment after the first 404
        node.wait_until(lambda: not _war_in_appbase(node) and not os.path.exists(os.path.join(node.app_base, "app")),
                        10, "%s to delete app.war and its folder" % node.name)
        assert temp_files(node) == []
        assert farm.serving(node, "/", b"hello from pycat\n")        # the node itself serves on


def test_cluster_in_the_engine_and_the_farm_commands(farm_factory, tmp_path):
    farm = farm_factory(2, in_engine=True, watchers=())
    farm.start()
    a, b = farm.nodes
    war = make_war(tmp_path, "shop", "shop v1")

    done = b.cli("farm", "deploy", war)
    assert done.returncode == 0, done.stderr
    assert "deployed /shop here and sent it to 1 of 1 member(s)" in done.stdout
    farm.wait_serving("/shop/", b"shop v1")

    listed = a.cli("farm", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "OK - Listed the farm (1 WAR)"
    assert lines[1].startswith("shop.war  /shop  version ")
    states = sorted(line.split()[-1] for line in lines[2:])
    assert states == ["running", "running"], listed.stdout

    refused = a.cli("farm", "undeploy", "../etc")
    assert refused.returncode != 0 and "invalid context name" in refused.stderr
    gone = a.cli("farm", "undeploy", "/shop")
    assert gone.returncode == 0, gone.stderr
    farm.wait_gone("/shop/")
    assert b.cli("farm", "list").stdout.splitlines() == ["OK - Listed the farm (0 WARs)"]


def test_a_node_started_later_catches_up_before_it_serves(farm_factory, tmp_path):
    farm = farm_factory(3)
    first, second, late = farm.nodes
    farm.start([first, second])
    drop(first, make_war(tmp_path / "v1", "app", "v1"))
    farm.wait_serving("/app/", b"v1", nodes=[first, second])

    # from the moment the process starts, the first answer to /app/ is the farmed app, never a 404
    late.start()
    answer = late.wait_http("/app/", timeout=40)
    assert answer.body == b"v1"
    # both members, or one if the other's heartbeat came late: either holds the WAR
    late.wait_log(re.compile(r"Farm: catching up with [12] member\(s\): 1 WAR\(s\) to fetch, 0 to remove"))

    late.stop()
    drop(first, make_war(tmp_path / "v2", "app", "v2"))
    farm.wait_serving("/app/", b"v2", nodes=[first, second])
    late.start()
    assert late.wait_http("/app/", timeout=40).body == b"v2"          # the older copy it had is replaced

    late.stop()
    os.unlink(os.path.join(first.base, "war-listen", "app.war"))
    farm.wait_gone("/app/", nodes=[first, second])
    late.start()
    late.wait_started()
    assert late.request("/app/").status == 404                       # the removal caught up too
    assert "1 to remove" in late.log(late.start_mark)


def test_a_transfer_cut_by_kill_9_is_dropped_after_max_valid_time(farm_factory, tmp_path):
    # small chunks so the 50 MB transfer takes long enough to be cut in the middle
    farm = farm_factory(2, max_valid_time=3, extra=' chunkSize="16384"')
    farm.start()
    sender, receiver = farm.nodes
    drop(sender, make_war(tmp_path, "big", "big", padding=50 * 1024 * 1024))
    part = os.path.join(receiver.base, "war-temp")
    # positive control: the partial file exists and grows on the receiver
    wait_for(lambda: any(n.endswith(".farm-part") and os.path.getsize(os.path.join(part, n)) > 1024 * 1024
                         for n in temp_files(receiver)), 60, "the transfer to be under way")
    sender.kill()
    mark = receiver.mark()
    receiver.wait_log("dropped the incomplete transfer of big.war", since=mark, timeout=30)
    assert temp_files(receiver) == []
    assert not _war_in_appbase(receiver, "big.war")
    assert receiver.request("/big/").status == 404
    assert "is deployed here" not in receiver.log()


def test_forged_and_garbage_messages_are_refused(farm_factory, tmp_path):
    import hashlib

    from pycat.ha.cluster import SimpleTcpCluster
    from pycat.ha.cluster_message import ClusterMessage
    from pycat.ha.deploy import farm_message as fm
    from pycat.tribes.group.group_channel import GroupChannel
    from pycat.tribes.membership.mcast import McastService
    from pycat.tribes.transport.receiver import NioReceiver

    farm = farm_factory(1, watchers=())
    farm.start()
    node = farm[0]

    channel = GroupChannel()
    channel.set_membership(McastService())
    channel.set_receiver(NioReceiver())
    mcast = channel.membership_service
    (mcast.address, mcast.port), mcast.bind, mcast.frequency = (farm.group, farm.mcast_port), "127.0.0.1", 100
    channel.receiver.address, channel.receiver.port, channel.receiver.auto_bind = "127.0.0.1", 0, 1
    forger = SimpleTcpCluster()
    forger.set_channel(channel)
    forger.start()
    try:
        wait_for(lambda: forger.get_members(), 10, "the forger to see the node")
        target = forger.get_members()

        def send(body):
            channel.send(target, ClusterMessage("farm", body).to_wire(), 6)

        def wait_log(text, since):
            wait_for(lambda: text in node.log(since), 20, "%s to log %r" % (node.name, text))

        def transfer(war, data, stamp, corrupt=False):
            sha = hashlib.sha256(data).digest()
            half = len(data) // 2
            for offset, piece in ((0, data[:half]), (half, data[half:])):
                if corrupt and offset:
                    piece = bytes([piece[0] ^ 1]) + piece[1:]
                send(fm.encode(fm.Chunk("t%d" % stamp, war, len(data), sha, stamp, "forger", offset, piece)))

        honest = open(make_war(tmp_path / "ok", "app", "from the forger"), "rb").read()
        transfer("app.war", honest, 10)
        wait_for(lambda: node.try_request("/app/") is not None and node.request("/app/").body == b"from the forger",
                 30, "the honest transfer to deploy")           # positive control (an untrusted channel)

        mark = node.mark()
        evil = open(make_war(tmp_path / "evil", "app", "evil"), "rb").read()
        transfer("app.war", evil, 2 ** 50, corrupt=True)
        wait_log("checksum mismatch", mark)
        send(fm.encode(fm.Chunk("t2", "../../evil.war", 4, b"\0" * 32, 1, "forger", 0, b"evil")))
        wait_log("dropped a malformed farm message", mark)
        send([1, "chunk", "garbage"])
        send(["not", "a", "farm", "message"])
        gevent.sleep(0.5)
        assert node.request("/app/").body == b"from the forger"
        assert temp_files(node) == []
        assert not os.path.exists(os.path.join(node.base, "evil.war"))
        assert node.alive
    finally:
        forger.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="multicast on loopback")
def test_with_auth_the_trust_warning_is_gone(farm_factory, tmp_path):
    farm = farm_factory(2, auth=True)
    farm.start()
    drop(farm[0], make_war(tmp_path, "app", "signed"))
    farm.wait_serving("/app/", b"signed")
    for node in farm.nodes:
        assert "can deploy code" not in node.log()
