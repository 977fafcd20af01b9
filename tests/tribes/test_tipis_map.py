"""LazyReplicatedMap over real channels in one process (TCP on 127.0.0.1; some also in memory):
placement, take-over by get, replication, removal, and what happens when members come and go.

The helpers at the top (nodes with a channel, a map and a recording owner; checks of where each
key's copies are) are shared with test_tipis_hostile.py."""
import contextlib

import gevent
import pytest

from pycat.tribes.tipis import map_message as mm
from pycat.tribes.tipis.lazy_replicated_map import LazyReplicatedMap

from _channel_fakes import FakeNetwork, real_channel, wait_for

MAP = "localhost#/app-map"


class Owner:
    """Values are dicts of plain values; a diff is a dict merged into the held value."""

    def __init__(self, name):
        self.name = name
        self.made_primary = []
        self.removed = []
        self.accessed = []
        self.encoded = []

    def object_made_primary(self, key, value):
        self.made_primary.append(key)

    def value_to_wire(self, key, value):
        self.encoded.append(key)
        return dict(value)

    def value_from_wire(self, key, plain, sender):
        if not isinstance(plain, dict):
            raise ValueError("not a value of this app: %r" % (plain,))
        return dict(plain)

    def apply_diff(self, key, value, plain, sender):
        value.update(plain)
        return value

    def entry_removed(self, key, value):
        self.removed.append(key)

    def entry_accessed(self, key, value):
        self.accessed.append(key)


class Node:
    def __init__(self, net, real, name):
        self.name = name
        self.chan = real_channel(net) if real else net.channel()
        self.owner = Owner(name)
        self.map = None

    def __repr__(self):
        return self.name

    @property
    def local(self):
        return self.chan.get_local_member(False)

    def start_map(self, map_name=MAP, **kw):
        kw.setdefault("rpc_timeout", 10000)
        self.map = LazyReplicatedMap(self.owner, self.chan, map_name, **kw)
        self.map.start()
        return self.map

    def crash(self):
        """kill -9: the receiver closes (sends to it fail), peers drop it without a goodbye."""
        self.chan.coordinator.receiver.stop()
        self.chan.coordinator.membership.crash()

    def shutdown(self):
        with contextlib.suppress(Exception):
            if self.map is not None:
                self.map.breakdown()
        with contextlib.suppress(Exception):
            self.chan.stop()


def make_nodes(n, real=True, start_maps=True, **map_kw):
    net = FakeNetwork()
    nodes = [Node(net, real, "n%d" % i) for i in range(n)]
    for node in nodes:
        node.chan.start()
    wait_for(lambda: all(len(node.chan.get_members()) == n - 1 for node in nodes), timeout=20,
             what="every channel sees the others")
    if start_maps:
        for node in nodes:
            node.start_map(**map_kw)
    return net, nodes


def shutdown(nodes):
    for node in nodes:
        node.shutdown()


def roles(nodes, key):
    out = {"primary": [], "backup": [], "proxy": [], "copy": [], "none": []}
    for node in nodes:
        entry = node.map.entry(key)
        out[entry.role if entry is not None else "none"].append(node)
    return out


def describe(nodes, key):
    return "; ".join("%s: %r" % (node, node.map.entry(key)) for node in nodes)


def two_copies(nodes, key, value=None):
    """True when key is on exactly one primary and one backup among nodes, proxies on all the others,
    every entry naming the same primary and backup (and both copies equal to value, if given)."""
    r = roles(nodes, key)
    if len(r["primary"]) != 1 or len(r["backup"]) != 1 or len(r["proxy"]) != len(nodes) - 2:
        return False
    p, b = r["primary"][0], r["backup"][0]
    for node in nodes:
        entry = node.map.entry(key)
        if entry.primary != p.local or entry.backups != (b.local,):
            return False
    if value is not None and (p.map.entry(key).value != value or b.map.entry(key).value != value):
        return False
    return all(node.map.entry(key).value is None for node in r["proxy"])


def assert_two_copies(nodes, key, value=None):
    assert two_copies(nodes, key, value), describe(nodes, key)
    r = roles(nodes, key)
    return r["primary"][0], r["backup"][0]


