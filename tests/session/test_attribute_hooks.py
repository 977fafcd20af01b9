"""Every read, write and removal of a session attribute reaches the session's observer (the seam
replication uses to record a request's changes and to find values changed in place)."""
import hashlib
import pickle

import pytest

from pycat.session import persistence
from pycat.session.manager import StandardManager
from pycat.session.session import AttributeObserver


class Heard(AttributeObserver):
    def __init__(self):
        self.reads = []
        self.changes = []

    def attribute_read(self, session, name, value):
        self.reads.append((session.id, name, value))

    def attribute_written(self, session, name, value, old):
        self.changes.append(("written", name, value, old))

    def attribute_removed(self, session, name, old):
        self.changes.append(("removed", name, old))


@pytest.fixture
def heard(manager):
    manager.attribute_observer = Heard()
    return manager.attribute_observer


@pytest.fixture
def session(manager, heard):
    s = manager.create_session()
    s["a"] = 1
    s["b"] = [2]
    heard.reads.clear()
    heard.changes.clear()
    return s


READS = {
    "get_attribute": (lambda s: s.get_attribute("a"), {"a"}),
    "[]": (lambda s: s["b"], {"b"}),
    "get": (lambda s: s.get("a"), {"a"}),
    "get with default": (lambda s: s.get("b", 0), {"b"}),
    "in": (lambda s: "a" in s, {"a"}),
    "iteration": (lambda s: list(s), {"a", "b"}),
    "keys": (lambda s: list(s.keys()), {"a", "b"}),
    "items": (lambda s: list(s.items()), {"a", "b"}),
    "values": (lambda s: list(s.values()), {"a", "b"}),
    "attribute_names": (lambda s: s.attribute_names(), {"a", "b"}),
    "dict()": (lambda s: dict(s), {"a", "b"}),
    "setdefault of a present name": (lambda s: s.setdefault("b", 9), {"b"}),
}


@pytest.mark.parametrize("name", list(READS))
def test_every_read_path_is_heard_with_the_value(session, heard, name):
    read, expected = READS[name]
    read(session)
    assert {n for _, n, _ in heard.reads} == expected
    for sid, n, value in heard.reads:
        assert sid == session.id and value is session.raw_attributes()[n]   # the very object handed out
    assert heard.changes == []                 # a read is not a change


def test_misses_and_len_report_nothing(session, heard):
    assert session.get_attribute("zz") is None and session.get("zz", 5) == 5 and "zz" not in session
    with pytest.raises(KeyError):
        session["zz"]
    assert len(session) == 2
    assert heard.reads == []
    assert session.get("a") == 1 and heard.reads == [(session.id, "a", 1)]    # positive control


def test_writes_and_removals_by_every_path(session, heard):
    b = session["b"]
    heard.reads.clear()
    session["a"] = 10                                  # replace
    session.set_attribute("c", "x")                    # add
    session["c"] = None                                # None removes (servlet rule)
    del session["a"]
    session.remove_attribute("b")
    session.update(d=4)
    assert session.pop("d") == 4
    assert heard.changes == [("written", "a", 10, 1), ("written", "c", "x", None), ("removed", "c", "x"),
                             ("removed", "a", 10), ("removed", "b", b), ("written", "d", 4, None),
                             ("removed", "d", 4)]


def test_clear_is_heard_as_removals(session, heard):
    session.clear()
    assert sorted(c[1] for c in heard.changes if c[0] == "removed") == ["a", "b"]
    assert len(session) == 0


def test_untracked_changes_and_expiry_are_not_heard(session, heard):
    session.set_attribute("r", 1, track=False)     # a replicated change must not be re-recorded
    session.remove_attribute("a", track=False)
    assert heard.changes == []
    session.set_attribute("w", 2)                  # positive control: the tracked path is heard
    assert heard.changes == [("written", "w", 2, None)]
    session.expire()
    assert heard.changes == [("written", "w", 2, None)]


def test_sessions_of_a_manager_without_observer_have_none(manager):
    s = manager.create_session()
    assert s.observer is None
    s["a"] = 1
    assert s["a"] == 1 and s.get("a") == 1 and "a" in s and dict(s) == {"a": 1}


def test_restored_sessions_report_to_the_manager_observer(tmp_path, clock):
    first = StandardManager()
    first.clock = clock
    first.work_dir = str(tmp_path)
    first.start()
    sid = first.create_session().id
    first.find_session(sid)["cart"] = ["apple"]
    first.stop()
    second = StandardManager()
    second.clock = clock
    second.work_dir = str(tmp_path)
    second.attribute_observer = Heard()
    second.start()
    assert second.attribute_observer.reads == []   # restoring the values is not the app reading them
    assert second.find_session(sid)["cart"] == ["apple"]
    assert second.attribute_observer.reads == [(sid, "cart", ["apple"])]
    second.pathname = ""
    second.stop()


class Digests(AttributeObserver):
    """Mutation detection as replication will do it: the digest of each value when first read,
    compared with its digest when the request ends."""

    def __init__(self):
        self.first = {}

    def attribute_read(self, session, name, value):
        self.first.setdefault(name, hashlib.sha1(pickle.dumps(value)).digest())

    def changed_in_place(self, session):
        attrs = session.raw_attributes()
        return sorted(n for n, d in self.first.items()
                      if n in attrs and hashlib.sha1(pickle.dumps(attrs[n])).digest() != d)


MUTATIONS = {
    "[]": lambda s: s["cart"].append("pear"),
    "get_attribute": lambda s: s.get_attribute("cart").append("pear"),
    "get": lambda s: s.get("cart").append("pear"),
    "values": lambda s: next(iter(s.values())).append("pear"),
    "items": lambda s: dict(s.items())["cart"].append("pear"),
    "setdefault": lambda s: s.setdefault("cart", []).append("pear"),
}


@pytest.mark.parametrize("path", list(MUTATIONS))
def test_a_value_changed_in_place_is_found_from_the_reads(manager, path):
    manager.attribute_observer = None
    s = manager.create_session()
    s["cart"] = ["apple"]
    s.observer = digests = Digests()      # one request's observer
    assert digests.changed_in_place(s) == []
    MUTATIONS[path](s)
    assert s.raw_attributes()["cart"] == ["apple", "pear"]
    assert digests.changed_in_place(s) == ["cart"]


def test_a_value_only_read_is_not_changed(manager):
    s = manager.create_session()
    s["cart"] = ["apple"]
    s["n"] = 1
    s.observer = digests = Digests()
    assert s["cart"] == ["apple"] and list(s.items())
    assert digests.changed_in_place(s) == []            # read, not changed
    s["cart"].append("pear")
    assert digests.changed_in_place(s) == ["cart"]      # positive control


def test_serialisers_do_not_count_as_reads(session, heard):
    persistence.encode_session(session)
    session.passivate()
    session.activate()
    assert heard.reads == []
    session.get("a")                                  # positive control
    assert heard.reads == [(session.id, "a", 1)]
