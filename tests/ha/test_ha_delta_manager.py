"""DeltaManager in-process: two or three clusters over real loopback sockets, each with a DeltaManager
for one app; requests are simulated the way the container runs them (access, app code, end_access,
request_completed). The end-to-end tests with real nodes are in test_replication_*.py."""
import logging

import pytest
from waiting import unique_mcast_group, wait_for

from pycat.ha.session.delta_manager import DeltaManager
from pycat.tribes import channel as ch

from test_ha_cluster import mcast_cluster

pytestmark = pytest.mark.timeout(60)


class App:
    """What a manager needs of its Context."""
    name = "/app"
    parent = None
    loader = None
    distributable = True


def node(group, options=ch.USE_ACK | ch.SYNCHRONIZED_ACK, interceptors=(), domain=None, **manager_attrs):
    cluster = mcast_cluster(group, channelSendOptions=str(options))
    for interceptor in interceptors:
        cluster.channel.add_interceptor(interceptor)
    if domain is not None:
        cluster.channel.membership_service.domain = domain
    template = DeltaManager()
    for key, value in manager_attrs.items():
        setattr(template, key, value)
    cluster.set_manager_template(template)
    cluster.start()
    app = App()
    manager = cluster.create_manager(app)
    manager.context, manager.name, manager.distributable = app, "/app", True
    return cluster, manager


@pytest.fixture
def nodes():
    made = []

    def make(count, **kw):
        group = unique_mcast_group()
        for _ in range(count):
            made.append(node(group, **kw))
        clusters = [c for c, _ in made]
        wait_for(lambda: all(len(c.get_members()) == count - 1 for c in clusters), what="members")
        for _, manager in made:
            manager.start()
        return [m for _, m in made]
    yield make
    for cluster, manager in reversed(made):
        for part in (manager, cluster):
            try:
                part.stop()
            except Exception:
                logging.exception("stop")


def request(manager, session_id=None, work=None, create=False):
    """One request: the session found (or created), accessed, worked on, ended and replicated."""
    session = manager.find_session(session_id) if session_id else None
    if session is None and create:
        session = manager.create_session()
    session.access()
    if work is not None:
        work(session)
    session.end_access()
    manager.request_completed(session)
    return session


def test_create_set_and_change_in_place_reach_the_replica_in_sync_mode(nodes):
    a, b = nodes(2)
    s = request(a, create=True, work=lambda s: s.update(user="ann", cart=[1]))
    # sync mode: applied on b when request_completed returned
    copy = b.find_session(s.id)
    assert copy is not None and copy.raw_attributes() == {"user": "ann", "cart": [1]}
    assert copy.is_primary is False and s.is_primary is True
    request(a, s.id, lambda s: s["cart"].append(2))           # never set again
    assert b.find_session(s.id).raw_attributes()["cart"] == [1, 2]
    request(a, s.id, lambda s: s.pop("user"))
    assert "user" not in b.find_session(s.id).raw_attributes()


def test_invalidate_and_expire_remove_the_session_everywhere(nodes):
    a, b = nodes(2)
    s1 = request(a, create=True, work=lambda s: s.__setitem__("k", 1))
    s2 = request(b, create=True, work=lambda s: s.__setitem__("k", 2))
    assert a.find_session(s2.id) is not None and b.find_session(s1.id) is not None     # positive control
    request(a, s1.id, lambda s: s.invalidate())
    wait_for(lambda: b._sessions.get(s1.id) is None, what="s1 gone from b")
    b._sessions[s2.id].expire()
    wait_for(lambda: a._sessions.get(s2.id) is None, what="s2 gone from a")


def test_id_change_travels_with_the_request_changes(nodes):
    a, b = nodes(2)
    s = request(a, create=True, work=lambda s: s.__setitem__("k", 1))
    old = s.id

    def login(session):
        session["user"] = "bob"
        a.change_session_id(session)
    request(a, old, login)
    assert s.id != old
    assert b._sessions.get(old) is None
    assert b.find_session(s.id).raw_attributes() == {"k": 1, "user": "bob"}


def test_concurrent_writers_converge(nodes):
    a, b = nodes(2, options=ch.ASYNCHRONOUS)
    s = request(a, create=True, work=lambda s: s.__setitem__("x", 0))
    wait_for(lambda: b.find_session(s.id) is not None, what="replica")
    # both nodes write x and y "at once": each request's delta is sent before the other applies
    sa, sb = a.find_session(s.id), b.find_session(s.id)
    sa.access()
    sb.access()
    sa["x"], sb["x"] = "from-a", "from-b"
    sa["y"] = "only-a"
    sb["z"] = "only-b"
    sa.end_access()
    sb.end_access()
    a.request_completed(sa)
    b.request_completed(sb)
    wait_for(lambda: sa.raw_attributes() == sb.raw_attributes() and len(sa.raw_attributes()) == 3,
             what="replicas to converge: %r / %r" % (sa.raw_attributes(), sb.raw_attributes()))
    assert sa.raw_attributes()["y"] == "only-a" and sa.raw_attributes()["z"] == "only-b"
    assert sa.raw_attributes()["x"] in ("from-a", "from-b")


