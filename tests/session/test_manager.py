import logging
import re

import pytest

from pycat import attrs
from pycat.reflect import load_class
from pycat.session.errors import TooManyActiveSessions
from pycat.session.manager import ManagerBase, StandardManager
from pycat.session.session import AttributeObserver, Session



def test_class_name_alias_and_attributes():
    cls = load_class("org.apache.catalina.session.StandardManager", ManagerBase)
    assert cls is StandardManager
    m = cls()
    for xml, value in [("maxActiveSessions", "5"), ("processExpiresFrequency", "3"),
                       ("sessionIdLength", "8"), ("maxInactiveInterval", "60"), ("pathname", ""),
                       ("secureRandomAlgorithm", "SHA1PRNG")]:
        assert attrs.set_property(m, xml, value), xml
    assert (m.max_active_sessions, m.process_expires_frequency, m.session_id_length,
            m.max_inactive_interval, m.pathname) == (5, 3, 8, 60, "")
    assert StandardManager().pathname == "SESSIONS.ser"
    assert StandardManager().max_inactive_interval == 1800


def test_secure_random_algorithm_is_ignored_with_a_debug_log(manager, caplog):
    manager.secure_random_algorithm = "SHA1PRNG"
    manager.pathname = ""
    with caplog.at_level(logging.DEBUG, logger="pycat.session.manager"):
        manager.start()
    assert "secure_random_algorithm" in caplog.text
    manager.stop()


def test_create_session_defaults(manager, clock):
    s = manager.create_session()
    assert re.fullmatch(r"[0-9A-F]{32}", s.id)
    assert s.is_new and s.is_valid
    assert s.creation_time == s.last_accessed_time == clock.now
    assert s.max_inactive_interval == 1800
    assert manager.find_session(s.id) is s
    assert manager.active_sessions == 1 and manager.session_counter == 1


def test_session_id_length_and_jvm_route(manager):
    manager.session_id_length = 4
    manager.jvm_route = "node7"
    assert re.fullmatch(r"[0-9A-F]{8}\.node7", manager.create_session().id)


def test_nested_session_id_generator(manager):
    from pycat.session.id_generator import SessionIdGenerator
    g = SessionIdGenerator()
    g.session_id_length = 6
    manager.set_session_id_generator(g)
    assert len(manager.create_session().id) == 12


def test_generated_id_avoids_live_ids(manager, monkeypatch):
    first = manager.create_session()
    ids = iter([first.id, first.id, "FRESH"])
    monkeypatch.setattr(manager.session_id_generator, "generate_session_id", lambda *a: next(ids))
    assert manager.create_session().id == "FRESH"
    assert manager.duplicates == 2


def test_create_with_requested_id_ignores_malformed_or_taken(manager):
    s = manager.create_session("ABCDEF")
    assert s.id == "ABCDEF"
    assert manager.create_session("ABCDEF").id != "ABCDEF"
    assert manager.create_session("bad id!").id != "bad id!"


@pytest.mark.parametrize("forged", [None, "", "nope", "X" * 1000, "A;B", "ABC\r\nSet-Cookie: x",
                                    "ABC.node.more", 12345, "../../SESSIONS.ser"])
def test_find_malformed_forged_unknown_gives_none(manager, forged):
    manager.create_session()
    assert manager.find_session(forged) is None


def test_find_expired_gives_none_and_expires(manager, clock, Recorder):
    rec = Recorder()
    manager.add_session_listener(rec)
    s = manager.create_session()
    s.max_inactive_interval = 10
    clock.advance(9.9)
    assert manager.find_session(s.id) is s
    clock.advance(0.2)
    assert manager.find_session(s.id) is None
    assert ("destroyed", s.id, []) in rec.events
    assert manager.active_sessions == 0 and manager.expired_sessions == 1


def test_access_restarts_the_idle_clock(manager, clock):
    s = manager.create_session()
    s.max_inactive_interval = 10
    for _ in range(5):
        clock.advance(8)
        s.access()
        s.end_access()
    assert s.is_valid and not s.is_new
    assert s.last_accessed_time == clock.now
    assert s.access_count == 0


def test_access_counting(manager):
    s = manager.create_session()
    s.access()
    s.access()
    assert s.access_count == 2
    s.end_access()
    assert s.access_count == 1


def test_non_positive_interval_never_expires(manager, clock):
    s = manager.create_session()
    s.max_inactive_interval = 0
    clock.advance(10 ** 9)
    manager.process_expires()
    assert manager.find_session(s.id) is s


