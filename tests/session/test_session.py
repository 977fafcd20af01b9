import socket
import threading

import pytest

from pycat.session.errors import InvalidSessionError, NotSerializableError



def test_mapping_protocol(manager):
    s = manager.create_session()
    s["a"] = 1
    s.set_attribute("b", [2])
    assert s["a"] == 1 and s.get("b") == [2] and s.get("zz") is None
    assert "a" in s and "zz" not in s
    assert sorted(s) == ["a", "b"] and len(s) == 2
    assert dict(s.items()) == {"a": 1, "b": [2]}
    del s["a"]
    assert s.attribute_names() == ["b"]
    with pytest.raises(KeyError):
        del s["a"]
    with pytest.raises(KeyError):
        s["a"]
    s.update(c=3)
    assert s.pop("c") == 3


def test_setting_none_removes(manager, Recorder):
    rec = Recorder()
    manager.add_session_listener(rec)
    s = manager.create_session()
    s["a"] = 1
    s["a"] = None
    assert "a" not in s
    assert rec.events[-1] == ("removed", "a", 1)
    s.set_attribute("missing", None)     # removing nothing is silent
    assert rec.events[-1] == ("removed", "a", 1)


def test_sessions_are_hashable_by_identity_and_always_true(manager):
    a, b = manager.create_session(), manager.create_session()
    assert a != b and len({a, b, a}) == 2
    assert bool(a) and len(a) == 0


def test_use_after_invalidate_raises(manager):
    s = manager.create_session()
    s.invalidate()
    assert not s.is_valid
    for call in (lambda: s.get_attribute("a"), lambda: s.set_attribute("a", 1),
                 lambda: s.remove_attribute("a"), lambda: s["a"], s.invalidate, s.attribute_names):
        with pytest.raises(InvalidSessionError):
            call()
    assert manager.find_session(s.id) is None


def test_attribute_listener_events(manager, Recorder):
    rec = Recorder()
    manager.add_session_listener(rec)
    s = manager.create_session()
    s["a"] = 1
    s["a"] = 2
    s["a"] = 2            # same int object: replaced again (notifyAttributeListenerOnUnchangedValue)
    s.remove_attribute("a")
    assert rec.events == [("created", s.id), ("added", "a", 1), ("replaced", "a", 1),
                          ("replaced", "a", 2), ("removed", "a", 2)]
    manager.notify_attribute_listener_on_unchanged_value = False
    s["b"] = 5
    s["b"] = 5
    assert rec.events[-1] == ("added", "b", 5)


def test_notify_false_is_silent(manager, Recorder):
    rec = Recorder()
    manager.add_session_listener(rec)
    s = manager.create_session()
    s.set_attribute("a", 1, notify=False)
    s.remove_attribute("a", notify=False)
    assert rec.events == [("created", s.id)]


def test_invalidate_fires_destroyed_then_unbinds(manager, Recorder):
    log = []
    rec = Recorder(log)

    class Bound:
        def value_bound(self, event):
            log.append(("bound", event.name))

        def value_unbound(self, event):
            # during unbind the session is already invalid
            log.append(("unbound", event.name, event.session.valid))

    manager.add_session_listener(rec)
    s = manager.create_session()
    x = Bound()
    s["x"] = x
    s["y"] = 1
    s.invalidate()
    sid = s.id
    assert log == [("created", sid), ("bound", "x"), ("added", "x", x), ("added", "y", 1),
                   ("destroyed", sid, ["x", "y"]), ("unbound", "x", False),
                   ("removed", "x", x), ("removed", "y", 1)]