def test_state_transfer_brings_every_session_to_a_joiner(nodes):
    group = unique_mcast_group()
    cluster_a, a = node(group, send_all_sessions_size=7)
    try:
        a.start()
        ids = [request(a, create=True, work=lambda s, i=i: s.update(n=i, blob="x" * 100)).id for i in range(50)]
        cluster_b, b = node(group)
        try:
            wait_for(lambda: cluster_b.get_members(), what="b to see a")
            b.start()
            assert sorted(s.id for s in b.find_sessions()) == sorted(ids)
            assert b.find_session(ids[3]).raw_attributes() == {"n": 3, "blob": "x" * 100}
            assert b.state_transfer_seconds is not None
        finally:
            b.stop()
            cluster_b.stop()
    finally:
        a.stop()
        cluster_a.stop()


def test_untrusted_channel_refuses_objects_at_set_time(nodes):
    from pycat.session.errors import NotSerializableError
    a, b = nodes(2)

    class Cart:
        pass
    s = request(a, create=True, work=lambda s: s.__setitem__("ok", {"plain": [1, 2.5, None]}))
    with pytest.raises(NotSerializableError, match=r"'cart'.*Cart.*AuthInterceptor or EncryptInterceptor"):
        request(a, s.id, lambda s: s.__setitem__("cart", Cart()))
    assert b.find_session(s.id).raw_attributes() == {"ok": {"plain": [1, 2.5, None]}}


class Cart:
    """A value that is not plain: it travels as dill bytes, only on a trusted channel."""

    def __init__(self, items):
        self.items = list(items)

    def __eq__(self, other):
        return type(other) is Cart and other.items == self.items


def authenticated(group, secret="s3cret", **manager_attrs):
    from pycat.tribes.group.interceptors.auth import AuthInterceptor
    auth = AuthInterceptor()
    auth.secret = secret
    return node(group, interceptors=[auth], **manager_attrs)


def test_objects_replicate_on_an_authenticated_channel_and_not_on_a_plain_one():
    group = unique_mcast_group()
    pairs = [authenticated(group), authenticated(group)]
    try:
        (ca, a), (cb, b) = pairs
        assert ca.trusted and cb.trusted
        wait_for(lambda: ca.get_members() and cb.get_members(), what="members")
        a.start()
        b.start()
        s = request(a, create=True, work=lambda s: s.__setitem__("cart", Cart([1])))
        assert b.find_session(s.id).raw_attributes()["cart"] == Cart([1])
        request(a, s.id, lambda s: s["cart"].items.append(2))       # in place, inside an object
        assert b.find_session(s.id).raw_attributes()["cart"] == Cart([1, 2])
    finally:
        for cluster, manager in pairs:
            manager.stop()
            cluster.stop()


def test_a_dill_blob_from_an_unauthenticated_peer_is_never_loaded(nodes, tmp_path):
    """A crafted delta (as any host that reaches the receiver port could send) whose value is a
    pickle that would run code when loaded: refused unread; the same delta's plain value applies
    (positive control: the route works, and the same blob IS loaded by a trusted manager)."""
    import os
    from pycat.ha.session import delta as d
    from pycat.session import values
    a, b = nodes(2)
    s = request(a, create=True, work=lambda s: s.__setitem__("k", 0))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))
    delta = d.DeltaRequest(b.cluster_manager_name, s.id, (10 ** 6, "zz-attacker"))
    delta.set_attribute("k", "plain-applied")
    delta.actions.append((d.SET, "evil", d.attr_values.Blob(values.dump(Evil()))))
    message = d.SessionMessage(b.cluster_manager_name, d.EVT_SESSION_DELTA, s.id, delta.to_plain())
    b.message_received(d.SessionMessage.from_plain(message.to_plain()), None)
    copy = b.find_session(s.id)
    assert copy.raw_attributes() == {"k": "plain-applied"} and not marker.exists()
    # control: a manager that trusts its channel loads the very same blob (and the marker appears)
    b.cluster.__class__ = type("Trusting", (type(b.cluster),), {"trusted": True})
    delta.version = (10 ** 6 + 1, "zz-attacker")
    b.message_received(d.SessionMessage(b.cluster_manager_name, d.EVT_SESSION_DELTA, s.id, delta.to_plain()), None)
    assert marker.exists()


