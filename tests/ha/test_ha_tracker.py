"""DeltaTracker (pycat.ha.session.tracker): a request's writes, removals and in-place mutations."""
import datetime
import re

import pytest

from pycat.ha.session import attr_values, tracker as tracker_mod
from pycat.ha.session.delta import REMOVE, SET, DeltaRequest
from pycat.ha.session.tracker import DeltaTracker, immutable
from pycat.session.manager import StandardManager


class Cart:
    """Not a plain value: travels as a dill blob."""

    def __init__(self):
        self.items = []


@pytest.fixture
def session():
    manager = StandardManager()
    s = manager.create_session()
    s["cart"] = ["apple"]
    s["prefs"] = {"lang": "en", "tags": ["a"]}
    s["name"] = "ann"
    s["n"] = 3
    s["pair"] = (1, ("x", b"y"), frozenset({2.5, None}))
    return s


def begin(session, **kw):
    t = DeltaTracker(session, **kw)
    session.observer = t
    return t


def sets(delta):
    return [a[1] for a in delta.actions if a[0] == SET]


MUTATIONS = {
    "getitem": lambda s: s["cart"].append("pear"),
    "get": lambda s: s.get("cart").append("pear"),
    "get_attribute": lambda s: s.get_attribute("cart").append("pear"),
    "items": lambda s: [v.append("pear") for k, v in s.items() if k == "cart"],
    "values": lambda s: [v.append("pear") for v in s.values() if isinstance(v, list)],
    "iteration": lambda s: [s[k].append("pear") for k in s if k == "cart"],
    "nested_dict": lambda s: s["prefs"]["tags"].append("b"),
}


@pytest.mark.parametrize("how", sorted(MUTATIONS))
def test_in_place_mutation_is_recorded(session, how):
    t = begin(session)
    MUTATIONS[how](session)
    delta = t.finish()
    assert delta is not None
    changed = "prefs" if how == "nested_dict" else "cart"
    assert sets(delta) == [changed]
    assert delta.actions[0][2] is session.raw_attributes()[changed]
    # the value travels as it is now
    plain = delta.to_plain()
    assert plain[5][0][1] == changed                 # [version, app, id, counter, writer, actions]


def test_unchanged_reads_give_no_action_and_a_mutation_does(session):
    t = begin(session)
    list(session.items())
    assert session["cart"] == ["apple"] and session.get("prefs")["lang"] == "en"
    assert t.finish() is None
    # positive control: the same reads plus one change in place
    t = begin(session)
    list(session.items())
    session["prefs"]["lang"] = "fr"
    assert sets(t.finish()) == ["prefs"]


def test_mutation_after_many_reads_is_measured_from_the_first(session):
    t = begin(session)
    session["cart"].append("pear")
    session["cart"]           # a later read must not re-take the digest (it would hide the change)
    list(session.values())
    assert sets(t.finish()) == ["cart"]


def test_write_is_recorded_once(session):
    delta = DeltaRequest("app", session.id, record_all_actions=True)   # would show a double
    t = begin(session, delta=delta)
    cart = session["cart"]
    cart.append("pear")
    session["cart"] = cart
    session["cart"].append("plum")     # read again after the write: still the written value
    assert t.finish() is delta
    assert delta.actions == [(SET, "cart", cart)]
    assert t.digests == 1              # the first read only


def test_write_of_a_new_value_then_mutation(session):
    t = begin(session)
    session["new"] = []
    session["new"].append(1)
    assert [a[:2] for a in t.finish().actions] == [(SET, "new")]


def test_remove_is_recorded(session):
    t = begin(session)
    session["cart"].append("pear")
    del session["cart"]
    session.remove_attribute("prefs")
    delta = t.finish()
    assert delta.actions == [(REMOVE, "cart"), (REMOVE, "prefs")]


def test_dill_value_mutated_in_place(session):
    cart = Cart()
    session["obj"] = cart
    assert attr_values.needs_trust(cart)
    t = begin(session)
    session["obj"]
    assert t.finish() is None
    t = begin(session)
    session["obj"].items.append("pear")
    assert sets(t.finish()) == ["obj"]