def wait_two_copies(nodes, keys, values=None, timeout=20):
    wait_for(lambda: all(two_copies(nodes, k, (values or {}).get(k)) for k in keys), timeout=timeout,
             what="two copies of every key",)
    for k in keys:
        assert_two_copies(nodes, k, (values or {}).get(k))


# -- tests ----------------------------------------------------------------------------------------
pytestmark = pytest.mark.timeout(120)


def put_spread(nodes, count):
    """count keys, put round the nodes in turn; returns {key: value}."""
    values = {}
    for i in range(count):
        key = "sid-%02d" % i
        values[key] = {"n": i, "owner": nodes[i % len(nodes)].name}
        nodes[i % len(nodes)].map.put(key, dict(values[key]))
    return values


@pytest.mark.parametrize("real", [True, False], ids=["tcp", "memory"])
def test_every_key_is_on_its_primary_and_one_backup_with_proxies_elsewhere(real):
    _, nodes = make_nodes(4, real)
    try:
        for node in nodes:
            assert set(node.map.map_members()) == {o.local for o in nodes if o is not node}
            assert node.map.state == mm.INITIALIZED
        # round robin: three puts on one node go to three different backups
        first = nodes[0]
        chosen = [first.map.put("rr-%d" % i, {"i": i}) for i in range(3)]
        assert all(len(b) == 1 for b in chosen) and len({b[0] for b in chosen}) == 3
        values = put_spread(nodes, 12)
        # with send options 6 put returns after every member applied it: no waiting needed
        for key, value in values.items():
            primary, backup = assert_two_copies(nodes, key, value)
            assert primary.name == value["owner"]
        for node in nodes:
            assert node.map.size(full=True) == 15
            assert node.map.size() == len(node.map.keys()) == sum(
                1 for k in node.map.keys(full=True) if not node.map.entry(k).is_proxy)
            assert node.map.get_local("sid-00") == (values["sid-00"] if node.map.entry("sid-00").is_active else None)
        assert first.map.messages_sent[mm.BACKUP] == 6 and first.map.messages_sent[mm.PROXY] == 12
    finally:
        shutdown(nodes)


@pytest.mark.parametrize("real", [True, False], ids=["tcp", "memory"])
def test_get_on_a_proxy_moves_the_primary_there(real):
    _, nodes = make_nodes(4, real)
    try:
        nodes[0].map.put("k", {"v": 1})
        primary, backup = assert_two_copies(nodes, "k", {"v": 1})
        proxy = next(n for n in nodes if n not in (primary, backup))
        assert proxy.map.get_local("k") is None
        assert proxy.map.get("k") == {"v": 1}
        new_primary, same_backup = assert_two_copies(nodes, "k", {"v": 1})
        assert new_primary is proxy and same_backup is backup
        assert primary.map.entry("k").is_proxy and primary.map.get_local("k") is None
        assert proxy.owner.made_primary == ["k"]
        assert primary.owner.removed == ["k"] and backup.owner.removed == []   # the old primary's copy went
        assert proxy.map.messages_sent[mm.RETRIEVE_BACKUP] == 1
        # and again from the old primary, now a proxy
        assert primary.map.get("k") == {"v": 1}
        assert assert_two_copies(nodes, "k", {"v": 1})[0] is primary
    finally:
        shutdown(nodes)


def test_get_on_the_backup_makes_it_primary_with_a_new_backup():
    _, nodes = make_nodes(4)
    try:
        nodes[0].map.put("k", {"v": 1})
        primary, backup = assert_two_copies(nodes, "k")
        assert backup.map.get_local("k") == {"v": 1}     # no take-over
        assert assert_two_copies(nodes, "k")[0] is primary
        assert backup.map.get("k") == {"v": 1}
        new_primary, new_backup = assert_two_copies(nodes, "k", {"v": 1})
        assert new_primary is backup and new_backup is not backup
        assert backup.owner.made_primary == ["k"]
        assert backup.map.messages_sent[mm.RETRIEVE_BACKUP] == 0
    finally:
        shutdown(nodes)


def test_concurrent_gets_of_one_key_share_one_retrieval():
    _, nodes = make_nodes(3)
    try:
        nodes[0].map.put("k", {"v": 1})
        primary, backup = assert_two_copies(nodes, "k")
        proxy = next(n for n in nodes if n not in (primary, backup))
        getters = [gevent.spawn(proxy.map.get, "k") for _ in range(5)]
        gevent.joinall(getters, timeout=30, raise_error=True)
        assert [g.value for g in getters] == [{"v": 1}] * 5
        assert proxy.map.messages_sent[mm.RETRIEVE_BACKUP] == 1
        assert proxy.owner.made_primary == ["k"]
        assert assert_two_copies(nodes, "k")[0] is proxy
    finally:
        shutdown(nodes)


