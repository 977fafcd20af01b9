"""BackupManager in-process: clusters over real loopback sockets (multicast membership, TCP
channel), each with a BackupManager for one app; requests are simulated the way the container runs
them (find or create, access, app code, end_access, request_completed). The end-to-end tests with
real nodes and a real httpd are in test_backup_*.py."""
import logging

import pytest
from waiting import unique_mcast_group, wait_for

from pycat.ha.session.backup_manager import BackupManager
from pycat.session.errors import TooManyActiveSessions

from test_ha_cluster import mcast_cluster
from test_ha_delta_manager import request  # one simulated request (find or create, work, end, replicate)

pytestmark = pytest.mark.timeout(90)


class App:
    """What a manager needs of its Context."""
    parent = None
    loader = None
    distributable = True

    def __init__(self, name="/app"):
        self.name = name


def node(group, apps=("/app",), **manager_attrs):
    cluster = mcast_cluster(group)
    template = BackupManager()
    for key, value in manager_attrs.items():
        setattr(template, key, value)
    cluster.set_manager_template(template)
    cluster.start()
    managers = []
    for name in apps:
        app = App(name)
        manager = cluster.create_manager(app)
        manager.context, manager.name, manager.distributable = app, name, True
        managers.append(manager)
    return cluster, managers


@pytest.fixture
def nodes():
    made = []

    def make(count, apps=None, **kw):
        """``count`` nodes; ``apps``: per node, the apps it runs (default: /app on each). Returns
        the first manager of each node."""
        group = unique_mcast_group()
        start = len(made)
        for i in range(count):
            made.append(node(group, apps=apps[i] if apps else ("/app",), **kw))
        mine = made[start:]
        clusters = [c for c, _ in mine]
        wait_for(lambda: all(len(c.get_members()) == count - 1 for c in clusters), what="members")
        for _, managers in mine:
            for manager in managers:
                manager.start()
        return [managers[0] if managers else None for _, managers in mine]
    yield make
    for cluster, managers in reversed(made):
        for part in managers + [cluster]:
            try:
                part.stop()
            except Exception:
                logging.exception("stop")


def roles(managers, sid):
    return [m.roles().get(sid) for m in managers]


def copies(managers, sid):
    """How many nodes hold a value of ``sid`` (primary or backup)."""
    return sum(1 for m in managers if m._sessions.get(sid) is not None)


def settled(managers, sid):
    """One primary, one backup, proxies on the rest, and values exactly on primary and backup."""
    r = roles(managers, sid)
    return (r.count("primary") == 1 and r.count("backup") == (1 if len(managers) > 1 else 0)
            and r.count("proxy") == len(managers) - 2 and copies(managers, sid) == min(2, len(managers)))


def test_every_session_on_its_primary_and_one_backup_proxies_elsewhere(nodes):
    ms = nodes(4)
    sessions = [request(ms[i % 4], create=True, work=lambda s, i=i: s.update(user="u%d" % i, cart=[i]))
                for i in range(12)]
    for s in sessions:
        wait_for(lambda: settled(ms, s.id), what="%s settled: %s" % (s.id, roles(ms, s.id)))
        primary = ms[roles(ms, s.id).index("primary")]
        backup = ms[roles(ms, s.id).index("backup")]
        assert primary._sessions[s.id].is_primary and not backup._sessions[s.id].is_primary
        assert backup._sessions[s.id].raw_attributes() == s.raw_attributes()
    # the backups are spread in turn, not all on one node
    backups = {roles(ms, s.id).index("backup") for s in sessions}
    assert len(backups) >= 3


def test_changes_reach_the_backup_before_the_request_ends(nodes):
    ms = nodes(3)
    s = request(ms[0], create=True, work=lambda s: s.update(user="ann", cart=[1]))
    backup = ms[roles(ms, s.id).index("backup")]
    assert backup._sessions[s.id].raw_attributes() == {"user": "ann", "cart": [1]}
    request(ms[0], s.id, lambda s: s["cart"].append(2))             # changed in place, never set again
    assert backup._sessions[s.id].raw_attributes()["cart"] == [1, 2]
    request(ms[0], s.id, lambda s: s.pop("user"))
    assert "user" not in backup._sessions[s.id].raw_attributes()
    proxy = ms[roles(ms, s.id).index("proxy")]
    assert proxy._sessions.get(s.id) is None


