"""The manager seam's parts, without sockets: the template clone, registration by name and its
end, Manager.take_over, and core's session_support asking whatever cluster object its container
holds (core knows no ha class). The in-process Host/Context version is
tests/deploy/test_cluster_manager_seam.py."""
import types

import pytest

from pycat.core import session_support
from pycat.ha.cluster import SimpleTcpCluster
from pycat.session.id_generator import SessionIdGenerator
from pycat.session.manager import StandardManager
from pycat.session.persistent import PersistentManager


def fake_context(name="/app", distributable=True, cluster=None, host_name="localhost", cluster_in="host"):
    engine = types.SimpleNamespace(name="Catalina", parent=None, cluster=None)
    host = types.SimpleNamespace(name=host_name, parent=engine, cluster=None)
    ctx = types.SimpleNamespace(name=name, parent=host, distributable=distributable)
    holder = host if cluster_in == "host" else engine
    holder.cluster = cluster
    if cluster is not None:
        cluster.set_container(holder)
    ctx.get_cluster = lambda: host.cluster or engine.cluster
    return ctx


def test_clone_copies_configuration_not_state():
    template = StandardManager()
    template.max_active_sessions, template.pathname = 5, ""
    template.session_attribute_value_class_name_filter = r"builtins\.str"
    gen = SessionIdGenerator()
    gen.session_id_length = 24
    template.set_session_id_generator(gen)
    template.create_session()
    twin = template.clone()
    assert type(twin) is StandardManager and twin is not template
    assert (twin.max_active_sessions, twin.pathname) == (5, "")
    assert twin.session_attribute_value_class_name_filter == r"builtins\.str"
    assert twin.session_id_generator is not gen and twin.session_id_generator.session_id_length == 24
    assert twin.active_sessions == 0 and twin.session_counter == 0
    assert "max_inactive_interval" not in twin.__dict__     # unset stays unset (web.xml timeout applies)
    assert type(PersistentManager().clone()) is PersistentManager


def test_create_register_and_unregister_on_stop():
    cluster = SimpleTcpCluster()
    ctx = fake_context(cluster=cluster)
    manager = cluster.create_manager(ctx)
    assert cluster.get_manager("/app") is manager and cluster.managers == {"/app": manager}
    manager.start()
    # a redeploy: the new Context's manager takes the name while the old one still runs
    newer = cluster.create_manager(fake_context(cluster=cluster))
    assert cluster.get_manager("/app") is newer
    manager.stop()                                   # the old one's stop leaves the newer registered
    assert cluster.get_manager("/app") is newer
    newer.start()
    newer.stop()
    assert cluster.managers == {}
    # a restart of the Context registers the same manager again, once
    cluster.register_manager(newer, ctx)
    cluster.register_manager(newer, ctx)
    assert cluster.managers == {"/app": newer}
    assert newer._lifecycle_listeners.count(cluster._manager_lifecycle) == 1


def test_an_engine_cluster_prefixes_the_host():
    cluster = SimpleTcpCluster()
    ctx = fake_context(name="/shop", cluster=cluster, host_name="www", cluster_in="engine")
    assert cluster.get_manager_name(ctx) == "www#/shop"
    assert cluster.get_manager_name(fake_context(name="/shop", cluster=SimpleTcpCluster())) == "/shop"


class RecordingCluster:
    """Any object with the contract will do: core imports no ha class."""

    def __init__(self):
        self.created, self.registered = [], []

    def create_manager(self, context):
        manager = StandardManager()
        self.created.append((context, manager))
        return manager

    def register_manager(self, manager, context=None):
        self.registered.append((manager, context))


@pytest.mark.parametrize("distributable, has_cluster, asks", [
    (True, True, True), (False, True, False), (True, False, False), (False, False, False)])
def test_core_asks_the_cluster_only_for_distributable_apps(distributable, has_cluster, asks):
    cluster = RecordingCluster() if has_cluster else None
    ctx = types.SimpleNamespace(distributable=distributable, get_cluster=lambda: cluster)
    manager = session_support.create_manager(ctx)
    assert isinstance(manager, StandardManager)
    assert (cluster is not None and cluster.created == [(ctx, manager)]) is asks


def test_take_over_copies_live_sessions_of_a_manager_that_does_not_persist():
    old, new = StandardManager(), StandardManager()
    old.pathname = new.pathname = ""
    old.start(), new.start()
    session = old.create_session()
    session.set_attribute("cart", ["apple"])
    dead = old.create_session()
    dead.expire()
    assert new.take_over(old) == 1
    copy = new.find_session(session.id)
    assert copy is not session and copy.get_attribute("cart") == ["apple"] and copy.manager is new
    assert new.take_over(old) == 0                  # twice takes nothing new


def test_take_over_loads_the_file_the_old_manager_saved(tmp_path):
    old, new = StandardManager(), StandardManager()
    old.work_dir = str(tmp_path / "old")
    new.work_dir = str(tmp_path / "new")               # another path: the old one's file is read
    old.start(), new.start()
    sid = old.create_session().id
    old.find_session(sid).set_attribute("n", 3)
    old.stop()
    assert new.take_over(old) == 1
    assert new.find_session(sid).get_attribute("n") == 3
    assert not (tmp_path / "old" / "SESSIONS.ser").exists()