def test_replicate_diff_complete_access_then_rename_and_remove():
    _, nodes = make_nodes(3)
    try:
        owner = nodes[1]
        owner.map.put("k", {"a": 1})
        primary, backup = assert_two_copies(nodes, "k")
        value = owner.map.get("k")
        value["b"] = 2
        assert owner.map.replicate("k", diff={"b": 2})
        assert backup.map.get_local("k") == {"a": 1, "b": 2}
        value["a"] = 10
        assert owner.map.replicate("k", complete=True)
        assert backup.map.get_local("k") == {"a": 10, "b": 2}
        assert owner.map.replicate("k")                              # ACCESS
        assert backup.owner.accessed == ["k"]
        # not primary here: nothing is sent
        sent = dict(backup.map.messages_sent)
        assert backup.map.replicate("k", complete=True) is False and dict(backup.map.messages_sent) == sent

        owner.map.rename("k", "k2")
        assert all(n.map.entry("k") is None for n in nodes)
        assert backup.owner.removed == ["k"]
        assert assert_two_copies(nodes, "k2", {"a": 10, "b": 2})[0] is owner
        backup2 = roles(nodes, "k2")["backup"][0]
        assert owner.map.remove("k2") == {"a": 10, "b": 2}
        assert all(n.map.entry("k2") is None for n in nodes)
        assert backup2.owner.removed[-1] == "k2" and "k2" not in owner.owner.removed
        assert owner.map.remove("unknown") is None
    finally:
        shutdown(nodes)


def test_a_crashed_node_loses_no_value_and_every_key_gets_its_two_copies_back():
    _, nodes = make_nodes(4)
    try:
        values = put_spread(nodes, 16)
        victim = nodes[2]
        was_primary = [k for k in values if victim.map.entry(k).is_primary]
        was_backup = [k for k in values if victim.map.entry(k).is_backup]
        assert was_primary and was_backup
        victim.crash()
        alive = [n for n in nodes if n is not victim]
        wait_two_copies(alive, values, values)
        for node in alive:
            assert victim.local not in node.map.map_members()
        # the keys it was primary of were promoted on their backups, which the owners heard
        promoted = [k for n in alive for k in n.owner.made_primary]
        assert sorted(promoted) == sorted(was_primary)
        # and every value is still readable from any node
        for node in alive:
            for key, value in values.items():
                assert node.map.get(key) == value
            wait_two_copies(alive, values, values)
    finally:
        shutdown(nodes)


def test_graceful_breakdown_promotes_the_keys_on_their_backups():
    _, nodes = make_nodes(4)
    try:
        leaving = nodes[0]
        values = {"k%d" % i: {"i": i} for i in range(6)}
        for key, value in values.items():
            leaving.map.put(key, dict(value))
        backups = {k: roles(nodes, k)["backup"][0] for k in values}
        leaving.map.breakdown()
        assert leaving.map.state == mm.DESTROYED and leaving.map.size(full=True) == 0
        assert leaving.map not in leaving.chan.channel_listeners
        rest = nodes[1:]
        wait_two_copies(rest, values, values)
        for key in values:
            assert roles(rest, key)["primary"][0] is backups[key]
            assert key in backups[key].owner.made_primary
        for node in rest:
            assert leaving.local not in node.map.map_members()
        # the channel member is still there; it just does not run the map any more
        assert all(leaving.local in node.chan.get_members() for node in rest)
        leaving.map = None
    finally:
        shutdown(nodes)