def test_a_request_on_a_proxy_node_takes_the_session_over(nodes):
    ms = nodes(4)
    s = request(ms[0], create=True, work=lambda s: s.update(k="v"))
    r = roles(ms, s.id)
    backup_i, proxy_i = r.index("backup"), r.index("proxy")
    taken = request(ms[proxy_i], s.id, lambda s: s.__setitem__("n", 1))
    assert taken.raw_attributes() == {"k": "v", "n": 1}
    wait_for(lambda: settled(ms, s.id), what="settled after the take-over: %s" % roles(ms, s.id))
    r = roles(ms, s.id)
    assert r[proxy_i] == "primary" and r[0] == "proxy"
    assert r[backup_i] == "backup"
    assert ms[backup_i]._sessions[s.id].raw_attributes() == {"k": "v", "n": 1}
    # and the old primary, asked again, takes it back with the new value
    back = request(ms[0], s.id, lambda s: s.__setitem__("n", 2))
    assert back.raw_attributes() == {"k": "v", "n": 2}
    wait_for(lambda: settled(ms, s.id), what="settled after taking it back")


def test_invalidation_removes_the_session_everywhere(nodes):
    ms = nodes(3)
    s = request(ms[1], create=True, work=lambda s: s.update(k=1))
    other = request(ms[1], create=True, work=lambda s: s.update(k=2))
    wait_for(lambda: settled(ms, s.id) and settled(ms, other.id), what="settled")
    request(ms[1], s.id, lambda s: s.invalidate())
    wait_for(lambda: roles(ms, s.id) == [None, None, None] and copies(ms, s.id) == 0, what="gone everywhere")
    assert settled(ms, other.id)                  # positive control: the other session is untouched


def test_an_id_change_moves_the_session_in_the_map(nodes):
    ms = nodes(3)
    s = request(ms[0], create=True, work=lambda s: s.update(k=1))
    old = s.id

    def login(session):
        session["user"] = "bob"
        ms[0].change_session_id(session)
    request(ms[0], old, login)
    assert s.id != old
    wait_for(lambda: roles(ms, old) == [None, None, None] and settled(ms, s.id), what="moved")
    backup = ms[roles(ms, s.id).index("backup")]
    assert backup._sessions[s.id].raw_attributes() == {"k": 1, "user": "bob"}


def test_a_node_that_leaves_gets_its_sessions_taken_over_with_two_copies_again(nodes):
    ms = nodes(4)
    sessions = [request(ms[i % 4], create=True, work=lambda s, i=i: s.update(n=i)) for i in range(16)]
    for s in sessions:
        wait_for(lambda: settled(ms, s.id), what="settled")
    gone = ms[1]
    on_gone = [s.id for s in sessions if gone.roles().get(s.id) in ("primary", "backup")]
    assert on_gone                                  # the stopped node did hold some (a positive control)
    gone.cluster.stop()                             # the node disappears without its map saying goodbye
    rest = [m for m in ms if m is not gone]
    for s in sessions:
        wait_for(lambda: settled(rest, s.id), timeout=20, what="%s settled on the 3 left: %s"
                 % (s.id, roles(rest, s.id)))
    for i, s in enumerate(sessions):
        holder = rest[roles(rest, s.id).index("primary")]
        assert holder.find_session(s.id).raw_attributes() == {"n": i}


def test_graceful_stop_of_a_primary_moves_its_sessions(nodes):
    ms = nodes(3)
    sessions = [request(ms[0], create=True, work=lambda s, i=i: s.update(n=i)) for i in range(6)]
    for s in sessions:
        wait_for(lambda: settled(ms, s.id), what="settled")
    ms[0].stop()
    rest = ms[1:]
    for i, s in enumerate(sessions):
        wait_for(lambda: settled(rest, s.id), timeout=20, what="moved: %s" % roles(rest, s.id))
        holder = rest[roles(rest, s.id).index("primary")]
        assert holder._sessions[s.id].raw_attributes() == {"n": i}


