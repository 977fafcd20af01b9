"""PersistentManager behaviour: swap in/out, backups, expiry, restart, filter (FileStore and SQLite;
the PostgreSQL variants live in test_persistent_failover.py)."""
import collections
import logging

import pytest

from conftest_pg import new_manager
from pycat.session.errors import TooManyActiveSessions
from pycat.session.persistent import PersistentManager
from pycat.session.store_file import FileStore
from pycat.session.store_jdbc import JDBCStore

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["file", "sqlite"])
def make(request, clock, tmp_path):
    def new_store():
        if request.param == "file":
            s = FileStore()
            s.directory = str(tmp_path / "store")
        else:
            s = JDBCStore()
            s.connection_url = "sqlite:%s" % (tmp_path / "s.db")
        return s

    def factory(start=True, **attrs):
        return new_manager(new_store(), clock, tmp_path, start=start, **attrs)
    return factory


class Activation:
    """An attribute value that records passivation/activation (module level: it pickles)."""
    log = []

    def __init__(self, tag):
        self.tag = tag

    def session_will_passivate(self, event):
        Activation.log.append(("passivate", self.tag))

    def session_did_activate(self, event):
        Activation.log.append(("activate", self.tag))


def request(manager, sid):
    """What the request path does: find, access, ..., end_access."""
    s = manager.find_session(sid)
    if s is not None:
        s.access()
        s.end_access()
    return s


def test_restart_saves_to_store_and_loads_lazily(make, Recorder):
    m1 = make()
    s = m1.create_session()
    s["cart"] = ["apple"]
    s["hook"] = Activation("x")
    sid = s.id
    Activation.log.clear()
    m1.stop()
    assert Activation.log == [("passivate", "x")]
    assert m1.store.keys() == [sid] or sorted(m1.store.keys()) == [sid]
    m2 = make()
    rec = Recorder()
    m2.add_session_listener(rec)
    assert m2.active_sessions == 0            # nothing loaded eagerly
    got = m2.find_session(sid)
    assert got is not None and got["cart"] == ["apple"] and m2.active_sessions == 1
    assert ("created", sid) in rec.events     # Tomcat tells listeners on swap-in
    assert ("activate", "x") in Activation.log
    assert m2.find_session(sid) is got        # from memory the second time


def test_max_idle_swap_with_injected_clock(make, clock):
    m = make(max_idle_swap=60)
    s = m.create_session()
    s["k"] = 1
    sid = s.id
    clock.advance(30)
    m.process_persistence_checks()
    assert m.is_loaded(sid) and sid not in m.store.keys()
    clock.advance(31)
    m.process_persistence_checks()
    assert not m.is_loaded(sid) and m.store.keys() == [sid]
    assert not s.valid                         # the stale object refuses use
    back = m.find_session(sid)
    assert back is not s and back["k"] == 1 and m.is_loaded(sid)


def test_min_idle_swap_holds_back_max_idle_swap(make, clock):
    m = make(max_idle_swap=10, min_idle_swap=100)
    sid = m.create_session().id
    clock.advance(50)
    m.process_persistence_checks()
    assert m.is_loaded(sid)
    clock.advance(60)
    m.process_persistence_checks()
    assert not m.is_loaded(sid)


def test_a_session_in_use_is_not_swapped(make, clock):
    m = make(max_idle_swap=10)
    s = m.create_session()
    s.access()                                 # a request is using it
    clock.advance(100)
    m.process_persistence_checks()
    assert m.is_loaded(s.id)


def test_max_active_sessions_swaps_out_the_longest_idle(make, clock):
    m = make(max_active_sessions=2, min_idle_swap=5)
    a = m.create_session()
    clock.advance(10)
    b = m.create_session()
    clock.advance(10)
    c = m.create_session()          # at the limit: a (idle 20s) goes to the store to make room
    assert not m.is_loaded(a.id) and m.is_loaded(b.id) and m.is_loaded(c.id)
    assert m.store.keys() == [a.id]
    d = m.create_session()          # b (idle 10s >= minIdleSwap) makes room for d
    assert not m.is_loaded(b.id) and m.is_loaded(d.id)
    with pytest.raises(TooManyActiveSessions):
        m.create_session()          # c and d are idle 0s < minIdleSwap: refused, clearly
    assert m.find_session(a.id) is not None    # swapped-out sessions still come back on demand


def test_background_process_runs_persistence_checks_at_expiry_frequency(make, clock):
    m = make(max_idle_swap=1, process_expires_frequency=3)
    sid = m.create_session().id
    clock.advance(5)
    m.background_process()
    m.background_process()
    assert m.is_loaded(sid)
    m.background_process()
    assert not m.is_loaded(sid)


def test_max_idle_backup_zero_writes_at_request_end(make, clock):
    m = make(max_idle_backup=0)
    s = m.create_session()
    assert m.store.keys() == []
    s.access()
    s["n"] = 41
    s.end_access()
    assert m.store.load(s.id)["n"] == 41
    s.access()
    s["n"] = 42
    s.end_access()
    assert m.store.load(s.id)["n"] == 42
    assert m.is_loaded(s.id)                   # a backup stays in memory


