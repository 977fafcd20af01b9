"""The session delta wire format (pycat.ha.session): attribute values and DeltaRequest, pure."""
import datetime
import decimal
import os
import random
import uuid

import pytest

from pycat.errors import IllegalStateError, ProtocolError
from pycat.ha.session import attr_values
from pycat.ha.session.delta import (ACCESS, AUTH_TYPE, CREATE, EVT_ALL_SESSION_DATA, EVT_ALL_SESSION_NOCONTEXTMANAGER,
                                    EVT_ALL_SESSION_TRANSFERCOMPLETE, EVT_CHANGE_SESSION_ID,
                                    EVT_GET_ALL_SESSIONS, EVT_SESSION_ACCESSED, EVT_SESSION_CREATED,
                                    EVT_SESSION_DELTA, EVT_SESSION_EXPIRED, EXPIRE, INVALIDATE,
                                    MAX_INACTIVE, PRINCIPAL, REMOVE, SET, CHANGE_ID, DeltaRequest,
                                    SessionMessage)
from pycat.session.values import ValueRefused
from pycat.tribes.io import codec

UTC1 = datetime.timezone(datetime.timedelta(hours=1, minutes=30), "X")
PLAIN = {
    "none": None, "bools": [True, False], "int": -7, "big": 1 << 100, "float": 1.5, "nan_free": -0.0,
    "str": "h\u00e9\ud800", "bytes": b"\x00\xff", "ba": bytearray(b"ab"), "cx": complex(1, -2),
    "tuple": (1, (2, "x"), []), "set": {1, "a", (1, 2)}, "fs": frozenset({b"x", 3}),
    "dt": datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC1, fold=1),
    "dtn": datetime.datetime(1, 1, 1), "utc": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
    "d": datetime.date(2024, 1, 2), "t": datetime.time(1, 2, 3, 4, tzinfo=datetime.timezone.utc),
    "td": datetime.timedelta(days=-3, seconds=5, microseconds=7),
    "dec": [decimal.Decimal("-0.00"), decimal.Decimal("1E+5"), decimal.Decimal("sNaN")],
    "uuid": uuid.UUID(int=12345),
    "dict_odd_keys": {1: "a", (1, 2): {"x": [frozenset({1})]}, None: 2, 2.5: 3, b"k": 4},
    "nested": [[{"a": ({"b": [set()]},)}]],
}


def roundtrip(value, trusted=False):
    return attr_values.decode(codec.loads(codec.dumps(attr_values.encode(value))), trusted)


def _same(a, b):
    if isinstance(a, decimal.Decimal):
        return type(b) is decimal.Decimal and str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b and (not isinstance(a, (datetime.datetime, datetime.time))
                                              or (a.fold == b.fold and a.tzname() == b.tzname()))


@pytest.mark.parametrize("key", sorted(PLAIN))
def test_plain_values_round_trip_untrusted(key):
    value = PLAIN[key]
    assert not attr_values.needs_trust(value)
    assert _same(value, roundtrip(value))


def test_everything_at_once_and_no_blob():
    assert _same(PLAIN, roundtrip(PLAIN))
    assert not attr_values.needs_trust(PLAIN)


@pytest.mark.parametrize("user", [("S", [1]), ("B", b"\x80\x04N."), ("T", []), ("D", [1, 2]), ("dt", [1]),
                                  ("u", b"0" * 16), ("zz", None), ()])
def test_user_tuples_shaped_like_tags_come_back_as_tuples(user):
    assert _same(user, roundtrip(user))
    assert _same({"k": [user]}, roundtrip({"k": [user]}))