def test_a_member_without_the_map_holds_nothing_and_is_not_a_map_member():
    _, nodes = make_nodes(4, start_maps=False)
    try:
        mapped, other = nodes[:3], nodes[3]
        for node in mapped:
            node.start_map()
        other.start_map("localhost#/other-app-map")   # same channel, another map
        mapped[0].map.put("k", {"v": 1})
        mapped[2].map.put("j", {"v": 2})
        for node in mapped:
            node.map.heartbeat()                      # the ping asks every channel member
        # positive control: the map's own members hold the keys, on two copies
        assert_two_copies(mapped, "k", {"v": 1})
        assert_two_copies(mapped, "j", {"v": 2})
        for node in mapped:
            assert set(node.map.map_members()) == {n.local for n in mapped if n is not node}
        # the node without the map: no entry, not a member, and it did not count our messages
        assert other.map.size(full=True) == 0 and other.map.map_members() == ()
        assert other.map.messages_received == 0 and other.map.dropped == 0
        assert all(other.local not in node.map.map_members() for node in mapped)
        # its own map works the same way, separately
        other.map.put("k", {"other": True})
        assert other.map.entry("k").backups == () and mapped[0].map.get("k") == {"v": 1}
    finally:
        shutdown(nodes)


def test_a_late_joiner_learns_every_key_and_a_lone_primary_gets_a_backup():
    _, nodes = make_nodes(3, start_maps=False)
    try:
        first, second, late = nodes
        first.start_map()
        assert first.map.put("lone", {"v": 0}) == ()           # nobody to back it up yet
        second.start_map()
        # the new map member got a backup of the lone key at once
        assert_two_copies([first, second], "lone", {"v": 0})
        first.map.put("a", {"v": 1})
        second.map.put("b", {"v": 2})
        late.start_map()
        for key in ("lone", "a", "b"):
            entry = late.map.entry(key)
            assert entry.is_proxy, entry
            assert_two_copies(nodes, key)
        assert late.map.get("a") == {"v": 1}
        assert assert_two_copies(nodes, "a", {"v": 1})[0] is late
    finally:
        shutdown(nodes)


def test_ping_drops_a_silent_map_member_and_adds_it_back_when_it_answers():
    _, nodes = make_nodes(4, access_timeout=1000)
    try:
        values = put_spread(nodes, 12)
        silent = nodes[3]
        was_primary = [k for k in values if silent.map.entry(k).is_primary]
        listeners = list(silent.chan.channel_listeners)
        for listener in listeners:               # its map hangs: no answers, no messages taken
            silent.chan.remove_channel_listener(listener)
        alive = nodes[:3]

        def beat():
            for node in alive:
                node.map.heartbeat()
        wait_for(lambda: all(silent.local not in n.map.map_members() for n in alive), timeout=30,
                 interval=0.2, tick=beat, what="the silent member dropped")
        assert all(silent.local in n.chan.get_members() for n in alive)   # still a channel member
        wait_two_copies(alive, values, values)
        assert sorted(k for n in alive for k in n.owner.made_primary) == sorted(was_primary)
        # it answers again: the next ping makes it a map member again
        for listener in listeners:
            silent.chan.add_channel_listener(listener)
        alive[0].map.heartbeat()
        assert silent.local in alive[0].map.map_members()
    finally:
        shutdown(nodes)


def test_a_backup_that_fails_is_replaced_on_replicate():
    _, nodes = make_nodes(4)
    try:
        owner = nodes[0]
        owner.map.put("k", {"v": 1})
        _, backup = assert_two_copies(nodes, "k")
        backup.chan.coordinator.receiver.stop()     # still a channel member, but unreachable
        value = owner.map.get("k")
        value["v"] = 2
        assert owner.map.replicate("k", complete=True) is True
        new_backup = owner.map.entry("k").backups
        assert new_backup != (backup.local,) and len(new_backup) == 1
        holder = next(n for n in nodes if n.local == new_backup[0])
        assert holder.map.entry("k").is_backup and holder.map.get_local("k") == {"v": 2}
    finally:
        shutdown(nodes)


def test_the_channel_heartbeat_pings_once_and_a_late_ping_reply_still_counts():
    _, nodes = make_nodes(3)
    try:
        a, b, c = nodes
        a.chan.heartbeat()      # the channel calls every listener's heartbeat: one PING per member
        assert a.map.messages_sent[mm.PING] == 2
        # a member that fell out of the map view comes back with a PING answer, even a late one
        a.map.member_disappeared(b.local)
        assert b.local not in a.map.map_members()
        late = mm.MapMessage(a.map.map_id, mm.PING, primary=b.local, state=mm.INITIALIZED).to_plain()
        a.map.left_over(late, b.local)
        assert b.local in a.map.map_members()
        # ... but only an initialized map's answer, and only from a channel member
        a.map.member_disappeared(c.local)
        a.map.left_over(mm.MapMessage(a.map.map_id, mm.PING, primary=c.local, state=mm.NEW).to_plain(), c.local)
        assert c.local not in a.map.map_members()
        stranger = type(c.local)("10.9.9.9", 4000)
        a.map.left_over(late, stranger)
        assert stranger not in a.map.map_members()
        a.map.heartbeat()
        assert c.local in a.map.map_members()
    finally:
        shutdown(nodes)