def test_name_filter_keeps_attributes_home(nodes):
    a, b = nodes(2, session_attribute_name_filter="shared\\..*")
    s = request(a, create=True, work=lambda s: s.update({"shared.cart": [1], "local.secret": "x"}))
    assert b.find_session(s.id).raw_attributes() == {"shared.cart": [1]}
    assert a.find_session(s.id).raw_attributes() == {"shared.cart": [1], "local.secret": "x"}


def test_interval_principal_and_auth_type_replicate(nodes):
    from pycat.realm.realms import GenericPrincipal
    a, b = nodes(2)

    def login(session):
        session.principal = GenericPrincipal("ann", ["admin", "user"])
        session.auth_type = "FORM"
        session.max_inactive_interval = 77
    s = request(a, create=True, work=login)
    copy = b.find_session(s.id)
    assert (copy.principal.name, sorted(copy.principal.roles), copy.auth_type, copy.max_inactive_interval) == \
        ("ann", ["admin", "user"], "FORM", 77)


def test_replicas_fire_listeners_as_configured(nodes):
    from pycat.session.events import SessionListeners  # noqa: F401  (the manager's listener list)
    a, b = nodes(2)
    heard = []

    class Recorder:
        def session_created(self, event):
            heard.append(("created", event.session.id))

        def attribute_added(self, event):
            heard.append(("added", event.name))

        def session_destroyed(self, event):
            heard.append(("destroyed", event.session.id))
    b.add_session_listener(Recorder())
    s = request(a, create=True, work=lambda s: s.__setitem__("k", 1))
    request(a, s.id, lambda s: s.invalidate())
    wait_for(lambda: ("destroyed", s.id) in heard, what="destroyed on the replica")
    assert heard == [("created", s.id), ("added", "k"), ("destroyed", s.id)]


def test_a_joiner_asking_a_node_without_the_app_does_not_wait():
    """The only member runs no /app: it answers NO-CONTEXT-MANAGER, and the joiner starts with no
    state and no timeout counted (its stateTransferTimeout is far above the test's own timeout)."""
    group = unique_mcast_group()
    other = mcast_cluster(group)
    from pycat.ha.session.listener import ClusterSessionListener
    other.add_cluster_listener(ClusterSessionListener())
    other.start()
    cluster, joiner = node(group, state_transfer_timeout=600)
    try:
        wait_for(lambda: cluster.get_members(), what="the joiner to see the other node")
        joiner.start()
        assert joiner.counter_no_state_transferred == 0 and joiner.find_sessions() == []
    finally:
        joiner.stop()
        cluster.stop()
        other.stop()


def test_a_message_from_another_cluster_domain_is_dropped():
    """B filters by domain (DomainFilterInterceptor, as Tomcat's how-to for several clusters on one
    network): C, in another domain on the same group, sends B a well-formed delta: dropped. The
    same delta from A, in B's domain, applies (positive control)."""
    from pycat.ha.session import delta as d
    from pycat.ha.session.delta_manager import session_message
    from pycat.tribes.group.interceptors.domain_filter import DomainFilterInterceptor
    group = unique_mcast_group()

    def member_of(domain):
        f = DomainFilterInterceptor()
        f.domain = domain
        return node(group, interceptors=[f], domain=domain)
    made = [member_of("shop"), member_of("shop"), node(group, domain="other")]
    (ca, a), (cb, b), (cc, c) = made
    try:
        wait_for(lambda: cb.get_members() and cc.get_members(), what="members")
        a.start()
        b.start()
        s = request(a, create=True, work=lambda s: s.__setitem__("k", "from-a"))
        assert b.find_session(s.id).raw_attributes() == {"k": "from-a"}
        target = next(m for m in cc.get_members() if m.port == cb.get_local_member().port)

        def forged(value, counter):
            delta = d.DeltaRequest(b.cluster_manager_name, s.id, (counter, "zz"))
            delta.set_attribute("k", value)
            return session_message(b.cluster_manager_name, d.EVT_SESSION_DELTA, s.id, delta.to_plain())
        assert cc.send(forged("from-c", 10 ** 6), target, ch.USE_ACK | ch.SYNCHRONIZED_ACK) is not None
        assert b.find_session(s.id).raw_attributes() == {"k": "from-a"}
        control = next(m for m in ca.get_members() if m.port == cb.get_local_member().port)
        assert ca.send(forged("from-a-again", 10 ** 6), control, ch.USE_ACK | ch.SYNCHRONIZED_ACK) is not None
        assert b.find_session(s.id).raw_attributes() == {"k": "from-a-again"}
    finally:
        for cluster, manager in reversed(made):
            manager.stop()
            cluster.stop()