def test_background_process_expires_every_n_ticks(manager, clock, Recorder):
    manager.process_expires_frequency = 3
    rec = Recorder()
    manager.add_session_listener(rec)
    old = manager.create_session()
    old.max_inactive_interval = 60
    clock.advance(30)
    young = manager.create_session()
    young.max_inactive_interval = 60
    clock.advance(40)
    manager.background_process()
    manager.background_process()
    assert manager.active_sessions == 2      # not yet: expiry runs on every third tick
    manager.background_process()
    assert manager.active_sessions == 1
    assert manager._sessions == {young.id: young}
    assert [e[0] for e in rec.events].count("destroyed") == 1
    assert manager.expired_sessions == 1
    assert manager.session_max_alive_time == pytest.approx(70)
    assert manager.session_average_alive_time == pytest.approx(70)


def test_max_active_sessions_rejects_clearly(manager):
    manager.max_active_sessions = 2
    a = manager.create_session()
    manager.create_session()
    with pytest.raises(TooManyActiveSessions, match=r"maxActiveSessions \(2\)"):
        manager.create_session()
    assert manager.rejected_sessions == 1
    a.invalidate()
    manager.create_session()        # room again
    assert manager.max_active == 2


def test_change_session_id(manager, Recorder):
    rec = Recorder()
    manager.add_session_listener(rec)
    s = manager.create_session()
    s["user"] = "alice"
    old = s.id
    new = manager.change_session_id(s)
    assert new != old and s.id == new
    assert manager.find_session(old) is None
    assert manager.find_session(new) is s and s["user"] == "alice"
    assert rec.events[-1] == ("id_changed", old, new)
    assert manager.change_session_id(s, "CHOSEN") == "CHOSEN"
    assert manager.active_sessions == 1


def test_change_session_id_keeps_route(manager):
    manager.jvm_route = "n1"
    s = manager.create_session()
    assert manager.change_session_id(s).endswith(".n1")


def test_stop_without_persistence_destroys_sessions(manager, Recorder):
    manager.pathname = ""
    rec = Recorder()
    manager.add_session_listener(rec)
    manager.start()
    s = manager.create_session()
    manager.stop()
    assert ("destroyed", s.id, []) in rec.events
    assert manager.active_sessions == 0


def test_manager_observer_seam_records_tracked_changes_only(clock):
    # what a DeltaManager does: one observer for every session it makes, hearing tracked changes
    class Changes(AttributeObserver):
        def __init__(self):
            self.changes = []

        def attribute_written(self, session, name, value, old):
            self.changes.append(("set", session.id, name, value, old))

        def attribute_removed(self, session, name, old):
            self.changes.append(("remove", session.id, name, old))

    class Tracking(ManagerBase):
        attribute_observer = Changes()

    m = Tracking()
    m.clock = clock
    s = m.create_session()
    s["a"] = 1
    s["a"] = 2
    s["a"] = None
    s.set_attribute("b", 2, track=False)   # a replicated change is not re-recorded
    s.remove_attribute("b", track=False)
    assert m.attribute_observer.changes == [("set", s.id, "a", 1, None), ("set", s.id, "a", 2, 1),
                                            ("remove", s.id, "a", 2)]
    s["c"] = 3
    s.expire()                             # expiry travels as itself, not as removals
    assert m.attribute_observer.changes[-1] == ("set", s.id, "c", 3, None)


def test_cluster_subclass_can_watch_slot_fields(clock):
    # a DeltaSession records principal / maxInactiveInterval / isNew changes by shadowing the slot
    class Watching(Session):
        __slots__ = ("seen",)

        def __init__(self, manager):
            self.seen = []
            super().__init__(manager)

        @property
        def max_inactive_interval(self):
            return Session.max_inactive_interval.__get__(self)

        @max_inactive_interval.setter
        def max_inactive_interval(self, value):
            self.seen.append(value)
            Session.max_inactive_interval.__set__(self, value)

    class M(ManagerBase):
        session_class = Watching

    m = M()
    m.clock = clock
    s = m.create_session()
    s.max_inactive_interval = 5
    assert s.seen[-1] == 5 and s.max_inactive_interval == 5
    clock.advance(6)
    assert m.find_session(s.id) is None


def test_same_instance_restart_keeps_sessions(manager):
    manager.start()
    s = manager.create_session()
    s["u"] = "bob"
    manager.stop()
    assert manager.active_sessions == 0
    manager.start()
    assert manager.find_session(s.id)["u"] == "bob"
    manager.pathname = ""
    manager.stop()