def test_a_node_without_the_app_holds_none_of_its_sessions(nodes):
    ms = nodes(3, apps=[("/app",), ("/app",), ("/other",)])
    s = request(ms[0], create=True, work=lambda s: s.update(k=1))
    with_app = ms[:2]
    wait_for(lambda: settled(with_app, s.id), what="settled on the two nodes that run /app")
    assert ms[2].roles() == {} and not ms[2]._sessions
    assert ms[0].map.map_members() and ms[2].cluster.get_members()     # members, but not of this map
    # positive control: /other's own session does live on that node
    o = request(ms[2], create=True, work=lambda s: s.update(k=2))
    assert ms[2].roles() == {o.id: "primary"}
    assert all(o.id not in m.roles() for m in with_app)


def test_max_active_sessions_counts_primaries_only(nodes):
    ms = nodes(2, max_active_sessions=2)
    for _ in range(2):
        request(ms[0], create=True)
    with pytest.raises(TooManyActiveSessions):
        ms[0].create_session()
    # the node backing up ms[0]'s two sessions may still create its own
    assert len(ms[1]._sessions) == 2
    request(ms[1], create=True)


def test_a_redeploy_hands_the_running_map_to_the_new_manager(nodes):
    ms = nodes(2)
    a, b = ms
    mine = request(a, create=True, work=lambda s: s.update(k="mine"))
    theirs = request(b, create=True, work=lambda s: s.update(k="theirs"))
    for s in (mine, theirs):
        wait_for(lambda: settled(ms, s.id), what="settled")
    before = roles(ms, mine.id), roles(ms, theirs.id)
    # the redeploy's sequence (HostConfig): the new Context's manager registers and starts, the old
    # one stops, then the new one takes the old one's sessions over
    new = a.cluster.create_manager(a.context)
    new.context, new.name, new.distributable = a.context, a.name, True
    new.start()
    a.stop()
    assert new.take_over(a) == 2
    after = [new, b]
    assert (roles(after, mine.id), roles(after, theirs.id)) == before      # nobody moved
    assert new._sessions[mine.id] is not mine and new._sessions[mine.id].raw_attributes() == {"k": "mine"}
    assert new._sessions[theirs.id].raw_attributes() == {"k": "theirs"}   # the backup copy too
    # the new manager goes on replicating to the same backup
    request(new, mine.id, lambda s: s.__setitem__("n", 1))
    assert b._sessions[mine.id].raw_attributes() == {"k": "mine", "n": 1}
    new.stop()


def test_two_apps_on_one_node_with_different_managers(nodes):
    from pycat.ha.session.delta_manager import DeltaManager
    ms = nodes(2, apps=[("/backup", "/delta"), ("/backup", "/delta")])
    # the second app of each node gets a DeltaManager of its own (a Context's <Manager> wins)
    deltas = []
    for m in ms:
        cluster = m.cluster
        old = cluster.get_manager("/delta")
        old.stop()
        manager = DeltaManager()
        manager.context, manager.name, manager.distributable = old.context, "/delta", True
        cluster.register_manager(manager, old.context)
        deltas.append(manager)
    for manager in deltas:
        manager.start()
    s = request(ms[0], create=True, work=lambda s: s.update(k="b"))
    t = request(deltas[0], create=True, work=lambda s: s.update(k="d"))
    wait_for(lambda: settled(ms, s.id), what="the BackupManager's session on its backup")
    wait_for(lambda: deltas[1].find_session(t.id) is not None, what="the DeltaManager's session replicated")
    assert deltas[1].find_session(t.id).raw_attributes() == {"k": "d"}
    # each manager talks only to the same app: no crossing
    assert s.id not in deltas[1]._sessions and t.id not in ms[1]._sessions and t.id not in ms[1].roles()
    for manager in deltas:
        manager.stop()