def test_a_put_over_a_key_held_elsewhere_leaves_two_copies():
    _, nodes = make_nodes(4)
    try:
        nodes[0].map.put("k", {"v": 1})
        primary, backup = assert_two_copies(nodes, "k")
        other = next(n for n in nodes if n not in (primary, backup))
        other.map.put("k", {"v": 2})            # e.g. a session id reused after a crash
        new_primary, _ = assert_two_copies(nodes, "k", {"v": 2})
        assert new_primary is other
    finally:
        shutdown(nodes)


def test_rename_on_a_backup_or_proxy_node_does_not_publish_the_old_key():
    _, nodes = make_nodes(4)
    try:
        nodes[0].map.put("old", {"v": 1})
        primary, backup = assert_two_copies(nodes, "old")
        backup.map.rename("old", "new")
        assert "old" not in backup.owner.encoded and backup.owner.made_primary == ["new"]
        assert all(n.map.entry("old") is None for n in nodes)
        assert assert_two_copies(nodes, "new", {"v": 1})[0] is backup
        proxy = next(n for n in nodes if n.map.entry("new").is_proxy)
        proxy.map.rename("new", "newer")
        assert assert_two_copies(nodes, "newer", {"v": 1})[0] is proxy
        assert proxy.owner.made_primary == ["newer"] and proxy.owner.encoded == ["newer"]
        assert proxy.map.rename("unknown", "x") == () and proxy.map.entry("x") is None
    finally:
        shutdown(nodes)


class _OnProxy:
    """A channel listener that runs fn once, when the PROXY of key passes (the sender waits: sync ack)."""

    def __init__(self, key, fn):
        self.key, self.fn, self.fired = key, fn, False

    def accept(self, msg, sender):
        return (not self.fired and mm.peek_map_id(msg) is not None and msg[3] == mm.PROXY
                and msg[4] == self.key)

    def message_received(self, msg, sender):
        self.fired = True
        self.fn()


@pytest.mark.parametrize("real", [True, False], ids=["tcp", "memory"])
def test_a_backup_that_vanishes_while_the_put_tells_the_others_is_replaced(real):
    _, nodes = make_nodes(4, real)
    try:
        primary = nodes[0]
        vanished = []

        def backup_leaves():
            chosen = next(n for n in nodes if n.map.entry("race") is not None and n.map.entry("race").is_backup)
            vanished.append(chosen)
            primary.map.member_disappeared(chosen.local)   # its membership event, during our sends
        for node in nodes[1:]:
            node.chan.add_channel_listener(_OnProxy("race", backup_leaves))
        backups = primary.map.put("race", {"v": 1})
        assert vanished and backups and backups != (vanished[0].local,)
        assert primary.map.entry("race").backups == backups and backups[0] in primary.map.map_members()
        holder = next(n for n in nodes if n.local == backups[0])
        assert holder.map.entry("race").is_backup and holder.map.get_local("race") == {"v": 1}
    finally:
        shutdown(nodes)


@pytest.mark.parametrize("real", [True, False], ids=["tcp", "memory"])
def test_two_nodes_taking_one_key_over_at_once_end_with_one_primary(real):
    _, nodes = make_nodes(4, real)
    try:
        nodes[0].map.put("k", {"v": 1})
        primary, backup = assert_two_copies(nodes, "k")
        racers = [n for n in nodes if n not in (primary, backup)]
        getters = [gevent.spawn(n.map.get, "k") for n in racers]
        gevent.joinall(getters, timeout=30, raise_error=True)
        assert [g.value for g in getters] == [{"v": 1}, {"v": 1}]
        # both took it over; the versions make every node keep the same one of the two
        wait_two_copies(nodes, ["k"], {"k": {"v": 1}})
        assert roles(nodes, "k")["primary"][0] in racers
    finally:
        shutdown(nodes)