def test_dill_only_value_mutated_in_place(session):
    class Local:                       # a local class: pickle cannot, dill can
        def __init__(self):
            self.n = 0
    session["local"] = Local()
    t = begin(session)
    session["local"]
    assert t.finish() is None
    t = begin(session)
    session["local"].n += 1
    assert sets(t.finish()) == ["local"]


def test_nothing_is_unpickled(session, monkeypatch):
    from pycat.session import values

    def refuse(*a, **k):
        raise AssertionError("the tracker must not load values")
    monkeypatch.setattr(values, "load", refuse)
    session["obj"] = Cart()
    t = begin(session)
    session["obj"].items.append(1)
    assert sets(t.finish()) == ["obj"]


def test_value_that_cannot_be_encoded_counts_as_changed(session):
    session["obj"] = Cart()
    t = begin(session, class_filter=re.compile(r"nothing\.matches"))
    session["obj"]                          # ValueRefused inside the digest: unknown
    session["cart"]                         # plain, unchanged
    assert sets(t.finish()) == ["obj"]


def test_read_only_scalars_cost_no_digest(session, monkeypatch):
    calls = []
    real = tracker_mod.digest
    monkeypatch.setattr(tracker_mod, "digest", lambda *a: calls.append(a) or real(*a))
    t = begin(session)
    session["name"], session.get("n"), session["pair"]
    session["when"] = datetime.date(2024, 1, 1)     # a write: no digest either
    assert "n" in session
    assert t.finish().actions == [(SET, "when", datetime.date(2024, 1, 1))]
    assert calls == [] and t.digests == 0
    # positive control: a mutable value is digested (once at read, once at finish)
    t = begin(session)
    session["cart"]
    assert t.finish() is None
    assert len(calls) == 2 and t.digests == 2


def test_immutable():
    assert immutable(None) and immutable(("a", (1, frozenset({b"x", 2.0})), True))
    assert not immutable(([],)) and not immutable(frozenset({Cart})) and not immutable(bytearray())
    assert not immutable(datetime.date(2024, 1, 1))   # immutable in fact, but digested: conservative


def test_untracked_replacement_is_not_this_requests_change(session):
    t = begin(session)
    session["cart"]
    session.set_attribute("cart", ["replica"], notify=False, track=False)   # a replicated change
    session.remove_attribute("prefs", notify=False, track=False)
    session.get("prefs")
    assert t.finish() is None


def test_other_sessions_are_ignored(session):
    other = session.manager.create_session()
    other["x"] = []
    t = begin(session)
    other.observer = t
    other["x"].append(1)
    other["y"] = 1
    assert t.finish() is None


def test_finish_spends_the_tracker(session):
    t = begin(session)
    session["cart"].append(1)
    assert sets(t.finish()) == ["cart"]
    session.observer = None
    session["cart"].append(2)
    assert sets(t.finish()) == ["cart"]      # the delta still holds its actions; nothing new digested
    assert t.digests == 2


@pytest.mark.parametrize("how", sorted(MUTATIONS))
def test_pickle_digest_detects_the_same_mutations(session, how):
    t = begin(session, digest_function=tracker_mod.pickle_digest)
    list(session.items())
    assert t.finish() is None                         # unchanged: nothing
    t = begin(session, digest_function=tracker_mod.pickle_digest)
    MUTATIONS[how](session)
    assert sets(t.finish()) == ["prefs" if how == "nested_dict" else "cart"]


def test_pickle_digest_on_dill_values(session):
    class Local:
        n = 0
    session["local"] = Local()
    session["obj"] = Cart()
    t = begin(session, digest_function=tracker_mod.pickle_digest)
    session["local"], session["obj"]
    assert t.finish() is None
    t = begin(session, digest_function=tracker_mod.pickle_digest)
    session["local"].n += 1
    session["obj"].items.append(1)
    assert sets(t.finish()) == ["local", "obj"]