class Marker:
    """Unpickling it writes a file: the visible side effect the untrusted decode must not cause."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    with open(path, "w") as fh:
        fh.write("ran")
    return "loaded"


def test_dill_blob_refused_untrusted_and_loaded_trusted(tmp_path):
    flag = str(tmp_path / "ran")
    value = Marker(flag)
    assert attr_values.needs_trust(value)
    wire = codec.loads(codec.dumps(attr_values.encode(value)))
    assert type(wire) is tuple and wire[0] == "B"
    with pytest.raises(ValueRefused) as info:
        attr_values.decode(wire, trusted=False)
    assert isinstance(info.value, attr_values.BlobRefused)
    assert not os.path.exists(flag)                                  # never unpickled
    # the same through a whole delta message: structure decodes, the blob stays unloaded
    d = DeltaRequest("/a", "S1")
    d.set_attribute("m", value)
    back = SessionMessage.from_bytes(SessionMessage("/a", EVT_SESSION_DELTA, "S1", d.to_plain()).to_bytes()).delta()
    blob = back.actions[0][2]
    assert isinstance(blob, attr_values.Blob) and not os.path.exists(flag)
    with pytest.raises(attr_values.BlobRefused):
        attr_values.resolve(blob, trusted=False)
    assert not os.path.exists(flag)
    # positive control: trusted, it loads (and the side effect shows the check above meant something)
    assert attr_values.decode(wire, trusted=True) == "loaded"
    assert open(flag).read() == "ran"


def test_lambda_and_subclasses_and_cycles_need_trust():
    import collections
    cyc = []
    cyc.append(cyc)
    for value in (lambda: 1, collections.OrderedDict(a=1), Colour.RED, cyc,
                  datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).astimezone(
                      __import__("zoneinfo").ZoneInfo("UTC")) if _has_zoneinfo() else object(),
                  collections.namedtuple("P", "x")(1), [object()]):
        assert attr_values.needs_trust(value)
        assert attr_values.encode(value)[0] == "B"
    f = attr_values.decode(attr_values.encode(lambda: 42), trusted=True)
    assert f() == 42
    back = attr_values.decode(attr_values.encode(cyc), trusted=True)
    assert back[0] is back


import enum  # noqa: E402


class Colour(enum.IntEnum):
    RED = 1


def _has_zoneinfo():
    try:
        import zoneinfo
        zoneinfo.ZoneInfo("UTC")
        return True
    except Exception:
        return False


def test_too_deep_becomes_a_blob_and_plain_depth_fits_the_codec():
    deep = 0
    for _ in range(attr_values.MAX_DEPTH):
        deep = (deep,)
    assert not attr_values.needs_trust(deep)
    d = DeltaRequest("/a", "S")
    d.set_attribute("x", deep)                       # still within the codec's depth inside a message
    msg = SessionMessage("/a", EVT_SESSION_DELTA, "S", d.to_plain())
    assert SessionMessage.from_bytes(msg.to_bytes()).delta().actions[0][2] == deep
    assert attr_values.needs_trust(((deep,),))


@pytest.mark.parametrize("bad", [
    ("S", 1), ("S", [[1]]), ("D", [1]), ("D", [[1], 2]), ("D", [1, 2, 1, 3]), ("S", [1, 1]),
    ("zz", []), ("T",), (1, []), ("dt", [2020, 13, 1, 0, 0, 0, 0, 0, None]), ("d", [1, 2]),
    ("d", [2020, 1, True]), ("dec", "nope"), ("dec", 1), ("u", b"1"), ("c", [1, 2]), ("ba", "x"),
    ("t", [1, 2, 3, 4, 0, [1, 2]]), ("td", [10 ** 10, 0, 0]), {1: 2}, [("B", b"x")], ("B", "x"),
    ("dt", [2020, 1, 1, 0, 0, 0, 0, 0, [86400 * 10 ** 6, "x"]]),
])
def test_malformed_values_raise_protocol_error(bad):
    with pytest.raises(ProtocolError):
        attr_values.decode(bad, trusted=True)


# -- DeltaRequest -------------------------------------------------------------------------------
def test_coalescing_last_action_per_key_wins():
    d = DeltaRequest("/a", "S1", (5, "n1"))
    d.create(1800, 10.0)
    d.set_attribute("a", 1)
    d.set_attribute("b", 2)
    d.set_attribute("a", 3)
    d.remove_attribute("b")
    d.set_max_inactive(60)
    d.set_max_inactive(-5)
    d.access(11.0)
    d.access(12.0)
    d.change_id("S2")
    d.change_id("S3")
    assert d.actions == [(CREATE, 1800, 10.0), (SET, "a", 3), (REMOVE, "b"), (MAX_INACTIVE, -1),
                         (ACCESS, 12.0), (CHANGE_ID, "S3")]
    d.remove_attribute("a")
    d.set_attribute("a", 4)                          # remove-then-set keeps the set
    assert d.actions[-1] == (SET, "a", 4) and (REMOVE, "a") not in d.actions


def test_set_then_remove_keeps_the_remove_and_record_all_keeps_everything():
    d = DeltaRequest("/a", "S1")
    d.set_attribute("a", 1)
    d.remove_attribute("a")
    assert d.actions == [(REMOVE, "a")]
    d = DeltaRequest("/a", "S1", record_all_actions=True)
    d.set_attribute("a", 1)
    d.remove_attribute("a")
    d.set_attribute("a", 2)
    assert d.actions == [(SET, "a", 1), (REMOVE, "a"), (SET, "a", 2)]


def test_invalidate_keeps_only_create_and_ends_the_delta():
    d = DeltaRequest("/a", "S1")
    d.create(30, 1.0)
    d.set_attribute("a", 1)
    d.invalidate()
    assert d.actions == [(CREATE, 30, 1.0), (INVALIDATE,)]
    with pytest.raises(IllegalStateError):
        d.set_attribute("b", 1)
    e = DeltaRequest("/a", "S1")
    e.set_attribute("a", 1)
    e.expire()
    assert e.actions == [(EXPIRE,)]
    f = DeltaRequest("/a", "S")
    f.access(1.0)
    with pytest.raises(IllegalStateError):
        f.create(1, 1.0)                             # create comes first or not at all


def full_delta():
    d = DeltaRequest("/shop", "ABCDEF.node1", (7, "node-1"))
    d.create(1800, 1700000000.25)
    d.set_attribute("cart", ["x", ("y", 2), {"z": {3}}])
    d.set_attribute("when", datetime.date(2024, 1, 1))
    d.remove_attribute("gone")
    d.set_max_inactive(600)
    d.set_principal(("bob", ["b", "a"]))
    d.set_auth_type("FORM")
    d.access(1700000001.5)
    d.change_id("NEW.node1")
    return d


def test_delta_round_trip():
    d = full_delta()
    back = DeltaRequest.from_bytes(d.to_bytes())
    assert (back.app, back.session_id, back.version) == ("/shop", "ABCDEF.node1", (7, "node-1"))
    assert back.actions == [a if a[0] != PRINCIPAL else (PRINCIPAL, ("bob", ("a", "b"))) for a in d.actions]
    for code in (INVALIDATE, EXPIRE):
        e = DeltaRequest("/a", "S")
        getattr(e, "invalidate" if code == INVALIDATE else "expire")()
        assert DeltaRequest.from_bytes(e.to_bytes()).actions == [(code,)]
    p = DeltaRequest("/a", "S")
    p.set_principal(None)
    p.set_auth_type(None)
    assert DeltaRequest.from_bytes(p.to_bytes()).actions == [(PRINCIPAL, None), (AUTH_TYPE, None)]


def _mutated(plain, path, value):
    import copy
    plain = copy.deepcopy(plain)
    target = plain
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return plain


# DeltaRequest's plain form by position: [version, app, id, counter, writer, actions]; full_delta's
# actions: 0 CREATE, 1 SET cart, 2 SET when, 3 REMOVE, 4 MAX_INACTIVE, 5 PRINCIPAL, 6 AUTH_TYPE,
# 7 ACCESS, 8 CHANGE_ID
V, APP, ID, COUNTER, WRITER, ACTIONS = range(6)


@pytest.mark.parametrize("path,value", [
    ((V,), 1), ((V,), 3), ((V,), True), ((V,), "2"), ((V,), None),
    ((APP,), 1), ((APP,), "x" * 2000), ((APP,), None), ((ID,), ""), ((ID,), "x" * 300), ((ID,), 5),
    ((COUNTER,), -1), ((COUNTER,), "1"), ((COUNTER,), 1.0), ((COUNTER,), True), ((COUNTER,), None),
    ((WRITER,), 2), ((WRITER,), "w" * 1025), ((WRITER,), None),
    ((ACTIONS,), {}), ((ACTIONS,), None), ((ACTIONS,), ("T", [])),
    ((ACTIONS, 0), [99, 1, 1.0]), ((ACTIONS, 0), []), ((ACTIONS, 0), [0, 1800]), ((ACTIONS, 0), "x"),
    ((ACTIONS, 0, 1), -2), ((ACTIONS, 0, 2), -1.0), ((ACTIONS, 0, 2), float("nan")),
    ((ACTIONS, 0, 2), 5), ((ACTIONS, 1, 1), "n" * 1025), ((ACTIONS, 1, 1), 3),
    ((ACTIONS, 1, 2), ("S", 1)), ((ACTIONS, 1), [SET, "a", [("B", b"x")]]),
    ((ACTIONS, 4), [MAX_INACTIVE, -7]), ((ACTIONS, 4), [MAX_INACTIVE, 2 ** 40]),
    ((ACTIONS, 5), [PRINCIPAL, ["bob"]]), ((ACTIONS, 5), [PRINCIPAL, ["bob", "a"]]),
    ((ACTIONS, 5), [PRINCIPAL, ["bob", [1]]]), ((ACTIONS, 6), [5, 3]),
    ((ACTIONS, 7), [ACCESS, float("inf")]), ((ACTIONS, 8), [CHANGE_ID, ""]),
    ((ACTIONS, 3), [INVALIDATE]), ((ACTIONS, 3), [CREATE, 1, 1.0]), ((ACTIONS, 3), [REMOVE, "a", 1]),
])
def test_malformed_delta_raises_protocol_error(path, value):
    plain = full_delta().to_plain()
    DeltaRequest.from_plain(plain)                   # the unmutated one is fine
    with pytest.raises(ProtocolError):
        DeltaRequest.from_plain(_mutated(plain, path, value))


def test_delta_plain_form_by_position_and_extra_or_missing_fields_and_size_bounds():
    plain = full_delta().to_plain()
    assert plain[:5] == [2, "/shop", "ABCDEF.node1", 7, "node-1"] and type(plain[ACTIONS]) is list
    assert plain[ACTIONS][1][:2] == [SET, "cart"]
    legacy = {"v": 1, "app": "/shop", "id": "ABCDEF.node1", "ver": [7, "node-1"], "actions": plain[ACTIONS]}
    for broken in (plain + [1], plain[:5], plain[:1], [], [plain], (tuple(plain)), legacy, None):
        with pytest.raises(ProtocolError):
            DeltaRequest.from_plain(broken)
    d = DeltaRequest("/a", "S", record_all_actions=True)
    for i in range(11):
        d.set_attribute("a", i)
    assert len(DeltaRequest.from_bytes(d.to_bytes(), max_actions=11)) == 11
    with pytest.raises(ProtocolError):
        DeltaRequest.from_bytes(d.to_bytes(), max_actions=10)
    with pytest.raises(ProtocolError):
        DeltaRequest.from_bytes(d.to_bytes(), max_actions=0)


def test_fuzzed_encodings_raise_only_protocol_error():
    rng = random.Random(1234)
    msg = SessionMessage("/shop", EVT_SESSION_DELTA, "ABCDEF.node1", full_delta().to_plain(), "u1", 1)
    good = msg.to_bytes()
    decoded = 0
    for i in range(600):
        data = bytearray(good)
        mode = i % 3
        if mode == 0:
            data = data[:rng.randrange(len(data))]
        elif mode == 1:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            pos = rng.randrange(len(data))
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
        try:
            SessionMessage.from_bytes(bytes(data)).delta()
            decoded += 1
        except ProtocolError:
            pass
    assert decoded < 600


# -- SessionMessage -----------------------------------------------------------------------------
def test_event_types_are_tomcats():
    assert (EVT_SESSION_CREATED, EVT_SESSION_EXPIRED, EVT_SESSION_ACCESSED, EVT_GET_ALL_SESSIONS,
            EVT_ALL_SESSION_DATA, EVT_SESSION_DELTA, EVT_ALL_SESSION_TRANSFERCOMPLETE,
            EVT_CHANGE_SESSION_ID, EVT_ALL_SESSION_NOCONTEXTMANAGER) == (1, 2, 3, 4, 12, 13, 14, 15, 16)


def test_session_message_round_trip_and_faults():
    m = SessionMessage("/a", EVT_CHANGE_SESSION_ID, "OLD", ["OLD", "NEW"], "uid-1", 1700000000123)
    back = SessionMessage.from_bytes(m.to_bytes())
    assert (back.app, back.event_type, back.session_id, back.payload, back.unique_id, back.timestamp) == (
        "/a", 15, "OLD", ["OLD", "NEW"], "uid-1", 1700000000123)
    with pytest.raises(ProtocolError):
        back.delta()
    plain = m.to_plain()
    assert plain == [2, "/a", 15, "OLD", 1700000000123, "uid-1", ["OLD", "NEW"]]      # by position
    assert SessionMessage.from_plain(list(plain)).payload == ["OLD", "NEW"]
    # [version, app, evt, sid, ts, uid, payload]: every field malformed in turn
    for index, value in ((0, 1), (0, 3), (0, True), (0, "2"), (1, b"x"), (1, None), (1, "a" * 1025),
                         (2, 5), (2, "13"), (2, None), (2, 13.0), (3, None), (3, "s" * 257), (3, 1),
                         (4, -1), (4, "1"), (4, 1.5), (4, None), (5, None), (5, 1), (5, "u" * 1025)):
        broken = list(plain)
        broken[index] = value
        with pytest.raises(ProtocolError):
            SessionMessage.from_plain(broken)
    legacy = {"sm": 1, "app": "/a", "evt": 15, "sid": "OLD", "ts": 1, "uid": "", "payload": None}
    for broken in (plain + [1], plain[:6], [], None, tuple(plain), legacy, "x"):
        with pytest.raises(ProtocolError):
            SessionMessage.from_plain(broken)
    d = full_delta()
    wrong = SessionMessage("/other", EVT_SESSION_DELTA, d.session_id, d.to_plain())
    with pytest.raises(ProtocolError):
        SessionMessage.from_bytes(wrong.to_bytes()).delta()
    with pytest.raises(ValueError):
        SessionMessage("/a", 99)