def test_binding_order_and_unchanged_value(manager, Recorder):
    log = []

    class Value:
        def __init__(self, tag):
            self.tag = tag

        def value_bound(self, event):
            log.append(("bound", self.tag, event.name, event.value is self))

        def value_unbound(self, event):
            log.append(("unbound", self.tag, event.name))

    manager.add_session_listener(Recorder(log))
    s = manager.create_session()
    v1, v2 = Value(1), Value(2)
    s["k"] = v1
    s["k"] = v2
    s["k"] = v2                      # same object: no bind/unbind by default
    del s["k"]
    assert log[1:] == [("bound", 1, "k", True), ("added", "k", v1),
                       ("bound", 2, "k", True), ("unbound", 1, "k"), ("replaced", "k", v1),
                       ("replaced", "k", v2),
                       ("unbound", 2, "k"), ("removed", "k", v2)]
    manager.notify_binding_listener_on_unchanged_value = True
    log.clear()
    s["k"] = v1
    s["k"] = v1
    assert [e[0] for e in log] == ["bound", "added", "bound", "unbound", "replaced"]


def test_listener_that_raises_does_not_break_others(manager, caplog, Recorder):
    log = []

    class Broken:
        def session_created(self, event):
            raise RuntimeError("boom")

        def attribute_added(self, event):
            raise RuntimeError("boom")

    class BadValue:
        def value_bound(self, event):
            raise RuntimeError("boom")

    manager.add_session_listener(Broken())
    manager.add_session_listener(Recorder(log))
    s = manager.create_session()
    s["a"] = BadValue()
    assert [e[0] for e in log] == ["created", "added"]
    assert isinstance(s["a"], BadValue)
    assert [r.levelname for r in caplog.records] == ["ERROR"] * 3


def test_destroyed_listeners_run_in_reverse_order(manager, Recorder):
    log = []
    manager.add_session_listener(Recorder(log, "first-"))
    manager.add_session_listener(Recorder(log, "second-"))
    s = manager.create_session()
    s.invalidate()
    assert [e[0] for e in log] == ["first-created", "second-created", "second-destroyed", "first-destroyed"]


def test_listener_registration_by_methods(manager, caplog):
    class OnlyId:
        def __init__(self):
            self.seen = []

        def session_id_changed(self, event, old_id):
            self.seen.append(old_id)

    only = OnlyId()
    assert manager.add_session_listener(only)
    assert not manager.add_session_listener(object())
    assert "not a session listener" in caplog.text
    s = manager.create_session()
    s["a"] = 1
    old = s.id
    manager.change_session_id(s)
    assert only.seen == [old]
    manager.remove_session_listener(only)
    manager.change_session_id(s)
    assert only.seen == [old]


def test_notes_are_private_and_separate(manager):
    s = manager.create_session()
    assert s.get_note("n") is None and s.note_names() == []
    s.set_note("org.apache.catalina.authenticator.REQUEST", {"u": 1})
    assert s.get_note("org.apache.catalina.authenticator.REQUEST") == {"u": 1}
    assert s.attribute_names() == []
    s.remove_note("org.apache.catalina.authenticator.REQUEST")
    assert s.note_names() == []


def _generator():
    yield 1


@pytest.mark.parametrize("make, typename", [
    (_generator, "generator"),
    (socket.socket, "socket"),
])
def test_distributable_refuses_what_dill_cannot_serialise(manager, make, typename):
    manager.distributable = True
    s = manager.create_session()
    value = make()
    try:
        with pytest.raises(NotSerializableError) as info:
            s["conn"] = value
    finally:
        if hasattr(value, "close"):
            value.close()
    assert isinstance(info.value, ValueError)
    assert "'conn'" in str(info.value) and typename in str(info.value)
    assert "conn" not in s


def test_distributable_accepts_what_dill_can(manager):
    manager.distributable = True
    s = manager.create_session()
    factor = 3
    s["fn"] = lambda x: x * factor            # dill serialises closures
    s["lock"] = threading.Lock()              # and locks
    assert s["fn"](2) == 6


def test_not_distributable_accepts_anything(manager):
    s = manager.create_session()
    s["gen"] = _generator()
    assert "gen" in s


def test_expire_without_notify_is_silent(manager, Recorder):
    log = []
    manager.add_session_listener(Recorder(log))
    s = manager.create_session()
    s["a"] = 1
    log.clear()
    s.expire(notify=False)
    assert log == [] and not s.is_valid