def test_max_idle_backup_positive_writes_once_per_access(make, clock, monkeypatch):
    m = make(max_idle_backup=30)
    s = m.create_session()
    s.end_access()                             # no write at request end when > 0
    assert m.store.keys() == []
    clock.advance(31)
    writes = collections.Counter()
    save = m.store.save
    monkeypatch.setattr(m.store, "save", lambda sess: (writes.update([sess.id]), save(sess)))
    m.process_persistence_checks()
    m.process_persistence_checks()
    assert writes[s.id] == 1 and m.store.keys() == [s.id]
    s.access()
    s.end_access()
    clock.advance(31)
    m.process_persistence_checks()
    assert writes[s.id] == 2


def test_invalidate_and_change_session_id_keep_the_store_in_step(make):
    m = make(max_idle_backup=0)
    s = m.create_session()
    s.access()
    s.end_access()
    old = s.id
    m.change_session_id(s)
    assert old not in m.store.keys()
    s.access()
    s.end_access()
    assert m.store.keys() == [s.id]
    s.invalidate()
    assert m.store.keys() == []


def test_expired_session_in_store_is_not_resurrected(make, clock, Recorder):
    m1 = make()
    s = m1.create_session()
    s.max_inactive_interval = 60
    s["a"] = 1
    sid = s.id
    m1.stop()
    clock.advance(61)
    m2 = make()
    rec = Recorder()
    m2.add_session_listener(rec)
    assert m2.find_session(sid) is None
    assert sid not in m2.store.keys()
    assert ("destroyed", sid, ["a"]) in rec.events


def test_process_expires_cleans_the_store(make, clock):
    m1 = make()
    s = m1.create_session()
    s.max_inactive_interval = 60
    keep = m1.create_session()
    keep.max_inactive_interval = 600
    m1.stop()
    m2 = make()
    clock.advance(100)
    m2.process_expires()
    assert m2.store.keys() == [keep.id]


def test_stop_without_save_on_restart_destroys_and_removes(make, Recorder):
    m = make(save_on_restart=False, max_idle_backup=0)
    rec = Recorder()
    m.add_session_listener(rec)
    s = m.create_session()
    s.access()
    s.end_access()
    assert m.store.keys() == [s.id]
    m.stop()
    assert m.store.keys() == []
    assert ("destroyed", s.id, []) in rec.events


class Allowed:
    def __init__(self, v):
        self.v = v


class Refused:
    pass


def test_attribute_class_name_filter_on_save(make, caplog):
    m = make(session_attribute_value_class_name_filter=r"builtins\.(str|int|list)|test_persistent\.Allowed")
    s = m.create_session()
    s["name"] = "ana"
    s["n"] = 3
    s["ok"] = Allowed(5)
    s["no"] = Refused()
    s["d"] = {"x": 1}
    with caplog.at_level(logging.WARNING):
        m.store.save(s)
    got = m.store.load(s.id)
    assert set(got.raw_attributes()) == {"name", "n", "ok"} and got["ok"].v == 5
    assert "test_persistent.Refused" in caplog.text and "builtins.dict" in caplog.text


def test_attribute_class_name_filter_on_load(make, caplog):
    writer = make()                            # no filter: writes everything
    s = writer.create_session()
    s["ok"] = "text"
    s["obj"] = Allowed(1)
    s["nested"] = ["fine", Refused()]          # Refused hides inside an allowed list
    writer.store.save(s)
    reader = make(session_attribute_value_class_name_filter=r"builtins\..*")
    with caplog.at_level(logging.WARNING):
        got = reader.store.load(s.id)
    assert dict(got.raw_attributes()) == {"ok": "text"}
    assert "test_persistent.Allowed" in caplog.text and "test_persistent.Refused" in caplog.text


def test_non_serialisable_value_is_left_out_with_a_warning(make, caplog):
    m = make()
    s = m.create_session()
    s["gen"] = (x for x in range(3))  # neither pickle nor dill can write a generator
    s["keep"] = 1
    with caplog.at_level(logging.WARNING):
        m.store.save(s)
    assert dict(m.store.load(s.id).raw_attributes()) == {"keep": 1}
    assert "'gen'" in caplog.text and "generator" in caplog.text


def test_no_store_configured_logs_and_serves_from_memory(clock, caplog):
    m = PersistentManager()
    m.clock = clock
    with caplog.at_level(logging.ERROR):
        m.start()
    assert "no <Store>" in caplog.text
    s = m.create_session()
    assert m.find_session(s.id) is s and m.find_session("ABC") is None
    s.end_access()
    m.process_expires()
    m.stop()


def test_concurrent_swap_in_loads_once(make):
    import gevent
    m1 = make()
    sid = m1.create_session().id
    m1.stop()
    m2 = make()
    loads = []
    real = m2.store.load

    def slow_load(i):
        loads.append(i)
        gevent.sleep(0.01)        # yield mid-load, as a database call does
        return real(i)
    m2.store.load = slow_load
    found = [g.value for g in gevent.joinall([gevent.spawn(m2.find_session, sid) for _ in range(5)])]
    assert len(loads) == 1 and all(f is found[0] for f in found) and found[0] is not None
